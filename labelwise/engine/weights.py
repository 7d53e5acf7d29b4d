"""Per-label imbalance weights: how much one positive counts against one negative.

The weight of label l is applied as LightGBM's ``scale_pos_weight`` in that label's parameters,
never as row weights on the shared Dataset (``set_weight(None)`` on a constructed Dataset keeps
the previous label's weights: a silent bug this design avoids).

Schemes (``n_pos``, ``n_neg`` counted on the training rows):

* ``none``       -> 1
* ``balanced``   -> n_neg / n_pos
* ``sqrt``       -> sqrt(n_neg / n_pos)
* ``effective``  -> effective number of samples, Cui et al. (CVPR 2019):
  E(n) = (1 - beta^n) / (1 - beta); weight = E(n_neg) / E(n_pos)
* a mapping ``{label: weight}`` -> explicit weights (missing labels get 1)

All are capped at ``cap`` (and floored at 1 / cap) so a label with three positives does not get a
weight of 10 000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from labelwise.engine.errors import ConfigError
from labelwise.engine.params import Constraint, Interval, Options, check_params

SCHEMES = ("none", "balanced", "sqrt", "effective")


@dataclass(frozen=True)
class Weighting:
    """How each label's positives are weighted (see the module docstring).

    scheme : "none" | "balanced" | "sqrt" | "effective" | {label: weight}
    cap : float >= 1
        Weights are clipped to [1 / cap, cap].
    beta : float in (0, 1)
        The ``effective`` scheme's beta: near 1, close to ``balanced``; smaller, flatter.
    """

    # read by the YAML loader (pydantic): an unknown key is an error, not a silent default
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    scheme: str | dict[str, float] = "none"
    cap: float = 50.0
    beta: float = 0.999

    _constraints: ClassVar[dict[str, list[Constraint]]] = {
        "scheme": [Options(SCHEMES), dict],
        "cap": [Interval(float, 1, None)],
        "beta": [Interval(float, 0, 1, closed="neither")],
    }

    def __post_init__(self) -> None:
        check_params(asdict(self), self._constraints)
        if isinstance(self.scheme, dict):
            w = np.array(list(self.scheme.values()), dtype=np.float64)
            if (w <= 0).any() or not np.isfinite(w).all():
                raise ConfigError(
                    "explicit label weights must be positive and finite", param="scheme"
                )

    @classmethod
    def coerce(cls, value: Weighting | str | Mapping[str, float]) -> Weighting:
        """A Weighting from the short forms ``"balanced"`` or ``{label: weight}``."""
        if isinstance(value, Weighting):
            return value
        if isinstance(value, Mapping):
            return cls(scheme=dict(value))
        return cls(scheme=value)

    def weights(self, Y: Any, labels: Sequence[str] | None = None) -> np.ndarray:
        """Positive-class weight per label (float64, length L) for 0/1 labels ``Y`` (dense or
        scipy sparse)."""
        Y = Y if sp.issparse(Y) else np.asarray(Y)
        n_labels = Y.shape[1]
        if isinstance(self.scheme, dict):
            w = self._explicit(
                list(labels) if labels is not None else [str(i) for i in range(n_labels)]
            )
        else:
            pos = np.asarray(Y.sum(axis=0, dtype=np.float64)).ravel()
            neg = Y.shape[0] - pos
            w = _SCHEME_WEIGHTS[self.scheme](pos, neg, self.beta)
        return np.clip(w, 1.0 / self.cap, self.cap)

    def _explicit(self, names: list[str]) -> np.ndarray:
        assert isinstance(self.scheme, dict)
        unknown = sorted(set(self.scheme) - set(names))
        if unknown:
            raise ConfigError(f"weighting: unknown label(s) {unknown}", param="scheme")
        return np.array([float(self.scheme.get(name, 1.0)) for name in names])


def _ratio(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    return np.divide(neg, pos, out=np.ones_like(pos), where=(pos > 0) & (neg > 0))


def _effective(pos: np.ndarray, neg: np.ndarray, beta: float) -> np.ndarray:
    def eff(n: np.ndarray) -> np.ndarray:
        return (1 - np.power(beta, n)) / (1 - beta)

    return np.divide(eff(neg), eff(pos), out=np.ones_like(pos), where=pos > 0)


_SCHEME_WEIGHTS: dict[str, Any] = {
    "none": lambda pos, neg, beta: np.ones_like(pos),
    "balanced": lambda pos, neg, beta: _ratio(pos, neg),
    "sqrt": lambda pos, neg, beta: np.sqrt(_ratio(pos, neg)),
    "effective": _effective,
}
