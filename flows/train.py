"""The train flow: load -> validate -> split -> train -> evaluate -> track -> register."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from labelwise.config import Config, load_config
from labelwise.runtime import configure_environment


def workdir_for(cfg: Config, data_digest: str) -> Path:
    """One folder per (config, data): reruns of the same job find their finished steps there."""
    from labelwise.runtime import state_dir

    d = state_dir() / "runs" / cfg.name / f"{cfg.digest()}-{data_digest[:12]}"
    d.mkdir(parents=True, exist_ok=True)
    return d


@flow(name="labelwise-train", log_prints=True,
      task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2))
def train_flow(config_path: str, overrides: dict[str, Any] | None = None,
               register_version: bool = True) -> dict[str, Any]:
    """Train, evaluate, track and register the model a config describes.

    ``overrides`` sets dotted config keys for this run, e.g. ``{"model.preset": "fast"}``.
    """
    from tasks.contract import validate_contract
    from tasks.data import inspect_data, split_data
    from tasks.tracking import (
        finish_run,
        log_contract,
        log_datasets,
        log_model,
        log_results,
        register_model,
        start_run,
        unreachable_server,
    )
    from tasks.train import evaluate_model, profile_model, train_model

    configure_environment()  # a worker's run gets the same client defaults as the CLI
    cfg = load_config(config_path, overrides)
    info = inspect_data(cfg)
    run_id = None
    try:
        run_id = start_run(cfg, info)
        for part in ("train", "test"):
            if part in info:
                report = validate_contract(cfg, info[part]["path"], part)
                log_contract(cfg, run_id, report, part)
        workdir = workdir_for(cfg, info["train"]["digest"])
        paths = split_data(cfg, info, str(workdir))
        log_datasets(cfg, run_id, paths, info)
        trained = train_model(cfg, paths["train"], info["train"]["digest"], str(workdir))
        metrics = evaluate_model(cfg, trained["model_dir"], paths["test"],
                                 str(workdir / "evaluation"))
        profile_model(cfg, trained["model_dir"], paths["train"], paths["test"])
        log_results(cfg, run_id, trained, metrics, str(workdir / "evaluation"))
        model_uri = log_model(cfg, run_id, trained["model_dir"], paths["test"])
        version = register_model(cfg, run_id, model_uri, metrics) if register_version else None
    except BaseException as exc:
        marked = run_id is not None and finish_run(
            cfg, run_id, "FAILED", error=f"{type(exc).__name__}: {exc}",
            report=getattr(exc, "report", None))
        server = unreachable_server(cfg, exc)
        if server:
            from labelwise.errors import TrackingServerError

            state = ("the run is marked FAILED and registered nothing" if marked else
                     "the next run of this config marks a run left RUNNING as FAILED")
            raise TrackingServerError(
                f"the MLflow tracking server {server} stopped answering (run {run_id}), after "
                f"the bounded retries; {state}. Check the server, then run the same command "
                "again: the finished per-label models are reused") from exc
        raise
    finish_run(cfg, run_id, "FINISHED")
    for msg in trained.get("warnings", []):
        print(f"warning: {msg}")
    print(f"run {run_id}: test f1_micro={metrics['f1_micro']:.4f} "
          f"f1_macro={metrics['f1_macro']:.4f}" + (f"; registered {version['name']} "
                                                    f"v{version['version']}" if version else ""))
    from prefect.runtime import flow_run

    return {"run_id": run_id, "metrics": metrics, "model_uri": model_uri,
            "flow_run_id": str(flow_run.id),
            "version": version, "model_dir": trained["model_dir"],
            "fit_seconds": trained["fit_seconds"], "warnings": trained.get("warnings", [])}
