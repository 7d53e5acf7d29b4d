"""What ``labelwise tune`` searches, and what it optimises.

A trial is a set of config overrides (dotted keys, as ``labelwise train --set`` takes them), so
the best trial *is* a config: the tuned YAML is the input config with those keys set, and a
trial's MLflow params are the keys a user would edit. The space covers the settings that move
multi-label results: strategy (label dependencies), imbalance weighting, tree size and
regularisation, learning rate and patience, feature and row sampling, binning, and the threshold
policy (F-beta weight, shrinkage of rare labels' cuts toward the global one, at least one label
per row). Ranges are wide and log-scaled where the effect is multiplicative: they are meant for
tables nobody has seen, not for the shared benchmark datasets. ``chain_ensemble`` is searched
only when the config already uses it (it costs ``n_chains`` chains per trial).

The config's own values are the first trial, so a search never reports less than the config it
started from (on the held-out estimate it is judged by).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labelwise.engine.errors import ConfigError
from labelwise.pipeline.config import Config

if TYPE_CHECKING:
    import optuna

# metric -> direction; "f1_micro_macro" is the mean of micro- and macro-F1 (the default: a
# search on one alone trades the other away, e.g. macro-F1 through very low rare-label cuts)
OBJECTIVES = {
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


def search_space(cfg: Config) -> list[Dimension]:
    """The dimensions searched for ``cfg``; its own choices are always among the options."""
    params = "model.params."
    space = [
        Dimension("model.strategy", choices=_with(STRATEGIES, cfg.model.strategy)),
        Dimension(params + "num_leaves", 3, 127, log=True, integer=True),
        Dimension(params + "learning_rate", 0.02, 0.3, log=True),
        Dimension(params + "min_child_samples", 2, 100, log=True, integer=True),
        Dimension(params + "lambda_l2", 1e-3, 100.0, log=True),
        Dimension(params + "feature_fraction", 0.1, 1.0),
        Dimension(params + "bagging_fraction", 0.5, 1.0),
        Dimension(params + "max_bin", 15, 255, log=True, integer=True),
        Dimension(params + "early_stopping_rounds", 5, 100, log=True, integer=True),
        Dimension("thresholds.shrinkage", 0.1, 300.0, log=True),
        Dimension("thresholds.at_least_one", choices=(False, True)),
    ]
    if isinstance(cfg.weighting.scheme, str):  # explicit per-label weights stay the user's
        space.append(Dimension("weighting.scheme", choices=_with(SCHEMES, cfg.weighting.scheme)))
    if cfg.thresholds.objective in ("f1", "fbeta"):  # precision/recall targets are a choice
        space.append(Dimension("thresholds.beta", 0.5, 2.0, log=True))
    return space


def _with(options: list[str], current: str) -> tuple[str, ...]:
    return tuple(options if current in options else [*options, current])


def suggest(trial: optuna.Trial, space: list[Dimension]) -> dict[str, Any]:
    """The config overrides of one trial."""
    overrides = {d.key: d.suggest(trial) for d in space}
    if "thresholds.beta" in overrides:
        overrides["thresholds.objective"] = "fbeta"  # beta 1 is F1
    return overrides


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
