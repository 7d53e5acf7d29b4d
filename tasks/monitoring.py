"""Monitoring effects: a batch scored and compared with the model's reference profile
(labelwise.engine.drift), one MLflow run per batch with plots, Prefect artifacts, and the retrain
deployment started on drift."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from prefect import task

from labelwise.engine.drift import DriftReport
from labelwise.pipeline.config import Config
from labelwise.pipeline.records import TablePart
from labelwise.tasks.data import retry_unless_user_error

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun


@task(name="measure-drift")
def measure_drift(
    cfg: Config, model_dir: str, batch_path: str, name: str | None = None
) -> DriftReport:
    import warnings

    from labelwise.engine.classifier import LabelwiseClassifier
    from labelwise.engine.data import TRAINED_WITH, encode_labels, read_table, require_columns
    from labelwise.engine.drift import PROFILE_FILE, drift_report
    from labelwise.engine.errors import DataError, ModelFormatError
    from labelwise.engine.scored import proba_columns
    from labelwise.pipeline.tables import named_errors

    clf = LabelwiseClassifier.load(model_dir)
    prof_file = Path(model_dir) / PROFILE_FILE
    if not prof_file.is_file():
        raise ModelFormatError(
            f"{model_dir}: the model has no {PROFILE_FILE} (reference "
            "profile); retrain it with this labelwise to monitor it"
        )
    profile = json.loads(prof_file.read_text())
    df = read_table(batch_path)
    src = name or batch_path  # messages name the source, not the snapshot file
    if df.height == 0:
        raise DataError(f"{src}: the batch has no rows; nothing to monitor")
    feats = clf.encoder_.features
    require_columns(df.columns, feats, src, why=TRAINED_WITH)
    with warnings.catch_warnings(), named_errors(src):
        warnings.simplefilter("ignore")
        terms = profile.get("terms", [])  # a profile from before terms were profiled: none
        columns, Xa = clf.encoder_.profile_columns(df.select(feats), source=src, terms=terms)
        scored = proba_columns(clf.labels_)
        if all(c in df.columns for c in scored):  # already scored by the predict flow
            S = df.select(scored).to_numpy().astype("float64")
        else:
            S = clf.predict_proba(df.select(feats), sparse=clf.sparse_proba)
    P = clf.predict_from_proba(S)
    spec = cfg.data.labels
    try:  # ground truth, when the batch has the label columns
        has_truth = bool(spec.source_columns(df.columns))
    except DataError:
        has_truth = False
    Y = None
    if has_truth:
        Y, _ = encode_labels(df, spec, labels=clf.labels_, source=src)
    # tabular features, each text column's document length and out-of-vocabulary share, and
    # the share of documents holding each important term
    report = drift_report(profile, columns, Xa, S, P, Y, cfg.monitoring.rules())
    report["unseen_categories"] = dict(clf.encoder_.unseen_counts)
    return report


def _artifact_key(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:60] or "labelwise"


@task(
    name="snapshot-batch",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_unless_user_error,
)
def snapshot_batch(cfg: Config, source: Any, as_of: str | None) -> TablePart:
    """The batch's rows (its last ``monitoring.window`` before ``as_of``, when set) as one
    parquet file in the state directory, named by its digest, with its lineage."""
    import uuid

    from labelwise.pipeline.environment import state_dir
    from labelwise.pipeline.snapshot import materialise
    from labelwise.pipeline.sources import Window, parse_as_of, parse_duration

    mon, column = cfg.monitoring, cfg.data.time_column
    window = None
    if mon.window is not None and column is not None:
        window = Window(column, parse_as_of(as_of), parse_duration(mon.window))
    folder = state_dir() / "monitoring" / cfg.name
    key = "monitoring.sql" if not isinstance(source, str) else "monitoring.batch"
    tmp = folder / f".batch-{uuid.uuid4().hex[:8]}.parquet"
    entry = materialise(source, tmp, key, window, None)
    final = folder / f"{entry.digest[:16]}.parquet"
    os.replace(tmp, final)
    return entry.moved(str(final))


@task(name="log-monitoring")
def log_monitoring(cfg: Config, report: DriftReport, model: str, batch: TablePart) -> str:
    """One run per batch in ``<experiment>-monitoring``: metrics (step = batch number), the
    report, a PSI chart and the history of the most drifted labels."""
    from labelwise.tasks.run_views import monitoring_view
    from labelwise.tasks.runs import create_run, tracked_run
    from labelwise.tasks.tracking import client, experiment_id, log_metrics

    c = client(cfg)
    exp = experiment_id(cfg, f"{cfg.experiment}-monitoring", monitoring_view())
    previous = c.search_runs([exp], order_by=["attributes.start_time ASC"], max_results=1000)
    step = len(previous)
    drifted = bool(report["alerts"] or report["feature_alerts"])
    # the state before the batch's name: a long name is cut in the run table
    name = f"batch-{step:04d} {'DRIFT' if drifted else 'ok'} {_batch_name(batch)}"
    tags = {"labelwise.kind": "monitoring", "labelwise.drift": str(drifted).lower()}
    params = {
        "model": model,
        "batch": batch.source[:6000],
        "batch.digest": batch.digest[:16],
        "batch.window": batch.window or "none",
        "has_truth": str(report["has_truth"]),
    }
    with tracked_run(cfg, lambda: create_run(cfg, exp, name, tags, params)) as rid:
        note = {"mlflow.note.content": drift_summary(report)}
        log_metrics(c, rid, _metrics(report), step=step, tags=note)
        c.log_dict(rid, dict(report), "monitoring/report.json")
        with tempfile.TemporaryDirectory() as tmp:
            _plots(Path(tmp), report, previous, cfg.monitoring.score_psi)
            c.log_artifacts(rid, tmp, "monitoring")
    return rid


def _batch_name(batch: TablePart) -> str:
    """A short name for the run: the file's stem, the folder's name, or the source kind."""
    if batch.kind in ("file", "files"):
        return Path(batch.source.split("*")[0]).stem or "files"
    return batch.kind


def _metrics(report: DriftReport) -> dict[str, float]:
    """The batch's metrics: counts, per-label and per-feature drift, the worst PSI."""
    from labelwise.tasks.tracking import label_key

    values: dict[str, float] = {
        "rows": report["n_rows"],
        "label_alerts": len(report["alerts"]),
        "feature_alerts": len(report["feature_alerts"]),
    }
    kinds = ("predicted_prevalence", "prevalence_ratio", "score_psi", "f1", "precision", "recall")
    for r in report["labels"]:
        values |= {f"label/{label_key(r['label'])}/{m}": r[m] for m in kinds if m in r}
    for r in report["features"]:
        values[f"feature/{label_key(r['feature'])}/psi"] = r["psi"]
    if report["labels"]:
        values["max_score_psi"] = max(r["score_psi"] for r in report["labels"])
    if report["features"]:
        values["max_feature_psi"] = max(r["psi"] for r in report["features"])
    return values


def _plots(out: Path, report: DriftReport, previous: list[Any], limit: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelwise.tasks.tracking import label_key

    rows = sorted(report["labels"], key=lambda r: -r["score_psi"])[:30]
    fig, ax = plt.subplots(figsize=(8, max(3, 0.25 * len(rows) + 1)))
    ax.barh(
        [r["label"] for r in rows][::-1],
        [r["score_psi"] for r in rows][::-1],
        color=["tab:red" if r["score_psi"] > limit else "tab:blue" for r in rows][::-1],
    )
    ax.axvline(limit, color="k", ls="--", lw=1, label=f"limit {limit}")
    ax.set_xlabel("score PSI vs. reference")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "score_psi.png", dpi=100)
    plt.close(fig)
    # history: this batch and the earlier ones, for the most drifted labels now
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in rows[:8]:
        key = f"label/{label_key(r['label'])}/score_psi"
        ys = [run.data.metrics.get(key) for run in previous] + [r["score_psi"]]
        xs = [i for i, y in enumerate(ys) if y is not None]
        ax.plot(xs, [ys[i] for i in xs], marker="o", label=r["label"])
    ax.axhline(limit, color="k", ls="--", lw=1)
    ax.set_xlabel("batch")
    ax.set_ylabel("score PSI")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "score_psi_history.png", dpi=100)
    plt.close(fig)


def drift_summary(report: DriftReport) -> str:
    lines = [
        f"{report['n_rows']} rows; {len(report['alerts'])} label alert(s), "
        f"{len(report['feature_alerts'])} feature alert(s)"
    ]
    lines += [f"- label `{a['label']}`: {a['why']}" for a in report["alerts"][:50]]
    lines += [f"- feature `{a['feature']}`: {a['why']}" for a in report["feature_alerts"][:50]]
    return "\n".join(lines)


def publish_drift(cfg: Config, report: DriftReport) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows = sorted(report["labels"], key=lambda r: (not r["alert"], -r["score_psi"]))[:200]
    create_table_artifact(
        [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        key=_artifact_key(f"{cfg.name}-drift"),
        description=f"label-wise drift of the latest batch ({cfg.name})",
    )
    create_markdown_artifact(
        drift_summary(report),
        key=_artifact_key(f"{cfg.name}-drift-summary"),
        description="drift alerts",
    )


def trigger_retrain(cfg: Config) -> str | None:
    """Start the config's retrain deployment (needs a Prefect server that has it)."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        print("drift: not retraining, no Prefect server (PREFECT_API_URL) to run it on")
        return None
    from prefect.deployments import run_deployment

    run = cast(
        "FlowRun",  # sync-compatible: not async here
        run_deployment(
            f"labelwise-train/{cfg.name}-retrain", timeout=0, tags=["labelwise", "drift-retrain"]
        ),
    )
    print(f"drift: started retraining, flow run {run.id}")
    return str(run.id)
