"""An MLflow run's lifecycle, in one place: started by its task, ended FINISHED when its block
completes and FAILED when it raises (the error kept on the run, a failed run's versions
deleted, a lost server named), and repaired when its process died without ending it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task

from labelwise.pipeline.config import RUNTIME_SECTIONS, Config
from labelwise.pipeline.environment import pid_alive, redact
from labelwise.pipeline.records import Snapshot
from labelwise.tasks.registry import lineage_tags, source_tags
from labelwise.tasks.run_views import run_name
from labelwise.tasks.tracking import client, experiment_id, tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or "unknown"
        )
    except Exception:
        return "unknown"


@task(name="start-run", retries=2, retry_delay_seconds=2)
def start_run(cfg: Config, info: Snapshot, name: str | None = None) -> str:
    """Create the MLflow run (RUNNING), named for what it trains: the settings that change the
    model as params, where and when it runs as tags, lineage as tags."""
    import lightgbm
    import mlflow

    from labelwise import __version__

    tags = {
        "labelwise.version": __version__,
        "lightgbm.version": lightgbm.__version__,
        "mlflow.version": mlflow.__version__,
        "git.commit": git_commit(),
        "config.digest": cfg.digest(),
        "config.name": cfg.name,
        "mlflow.source.name": "labelwise train",
    }
    tags |= lineage_tags(cfg, info) | source_tags(info)
    flat = cfg.flat()
    runtime = {k for k in flat if k.split(".")[0] in RUNTIME_SECTIONS}
    tags |= {f"labelwise.runtime.{k}": flat[k][:5000] for k in runtime if flat[k] != "None"}
    params = {k: v for k, v in flat.items() if k not in runtime}
    return create_run(cfg, experiment_id(cfg), name or run_name(cfg), tags, params)


def create_run(
    cfg: Config,
    experiment: str,
    name: str,
    tags: Mapping[str, str],
    params: Mapping[str, str] | None = None,
) -> str:
    """A RUNNING run in ``experiment`` with its tags and params, and its owner (host and
    process: a later run can tell it was abandoned, see :func:`repair_abandoned_runs`).
    A run whose params cannot be logged ends FAILED (a retry makes a new one)."""
    from mlflow.entities import Param

    c = client(cfg)
    owner = {"labelwise.host": socket.gethostname(), "labelwise.pid": str(os.getpid())}
    run_id = str(c.create_run(experiment, run_name=name, tags={**tags, **owner}).info.run_id)
    batch = [Param(k[:250], v[:6000]) for k, v in (params or {}).items()]
    try:
        for i in range(0, len(batch), 100):
            c.log_batch(run_id, params=batch[i : i + 100])
    except BaseException as exc:
        end_run(cfg, run_id, "FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    return run_id


@contextmanager
def tracked_run(
    cfg: Config,
    start: Callable[[], str],
    on_error: Callable[[BaseException], None] | None = None,
) -> Iterator[str]:
    """The run ``start`` creates (or reopens), for the block: ended FINISHED when the block
    completes; FAILED when it raises, after ``on_error`` (which may reword the error for the
    user), with the error and a failed contract's report kept on the run. When the error says
    the tracking server stopped answering, a :class:`TrackingServerError` naming the server is
    raised instead. Like ``mlflow.start_run``'s ``ActiveRun``, with explicit run ids (Prefect
    runs tasks on worker threads, where the fluent active run is not shared)."""
    run_id = None
    try:
        run_id = start()
        yield run_id
    except BaseException as exc:
        if on_error is not None:
            on_error(exc)
        lost = _lost_server(cfg, run_id, exc)
        if lost is not None:
            raise lost from exc
        raise
    end_run(cfg, run_id, "FINISHED")


def reopen_run(cfg: Config, run_id: str) -> None:
    """Make an ended run RUNNING again, owned by this process (a resumed tune's run); the
    error it was ended with is dropped."""
    c = client(cfg)
    c.update_run(run_id, status="RUNNING")
    if "labelwise.error" in c.get_run(run_id).data.tags:  # set when it was found abandoned
        c.delete_tag(run_id, "labelwise.error")
    c.set_tag(run_id, "labelwise.pid", str(os.getpid()))
    c.set_tag(run_id, "labelwise.host", socket.gethostname())


def repair_abandoned_runs(cfg: Config) -> list[str]:
    """Mark FAILED the RUNNING runs of this config whose process (on this host) is gone -- a
    run killed with -9, or one that could not reach the server to say it failed -- and delete
    any version they registered before they died; returns what was repaired, in words."""
    c = client(cfg)
    exp = c.get_experiment_by_name(cfg.experiment)
    if exp is None:
        return []
    host = socket.gethostname()
    runs = c.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`config.name` = '{cfg.name}'",
        max_results=200,
    )
    repaired = []
    for r in runs:
        tags = r.data.tags
        pid = tags.get("labelwise.pid", "")
        if tags.get("labelwise.host") != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        run_id = r.info.run_id
        orphans = [mv.version for mv in _versions_of(c, cfg, run_id)]
        why = f"abandoned: process {pid} on {host} ended without finishing the run"
        if not end_run(cfg, run_id, "FAILED", error=why, patience_s=0.0):
            repaired.append(f"run {run_id} ({why}) could not be marked FAILED: try again")
            continue
        gone = f"; deleted its version(s) {orphans}" if orphans else ""
        repaired.append(f"repaired run {run_id} ({why}): marked FAILED{gone}")
    return repaired


def end_run(
    cfg: Config,
    run_id: str,
    status: str,
    error: str | None = None,
    report: Mapping[str, object] | None = None,
    patience_s: float = 60.0,
) -> bool:
    """End the run FINISHED, FAILED or KILLED (with the error and a failed contract's report;
    a FAILED run's registry versions deleted: the registry never keeps a failed run's model).
    A flow that failed because the server went away keeps trying for ``patience_s`` so the
    run does not stay RUNNING; returns False when the server never came back (the next run
    of this config on this host marks it FAILED, see :func:`repair_abandoned_runs`)."""
    delay, deadline = 1.0, time.monotonic() + patience_s
    while True:
        try:
            c = client(cfg)
            if error:
                c.set_tag(run_id, "labelwise.error", redact(error)[:5000])
            if report:
                c.log_dict(run_id, dict(report), "contract/failed.json")
            if status == "FAILED":
                for mv in _versions_of(c, cfg, run_id):
                    c.delete_model_version(mv.name, mv.version)
            c.set_terminated(run_id, status)
            return True
        except Exception:
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def _versions_of(c: MlflowClient, cfg: Config, run_id: str) -> list[ModelVersion]:
    return list(c.search_model_versions(f"name='{cfg.registered_model}' and run_id='{run_id}'"))


def _lost_server(cfg: Config, run_id: str | None, exc: BaseException) -> Exception | None:
    """Mark the run FAILED after ``exc``; when ``exc`` says the tracking server stopped
    answering, the TrackingServerError to raise instead (naming the server without its
    credentials), else None."""
    text = f"{type(exc).__name__}: {exc}"
    report = getattr(exc, "report", None)
    marked = run_id is not None and end_run(cfg, run_id, "FAILED", error=text, report=report)
    lost = (
        r"Max retries exceeded|Connection refused|ConnectionError|"
        r"Failed to establish a new connection|Read timed out"
    )
    if not re.search(lost, text):
        return None
    from labelwise.engine.errors import TrackingServerError

    server = re.sub(r"//[^/@]*@", "//", tracking_uri(cfg))
    state = (
        "the run is marked FAILED and registered nothing"
        if marked
        else "the next run of this config marks a run left RUNNING as FAILED"
    )
    return TrackingServerError(
        f"the MLflow tracking server {server} stopped answering (run {run_id}), after the "
        f"bounded retries; {state}. Check the server, then run the same command again: the "
        "finished per-label models are reused"
    )
