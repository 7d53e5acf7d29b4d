"""An honest estimate of a fit's test score, from its own held-out rows.

A fit's ``validation_metrics_`` are optimistic: the per-label thresholds (and calibrators) were
chosen on the very rows those metrics score, and with many rare labels each cut fits its rows'
noise. :class:`HeldOutScore` scores the same held-out probabilities the way a test table would
be scored: each fold's rows get the calibrators and thresholds fitted on the *other* folds'
rows. With cross-fitting the folds are the fit's own (every probability is out-of-fold); with
one validation part its rows are split into ``n_splits`` stratified folds. The one optimistic
step left is early stopping, which chose each member's rounds on the rows it held out (as
LightGBM's ``cv`` does).

Thresholds need no refit, so other threshold policies (``grid``) are scored on the same
probabilities at the cost of their sweeps: ``labelwise tune`` judges every fitted model with
the best policy of its grid, and the test table never takes part::

    score = HeldOutScore(clf.policy, clf.calibration, grid=[ThresholdPolicy(shrinkage=3.0)])
    clf.fit(X, Y, callbacks=[score])
    score.metrics_["f1_macro"], score.grid_metrics_[0]["f1_macro"]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from labelwise.engine.calibration import LabelCalibrator
from labelwise.engine.callbacks import FitCallback
from labelwise.engine.metrics import classification_metrics
from labelwise.engine.split import stratified_kfold
from labelwise.engine.thresholds import ThresholdPolicy, apply_thresholds, fit_thresholds_many


class HeldOutScore(FitCallback):
    """Metrics of a fit's held-out predictions, thresholds and calibration cross-validated.

    Parameters
    ----------
    policy : ThresholdPolicy
        The threshold policy of the estimator being fitted (``clf.policy``).
    calibration : {None, "none", "isotonic", "sigmoid"}
        Its calibration (``clf.calibration``).
    n_splits : int
        Folds of one validation part (cross-fitting brings its own).
    seed : int
        Seeds those folds.
    grid : sequence of ThresholdPolicy
        Other policies scored on the same held-out probabilities.
    fold_score : callable or None
        ``fold_score(Y, pred)``, a number computed on each fold's rows alone under every
        policy (``fold_scores_``): paired differences between two policies or two fits on
        the same folds say whether a gain is larger than its noise (:func:`clear_gain`).

    Attributes (after the fit)
    --------------------------
    metrics_ : dict
        :func:`~labelwise.engine.metrics.classification_metrics` of the held-out rows.
    grid_metrics_ : list of dict
        The same under each policy of ``grid``.
    fold_scores_ : list of list of float
        With ``fold_score``: per policy (``policy`` first, then ``grid``), its score on each
        fold.
    n_rows_ : int
        How many rows were held out.
    """

    def __init__(
        self,
        policy: ThresholdPolicy,
        calibration: str | None = None,
        n_splits: int = 5,
        seed: int = 0,
        grid: Sequence[ThresholdPolicy] = (),
        fold_score: Callable[[np.ndarray, np.ndarray], float] | None = None,
    ) -> None:
        self.policy, self.calibration = policy, calibration
        self.n_splits, self.seed, self.grid = n_splits, seed, list(grid)
        self.fold_score = fold_score
        self.metrics_: dict[str, float] = {}
        self.grid_metrics_: list[dict[str, float]] = []
        self.fold_scores_: list[list[float]] = []
        self.n_rows_ = 0

    def held_out(self, Y: np.ndarray, P: Any, folds: list[np.ndarray], floor: float = 0.0) -> None:
        if len(folds) < 2:
            folds = [te for _, te in stratified_kfold(Y, self.n_splits, self.seed)]
        policies = [self.policy, *self.grid]
        parts: list[list[tuple[np.ndarray, Any]]] = [[] for _ in policies]
        everything = np.arange(Y.shape[0])
        for rows in folds:
            rest = np.setdiff1d(everything, rows)
            for part, fold_pred in zip(
                parts, self._predict(Y[rest], P[rest], P[rows], floor), strict=True
            ):
                part.append((rows, fold_pred))
        preds = [_assemble(part, Y.shape) for part in parts]
        self.metrics_, *self.grid_metrics_ = [classification_metrics(Y, p) for p in preds]
        if self.fold_score is not None:
            score = self.fold_score
            self.fold_scores_ = [[score(Y[rows], p[rows]) for rows in folds] for p in preds]
        self.n_rows_ = int(Y.shape[0])

    def _predict(self, Y_fit: np.ndarray, P_fit: Any, P: Any, floor: float) -> list[Any]:
        """0/1 predictions of ``P`` under each policy, with calibrators and thresholds fitted on
        the other rows (never below ``floor``, as the model's)."""
        if self.calibration not in (None, "none"):
            method = str(self.calibration)
            cals = [
                LabelCalibrator.fit(Y_fit[:, j], P_fit[:, j], method) for j in range(Y_fit.shape[1])
            ]
            P_fit = np.column_stack([c.transform(P_fit[:, j]) for j, c in enumerate(cals)])
            P = np.column_stack([c.transform(P[:, j]) for j, c in enumerate(cals)])
        policies = [self.policy, *self.grid]
        cuts = fit_thresholds_many(Y_fit, P_fit, policies)
        return [
            apply_thresholds(P, np.maximum(t, floor), policy.at_least_one)
            for t, policy in zip(cuts, policies, strict=True)
        ]


def _assemble(parts: list[tuple[np.ndarray, Any]], shape: tuple[int, int]) -> Any:
    """One n x L prediction from each fold's (rows, predictions of those rows): sparse when
    they are (a label tree's), else dense uint8."""
    if parts and sp.issparse(parts[0][1]):
        blocks = [sp.coo_matrix(pred) for _, pred in parts]
        return sp.csr_matrix(
            (
                np.concatenate([b.data for b in blocks]),
                (
                    np.concatenate(
                        [rows[b.row] for (rows, _), b in zip(parts, blocks, strict=True)]
                    ),
                    np.concatenate([b.col for b in blocks]),
                ),
            ),
            shape=shape,
        )
    out = np.zeros(shape, dtype=np.uint8)
    for rows, pred in parts:
        out[rows] = pred
    return out


def clear_gain(differences: Sequence[float]) -> bool:
    """Whether paired per-fold differences (candidate minus incumbent, higher is better) show
    a gain larger than one standard error of their mean: the one-standard-error rule. The best
    of many candidates judged on the same noisy folds wins by chance; a candidate that cannot
    clear its own noise keeps the incumbent (fewer than two folds: no evidence, no change)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        return False
    return bool(d.mean() > d.std(ddof=1) / np.sqrt(d.size))
