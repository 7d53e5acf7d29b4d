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
``label_tree``
    One probabilistic label tree over all labels (:mod:`labelwise.engine.label_tree`), not a
    model per label: for thousands of labels, where per-label cost grows with their count.
``auto``
    ``label_tree`` from ``AUTO_LABEL_TREE_LABELS`` labels on, ``binary_relevance`` below.

Every strategy ends in per-label decision thresholds chosen on held-out probabilities
(:mod:`labelwise.engine.thresholds`), optionally after per-label probability calibration.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import polars as pl
import scipy.sparse as sp

from labelwise.engine.calibration import LabelCalibrator
from labelwise.engine.callbacks import FitCallback
from labelwise.engine.data import FLOAT32_MAX, FeatureEncoder
from labelwise.engine.errors import ConfigError, DataError, ModelFormatError, NotFittedError
from labelwise.engine.executors import Executor, ThreadExecutor, n_workers
from labelwise.engine.forest import MergedForest
from labelwise.engine.label_model import LabelModel
from labelwise.engine.label_tree import (
    LabelTree,
    LabelTreeSettings,
    fit_label_tree,
    missing_columns,
)
from labelwise.engine.lgb_threads import THREAD_ALIASES, cores, one_thread
from labelwise.engine.linear import LinearHead, fit_linear
from labelwise.engine.metrics import (
    MULTICLASS_MESSAGE,
    check_multiclass,
    classification_metrics,
    most_frequent,
    per_label_table,
)
from labelwise.engine.params import Constraint, Interval, Options, Parameters, check_params
from labelwise.engine.per_label import (
    THREADED_PREDICT_ROWS,
    LabelJob,
    Rounds,
    predict_per_label,
    train_per_label,
)
from labelwise.engine.split import iterative_stratification, stratified_kfold
from labelwise.engine.text import TextSettings, hstack
from labelwise.engine.thresholds import ThresholdPolicy, apply_thresholds, fit_thresholds
from labelwise.engine.weights import Weighting

if TYPE_CHECKING:
    import lightgbm as lgb

STRATEGIES = ("binary_relevance", "stacking", "chain", "chain_ensemble", "label_tree", "auto")
# strategy="auto" fits a label tree from this many labels on, where it is several times faster
# than binary relevance at about its precision@k (benchmarks/RESULTS.md, "Label trees")
AUTO_LABEL_TREE_LABELS = 1000
# the strategies that model label dependencies with a second level of per-label boosters
DEPENDENCY_STRATEGIES = ("stacking", "chain", "chain_ensemble")
AUTO_CV_MAX_ROWS = 10_000
# one build of a merged forest at a time (a server may score its first requests in parallel)
_MERGE_LOCK = threading.Lock()
MAX_INT32 = 2**31 - 1  # LightGBM reads integer parameters as C ints
# LightGBM parameters with one entry per feature (or naming features): not dry-run checkable
PER_FEATURE = (
    "monotone_constraints",
    "interaction_constraints",
    "feature_contri",
    "forcedsplits_filename",
    "categorical_feature",
    "max_bin_by_feature",
    "cegb_penalty_feature_lazy",
    "cegb_penalty_feature_coupled",
    "forcedbins_filename",
)

# Presets (benchmarks/RESULTS.md measures them); `fast` trades accuracy for a quicker fit.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "fast": {
        "cv_folds": 3,
        "learning_rate": 0.25,
        "n_estimators": 300,
        "early_stopping_rounds": 8,
        "max_bin": 15,
        "num_leaves": 5,
    },
}
# removed presets, and what to do instead (benchmarks/RESULTS.md, "The `accurate` preset")
REMOVED_PRESETS = {"accurate": "labelwise tune -c <config> --budget 10m"}
# LightGBM Dataset parameters: frozen when the shared Dataset is binned
DATASET_KEYS = ("min_data_in_bin", "max_bin_by_feature", "bin_construct_sample_cnt")

Splits = list[tuple[np.ndarray, np.ndarray | None]]
Matrix = Any  # the model matrix: a float32 ndarray, or a scipy CSR matrix with text / sparse X


@dataclass(frozen=True)
class _Level:
    """One level's training data: the binned Dataset and the matrices it was built from."""

    base: lgb.Dataset  # constructed (binned)
    X: Matrix
    Y: np.ndarray


@dataclass(frozen=True)
class _Fit:
    """What one call of ``fit`` hands down to every training step."""

    executor: Executor
    callbacks: Sequence[FitCallback]
    rounds: Rounds


class LabelwiseClassifier(Parameters):
    """Multi-label classifier: one LightGBM model per label, with per-label thresholds.

    Parameters
    ----------
    strategy : {"binary_relevance", "stacking", "chain", "chain_ensemble", "label_tree", "auto"}
        How label dependencies are used, or (``label_tree``) one tree over all labels (see the
        module docstring).
    n_estimators : int
        Maximum boosting rounds per label; early stopping usually ends sooner.
    learning_rate, num_leaves, min_child_samples, feature_fraction, bagging_fraction,
    lambda_l2, max_bin :
        The LightGBM parameters that matter most; ``lgb_params`` passes any other (naming one
        of these there is an error: each setting has one place).
    extra_trees : bool
        Each split's threshold is drawn at random per feature (LightGBM's ``extra_trees``)
        instead of searched. The trees are weaker alone and less correlated, which early-stopped
        boosting on a few thousand rows turns into better held-out F1 on numeric features
        (benchmarks/RESULTS.md, "extra_trees"); on 0/1 features there is one threshold to draw,
        so it changes nothing there.
    early_stopping_rounds : int or None
        Patience of per-label early stopping on the validation rows.
    validation_fraction : float
        With ``cv_folds=None``: share of the rows held out (iterative stratification) for early
        stopping, thresholds and calibration when ``fit`` gets no ``eval_set``. 0 disables
        validation: fixed rounds (``min(n_estimators, 100)``), fixed thresholds.
    cv_folds : int, "auto" or None
        Cross-fitting: k models per label, each early-stopped on its held-out fold (iteratively
        stratified); thresholds come from the out-of-fold probabilities of every row and
        predictions average the k models. It gives better thresholds than one validation part
        where rows are few, at about 2.5 times the cost. ``None`` uses one validation part
        (``validation_fraction``) and ``refit``. ``"auto"`` (default): 5 folds up to
        ``AUTO_CV_MAX_ROWS`` rows, one validation part above.
    refit : bool
        After early stopping, retrain each label on all rows (validation included) with the
        number of rounds scaled to the larger data. Ignored with an explicit ``eval_set``.
    weighting : Weighting, {"none", "balanced", "sqrt", "effective"} or dict
        Per-label positive-class weight (:class:`labelwise.engine.weights.Weighting`; a string
        or ``{label: weight}`` is that scheme with the default cap and beta).
    threshold_policy : ThresholdPolicy or None
        How the per-label thresholds are chosen (:class:`ThresholdPolicy`; None: its defaults).
    calibration : {None, "isotonic", "sigmoid"}
        Per-label probability calibration fitted on the validation rows.
    chain_order, n_chains, n_folds :
        Chain order, number of chains of ``chain_ensemble``, folds for out-of-fold level-1
        probabilities of the dependency strategies.
    text_columns : "auto", list of str or None
        Columns of a frame ``X`` vectorised as text (:mod:`labelwise.engine.text`); ``"auto"``
        finds them (long, mostly distinct strings), None or ``[]``: none.
    text : TextSettings or None
        How text columns become tf-idf columns (None: :class:`TextSettings` defaults).
    linear_weight : float in [0, 1] or "auto"
        The linear head's share of each probability (:mod:`labelwise.engine.linear`): 0 trees
        only, 1 the linear head only (no trees trained). ``"auto"``: on sparse features (text
        columns, or a scipy sparse ``X``) the weight in ``BLEND_WEIGHTS`` whose blend scores the
        best held-out micro + macro-F1 (a head it gives no weight is not kept); 0 on dense ones.
    linear_C : float > 0
        Inverse L2 strength of the linear head's logistic regressions.
    label_tree : LabelTreeSettings or None
        How ``strategy="label_tree"`` builds its tree (None: the defaults).
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
    warnings_ : list[str]
        What looked suspicious in the training data (constant features, exclusive labels...).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "strategy": [Options(STRATEGIES)],
        "n_estimators": [Interval(int, 1, 1_000_000)],
        "learning_rate": [Interval(float, 0, None, closed="neither")],
        "num_leaves": [Interval(int, 2, 131_072)],
        "min_child_samples": [Interval(int, 0, MAX_INT32)],
        "feature_fraction": [Interval(float, 0, 1, closed="right")],
        "bagging_fraction": [Interval(float, 0, 1, closed="right")],
        "lambda_l2": [Interval(float, 0)],
        "max_bin": [Interval(int, 2, MAX_INT32)],
        "extra_trees": [bool],
        "lgb_params": [None, dict],
        "early_stopping_rounds": [None, Interval(int, 1, MAX_INT32)],
        "validation_fraction": [Interval(float, 0, 1, closed="left")],
        "cv_folds": [None, Options(("auto",)), Interval(int, 2, 1000)],
        "refit": [bool],
        "weighting": [Weighting, Options(("none", "balanced", "sqrt", "effective")), dict],
        "threshold_policy": [None, ThresholdPolicy],
        "calibration": [None, Options(("none", "isotonic", "sigmoid"))],
        "chain_order": [Options(("frequency", "random")), list, tuple],
        "n_chains": [Interval(int, 1, 1000)],
        "n_folds": [Interval(int, 2, 1000)],
        "text_columns": [None, Options(("auto",)), list, tuple],
        "text": [None, TextSettings],
        "linear_weight": [Options(("auto",)), Interval(float, 0, 1, closed="both")],
        "linear_C": [Interval(float, 0, None, closed="neither")],
        "label_tree": [None, LabelTreeSettings],
        "n_jobs": [None, Interval(int, -1, 4096)],
        "random_state": [Interval(int, 0, MAX_INT32)],
    }

    def __init__(
        self,
        strategy: str = "binary_relevance",
        *,
        n_estimators: int = 1000,
        learning_rate: float = 0.15,
        num_leaves: int = 7,
        min_child_samples: int = 10,
        feature_fraction: float = 0.8,
        bagging_fraction: float = 1.0,
        lambda_l2: float = 1.0,
        max_bin: int = 63,
        extra_trees: bool = True,
        lgb_params: dict[str, Any] | None = None,
        early_stopping_rounds: int | None = 20,
        validation_fraction: float = 0.2,
        cv_folds: int | str | None = "auto",
        refit: bool = True,
        weighting: Weighting | str | Mapping[str, float] = "none",
        threshold_policy: ThresholdPolicy | None = None,
        calibration: str | None = None,
        chain_order: str | Sequence[str] = "frequency",
        n_chains: int = 3,
        n_folds: int = 3,
        text_columns: str | Sequence[str] | None = "auto",
        text: TextSettings | None = None,
        linear_weight: float | str = "auto",
        linear_C: float = 4.0,
        label_tree: LabelTreeSettings | None = None,
        n_jobs: int = -1,
        random_state: int = 0,
    ) -> None:
        self.strategy = strategy
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.max_bin = max_bin
        self.extra_trees = extra_trees
        self.lgb_params = lgb_params
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.cv_folds = cv_folds
        self.refit = refit
        self.weighting = weighting
        self.threshold_policy = threshold_policy
        self.calibration = calibration
        self.chain_order = chain_order
        self.n_chains = n_chains
        self.n_folds = n_folds
        self.text_columns = text_columns
        self.text = text
        self.linear_weight = linear_weight
        self.linear_C = linear_C
        self.label_tree = label_tree
        self.n_jobs = n_jobs
        self.random_state = random_state

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> LabelwiseClassifier:
        """``default`` or ``fast`` (a fraction of the fit time, a little less accurate)."""
        if name in REMOVED_PRESETS:
            raise ConfigError(
                f"preset {name!r} was removed: it was not better than 'default' on the benchmark "
                f"datasets at several times the cost; search instead: {REMOVED_PRESETS[name]}",
                param="preset",
            )
        if name not in PRESETS:
            raise ConfigError(
                f"unknown preset {name!r}; choose one of {sorted(PRESETS)}", param="preset"
            )
        return cls(**{**PRESETS[name], **overrides})

    # ------------------------------------------------------------------ parameters
    def validate_params(self) -> None:
        """Check every parameter against ``_parameter_constraints`` (ConfigError naming it)."""
        check_params(self.get_params(), self._parameter_constraints)
        Weighting.coerce(self.weighting)
        overlap = sorted(set(self.lgb_params or {}) & set(self._parameter_constraints))
        if overlap:
            raise ConfigError(
                f"lgb_params sets {overlap}, which are parameters of their own (model.params "
                "in a config): set each once, there",
                param="lgb_params",
            )
        if self.strategy != "auto":  # auto is checked once it has chosen (fit)
            self._check_label_tree(self.strategy)
        threads = sorted(set(self.lgb_params or {}) & set(THREAD_ALIASES))
        if threads:
            raise ConfigError(
                f"lgb_params sets {threads}: each label's model trains on one thread and n_jobs "
                "of them at once (concurrent LightGBM calls must agree on it); set n_jobs",
                param="lgb_params",
            )

    def _check_label_tree(self, strategy: str, chosen: str = "") -> None:
        """The label tree is one model for all labels: per-label settings cannot apply.
        ``chosen``: why ``auto`` chose it, said first."""
        if strategy != "label_tree":
            if self.label_tree is not None and self.strategy != "auto":
                raise ConfigError(
                    f"label_tree settings are for strategy 'label_tree', not {strategy!r}",
                    param="label_tree",
                )
            return
        if Weighting.coerce(self.weighting).scheme != "none":
            raise ConfigError(
                f"{chosen}weighting does not apply to strategy 'label_tree' (its node models "
                "are shared by many labels); set it to 'none' or choose a per-label strategy",
                param="weighting",
            )
        if self.linear_weight != "auto":
            raise ConfigError(
                f"{chosen}linear_weight does not apply to strategy 'label_tree' (it has no "
                "per-label heads to blend); leave it at 'auto'",
                param="linear_weight",
            )
        if self.calibration not in (None, "none"):
            raise ConfigError(
                f"{chosen}calibration does not apply to strategy 'label_tree' (it leaves the "
                "probabilities below label_tree.min_proba unsearched, so there is no score "
                "to calibrate); set it to 'none' or choose a per-label strategy",
                param="calibration",
            )

    def _resolve_strategy(self, n_labels: int) -> str:
        """The strategy a fit uses: ``auto`` chooses by the label count."""
        if self.strategy != "auto":
            return self.strategy
        if n_labels < AUTO_LABEL_TREE_LABELS:
            return "binary_relevance"
        self._check_label_tree(
            "label_tree", f"strategy 'auto' chose 'label_tree' for {n_labels} labels: "
        )
        return "label_tree"

    def check_lgb_params(self) -> None:
        """Refuse LightGBM parameters LightGBM does not know or cannot use, before any real
        fit: unknown names (LightGBM itself only warns) and values, by one round on 8 rows.
        Without ``lgb_params`` there is nothing to try: every other setting has its constraint."""
        if not self.lgb_params:
            return
        import lightgbm as lgb
        from lightgbm.basic import _ConfigAliases

        known = {n for names in _ConfigAliases._get_all_param_aliases().values() for n in names}
        unknown = sorted(set(self.lgb_params or {}) - known)
        if unknown:
            raise ConfigError(
                f"lgb_params: {unknown} are not LightGBM parameters", param="lgb_params"
            )
        # settings shaped like the real features cannot be tried on two made-up columns
        names = {n for key in PER_FEATURE for n in _ConfigAliases.get(key)}
        params = {k: v for k, v in self._lgb_params().items() if k not in names}
        X = np.arange(16, dtype=np.float64).reshape(8, 2)
        try:
            dataset_params = {k: v for k, v in self._dataset_params().items() if k not in names}
            with one_thread():  # a fit may run in another thread (see lgb_threads)
                data = lgb.Dataset(X, np.arange(8) % 2, params=dataset_params | {"num_threads": 1})
                lgb.train(params | {"verbose": -1, "num_threads": 1}, data, num_boost_round=1)
        except lgb.basic.LightGBMError as exc:
            raise ConfigError(
                f"lgb_params: LightGBM refuses them ({exc})", param="lgb_params"
            ) from None

    @property
    def policy(self) -> ThresholdPolicy:
        """The threshold policy in force (the default one when none was given)."""
        return self.threshold_policy or ThresholdPolicy()

    def _lgb_params(self) -> dict[str, Any]:
        params = {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "extra_trees": self.extra_trees,
            "metric": "binary_logloss",
            "verbose": -1,
            "seed": self.random_state,
            "deterministic": True,
            "force_col_wise": True,
            "num_threads": 1,
            "feature_pre_filter": False,
        }
        if self.bagging_fraction < 1:
            params.update(bagging_fraction=self.bagging_fraction, bagging_freq=1)
        params.update(self.lgb_params or {})
        return params

    def _dataset_params(self) -> dict[str, Any]:
        params = {
            "max_bin": self.max_bin,
            "verbose": -1,
            "feature_pre_filter": False,
            "min_data_in_bin": 3,
        }
        params.update({k: v for k, v in (self.lgb_params or {}).items() if k in DATASET_KEYS})
        return params

    def _dataset(self, X: Matrix, categorical: list[int]) -> lgb.Dataset:
        """The one binned LightGBM Dataset every per-label model of a level trains on."""
        import lightgbm as lgb

        with cores(n_workers(self.n_jobs)) as threads:
            return lgb.Dataset(
                X,
                params=self._dataset_params() | {"num_threads": threads},
                categorical_feature=categorical or "auto",
                free_raw_data=False,
            ).construct()

    # ------------------------------------------------------------------ inputs
    def _to_matrix(self, X: Any, fitting: bool, source: str = "X") -> Matrix:
        if isinstance(X, pl.DataFrame):
            if fitting:
                self.encoder_ = FeatureEncoder().fit(
                    X,
                    X.columns,
                    source=source,
                    text_columns=self.text_columns,
                    text_settings=self.text,
                )
                return self.encoder_.fit_encode(X, source=source)
            return self.encoder_.encode(X, source=source)
        if hasattr(X, "to_numpy") and hasattr(X, "columns"):  # pandas
            fast = None if fitting else self._numeric_pandas(X)
            if fast is not None:
                return fast
            return self._to_matrix(_from_pandas(X, source), fitting, source)
        if _is_sparse(X):
            return self._sparse_matrix(X, fitting, source)
        try:
            wide = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{source} must be a numeric 2-D array, a scipy sparse matrix or a table "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if wide.ndim != 2:
            raise DataError(f"{source} must be 2-D (rows x features), got shape {wide.shape}")
        for what, bad_cells in (
            ("infinite values", np.isinf(wide)),
            ("values beyond the float32 range", np.isfinite(wide) & (np.abs(wide) > FLOAT32_MAX)),
        ):
            if bad_cells.any():
                bad = np.flatnonzero(bad_cells.any(axis=0))[:5].tolist()
                raise DataError(f"{source} holds {what} in column(s) {bad}")
        return self._check_width(wide.astype(np.float32), fitting, source)

    def _numeric_pandas(self, X: Any) -> np.ndarray | None:
        """A pandas frame's features as one float32 matrix without a per-column conversion,
        when the model's features are all numeric and the frame's are plain finite numbers
        (what a served request is); None otherwise: the table path then converts it, naming
        any column that is missing or wrong. Why: a per-column conversion costs more than the
        trees for one row (benchmarks/RESULTS.md, "Serving latency")."""
        enc = self.encoder_
        if enc.categories or enc.text:
            return None
        idx = X.columns.get_indexer(enc.features)
        A = X.to_numpy()
        if (idx < 0).any() or A.dtype.kind not in "biuf":
            return None
        wide = A[:, idx].astype(np.float64)
        with np.errstate(invalid="ignore"):
            if np.isinf(wide).any() or (np.abs(wide) > FLOAT32_MAX).any():
                return None
        return wide.astype(np.float32)

    def _sparse_matrix(self, X: Any, fitting: bool, source: str) -> Matrix:
        """A scipy sparse matrix as float32 CSR, refused with NaN, infinite or too-large values
        or a non-numeric dtype, naming the column."""
        if X.dtype.kind not in "biuf":
            raise DataError(f"{source}: a sparse matrix of dtype {X.dtype}; it must be numeric")
        A = sp.csr_matrix(X, dtype=np.float64)
        A.sum_duplicates()
        for what, bad in (
            ("NaN", np.isnan(A.data)),
            ("infinite values", np.isinf(A.data)),
            (
                "values beyond the float32 range",
                np.isfinite(A.data) & (np.abs(A.data) > FLOAT32_MAX),
            ),
        ):
            if bad.any():
                cols = np.unique(A.indices[bad])[:5].tolist()
                raise DataError(
                    f"{source} holds {what} in column(s) {cols} of a sparse matrix; a sparse "
                    "matrix stores missing as absent, so drop or fill them"
                )
        return self._check_width(A.astype(np.float32), fitting, source)

    def _check_width(self, A: Matrix, fitting: bool, source: str) -> Matrix:
        if fitting:
            self.encoder_ = FeatureEncoder(features=[f"f{i}" for i in range(A.shape[1])])
        elif A.shape[1] != self.encoder_.n_columns:
            raise DataError(
                f"{source} has {A.shape[1]} columns, the model expects {self.encoder_.n_columns}"
            )
        return A

    @staticmethod
    def _to_labels(Y: Any, n_rows: int, source: str = "Y") -> tuple[Any, list[str]]:
        """``Y`` as uint8, dense, or CSR when it is scipy sparse (at 100,000 labels the dense
        matrix would not fit in memory), with its label names."""
        if sp.issparse(Y):
            return _sparse_labels(Y, n_rows, source), [f"label_{j}" for j in range(Y.shape[1])]
        names = list(Y.columns) if isinstance(Y, pl.DataFrame) else None
        A = np.asarray(Y.to_numpy() if isinstance(Y, pl.DataFrame) else Y)
        if A.ndim != 2:
            raise DataError(f"{source} must be 2-D (rows x labels), got shape {A.shape}")
        if A.shape[0] != n_rows:
            raise DataError(f"{source} has {A.shape[0]} rows, X has {n_rows}")
        if not _zeros_and_ones(A):
            raise DataError(f"{source} must hold only 0 and 1")
        return A.astype(np.uint8, copy=False), names or [f"label_{j}" for j in range(A.shape[1])]

    def _prepare(self, X: Any, Y: Any, labels: Sequence[str] | None) -> tuple[Matrix, Any]:
        """Matrices of the training data; ``labels_`` and ``warnings_`` set."""
        Xa = self._to_matrix(X, fitting=True)
        Ya, names = self._to_labels(Y, Xa.shape[0])
        if Xa.shape[0] < 2:
            raise DataError("need at least 2 rows to fit")
        self.labels_ = list(labels) if labels is not None else names
        if len(self.labels_) != Ya.shape[1]:
            raise DataError(f"{len(self.labels_)} label names for {Ya.shape[1]} label columns")
        # what a report should show besides Python's warnings (a worker's logging may eat them)
        self.warnings_ = list(self.encoder_.warnings_)
        if check_multiclass(Ya):
            self.warnings_.append(MULTICLASS_MESSAGE)
        if Ya.shape[1] == 1:
            msg = (
                "one label only: this is binary classification; labelwise handles it, "
                "but thresholds and metrics are per label anyway"
            )
            self.warnings_.append(msg)
            warnings.warn(msg, UserWarning, stacklevel=3)
        return Xa, Ya

    def _plan(
        self, Xa: Matrix, Ya: Any, eval_set: tuple[Any, Any] | None
    ) -> tuple[Matrix, Any, Splits, bool]:
        """(X, Y, the (train rows, held-out rows) of each member, refit?): an explicit
        ``eval_set`` (appended to the rows), k cross-fitting folds, or one validation part."""
        n_folds = self.cv_folds
        if n_folds == "auto":
            n_folds = 5 if Xa.shape[0] <= AUTO_CV_MAX_ROWS else None
        self.cv_folds_used_ = n_folds if eval_set is None else None
        if eval_set is not None:
            Xv = self._to_matrix(eval_set[0], fitting=False, source="eval_set X")
            Yv, _ = self._to_labels(eval_set[1], Xv.shape[0], source="eval_set Y")
            n = Xa.shape[0]
            Xa, Ya = _vstack(Xa, Xv), _vstack(Ya, Yv)
            return Xa, Ya, [(np.arange(n), np.arange(n, Xa.shape[0]))], False
        if self.cv_folds_used_:
            folds: Splits = list(stratified_kfold(Ya, int(self.cv_folds_used_), self.random_state))
            return Xa, Ya, folds, False
        if self.validation_fraction > 0:
            fold = iterative_stratification(
                Ya, [1 - self.validation_fraction, self.validation_fraction], self.random_state
            )
            return Xa, Ya, [(np.flatnonzero(fold == 0), np.flatnonzero(fold == 1))], self.refit
        return Xa, Ya, [(np.arange(Xa.shape[0]), None)], self.refit

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: Any,
        Y: Any,
        *,
        eval_set: tuple[Any, Any] | None = None,
        labels: Sequence[str] | None = None,
        categorical_features: Sequence[int] | None = None,
        callbacks: Sequence[FitCallback] = (),
        executor: Executor | None = None,
    ) -> LabelwiseClassifier:
        """Fit on features ``X`` (polars/pandas frame or array) and 0/1 labels ``Y`` (n x L:
        an array, a frame or a scipy sparse matrix).

        ``eval_set=(X_valid, Y_valid)`` replaces the internal validation split. ``callbacks``
        (:mod:`labelwise.engine.callbacks`, called in order) hear of every finished per-label
        model: :class:`~labelwise.engine.callbacks.Progress` reports it,
        :class:`~labelwise.engine.callbacks.Checkpoint` keeps it on disk so a fit killed
        half-way and started again with the same data and parameters reuses it. ``executor``
        (:mod:`labelwise.engine.executors`) runs the per-label work: threads by default
        (``n_jobs``), Prefect tasks or a Dask cluster in the pipeline; the models are the same.
        """
        self.validate_params()
        self.__dict__.pop("_merged_forests", None)  # the levels a refit makes merge anew
        Xa, Ya = self._prepare(X, Y, labels)
        Xa, Ya, splits, refit = self._plan(Xa, Ya, eval_set)
        self.strategy_ = self._resolve_strategy(Ya.shape[1])
        if sp.issparse(Ya) and self.strategy_ != "label_tree":  # a model per label: columns
            Ya = Ya.toarray()
        self.categorical_features_ = (
            list(categorical_features)
            if categorical_features is not None
            else self.encoder_.categorical_indices
        )
        self.label_weights_ = self._label_weights(Ya, splits)
        self.orders_ = self._chain_orders(Ya) if self.strategy_ in DEPENDENCY_STRATEGIES else []
        tree = self.strategy_ == "label_tree"
        weight = 0.0 if tree else self._resolve_linear_weight(Xa)
        trees = (weight is None or weight < 1) and not tree
        ctx = _Fit(
            executor or ThreadExecutor(n_workers(self.n_jobs)),
            list(callbacks),
            Rounds(
                self.n_estimators,
                self.early_stopping_rounds,
                refit,
                fallback=min(self.n_estimators, 100),
            ),
        )
        for cb in ctx.callbacks:
            cb.begin(self._planned(trees, Ya.shape[1], splits), self.labels_)
        valid_rows, P_valid = self._fit_heads(ctx, Xa, Ya, splits, refit, weight)
        self.best_iterations_ = _mean_rounds(self.level1_, Ya.shape[1])
        floor = 0.0 if self.tree_ is None else self.tree_.min_proba
        _tell_held_out(ctx.callbacks, Ya, valid_rows, P_valid, splits, floor)
        self._fit_thresholds(Ya, valid_rows, P_valid)
        self.n_features_in_ = len(self.encoder_.features)
        return self

    def _label_weights(self, Ya: Any, splits: Splits) -> np.ndarray:
        """Each label's positive-class weight from the rows some member trains on, read
        without a dense copy of them (gigabytes at 20,000 labels)."""
        train_rows = np.unique(np.concatenate([tr for tr, _ in splits]))
        Y_train = Ya if len(train_rows) == Ya.shape[0] else sp.csr_matrix(Ya)[train_rows]
        return Weighting.coerce(self.weighting).weights(Y_train, self.labels_)

    def _planned(self, trees: bool, n_labels: int, splits: Splits) -> int:
        """How many per-label boosters the fit trains (what the callbacks count)."""
        oof = self.n_folds if self._needs_oof(splits) else 0
        return trees * n_labels * (len(splits) * (1 + len(self.orders_)) + oof)

    def _fit_heads(
        self,
        ctx: _Fit,
        Xa: Matrix,
        Ya: np.ndarray,
        splits: Splits,
        refit: bool,
        weight: float | None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The trees (all levels) and the linear head as ``weight`` asks (None: both, then
        the blend weight the held-out rows prefer; a head given no weight is dropped);
        returns the held-out rows and their blended probabilities."""
        self.level1_: list[list[LabelModel]] = []
        self.level2_: list[list[LabelModel]] = []
        self.linear_: LinearHead | None = None
        self.tree_: LabelTree | None = None
        valid_rows, P_trees, P_linear = _held_out_rows(splits), None, None
        if self.strategy_ == "label_tree":
            self.tree_columns_, self.linear_weight_ = None, 0.0
            return valid_rows, self._fit_label_tree(Xa, Ya, splits, refit)
        trees = weight is None or weight < 1
        self.tree_columns_ = self._tree_columns(Xa) if trees else None
        if trees:
            Xt = self._tree_matrix(Xa)
            level1 = _Level(self._dataset(Xt, self._tree_categorical()), Xt, Ya)
            self.level1_, valid_rows, P_trees = self._fit_members(ctx, level1, splits, "L1")
            if self.orders_:
                P_trees = self._fit_level2(ctx, level1, splits, valid_rows, P_trees)
        if weight is None or weight > 0:
            P_linear = self._fit_linear(Xa, Ya, splits, refit)
        if weight is None:
            weight = _best_weight(Ya, valid_rows, P_trees, P_linear, self.policy)
            if weight == 0:
                self.linear_ = None
            elif weight == 1:
                self.level1_, self.level2_, self.tree_columns_ = [], [], None
        self.linear_weight_ = weight
        return valid_rows, _blend(P_trees, P_linear, weight)

    def _resolve_linear_weight(self, Xa: Matrix) -> float | None:
        """The linear head's weight; None: to be chosen on the held-out rows ("auto" on sparse
        features), 0 ("auto" on dense features: the trees' ground)."""
        if self.linear_weight == "auto":
            return None if _is_sparse(Xa) else 0.0
        return float(self.linear_weight)

    def _tree_columns(self, Xa: Matrix) -> np.ndarray | None:
        """Columns of a sparse matrix the trees can split: a column with fewer stored values
        than a leaf's minimum rows cannot put them on a side of their own, so dropping it
        changes no tree, and most terms of a text table are that rare.
        Categorical columns are kept. None for a dense matrix: the trees see every column."""
        if not _is_sparse(Xa):
            return None
        aliases = ("min_data_in_leaf", "min_data_per_leaf", "min_data", "min_samples_leaf")
        given = [v for k, v in (self.lgb_params or {}).items() if k in aliases]
        min_leaf = max(1, min([self.min_child_samples, *given]))
        stored = np.bincount(Xa.indices, minlength=Xa.shape[1])
        keep = np.zeros(Xa.shape[1], dtype=bool)
        block = self.encoder_.tree_block()
        keep[block] = stored[block] >= min_leaf
        keep[self.categorical_features_] = True
        return np.flatnonzero(keep)

    def _tree_categorical(self) -> list[int]:
        """The categorical columns' positions among the trees' columns."""
        if self.tree_columns_ is None:
            return list(self.categorical_features_)
        return np.searchsorted(self.tree_columns_, self.categorical_features_).tolist()

    def _linear_matrix(self, Xa: Matrix) -> Matrix:
        """The linear head's columns: the tf-idf block with text columns, else all."""
        block = self.encoder_.linear_block()
        return Xa if len(block) == Xa.shape[1] else Xa[:, block]

    def _tree_matrix(self, Xa: Matrix) -> Matrix:
        return Xa if self.tree_columns_ is None else Xa[:, self.tree_columns_]

    def _fit_linear(
        self, Xa: Matrix, Ya: np.ndarray, splits: Splits, refit: bool
    ) -> np.ndarray | None:
        """The linear head: held-out probabilities from a fit on each split's training rows
        (stacked in the trees' order), then the kept head, fitted on every row unless the
        held-out rows are an ``eval_set`` (as the trees)."""

        XL = self._linear_matrix(Xa)
        has_nan = np.isnan(XL.data if _is_sparse(XL) else XL).any()
        if has_nan:
            raise DataError(
                "X: the linear head (linear_weight > 0) cannot read missing values; fill them "
                "or keep the linear head for text and sparse features (linear_weight: auto)"
            )

        def fit(rows: np.ndarray) -> LinearHead:
            return fit_linear(XL, Ya, rows, self.label_weights_, self.linear_C)

        held = [(tr, va) for tr, va in splits if va is not None]
        P = [fit(tr).predict_proba(XL[va]) for tr, va in held]
        everything = refit or len(splits) > 1 or not held
        self.linear_ = fit(np.arange(Ya.shape[0]) if everything else splits[0][0])
        return np.vstack(P) if P else None

    def _fit_label_tree(
        self, Xa: Matrix, Ya: np.ndarray, splits: Splits, refit: bool
    ) -> np.ndarray | None:
        """The label tree as the linear head is fitted: held-out probabilities from a tree on
        each split's training rows, then the kept tree on every row (unless the held-out rows
        are an ``eval_set``)."""
        XL = self._linear_matrix(Xa)
        missing = missing_columns(XL)
        if missing:
            block, all_names = self.encoder_.linear_block(), self.encoder_.column_names()
            names = [all_names[block[c]] for c in missing[:5]]
            self.warnings_.append(
                f"label_tree: missing values read as 0 in {len(missing)} column(s) {names}; "
                "fill them where 0 means something else"
            )
        settings = self.label_tree or LabelTreeSettings()
        threads = n_workers(self.n_jobs)
        Ys = sp.csr_matrix(Ya)  # each fit's label lists, read once

        def fit(rows: np.ndarray) -> LabelTree:
            return fit_label_tree(XL, Ys, rows, settings, self.random_state, threads)

        held = [(tr, va) for tr, va in splits if va is not None]
        # sparse: the held-out rows' searched labels (a dense matrix is rows x labels)
        P = [fit(tr).predict_proba(XL[va], sparse=True) for tr, va in held]
        everything = refit or len(splits) > 1 or not held
        self.tree_ = fit(np.arange(Ya.shape[0]) if everything else splits[0][0])
        return sp.vstack(P, format="csr") if P else None

    def _needs_oof(self, splits: Splits) -> bool:
        """Dependency strategies on one validation part need out-of-fold level-1 inputs."""
        return bool(self.orders_) and splits[0][1] is not None and not self.cv_folds_used_

    def _fit_members(
        self,
        ctx: _Fit,
        level: _Level,
        splits: Splits,
        step: str,
        masks: list[list[float]] | None = None,
    ) -> tuple[list[list[LabelModel]], np.ndarray | None, np.ndarray | None]:
        """One member (L models) per split; validation probabilities stacked over the splits."""
        members, rows, probs = [], [], []
        for i, (tr, va) in enumerate(splits):
            models, P = self._fit_level(ctx, level, tr, va, f"{step}m{i}", masks)
            members.append(models)
            if va is not None and P is not None:
                rows.append(va)
                probs.append(P)
        if not rows:
            return members, None, None
        return members, np.concatenate(rows), np.vstack(probs)

    def _fit_level(
        self,
        ctx: _Fit,
        level: _Level,
        train_idx: np.ndarray,
        valid_idx: np.ndarray | None,
        step: str,
        masks: list[list[float]] | None = None,
        rounds: Sequence[int] | None = None,
    ) -> tuple[list[LabelModel], np.ndarray | None]:
        base_params = self._lgb_params()
        jobs = []
        for j in range(level.Y.shape[1]):
            params = dict(base_params)
            if self.label_weights_[j] != 1.0:
                params["scale_pos_weight"] = float(self.label_weights_[j])
            if masks is not None:
                params["feature_contri"] = masks[j]
            jobs.append(LabelJob(j, params, None if rounds is None else int(rounds[j])))
        models, P = train_per_label(
            level.base,
            level.Y,
            level.X,
            train_idx,
            valid_idx,
            jobs,
            ctx.rounds,
            step=step,
            executor=ctx.executor,
            callbacks=ctx.callbacks,
        )
        return [models[j] for j in range(level.Y.shape[1])], P

    def _fit_level2(
        self,
        ctx: _Fit,
        level1: _Level,
        splits: Splits,
        valid_rows: np.ndarray | None,
        P_valid: np.ndarray | None,
    ) -> np.ndarray | None:
        """Second-level models on the features plus first-level probabilities, one member per
        chain order; returns their averaged held-out probabilities."""
        Xa, Ya = level1.X, level1.Y
        if self.cv_folds_used_:  # the cross-fitted first level is already out-of-fold
            Z = np.zeros(Ya.shape)
            Z[valid_rows] = P_valid
        elif self._needs_oof(splits):
            Z = self._oof_level1(ctx, level1)
        else:  # no validation rows at all: first-level fits on all rows stand in
            Z = _mean_proba(self.level1_, Xa, n_workers(self.n_jobs))
        X2 = _hstack(Xa, Z)
        level2 = _Level(self._dataset(X2, self._tree_categorical()), X2, Ya)
        P_sum = None
        for c, order in enumerate(self.orders_):
            masks = self._masks(order, Xa.shape[1], Ya.shape[1])
            members, _, P = self._fit_members(ctx, level2, splits, f"L2c{c}", masks)
            self.level2_.extend(members)
            if P is not None:
                P_sum = P if P_sum is None else P_sum + P
        return None if P_sum is None else P_sum / len(self.orders_)

    def _oof_level1(self, ctx: _Fit, level1: _Level) -> np.ndarray:
        """Out-of-fold first-level probabilities for every row (n x L), with the rounds early
        stopping chose for the first level."""
        Xa, Ya = level1.X, level1.Y
        Z = np.zeros(Ya.shape, dtype=np.float64)
        rounds = [max(1, m.best_iteration) for m in self.level1_[0]]
        no_refit = _Fit(
            ctx.executor,
            ctx.callbacks,
            Rounds(ctx.rounds.num_boost_round, None, False, ctx.rounds.fallback),
        )
        for f, (tr, te) in enumerate(stratified_kfold(Ya, self.n_folds, self.random_state)):
            models, _ = self._fit_level(no_refit, level1, tr, None, f"OOFf{f}", rounds=rounds)
            Z[te] = predict_per_label(models, Xa[te], n_workers(self.n_jobs))
        return Z

    def _masks(self, order: list[int], n_features: int, n_labels: int) -> list[list[float]]:
        """LightGBM ``feature_contri`` per label: features always, label columns as allowed."""
        if self.strategy_ == "stacking":
            return [[1.0] * (n_features + n_labels)] * n_labels
        position = {lab: i for i, lab in enumerate(order)}
        return [
            [1.0] * n_features
            + [1.0 if position[k] < position[j] else 0.0 for k in range(n_labels)]
            for j in range(n_labels)
        ]

    def _chain_orders(self, Ya: np.ndarray) -> list[list[int]]:
        n_labels = Ya.shape[1]
        rng = np.random.default_rng(self.random_state)
        if self.strategy_ == "chain_ensemble":
            return [rng.permutation(n_labels).tolist() for _ in range(self.n_chains)]
        if self.strategy_ == "stacking":
            return [list(range(n_labels))]
        if self.chain_order == "frequency":
            return [most_frequent(Ya).tolist()]
        if self.chain_order == "random":
            return [rng.permutation(n_labels).tolist()]
        unknown = sorted(set(self.chain_order) - set(self.labels_))
        if unknown or len(self.chain_order) != n_labels:
            raise ConfigError(
                f"chain_order must list every label once (unknown: {unknown})", param="chain_order"
            )
        return [[self.labels_.index(lab) for lab in self.chain_order]]

    def _fit_thresholds(
        self, Ya: np.ndarray, valid_idx: np.ndarray | None, P_valid: np.ndarray | None
    ) -> None:
        """Calibrators and thresholds from held-out rows (fixed thresholds without any)."""
        policy = self.policy
        self.calibrators_: list[LabelCalibrator] | None = None
        if valid_idx is None or P_valid is None or len(valid_idx) == 0:
            self.thresholds_ = np.full(Ya.shape[1], policy.fixed)
            self.validation_metrics_: dict[str, float] = {}
            self.validation_per_label_: list[dict[str, Any]] = []
            return
        Yv = Ya[valid_idx]
        if self.calibration not in (None, "none"):
            self.calibrators_ = [
                LabelCalibrator.fit(Yv[:, j], P_valid[:, j], self.calibration)
                for j in range(Ya.shape[1])
            ]
            P_valid = self._calibrate(P_valid)
        self.thresholds_ = fit_thresholds(Yv, P_valid, policy)
        if self.tree_ is not None:  # below min_proba the tree says nothing: a 0 is not a score
            self.thresholds_ = np.maximum(self.thresholds_, self.tree_.min_proba)
        pred = self.predict_from_proba(P_valid)
        self.validation_metrics_ = classification_metrics(Yv, pred)
        self.validation_per_label_ = per_label_table(Yv, pred, None, self.labels_)

    def _calibrate(self, P: np.ndarray) -> np.ndarray:
        if not self.calibrators_:
            return P
        return np.column_stack([c.transform(P[:, j]) for j, c in enumerate(self.calibrators_)])

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise NotFittedError(
                "this LabelwiseClassifier is not fitted yet: call fit() or load a saved model"
            )

    def predict_proba(self, X: Any, *, sparse: bool = False) -> Any:
        """Probability of each label (n x L, float64), each label independently.

        ``sparse=True``: a CSR matrix. A label tree's leaves out the labels it did not search
        (below ``label_tree.min_proba``, which read as 0): at thousands of labels that is what
        fits in memory; any other model's is its dense matrix converted."""
        self._check_fitted()
        Xa = self._to_matrix(X, fitting=False)
        workers = n_workers(self.n_jobs)
        if self.tree_ is not None and not self.calibrators_:  # see _check_label_tree
            return self.tree_.predict_proba(self._linear_matrix(Xa), sparse=sparse)
        P = self._dense_proba(Xa, workers)
        return sp.csr_matrix(P) if sparse else P

    def _dense_proba(self, Xa: Matrix, workers: int) -> np.ndarray:
        """Every head's probabilities, blended and calibrated."""
        if self.tree_ is not None:  # a tree saved calibrated, before that was refused
            return self._calibrate(self.tree_.predict_proba(self._linear_matrix(Xa)))
        P = None
        if self.level1_:
            Xt = self._tree_matrix(Xa)
            P = self._level_proba(self.level1_, Xt, workers)
            if self.level2_:
                P = self._level_proba(self.level2_, _hstack(Xt, P), workers)
        if self.linear_ is not None:
            P = _blend(P, self.linear_.predict_proba(self._linear_matrix(Xa)), self.linear_weight_)
        assert P is not None
        return self._calibrate(P)

    def _level_proba(self, members: list[list[LabelModel]], X: Matrix, workers: int) -> np.ndarray:
        """A level's mean probabilities: a small batch (a served request) through the level's
        merged forest, a few LightGBM calls instead of one per booster (built on first use);
        a large batch label by label on ``workers`` threads, where the trees, not the calls,
        are the cost, unless the forest is built (a server's, see :meth:`warm_up`) and has
        threads to split the rows over: then LightGBM splits them."""
        small = X.shape[0] < THREADED_PREDICT_ROWS
        if small or (workers > 1 and self._merged(members, build=False) is not None):
            forest = self._merged(members)
            if forest is not None:
                return forest.predict_proba(X, num_threads=1 if small else workers)
        return _mean_proba(members, X, workers)

    def _merged(self, members: list[list[LabelModel]], build: bool = True) -> MergedForest | None:
        """The merged forest of a level's members, built on first use unless not ``build``
        (None: not built, or boosters LightGBM cannot merge, scored one by one)."""
        with _MERGE_LOCK:  # fit empties the cache: a level's list is the fitted one
            cache: dict[int, MergedForest | None] = self.__dict__.setdefault("_merged_forests", {})
            if id(members) not in cache:
                if not build:
                    return None
                try:
                    cache[id(members)] = MergedForest(members)
                except ValueError:
                    cache[id(members)] = None
            return cache[id(members)]

    def warm_up(self) -> LabelwiseClassifier:
        """Build what scoring a small batch uses (the merged forests) now, not on the first
        request: a server calls this once after loading."""
        self._check_fitted()
        for members in (self.level1_, self.level2_):
            if members:
                self._merged(members)
        return self

    def predict_from_proba(self, P: Any) -> Any:
        """0/1 label matrix (uint8) of probabilities ``P`` under the fitted thresholds (CSR
        for a sparse ``P``)."""
        self._check_fitted()
        return apply_thresholds(P, self.thresholds_, self.policy.at_least_one)

    def predict(self, X: Any, *, sparse: bool = False) -> Any:
        """0/1 label matrix (n x L, uint8) using the calibrated per-label thresholds (CSR with
        ``sparse=True``, see :meth:`predict_proba`)."""
        return self.predict_from_proba(self.predict_proba(X, sparse=sparse))

    @property
    def sparse_proba(self) -> bool:
        """Whether this model's probabilities are best kept sparse (a label tree's: most of
        its labels are unsearched zeros)."""
        self._check_fitted()
        return self.tree_ is not None

    def feature_importance(self) -> dict[str, float]:
        """Each feature's share of the total split gain over every per-label booster (sums to
        1; all zeros when every label got a constant model)."""
        self._check_fitted()
        cols = self.tree_columns_
        n = self.encoder_.n_columns if cols is None else len(cols)
        seen = np.zeros(n)
        for member in [*self.level1_, *self.level2_]:
            for m in member:
                if m.booster is not None:  # chain/stacking boosters see labels after features
                    seen += m.booster.feature_importance("gain")[:n]
        columns = seen if cols is None else np.zeros(self.encoder_.n_columns)
        if cols is not None:
            columns[cols] = seen
        # a text column's share is the sum of its terms'
        gain = np.bincount(
            self.encoder_.column_owners(), weights=columns, minlength=len(self.encoder_.features)
        )
        total = gain.sum()
        shares = gain / total if total > 0 else gain
        return dict(zip(self.encoder_.features, map(float, shares), strict=True))

    # ------------------------------------------------------------------ persistence
    def to_manifest(self, write: Callable[[str, str | bytes], str]) -> dict[str, Any]:
        """The fitted model as JSON-able data; each booster goes out as LightGBM text through
        ``write(relative path, text) -> sha256`` (see :mod:`labelwise.engine.persistence`)."""
        self._check_fitted()

        def entry(model: LabelModel, name: str) -> dict[str, Any]:
            if model.booster is None:
                return {"constant": model.constant}
            rel = f"boosters/{name}.txt"
            return {
                "file": rel,
                "sha256": write(rel, model.to_text()),
                "best_iteration": int(model.best_iteration),
            }

        params = self.get_params()
        params["threshold_policy"] = asdict(self.policy)
        params["weighting"] = asdict(Weighting.coerce(self.weighting))
        params["text"] = asdict(self.text or TextSettings())
        params["label_tree"] = None if self.label_tree is None else asdict(self.label_tree)
        tree = None
        if self.tree_ is not None:
            tree = {
                name: {"file": f"label_tree/{name}", "sha256": write(f"label_tree/{name}", data)}
                for name, data in self.tree_.files().items()
            }
        linear = None
        if self.linear_ is not None:
            linear = {
                name: {"file": f"linear/{name}", "sha256": write(f"linear/{name}", data)}
                for name, data in self.linear_.files().items()
            }
        return {
            "strategy": self.strategy_,  # as fitted (what "auto" chose)
            "labels": list(self.labels_),
            "encoder": self.encoder_.to_dict(write),
            "linear_weight": self.linear_weight_,
            "tree_columns": None if self.tree_columns_ is None else self.tree_columns_.tolist(),
            "linear": linear,
            "label_tree": tree,
            "categorical_features": list(self.categorical_features_),
            "thresholds": [float(t) for t in self.thresholds_],
            "label_weights": [float(w) for w in self.label_weights_],
            "calibrators": (
                [c.to_dict() for c in self.calibrators_] if self.calibrators_ else None
            ),
            "params": params,
            "orders": self.orders_,
            # members: one list of per-label models per fold / chain; predictions average them
            "level1": [
                [entry(m, f"L1_m{i}_{j:04d}") for j, m in enumerate(ms)]
                for i, ms in enumerate(self.level1_)
            ],
            "level2": [
                [entry(m, f"L2_m{i}_{j:04d}") for j, m in enumerate(ms)]
                for i, ms in enumerate(self.level2_)
            ],
        }

    @classmethod
    def from_manifest(
        cls, m: dict[str, Any], read: Callable[[dict[str, Any]], bytes], source: str = "manifest"
    ) -> LabelwiseClassifier:
        """Rebuild a fitted model from :meth:`to_manifest`'s data; ``read(entry)`` returns a
        file entry's verified bytes (LightGBM text, a vocabulary, linear weights)."""
        import lightgbm as lgb

        try:
            params = dict(m["params"])
            # models written before ``shrink_to`` existed shrank toward the global cut
            policy = {"shrink_to": "global"} | params["threshold_policy"]
            if "extra_trees" not in params:  # ... and searched split thresholds unless told
                rest = dict(params.get("lgb_params") or {})
                params["extra_trees"] = bool(rest.pop("extra_trees", False))
                params["lgb_params"] = rest or None
            params["threshold_policy"] = ThresholdPolicy(**policy)
            params["weighting"] = Weighting(**params["weighting"])
            params["text"] = TextSettings(**params["text"]) if params.get("text") else None
            tree_settings = params.get("label_tree")
            params["label_tree"] = LabelTreeSettings(**tree_settings) if tree_settings else None
            clf = cls(**params)
        except (TypeError, KeyError, ValueError) as exc:  # ConfigError is a ValueError
            raise ModelFormatError(f"{source}: invalid parameters ({exc})") from exc

        def model(e: dict[str, Any]) -> LabelModel:
            if "constant" in e:
                return LabelModel(None, float(e["constant"]), 0)
            booster = lgb.Booster(model_str=read(e).decode())
            return LabelModel(booster, None, int(e.get("best_iteration", 0)))

        try:
            clf.encoder_ = FeatureEncoder.from_dict(m["encoder"], read, source)
            linear = m.get("linear")
            clf.linear_ = (
                LinearHead.from_files(lambda name: read(linear[name]), source) if linear else None
            )
            clf.linear_weight_ = float(m.get("linear_weight", 0.0))
            tree = m.get("label_tree")
            clf.tree_ = (
                LabelTree.from_files(
                    lambda name: read(tree[name]),
                    len(m["labels"]),
                    clf.label_tree or LabelTreeSettings(),
                    n_workers(clf.n_jobs),
                    source,
                )
                if tree
                else None
            )
            cols = m.get("tree_columns")
            clf.tree_columns_ = None if cols is None else np.asarray(cols, dtype=np.int64)
            return cls._restore(clf, m, model)
        except ModelFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, lgb.basic.LightGBMError) as exc:
            raise ModelFormatError(
                f"{source}: malformed manifest ({type(exc).__name__}: {exc}); re-export the model"
            ) from None

    @staticmethod
    def _restore(
        clf: LabelwiseClassifier, m: dict[str, Any], model: Callable[[dict[str, Any]], LabelModel]
    ) -> LabelwiseClassifier:
        clf.labels_ = list(m["labels"])
        clf.categorical_features_ = list(m.get("categorical_features", []))
        clf.thresholds_ = np.asarray(m["thresholds"], dtype=np.float64)
        clf.label_weights_ = np.asarray(m.get("label_weights", [1.0] * len(clf.labels_)))
        clf.calibrators_ = (
            [LabelCalibrator.from_dict(c) for c in m["calibrators"]]
            if m.get("calibrators")
            else None
        )
        clf.strategy_ = str(m["strategy"])
        clf.orders_ = [list(o) for o in m.get("orders", [])]
        clf.level1_ = [[model(e) for e in ms] for ms in m["level1"]]
        clf.level2_ = [[model(e) for e in ms] for ms in m["level2"]]
        clf.best_iterations_ = _mean_rounds(clf.level1_, len(clf.labels_))
        clf.n_features_in_ = len(clf.encoder_.features)
        return clf

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a JSON manifest plus native LightGBM text files to directory ``path``."""
        from labelwise.engine.persistence import write_model_dir

        write_model_dir(path, self.to_manifest)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LabelwiseClassifier:
        """Load a model saved by :meth:`save` (verifies format version and file digests)."""
        from labelwise.engine.persistence import read_model_dir

        manifest, read, source = read_model_dir(path)
        return cls.from_manifest(manifest, read, source)


def _from_pandas(X: Any, source: str) -> pl.DataFrame:
    """A pandas frame as polars; a column polars cannot convert (numbers and strings mixed in
    an object column) is an error naming it."""
    try:
        return pl.from_pandas(X)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        for name in X.columns:
            try:
                pl.from_pandas(X[[name]])
            except (TypeError, ValueError, pl.exceptions.PolarsError):
                raise DataError(
                    f"{source}: column {name!r} mixes value types ({exc}); make it all numbers "
                    "or all strings"
                ) from None
        raise DataError(f"{source}: cannot read the pandas frame ({exc})") from None


def _sparse_labels(Y: Any, n_rows: int, source: str) -> sp.csr_matrix:
    A = sp.csr_matrix(Y)
    if A.shape[0] != n_rows:
        raise DataError(f"{source} has {A.shape[0]} rows, X has {n_rows}")
    A.sum_duplicates()
    A.eliminate_zeros()
    if A.dtype.kind not in "biuf" or not (A.data == 1).all():
        raise DataError(f"{source} must hold only 0 and 1")
    out: sp.csr_matrix = A.astype(np.uint8)
    return out


def _zeros_and_ones(A: np.ndarray) -> bool:
    """Whether ``A`` holds only 0 and 1, with no temporary larger than a bool copy of it
    (``np.isin`` on a uint8 matrix made an int64 one: 12 GB for an 80,000 x 18,607 label
    matrix)."""
    if A.size == 0 or A.dtype == np.bool_:
        return True
    if A.dtype.kind in "ui":
        return bool(A.min() >= 0 and A.max() <= 1)
    if A.dtype.kind == "f":
        return not bool(((A != 0) & (A != 1)).any())
    return bool(np.isin(A, (0, 1)).all())


def _is_sparse(X: Any) -> bool:
    return bool(sp.issparse(X))


def _hstack(X: Matrix, P: np.ndarray) -> Matrix:
    """The features, then probabilities as columns (the dependency strategies' inputs)."""
    Z = P.astype(np.float32)
    return hstack([X, Z]) if _is_sparse(X) else np.hstack([X, Z])


def _vstack(A: Matrix, B: Matrix) -> Matrix:
    if _is_sparse(A) or _is_sparse(B):
        return sp.vstack([sp.csr_matrix(A), sp.csr_matrix(B)], format="csr")
    return np.vstack([A, B])


def _held_out_rows(splits: Splits) -> np.ndarray | None:
    rows = [va for _, va in splits if va is not None]
    return np.concatenate(rows) if rows else None


def _blend(trees: np.ndarray | None, linear: np.ndarray | None, weight: float) -> np.ndarray | None:
    """``(1 - weight) * trees + weight * linear``, either alone when the other is absent."""
    if trees is None or weight >= 1:
        return linear
    if linear is None:
        return trees
    return (1 - weight) * trees + weight * linear


BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _best_weight(
    Y: np.ndarray,
    rows: np.ndarray | None,
    P_trees: np.ndarray | None,
    P_linear: np.ndarray | None,
    policy: ThresholdPolicy,
) -> float:
    """The linear head's weight in ``BLEND_WEIGHTS`` whose blend of the held-out
    probabilities scores the best mean of micro- and macro-F1 under thresholds fitted on them
    (ties go to the more even blend); 0.5 without held-out rows."""
    if rows is None or P_trees is None or P_linear is None:
        return 0.5
    Yv = Y[rows]

    def score(w: float) -> tuple[float, float]:
        P = (1 - w) * P_trees + w * P_linear
        m = classification_metrics(Yv, apply_thresholds(P, fit_thresholds(Yv, P, policy), False))
        return (m["f1_micro"] + m["f1_macro"]) / 2, -abs(w - 0.5)

    return max(BLEND_WEIGHTS, key=score)


def _mean_rounds(members: list[list[LabelModel]], n_labels: int) -> np.ndarray:
    if not members:
        return np.zeros(n_labels)
    return np.mean([[m.best_iteration for m in member] for member in members], axis=0)


def _mean_proba(members: list[list[LabelModel]], X: Matrix, n_jobs: int) -> np.ndarray:
    """Average of the members' per-label probabilities (folds of a cross-fit, chains...)."""
    P = predict_per_label(members[0], X, n_jobs)
    for member in members[1:]:
        P += predict_per_label(member, X, n_jobs)
    return P / len(members)


def _tell_held_out(
    callbacks: Sequence[FitCallback],
    Ya: np.ndarray,
    valid_rows: np.ndarray | None,
    P_valid: Any,
    splits: Splits,
    floor: float,
) -> None:
    """Hand the held-out rows to the callbacks, with where each member's rows sit in them."""
    if valid_rows is None or P_valid is None:
        return
    sizes = [len(va) for _, va in splits if va is not None]
    ends = np.cumsum(sizes)
    folds = [np.arange(end - size, end) for size, end in zip(sizes, ends, strict=True)]
    for cb in callbacks:
        cb.held_out(Ya[valid_rows], P_valid, folds, floor)
