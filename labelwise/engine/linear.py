"""The linear head: one L2-regularised logistic regression per label on the (sparse) features.

On sparse text, per-label linear models are strong and cheap where trees are slow and weak; on
tabular columns the trees win. The classifier blends the two heads' probabilities
(``linear_weight``) before the per-label thresholds, on the same cross-fitting splits, so the
thresholds see held-out probabilities of the blend itself.

All labels predict in one sparse product, ``sigmoid(X @ W.T + b)``: the head costs one matrix
product at serving time whatever the label count. Saved as two ``.npy`` arrays (no pickle).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelwise.engine.errors import ModelFormatError

# the logit a constant label gets: sigmoid(±40) is 0 or 1 to float64 precision
CONSTANT_LOGIT = 40.0


@dataclass
class LinearHead:
    """Per-label weights ``coef`` (L x n_columns, float32) and ``intercept`` (L,)."""

    coef: np.ndarray
    intercept: np.ndarray

    def decision(self, X: Any) -> np.ndarray:
        if X.shape[1] != self.coef.shape[1]:
            raise ValueError(f"X has {X.shape[1]} columns, the linear head {self.coef.shape[1]}")
        Z = np.asarray(X @ self.coef.T, dtype=np.float64)
        return Z + self.intercept

    def predict_proba(self, X: Any) -> np.ndarray:
        """n x L probabilities."""
        return _sigmoid(self.decision(X))

    def files(self) -> dict[str, bytes]:
        return {"coef.npy": _npy(self.coef), "intercept.npy": _npy(self.intercept)}

    @classmethod
    def from_files(cls, read: Callable[[str], bytes], source: str) -> LinearHead:
        try:
            coef = np.load(io.BytesIO(read("coef.npy")), allow_pickle=False)
            intercept = np.load(io.BytesIO(read("intercept.npy")), allow_pickle=False)
        except ValueError as exc:
            raise ModelFormatError(f"{source}: linear head unreadable ({exc})") from None
        if coef.ndim != 2 or intercept.shape != (coef.shape[0],):
            raise ModelFormatError(f"{source}: linear head arrays have inconsistent shapes")
        return cls(coef.astype(np.float32), intercept.astype(np.float64))


def fit_linear(
    X: Any,
    Y: np.ndarray,
    rows: np.ndarray,
    weights: Sequence[float] | np.ndarray,
    C: float,
) -> LinearHead:
    """Each label's ``LogisticRegression(C, solver="lbfgs")`` on ``X[rows]``, positives
    weighted by ``weights``; a label with one class in those rows gets a constant.

    The labels are fitted one after another with lbfgs: liblinear is not safe in threads (its
    random state is global, so concurrent fits corrupt coefficients: scikit-learn issue 31883);
    the solvers measured are in benchmarks/RESULTS.md, "Text"."""
    from sklearn.linear_model import LogisticRegression

    Xr, Yr = X[rows], Y[rows]
    n_labels = Y.shape[1]
    coef = np.zeros((n_labels, X.shape[1]), dtype=np.float32)
    intercept = np.zeros(n_labels, dtype=np.float64)
    for j in range(n_labels):
        y = Yr[:, j]
        n_pos = int(y.sum())
        if n_pos in (0, len(y)):
            intercept[j] = CONSTANT_LOGIT if n_pos else -CONSTANT_LOGIT
            continue
        model = LogisticRegression(C=C, max_iter=1000, class_weight={0: 1.0, 1: float(weights[j])})
        model.fit(Xr, y)
        coef[j] = model.coef_[0]
        intercept[j] = float(model.intercept_[0])
    return LinearHead(coef, intercept)


def _sigmoid(Z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * Z))  # no overflow warning at large |Z|
    return out


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()
