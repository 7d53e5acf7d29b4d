"""Where a run's rows came from: MLflow dataset inputs, the snapshot files as artifacts, the
contract reports, and the snapshot of an earlier run fetched back to train on again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from labelwise.pipeline.config import Config
from labelwise.pipeline.environment import redact
from labelwise.pipeline.records import ContractReport, Snapshot, SplitPaths, TablePart
from labelwise.tasks.tracking import client, tracking_uri


@task(name="log-contract", retries=2, retry_delay_seconds=2)
def log_contract(cfg: Config, run_id: str, report: ContractReport, label: str) -> None:
    client(cfg).log_dict(run_id, dict(report), f"contract/{label}.json")


@task(name="log-dataset", retries=2, retry_delay_seconds=2)
def log_datasets(cfg: Config, run_id: str, paths: SplitPaths, info: Snapshot) -> None:
    """``mlflow.log_input`` lineage: one dataset per part, named by its real source (path, URI
    or query) and the snapshot's digest, tagged with the window and as-of time; the snapshot
    files themselves are logged as artifacts (``snapshot/``), so ``labelwise train --snapshot
    <run id>`` can retrain on exactly these rows after the source has changed."""
    from mlflow.entities import DatasetInput, InputTag

    c = client(cfg)
    inputs = []
    for part, path in paths.parts().items():
        entry = info.parts().get(part, info.train)
        tags = [InputTag("mlflow.data.context", part)]
        shown = {"kind": entry.kind, "window": entry.window, "as_of": entry.as_of}
        tags += [InputTag(f"labelwise.{k}", v) for k, v in shown.items() if v]
        tags.append(InputTag("labelwise.rows", str(entry.rows)))
        ds = _dataset(cfg, part, path, entry)
        inputs.append(DatasetInput(ds._to_mlflow_entity(), tags=tags))
    c.log_inputs(run_id, datasets=inputs)
    for entry in info.parts().values():
        c.log_artifact(run_id, entry.path, "snapshot")


def _dataset(cfg: Config, part: str, path: str, entry: TablePart) -> Any:
    """An MLflow dataset of a table's first 1,000 rows (lineage needs the schema and a
    profile, not the whole table), its source the one the rows were read from."""
    import polars as pl
    from mlflow.data.polars_dataset import from_polars

    from labelwise.engine.data import scan_table

    df = scan_table(path).head(1000).collect()
    sample = df.with_columns(
        [pl.col(c).cast(pl.Int64) for c, t in df.schema.items() if t.is_integer()]
        + [pl.col(c).cast(pl.String) for c, t in df.schema.items() if t.is_temporal()]
    )
    source: Any = entry.source
    if entry.database is not None:
        from labelwise.tasks.sql_source import SqlDatasetSource

        query = cfg.data.sql.query if cfg.data.sql else ""
        db = entry.database
        source = SqlDatasetSource(query=query, server=db.server, uri_env=db.uri_env)
    # a split part is the source's rows too, named by the part it is
    return from_polars(sample, source=source, name=f"{cfg.name}-{part}", digest=entry.digest[:16])


def fetch_snapshot(cfg: Config, run_id: str) -> dict[str, str]:
    """The snapshot files of an earlier run of this job (its ``snapshot/`` artifacts), checked
    against the digests the run recorded: ``{"train": path, "test": path}``."""
    from mlflow.exceptions import MlflowException

    from labelwise.engine.errors import ConfigError, DataError
    from labelwise.pipeline.environment import state_dir
    from labelwise.pipeline.snapshot import file_digest

    c = client(cfg)
    try:
        run = c.get_run(run_id)
    except MlflowException as exc:
        raise ConfigError(
            f"--snapshot {run_id}: no such run at {redact(tracking_uri(cfg))} ({exc})"
        ) from None
    experiment = c.get_experiment(run.info.experiment_id).name
    if experiment != cfg.experiment:
        raise ConfigError(
            f"--snapshot {run_id}: that run belongs to experiment {experiment!r}, not to this "
            f"job's {cfg.experiment!r}; replay a run of this job (its runs are in the MLflow "
            f"UI under {cfg.experiment!r}), or train the config of {experiment!r}"
        )
    tags = run.data.tags
    dst = state_dir() / "snapshots" / f"run-{run_id}"
    try:
        local = Path(c.download_artifacts(run_id, "snapshot", str(dst)))
    except (MlflowException, OSError) as exc:
        raise DataError(
            f"--snapshot {run_id}: the run has no snapshot/ artifacts to train on ({exc}); "
            "only runs of labelwise with data snapshots can be replayed"
        ) from None
    found: dict[str, str] = {}
    for part in ("train", "test"):
        f = local / f"{part}.parquet"
        want = tags.get(f"data.{part}.digest")
        if not f.is_file() or want is None:
            continue
        if file_digest(f) != want:
            raise DataError(f"--snapshot {run_id}: {f} does not match the run's digest {want}")
        found[part] = str(f)
    if "train" not in found:
        raise DataError(f"--snapshot {run_id}: the run's snapshot/ holds no train.parquet")
    return found
