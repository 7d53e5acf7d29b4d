"""One label's fitted model: a LightGBM booster, or a constant where one class is all there is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import lightgbm as lgb


@dataclass
class LabelModel:
    """One label's fitted model: a booster, or a constant probability when the training rows
    hold a single class for that label."""

    booster: lgb.Booster | None
    constant: float | None
    best_iteration: int

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        if self.booster is None:
            return np.full(X.shape[0], self.constant, dtype=np.float64)
        return np.asarray(
            self.booster.predict(
                X, num_iteration=self.best_iteration or None, num_threads=num_threads
            ),
            dtype=np.float64,
        )

    def to_text(self) -> str:
        """The booster as LightGBM model text, cut at its best iteration."""
        assert self.booster is not None
        return str(self.booster.model_to_string(num_iteration=self.best_iteration or None))
