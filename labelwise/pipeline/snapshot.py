"""The snapshot a run keeps of its rows: read once from the source (through its kind, see
:mod:`labelwise.pipeline.source_kinds`), windowed, written as parquet and digested; the
rest of the run reads the snapshot, never the source."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from labelwise.engine.errors import DataError
from labelwise.pipeline.records import TablePart
from labelwise.pipeline.source_kinds import SourceRef, source_for
from labelwise.pipeline.sources import Window, apply_window, utc_time


def write_snapshot(
    lf: pl.LazyFrame, dest: Path, key: str, what: str, copy_of: str | None = None
) -> tuple[int, str]:
    """Write the rows to ``dest`` (parquet, atomically; ``copy_of``: that parquet file's
    bytes, not re-encoded, so its digest stays the file's) and return rows and digest; an
    empty result is a clear error naming ``what`` was read."""
    import shutil

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if copy_of is not None:
            shutil.copyfile(copy_of, tmp)
        else:
            lf.sink_parquet(tmp)
    except DataError:
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{key}: cannot read {what} ({type(exc).__name__}: {exc})") from None
    rows = pl.scan_parquet(tmp).select(pl.len()).collect().item()
    if rows == 0:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"{key}: no rows to read from {what}; check the source (and, for a window, its "
            "length and the as-of time)"
        )
    os.replace(tmp, dest)
    return int(rows), file_digest(dest)


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def materialise(
    source: SourceRef,
    dest: Path,
    key: str,
    window: Window | None = None,
    time_column: str | None = None,
    partitions_kept: Sequence[str] = (),
) -> TablePart:
    """Read ``source`` (its rows in ``window``) once into the parquet file ``dest``; return
    the snapshot's lineage: path, rows, digest, columns, source (no credentials), kind, and
    with a time column the window, as-of time and newest row.

    A folder's hive partition columns (``region=eu/``) are left out of the snapshot unless
    they are the time column or in ``partitions_kept`` (listed in ``dropped``): a folder
    layout is not a row's value, and a table scored later has no such column."""
    from labelwise.pipeline.environment import redact

    src = source_for(source)
    lf = src.scan(window, key)
    kept = {*partitions_kept, time_column, window.column if window else None}
    dropped = [c for c in src.partition_columns(lf) if c not in kept]
    lf = lf.drop(dropped)
    text = src.describe()
    what = redact(text)[:300]
    if window is not None:
        lf = apply_window(lf, window, key)
        what += f", rows with {window.describe()}"
    copy_of = src.file_to_copy() if window is None else None
    rows, digest = write_snapshot(lf, dest, key, what, copy_of=copy_of)
    snap = pl.scan_parquet(dest)
    max_time = None
    if time_column is not None:
        newest = snap.select(utc_time(snap, time_column, key).max()).collect().item()
        max_time = newest.isoformat() if newest is not None else ""
    return TablePart(
        path=str(dest),
        rows=rows,
        digest=digest,
        columns=tuple(snap.collect_schema().names()),
        source=redact(text),
        kind=src.kind,
        database=src.database(),
        dropped=tuple(dropped),
        window=window.describe() if window is not None else None,
        as_of=window.as_of.isoformat() if window is not None else None,
        max_time=max_time,
    )
