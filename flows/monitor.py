"""The monitor flow: is a new batch still the world the champion was trained on, label by label?

Scores the batch (or reads its ``p:<label>`` columns when it is already scored), compares it with
the reference profile saved with the model, and, when the batch carries the true labels, measures
each label's metrics. Everything goes to an MLflow monitoring experiment (one run per batch, so the
UI charts drift over time, plus plots) and to a Prefect artifact. A batch over the configured
limits ends the flow run Failed, naming the labels and features, and can start the retrain
deployment.
"""

from __future__ import annotations

from prefect import flow

from labelwise.pipeline.config import load_config
from labelwise.pipeline.environment import configure_environment
from labelwise.pipeline.records import MonitorResult
from labelwise.tasks.monitoring import (
    log_monitoring,
    measure_drift,
    publish_drift,
    snapshot_batch,
    trigger_retrain,
)


@flow(name="labelwise-monitor", log_prints=True)
def monitor_flow(
    config_path: str,
    batch_path: str | None = None,
    model: str | None = None,
    retrain: bool | None = None,
    as_of: str | None = None,
) -> MonitorResult:
    """Compare ``batch_path`` (default: ``monitoring.batch`` or ``monitoring.sql`` of the
    config: a file, folder, glob, object-store URI or query; its last ``monitoring.window``
    before ``as_of``) with what ``model`` (default: the champion) was trained on; Failed with
    the drifted labels named."""
    configure_environment()
    from labelwise.engine.errors import ConfigError, DriftError
    from labelwise.tasks.data import scheduled_start
    from labelwise.tasks.registry import locate_model
    from labelwise.tasks.tracking import tracking_uri

    cfg = load_config(config_path)
    source = batch_path or cfg.monitoring.batch or cfg.monitoring.sql
    if source is None:
        raise ConfigError(
            f"{config_path}: no batch to monitor: pass one or set monitoring.batch / .sql"
        )
    model = model or f"models:/{cfg.registered_model}@champion"
    model_dir, what = locate_model(model, tracking_uri(cfg))
    snap = snapshot_batch(cfg, source, as_of or scheduled_start())
    batch = snap.source
    report = measure_drift(cfg, model_dir, snap.path, batch)
    run_id = log_monitoring(cfg, report, what, snap)
    publish_drift(cfg, report)
    result: MonitorResult = {
        "run_id": run_id,
        "model": what,
        "rows": report["n_rows"],
        "alerts": report["alerts"],
        "feature_alerts": report["feature_alerts"],
        "labels": report["labels"],
    }
    if report["alerts"] or report["feature_alerts"]:
        do_retrain = cfg.monitoring.retrain_on_drift if retrain is None else retrain
        result["retrain_flow_run"] = trigger_retrain(cfg) if do_retrain else None
        labels = [a["label"] for a in report["alerts"]]
        feats = [a["feature"] for a in report["feature_alerts"]]
        msg = (
            f"batch {batch} against {what}: "
            + (f"{len(labels)} label(s) {labels[:20]}" if labels else "no label")
            + (f"; feature(s) {feats[:20]}" if feats else "")
            + f" (details: MLflow run {run_id})"
        )
        raise DriftError(msg, {**report, **result})
    print(f"no drift in {batch} ({report['n_rows']} rows) against {what}; run {run_id}")
    return result
