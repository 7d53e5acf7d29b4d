"""Deployments on a Prefect server: scheduled retraining (cron from the config) and promotion.

Equivalent to ``prefect deploy --all`` with ``prefect.yaml``; this version reads the schedule
from the labelwise config, so the config stays the one place a job is described.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, cast

from labelwise.pipeline.config import load_config
from labelwise.pipeline.records import Deployments, TriggeredRun

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.client.schemas.objects import FlowRun

ROOT = Path(__file__).resolve().parents[1]
WORK_POOL = "labelwise"


def ensure_work_pool(name: str = WORK_POOL) -> None:
    """Create the process work pool if the server does not have it yet."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))


# deployment kind -> the flow it runs
FLOWS = {
    "retrain": "labelwise-train",
    "promote": "labelwise-promote",
    "monitor": "labelwise-monitor",
}


def trigger(config_path: str, kind: str = "retrain") -> TriggeredRun:
    """Ask for a run of the config's ``kind`` deployment now (a worker picks it up): the
    flow run's id and name; a deployment that does not exist is named, with the fix."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from labelwise.engine.errors import ConfigError

    cfg = load_config(config_path)
    name = f"{FLOWS[kind]}/{cfg.name}-{kind}"
    try:
        run = cast(
            "FlowRun", run_deployment(name=name, timeout=0)
        )  # sync-compatible: not async here
    except ObjectNotFound:
        raise ConfigError(
            f"no deployment {name!r} on the Prefect server: run `labelwise deploy -c "
            f"{config_path}` first"
        ) from None
    return TriggeredRun(deployment=name, flow_run_id=str(run.id), flow_run=run.name)


def deploy(config_path: str, work_pool: str = WORK_POOL) -> Deployments:
    """Create (or update) ``<name>-retrain`` (on ``schedule.cron``), ``<name>-promote`` and
    ``<name>-monitor`` (on ``monitoring.cron``) deployments on the work pool."""
    from prefect import flow as prefect_flow
    from prefect.schedules import Cron

    cfg = load_config(config_path)
    config_abs = str(Path(config_path).resolve())
    ensure_work_pool(work_pool)
    tz = cfg.schedule.timezone
    jobs = [  # (deployment, entrypoint, cron, what it does)
        (
            "retrain",
            "flows/train.py:train_flow",
            cfg.schedule.cron,
            f"retrain {cfg.name} on fresh data (config {config_abs})",
        ),
        (
            "promote",
            "flows/promote.py:promote_flow",
            None,
            f"challenger vs champion for {cfg.name}",
        ),
        (
            "monitor",
            "flows/monitor.py:monitor_flow",
            cfg.monitoring.cron,
            f"label-wise drift of {cfg.name}'s incoming batch against the champion",
        ),
    ]
    ids: dict[str, str] = {}
    for kind, entrypoint, cron, description in jobs:
        fl = cast(
            "Flow[..., object]", prefect_flow.from_source(source=str(ROOT), entrypoint=entrypoint)
        )
        with contextlib.redirect_stdout(io.StringIO()):  # Prefect's own table, three times
            ids[kind] = str(
                fl.deploy(
                    name=f"{cfg.name}-{kind}",
                    work_pool_name=work_pool,
                    schedules=[Cron(cron, timezone=tz)] if cron else [],
                    parameters={"config_path": config_abs},
                    tags=["labelwise", cfg.name],
                    description=description,
                    print_next_steps=False,
                    build=False,
                    push=False,
                    ignore_warnings=True,
                )
            )
    return Deployments(ids, work_pool, cfg.schedule.cron, cfg.monitoring.cron)


def run_worker(pool: str = WORK_POOL, run_once: bool = False) -> None:
    """Run the work pool's flow runs as they fall due, each in its own process with this
    process's environment (state directory, result storage), until interrupted; with
    ``run_once``, those due now, then return. Prefect's process worker, started with the
    API URL the command found, so a user never starts a bare ``prefect worker`` that has
    none."""
    import asyncio

    from prefect.workers.process import ProcessWorker

    ensure_work_pool(pool)

    async def work() -> None:
        async with ProcessWorker(work_pool_name=pool) as worker:
            await worker.start(run_once=run_once, printer=print)

    asyncio.run(work())
