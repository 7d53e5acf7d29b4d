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

import numpy as np

from labelwise.errors import ConfigError

SCHEMES = ("none", "balanced", "sqrt", "effective")


def label_weights(Y: np.ndarray, scheme: str | Mapping[str, float] = "none",
                  labels: Sequence[str] | None = None, cap: float = 50.0,
                  beta: float = 0.999) -> np.ndarray:
    """Positive-class weight per label (float64, length L)."""
    Y = np.asarray(Y)
    n_labels = Y.shape[1]
    if cap < 1:
        raise ConfigError(f"weighting cap must be >= 1, got {cap}")
    if isinstance(scheme, Mapping):
        names = list(labels) if labels is not None else [str(i) for i in range(n_labels)]
        unknown = sorted(set(scheme) - set(names))
        if unknown:
            raise ConfigError(f"weighting: unknown label(s) {unknown}")
        w = np.array([float(scheme.get(name, 1.0)) for name in names])
        if (w <= 0).any() or not np.isfinite(w).all():
            raise ConfigError("weighting: explicit weights must be positive and finite")
    else:
        pos = Y.sum(axis=0, dtype=np.float64)
        neg = Y.shape[0] - pos
        ratio = np.divide(neg, pos, out=np.ones_like(pos), where=(pos > 0) & (neg > 0))
        if scheme == "none":
            w = np.ones(n_labels)
        elif scheme == "balanced":
            w = ratio
        elif scheme == "sqrt":
            w = np.sqrt(ratio)
        elif scheme == "effective":
            if not 0 < beta < 1:
                raise ConfigError(f"weighting beta must be in (0, 1), got {beta}")

            def eff(n: np.ndarray) -> np.ndarray:
                return (1 - np.power(beta, n)) / (1 - beta)

            w = np.divide(eff(neg), eff(pos), out=np.ones_like(pos), where=pos > 0)
        else:
            raise ConfigError(f"weighting must be one of {SCHEMES} or a label->weight mapping, "
                              f"got {scheme!r}")
    return np.clip(w, 1.0 / cap, cap)
