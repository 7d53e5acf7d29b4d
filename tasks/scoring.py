"""Batch scoring: a parquet/CSV/NDJSON table in, probabilities and label sets out, written in
bounded-memory chunks to a temporary name and renamed when complete."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from labelwise.pipeline.records import BatchPrediction

# the most probability cells a chunk of batch predict holds (float64: 160 MB)
CHUNK_CELLS = 20_000_000

if TYPE_CHECKING:
    from pathlib import Path

    import polars as pl

    from labelwise.engine.classifier import LabelwiseClassifier


def scored_frame(clf: LabelwiseClassifier, S: Any, top: int | None = None) -> pl.DataFrame:
    """The scored columns of probabilities ``S``: ``p:<label>`` (or, with ``top``, the
    ``top_labels`` and ``top_scores`` of the ``top`` most probable labels) and the label set."""
    import polars as pl

    from labelwise.engine.scored import (
        LABELS_COLUMN,
        TOP_LABELS,
        TOP_SCORES,
        label_sets,
        proba_columns,
        top_k,
    )

    P = clf.predict_from_proba(S)
    if top:
        names, scores = top_k(S, clf.labels_, top)
        columns = [
            pl.Series(TOP_LABELS, names, dtype=pl.List(pl.String)),
            pl.Series(TOP_SCORES, scores, dtype=pl.List(pl.Float64)),
        ]
    else:
        dense = S.toarray() if hasattr(S, "toarray") else S
        columns = [pl.Series(c, dense[:, j]) for j, c in enumerate(proba_columns(clf.labels_))]
    return pl.DataFrame(
        [*columns, pl.Series(LABELS_COLUMN, label_sets(P, clf.labels_), dtype=pl.List(pl.String))]
    )


def score_file(
    model: str,
    input_path: str,
    output_path: str,
    chunk_rows: int,
    tracking_uri: str | None,
    overwrite: bool = False,
    top: int | None = None,
) -> BatchPrediction:
    """Score ``input_path`` with ``model`` into parquet at ``output_path``; other columns of
    the input pass through. The output is checked before anything is read (never the input
    itself, a directory or device, or an existing file unless ``overwrite``) and written under
    a temporary name that is removed on failure. ``top``: the most probable labels and their
    probabilities instead of a column per label."""

    from labelwise.engine.data import TRAINED_WITH, check_output, require_columns, scan_table
    from labelwise.pipeline.tables import named_errors
    from labelwise.tasks.registry import load_model

    out = check_output(output_path, [input_path], overwrite)
    clf, what = load_model(model, tracking_uri)
    lf = scan_table(input_path)
    names = lf.collect_schema().names()
    require_columns(names, clf.encoder_.features, input_path, why=f"{what}: {TRAINED_WITH}")
    _refuse_output_columns(names, clf, input_path, top)
    keep = [c for c in names if c not in set(clf.encoder_.features)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    started = time.perf_counter()
    try:
        with named_errors(input_path):  # the engine calls its input X
            n_rows, unseen = _write_scored(clf, lf, keep, chunk_rows, top, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)  # never leave a half-written output under the final name
    return BatchPrediction(
        rows=n_rows,
        output=str(out),
        model=what,
        unseen_categories=unseen,
        seconds=time.perf_counter() - started,
    )


def _write_scored(
    clf: LabelwiseClassifier,
    lf: pl.LazyFrame,
    keep: list[str],
    chunk_rows: int,
    top: int | None,
    path: Path,
) -> tuple[int, dict[str, int]]:
    """Score ``lf`` chunk by chunk into parquet at ``path`` (the ``keep`` columns, then the
    scored ones); the rows written and the unseen categories counted."""
    import polars as pl

    n_rows, writer = 0, None
    unseen: dict[str, int] = {}
    try:
        # a chunk's probabilities stay within CHUNK_CELLS (100,000 rows x 20,000 labels would
        # be 16 GB); a label tree's are sparse until a column per label is asked for
        rows = max(1, min(chunk_rows, CHUNK_CELLS // max(len(clf.labels_), 1)))
        for chunk in _chunks(lf, rows):
            S = clf.predict_proba(chunk.select(clf.encoder_.features), sparse=clf.sparse_proba)
            for k, v in clf.encoder_.unseen_counts.items():
                unseen[k] = unseen.get(k, 0) + v
            table = pl.concat(
                [chunk.select(keep), scored_frame(clf, S, top)], how="horizontal"
            ).to_arrow()
            if writer is None:
                import pyarrow.parquet as pq

                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            n_rows += chunk.height
    finally:
        if writer is not None:
            writer.close()
    return n_rows, unseen


def _refuse_output_columns(
    names: list[str], clf: LabelwiseClassifier, source: str, top: int | None = None
) -> None:
    """An input column named like an output (``p:<label>``, ``labels``) would be silently
    replaced in the scored table: refuse it, naming the columns."""
    from labelwise.engine.errors import DataError
    from labelwise.engine.scored import LABELS_COLUMN, TOP_LABELS, TOP_SCORES, proba_columns

    outputs = [TOP_LABELS, TOP_SCORES] if top else proba_columns(clf.labels_)
    clash = [c for c in [*outputs, LABELS_COLUMN] if c in names]
    if clash:
        raise DataError(
            f"{source}: column(s) {clash} have the names of the scored output "
            "columns; rename or drop them before scoring"
        )


def _chunks(lf: pl.LazyFrame, rows: int) -> Iterator[pl.DataFrame]:
    """The table ``rows`` at a time (one empty chunk for an empty table)."""
    offset = 0
    while True:
        chunk = lf.slice(offset, rows).collect()
        if chunk.height or offset == 0:
            yield chunk
        if chunk.height < rows:
            return
        offset += rows
