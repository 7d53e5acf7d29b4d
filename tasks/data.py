"""Reading, fingerprinting and splitting the training table. Tasks pass paths and digests, never
frames (Prefect hashes task inputs for caching and pickles persisted results)."""

from __future__ import annotations

import hashlib
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

    out: dict[str, Any] = {}
    for part in ("train", "test"):
        path = getattr(cfg.data, part)
        if path is None:
            continue
        lf = scan_table(path)
        out[part] = {
            "path": str(path),
            "digest": file_digest(path),
            "columns": lf.collect_schema().names(),
            "rows": int(lf.select(pl.len()).collect().item()),
        }
    return out


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
