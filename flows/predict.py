"""Batch scoring: a parquet/CSV/NDJSON table in, probabilities and label sets out, in
bounded-memory chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task


def locate_model(model: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """(local directory, description) of ``models:/name@alias``, ``models:/name/3`` or a
    directory; registry models are downloaded."""
    if model.startswith("models:/"):
        from labelwise.runtime import default_tracking_uri
        from tasks.registry import download_model_dir

        mv, model_dir = download_model_dir(tracking_uri or default_tracking_uri(), model)
        return str(model_dir), f"{mv.name} v{mv.version}"
    return model, model


def load_model(model: str, tracking_uri: str | None = None) -> tuple[Any, str]:
    """A LabelwiseClassifier from ``models:/name@alias``, ``models:/name/3`` or a directory."""
    from labelwise.model import LabelwiseClassifier

    model_dir, what = locate_model(model, tracking_uri)
    return LabelwiseClassifier.load(model_dir), what


@task(name="score-chunks")
def score(model: str, input_path: str, output_path: str, chunk_rows: int,
          tracking_uri: str | None) -> dict[str, Any]:
    import polars as pl

    from labelwise.data import scan_table
    from labelwise.errors import DataError
    from labelwise.thresholds import LABELS_COLUMN, PROBA_PREFIX, apply_thresholds, label_sets

    clf, what = load_model(model, tracking_uri)
    lf = scan_table(input_path)
    names = lf.collect_schema().names()
    missing = [f for f in clf.encoder_.features if f not in names]
    if missing:
        raise DataError(f"{input_path}: feature column(s) {missing} are missing; the model "
                        f"({what}) needs them")
    keep = [c for c in names if c not in set(clf.encoder_.features)]
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    n_rows, unseen = 0, {}
    writer = None
    try:
        offset = 0
        while True:
            chunk = lf.slice(offset, chunk_rows).collect()
            if chunk.height == 0 and offset > 0:
                break
            S = clf.predict_proba(chunk.select(clf.encoder_.features))
            for k, v in clf.encoder_.unseen_counts.items():
                unseen[k] = unseen.get(k, 0) + v
            P = apply_thresholds(S, clf.thresholds_, clf.at_least_one)
            res = chunk.select(keep).with_columns(
                [pl.Series(PROBA_PREFIX + lab, S[:, j]) for j, lab in enumerate(clf.labels_)]
                + [pl.Series(LABELS_COLUMN, label_sets(P, clf.labels_),
                             dtype=pl.List(pl.String))])
            table = res.to_arrow()
            if writer is None:
                import pyarrow.parquet as pq

                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            n_rows += chunk.height
            offset += chunk_rows
            if chunk.height < chunk_rows:
                break
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out)  # never leave a half-written output under the final name
    return {"rows": n_rows, "output": str(out), "model": what, "unseen_categories": unseen}


@flow(name="labelwise-predict", log_prints=True)
def predict_flow(model: str, input_path: str, output_path: str, chunk_rows: int = 100_000,
                 tracking_uri: str | None = None) -> dict[str, Any]:
    """Score ``input_path`` with ``model`` into a parquet file at ``output_path``."""
    result = score(model, input_path, output_path, chunk_rows, tracking_uri)
    msg = f"scored {result['rows']} rows with {result['model']} -> {result['output']}"
    if result["unseen_categories"]:
        msg += f"; unseen categories treated as missing: {result['unseen_categories']}"
    print(msg)
    return result
