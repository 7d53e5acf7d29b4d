"""A config's parts (train, test) read from their sources into parquet snapshots: the one way
``train``, ``tune``, ``promote`` and ``validate`` read a job's rows (files, folders, object
stores, SQL; the window ending at the as-of time; partition columns as declared)."""

from __future__ import annotations

from pathlib import Path

from labelwise.pipeline.config import Config
from labelwise.pipeline.records import TablePart
from labelwise.pipeline.snapshot import materialise
from labelwise.pipeline.sources import Window, parse_as_of, parse_duration


def read_part(cfg: Config, part: str, dest: Path, as_of: str | None) -> TablePart | None:
    """Read ``part`` of the config's data (its rows at or before ``as_of`` and inside
    ``data.window``) into the parquet file ``dest``; its lineage (see ``materialise``), or
    None for a test part that is split off the training rows."""
    d = cfg.data
    given = d.source(part)
    if given is None:
        return None
    window = None
    if d.time_column is not None:
        span = parse_duration(d.window) if d.window else None
        window = Window(d.time_column, parse_as_of(as_of), span)
    lab = d.labels
    declared = [*(d.features or []), *(d.text or []), *(lab.columns or []), lab.set_column or ""]
    return materialise(given[0], dest, given[1], window, d.time_column, declared)
