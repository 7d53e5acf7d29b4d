"""`labelwise server start|status|stop`: one local Prefect server that later commands of the
state directory share instead of each starting an ephemeral API; a dead one is noticed; the
README's scheduled-retraining journey (deploy, trigger, worker) on it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from labelwise.pipeline.examples import write_day
from tests.helpers import pid_alive
from tests.servers import labelwise, write_job

pytestmark = pytest.mark.slow
_cli = labelwise


_job = write_job


def test_commands_share_the_local_server_and_stop_ends_it(tmp_path):
    _job(tmp_path)
    assert _cli(tmp_path, "server", "status").returncode == 1
    # two starts at once start one server: the second finds the first's
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: _cli(tmp_path, "server", "start"), range(2)))
    assert all(r.returncode == 0 for r in both), [r.stdout + r.stderr for r in both]
    info = json.loads((tmp_path / "prefect-server.json").read_text())
    assert all(f"pid {info['pid']}" in r.stdout for r in both), [r.stdout for r in both]
    try:
        assert _cli(tmp_path, "server", "status").returncode == 0
        # the UI at the printed URL talks to this server's API, not to a default port
        with urllib.request.urlopen(f"{info['ui']}/ui-settings", timeout=30) as r:
            assert json.loads(r.read())["api_url"] == info["url"]
        again = _cli(tmp_path, "server", "start")
        assert "already running" in again.stdout and str(info["pid"]) in again.stdout
        res = _cli(tmp_path, "train", "-c", "job.yaml")
        assert res.returncode == 0, res.stdout + res.stderr
        # the train's flow run is on the shared server (an ephemeral API would have kept it)
        req = urllib.request.Request(
            f"{info['url']}/flow_runs/filter",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            runs = json.loads(r.read())
        assert [x["state"]["type"] for x in runs] == ["COMPLETED"]
        assert pid_alive(info["pid"])  # the command's watchdog spared the shared server
    finally:
        stopped = _cli(tmp_path, "server", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not pid_alive(info["pid"]) and not (tmp_path / "prefect-server.json").exists()
    assert _cli(tmp_path, "server", "status").returncode == 1


def test_a_dead_server_is_noticed_and_commands_fall_back(tmp_path):
    """A state file left by a server that is gone (a reboot, kill -9): status says none runs
    and commands use an ephemeral API instead of failing to connect."""
    (tmp_path / "prefect-server.json").write_text(
        json.dumps({"pid": 2**22 + 7, "url": "http://127.0.0.1:9/api", "ui": "x", "log": "y"})
    )
    assert _cli(tmp_path, "server", "status").returncode == 1
    _job(tmp_path)
    res = _cli(tmp_path, "train", "-c", "job.yaml")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("started", [None, "1"])
def test_stop_never_kills_a_process_that_reused_the_servers_pid(tmp_path, started):
    """The recorded server is gone and the OS gave its pid to an unrelated process (here a
    sleep of the test's own): stop removes the record and leaves that process alone, for
    a state file of this labelwise (start time recorded) and of an older one (none)."""
    other = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        info = {"pid": other.pid, "url": "http://127.0.0.1:9/api", "ui": "x", "log": "y"}
        (tmp_path / "prefect-server.json").write_text(
            json.dumps(info | ({"started": started} if started else {}))
        )
        res = _cli(tmp_path, "server", "stop")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "had already ended" in res.stdout and "left alone" in res.stdout
        assert pid_alive(other.pid) and not (tmp_path / "prefect-server.json").exists()
    finally:
        other.kill()
        other.wait()


def test_start_in_a_read_only_state_directory_is_one_message(tmp_path, monkeypatch):
    """A state directory that cannot be written (root ignores file modes, so the fault is
    injected): exit 2 naming the directory, no server started."""
    from typer.testing import CliRunner

    from labelwise.cli import app
    from labelwise.pipeline import prefect_server

    def read_only(path, *args, **kwargs):
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setenv("LABELWISE_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(prefect_server, "open", read_only, raising=False)
    res = CliRunner().invoke(app, ["server", "start"])
    assert res.exit_code == 2, res.output
    assert f"cannot write the state directory {tmp_path}" in res.output
    assert not (tmp_path / "prefect-server.json").exists()


def _flow_run(url: str, run_id: str, timeout: float = 600) -> dict:
    """A flow run once it has ended (the worker runs it in its own process)."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"{url}/flow_runs/{run_id}", timeout=30) as r:
            run = json.loads(r.read())
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        assert time.monotonic() < deadline, run["state"]
        time.sleep(1)


def test_the_scheduled_retraining_journey(tmp_path):
    """The README's journey with a real local server and worker: start the server, deploy a
    partitioned job, trigger its retrain and let a worker run it (version 1); a new day's
    partition arrives, the next run registers version 2; with nothing new, a run registers
    nothing; the server stops and nothing is left running. As the README runs it: no
    LABELWISE_HOME, the state in ./.labelwise of the working directory, which is not the
    folder the deployments' flow runs work in."""
    from tests.store import client

    today = datetime.now(UTC).date()
    events = tmp_path / "events"
    for d in range(3, 0, -1):
        write_day(events, today - timedelta(days=d), rows=200)  # the example data's generator
    cfg = {
        "name": "journey",
        "data": {
            "train": "events/",
            "labels": {"prefix": "label_"},
            "exclude": ["id"],
            "time_column": "dt",
            "window": "30d",
        },
        "split": {"by": "time", "test_last": "1d"},
        "model": {"preset": "fast"},
        "contract": {"min_rows": 20},
        "schedule": {"cron": "0 4 * * *"},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    state = tmp_path / ".labelwise"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return _cli(tmp_path, *args, state_env=False)

    started = cli("server", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    info = json.loads((state / "prefect-server.json").read_text())
    # tracking and registry at this store (an earlier test may have moved mlflow's default)
    mlflow = client(f"sqlite:///{state / 'mlflow.db'}")
    try:
        deployed = cli("deploy", "-c", "job.yaml")
        assert deployed.returncode == 0 and "labelwise worker start" in deployed.stdout

        def retrain() -> dict:
            res = cli("trigger", "-c", "job.yaml")
            assert res.returncode == 0, res.stdout + res.stderr
            run_id = res.stdout.split("/runs/flow-run/")[1].split(")")[0]
            worker = cli("worker", "start", "--run-once")
            assert worker.returncode == 0, worker.stdout + worker.stderr
            return _flow_run(info["url"], run_id)

        assert retrain()["state"]["type"] == "COMPLETED"
        assert [str(v.version) for v in mlflow.search_model_versions("name='journey'")] == ["1"]
        write_day(events, today, rows=200)  # a new day arrives
        assert retrain()["state"]["type"] == "COMPLETED"
        assert sorted(str(v.version) for v in mlflow.search_model_versions("name='journey'")) == [
            "1",
            "2",
        ]
        assert retrain()["state"]["type"] == "COMPLETED"  # nothing new: nothing registered
        assert len(mlflow.search_model_versions("name='journey'")) == 2
        promoted = cli("promote", "-c", "job.yaml")  # the CLI finds what the worker's runs made
        assert promoted.returncode == 0 and "v2" in promoted.stdout, promoted.stdout
        assert (state / "prefect" / "storage").is_dir()  # results stay in the state dir
        assert not (tmp_path / "user" / ".prefect").exists()  # nothing in ~/.prefect
    finally:
        stopped = cli("server", "stop")
    assert stopped.returncode == 0 and not pid_alive(info["pid"])
