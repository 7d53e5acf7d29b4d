"""Where a job's rows come from, and the snapshot a run keeps of them.

A source is a table file, a folder or glob of parquet files (hive partitions such as
``dt=2026-11-23/`` become columns), an object-store URI (``s3://``, ``gs://``, ``az://``: polars'
own cloud readers, credentials from the environment or the provider's standard chain), or a SQL
query against a database whose URI is read from an environment variable (ADBC). With a time
column, only rows at or before the run's *as-of* time are read, and with a window only those in
``(as_of - window, as_of]``: re-running with the same as-of reads the same rows however the
source has grown since. What is read is written once as a parquet snapshot and digested; the
rest of the run reads the snapshot, never the source.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import polars as pl

from labelwise.engine.errors import ConfigError, DataError
from labelwise.pipeline.records import Database, TablePart

# URI schemes polars reads through its object-store layer
OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "gcp", "az", "azure", "abfs", "abfss", "adl", "hf")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``2w``, ``30m``, ``45s`` as a timedelta (a ValueError otherwise)."""
    m = _DURATION.match(str(text))
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(
            f"{text!r} is not a duration; write a positive number and a unit: "
            "s, m, h, d or w (e.g. 90d)"
        )
    return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})


def scheme(spec: str) -> str | None:
    """The URI scheme of a source (``s3``), or None for a local path."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", spec)
    return m.group(1).lower() if m else None


def check_spec(spec: str) -> str:
    """A source string that names a kind labelwise reads (a path, a glob, an object-store URI)."""
    s = scheme(spec)
    if s is not None and s not in (*OBJECT_STORES, "file"):
        raise ValueError(
            f"unknown source kind {s + '://'!r} in {spec!r}; give a local path, folder or glob, "
            f"an object-store URI ({', '.join(x + '://' for x in ('s3', 'gs', 'az'))}), "
            "or a data.sql query"
        )
    return spec.removeprefix("file://")


def is_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


def local_matches(spec: str) -> list[str]:
    """The parquet files a local folder or glob names, sorted (a stable row order)."""
    if is_glob(spec):
        found = glob.glob(spec, recursive=True)
    else:
        found = [str(p) for p in Path(spec).rglob("*.parquet")]
    return sorted(f for f in found if Path(f).is_file())


def scan_source(spec: str, key: str) -> pl.LazyFrame:
    """A lazy frame over a file, a local folder/glob of parquet files, or an object-store URI."""
    from labelwise.engine.data import scan_table

    if scheme(spec) is not None:
        return _scan_remote(spec, key)
    if not is_glob(spec) and not Path(spec).is_dir():
        return scan_table(spec)
    files = local_matches(spec)
    if not files:
        what = "glob matches" if is_glob(spec) else "directory holds"
        raise DataError(f"{key}: {spec}: the {what} no parquet files; check the path")
    check_same_schema(files, key)
    return pl.scan_parquet(files, hive_partitioning=True)


def _scan_remote(uri: str, key: str) -> pl.LazyFrame:
    try:
        lf = pl.scan_parquet(uri, hive_partitioning=True)
        lf.collect_schema()
    except Exception as exc:  # polars raises several types for listing and auth failures
        raise DataError(
            f"{key}: cannot read {uri} ({type(exc).__name__}: {str(exc)[:400]}); check the URI "
            "and the credentials in the environment (AWS_*, GOOGLE_*, AZURE_* variables or the "
            "provider's default chain)"
        ) from None
    return lf


def check_same_schema(files: list[str], key: str) -> None:
    """Every partition must have the first one's columns and types: name the first that
    differs and how, rather than letting the scan fail deep inside polars."""
    first = pl.read_parquet_schema(files[0])
    for f in files[1:]:
        other = pl.read_parquet_schema(f)
        if other == first:
            continue
        diff = sorted(
            f"{c}: {first.get(c, 'absent')} vs {other.get(c, 'absent')}"
            for c in set(first) | set(other)
            if first.get(c) != other.get(c)
        )
        raise DataError(
            f"{key}: {f} has a different schema than {files[0]} ({'; '.join(diff[:5])}); every "
            "partition of a dataset needs the same columns and types: rewrite it or move it out"
        )


@dataclass(frozen=True)
class Window:
    """Rows whose ``column`` lies in ``(as_of - last, as_of]`` (no lower end without ``last``)."""

    column: str
    as_of: datetime
    last: timedelta | None = None

    @property
    def start(self) -> datetime | None:
        return None if self.last is None else self.as_of - self.last

    def describe(self) -> str:
        lo = "the beginning" if self.start is None else _iso(self.start)
        return f"{self.column} in ({lo}, {_iso(self.as_of)}]"


def utc_time(lf: pl.LazyFrame, column: str, key: str) -> pl.Expr:
    """The time column as UTC datetimes: dates are midnight UTC, naive datetimes are UTC."""
    schema = lf.collect_schema()
    if column not in schema:
        raise DataError(
            f"{key}: data.time_column {column!r} is not a column of the source; its columns: "
            f"{', '.join(schema.names()[:20])}"
        )
    dtype = schema[column]
    col = pl.col(column)
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(dtype, pl.Datetime):
        return (
            col.dt.replace_time_zone("UTC")
            if dtype.time_zone is None
            else col.dt.convert_time_zone("UTC")
        )
    raise DataError(
        f"{key}: data.time_column {column!r} is {dtype}, not a date or datetime; store it as "
        "one (in SQL: CAST(... AS TIMESTAMP))"
    )


def apply_window(lf: pl.LazyFrame, window: Window, key: str) -> pl.LazyFrame:
    t = utc_time(lf, window.column, key)
    keep = t <= window.as_of
    if window.start is not None:
        keep = keep & (t > window.start)
    return lf.filter(keep)


def read_sql(uri_env: str, query: str, window: Window | None, key: str) -> pl.LazyFrame:
    """Rows of ``query`` (ADBC), the window pushed down to the database with a day's margin
    either side (time zones); the exact window is then applied in polars."""
    from labelwise.pipeline.environment import redact

    uri = os.environ.get(uri_env)
    if not uri:
        raise ConfigError(
            f"{key}.uri_env: the environment variable {uri_env} is not set; export it with "
            "the database URI (postgresql://user:password@host:5432/db)"
        )
    sql = query.strip().rstrip(";")
    if window is not None:
        col = '"' + window.column.replace('"', '""') + '"'
        cond = [f"{col} <= '{_iso(window.as_of + timedelta(days=1))}'"]
        if window.start is not None:
            cond.append(f"{col} > '{_iso(window.start - timedelta(days=1))}'")
        sql = f"SELECT * FROM ({sql}) AS labelwise_source WHERE {' AND '.join(cond)}"
    try:
        df = pl.read_database_uri(sql, uri, engine="adbc")
    except ImportError as exc:
        raise ConfigError(
            f"{key}: reading SQL needs the ADBC driver: pip install 'labelwise[sql]' ({exc})"
        ) from None
    except pl.exceptions.DuplicateError as exc:  # the database answered; a table cannot hold it
        raise DataError(
            f"{key}: the query returns a column name more than once ({exc}); give each "
            "column its own name (SELECT a.x AS a_x, b.x AS b_x ...)"
        ) from None
    except Exception as exc:  # the driver's own error: unreachable server, bad SQL...
        raise DataError(
            f"{key}: the database at {server_of(uri)} refused the query "
            f"({type(exc).__name__}: {redact(str(exc))[:600]})"
        ) from None
    return df.lazy()


def server_of(uri: str) -> str:
    """host:port/db of a database URI, without credentials."""
    from urllib.parse import urlsplit

    u = urlsplit(uri)
    return f"{u.hostname or 'localhost'}{':' + str(u.port) if u.port else ''}{u.path}"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


def parse_as_of(text: str | datetime | None) -> datetime:
    """An as-of time in UTC: an ISO date/time (naive means UTC), or now."""
    if text is None:
        return datetime.now(UTC)
    t = text if isinstance(text, datetime) else datetime.fromisoformat(str(text))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


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


def _is_parquet_file(spec: str) -> bool:
    return scheme(spec) is None and not is_glob(spec) and Path(spec).suffix.lower() == ".parquet"


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class SqlQuery(Protocol):
    """A SQL source as the config declares it (``data.sql`` / ``monitoring.sql``)."""

    @property
    def uri_env(self) -> str: ...

    @property
    def query(self) -> str: ...


def materialise(
    source: str | SqlQuery,
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

    lf, text, db = open_source(source, window, key)
    kept = {*partitions_kept, time_column, window.column if window else None}
    dropped = [c for c in partition_columns(source, lf) if c not in kept]
    lf = lf.drop(dropped)
    what = redact(text)[:300]
    if window is not None:
        lf = apply_window(lf, window, key)
        what += f", rows with {window.describe()}"
    copy_of = None
    if window is None and isinstance(source, str) and _is_parquet_file(source):
        copy_of = source  # the file's own bytes: its digest stays the file's
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
        kind=source_kind(source),
        database=db,
        dropped=tuple(dropped),
        window=window.describe() if window is not None else None,
        as_of=window.as_of.isoformat() if window is not None else None,
        max_time=max_time,
    )


def partition_columns(source: str | SqlQuery, lf: pl.LazyFrame) -> list[str]:
    """The columns a folder's (or object store's) hive paths add to its files' own."""
    if not isinstance(source, str) or source_kind(source) == "file":
        return []
    spec = check_spec(source)
    files = [spec] if scheme(spec) is not None else local_matches(spec)[:1]
    own = set(pl.scan_parquet(files, hive_partitioning=False).collect_schema().names())
    return [c for c in lf.collect_schema().names() if c not in own]


def open_source(
    source: str | SqlQuery, window: Window | None, key: str
) -> tuple[pl.LazyFrame, str, Database | None]:
    """(lazy rows, what they are read from, the database of a SQL source)."""
    if isinstance(source, str):
        return scan_source(source, key), source, None
    lf = read_sql(source.uri_env, source.query, window, key)
    db = Database(server=server_of(os.environ[source.uri_env]), uri_env=source.uri_env)
    return lf, f"{source.query.strip()} (database {db.server} from ${source.uri_env})", db


def source_kind(source: str | SqlQuery) -> str:
    """file, files (a folder or glob), object_store or sql."""
    if not isinstance(source, str):
        return "sql"
    if scheme(source) is not None:
        return "object_store"
    return "files" if is_glob(source) or Path(source).is_dir() else "file"
