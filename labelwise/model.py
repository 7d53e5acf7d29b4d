"""`LabelwiseClassifier`: one LightGBM booster per label, per-label thresholds, label dependencies.

Strategies (``strategy=``):

``binary_relevance`` (default)
    One independent binary model per label. Labels are trained on one binned Dataset, with
    early stopping per label on a validation part, then refitted on all rows.
``stacking``
    Two levels of binary relevance. The second level sees the features plus the out-of-fold
    first-level probabilities of *all* labels, so it can learn "label A makes B likely".
``chain``
    Like stacking, but label j's second-level model may only use the first-level probabilities of
    the labels before it in the chain order (``chain_order``: ``frequency``, ``random`` or an
    explicit list of label names). The chain inputs are out-of-fold probabilities at training time
    and first-level probabilities at prediction time: the same kind of input in both, unlike a
    chain trained on true labels, which sees perfect inputs in training and noisy ones in use.
``chain_ensemble``
    ``n_chains`` chains with random orders, probabilities averaged.

Every strategy ends in per-label decision thresholds chosen on held-out probabilities
(:mod:`labelwise.thresholds`), optionally after per-label probability calibration.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator

from labelwise.boosting import (
    Checkpoint,
    LabelJob,
    LabelModel,
    RemoteRunner,
    predict_per_label,
    train_per_label,
)
from labelwise.calibration import LabelCalibrator
from labelwise.data import FeatureEncoder
from labelwise.errors import DataError, NotFittedError
from labelwise.metrics import (
    MULTICLASS_MESSAGE,
    check_multiclass,
    classification_metrics,
    per_label_table,
)
from labelwise.split import iterative_stratification, stratified_kfold
from labelwise.thresholds import ThresholdPolicy, apply_thresholds, fit_thresholds
from labelwise.weights import label_weights

STRATEGIES = ("binary_relevance", "stacking", "chain", "chain_ensemble")
AUTO_CV_MAX_ROWS = 10_000

# Presets: measured on the shared benchmark datasets (benchmarks/RESULTS.md).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "fast": {"cv_folds": 3, "learning_rate": 0.25, "n_estimators": 300,
             "early_stopping_rounds": 8, "max_bin": 15, "num_leaves": 5},
    "accurate": {"learning_rate": 0.03, "n_estimators": 3000, "early_stopping_rounds": 100},
}


class LabelwiseClassifier(BaseEstimator):
    """Multi-label classifier: one LightGBM model per label, with per-label thresholds.

    Parameters
    ----------
    strategy : {"binary_relevance", "stacking", "chain", "chain_ensemble"}
        How label dependencies are used (see the module docstring).
    n_estimators : int
        Maximum boosting rounds per label; early stopping usually ends sooner.
    learning_rate, num_leaves, min_child_samples, feature_fraction, bagging_fraction,
    lambda_l2, max_bin :
        The LightGBM parameters that matter most; ``lgb_params`` passes any other.
    early_stopping_rounds : int or None
        Patience of per-label early stopping on the validation rows.
    validation_fraction : float
        With ``cv_folds=None``: share of the rows held out (iterative stratification) for early
        stopping, thresholds and calibration when ``fit`` gets no ``eval_set``. 0 disables
        validation: fixed rounds (``min(n_estimators, 100)``), fixed 0.5 thresholds.
    cv_folds : int, "auto" or None
        Cross-fitting: k models per label, each early-stopped on its held-out fold (iteratively
        stratified); thresholds come from the out-of-fold probabilities of every row and
        predictions average the k models. It gives better thresholds than one validation part
        where rows are few, at about 2.5 times the cost. ``None`` uses one validation part
        (``validation_fraction``) and ``refit``. ``"auto"`` (default): 5 folds up to
        ``AUTO_CV_MAX_ROWS`` rows, one validation part above (measured on the benchmark data:
        with 20k rows the validation part is large enough and cross-fitting only costs time).
    refit : bool
        After early stopping, retrain each label on all rows (validation included) with the
        number of rounds scaled to the larger data. Ignored with an explicit ``eval_set``.
    weighting : {"none", "balanced", "sqrt", "effective"} or dict
        Per-label positive-class weight (:mod:`labelwise.weights`), capped at ``weighting_cap``.
    threshold_objective, threshold_beta, threshold_target, threshold_mode, threshold_shrinkage,
    threshold_fixed, at_least_one :
        Threshold calibration (:class:`labelwise.thresholds.ThresholdPolicy`).
    calibration : {None, "isotonic", "sigmoid"}
        Per-label probability calibration fitted on the validation rows.
    chain_order, n_chains, n_folds :
        Chain order, number of chains of ``chain_ensemble``, folds for out-of-fold level-1
        probabilities of the dependency strategies.
    n_jobs : int
        Labels trained in parallel (-1: all cores). Each booster runs single-threaded.
    random_state : int
        Seeds splits, bagging and chain orders.

    Attributes
    ----------
    labels_ : list[str]
    encoder_ : FeatureEncoder
    thresholds_ : ndarray of shape (n_labels,)
    label_weights_ : ndarray of shape (n_labels,)
    best_iterations_ : ndarray of shape (n_labels,)
    validation_metrics_ : dict
        Threshold metrics of the held-out (out-of-fold) predictions the thresholds were set on.
    validation_per_label_ : list of dict
        The same per label (precision, recall, f1, support, predicted).
    """

    def __init__(self, strategy: str = "binary_relevance", *, n_estimators: int = 1000,
                 learning_rate: float = 0.15, num_leaves: int = 7, min_child_samples: int = 10,
                 feature_fraction: float = 0.8, bagging_fraction: float = 1.0,
                 lambda_l2: float = 1.0, max_bin: int = 63,
                 lgb_params: dict[str, Any] | None = None,
                 early_stopping_rounds: int | None = 20, validation_fraction: float = 0.2,
                 cv_folds: int | str | None = "auto", refit: bool = True,
                 weighting: str | dict[str, float] = "none",
                 weighting_cap: float = 50.0, threshold_objective: str = "f1",
                 threshold_beta: float = 1.0, threshold_target: float | None = None,
                 threshold_mode: str = "per_label", threshold_shrinkage: float = 30.0,
                 threshold_fixed: float = 0.5, at_least_one: bool = False,
                 calibration: str | None = None,
                 chain_order: str | Sequence[str] = "frequency", n_chains: int = 3,
                 n_folds: int = 3, n_jobs: int = -1, random_state: int = 0) -> None:
        self.strategy = strategy
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.max_bin = max_bin
        self.lgb_params = lgb_params
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.cv_folds = cv_folds
        self.refit = refit
        self.weighting = weighting
        self.weighting_cap = weighting_cap
        self.threshold_objective = threshold_objective
        self.threshold_beta = threshold_beta
        self.threshold_target = threshold_target
        self.threshold_mode = threshold_mode
        self.threshold_shrinkage = threshold_shrinkage
        self.threshold_fixed = threshold_fixed
        self.at_least_one = at_least_one
        self.calibration = calibration
        self.chain_order = chain_order
        self.n_chains = n_chains
        self.n_folds = n_folds
        self.n_jobs = n_jobs
        self.random_state = random_state

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> LabelwiseClassifier:
        """``default``, ``fast`` (a fraction of the fit time) or ``accurate`` (slower)."""
        if name not in PRESETS:
            raise DataError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # ------------------------------------------------------------------ validation helpers
    def _policy(self) -> ThresholdPolicy:
        return ThresholdPolicy(objective=self.threshold_objective, beta=self.threshold_beta,
                               target=self.threshold_target, mode=self.threshold_mode,
                               shrinkage=self.threshold_shrinkage, fixed=self.threshold_fixed,
                               at_least_one=self.at_least_one)

    def _n_workers(self) -> int:
        return max(1, os.cpu_count() or 1) if self.n_jobs in (-1, None) else max(1, self.n_jobs)

    def _check_params(self) -> None:
        if self.strategy not in STRATEGIES:
            raise DataError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not 0 <= self.validation_fraction < 1:
            raise DataError(f"validation_fraction must be in [0, 1), got "
                            f"{self.validation_fraction}")
        if self.cv_folds not in (None, "auto") and (
                not isinstance(self.cv_folds, int) or self.cv_folds < 2):
            raise DataError(f"cv_folds must be None, 'auto' or an integer >= 2, got "
                            f"{self.cv_folds!r}")
        if self.n_estimators < 1:
            raise DataError("n_estimators must be >= 1")
        if self.calibration not in (None, "none", "isotonic", "sigmoid"):
            raise DataError(f"calibration must be None, 'isotonic' or 'sigmoid', got "
                            f"{self.calibration!r}")
        self._policy()  # validates the threshold settings

    def _lgb_params(self) -> dict[str, Any]:
        params = {"objective": "binary", "learning_rate": self.learning_rate,
                  "num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples,
                  "feature_fraction": self.feature_fraction, "lambda_l2": self.lambda_l2,
                  "metric": "binary_logloss", "verbose": -1, "seed": self.random_state,
                  "deterministic": True, "force_col_wise": True, "num_threads": 1,
                  "feature_pre_filter": False}
        if self.bagging_fraction < 1:
            params.update(bagging_fraction=self.bagging_fraction, bagging_freq=1)
        params.update(self.lgb_params or {})
        return params

    def _dataset_params(self) -> dict[str, Any]:
        params = {"max_bin": self.max_bin, "verbose": -1, "feature_pre_filter": False,
                  "min_data_in_bin": 3}
        for k in ("min_data_in_bin", "max_bin_by_feature", "bin_construct_sample_cnt"):
            if self.lgb_params and k in self.lgb_params:
                params[k] = self.lgb_params[k]
        return params

    def _to_matrix(self, X: Any, fitting: bool, source: str = "X") -> np.ndarray:
        if isinstance(X, pl.DataFrame):
            if fitting:
                self.encoder_ = FeatureEncoder().fit(X, X.columns, source=source)
            return self.encoder_.transform(X, source=source)
        if hasattr(X, "to_numpy") and hasattr(X, "columns"):  # pandas
            return self._to_matrix(pl.from_pandas(X), fitting, source)
        A = np.asarray(X, dtype=np.float32)
        if A.ndim != 2:
            raise DataError(f"{source} must be 2-D (rows x features), got shape {A.shape}")
        if np.isinf(A).any():
            bad = np.flatnonzero(np.isinf(A).any(axis=0))[:5].tolist()
            raise DataError(f"{source} holds infinite values in column(s) {bad}")
        if fitting:
            self.encoder_ = FeatureEncoder(features=[f"f{i}" for i in range(A.shape[1])])
        elif A.shape[1] != len(self.encoder_.features):
            raise DataError(f"{source} has {A.shape[1]} columns, the model expects "
                            f"{len(self.encoder_.features)}")
        return A

    @staticmethod
    def _to_labels(Y: Any, n_rows: int, source: str = "Y") -> tuple[np.ndarray, list[str]]:
        if isinstance(Y, pl.DataFrame):
            names = Y.columns
            Y = Y.to_numpy()
        else:
            names = None
        A = np.asarray(Y)
        if A.ndim != 2:
            raise DataError(f"{source} must be 2-D (rows x labels), got shape {A.shape}")
        if A.shape[0] != n_rows:
            raise DataError(f"{source} has {A.shape[0]} rows, X has {n_rows}")
        if not np.isin(A, (0, 1)).all():
            raise DataError(f"{source} must hold only 0 and 1")
        labels = list(names) if names is not None else [f"label_{j}" for j in range(A.shape[1])]
        return A.astype(np.uint8), labels

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, Y: Any, *, eval_set: tuple[Any, Any] | None = None,
            labels: Sequence[str] | None = None,
            categorical_features: Sequence[int] | None = None,
            progress: Callable[[int, int, str], None] | None = None,
            checkpoint_dir: str | os.PathLike[str] | None = None,
            runner: Callable[[str, Callable, list], None] | RemoteRunner | None = None,
            ) -> LabelwiseClassifier:
        """Fit on features ``X`` (polars/pandas frame or array) and 0/1 labels ``Y`` (n x L).

        ``eval_set=(X_valid, Y_valid)`` replaces the internal validation split. ``progress`` is
        called with (models done, models planned, label name) as each per-label model finishes.
        ``checkpoint_dir`` keeps every finished per-label model on disk; a fit killed half-way
        and started again with the same data, parameters and directory reuses them (the
        directory must not be shared between different data or parameters). ``runner(step,
        run_chunk, chunks)`` hands the per-label work to an orchestrator: it must call
        ``run_chunk(chunk)`` for every chunk of labels (threads of the same process) — the
        Prefect flow uses it to make every chunk a visible task. A :class:`RemoteRunner`
        instead ships self-contained chunks to other processes (a Dask cluster); the models
        are the same as a local fit's.
        """
        import lightgbm as lgb

        self._check_params()
        self._checkpoint_dir = checkpoint_dir
        self._runner = runner
        self.n_models_resumed_ = 0
        Xa = self._to_matrix(X, fitting=True)
        Ya, names = self._to_labels(Y, Xa.shape[0])
        if Xa.shape[0] < 2:
            raise DataError("need at least 2 rows to fit")
        self.labels_ = list(labels) if labels is not None else names
        if len(self.labels_) != Ya.shape[1]:
            raise DataError(f"{len(self.labels_)} label names for {Ya.shape[1]} label columns")
        # what a report should show the user besides Python's warnings (which a worker's
        # logging may swallow): the encoder's, plus the label set's
        self.warnings_ = list(self.encoder_.warnings_)
        if check_multiclass(Ya):
            self.warnings_.append(MULTICLASS_MESSAGE)
        if Ya.shape[1] == 1:
            import warnings

            msg = ("one label only: this is binary classification; labelwise handles it, "
                   "but thresholds and metrics are per label anyway")
            self.warnings_.append(msg)
            warnings.warn(msg, UserWarning, stacklevel=2)
        cat = (list(categorical_features) if categorical_features is not None
               else self.encoder_.categorical_indices)
        self.categorical_features_ = cat
        refit = self.refit
        n_folds = self.cv_folds
        if n_folds == "auto":
            n_folds = 5 if Xa.shape[0] <= AUTO_CV_MAX_ROWS else None
        self.cv_folds_used_ = n_folds if eval_set is None else None
        cross_fit = bool(self.cv_folds_used_)
        if eval_set is not None:
            Xv = self._to_matrix(eval_set[0], fitting=False, source="eval_set X")
            Yv, _ = self._to_labels(eval_set[1], Xv.shape[0], source="eval_set Y")
            n = Xa.shape[0]
            Xa, Ya = np.vstack([Xa, Xv]), np.vstack([Ya, Yv])
            splits = [(np.arange(n), np.arange(n, Xa.shape[0]))]
            refit = False
        elif cross_fit:
            splits = stratified_kfold(Ya, n_folds, self.random_state)
            refit = False
        elif self.validation_fraction > 0:
            fold = iterative_stratification(
                Ya, [1 - self.validation_fraction, self.validation_fraction], self.random_state)
            splits = [(np.flatnonzero(fold == 0), np.flatnonzero(fold == 1))]
        else:
            splits = [(np.arange(Xa.shape[0]), None)]
        train_rows = np.unique(np.concatenate([tr for tr, _ in splits]))
        self.label_weights_ = label_weights(Ya[train_rows], self.weighting, self.labels_,
                                            cap=self.weighting_cap)
        n_labels = Ya.shape[1]
        orders = self._chain_orders(Ya) if self.strategy != "binary_relevance" else []
        needs_oof = bool(orders) and splits[0][1] is not None and not cross_fit
        planned = n_labels * len(splits) * (1 + len(orders)) + (
            n_labels * self.n_folds if needs_oof else 0)
        counter = _Progress(progress, planned, self.labels_)

        base = lgb.Dataset(Xa, params=self._dataset_params(), categorical_feature=cat or "auto",
                           free_raw_data=False).construct()
        self.level1_, valid_rows, P_valid = self._fit_members(base, Xa, Ya, splits, refit,
                                                              counter, masks=None, step="L1")
        self.level2_: list[list[LabelModel]] = []
        self.orders_: list[list[int]] = orders
        if orders:
            if cross_fit:  # the cross-fitted first level is already out-of-fold for every row
                Z = np.zeros(Ya.shape)
                Z[valid_rows] = P_valid
            elif needs_oof:
                Z = self._oof_level1(Xa, Ya, base, counter)
            else:  # no validation rows at all: first-level fits on all rows stand in
                Z = _mean_proba(self.level1_, Xa, self._n_workers())
            X2 = np.hstack([Xa, Z.astype(np.float32)])
            base2 = lgb.Dataset(X2, params=self._dataset_params(),
                                categorical_feature=cat or "auto", free_raw_data=False).construct()
            P_sum = None
            for c, order in enumerate(orders):
                masks = self._masks(order, Xa.shape[1], n_labels)
                members, _, P = self._fit_members(base2, X2, Ya, splits, refit, counter, masks,
                                                  step=f"L2c{c}")
                self.level2_.extend(members)
                if P is not None:
                    P_sum = P if P_sum is None else P_sum + P
            P_valid = None if P_sum is None else P_sum / len(orders)
        self.best_iterations_ = np.mean(
            [[m.best_iteration for m in member] for member in self.level1_], axis=0)
        self._fit_thresholds(Ya, valid_rows, P_valid)
        self.n_features_in_ = len(self.encoder_.features)
        return self

    def _fit_members(self, base: Any, Xa: np.ndarray, Ya: np.ndarray,
                     splits: list[tuple[np.ndarray, np.ndarray | None]], refit: bool,
                     counter: _Progress, masks: list[list[float]] | None, step: str,
                     ) -> tuple[list[list[LabelModel]], np.ndarray | None, np.ndarray | None]:
        """One member (L models) per split; validation probabilities stacked over the splits."""
        members, rows, probs = [], [], []
        for i, (tr, va) in enumerate(splits):
            models, P = self._fit_level(base, Xa, Ya, tr, va, refit, counter, masks,
                                        step=f"{step}m{i}")
            members.append(models)
            if va is not None and P is not None:
                rows.append(va)
                probs.append(P)
        if not rows:
            return members, None, None
        return members, np.concatenate(rows), np.vstack(probs)

    def _fit_level(self, base: Any, Xa: np.ndarray, Ya: np.ndarray, train_idx: np.ndarray,
                   valid_idx: np.ndarray | None, refit: bool, counter: _Progress | None,
                   masks: list[list[float]] | None, rounds: Sequence[int] | None = None,
                   step: str = "L1m0") -> tuple[list[LabelModel], np.ndarray | None]:
        base_params = self._lgb_params()
        jobs = []
        for j in range(Ya.shape[1]):
            params = dict(base_params)
            if self.label_weights_[j] != 1.0:
                params["scale_pos_weight"] = float(self.label_weights_[j])
            if masks is not None:
                params["feature_contri"] = masks[j]
            jobs.append(LabelJob(j, params, None if rounds is None else int(rounds[j])))
        root = getattr(self, "_checkpoint_dir", None)
        checkpoint = Checkpoint(root, step) if root is not None else None
        outer = getattr(self, "_runner", None)
        if outer is None:
            runner = None
        elif isinstance(outer, RemoteRunner):
            runner = outer.for_step(step)
        else:
            runner = lambda fn, chunks: outer(step, fn, chunks)  # noqa: E731

        models, P = train_per_label(
            base, Ya, Xa, train_idx, valid_idx, jobs, num_boost_round=self.n_estimators,
            early_stopping_rounds=self.early_stopping_rounds, refit=refit,
            fallback_rounds=min(self.n_estimators, 100), n_jobs=self._n_workers(),
            on_done=counter, checkpoint=checkpoint, runner=runner)
        if checkpoint is not None:
            self.n_models_resumed_ += len(checkpoint.loaded)
        return [models[j] for j in range(Ya.shape[1])], P

    def _oof_level1(self, Xa: np.ndarray, Ya: np.ndarray, base: Any,
                    counter: _Progress) -> np.ndarray:
        """Out-of-fold first-level probabilities for every row (n x L), with the rounds early
        stopping chose for the first level."""
        Z = np.zeros(Ya.shape, dtype=np.float64)
        rounds = [max(1, m.best_iteration) for m in self.level1_[0]]
        for f, (tr, te) in enumerate(stratified_kfold(Ya, self.n_folds, self.random_state)):
            models, _ = self._fit_level(base, Xa, Ya, tr, None, False, counter, masks=None,
                                        rounds=rounds, step=f"OOFf{f}")
            Z[te] = predict_per_label(models, Xa[te], self._n_workers())
        return Z

    def _masks(self, order: list[int], n_features: int, n_labels: int) -> list[list[float]]:
        """LightGBM ``feature_contri`` per label: features always, label columns as allowed."""
        if self.strategy == "stacking":
            return [[1.0] * (n_features + n_labels)] * n_labels
        position = {lab: i for i, lab in enumerate(order)}
        return [[1.0] * n_features + [1.0 if position[k] < position[j] else 0.0
                                      for k in range(n_labels)] for j in range(n_labels)]

    def _chain_orders(self, Ya: np.ndarray) -> list[list[int]]:
        n_labels = Ya.shape[1]
        rng = np.random.default_rng(self.random_state)
        if self.strategy == "chain_ensemble":
            return [rng.permutation(n_labels).tolist() for _ in range(self.n_chains)]
        if self.strategy == "stacking":
            return [list(range(n_labels))]
        if isinstance(self.chain_order, str):
            if self.chain_order == "frequency":
                return [np.argsort(-Ya.sum(axis=0), kind="stable").tolist()]
            if self.chain_order == "random":
                return [rng.permutation(n_labels).tolist()]
            raise DataError(f"chain_order must be 'frequency', 'random' or a list of labels, "
                            f"got {self.chain_order!r}")
        unknown = sorted(set(self.chain_order) - set(self.labels_))
        if unknown or len(self.chain_order) != n_labels:
            raise DataError(f"chain_order must list every label once (unknown: {unknown})")
        return [[self.labels_.index(lab) for lab in self.chain_order]]

    def _fit_thresholds(self, Ya: np.ndarray, valid_idx: np.ndarray | None,
                        P_valid: np.ndarray | None) -> None:
        """Calibrators and thresholds from held-out rows (fixed thresholds without any)."""
        policy = self._policy()
        n_labels = Ya.shape[1]
        self.calibrators_: list[LabelCalibrator] | None = None
        if valid_idx is None or P_valid is None or len(valid_idx) == 0:
            self.thresholds_ = np.full(n_labels, policy.fixed)
            self.validation_metrics_ = {}
            self.validation_per_label_ = []
            return
        Yv = Ya[valid_idx]
        if self.calibration not in (None, "none"):
            self.calibrators_ = [LabelCalibrator.fit(Yv[:, j], P_valid[:, j], self.calibration)
                                 for j in range(n_labels)]
            P_valid = self._calibrate(P_valid)
        self.thresholds_ = fit_thresholds(Yv, P_valid, policy)
        pred = apply_thresholds(P_valid, self.thresholds_, self.at_least_one)
        self.validation_metrics_ = classification_metrics(Yv, pred)
        self.validation_per_label_ = per_label_table(Yv, pred, None, self.labels_)

    def _calibrate(self, P: np.ndarray) -> np.ndarray:
        if not self.calibrators_:
            return P
        return np.column_stack([c.transform(P[:, j]) for j, c in enumerate(self.calibrators_)])

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise NotFittedError("this LabelwiseClassifier is not fitted yet: call fit() or "
                                 "load a saved model")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each label (n x L, float64), each label independently."""
        self._check_fitted()
        Xa = self._to_matrix(X, fitting=False)
        workers = self._n_workers()
        P = _mean_proba(self.level1_, Xa, workers)
        if self.level2_:
            P = _mean_proba(self.level2_, np.hstack([Xa, P.astype(np.float32)]), workers)
        return self._calibrate(P)

    def predict(self, X: Any) -> np.ndarray:
        """0/1 label matrix (n x L, uint8) using the calibrated per-label thresholds."""
        return apply_thresholds(self.predict_proba(X), self.thresholds_, self.at_least_one)

    def feature_importance(self) -> dict[str, float]:
        """Each feature's share of the total split gain over every per-label booster (sums to
        1; all zeros when every label got a constant model)."""
        self._check_fitted()
        n = len(self.encoder_.features)
        gain = np.zeros(n)
        for member in [*self.level1_, *self.level2_]:
            for m in member:
                if m.booster is not None:  # chain/stacking boosters see labels after features
                    gain += m.booster.feature_importance("gain")[:n]
        total = gain.sum()
        shares = gain / total if total > 0 else gain
        return dict(zip(self.encoder_.features, map(float, shares), strict=True))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a JSON manifest plus native LightGBM text files to directory ``path``."""
        from labelwise.persistence import save_model

        self._check_fitted()
        save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LabelwiseClassifier:
        """Load a model saved by :meth:`save` (verifies format version and file digests)."""
        from labelwise.persistence import load_model

        return load_model(path)


def _mean_proba(members: list[list[LabelModel]], X: np.ndarray, n_jobs: int) -> np.ndarray:
    """Average of the members' per-label probabilities (folds of a cross-fit, chains...)."""
    P = predict_per_label(members[0], X, n_jobs)
    for member in members[1:]:
        P += predict_per_label(member, X, n_jobs)
    return P / len(members)


class _Progress:
    """Counts finished per-label models and forwards (done, planned, label) to a callback."""

    def __init__(self, callback: Callable[[int, int, str], None] | None, planned: int,
                 labels: list[str]) -> None:
        self.callback, self.planned, self.labels, self.done = callback, planned, labels, 0
        self._lock = threading.Lock()

    def __call__(self, index: int, _model: LabelModel) -> None:
        with self._lock:
            self.done += 1
            done = self.done
        if self.callback is not None:
            self.callback(done, self.planned, self.labels[index])
