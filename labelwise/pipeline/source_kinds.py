"""The kinds of place a job's rows are read from, one class each, registered in ``KINDS``:
a table file, a local folder or glob of parquet files, an object-store URI, a SQL query.
:func:`source_for` picks the kind of a config's source; the snapshot, the run's lineage and
monitoring only talk to a :class:`Source`. A new kind is one class and its ``@register``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Protocol

import polars as pl

from labelwise.engine.errors import DataError
from labelwise.pipeline.records import Database
from labelwise.pipeline.sources import (
    OBJECT_STORES,
    SqlQuery,
    Window,
    is_glob,
    local_matches,
    local_path,
    read_sql,
    scheme,
    server_of,
)

# what a config names as a source: a path, folder, glob or URI, or a SQL query
SourceRef = str | SqlQuery


class Source(Protocol):
    """Rows a config names. ``kind`` is the name runs and versions are tagged with."""

    kind: ClassVar[str]

    def scan(self, window: Window | None, key: str) -> pl.LazyFrame:
        """The rows (``window`` may be pushed down; the snapshot applies it exactly); a
        :class:`DataError` naming ``key`` when they cannot be read."""
        ...

    def describe(self) -> str:
        """What the rows are read from, for messages and lineage (redacted by the caller)."""
        ...

    def database(self) -> Database | None:
        """The database of a SQL source (for the run's dataset lineage), else None."""
        ...

    def partition_columns(self, lf: pl.LazyFrame) -> list[str]:
        """The columns the source's layout adds to its files' own (hive ``region=eu/``)."""
        ...

    def file_to_copy(self) -> str | None:
        """A parquet file whose bytes are the snapshot as they are (its digest stays the
        file's), when there is no window to apply; None to write the scanned rows."""
        ...


KINDS: list[tuple[Callable[[SourceRef], bool], Callable[[SourceRef], Source]]] = []


def register(
    handles: Callable[[SourceRef], bool],
) -> Callable[[Callable[[SourceRef], Source]], Callable[[SourceRef], Source]]:
    """Register a source kind for the specs ``handles`` accepts (tried in registration order,
    the first that accepts a spec reads it)."""

    def add(kind: Callable[[SourceRef], Source]) -> Callable[[SourceRef], Source]:
        KINDS.append((handles, kind))
        return kind

    return add


def source_for(spec: SourceRef) -> Source:
    """The registered kind that reads ``spec``; a ValueError naming what can be read when
    none does (an unknown URI scheme)."""
    for handles, kind in KINDS:
        if handles(spec):
            return kind(spec)
    what = f"{scheme(spec)}://" if isinstance(spec, str) else type(spec).__name__
    raise ValueError(
        f"unknown source kind {what!r} in {spec!r}; give a local path, folder or glob, "
        f"an object-store URI ({', '.join(x + '://' for x in ('s3', 'gs', 'az'))}), "
        "or a data.sql query"
    )


def check_source(spec: str) -> str:
    """A config's source string, refused unless a registered kind reads it (the config's
    validator: an unknown kind is an error when the config is loaded, not when it runs)."""
    source_for(spec)
    return local_path(spec) if _local(spec) else spec


def _uri(spec: SourceRef) -> bool:
    return isinstance(spec, str) and scheme(spec) in OBJECT_STORES


def _local(spec: SourceRef) -> bool:
    return isinstance(spec, str) and scheme(spec) in (None, "file")


def _local_files(spec: SourceRef) -> bool:
    if not _local(spec):
        return False
    path = local_path(str(spec))
    return is_glob(path) or Path(path).is_dir()


@register(lambda spec: not isinstance(spec, str))
class SqlSource:
    """Rows of a query against the database whose URI the environment variable
    ``uri_env`` holds (ADBC); the window is pushed down to the database."""

    kind: ClassVar[str] = "sql"

    def __init__(self, spec: SourceRef) -> None:
        if isinstance(spec, str):
            raise TypeError(f"a SQL source is a query, not {spec!r}")
        self.spec = spec

    def scan(self, window: Window | None, key: str) -> pl.LazyFrame:
        return read_sql(self.spec.uri_env, self.spec.query, window, key)

    def describe(self) -> str:
        db = self.database()
        return f"{self.spec.query.strip()} (database {db.server} from ${db.uri_env})"

    def database(self) -> Database:
        import os

        return Database(server=server_of(os.environ[self.spec.uri_env]), uri_env=self.spec.uri_env)

    def partition_columns(self, lf: pl.LazyFrame) -> list[str]:
        return []

    def file_to_copy(self) -> str | None:
        return None


class _Parquet:
    """What the parquet kinds share: a path spec, no database, hive partitions."""

    kind: ClassVar[str] = ""

    def __init__(self, spec: SourceRef) -> None:
        if not isinstance(spec, str):
            raise TypeError(f"a path or URI, not {spec!r}")
        self.spec = local_path(spec)

    def describe(self) -> str:
        return self.spec

    def database(self) -> Database | None:
        return None

    def first_file(self) -> str:
        return self.spec

    def partition_columns(self, lf: pl.LazyFrame) -> list[str]:
        own = set(pl.scan_parquet(self.first_file(), hive_partitioning=False).collect_schema())
        return [c for c in lf.collect_schema().names() if c not in own]

    def file_to_copy(self) -> str | None:
        return None


@register(_uri)
class ObjectStore(_Parquet):
    """Parquet files at an object-store URI (``s3://``, ``gs://``, ``az://``), read by polars'
    own cloud readers, credentials from the environment or the provider's standard chain."""

    kind: ClassVar[str] = "object_store"

    def scan(self, window: Window | None, key: str) -> pl.LazyFrame:
        try:
            lf = pl.scan_parquet(self.spec, hive_partitioning=True)
            lf.collect_schema()
        except Exception as exc:  # polars raises several types for listing and auth failures
            raise DataError(
                f"{key}: cannot read {self.spec} ({type(exc).__name__}: {str(exc)[:400]}); "
                "check the URI "
                "and the credentials in the environment (AWS_*, GOOGLE_*, AZURE_* variables or the "
                "provider's default chain)"
            ) from None
        return lf


@register(_local_files)
class LocalFiles(_Parquet):
    """A local folder (searched recursively) or glob of parquet files, in sorted order;
    hive partitions (``dt=2026-11-23/``) become columns."""

    kind: ClassVar[str] = "files"

    def scan(self, window: Window | None, key: str) -> pl.LazyFrame:
        files = local_matches(self.spec)
        if not files:
            what = "glob matches" if is_glob(self.spec) else "directory holds"
            raise DataError(f"{key}: {self.spec}: the {what} no parquet files; check the path")
        check_same_schema(files, key)
        return pl.scan_parquet(files, hive_partitioning=True)

    def first_file(self) -> str:
        return local_matches(self.spec)[0]


@register(_local)
class TableFile(_Parquet):
    """One table file (parquet, CSV, JSON lines...: whatever ``scan_table`` reads)."""

    kind: ClassVar[str] = "file"

    def scan(self, window: Window | None, key: str) -> pl.LazyFrame:
        from labelwise.engine.data import scan_table

        return scan_table(self.spec)

    def partition_columns(self, lf: pl.LazyFrame) -> list[str]:
        return []

    def file_to_copy(self) -> str | None:
        return self.spec if Path(self.spec).suffix.lower() == ".parquet" else None


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
