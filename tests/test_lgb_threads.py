"""LightGBM's process-wide thread count: concurrent fits must not tear each other's buffers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest

from labelwise.engine.classifier import LabelwiseClassifier
from labelwise.engine.errors import ConfigError
from labelwise.engine.lgb_threads import cores, one_thread

# two fits in two threads of one process, on sparse binary features (LightGBM builds
# multi-value bins for them); before lgb_threads this died with SIGSEGV within seconds
TWO_FITS = """
import json, sys, threading, time
import numpy as np
from labelwise.engine.classifier import LabelwiseClassifier
rng = np.random.default_rng(0)
X = (rng.random((3000, 300)) < 0.04).astype(np.float64)
Y = (X[:, :12] + (rng.random((3000, 12)) < 0.1) > 0).astype(np.int8)
end, done = time.monotonic() + float(sys.argv[1]), []
def loop(seed):
    n = 0
    while time.monotonic() < end:
        LabelwiseClassifier(n_estimators=5, n_jobs=2, cv_folds=None, random_state=seed).fit(X, Y)
        n += 1
    done.append(n)
threads = [threading.Thread(target=loop, args=(s,)) for s in (0, 1)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(sorted(done)))
"""


@pytest.mark.slow
def test_concurrent_fits_on_sparse_features_survive():
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TWO_FITS), "15"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    fits = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(fits) == 2 and min(fits) >= 5, fits


def test_cores_are_given_only_when_no_one_thread_work_runs():
    with cores(4) as alone:
        assert alone == 4
    with one_thread(), cores(4) as shared:
        assert shared == 1
    with cores(1) as one:
        assert one == 1


def test_one_thread_work_waits_for_a_several_thread_call():
    entered, order = threading.Event(), []

    def worker():
        entered.set()
        with one_thread():
            order.append("one-thread work")

    with cores(2) as threads:
        assert threads == 2
        t = threading.Thread(target=worker)
        t.start()
        entered.wait(5)
        t.join(0.3)  # still waiting: the several-thread call has not returned
        order.append("several-thread call done")
    t.join(5)
    assert order == ["several-thread call done", "one-thread work"]


@pytest.mark.parametrize("key", ["num_threads", "nthread"])
def test_lgb_params_may_not_set_the_thread_count(key):
    with pytest.raises(ConfigError, match="n_jobs") as err:
        LabelwiseClassifier(lgb_params={key: 4}).validate_params()
    assert err.value.param == "lgb_params"
