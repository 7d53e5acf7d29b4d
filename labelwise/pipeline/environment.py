"""Where labelwise keeps its embedded state, and the environment the servers-free mode needs.

With no server configured, MLflow uses SQLite + local artifacts and Prefect its ephemeral API,
both under one state directory: ``$LABELWISE_HOME``, else ``./.labelwise``. Pointing at real
servers is the standard way: ``MLFLOW_TRACKING_URI`` (or ``tracking.tracking_uri`` in the config)
and ``PREFECT_API_URL``.
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    d = Path(os.environ.get("LABELWISE_HOME", ".labelwise")).resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state_dir() / 'mlflow.db'}"


def artifact_root() -> str:
    return (state_dir() / "mlartifacts").as_uri()


def configure_environment() -> None:
    """Set embedded defaults before prefect / mlflow are imported (no effect on set vars)."""
    home = state_dir()
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # a first start migrates a fresh database: on a busy 2-core machine that exceeds 20 s
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(home / "prefect" / "storage"))
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    os.environ.setdefault("MLFLOW_ENABLE_TRACKING_AUTO_LOGGING", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    # a tracking server that went away: a few retries over ~15 s, then the run fails (MLflow's
    # own default retries for minutes, which an unattended job spends holding its resources)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
