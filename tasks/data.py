"""Reading, fingerprinting and splitting the training table. Tasks pass paths and digests, never
frames (Prefect hashes task inputs for caching and pickles persisted results)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS

from labelwise.pipeline.config import Config
from labelwise.pipeline.records import Snapshot, SplitPaths, TablePart


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
    name="snapshot-data",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_unless_user_error,
)
def snapshot_data(
    cfg: Config,
    as_of: str | None = None,
    from_run: dict[str, str] | None = None,
    parts: tuple[str, ...] = ("train", "test"),
) -> Snapshot:
    """Read each source once (rows after ``as_of`` and outside ``data.window`` left out) into a
    parquet snapshot in the job's work directory; return, per part, the snapshot's path,
    digest, rows and columns, and what it was read from. ``from_run`` maps parts to the
    snapshot files of an earlier run, read as they are (``labelwise train --snapshot``).
    ``parts=("train",)`` leaves data.test unread (``labelwise tune``'s search)."""
    import uuid

    from labelwise.pipeline.environment import state_dir
    from labelwise.pipeline.parts import read_part
    from labelwise.pipeline.snapshot import materialise
    from labelwise.pipeline.sources import parse_as_of

    staging = state_dir() / "snapshots" / f"{cfg.name}-{uuid.uuid4().hex[:8]}"
    as_of = as_of or parse_as_of(None).isoformat()  # one as-of time for every part
    read: dict[str, TablePart] = {}
    try:
        for part in parts:
            dest = staging / f"{part}.parquet"
            if from_run is not None and part in from_run:
                time_column = cfg.data.time_column
                entry = materialise(from_run[part], dest, "--snapshot", None, time_column)
                read[part] = dataclasses.replace(entry, kind="snapshot")
            elif from_run is None and (given := read_part(cfg, part, dest, as_of)) is not None:
                read[part] = given
        final = workdir_for(cfg, read["train"].digest) / "snapshot"
        final.mkdir(parents=True, exist_ok=True)
        for part, entry in read.items():
            target = final / f"{part}.parquet"
            os.replace(entry.path, target)
            read[part] = entry.moved(str(target))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Snapshot(train=read["train"], test=read.get("test"))


class SourceNames:
    """How the user knows the files a run reads: its snapshot and split parts are named by
    the table, folder, object or query the config gave. Entered as a context, it rewrites
    the message of a labelwise error raised inside (a run reads its snapshot, but a user
    fixes their source)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def add(self, cfg: Config, info: Snapshot) -> None:
        """Name a snapshot's files: each part by its source, a split's parts (written to the
        run's work directory) by the source they were cut from."""
        for entry in info.parts().values():
            self.names[entry.path] = entry.source
        train = info.train
        parts = workdir_for(cfg, train.digest) / "data"
        for part in ("train", "test"):
            self.names[str(parts / f"{part}.parquet")] = f"{train.source} ({part} part)"

    def __enter__(self) -> SourceNames:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        self.rename(exc)

    def named(self, message: str) -> str:
        """``message`` with each snapshot or split part's path replaced by its source's name."""
        # longest first: a split part's path starts with the work directory's path
        for path in sorted(self.names, key=len, reverse=True):
            message = message.replace(path, self.names[path])
        return message

    def rename(self, exc: BaseException | None) -> None:
        """Name the user's sources in a labelwise error's message (and contract report)."""
        from labelwise.engine.errors import LabelwiseError

        if not isinstance(exc, LabelwiseError) or not exc.args:
            return
        exc.args = (self.named(str(exc.args[0])), *exc.args[1:])
        report = getattr(exc, "report", None)
        if isinstance(report, dict) and report.get("table") in self.names:
            report["table"] = self.names[report["table"]]


def snapshot_notes(info: Snapshot) -> list[str]:
    """What a user should know of how the snapshot was read: the partition columns of a
    folder's paths that were not read as features."""
    return [
        f"data.{part}: the partition column(s) {', '.join(map(repr, entry.dropped))} of the "
        "folder's paths are not read as features (a folder layout is not a row's value); "
        "list one in data.features to use it"
        for part, entry in info.parts().items()
        if entry.dropped
    ]


def scheduled_start() -> str | None:
    """When the current flow run was scheduled to start (a deployment's schedule, or when it
    was created): the same for every retry of the run, so its data window is too."""
    from prefect.runtime import flow_run

    start = flow_run.scheduled_start_time
    return start.isoformat() if start is not None else None


def workdir_for(cfg: Config, data_digest: str) -> Path:
    """One folder per (config, data): reruns of the same job find their finished steps there."""
    from labelwise.pipeline.environment import state_dir

    d = state_dir() / "runs" / cfg.name / f"{cfg.digest()}-{data_digest[:12]}"
    d.mkdir(parents=True, exist_ok=True)
    return d


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


def test_only_labels(cfg: Config, train_path: str, test_path: str) -> list[str]:
    """A warning naming the labels of the test part that no training row holds (a long tail
    of tags has them): the model cannot learn them, so they are left out of its test
    metrics; empty when there are none."""
    import numpy as np

    from labelwise.pipeline.tables import read_labels

    def present(Y: Any, labels: list[str]) -> set[str]:
        counts = np.asarray(Y.sum(axis=0)).ravel()  # Y may be sparse (a label-set column)
        return {lab for lab, n in zip(labels, counts, strict=True) if n}

    Y, labels = read_labels(cfg, test_path)
    only = sorted(present(Y, labels) - present(*read_labels(cfg, train_path)))
    if not only:
        return []
    positives = int(Y[:, [labels.index(lab) for lab in only]].sum())
    return [
        f"{len(only)} label(s) of the test part are in no training row (e.g. {only[:5]}): "
        f"the model cannot learn them, so their {positives} positive(s) are left out of the "
        "test metrics"
    ]


@task(name="split-data", cache_policy=INPUTS, persist_result=True)
def split_data(cfg: Config, info: Snapshot, workdir: str) -> SplitPaths:
    """Train/test tables as files: the given test table, or an iteratively stratified split."""
    import polars as pl

    from labelwise.engine.data import encode_labels, read_table, scan_table
    from labelwise.engine.split import iterative_stratification

    out = Path(workdir) / "data"
    out.mkdir(parents=True, exist_ok=True)
    if info.test is not None:
        return SplitPaths(train=info.train.path, test=info.test.path)
    path = info.train.path
    # the folds need the label (or time) columns only; the parts are then streamed from the
    # snapshot to their files, so the whole table is never in memory (1M rows: 0.6 GB less)
    if cfg.split.by == "time":
        fold = _time_fold(cfg, read_table(path, [str(cfg.data.time_column)]), path)
    else:
        names = scan_table(path).collect_schema().names()
        labels = read_table(path, list(cfg.data.labels.source_columns(names)))
        Y, _ = encode_labels(labels, cfg.data.labels, source=path)
        frac = cfg.split.test_fraction
        fold = iterative_stratification(Y, [1 - frac, frac], cfg.split.seed)
    paths = SplitPaths(train=str(out / "train.parquet"), test=str(out / "test.parquet"))
    for k, part in enumerate((paths.train, paths.test)):
        scan_table(path).filter(pl.Series(fold == k)).sink_parquet(part)
    return paths


def _time_fold(cfg: Config, df: Any, path: str) -> Any:
    """split.by: time -- the latest rows (split.test_last or split.test_fraction) test."""
    from labelwise.engine.time_split import time_split
    from labelwise.pipeline.sources import parse_duration, utc_time

    column = str(cfg.data.time_column)
    times = df.select(utc_time(df.lazy(), column, path).dt.replace_time_zone(None)).to_series()
    last = parse_duration(cfg.split.test_last) if cfg.split.test_last else None
    return time_split(times.to_numpy(), cfg.split.test_fraction, last)
