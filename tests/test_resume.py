"""Crash and resume: kill -9 a fit after some labels finish; the rerun reuses them (the engine
alone, and `labelwise train` with its MLflow run and registry)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from labelwise.engine.callbacks import Checkpoint, Progress
from labelwise.engine.classifier import LabelwiseClassifier
from labelwise.engine.synthetic import make_multilabel_table

ROOT = Path(__file__).resolve().parents[1]


def _data():
    df = make_multilabel_table(n_rows=1200, n_labels=10, seed=5)
    labels = [c for c in df.columns if c.startswith("label_")]
    return df.drop(["id", *labels]), df.select(labels)


@pytest.mark.parametrize("cv_folds, kill_at", [("auto", 17), (None, 5)])
def test_killed_fit_resumes_without_retraining(tmp_path: Path, cv_folds, kill_at):
    """Cross-fitted, and hold-out + refit (where a reused model must bring back the held-out
    predictions of its pre-refit model, or the thresholds would differ)."""
    ckpt = tmp_path / "ckpt"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_resume import _data
        from labelwise.engine.classifier import LabelwiseClassifier
        X, Y = _data()
        def progress(done, planned, label):
            if done == {kill_at}:  # some labels are on disk: die the hard way
                os.kill(os.getpid(), signal.SIGKILL)
        from labelwise.engine.callbacks import Checkpoint, Progress
        LabelwiseClassifier(n_estimators=40, n_jobs=1, cv_folds={cv_folds!r}).fit(
            X, Y, callbacks=[Checkpoint({str(ckpt)!r}), Progress(progress)])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    saved = list(ckpt.rglob("*.txt")) + list(ckpt.rglob("*.json"))
    assert len(saved) == kill_at and not list(ckpt.rglob("*.tmp"))

    X, Y = _data()
    planned = []
    checkpoint = Checkpoint(ckpt)
    resumed = LabelwiseClassifier(n_estimators=40, n_jobs=1, cv_folds=cv_folds).fit(
        X, Y, callbacks=[checkpoint, Progress(lambda d, p, _l: planned.append(p))]
    )
    assert checkpoint.restored == kill_at
    fresh = LabelwiseClassifier(n_estimators=40, n_jobs=1, cv_folds=cv_folds).fit(X, Y)
    assert np.allclose(resumed.predict_proba(X), fresh.predict_proba(X))
    assert np.allclose(resumed.thresholds_, fresh.thresholds_)


@pytest.mark.slow
def test_killed_train_command_resumes_and_registers_once(tmp_path: Path):
    """kill -9 `labelwise train` (and its ephemeral Prefect server) once per-label models are
    on disk; the same command again reuses them, marks the killed run FAILED, registers one
    version, and its model equals a run from scratch."""
    from mlflow import MlflowClient

    df = make_multilabel_table(n_rows=2500, n_labels=12, seed=8)
    df.head(2000).write_parquet(tmp_path / "train.parquet")
    df.tail(500).write_parquet(tmp_path / "test.parquet")
    cfg = {
        "name": "resume",
        "data": {
            "train": "train.parquet",
            "test": "test.parquet",
            "labels": {"prefix": "label_"},
            "exclude": ["id"],
        },
        "model": {"params": {"n_estimators": 80, "cv_folds": 3}},
        "n_jobs": 1,
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    home = tmp_path / "state"

    def train(state: Path, **kw):
        env = {**os.environ, "LABELWISE_HOME": str(state), "PREFECT_HOME": str(state / "prefect")}
        # MLflow exports set_tracking_uri() to the environment: earlier tests' URIs must not leak
        for k in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            env.pop(k, None)
        return subprocess.Popen(
            [sys.executable, "-m", "labelwise.cli", "train", "-c", str(tmp_path / "job.yaml")],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            **kw,
        )

    proc = train(home)
    deadline = time.monotonic() + 300
    while len(list(home.glob("runs/resume/*/checkpoints/**/*.sha256"))) < 8:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no per-label model was saved in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Prefect server, the hard way
    proc.wait()
    # a model counts as finished once its digest file is written (after its .txt): one
    # killed between the two is retrained, not resumed
    done_before = len(list(home.glob("runs/resume/*/checkpoints/**/*.sha256")))

    again = train(home)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    scratch = train(tmp_path / "scratch")
    scratch.communicate(timeout=600)
    assert scratch.returncode == 0

    uri = f"sqlite:///{home / 'mlflow.db'}"
    c = MlflowClient(uri, registry_uri=uri)
    runs = c.search_runs(
        [c.get_experiment_by_name("resume").experiment_id], order_by=["attributes.start_time ASC"]
    )
    assert [r.info.status for r in runs] == ["FAILED", "FINISHED"]
    assert "abandoned" in runs[0].data.tags["labelwise.error"]
    assert runs[1].data.metrics["models_resumed"] >= done_before >= 8
    assert [str(v.version) for v in c.search_model_versions("name='resume'")] == ["1"]
    resumed = LabelwiseClassifier.load(next(home.glob("runs/resume/*/model")))
    fresh = LabelwiseClassifier.load(next((tmp_path / "scratch").glob("runs/resume/*/model")))
    X = df.tail(500).drop(["id", *[c for c in df.columns if c.startswith("label_")]])
    assert np.allclose(resumed.predict_proba(X), fresh.predict_proba(X))
    assert np.allclose(resumed.thresholds_, fresh.thresholds_)
