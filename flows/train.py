"""The train flow: load -> validate -> split -> train -> evaluate -> track -> register."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from labelwise.pipeline.config import Config, load_config
from labelwise.pipeline.environment import configure_environment
from labelwise.pipeline.records import FitSummary, Skipped, Snapshot, SplitPaths, TrainResult

if TYPE_CHECKING:
    from prefect.futures import PrefectFuture
    from prefect.task_runners import TaskRunner

    from labelwise.tasks.data import SourceNames


@flow(
    name="labelwise-train",
    log_prints=True,
    # Prefect types the parameter as TaskRunner[PrefectFuture] (invariant): a cast, not a change
    task_runner=cast(
        "TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2)
    ),
)
def train_flow(
    config_path: str,
    overrides: dict[str, Any] | None = None,
    register_version: bool = True,
    as_of: str | None = None,
    snapshot: str | None = None,
) -> TrainResult:
    """Train, evaluate, track and register the model a config describes.

    ``overrides`` sets dotted config keys for this run, e.g. ``{"model.preset": "fast"}``.
    ``as_of`` (ISO time) ends the data window; by default the flow run's scheduled start, so
    a deployment run, retried or re-run, reads the same rows. ``snapshot`` (an MLflow run id)
    trains on exactly the rows that run read, whatever the source holds now.
    """
    from prefect.runtime import flow_run

    from labelwise.tasks.data import (
        SourceNames,
        job_lock,
        scheduled_start,
        snapshot_data,
        snapshot_notes,
        workdir_for,
    )
    from labelwise.tasks.lineage import fetch_snapshot

    configure_environment()  # a worker's run gets the same client defaults as the CLI
    cfg = load_config(config_path, overrides)
    when = as_of or scheduled_start()
    info = snapshot_data(cfg, when, fetch_snapshot(cfg, snapshot) if snapshot else None)
    with SourceNames() as names, job_lock(workdir_for(cfg, info.train.digest), cfg.name):
        names.add(cfg, info)
        result = _run_job(cfg, info, register_version, names)
    notes = (*snapshot_notes(info), *result.notes)
    return dataclasses.replace(result, notes=notes, flow_run_id=str(flow_run.id))


def _run_job(
    cfg: Config, info: Snapshot, register_version: bool, names: SourceNames
) -> TrainResult:
    """The job under its lock: nothing when an identical version exists, else one MLflow run
    that ends FINISHED only after registration, FAILED (nothing registered) on any error
    (recorded on the run as the user will read it: naming their sources)."""
    from labelwise.tasks.runs import repair_abandoned_runs, start_run, tracked_run

    repaired = tuple(
        repair_abandoned_runs(cfg)
    )  # before the identical check: an orphan is no model
    skipped = _nothing_to_do(cfg, info) if register_version else None
    if skipped is not None:
        return TrainResult(skipped=skipped, notes=repaired)
    with tracked_run(cfg, lambda: start_run(cfg, info), on_error=names.rename) as run_id:
        result = _train_and_track(cfg, info, run_id, register_version, names)
    for msg in result.warnings:
        print(f"warning: {msg}")
    m, v = result.metrics, result.version
    print(
        f"run {run_id}: test f1_micro={m['f1_micro']:.4f} f1_macro={m['f1_macro']:.4f}"
        + (f"; registered {v.name} v{v.version}" if v else "")
    )
    return dataclasses.replace(result, notes=(*repaired, *result.notes))


def _nothing_to_do(cfg: Config, info: Snapshot) -> Skipped | None:
    """Why this run need not train: an identical version exists, or the champion of this
    config already saw the newest row of the window. None when it must train."""
    from labelwise.tasks.registry import identical_version, nothing_new

    same = identical_version(cfg, info)
    if same is not None:
        why = (
            f"identical to {same.name} v{same.version} (same config and data digests, run "
            f"{same.run_id}); nothing trained or registered"
        )
        print(why)
        return Skipped("identical", same.name, str(same.version), str(same.run_id), why)
    seen = nothing_new(cfg, info)
    if seen is not None:
        why = (
            f"the newest row in the window ({info.train.max_time}) is no newer than what "
            f"{seen.name} v{seen.version} was trained on ({seen.tags['data.max_time']}); "
            "nothing trained or registered"
        )
        print(f"nothing new: {why}")
        return Skipped("nothing_new", seen.name, str(seen.version), str(seen.run_id), why)
    return None


def _verified(task: Any, ok: Callable[[Any], bool], notes: list[str], *args: Any) -> Any:
    """A cached task's result, recomputed when the files it names are gone or damaged (a
    user who frees disk by deleting the state directory's runs/ must not break the job)."""
    result = task(*args)
    if not ok(result):
        notes.append(f"{task.name}: its cached result named missing or damaged files; redone")
        result = task.with_options(refresh_cache=True)(*args)
    return result


def _train_and_track(
    cfg: Config, info: Snapshot, run_id: str, register_version: bool, names: SourceNames
) -> TrainResult:
    """Contract, split, fit, evaluate, profile, log and register, inside the MLflow run. Its
    warnings name the user's sources, as its errors do."""
    from labelwise.engine.persistence import verify_model_dir
    from labelwise.tasks.contract import validate_contract
    from labelwise.tasks.data import check_evaluable, split_data, test_only_labels, workdir_for
    from labelwise.tasks.lineage import log_contract, log_datasets
    from labelwise.tasks.model_logging import log_model, log_results, register_model
    from labelwise.tasks.progress import stage
    from labelwise.tasks.train import train_model

    stage("data contract")
    for part, entry in info.parts().items():
        report = validate_contract(cfg, entry.path, part, entry.source)
        log_contract(cfg, run_id, report, part)
    workdir = workdir_for(cfg, info.train.digest)
    stage("split")
    notes: list[str] = []
    files_exist = lambda p: all(Path(x).is_file() for x in p.parts().values())  # noqa: E731
    paths: SplitPaths = _verified(split_data, files_exist, notes, cfg, info, str(workdir))
    check_evaluable(cfg, paths.test)
    unseen = test_only_labels(cfg, paths.train, paths.test)
    log_datasets(cfg, run_id, paths, info)
    stage("fit per-label models")
    fit: FitSummary = _verified(
        train_model,
        lambda t: verify_model_dir(t.model_dir),
        notes,
        cfg,
        paths.train,
        info.train.digest,
        str(workdir),
    )
    fit = _with_label_changes(cfg, fit)
    stage("evaluate on the test table")
    metrics, warned = _evaluate(cfg, fit.model_dir, paths, workdir)
    fit = fit.warned(*unseen, *warned)
    fit = dataclasses.replace(fit, warnings=tuple(names.named(w) for w in fit.warnings))
    stage("log to MLflow")
    log_results(cfg, run_id, fit, metrics, str(workdir / "evaluation"), info)
    model_uri = log_model(cfg, run_id, fit.model_dir, paths.test)
    stage("register")
    version = register_model(cfg, run_id, model_uri, metrics, info) if register_version else None
    return TrainResult(
        run_id=run_id,
        metrics=metrics,
        model_uri=model_uri,
        version=version,
        model_dir=fit.model_dir,
        fit_seconds=fit.fit_seconds,
        warnings=fit.warnings,
        notes=tuple(notes),
    )


def _with_label_changes(cfg: Config, fit: FitSummary) -> FitSummary:
    """The fit with the labels it gained and lost against the champion, if any: said now (a
    warning), tagged on the run, and decided by the promotion gate."""
    from labelwise.tasks.descriptions import label_change_note

    change = label_change_note(cfg, list(fit.labels))
    if change is None:
        return fit
    return dataclasses.replace(fit, label_changes=change).warned(change)


def _evaluate(
    cfg: Config, model_dir: str, paths: SplitPaths, workdir: Path
) -> tuple[dict[str, float], list[str]]:
    """Test metrics (and the predictions' warnings), per-label table and plots; then the
    monitoring profile, from the same test scores (scoring a 983-label model twice cost 7 s)."""
    from labelwise.tasks.train import evaluate_model, profile_model

    scores = str(workdir / "test_scores.npy")
    out = str(workdir / "evaluation")
    metrics, warned = evaluate_model(cfg, model_dir, paths.test, out, scores_path=scores)
    profile_model(cfg, model_dir, paths.train, paths.test, scores)
    return metrics, warned
