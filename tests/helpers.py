"""What many tests need: a job's config written next to its tables, a free port, whether a
process still runs, a client of a test's MLflow store."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def job_config(name: str, train: str = "train.parquet", **sections: Any) -> dict[str, Any]:
    """A config as a user writes one for a generated table: ``label_`` columns, ``id`` left
    out, the fast preset, a small-table contract; ``sections`` replace whole sections."""
    cfg: dict[str, Any] = {
        "name": name,
        "data": {"train": train, "labels": {"prefix": "label_"}, "exclude": ["id"]},
        "model": {"preset": "fast"},
        "contract": {"min_rows": 20},
    }
    return cfg | sections


def set_keys(cfg: dict[str, Any], edits: Mapping[str, object]) -> dict[str, Any]:
    """``cfg`` with dotted keys set (``{"data.test": "test.parquet"}``), in place."""
    for key, value in edits.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return cfg


def write_job(
    folder: Path,
    name: str,
    table: Any = None,
    test: Any = None,
    store: bool = True,
    config: str = "job.yaml",
    edits: Mapping[str, object] | None = None,
) -> tuple[Path, str]:
    """A job in ``folder``: ``table`` as ``train.parquet`` (and ``test`` as ``test.parquet``,
    named by ``data.test``), its config (:func:`job_config`, then dotted ``edits``) as
    ``config``, with a SQLite MLflow store in ``folder`` unless ``store`` is false (then the
    state directory's); returns the config's path and the store's URI ("" without one)."""
    cfg = job_config(name)
    if table is not None:
        table.write_parquet(folder / "train.parquet")
    if test is not None:
        test.write_parquet(folder / "test.parquet")
        cfg["data"]["test"] = "test.parquet"
    uri = f"sqlite:///{folder / 'mlflow.db'}" if store else ""
    if store:
        cfg["tracking"] = {"tracking_uri": uri}
    set_keys(cfg, edits or {})
    path = folder / config
    path.write_text(yaml.safe_dump(cfg))
    return path, uri


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def client(uri: str) -> Any:
    """An MLflow client of the test's store, for the registry too (MLflow's registry URI
    otherwise defaults to what an earlier test of the process set)."""
    from mlflow import MlflowClient

    return MlflowClient(uri, registry_uri=uri)
