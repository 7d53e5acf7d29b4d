"""Both UIs as a person sees them, in a real browser (Debian's chromium driven by Playwright):
in MLflow, run names and the headline metric in the run table, a run's description rendered
on its page, a tune's parent and objective column, the monitoring table; in Prefect (the
server `labelwise server start` runs), the runs list, a flow run's graph and artifacts.
Screenshots are kept in test-artifacts/ui/."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from labelwise.engine.synthetic import make_multilabel_table
from tests.helpers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "ui"


def _browser() -> str:
    """Debian's chromium and Playwright, or a skip that says loudly why the check did not run."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        exe = None
    if exe is None:
        pytest.skip(
            "BROWSER CHECK NOT RUN: Debian's chromium or Playwright is not installed "
            "(.ci/run installs both; apt-get install chromium)"
        )
    return exe


@pytest.fixture
def ui(tmp_path, prefect_api):
    """Two training runs of one job in a SQLite store, and `mlflow server` on it."""
    from labelwise.flows.train import train_flow

    df = make_multilabel_table(n_rows=1200, n_labels=8, seed=4)
    df.head(900).write_parquet(tmp_path / "train.parquet")
    df.tail(300).write_parquet(tmp_path / "test.parquet")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "uijob.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "uijob",
                "tracking": {"tracking_uri": uri},
                "contract": {"min_rows": 50},
                "data": {
                    "train": "train.parquet",
                    "test": "test.parquet",
                    "labels": {"prefix": "label_"},
                    "exclude": ["id"],
                },
            }
        )
    )
    runs = [train_flow(str(config), overrides={"model.preset": p}) for p in ("fast", "default")]
    # a short tune (parent run and trials) and a monitored batch, for their views
    from labelwise.engine.errors import DriftError
    from labelwise.flows.monitor import monitor_flow
    from labelwise.flows.tune import tune_flow

    tuned = tmp_path / "uitune.yaml"  # its own experiment: the compare view stays two runs
    tuned.write_text(config.read_text().replace("name: uijob", "name: uitune"))
    tune_flow(str(tuned), trials=2, budget_seconds=300)
    with contextlib.suppress(DriftError):  # a drifted batch is shown as well as a quiet one
        monitor_flow(str(config), str(tmp_path / "test.parquet"))
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "mlflow server"
            time.sleep(1)
    try:
        yield {"base": base, "uri": uri, "runs": runs}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_runs_are_readable_in_the_mlflow_ui(ui):
    from mlflow import MlflowClient
    from playwright.sync_api import sync_playwright

    from labelwise.tasks.run_views import runs_view_url

    exe = _browser()
    c = MlflowClient(ui["uri"], registry_uri=ui["uri"])
    exp = c.get_experiment_by_name("uijob")
    names = [c.get_run(r.run_id).info.run_name for r in ui["runs"]]
    assert names[0].startswith("preset=fast ") and names[1].startswith("defaults ")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 2000, "height": 1000})
        # the run table, in the view labelwise keeps on the experiment: headline metrics first
        page.goto(runs_view_url(ui["base"], exp.experiment_id))
        for name in names:
            page.get_by_text(name).first.wait_for(timeout=120_000)
        page.get_by_text("test/f1_micro").first.wait_for(timeout=30_000)  # a column, not the sort
        page.screenshot(path=str(SHOTS / "run-table.png"))
        table = page.inner_text("body")
        assert "Sort: test/f1_macro" in table and "test/f1_micro" in table
        # a run's page: the description renders (markdown table against the champion)
        page.goto(f"{ui['base']}/#/experiments/{exp.experiment_id}/runs/{ui['runs'][1].run_id}")
        page.get_by_text("Description").first.wait_for(timeout=120_000)
        page.get_by_text("champion v1").first.wait_for(timeout=30_000)
        page.screenshot(path=str(SHOTS / "run-page.png"))
        text = page.inner_text("body")
        assert "uijob" in text and "test metric" in text
        # the compare view of the two runs: one bar per run on each headline metric
        page.goto(runs_view_url(ui["base"], exp.experiment_id) + "&compareRunsMode=CHART")
        for name in names:
            page.get_by_text(name).first.wait_for(timeout=120_000)
        page.get_by_text("Add chart").first.wait_for(timeout=60_000)  # the charts are drawn
        page.wait_for_timeout(2000)
        page.screenshot(path=str(SHOTS / "compare-view.png"))
        assert page.inner_text("body").count("test/f1_macro") >= 2  # sort + its chart
        # the registry: the version's description (what, on what, headline metrics)
        page.goto(f"{ui['base']}/#/models/uijob/versions/1")
        page.get_by_text("test metric").first.wait_for(timeout=120_000)
        page.screenshot(path=str(SHOTS / "registry-version.png"))
        assert "trained on" in page.inner_text("body")
        # the tune: its parent run described, the trials' objective a column of the table
        tune = c.get_experiment_by_name("uitune")
        [parent] = c.search_runs([tune.experiment_id], "tags.`labelwise.kind` = 'tune'")
        page.goto(f"{ui['base']}/#/experiments/{tune.experiment_id}/runs/{parent.info.run_id}")
        page.get_by_text("Tune of uitune").first.wait_for(timeout=120_000)
        page.screenshot(path=str(SHOTS / "tune-parent.png"))
        page.goto(runs_view_url(ui["base"], tune.experiment_id))
        page.get_by_text("tune/objective").first.wait_for(timeout=120_000)
        page.get_by_text(parent.info.run_name).first.wait_for(timeout=30_000)
        page.screenshot(path=str(SHOTS / "run-table-with-tune.png"))
        # monitoring: each batch named with its alert state, alert counts as columns
        mon = c.get_experiment_by_name("uijob-monitoring")
        [batch] = c.search_runs([mon.experiment_id])
        state = "DRIFT" if batch.data.tags["labelwise.drift"] == "true" else "ok"
        assert batch.info.run_name == f"batch-0000 {state} test"
        page.goto(runs_view_url(ui["base"], mon.experiment_id))
        page.get_by_text(batch.info.run_name).first.wait_for(timeout=120_000)
        page.get_by_text("label_alerts").first.wait_for(timeout=30_000)
        page.screenshot(path=str(SHOTS / "monitoring-table.png"))
        browser.close()


def test_flow_runs_are_readable_in_the_prefect_ui(tmp_path):
    """The Prefect UI at the URL `labelwise server start` prints: the runs list shows a
    finished train run, its page draws the task graph and lists the run's artifacts (the
    data contract, the per-label table) and its log lines."""
    import json

    from playwright.sync_api import sync_playwright

    from tests.servers import labelwise, write_job

    exe = _browser()
    write_job(tmp_path, "uiflows", rows=400)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return labelwise(tmp_path, *args)

    started = cli("server", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        info = json.loads((tmp_path / "prefect-server.json").read_text())
        trained = cli("train", "-c", "job.yaml")
        assert trained.returncode == 0, trained.stdout + trained.stderr
        req = urllib.request.Request(
            f"{info['url']}/flow_runs/filter",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            [run] = json.loads(r.read())
        SHOTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{info['ui']}/runs")
            page.get_by_text(run["name"]).first.wait_for(timeout=120_000)
            # the row's flow name arrives with a second request, after the run's own name
            page.get_by_text("labelwise-train").first.wait_for(timeout=60_000)
            text = page.inner_text("body")
            assert "labelwise-train" in text and "Completed" in text
            assert "Can't connect" not in text  # the UI reaches this server's API
            page.screenshot(path=str(SHOTS / "prefect-runs.png"))
            page.get_by_text(run["name"]).first.click()
            page.wait_for_url(f"**/runs/flow-run/{run['id']}", timeout=60_000)
            page.locator("canvas").first.wait_for(timeout=60_000)  # the task graph
            page.wait_for_timeout(2000)
            page.screenshot(path=str(SHOTS / "prefect-flow-run.png"))
            page.get_by_text("Artifacts", exact=True).first.click()
            page.get_by_text("contract-train").first.wait_for(timeout=60_000)
            assert "test-per-label" in page.inner_text("body")
            page.screenshot(path=str(SHOTS / "prefect-artifacts.png"))
            browser.close()
    finally:
        cli("server", "stop")
