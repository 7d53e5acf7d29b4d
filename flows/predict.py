"""The predict flow: batch-score a table with a registered model or a model directory."""

from __future__ import annotations

from prefect import flow, task

from labelwise.pipeline.records import BatchPrediction
from labelwise.tasks.scoring import score_file

# the flow's one task; the plain function is what `labelwise predict` calls without a server
score_chunks = task(name="score-chunks")(score_file)


@flow(name="labelwise-predict", log_prints=True)
def predict_flow(
    model: str,
    input_path: str,
    output_path: str,
    chunk_rows: int = 100_000,
    tracking_uri: str | None = None,
    overwrite: bool = False,
    top_k: int | None = None,
) -> BatchPrediction:
    """Score ``input_path`` with ``model`` into a parquet file at ``output_path`` (an existing
    file only with ``overwrite``); ``top_k``: the k most probable labels per row instead of a
    probability column per label."""
    result = score_chunks(
        model, input_path, output_path, chunk_rows, tracking_uri, overwrite, top_k
    )
    msg = (
        f"scored {result.rows} rows with {result.model} -> {result.output} "
        f"({result.seconds:.1f} s, {result.rows_per_second:,.0f} rows/s)"
    )
    if result.unseen_categories:
        msg += f"; unseen categories treated as missing: {result.unseen_categories}"
    print(msg)
    return result
