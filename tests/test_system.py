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

from labelwise.synthetic import make_multilabel_table
from tests.servers import Stack, http

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _job(tmp: Path, name: str, seed: int = 3, rows: int = 600) -> Path:
    df = make_multilabel_table(n_rows=rows, n_labels=4, seed=seed)
    df.head(rows * 4 // 5).write_parquet(tmp / "train.parquet")
    df.tail(rows // 5).write_parquet(tmp / "test.parquet")
    cfg = {"name": name, "data": {"train": "train.parquet", "test": "test.parquet",
                                  "labels": {"prefix": "label_"}, "exclude": ["id"]},
           "model": {"preset": "fast"}, "contract": {"min_rows": 50},
           "schedule": {"cron": "0 4 * * *"}}
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


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

    res = stack.run(["prefect", "deployment", "run", f"labelwise-train/{name}-retrain"],
                    tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", res.stdout).group(1)

    worker = stack.run(["prefect", "worker", "start", "--pool", pool, "--type", "process",
                        "--run-once"], tmp_path, timeout=900)
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
