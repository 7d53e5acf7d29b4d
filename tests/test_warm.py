"""The warm process: a command runs in it exactly as it would cold, and nothing outlives the
idle time (or ``server stop``), including the Prefect server it started on demand."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from labelwise.engine.errors import ConfigError
from labelwise.pipeline import warm_process
from tests import helpers, servers

pytestmark = pytest.mark.slow


def _labelwise(home: Path, *args: str, warm: str) -> subprocess.CompletedProcess[str]:
    return servers.labelwise(home, *args, warm=warm)


def _ready(home: Path, other_than: int | None = None, timeout: float = 180) -> dict:
    """The state directory's warm process once it listens (a new one, if ``other_than``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in home.glob("warm-*.json"):
            try:
                info = json.loads(f.read_text())
            except ValueError:  # being written
                continue
            if info["pid"] != other_than and list(home.glob("warm-*.sock")):
                return info
        time.sleep(0.3)
    raise AssertionError(f"no warm process got ready: {(home / 'warm.log').read_text()}")


def _gone(pid: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while helpers.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not helpers.pid_alive(pid)


def test_the_next_command_runs_in_the_warm_process_as_it_would_cold(tmp_path):
    job = servers.write_job(tmp_path)
    cold = _labelwise(tmp_path, "validate", "-c", str(job), warm="120")
    assert cold.returncode == 0, cold.stderr
    first = _ready(tmp_path)
    server = json.loads((tmp_path / "prefect-server.json").read_text())
    assert server["on_demand"] is True

    again = _labelwise(tmp_path, "validate", "-c", str(job), warm="120")
    assert (again.returncode, again.stdout, again.stderr) == (0, cold.stdout, cold.stderr)
    assert _gone(first["pid"]), "a warm process runs one command, then exits"
    second = _ready(tmp_path, other_than=first["pid"])

    # a bad command: the same message and exit code as a cold one gives
    missing = str(tmp_path / "missing.yaml")
    bad_cold = _labelwise(tmp_path, "validate", "-c", missing, warm="0")
    bad_warm = _labelwise(tmp_path, "validate", "-c", missing, warm="120")
    assert bad_cold.returncode == 2 and "missing.yaml" in bad_cold.stderr
    assert (bad_warm.returncode, bad_warm.stderr) == (2, bad_cold.stderr)
    third = _ready(tmp_path, other_than=second["pid"])

    # a tracked train: its MLflow run names the warm process that ran it, and it finished
    trained = _labelwise(tmp_path, "train", "-c", str(job), warm="120")
    assert trained.returncode == 0, trained.stderr
    c = helpers.client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = c.search_runs([c.get_experiment_by_name("shared").experiment_id])
    assert run.data.tags["labelwise.pid"] == str(third["pid"])
    assert run.info.status == "FINISHED"
    fourth = _ready(tmp_path, other_than=third["pid"])

    stopped = servers.labelwise(tmp_path, "server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped the warm process {fourth['pid']}" in stopped.stdout
    assert _gone(fourth["pid"]) and _gone(server["pid"])
    assert not list(tmp_path.glob("warm-*.sock")) and not list(tmp_path.glob("warm-*.json"))


def test_an_idle_warm_process_stops_with_the_server_it_started(tmp_path):
    job = servers.write_job(tmp_path)
    assert _labelwise(tmp_path, "validate", "-c", str(job), warm="3").returncode == 0
    warm = _ready(tmp_path)
    server = json.loads((tmp_path / "prefect-server.json").read_text())
    assert _gone(warm["pid"]) and _gone(server["pid"])
    assert not (tmp_path / "prefect-server.json").exists()
    assert not list(tmp_path.glob("warm-*.sock")) and not list(tmp_path.glob("warm-*.json"))


def test_off_leaves_no_process_behind(tmp_path):
    job = servers.write_job(tmp_path)
    before = _processes_mentioning(str(tmp_path))
    assert _labelwise(tmp_path, "validate", "-c", str(job), warm="0").returncode == 0
    deadline = time.monotonic() + 30  # the command's watchdog exits a moment after it
    while _processes_mentioning(str(tmp_path)) != before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_mentioning(str(tmp_path)) == before
    assert not list(tmp_path.glob("warm-*"))


def _processes_mentioning(text: str) -> set[int]:
    """Processes whose command line or environment mentions ``text`` (this test's folder)."""
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                blob = (d / "cmdline").read_bytes() + (d / "environ").read_bytes()
            except OSError:
                continue
            if text.encode() in blob:
                found.add(int(d.name))
    return found


def test_the_key_ignores_files_written_beside_the_code(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))  # an editable checkout's folder
    before = warm_process.key({"PATH": "/bin"})
    (tmp_path / "scored.parquet").write_bytes(b"x")  # a command's output there
    assert warm_process.key({"PATH": "/bin"}) == before


def test_the_setting():
    assert warm_process.idle_seconds({}) == warm_process.DEFAULT_IDLE
    assert warm_process.idle_seconds({"CI": "true"}) == 0
    assert warm_process.idle_seconds({"CI": "true", "LABELWISE_WARM": "30"}) == 30
    with pytest.raises(ConfigError, match="LABELWISE_WARM='soon'"):
        warm_process.idle_seconds({"LABELWISE_WARM": "soon"})
    assert warm_process.eligible(["train", "-c", "x.yaml"])
    assert not warm_process.eligible(["train", "-c", "x.yaml", "--debug"])
    assert not warm_process.eligible(["server", "start"])
    assert not warm_process.eligible([])
    # a terminal's variables do not matter; a library's setting does
    base = {"PATH": "/bin", "MLFLOW_TRACKING_URI": "sqlite:///a.db"}
    assert warm_process.key(base) == warm_process.key(base | {"COLUMNS": "200", "PWD": "/x"})
    assert warm_process.key(base) != warm_process.key(base | {"MLFLOW_TRACKING_URI": "b"})


def test_deploy_keeps_a_server_started_for_the_warm_process(tmp_path, monkeypatch):
    from labelwise import cli
    from labelwise.pipeline import prefect_server

    monkeypatch.setenv("LABELWISE_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    info = prefect_server.start(on_demand=True)
    try:
        monkeypatch.setenv("PREFECT_API_URL", info["url"])
        cli._require_server("deploy", "a Prefect server")
        kept = json.loads((tmp_path / "prefect-server.json").read_text())
        assert kept["pid"] == info["pid"] and "on_demand" not in kept  # an idle stop spares it
    finally:
        prefect_server.stop()
    assert _gone(info["pid"])
