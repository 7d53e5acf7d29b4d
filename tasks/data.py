"""Reading, fingerprinting and splitting the training table. Tasks pass paths and digests, never
frames (Prefect hashes task inputs for caching and pickles persisted results)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS

from labelwise.pipeline.config import Config


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O hiccups, not labelwise's own errors (a missing column stays missing)."""
    from labelwise.engine.errors import LabelwiseError

    try:
        state.result()
    except LabelwiseError:
        return False
    except Exception:
        return True
    return False


@task(
    name="inspect-data",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_unless_user_error,
)
def inspect_data(cfg: Config) -> dict[str, Any]:
    """Check the tables can be read; return their paths, digests and shapes."""
    import polars as pl

    from labelwise.engine.data import scan_table
    from labelwise.engine.errors import DataError

    out: dict[str, Any] = {}
    for part in ("train", "test"):
        path = getattr(cfg.data, part)
        if path is None:
            continue
        if not Path(path).exists():
            raise DataError(
                f"data.{part}: {path} not found; fix the path in the config "
                "(relative paths are read from the config file's folder)"
            )
        lf = scan_table(path)
        out[part] = {
            "path": str(path),
            "digest": file_digest(path),
            "columns": lf.collect_schema().names(),
            "rows": int(lf.select(pl.len()).collect().item()),
        }
    return out


@contextmanager
def job_lock(workdir: Path, job: str) -> Iterator[None]:
    """One run of a job (config + data) at a time in a state directory: an exclusive lock on
    its work directory, released by the OS when the process ends however it ends. A second run
    refuses at once, naming the holder, instead of racing over the same checkpoints."""
    import fcntl
    import os
    import socket

    from labelwise.engine.errors import JobBusyError

    fh = open(workdir / ".lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise JobBusyError(
            f"job {job!r} is already running on the same data ({holder}, work directory "
            f"{workdir}); wait for it to finish, or stop it and run again"
        ) from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        yield
    finally:
        fh.close()  # closing the descriptor releases the lock


def check_evaluable(cfg: Config, test_path: str) -> None:
    """Refuse, before any training, a test part too small to judge a model on: fewer rows
    than ``contract.min_test_rows`` or fewer positives (all labels) than
    ``contract.min_test_positives``. A model scored on nothing must never become champion."""
    from labelwise.engine.errors import DataError
    from labelwise.pipeline.tables import read_xy

    _, Y, _ = read_xy(cfg, test_path)
    c = cfg.contract
    if Y.shape[0] < c.min_test_rows or int(Y.sum()) < c.min_test_positives:
        raise DataError(
            f"{test_path}: the test part has {Y.shape[0]} rows and {int(Y.sum())} positive "
            f"labels; a model is only judged on at least contract.min_test_rows = "
            f"{c.min_test_rows} rows and contract.min_test_positives = {c.min_test_positives} "
            "positives. Give a larger table, a data.test table or a larger split.test_fraction"
        )


@task(name="split-data", cache_policy=INPUTS, persist_result=True)
def split_data(cfg: Config, info: dict[str, Any], workdir: str) -> dict[str, str]:
    """Train/test tables as files: the given test table, or an iteratively stratified split."""
    import polars as pl

    from labelwise.engine.data import encode_labels, read_table
    from labelwise.engine.split import iterative_stratification

    out = Path(workdir) / "data"
    out.mkdir(parents=True, exist_ok=True)
    if "test" in info:
        return {"train": info["train"]["path"], "test": info["test"]["path"]}
    df = read_table(info["train"]["path"])
    Y, _ = encode_labels(df, cfg.data.labels, source=info["train"]["path"])
    frac = cfg.split.test_fraction
    fold = iterative_stratification(Y, [1 - frac, frac], cfg.split.seed)
    df = df.with_columns(pl.Series("__fold", fold))
    paths = {"train": str(out / "train.parquet"), "test": str(out / "test.parquet")}
    df.filter(pl.col("__fold") == 0).drop("__fold").write_parquet(paths["train"])
    df.filter(pl.col("__fold") == 1).drop("__fold").write_parquet(paths["test"])
    return paths
