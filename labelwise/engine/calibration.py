"""Optional per-label probability calibration (isotonic or sigmoid/Platt), fitted on held-out
probabilities and stored as plain numbers (no pickled estimator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelwise.engine.errors import ConfigError

METHODS = ("isotonic", "sigmoid")


@dataclass
class LabelCalibrator:
    """Maps raw probabilities to calibrated ones; ``params`` is JSON-ready."""

    method: str
    params: dict[str, list[float] | float] = field(default_factory=dict)

    @classmethod
    def fit(cls, y: np.ndarray, p: np.ndarray, method: str) -> LabelCalibrator:
        if method not in METHODS:
            raise ConfigError(f"calibration must be one of {METHODS} or none, got {method!r}")
        y = np.asarray(y, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        if y.min() == y.max():  # one class held out: nothing to learn, keep identity
            return cls("identity")
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
            return cls(method, {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})
        from sklearn.linear_model import LogisticRegression

        z = _logit(p)[:, None]
        lr = LogisticRegression(C=1e6).fit(z, y)
        return cls(method, {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})

    def transform(self, p: np.ndarray) -> np.ndarray:
        if self.method == "identity":
            return p
        if self.method == "isotonic":
            return np.interp(p, self.params["x"], self.params["y"])
        a, b = self.params["a"], self.params["b"]
        assert isinstance(a, float | int) and isinstance(b, float | int)
        z = a * _logit(p) + b
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelCalibrator:
        if d.get("method") not in (*METHODS, "identity"):
            raise ConfigError(f"unknown calibration method {d.get('method')!r}")
        return cls(d["method"], dict(d.get("params", {})))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))
