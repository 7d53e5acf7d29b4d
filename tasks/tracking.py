"""MLflow tracking and registry effects. Everything goes through ``MlflowClient`` with explicit run
ids (the fluent active run is thread-local and Prefect runs tasks on worker threads); only the
pyfunc logging needs the fluent API, inside one task's own thread."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labelwise.pipeline.config import Config

if TYPE_CHECKING:
    from mlflow import MlflowClient
from labelwise.tasks.registry import (
    mlflow_client,
    tracking_uri_of,
)
from labelwise.tasks.run_views import (
    EXPERIMENT_KIND,
    MODEL_TRAINING,
    SHARED_VIEW,
    VIEW_KEY,
    runs_view,
)


def tracking_uri(cfg: Config) -> str:
    return tracking_uri_of(cfg)


def client(cfg: Config) -> MlflowClient:
    return mlflow_client(tracking_uri(cfg))


def log_metrics(
    c: Any,
    run_id: str,
    values: Mapping[str, float | int | None],
    step: int = 0,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Batched metrics (1,000 a call; a single call each would cost ~20 ms) under MLflow-safe
    keys, at this time and ``step``; NaN, inf and None are left out. ``params`` and ``tags``
    travel with the first batch."""
    import math
    import time

    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metrics = [
        Metric(metric_key(k), float(v), now, step)
        for k, v in values.items()
        if v is not None and math.isfinite(float(v))
    ]
    extra = {
        "params": [Param(k, v) for k, v in (params or {}).items()],
        "tags": [RunTag(k, v) for k, v in (tags or {}).items()],
    }
    for i in range(0, max(len(metrics), 1), 1000):
        c.log_batch(run_id, metrics=metrics[i : i + 1000], **(extra if i == 0 else {}))


def experiment_id(cfg: Config, name: str | None = None, view: str | None = None) -> str:
    """The experiment ``name`` (default: the config's), created when missing, opened by the
    UI in the model-training mode with ``view`` (default: ``runs_view``) as its run table."""
    from labelwise.pipeline.environment import artifact_root

    c = client(cfg)
    name = name or cfg.experiment
    exp = c.get_experiment_by_name(name)
    if exp is None:
        # embedded store: artifacts next to the SQLite file, not in the caller's directory
        location = f"{artifact_root()}/{name}" if tracking_uri(cfg).startswith("sqlite") else None
        exp_id = c.create_experiment(name, artifact_location=location)
        exp = c.get_experiment(exp_id)
    wanted = {EXPERIMENT_KIND: MODEL_TRAINING, f"{SHARED_VIEW}{VIEW_KEY}": view or runs_view(cfg)}
    for key, value in wanted.items():
        if exp.tags.get(key) != value:
            c.set_experiment_tag(exp.experiment_id, key, value)
    return str(exp.experiment_id)


def label_key(name: str) -> str:
    """A label's (or feature's) part of a metric key, one-to-one: MLflow allows only
    alphanumerics, ``_ - . /`` and spaces, so a name that must change (``a:b``, ``a?b``, a
    ``..``, a ``/``, one too long) gets a digest of the original and never shares its key with
    another label (``a_b`` stays ``a_b``; ``a:b`` becomes ``a_b--<digest>``)."""
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9_\-. ]", "_", name).replace("..", "__")
    if safe == name and 0 < len(name) <= MAX_NAME:
        return name
    return f"{safe[: MAX_NAME - 10]}--{hashlib.sha1(name.encode()).hexdigest()[:8]}"


MAX_NAME = 120  # of 250 characters MLflow allows a whole metric key


def metric_key(key: str) -> str:
    """A whole metric key made safe for MLflow (its label parts come from :func:`label_key`)."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", key)[:250]
