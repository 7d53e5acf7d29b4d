"""`labelwise server start|status|stop`: one local Prefect server that later commands of the
state directory share instead of each starting an ephemeral API; a dead one is noticed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from labelwise.engine.synthetic import make_multilabel_table

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _cli(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["LABELWISE_HOME"] = str(home)
    return subprocess.run(
        [str(BIN / "labelwise"), *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _job(home: Path) -> None:
    make_multilabel_table(n_rows=300, n_labels=4, seed=4).write_parquet(home / "t.parquet")
    cfg = {
        "name": "shared",
        "data": {"train": "t.parquet", "labels": {"prefix": "label_"}, "exclude": ["id"]},
        "model": {"preset": "fast"},
        "contract": {"min_rows": 20},
    }
    (home / "job.yaml").write_text(yaml.safe_dump(cfg))


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
        assert _alive(info["pid"])  # the command's watchdog spared the shared server
    finally:
        stopped = _cli(tmp_path, "server", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not _alive(info["pid"]) and not (tmp_path / "prefect-server.json").exists()
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
        assert _alive(other.pid) and not (tmp_path / "prefect-server.json").exists()
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
