"""The compose file cannot run here (no Docker engine); these checks keep it consistent with
what the system tests do run: the same infra/local scripts, the databases they need, auth on
both servers, and secrets only from the environment."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"


def _compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def test_compose_has_the_documented_services():
    services = _compose()["services"]
    assert {
        "postgres",
        "minio",
        "minio-init",
        "mlflow",
        "prefect-server",
        "prefect-worker",
        "dask-scheduler",
        "dask-worker",
    } <= set(services)
    assert "mc mb" in services["minio-init"]["entrypoint"]
    assert "--type process" in services["prefect-worker"]["command"]
    assert services["dask-worker"]["deploy"]["replicas"] >= 2


def test_servers_run_the_tested_scripts_with_auth():
    services = _compose()["services"]
    mlflow, prefect = services["mlflow"]["command"], services["prefect-server"]["command"]
    assert "infra/local/start-mlflow.sh" in mlflow and "s3://" in mlflow
    assert "infra/local/start-prefect.sh" in prefect
    assert services["mlflow"]["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${")
    assert "PREFECT_SERVER_API_AUTH_STRING" in services["prefect-server"]["environment"]
    for client in ("prefect-worker", "dask-worker"):
        assert "PREFECT_API_AUTH_STRING" in services[client]["environment"]
    script = (INFRA / "local" / "start-mlflow.sh").read_text()
    assert "--app-name basic-auth" in script and "--allowed-hosts" in script
    assert ":?set MLFLOW_AUTH_ADMIN_PASSWORD" in script
    assert (
        ":?set PREFECT_SERVER_API_AUTH_STRING" in (INFRA / "local" / "start-prefect.sh").read_text()
    )
    # the image holds the scripts the services run
    assert "COPY infra/local" in (INFRA / "Dockerfile").read_text()


def test_databases_named_in_urls_are_created():
    text = (INFRA / "compose.yaml").read_text()
    wanted = set(re.findall(r"@postgres:5432/(\w+)", text))
    created = set(re.findall(r"CREATE DATABASE (\w+)", (INFRA / "postgres-init.sql").read_text()))
    assert wanted == {"mlflow", "mlflow_auth", "prefect"} and wanted <= created


def test_no_literal_secret_in_compose():
    def walk(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{path}[{i}]")
        else:
            yield path, str(node)

    for path, value in walk(_compose()):
        key = path.rsplit(".", 1)[-1].upper()
        if any(w in key for w in ("PASSWORD", "SECRET", "AUTH_STRING", "ACCESS_KEY")):
            assert value.startswith("${"), (path, "a secret must come from the environment")


def test_prefect_yaml_deploys_retrain_promote_monitor():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    entries = {d["entrypoint"] for d in spec["deployments"]}
    assert entries == {
        "flows/train.py:train_flow",
        "flows/promote.py:promote_flow",
        "flows/monitor.py:monitor_flow",
    }
    for d in spec["deployments"]:
        path, func = d["entrypoint"].split(":")
        assert f"def {func}(" in (ROOT / path).read_text()
        assert (ROOT / d["parameters"]["config_path"]).is_file()
        if d["entrypoint"].startswith("flows/train.py"):  # the config's own schedule
            from labelwise.pipeline.config import load_config

            cron = load_config(ROOT / d["parameters"]["config_path"]).schedule.cron
            assert [s["cron"] for s in d["schedules"]] == [cron]
