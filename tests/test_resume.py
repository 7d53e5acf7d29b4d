"""Crash and resume: kill -9 a fit after some labels finish; the rerun reuses them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from labelwise.model import LabelwiseClassifier
from labelwise.synthetic import make_multilabel_table

ROOT = Path(__file__).resolve().parents[1]


def _data():
    df = make_multilabel_table(n_rows=1200, n_labels=10, seed=5)
    labels = [c for c in df.columns if c.startswith("label_")]
    return df.drop(["id", *labels]), df.select(labels)


def test_killed_fit_resumes_without_retraining(tmp_path: Path):
    ckpt = tmp_path / "ckpt"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'tests')!r})
        from test_resume import _data
        from labelwise.model import LabelwiseClassifier
        X, Y = _data()
        def progress(done, planned, label):
            if done == 17:  # some labels of some folds are on disk: die the hard way
                os.kill(os.getpid(), signal.SIGKILL)
        LabelwiseClassifier(n_estimators=40, n_jobs=1).fit(
            X, Y, progress=progress, checkpoint_dir={str(ckpt)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    saved = list(ckpt.rglob("*.txt")) + list(ckpt.rglob("*.json"))
    assert len(saved) == 17 and not list(ckpt.rglob("*.tmp"))

    X, Y = _data()
    planned = []
    resumed = LabelwiseClassifier(n_estimators=40, n_jobs=1).fit(
        X, Y, checkpoint_dir=ckpt, progress=lambda d, p, _l: planned.append(p))
    assert resumed.n_models_resumed_ == 17
    fresh = LabelwiseClassifier(n_estimators=40, n_jobs=1).fit(X, Y)
    assert fresh.n_models_resumed_ == 0
    assert np.allclose(resumed.predict_proba(X), fresh.predict_proba(X))
    assert np.allclose(resumed.thresholds_, fresh.thresholds_)
