"""How runs look in the MLflow UI: the experiments' run-table views (columns, order) and
run names that say which model settings a run changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labelwise.pipeline.config import Config

if TYPE_CHECKING:
    pass


# the MLflow 3 UI opens an experiment in its model-training view (not the GenAI one) by this tag
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# a run-table view the UI loads from the experiment's tags, for the link `runs_view_url` gives
SHARED_VIEW, VIEW_KEY = "mlflow.sharedViewState.", "labelwise"


def table_view(columns: list[str], order_by: str, ascending: bool = False) -> str:
    """A run-table view (the UI's shared view state): these columns, sorted by ``order_by``."""
    import json

    return json.dumps({"selectedColumns": columns, "orderByKey": order_by, "orderByAsc": ascending})


def runs_view(cfg: Config) -> str:
    """The run table as a person comparing runs wants it first: the headline test metrics as
    columns (the promotion metric first), sorted best first."""
    metrics = [cfg.promotion.metric, *(m for m in HEADLINE if m != cfg.promotion.metric)]
    columns = [f"metrics.`test/{m}`" for m in metrics] + [
        f"metrics.`{TUNE_OBJECTIVE}`",  # a tune's trials (held-out) and its parent (best)
        "metrics.`fit_seconds`",
        "attributes.`Models`",
    ]
    order = f"metrics.`test/{cfg.promotion.metric}`"
    return table_view(columns, order, not cfg.promotion.higher_is_better)


TUNE_OBJECTIVE = "tune/objective"


def monitoring_view() -> str:
    """The monitoring experiment's run table: alert counts and the worst drift of each batch
    as columns, the newest batch first."""
    metrics = ("label_alerts", "feature_alerts", "max_score_psi", "max_feature_psi", "rows")
    columns = [f"metrics.`{m}`" for m in metrics] + ["tags.`labelwise.drift`"]
    return table_view(columns, "attributes.start_time")


def promotion_view(cfg: Config) -> str:
    """The promotion experiment's run table: both versions' promotion metric and the
    decision, the newest first."""
    m = cfg.promotion.metric
    columns = [f"metrics.`challenger/{m}`", f"metrics.`champion/{m}`", "tags.`promotion.decision`"]
    return table_view(columns, "attributes.start_time")


def runs_view_url(ui: str, experiment_id: str) -> str:
    """The MLflow UI link that opens an experiment's runs in labelwise's view, in the UI's
    model-training mode: MLflow 3.18's UI opens in its GenAI mode, and switching over
    remounts the table and drops the view's columns in most first loads."""
    return (
        f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&viewStateShareKey={VIEW_KEY}"
    )


# the sections whose settings make one model differ from another (a run's name shows them)
MODEL_SECTIONS = ("model", "weighting", "thresholds", "split", "text")
RUN_NAME_CHARS = 48


def run_name(cfg: Config) -> str:
    """What a run is, at a glance in the run table: the model settings it changes from the
    defaults (``strategy=chain scheme=inverse_sqrt``; ``defaults`` for none), short enough
    for the column, then the first characters of the config digest (runs of one config
    share it). Two runs of a job that differ in a setting differ in name."""
    changed = " ".join(f"{k}={v}" for k, v in changed_settings(cfg).items()) or "defaults"
    if len(changed) > RUN_NAME_CHARS:
        changed = changed[: RUN_NAME_CHARS - 1] + "…"
    return f"{changed} {cfg.digest()[:6]}"


def changed_settings(cfg: Config) -> dict[str, str]:
    """The model settings of ``cfg`` that differ from the defaults, by their last key
    (``params.n_estimators`` as ``n_estimators``), values as short text."""
    from labelwise.pipeline.config import Config as _Config

    base = _Config.model_validate({"name": cfg.name, "data": cfg.data.model_dump(mode="json")})
    ours, theirs = cfg.model_dump(mode="json"), base.model_dump(mode="json")
    out: dict[str, str] = {}
    first = ("strategy", "preset", "scheme")  # the choices a user compares runs by
    for section in MODEL_SECTIONS:
        a, b = _flat(ours[section]), _flat(theirs[section])
        for key in sorted(set(a) | set(b), key=lambda k: (k not in first, k)):
            if a.get(key, _UNSET) != b.get(key, _UNSET):  # set to None differs from unset
                value = a.get(key)
                text = f"{value:.4g}" if isinstance(value, float) else str(value)
                out[key.rsplit(".", 1)[-1]] = text[:20]
    return out


_UNSET = object()


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        out |= _flat(v, f"{prefix}.{k}" if prefix else str(k))
    return out


HEADLINE = ("f1_macro", "f1_micro", "f1_samples", "hamming_loss", "subset_accuracy")
