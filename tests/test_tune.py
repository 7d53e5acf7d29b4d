"""`labelwise tune`: a budgeted Optuna study whose trials are MLflow child runs, judged on held-out
rows of the training part only; the test table is read once, after the search. Real LightGBM,
a real Optuna storage, a real MLflow store and Prefect API; the kill is a real SIGKILL."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from labelwise.cli import app
from labelwise.engine.classifier import LabelwiseClassifier
from labelwise.engine.held_out import HeldOutScore
from labelwise.engine.synthetic import make_multilabel_table
from labelwise.engine.thresholds import ThresholdPolicy, apply_thresholds, fit_thresholds
from labelwise.pipeline.config import load_config
from labelwise.tasks.tune import chosen_trial
from tests.helpers import write_job
from tests.store import client, runs

runner = CliRunner()


# ------------------------------------------------------------------ the held-out estimate
def test_held_out_score_cross_validates_the_thresholds():
    """Each fold's predictions come from thresholds fitted on the other folds only."""
    rng = np.random.default_rng(0)
    Y = (rng.random((300, 5)) < 0.3).astype(np.uint8)
    P = np.clip(Y * 0.3 + rng.random(Y.shape) * 0.7, 0, 1)
    folds = [np.arange(0, 100), np.arange(100, 200), np.arange(200, 300)]
    policy = ThresholdPolicy(shrinkage=5.0)
    grid = [ThresholdPolicy(shrinkage=0.0, beta=1.5)]
    macro = lambda Y, pred: f1_score(Y, pred, average="macro", zero_division=0)  # noqa: E731
    score = HeldOutScore(policy, grid=grid, fold_score=macro)
    score.held_out(Y, P, folds)
    pred = np.zeros_like(Y)
    for rows in folds:
        rest = np.setdiff1d(np.arange(300), rows)
        pred[rows] = apply_thresholds(P[rows], fit_thresholds(Y[rest], P[rest], policy))
    assert score.n_rows_ == 300
    for avg in ("micro", "macro"):
        expected = f1_score(Y, pred, average=avg, zero_division=0)
        assert score.metrics_[f"f1_{avg}"] == pytest.approx(expected)
    # each policy's score on each fold's rows alone, for paired comparisons
    assert len(score.fold_scores_) == 2 and all(len(f) == 3 for f in score.fold_scores_)
    assert score.fold_scores_[0] == pytest.approx([macro(Y[r], pred[r]) for r in folds])
    # the in-sample cut is at least as good on the rows it was chosen on: the bias removed
    in_sample = apply_thresholds(P, fit_thresholds(Y, P, policy))
    assert f1_score(Y, in_sample, average="micro") >= score.metrics_["f1_micro"] - 1e-12


@pytest.mark.parametrize("cv_folds", [3, None])
def test_a_fit_tells_its_held_out_rows(cv_folds):
    """Cross-fitting holds out every row once; one validation part holds out its share."""
    df = make_multilabel_table(n_rows=400, n_labels=4, seed=3)
    labels = [c for c in df.columns if c.startswith("label_")]
    clf = LabelwiseClassifier(cv_folds=cv_folds, n_estimators=30, validation_fraction=0.25)
    score = HeldOutScore(clf.policy)
    clf.fit(df.drop(["id", *labels]), df.select(labels), callbacks=[score])
    assert score.n_rows_ == (400 if cv_folds else pytest.approx(100, abs=10))
    assert 0 < score.metrics_["f1_micro"] <= 1


# ------------------------------------------------------------------ the tune command
def _job(tmp: Path, name: str, rows: int = 600, preset: str = "fast") -> tuple[Path, str, Path]:
    """A config with a separate test table; returns (config, tracking URI, test table)."""
    df = make_multilabel_table(n_rows=rows + 200, n_labels=4, seed=11)
    edits = {"model.preset": preset, "n_jobs": 1}
    train, test = df.head(rows), df.tail(200)
    config, uri = write_job(tmp, name, train, test=test, config=f"{name}.yaml", edits=edits)
    return config, uri, tmp / "test.parquet"


def _study(tmp: Path):
    import optuna

    [summary] = optuna.get_all_study_summaries(f"sqlite:///{tmp / 'optuna.db'}")
    return optuna.load_study(
        study_name=summary.study_name, storage=f"sqlite:///{tmp / 'optuna.db'}"
    )


def test_tune_trials_are_child_runs_and_the_test_table_waits(tmp_path, prefect_api):
    """Four trials: four FINISHED child runs of one parent, each with its settings as params
    and its held-out objective; the parent holds the best settings (= the tuned YAML), the
    plots and the test score; the test table's first read comes after the last trial."""
    config, uri, test_table = _job(tmp_path, "tuned")
    mtime = test_table.stat().st_mtime
    os.utime(test_table, (mtime - 3600, mtime))  # relatime: the next read sets atime to now
    res = runner.invoke(app, ["tune", "-c", str(config), "--trials", "4", "--budget", "5m"])
    assert res.exit_code == 0, res.output
    all_runs = runs(uri, "tuned")
    [parent] = [r for r in all_runs if r.data.tags.get("labelwise.kind") == "tune"]
    trials = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == 4 and {r.info.status for r in trials} == {"FINISHED"}
    objective = "objective_f1_micro_macro"
    for r in trials:
        assert "model.params.num_leaves" in r.data.params and objective in r.data.metrics
        assert r.data.metrics["held_out/f1_micro"] > 0
    assert parent.info.status == "FINISHED"
    top = max(trials, key=lambda r: r.data.metrics[objective])
    # the top trial, or the config's own (trial 0) when the top one's gain is within its noise
    kept = parent.data.tags.get("labelwise.selection")
    best = next(r for r in trials if r.data.tags["labelwise.trial"] == "0") if kept else top
    assert not kept or f"trial {top.data.tags['labelwise.trial']} scored" in kept
    assert _study(tmp_path).trials[0].user_attrs["own"] is True
    assert parent.data.tags["labelwise.best_trial"] == best.data.tags["labelwise.trial"]
    assert parent.data.metrics["best_f1_micro_macro"] == pytest.approx(best.data.metrics[objective])
    # the tuned config is the best trial's settings, and loads as a config
    tuned = tmp_path / "tuned.tuned.yaml"
    tuned_cfg = load_config(tuned)
    assert str(tuned_cfg.model.params["num_leaves"]) == best.data.params["model.params.num_leaves"]
    assert str(tuned_cfg.thresholds.shrinkage) == best.data.params["thresholds.shrinkage"]
    artifacts = {a.path for a in client(uri).list_artifacts(parent.info.run_id, "tune")}
    assert {"tune/tune_history.png", "tune/tuned.tuned.yaml", "tune/trials.csv"} <= artifacts
    assert 0 < parent.data.metrics["test/f1_micro"] <= 1
    # the test table was first read after every trial had ended
    last_trial_end = max(r.info.end_time for r in trials) / 1000
    assert test_table.stat().st_atime >= last_trial_end

    # a second tune of the same study resumes it; a 2 s budget starts no trial after 2 s
    res = runner.invoke(app, ["tune", "-c", str(config), "--budget", "2s"])
    assert res.exit_code == 0, res.output
    study = _study(tmp_path)
    later = sorted(t.datetime_start for t in study.trials[4:])
    assert later and (later[-1] - later[0]).total_seconds() <= 2.0 + 1.0
    again = [r for r in runs(uri, "tuned") if r.data.tags.get("labelwise.kind") == "tune"]
    assert [r.info.run_id for r in again] == [parent.info.run_id]  # one parent per study


def test_a_killed_tune_resumes_its_study(tmp_path, prefect_api):
    """SIGKILL during a trial; the next tune fails that trial, asks its settings again, ends its
    MLflow run KILLED, reopens the same parent run and reaches the requested trial count;
    with --register the best config is trained and registered through the train flow."""
    import optuna
    from optuna.trial import TrialState

    config, uri, _ = _job(tmp_path, "killed", rows=2500, preset="default")
    env = {**os.environ, "LABELWISE_HOME": str(tmp_path / "state")}
    env["PREFECT_HOME"] = str(tmp_path / "state" / "prefect")
    for k in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        env.pop(k, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "labelwise.cli", "tune", "-c", str(config), "--trials", "6"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "tune ended too early"
        time.sleep(0.2)
        try:
            [summary] = optuna.get_all_study_summaries(storage)
            trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
        except Exception:  # the study is not created yet
            continue
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        # a trial fitting: its settings all drawn and its MLflow run started (killed between
        # ask() and the last suggestion, its recorded params would be partial)
        fitting = [
            t for t in trials if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs
        ]
        if len(done) >= 2 and fitting:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = next(t for t in _study(tmp_path).trials if t.state == TrialState.RUNNING)
    res = runner.invoke(app, ["tune", "-c", str(config), "--trials", "6", "--register"])
    assert res.exit_code == 0, res.output
    assert f"trial(s) [{killed.number}]" in res.output
    study = _study(tmp_path)
    assert study.trials[killed.number].state == TrialState.FAIL
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 6
    assert any(t.params == killed.params for t in study.trials[killed.number + 1 :])
    all_runs = runs(uri, "killed")
    assert not [r for r in all_runs if r.info.status == "RUNNING"]
    [parent] = [r for r in all_runs if r.data.tags.get("labelwise.kind") == "tune"]
    by_trial = {r.data.tags.get("labelwise.trial"): r for r in all_runs}
    assert by_trial[str(killed.number)].info.status == "KILLED"
    assert by_trial[str(killed.number)].data.tags["mlflow.parentRunId"] == parent.info.run_id
    [version] = client(uri).search_model_versions("name='killed'")
    trained = client(uri).get_run(version.run_id)
    assert trained.data.tags.get("labelwise.kind") is None  # a normal train run
    chosen = chosen_trial(study, "f1_micro_macro")
    best = json.loads(chosen.user_attrs["overrides"])
    assert trained.data.params["model.params.num_leaves"] == str(best["model.params.num_leaves"])


def test_tune_refuses_a_bad_budget_or_metric(tmp_path, prefect_api):
    config, uri, _ = _job(tmp_path, "bad")
    for args, words in (
        (["--budget", "soon"], "--budget"),
        (["--metric", "accuracy"], "--metric 'accuracy'"),
    ):
        res = runner.invoke(app, ["tune", "-c", str(config), *args])
        assert res.exit_code == 2 and words in res.output, res.output
    assert runs(uri, "bad") == []
    assert not (tmp_path / "optuna.db").exists()


@pytest.mark.slow
def test_tune_never_overwrites_a_users_file_or_a_foreign_study_file(tmp_path, prefect_api):
    """--output naming the input config, a directory or a non-regular file (a FIFO stands in
    for a device), and a study file that is damaged or another program's: refused, naming
    the culprit, before any trial; no MLflow run, the files as they were."""
    import sqlite3

    config, uri, _ = _job(tmp_path, "careful")
    original = config.read_bytes()
    (tmp_path / "a-folder").mkdir()
    os.mkfifo(tmp_path / "a-pipe")
    for output, words in (
        (config, "is the config being tuned"),
        (tmp_path / "a-folder", "is a directory"),
        (tmp_path / "a-pipe", "not a regular file"),
    ):
        res = runner.invoke(
            app, ["tune", "-c", str(config), "--trials", "1", "--output", str(output)]
        )
        assert res.exit_code == 2 and words in res.output, res.output
    assert config.read_bytes() == original and (tmp_path / "a-pipe").is_fifo()

    study = tmp_path / "optuna.db"  # next to the SQLite tracking store
    study.write_bytes(b"not a database " * 100)
    res = runner.invoke(app, ["tune", "-c", str(config), "--trials", "1"])
    assert res.exit_code == 2 and f"{study}: the tune's study file is not a" in res.output
    study.unlink()
    with sqlite3.connect(study) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    res = runner.invoke(app, ["tune", "-c", str(config), "--trials", "1"])
    assert res.exit_code == 2 and "another program (tables ['invoices'])" in res.output
    with sqlite3.connect(study) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master")]
    assert tables == ["invoices"] and runs(uri, "careful") == []


@pytest.mark.slow
def test_two_tunes_start_at_once_on_a_new_store(tmp_path):
    """Two tunes (two jobs) started together on a new SQLite tracking store and study file:
    both finish; neither trips over the other creating the store's tables."""
    configs = [_job(tmp_path, name)[0] for name in ("first", "second")]
    env = {**os.environ, "LABELWISE_HOME": str(tmp_path / "state")}
    env["PREFECT_HOME"] = str(tmp_path / "state" / "prefect")
    for k in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        env.pop(k, None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "labelwise.cli", "tune", "-c", str(c), "--trials", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for c in configs
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in ("first", "second"):
        assert [
            r.info.status for r in runs(uri, name) if r.data.tags.get("labelwise.kind") == "tune"
        ] == ["FINISHED"]


def test_tune_reads_only_the_training_part_of_a_split(tmp_path, prefect_api):
    """Without data.test the search reads the split's training part; its test part is first
    read after the last trial."""
    config, uri, _ = _job(tmp_path, "split")
    data = yaml.safe_load(config.read_text())
    del data["data"]["test"]
    config.write_text(yaml.safe_dump(data))
    res = runner.invoke(app, ["tune", "-c", str(config), "--trials", "2"])
    assert res.exit_code == 0, res.output
    test_parts = list(Path(os.environ["LABELWISE_HOME"]).glob("runs/split/*/data/test.parquet"))
    trials = [r for r in runs(uri, "split") if r.data.tags.get("labelwise.kind") == "trial"]
    assert len(trials) == 2 and test_parts
    last_trial_end = max(r.info.end_time for r in trials) / 1000
    for part in test_parts:  # never read, or first read after the search
        st = part.stat()
        assert st.st_atime <= st.st_mtime or st.st_atime >= last_trial_end
        assert 0 < pl.read_parquet(part).height < 600
    assert any(p.stat().st_mtime >= last_trial_end for p in test_parts)  # the best one's


@pytest.fixture
def optuna_database():
    """A fresh PostgreSQL database for the study (the machine's server), dropped afterwards."""
    import secrets

    import psycopg

    from tests.servers import ADMIN_URL, require_postgres

    require_postgres()
    name = f"lw_optuna_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            "postgresql+psycopg"
            + ADMIN_URL.removeprefix("postgresql").rsplit("/", 1)[0]
            + "/"
            + name
        )
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_parallel_trials_share_a_postgresql_study(
    tmp_path, prefect_api, optuna_database, monkeypatch
):
    """LABELWISE_TUNE_STORAGE puts the study in PostgreSQL; --parallel 2 runs two trials at once
    (their time spans overlap) and the study ends with the requested trials."""
    import optuna
    from optuna.trial import TrialState

    monkeypatch.setenv("LABELWISE_TUNE_STORAGE", optuna_database)
    config, uri, _ = _job(tmp_path, "parallel", rows=1500)
    res = runner.invoke(app, ["tune", "-c", str(config), "--trials", "4", "--parallel", "2"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "optuna.db").exists()
    [summary] = optuna.get_all_study_summaries(optuna_database)
    study = optuna.load_study(study_name=summary.study_name, storage=optuna_database)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 4
    spans = sorted((t.datetime_start, t.datetime_complete) for t in done)
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans))  # overlapping
    [parent] = [r for r in runs(uri, "parallel") if r.data.tags.get("labelwise.kind") == "tune"]
    assert parent.data.params["tune.storage"].startswith("postgresql+psycopg://")
    assert json.loads(study.trials[1].user_attrs["overrides"])["n_jobs"] == 1


def test_a_slow_trial_is_stopped_and_a_failing_fit_stops_early(tmp_path):
    """A trial past its time limit raises TrialTooSlow (the flow prunes it); and once one
    label's work fails, labels not yet started are dropped instead of trained for nothing."""
    import threading

    from labelwise.engine.executors import ThreadExecutor
    from labelwise.tasks.trials import TrialTooSlow, run_trial

    config, _, _ = _job(tmp_path, "slow")
    cfg = load_config(config)
    with pytest.raises(TrialTooSlow):
        run_trial.fn(cfg, {}, str(tmp_path / "train.parquet"), 0, "f1_micro", time_limit=0.0)

    started, lock = [], threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.05)
        if i == 0:
            raise RuntimeError("label 0 failed")
        return i

    with pytest.raises(RuntimeError, match="label 0"):
        list(ThreadExecutor(2).map("step", work, list(range(200))))
    assert len(started) < 20


def test_a_trial_on_pace_to_overrun_its_limit_is_stopped_early():
    """The deadline projects the trial's time from its per-label models so far: a trial
    on pace for 2.5x its limit stops at a twentieth of its models, one on pace to finish
    within it runs on, and one a little over it runs on up to 1.25x its limit."""
    from labelwise.tasks.trials import TrialTooSlow, _Deadline

    slow = _Deadline(10.0, repeats=2)
    slow.begin(40, ["a"])  # 80 models in the trial
    slow.start -= 1.0  # 1 s spent so far
    for _ in range(3):
        slow.model_done("L1m0", 0, None, None, False)
    with pytest.raises(TrialTooSlow, match=r"on pace for about 2[0-9] s"):
        slow.model_done("L1m0", 0, None, None, False)  # 4 models in 1 s: about 20 s in all

    steady = _Deadline(10.0)
    steady.begin(40, ["a"])
    steady.start -= 1.0
    for _ in range(20):  # 40 models at this pace: about 2 s
        steady.model_done("L1m0", 0, None, None, False)
    assert steady.done == 20

    # a trial on pace for a little over its limit finishes: 24 of 40 models in 7.2 s is on
    # pace for 12 s (1.2x); it stops at 1.25x the limit at the latest
    late = _Deadline(10.0)
    late.begin(40, ["a"])
    late.done = 23
    late.start -= 7.2
    late.model_done("L1m0", 0, None, None, False)
    assert late.done == 24
    late.start -= 6.0  # 13.2 s: past 1.25x the limit, the hard stop
    with pytest.raises(TrialTooSlow, match="still fitting after 13 s"):
        late.model_done("L1m0", 0, None, None, False)


def test_the_trial_limit_follows_the_median_trial_and_the_budget():
    """Three times the median finished trial, not the slowest (a slow trial that finished must
    not raise the next limit threefold), within the budget left plus one such trial."""
    from labelwise.tasks.trials import OVERRUN, trial_limit

    assert trial_limit([], 600.0) is None  # nothing finished: no basis for a limit
    finished = [60.0, 190.0, 70.0]
    assert trial_limit(finished, 600.0) == pytest.approx(3 * 70.0)
    # 100 s left: a trial may end by 100 + 70
    assert OVERRUN * trial_limit(finished, 100.0) == pytest.approx(170.0, abs=1.0)
    assert trial_limit(finished, -100.0) == 30.0


def test_a_gain_within_its_noise_keeps_the_config_own_settings():
    """The one-standard-error rule, on the paired per-fold scores: a trial (or threshold
    policy) that beats the config's own settings by less than the noise of the per-fold
    differences does not replace them; a steady gain does."""
    import optuna
    from optuna.distributions import IntDistribution

    from labelwise.engine.held_out import clear_gain
    from labelwise.tasks.trials import _best_policy

    assert clear_gain([0.01, 0.012, 0.009, 0.011])
    assert not clear_gain([0.03, -0.02, 0.025, -0.03])  # mean +.001, noise about .015
    assert not clear_gain([0.05])  # one fold: no evidence
    assert not clear_gain([0.0, 0.0, 0.0])

    study = optuna.create_study(direction="maximize")
    dist = {"n": IntDistribution(0, 9)}

    def add(n: int, folds: list[float], **attrs: object) -> None:
        trial = optuna.trial.create_trial(
            params={"n": n},
            distributions=dist,
            value=float(np.mean(folds)),
            user_attrs={"fold_objective": folds, "overrides": "{}", **attrs},
        )
        study.add_trial(trial)

    add(0, [0.50, 0.60, 0.55, 0.45], own=True)
    add(1, [0.53, 0.57, 0.58, 0.43])  # +.0025 on average, noisy
    assert study.best_trial.params == {"n": 1}
    assert chosen_trial(study, "f1_macro").params == {"n": 0}
    add(2, [0.52, 0.62, 0.57, 0.47])  # +.02 on every fold
    assert chosen_trial(study, "f1_macro").params == {"n": 2}
    # read as lower-is-better scores (hamming loss), the same folds show a loss
    assert chosen_trial(study, "hamming_loss").params == {"n": 0}

    means = [{"f1_macro": 0.5}, {"f1_macro": 0.51}, {"f1_macro": 0.49}]
    noisy = [[0.5, 0.5, 0.5], [0.53, 0.47, 0.53], [0.49, 0.49, 0.49]]
    assert _best_policy(means, noisy, "f1_macro") == 0
    steady = [[0.5, 0.5, 0.5], [0.51, 0.51, 0.512], [0.49, 0.49, 0.49]]
    assert _best_policy(means, steady, "f1_macro") == 1


def test_the_removed_accurate_preset_points_to_tune(tmp_path):
    from labelwise.engine.errors import ConfigError

    config, _, _ = _job(tmp_path, "acc", preset="accurate")
    with pytest.raises(ConfigError, match=r"model\.preset: preset 'accurate' was removed.*tune"):
        load_config(config)
    with pytest.raises(ConfigError, match="labelwise tune"):
        LabelwiseClassifier.from_preset("accurate")


def test_a_study_is_resumed_only_by_a_search_over_the_same_settings(tmp_path, monkeypatch):
    """A trial records the keys its search set; one from a search without a key (an older
    labelwise) would take today's default for it in the tuned config, which is not the model
    it judged. So the searched space is part of the study's name."""
    from labelwise.pipeline.search_space import search_space, space_digest
    from labelwise.tasks.tune import open_study

    config, _, _ = _job(tmp_path, "resume")
    cfg = load_config(config)
    monkeypatch.setenv("LABELWISE_TUNE_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")
    space = search_space(cfg)
    study = open_study(cfg, "d" * 64, "f1_macro", space)
    assert open_study(cfg, "d" * 64, "f1_macro", space).study_name == study.study_name
    assert study.study_name.endswith(space_digest(space)[:6])
    assert space_digest(space[:-1])[:6] != space_digest(space)[:6]  # a key fewer: another study
    # a table with text searches its text settings too: another space, another study
    with_text = search_space(cfg, text=True)
    assert open_study(cfg, "d" * 64, "f1_macro", with_text).study_name != study.study_name
