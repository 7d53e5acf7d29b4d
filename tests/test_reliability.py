"""Reliability, round two: state that survives cleanup and corruption, runs that cannot race,
errors before work, no secret in any message, no process left behind. Through the CLI where a
user meets the fault; fault injection only where the fault cannot be made for real."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from labelwise.cli import app
from labelwise.engine.synthetic import make_multilabel_table
from tests.helpers import pid_alive, write_job
from tests.store import client as _client
from tests.store import runs as _runs

pytestmark = pytest.mark.slow
runner = CliRunner()
LABELS = [f"label_{j:02d}" for j in range(6)]


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    return make_multilabel_table(n_rows=500, n_labels=6, seed=21)


def _job(tmp: Path, df: pl.DataFrame, name: str, **edits: object) -> tuple[Path, str]:
    """A config (fast preset, SQLite store in ``tmp``) for ``df`` written as its train table."""
    return write_job(tmp, name, df, config=f"{name}.yaml", edits=edits)


def _workdir(name: str) -> Path:
    from labelwise.pipeline.environment import state_dir

    return next((state_dir() / "runs" / name).iterdir())


def test_deleted_runs_and_a_damaged_checkpoint_are_rebuilt(tmp_path, table, prefect_api):
    """Deleting the state directory's runs/ no longer breaks the next train (the cached
    results are verified); a checkpoint cut short is discarded with a warning and retrained,
    never handed to LightGBM."""
    import shutil

    config, _ = _job(tmp_path, table, "cache")
    first = runner.invoke(app, ["train", "-c", str(config), "--no-register"])
    assert first.exit_code == 0, first.output
    shutil.rmtree(_workdir("cache").parent)  # what a user freeing disk does
    again = runner.invoke(app, ["train", "-c", str(config), "--no-register"])
    assert again.exit_code == 0, again.output
    work = _workdir("cache")
    boosters = sorted(work.glob("checkpoints/**/*.txt"))
    boosters[0].write_text(boosters[0].read_text()[:200])  # a writer killed mid-file
    shutil.rmtree(work / "model")  # the cached fit must now be redone from checkpoints
    third = runner.invoke(app, ["train", "-c", str(config), "--no-register"])
    assert third.exit_code == 0, third.output
    assert "damaged" in third.output, third.output


def test_engine_retrains_a_truncated_checkpoint(tmp_path, table):
    from labelwise.engine.callbacks import Checkpoint
    from labelwise.engine.classifier import LabelwiseClassifier

    X, Y = table.drop(["id", *LABELS]), table.select(LABELS)
    params = dict(n_estimators=20, cv_folds=None, n_jobs=1)
    fresh = LabelwiseClassifier(**params).fit(X, Y, callbacks=[Checkpoint(tmp_path)])
    victim = sorted(tmp_path.glob("**/*.txt"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    again = Checkpoint(tmp_path)
    with pytest.warns(UserWarning, match="damaged"):
        resumed = LabelwiseClassifier(**params).fit(X, Y, callbacks=[again])
    n_models = len(list(tmp_path.glob("**/*.sha256")))
    assert again.restored == n_models - 1
    assert np.allclose(resumed.predict_proba(X), fresh.predict_proba(X))


def test_abandoned_run_with_a_version_is_repaired(tmp_path, table, prefect_api):
    """A process killed between registering a version and ending its run left an orphan
    version and a RUNNING run: the next run of the config deletes the version, marks the run
    FAILED, says so, and registers its own."""
    import socket

    config, uri = _job(tmp_path, table, "orphan")
    c = _client(uri)
    # artifacts under tmp_path: a bare create_experiment would use ./mlruns in the caller's cwd
    exp = c.create_experiment("orphan", artifact_location=(tmp_path / "artifacts").as_uri())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = c.create_run(
        exp,
        tags={
            "config.name": "orphan",
            "labelwise.pid": str(dead.pid),
            "labelwise.host": socket.gethostname(),
        },
    )
    c.create_registered_model("orphan")
    c.create_model_version("orphan", str(tmp_path), run_id=run.info.run_id)
    res = runner.invoke(app, ["train", "-c", str(config)])
    assert res.exit_code == 0, res.output
    assert "repaired" in res.output and "deleted its version" in res.output
    assert c.get_run(run.info.run_id).info.status == "FAILED"
    versions = c.search_model_versions("name='orphan'")
    assert [str(v.version) for v in versions] == ["2"]
    assert versions[0].run_id != run.info.run_id


def test_a_model_judged_on_nothing_is_not_registered(tmp_path, table, prefect_api):
    """A split whose test part is too small to score (8 rows of 40) is refused before
    training, naming the setting; nothing registered, no run left RUNNING."""
    config, uri = _job(tmp_path, table.head(40), "tiny", **{"contract.min_positives_per_label": 0})
    res = runner.invoke(app, ["train", "-c", str(config)])
    assert res.exit_code == 2, res.output
    # named by the user's table, not the run's split file
    assert f"{tmp_path / 'train.parquet'} (test part)" in res.output, res.output
    assert "min_test_rows = 10" in res.output and "runs/" not in res.output
    assert not _client(uri).search_model_versions("name='tiny'")
    assert all(r.info.status == "FAILED" for r in _runs(uri, "tiny"))


def test_two_runs_of_one_job_do_not_race(tmp_path, table, prefect_api):
    """While a run of a job holds its work directory, a second run of the same config and
    data refuses at once, naming the holder; nothing is registered twice."""
    from labelwise.tasks.data import job_lock

    config, uri = _job(tmp_path, table, "busy")
    first = runner.invoke(app, ["train", "-c", str(config)])
    assert first.exit_code == 0, first.output
    with job_lock(_workdir("busy"), "busy"):  # another process's run, as far as flock knows
        second = runner.invoke(app, ["train", "-c", str(config)])
    assert second.exit_code == 2 and "already running" in second.output, second.output
    assert "pid" in second.output
    assert len(_client(uri).search_model_versions("name='busy'")) == 1


def test_secrets_never_reach_messages_or_params(tmp_path, monkeypatch):
    from labelwise.pipeline.config import parse_config
    from labelwise.pipeline.environment import redact

    assert redact("at http://bob:s3cret@db:5000/x and s3://k:v@b") == (
        "at http://***@db:5000/x and s3://***@b"
    )
    cfg = parse_config(
        {
            "name": "s",
            "data": {"train": "t.parquet", "labels": {"prefix": "y"}},
            "tracking": {"tracking_uri": "http://bob:s3cret@127.0.0.1:9"},
        }
    )
    assert "s3cret" not in str(cfg.flat())
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    table = tmp_path / "in.parquet"
    pl.DataFrame({"a": [1.0]}).write_parquet(table)
    res = runner.invoke(
        app,
        [
            "predict",
            "-m",
            "models:/x@champion",
            "-i",
            str(table),
            "-o",
            str(tmp_path / "o.parquet"),
            "--tracking-uri",
            "http://bob:s3cret@127.0.0.1:9",
        ],
    )
    assert res.exit_code != 0 and "127.0.0.1" in res.output
    assert "s3cret" not in res.output


def test_label_names_never_share_a_metric_key(tmp_path, table, prefect_api):
    """Labels that differ only in characters MLflow forbids in keys, and names too long or
    with `..` or `//`: training keeps them by name in its per-label table, and the monitor's
    per-label metrics get one valid key each."""
    from labelwise.tasks.tracking import label_key

    odd = ["a:b", "a_b", "a?b", "x..y", "p//q", "L" * 300]
    keys = [label_key(n) for n in odd]
    assert len(set(keys)) == len(odd) and keys[1] == "a_b"
    renamed = table.rename(dict(zip(LABELS, odd, strict=True)))
    config, uri = _job(tmp_path, renamed, "odd", **{"data.labels": {"columns": odd}})
    res = runner.invoke(app, ["train", "-c", str(config)])
    assert res.exit_code == 0, res.output
    [run] = _runs(uri, "odd")
    from tests.test_flows import _table_artifact

    table = _table_artifact(_client(uri), run.info.run_id, "evaluation/test_per_label.json")
    assert sorted(table["label"]) == sorted(odd)
    renamed.tail(100).write_parquet(tmp_path / "batch.parquet")
    res = runner.invoke(app, ["monitor", "-c", str(config), "-b", str(tmp_path / "batch.parquet")])
    assert res.exit_code in (0, 3), res.output
    c = _client(uri)
    [mon] = c.search_runs([c.get_experiment_by_name("odd-monitoring").experiment_id])
    logged = {k.split("/")[1] for k in mon.data.metrics if k.startswith("label/")}
    assert logged == set(keys)


@pytest.mark.parametrize(
    "edits, words",
    [
        ({"model.lgb_params": {"max_depth": "deep"}}, ["model.lgb_params", "LightGBM"]),
        ({"model.lgb_params": {"learnig_rat": 0.1}}, ["learnig_rat", "not LightGBM"]),
        ({"tracking.registered_model": "team/model"}, ["tracking.registered_model"]),
        ({"data.train": "parts/*.parquet"}, ["data.train", "no parquet files match"]),
        ({"model.params": {"n_estimators": 10**30}}, ["model.params.n_estimators"]),
        ({"promotion.metric": "f2_macro"}, ["promotion", "f2_macro", "f1_macro"]),
        ({"data.labels": {"columns": ["label_00", "label_00"]}}, ["label_00", "more than once"]),
    ],
)
def test_user_mistakes_are_refused_before_any_work(tmp_path, table, edits, words):
    config, _ = _job(tmp_path, table, "early", **edits)
    res = runner.invoke(app, ["config", "check", str(config)])
    assert res.exit_code == 2, res.output
    assert all(w in res.output for w in words), res.output
    assert "Traceback" not in res.output


def test_rollback_skips_a_deleted_version_and_a_malformed_manifest_is_refused(
    tmp_path, table, prefect_api
):
    import json

    from labelwise.engine.classifier import LabelwiseClassifier
    from labelwise.tasks.registry import HISTORY_TAG

    config, uri = _job(tmp_path, table, "gone")
    assert runner.invoke(app, ["train", "-c", str(config)]).exit_code == 0
    c = _client(uri)
    c.set_registered_model_tag("gone", HISTORY_TAG, json.dumps(["7"]))  # v7 was deleted
    res = runner.invoke(app, ["rollback", "-c", str(config)])
    assert res.exit_code == 2 and "deleted" in res.output, res.output
    model = tmp_path / "m"
    X = table.drop(["id", *LABELS])
    LabelwiseClassifier(n_estimators=3, cv_folds=None).fit(X, table.select(LABELS)).save(model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["labels"] = 5
    (model / "manifest.json").write_text(json.dumps(manifest))
    X.write_parquet(tmp_path / "in.parquet")
    res = runner.invoke(
        app,
        [
            "predict",
            "-m",
            str(model),
            "-i",
            str(tmp_path / "in.parquet"),
            "-o",
            str(tmp_path / "out.parquet"),
        ],
    )
    assert res.exit_code == 2 and "manifest" in res.output, res.output


def test_a_full_disk_is_one_clear_message(tmp_path, table, prefect_api, monkeypatch):
    """Fault injection (no small filesystem to fill here): the model directory's write fails
    with ENOSPC. One message naming the path, exit 2, no traceback, nothing registered."""
    import labelwise.engine.persistence as persistence

    def full(path, *_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(persistence, "write_model_dir", full)
    config, uri = _job(tmp_path, table, "full")
    res = runner.invoke(app, ["train", "-c", str(config)])
    assert res.exit_code == 2, res.output
    assert "no space left" in res.output and "MiB free" in res.output
    assert "Traceback" not in res.output and res.output.count("error:") == 1
    assert not _client(uri).search_model_versions("name='full'")


def test_errors_and_values_name_their_file(tmp_path, table, prefect_api):
    """A test-table error names the test file (not `X`); a finite but huge value is called
    what it is, not "infinite"."""
    bad = table.tail(100).with_columns(pl.col("x01").cast(pl.String))
    bad.write_parquet(tmp_path / "test.parquet")
    config, _ = _job(tmp_path, table.head(400), "named", **{"data.test": "test.parquet"})
    res = runner.invoke(app, ["train", "-c", str(config)])
    assert res.exit_code == 2 and "test.parquet" in res.output and "x01" in res.output
    huge = table.with_columns(pl.lit(1e39).alias("x02"))
    config, _ = _job(tmp_path, huge, "huge")
    res = runner.invoke(app, ["train", "-c", str(config)])
    assert res.exit_code == 2 and "float32 range" in res.output, res.output
    assert "infinite" not in res.output


def test_a_killed_command_leaves_no_server_behind(tmp_path, table):
    """kill -9 of `labelwise train` (the CLI alone, not its process group): the ephemeral
    Prefect server it started ends too, within seconds."""
    config, _ = _job(
        tmp_path,
        make_multilabel_table(n_rows=3000, n_labels=12, seed=2),
        "reap",
        **{"model.preset": "default", "n_jobs": 1},
    )
    env = {
        **os.environ,
        "LABELWISE_HOME": str(tmp_path / "state"),
        "PREFECT_HOME": str(tmp_path / "state" / "prefect"),
    }
    for k in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(k, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "labelwise.cli", "train", "-c", str(config)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not list((tmp_path / "state").glob("runs/reap/*/checkpoints/**/*.txt")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    servers = [
        p for p in _descendants(proc.pid) if "uvicorn" in _cmdline(p) or "prefect" in _cmdline(p)
    ]
    assert servers, "the ephemeral Prefect server was expected as a child"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in servers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(pid_alive(p) for p in servers)
    if _group_alive(proc.pid):  # nothing should be left; if it is, do not leak it
        os.killpg(proc.pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True
