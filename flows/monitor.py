"""The monitor flow: is a new batch still the world the champion was trained on, label by label?

Scores the batch (or reads its ``p:<label>`` columns when it is already scored), compares it with
the reference profile saved with the model (labelwise.drift), and, when the batch carries the
true labels, measures each label's metrics. Everything goes to an MLflow monitoring experiment
(one run per batch, so the UI charts drift over time, plus plots) and to a Prefect artifact.
A batch over the configured limits ends the flow run Failed, naming the labels and features,
and can start the retrain deployment.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, task

from labelwise.config import Config, load_config
from labelwise.runtime import configure_environment


@task(name="measure-drift")
def measure_drift(cfg: Config, model_dir: str, batch_path: str) -> dict[str, Any]:
    import warnings

    from labelwise.data import encode_labels, read_table
    from labelwise.drift import PROFILE_FILE, drift_report
    from labelwise.errors import DataError, ModelFormatError
    from labelwise.model import LabelwiseClassifier
    from labelwise.thresholds import PROBA_PREFIX, apply_thresholds

    clf = LabelwiseClassifier.load(model_dir)
    prof_file = Path(model_dir) / PROFILE_FILE
    if not prof_file.is_file():
        raise ModelFormatError(f"{model_dir}: the model has no {PROFILE_FILE} (reference "
                               "profile); retrain it with this labelwise to monitor it")
    profile = json.loads(prof_file.read_text())
    df = read_table(batch_path)
    if df.height == 0:
        raise DataError(f"{batch_path}: the batch has no rows; nothing to monitor")
    feats = clf.encoder_.features
    missing = [f for f in feats if f not in df.columns]
    if missing:
        raise DataError(f"{batch_path}: feature column(s) {missing} are missing; the model "
                        "was trained with them")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Xa = clf.encoder_.transform(df.select(feats), source=batch_path)
        scored = [PROBA_PREFIX + lab for lab in clf.labels_]
        if all(c in df.columns for c in scored):  # already scored by the predict flow
            S = df.select(scored).to_numpy().astype("float64")
        else:
            S = clf.predict_proba(df.select(feats))
    P = apply_thresholds(S, clf.thresholds_, clf.at_least_one)
    spec = cfg.data.labels.spec()
    try:  # ground truth, when the batch has the label columns
        has_truth = bool(spec.source_columns(df.columns))
    except DataError:
        has_truth = False
    Y = None
    if has_truth:
        Y, _ = encode_labels(df, spec, labels=clf.labels_, source=batch_path)
    report = drift_report(profile, feats, Xa, S, P, Y, cfg.monitoring.rules())
    report["unseen_categories"] = dict(clf.encoder_.unseen_counts)
    return report


def _artifact_key(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:60] or "labelwise"


@task(name="log-monitoring")
def log_monitoring(cfg: Config, report: dict[str, Any], model: str, batch_path: str) -> str:
    """One run per batch in ``<experiment>-monitoring``: metrics (step = batch number), the
    report, a PSI chart and the history of the most drifted labels."""
    import math
    import time

    from mlflow.entities import Metric, Param, RunTag

    from tasks.tracking import client, experiment_id, metric_key

    c = client(cfg)
    exp = experiment_id(cfg, f"{cfg.experiment}-monitoring")
    previous = c.search_runs([exp], order_by=["attributes.start_time ASC"], max_results=1000)
    step = len(previous)
    drifted = bool(report["alerts"] or report["feature_alerts"])
    run = c.create_run(exp, run_name=f"batch-{step:04d}-{Path(batch_path).stem}",
                       tags={"labelwise.kind": "monitoring",
                             "labelwise.drift": str(drifted).lower()})
    rid = run.info.run_id
    try:
        now = int(time.time() * 1000)
        values: dict[str, float] = {"rows": report["n_rows"],
                                    "label_alerts": len(report["alerts"]),
                                    "feature_alerts": len(report["feature_alerts"])}
        for r in report["labels"]:
            for m in ("predicted_prevalence", "prevalence_ratio", "score_psi", "f1",
                      "precision", "recall"):
                if m in r:
                    values[f"label/{r['label']}/{m}"] = r[m]
        for r in report["features"]:
            values[f"feature/{r['feature']}/psi"] = r["psi"]
        if report["labels"]:
            values["max_score_psi"] = max(r["score_psi"] for r in report["labels"])
        if report["features"]:
            values["max_feature_psi"] = max(r["psi"] for r in report["features"])
        metrics = [Metric(metric_key(k), float(v), now, step) for k, v in values.items()
                   if v is not None and math.isfinite(float(v))]
        params = [Param("model", model), Param("batch", str(batch_path)),
                  Param("has_truth", str(report["has_truth"]))]
        for i in range(0, len(metrics), 1000):
            c.log_batch(rid, metrics=metrics[i:i + 1000], params=params if i == 0 else [],
                        tags=[RunTag("mlflow.note.content", _summary(report))] if i == 0
                        else [])
        c.log_dict(rid, report, "monitoring/report.json")
        with tempfile.TemporaryDirectory() as tmp:
            _plots(Path(tmp), report, previous, cfg.monitoring.score_psi)
            c.log_artifacts(rid, tmp, "monitoring")
    except BaseException:
        c.set_terminated(rid, "FAILED")
        raise
    c.set_terminated(rid, "FINISHED")
    return rid


def _plots(out: Path, report: dict[str, Any], previous: list[Any], limit: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tasks.tracking import metric_key

    rows = sorted(report["labels"], key=lambda r: -r["score_psi"])[:30]
    fig, ax = plt.subplots(figsize=(8, max(3, 0.25 * len(rows) + 1)))
    ax.barh([r["label"] for r in rows][::-1], [r["score_psi"] for r in rows][::-1],
            color=["tab:red" if r["score_psi"] > limit else "tab:blue" for r in rows][::-1])
    ax.axvline(limit, color="k", ls="--", lw=1, label=f"limit {limit}")
    ax.set_xlabel("score PSI vs. reference")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "score_psi.png", dpi=100)
    plt.close(fig)
    # history: this batch and the earlier ones, for the most drifted labels now
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in rows[:8]:
        key = metric_key(f"label/{r['label']}/score_psi")
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


def _summary(report: dict[str, Any]) -> str:
    lines = [f"{report['n_rows']} rows; {len(report['alerts'])} label alert(s), "
             f"{len(report['feature_alerts'])} feature alert(s)"]
    lines += [f"- label `{a['label']}`: {a['why']}" for a in report["alerts"][:50]]
    lines += [f"- feature `{a['feature']}`: {a['why']}" for a in report["feature_alerts"][:50]]
    return "\n".join(lines)


def _prefect_artifacts(cfg: Config, report: dict[str, Any]) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows = sorted(report["labels"], key=lambda r: (not r["alert"], -r["score_psi"]))[:200]
    create_table_artifact([{k: (round(v, 4) if isinstance(v, float) else v)
                            for k, v in r.items()} for r in rows],
                          key=_artifact_key(f"{cfg.name}-drift"),
                          description=f"label-wise drift of the latest batch ({cfg.name})")
    create_markdown_artifact(_summary(report), key=_artifact_key(f"{cfg.name}-drift-summary"),
                             description="drift alerts")


def _trigger_retrain(cfg: Config) -> str | None:
    """Start the config's retrain deployment (needs a Prefect server that has it)."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        print("drift: not retraining, no Prefect server (PREFECT_API_URL) to run it on")
        return None
    from prefect.deployments import run_deployment

    run = run_deployment(f"labelwise-train/{cfg.name}-retrain", timeout=0,
                         tags=["labelwise", "drift-retrain"])
    print(f"drift: started retraining, flow run {run.id}")
    return str(run.id)


@flow(name="labelwise-monitor", log_prints=True)
def monitor_flow(config_path: str, batch_path: str | None = None, model: str | None = None,
                 retrain: bool | None = None) -> dict[str, Any]:
    """Compare ``batch_path`` (default: ``monitoring.batch`` of the config) with what ``model``
    (default: the champion) was trained on; Failed with the drifted labels named."""
    configure_environment()
    from flows.predict import locate_model
    from labelwise.errors import ConfigError, DriftError
    from tasks.tracking import tracking_uri

    cfg = load_config(config_path)
    batch = batch_path or (str(cfg.monitoring.batch) if cfg.monitoring.batch else None)
    if batch is None:
        raise ConfigError(f"{config_path}: no batch to monitor: pass one or set "
                          "monitoring.batch")
    model = model or f"models:/{cfg.registered_model}@champion"
    model_dir, what = locate_model(model, tracking_uri(cfg))
    report = measure_drift(cfg, model_dir, batch)
    run_id = log_monitoring(cfg, report, what, batch)
    _prefect_artifacts(cfg, report)
    result = {"run_id": run_id, "model": what, "rows": report["n_rows"],
              "alerts": report["alerts"], "feature_alerts": report["feature_alerts"]}
    if report["alerts"] or report["feature_alerts"]:
        do_retrain = cfg.monitoring.retrain_on_drift if retrain is None else retrain
        result["retrain_flow_run"] = _trigger_retrain(cfg) if do_retrain else None
        labels = [a["label"] for a in report["alerts"]]
        feats = [a["feature"] for a in report["feature_alerts"]]
        msg = (f"drift in batch {batch} against {what}: "
               + (f"{len(labels)} label(s) {labels[:20]}" if labels else "no label")
               + (f"; feature(s) {feats[:20]}" if feats else "")
               + f" (details: MLflow run {run_id})")
        raise DriftError(msg, report | result)
    print(f"no drift in {batch} ({report['n_rows']} rows) against {what}; run {run_id}")
    return result
