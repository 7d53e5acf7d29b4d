"""Deployments on a Prefect server: scheduled retraining (cron from the config) and promotion.

Equivalent to ``prefect deploy --all`` with ``prefect.yaml``; this version reads the schedule
from the labelwise config, so the config stays the one place a job is described.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelwise.pipeline.config import load_config

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


def deploy(config_path: str, work_pool: str = WORK_POOL) -> dict[str, Any]:
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
    ids: dict[str, Any] = {}
    for kind, entrypoint, cron, description in jobs:
        fl = prefect_flow.from_source(source=str(ROOT), entrypoint=entrypoint)
        ids[kind] = fl.deploy(
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
    return {k: str(v) for k, v in ids.items()} | {
        "work_pool": work_pool,
        "cron": cfg.schedule.cron,
        "monitor_cron": cfg.monitoring.cron,
    }
