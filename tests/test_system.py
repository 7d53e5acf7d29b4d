"""System tests: real `prefect server` and `mlflow server` on PostgreSQL, a real process worker.

`labelwise deploy` creates the deployments; a triggered retraining is picked up by a worker,
runs to COMPLETED and leaves a new model version with alias ``challenger`` on the server.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
import yaml

from labelwise.engine.synthetic import make_multilabel_table
from tests.helpers import write_job
from tests.servers import Stack, http

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _job(tmp: Path, name: str, seed: int = 3, rows: int = 600) -> Path:
    """A job for the servers' store (none of its own): a scheduled config, a test table."""
    df = make_multilabel_table(n_rows=rows, n_labels=4, seed=seed)
    edits = {"contract.min_rows": 50, "schedule": {"cron": "0 4 * * *"}}
    train, test = df.head(rows * 4 // 5), df.tail(rows // 5)
    return write_job(tmp, name, train, test=test, store=False, edits=edits)[0]


def test_servers_refuse_anonymous_clients(stack: Stack):
    status, _ = http(f"{stack.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1")
    assert status == 401
    assert stack.mlflow_get("experiments/search", max_results="1")[0] == 200
    assert http(f"{stack.prefect_api}/flows/filter", payload={})[0] == 401
    assert stack.prefect_post("flows/filter", {})[0] == 200
    wrong = http(f"{stack.prefect_api}/flows/filter", auth="admin:guess", payload={})
    assert wrong[0] == 401


def test_deploy_trigger_worker_registers_a_challenger(stack: Stack, tmp_path: Path):
    name = f"sys-{secrets.token_hex(3)}"
    pool = f"pool-{name}"
    job = _job(tmp_path, name)

    res = stack.run(["labelwise", "deploy", "-c", str(job), "--work-pool", pool], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    status, deps = stack.prefect_post("deployments/filter", {})
    assert status == 200
    mine = {d["name"]: d for d in deps if d["name"].startswith(name)}
    assert set(mine) == {f"{name}-retrain", f"{name}-promote", f"{name}-monitor"}
    retrain = mine[f"{name}-retrain"]
    assert retrain["work_pool_name"] == pool
    assert [s["schedule"]["cron"] for s in retrain["schedules"]] == ["0 4 * * *"]

    res = stack.run(["prefect", "deployment", "run", f"labelwise-train/{name}-retrain"], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", res.stdout).group(1)

    worker = stack.run(
        ["prefect", "worker", "start", "--pool", pool, "--type", "process", "--run-once"],
        tmp_path,
        timeout=900,
    )
    status, run = http(f"{stack.prefect_api}/flow_runs/{flow_run_id}", auth=stack.prefect_auth)
    assert status == 200
    assert run["state"]["type"] == "COMPLETED", worker.stdout[-6000:] + worker.stderr[-6000:]

    status, body = stack.mlflow_get("registered-models/alias", name=name, alias="challenger")
    assert status == 200, body
    mv = body["model_version"]
    assert mv["version"] == "1" and mv["status"] == "READY"
    status, body = stack.mlflow_get("runs/get", run_id=mv["run_id"])
    assert body["run"]["info"]["status"] == "FINISHED"
    # the run's params carry the config, never a credential of the environment
    params = {p["key"]: p["value"] for p in body["run"]["data"].get("params", [])}
    assert params["name"] == name
    blob = repr(params) + repr(body["run"]["data"].get("tags", []))
    assert stack.mlflow_password not in blob and stack.prefect_auth not in blob
    assert stack.mlflow_password not in worker.stdout + worker.stderr

    # monitoring on the same servers: a batch whose truth has lost three labels -> the monitor
    # deployment's run ends FAILED naming them, and starts the retrain deployment
    import polars as pl

    batch = pl.concat(
        [pl.read_parquet(tmp_path / f"{p}.parquet") for p in ("train", "test")]
    ).with_columns([pl.lit(0).alias(f"label_{j:02d}") for j in range(3)])
    batch.write_parquet(tmp_path / "batch.parquet")
    res = stack.run(
        [
            "prefect",
            "deployment",
            "run",
            f"labelwise-monitor/{name}-monitor",
            "--param",
            f"batch_path={tmp_path / 'batch.parquet'}",
            "--param",
            "retrain=true",
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    monitor_run_id = re.search(r"UUID: ([0-9a-f-]{36})", res.stdout).group(1)
    worker = stack.run(
        ["prefect", "worker", "start", "--pool", pool, "--type", "process", "--run-once"],
        tmp_path,
        timeout=900,
    )
    status, run = http(f"{stack.prefect_api}/flow_runs/{monitor_run_id}", auth=stack.prefect_auth)
    assert run["state"]["type"] == "FAILED", worker.stdout[-6000:] + worker.stderr[-6000:]
    message = run["state"]["message"]
    assert "DriftError" in message and any(f"label_{j:02d}" in message for j in range(3)), message
    status, runs = stack.prefect_post(
        "flow_runs/filter",
        {
            "deployments": {"id": {"any_": [retrain["id"]]}},
            "flow_runs": {"tags": {"all_": ["drift-retrain"]}},
        },
    )
    assert status == 200 and len(runs) == 1, runs


def test_tracking_server_lost_mid_run(stack: Stack, tmp_path: Path):
    """The MLflow server dies while a training run is RUNNING and stays down longer than the
    client's bounded retries: `labelwise train` fails with a message naming the server, and
    once the server is back the run is FAILED and no version is registered."""
    import subprocess
    import time

    from tests.servers import BIN, wait_until

    name = f"fault-{secrets.token_hex(3)}"
    job = _job(tmp_path, name, rows=3000)
    # a small retry budget keeps the test short; the defaults allow ~1 min of outage
    fast = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    proc = subprocess.Popen(
        [str(BIN / "labelwise"), "train", "-c", str(job)],
        env=stack.client_env(tmp_path) | fast,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def running_run() -> dict | None:
        status, body = stack.mlflow_get("experiments/get-by-name", experiment_name=name)
        if status != 200:
            return None
        _, found = stack.mlflow_post(
            "runs/search", {"experiment_ids": [body["experiment"]["experiment_id"]]}
        )
        runs = (found or {}).get("runs", [])
        # started, with its params logged: the flow is past start-run, into the pipeline
        return (
            runs[0]
            if runs and runs[0]["info"]["status"] == "RUNNING" and runs[0]["data"].get("params")
            else None
        )

    deadline = time.monotonic() + 300
    while running_run() is None:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    stack.mlflow.stop()  # the tracking server goes away mid-run
    time.sleep(20)  # longer than the client's retries
    stack.start_mlflow()
    wait_until(lambda: http(f"{stack.mlflow_url}/health")[0] == 200, "mlflow server", stack.mlflow)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, out + err
    said = " ".join(err.split())
    assert stack.mlflow_url in said and "stopped answering" in said, said
    assert stack.mlflow_password not in out + err

    status, body = stack.mlflow_get("experiments/get-by-name", experiment_name=name)
    _, found = stack.mlflow_post(
        "runs/search", {"experiment_ids": [body["experiment"]["experiment_id"]]}
    )
    [run] = found["runs"]
    assert run["info"]["status"] == "FAILED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert "labelwise.error" in tags
    status, body = stack.mlflow_get("registered-models/get", name=name)
    versions = body.get("registered_model", {}).get("latest_versions", []) if status == 200 else []
    assert versions == [], body


def test_scheduled_retrains_follow_a_growing_partitioned_folder(stack: Stack, tmp_path: Path):
    """Three runs of the retrain deployment, picked up by a process worker, on a hive folder
    (dt=YYYY-MM-DD) read with a 30-day window ending at each run's scheduled start: a run after
    a new partition trains on it (its snapshot holds the new rows and its MLflow input differs);
    a run with no new partition ends Completed and registers nothing."""
    from datetime import UTC, datetime, timedelta

    name = f"grow-{secrets.token_hex(3)}"
    pool = f"pool-{name}"
    df = make_multilabel_table(n_rows=1600, n_labels=4, seed=9)
    today = datetime.now(UTC).date()

    def add_day(k: int) -> None:  # day k before today: 400 rows
        folder = tmp_path / "events" / f"dt={today - timedelta(days=k)}"
        folder.mkdir(parents=True)
        df.slice((3 - k) * 400, 400).write_parquet(folder / "part-0.parquet")

    for k in (3, 2, 1):
        add_day(k)
    cfg = {
        "name": name,
        "data": {
            "train": "events/",
            "labels": {"prefix": "label_"},
            "exclude": ["id"],
            "time_column": "dt",
            "window": "30d",
        },
        "split": {"by": "time", "test_last": "1d"},
        "model": {"preset": "fast"},
        "contract": {"min_rows": 50},
        "schedule": {"cron": "0 4 * * *"},
    }
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(cfg))
    res = stack.run(["labelwise", "deploy", "-c", str(job), "--work-pool", pool], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr

    def retrain() -> dict:
        res = stack.run(
            ["prefect", "deployment", "run", f"labelwise-train/{name}-retrain"], tmp_path
        )
        assert res.returncode == 0, res.stdout + res.stderr
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", res.stdout).group(1)
        worker = stack.run(
            ["prefect", "worker", "start", "--pool", pool, "--type", "process", "--run-once"],
            tmp_path,
            timeout=900,
        )
        _, run = http(f"{stack.prefect_api}/flow_runs/{run_id}", auth=stack.prefect_auth)
        assert run["state"]["type"] == "COMPLETED", worker.stdout[-4000:] + worker.stderr[-4000:]
        return run

    def versions() -> list[dict]:
        status, body = stack.mlflow_get("model-versions/search", filter=f"name='{name}'")
        assert status == 200, body
        return sorted(body.get("model_versions", []), key=lambda v: int(v["version"]))

    def train_input(run_id: str) -> dict:
        _, body = stack.mlflow_get("runs/get", run_id=run_id)
        [ds] = [
            d
            for d in body["run"]["inputs"]["dataset_inputs"]
            if {"key": "mlflow.data.context", "value": "train"} in d["tags"]
        ]
        return ds

    retrain()
    add_day(0)
    retrain()
    v1, v2 = versions()
    tags = [{t["key"]: t["value"] for t in v.get("tags", [])} for v in (v1, v2)]
    assert tags[0]["data.max_time"].startswith(str(today - timedelta(days=1)))
    assert tags[1]["data.max_time"].startswith(str(today))  # the new partition is in v2
    d1, d2 = train_input(v1["run_id"]), train_input(v2["run_id"])
    assert d1["dataset"]["digest"] != d2["dataset"]["digest"]
    assert str(tmp_path / "events") in d2["dataset"]["source"]
    _, body = stack.mlflow_get("runs/get", run_id=v2["run_id"])
    run_tags = {t["key"]: t["value"] for t in body["run"]["data"]["tags"]}
    assert run_tags["data.rows"] == "1600"  # 4 days x 400 rows

    retrain()  # no new partition: Completed, nothing registered
    assert len(versions()) == 2
