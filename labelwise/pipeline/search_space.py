"""What ``labelwise tune`` searches, and what it optimises.

A trial is a set of config overrides (dotted keys), so the best trial *is* a config: the tuned
YAML is the input config with those keys set, and a trial's MLflow params are the keys a user
would edit. The sampler searches the settings that change the model: strategy (label
dependencies), imbalance weighting, tree size and regularisation, learning rate and patience,
feature and row sampling, binning, random split thresholds (``extra_trees``). Ranges are wide
and log-scaled where the effect is multiplicative: they are meant for tables nobody has seen,
not for the shared benchmark datasets. ``chain_ensemble`` is searched only when the config
already uses it (it costs ``n_chains`` chains per trial). The threshold policy (F-beta weight,
shrinkage of each label's cut toward the global cut or toward the lower of it and the label's
rate cut, at least one label per row) needs no refit, so each trial's model is scored under
every policy of :func:`threshold_grid` and keeps the best.

The config's own values are the first trial, so a search never reports less than the config it
started from (on the held-out estimate it is judged by).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any, Literal

from labelwise.engine.errors import ConfigError
from labelwise.pipeline.config import Config

if TYPE_CHECKING:
    import optuna

# metric -> direction; "f1_micro_macro" is the mean of micro- and macro-F1 (the default: a
# search on one alone trades the other away, e.g. macro-F1 through very low rare-label cuts)
OBJECTIVES: dict[str, Literal["maximize", "minimize"]] = {
    "f1_micro_macro": "maximize",
    "f1_micro": "maximize",
    "f1_macro": "maximize",
    "f1_samples": "maximize",
    "f1_weighted": "maximize",
    "jaccard_samples": "maximize",
    "subset_accuracy": "maximize",
    "hamming_loss": "minimize",
}
STRATEGIES = ["binary_relevance", "stacking", "chain"]
SCHEMES = ["none", "sqrt", "effective", "balanced"]


@dataclass(frozen=True)
class Dimension:
    """One searched config key: an int or float range (``log``: searched on a log scale) or a
    list of choices."""

    key: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        value = trial.suggest_float(self.key, self.low, self.high, log=self.log)
        return float(f"{value:.3g}")  # what a person would write in the YAML


def objective_value(metrics: dict[str, float], metric: str) -> float:
    """The number a trial is judged by."""
    if metric == "f1_micro_macro":
        return (metrics["f1_micro"] + metrics["f1_macro"]) / 2
    return metrics[metric]


def check_metric(metric: str) -> str:
    if metric not in OBJECTIVES:
        raise ConfigError(f"--metric {metric!r} is not one of {sorted(OBJECTIVES)}")
    return metric


def search_space(cfg: Config, text: bool = False, n_labels: int = 0) -> list[Dimension]:
    """The dimensions searched for ``cfg``; its own choices are always among the options.
    ``text``: the table has text columns, so their n-grams, minimum document frequency and
    vocabulary size, the linear head's regularisation and the head (the held-out blend, or the
    linear head alone) are searched too. A label tree (``label_tree``, or
    ``auto`` on ``n_labels`` that make it one) searches its own settings instead."""
    from labelwise.engine.classifier import AUTO_LABEL_TREE_LABELS

    params = "model.params."
    strategy = cfg.model.strategy
    if strategy == "label_tree" or (strategy == "auto" and n_labels >= AUTO_LABEL_TREE_LABELS):
        return _label_tree_space(cfg, text)
    space = [
        Dimension("model.strategy", choices=_with(STRATEGIES, cfg.model.strategy)),
        Dimension(params + "num_leaves", 3, 63, log=True, integer=True),
        Dimension(params + "learning_rate", 0.03, 0.3, log=True),
        Dimension(params + "min_child_samples", 2, 100, log=True, integer=True),
        Dimension(params + "lambda_l2", 1e-3, 100.0, log=True),
        Dimension(params + "feature_fraction", 0.1, 1.0),
        Dimension(params + "bagging_fraction", 0.5, 1.0),
        Dimension(params + "max_bin", 15, 255, log=True, integer=True),
        Dimension(params + "extra_trees", choices=(True, False)),
        Dimension(params + "early_stopping_rounds", 5, 100, log=True, integer=True),
    ]
    if isinstance(cfg.weighting.scheme, str):  # explicit per-label weights stay the user's
        space.append(Dimension("weighting.scheme", choices=_with(SCHEMES, cfg.weighting.scheme)))
    if text:
        head = cfg.model.params.get("linear_weight", "auto")
        space += [
            *_text_space(cfg),
            Dimension(params + "linear_C", 0.25, 64.0, log=True),
            Dimension(params + "linear_weight", choices=_with(HEADS, head)),
        ]
    return space


# the heads a text table is searched over: the blend chosen on held-out rows, or the linear
# head alone (the fast one: no trees are trained)
HEADS: list[Any] = ["auto", 1.0]
# vocabulary sizes searched, besides the config's own (None: every term): the most frequent
# terms kept
MAX_FEATURES: list[Any] = [20_000, 200_000]


def _text_space(cfg: Config) -> list[Dimension]:
    """Terms: word n-grams up to 1 or 2, the minimum document frequency, the vocabulary size."""
    return [
        Dimension("text.ngram_max", choices=tuple(sorted({1, 2, cfg.text.ngram_max}))),
        Dimension("text.min_df", 1, 5, integer=True),
        Dimension("text.max_features", choices=_with(MAX_FEATURES, cfg.text.max_features)),
    ]


def _label_tree_space(cfg: Config, text: bool) -> list[Dimension]:
    """A label tree's own settings (per-label weighting and the linear head do not apply)."""
    tree = cfg.label_tree
    space = [
        Dimension("label_tree.arity", choices=tuple(sorted({2, 4, 16, tree.arity}))),
        Dimension("label_tree.max_leaves", 10, 400, log=True, integer=True),
        Dimension("label_tree.C", 0.5, 64.0, log=True),
    ]
    if text:
        space += _text_space(cfg)
    return space


# the threshold policies every trial's model is scored with (no refit: a sweep per beta):
# (shrink_to, shrinkage) pairs -- toward the global cut, or toward the lower of it and the
# label's rate cut (the default) -- x F-beta weight x at least one label per row
SHRINKAGE = (
    *(("global", k) for k in (0.0, 3.0, 10.0, 30.0, 100.0)),
    *(("lower", k) for k in (100.0, 1000.0, 10000.0)),
)
BETA = (0.8, 1.0, 1.25)


# the threshold settings a policy of the grid sets (a trial keeps the best as these keys)
POLICY_KEYS = ("objective", "beta", "shrinkage", "shrink_to", "at_least_one")


def policy(*values: str | float | bool | None) -> dict[str, str | float | bool | None]:
    """A threshold policy as dotted config keys, ``values`` in ``POLICY_KEYS`` order."""
    return {f"thresholds.{k}": v for k, v in zip(POLICY_KEYS, values, strict=True)}


def own_thresholds(cfg: Config) -> dict[str, str | float | bool | None]:
    """The config's own threshold policy, under the keys the grid sets."""
    return policy(*(getattr(cfg.thresholds, k) for k in POLICY_KEYS))


def threshold_grid(cfg: Config) -> list[dict[str, str | float | bool | None]]:
    """Threshold settings tried on each trial's held-out probabilities: F-beta cuts (beta 0.8
    leans to precision, 1.25 to recall) x shrinkage of each label's cut toward a target cut x
    at least one label per row. Which is best differs by table more than any model setting
    measured (benchmarks/RESULTS.md, "Threshold policies"). Empty when the config asks for a
    precision or recall target, or a global or fixed cut: then its own policy is the one a user
    chose."""
    t = cfg.thresholds
    if t.objective not in ("f1", "fbeta") or t.mode != "per_label":
        return []
    return [
        policy("fbeta", beta, k, target, at_least_one)
        for target, k in SHRINKAGE
        for beta in BETA
        for at_least_one in (False, True)
    ]


def space_digest(space: list[Dimension]) -> str:
    """A fingerprint of what is searched: part of the study's name, so a study is resumed only
    by a search over the same dimensions. A trial of another labelwise (say, from before a
    dimension was added) did not set that key, and its config would silently take today's
    default for it: not the model that trial judged."""
    import hashlib

    text = repr(([astuple(d) for d in space], SHRINKAGE, BETA))  # the threshold grid too
    return hashlib.sha256(text.encode()).hexdigest()


def _with(options: list[Any], current: Any) -> tuple[Any, ...]:
    return tuple(options if current in options else [*options, current])


def suggest(trial: optuna.Trial, space: list[Dimension]) -> dict[str, Any]:
    """The config overrides of one trial's model (its thresholds are chosen after the fit)."""
    return {d.key: d.suggest(trial) for d in space}


def current_values(cfg: Config, space: list[Dimension]) -> dict[str, Any]:
    """The config's own value of every dimension (preset and estimator defaults filled in):
    the first trial."""
    estimator = cfg.estimator().get_params()
    data = cfg.model_dump()
    out: dict[str, Any] = {}
    for d in space:
        if d.key.startswith("model.params."):
            out[d.key] = estimator[d.key.removeprefix("model.params.")]
            continue
        node: Any = data
        for part in d.key.split("."):
            node = node[part]
        out[d.key] = node
    return out
