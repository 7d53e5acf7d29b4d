"""Where a job's rows come from: source specs, time windows and the SQL reader (the kinds of
source are :mod:`labelwise.pipeline.source_kinds`, the snapshot :mod:`labelwise.pipeline.snapshot`).

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
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import polars as pl

from labelwise.engine.errors import ConfigError, DataError

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


def local_path(spec: str) -> str:
    """A local source's path (a ``file://`` URI as a path)."""
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


class SqlQuery(Protocol):
    """A SQL source as the config declares it (``data.sql`` / ``monitoring.sql``)."""

    @property
    def uri_env(self) -> str: ...

    @property
    def query(self) -> str: ...
