"""LightGBM's thread count is one setting of the whole process; keep concurrent calls in step.

Every LightGBM call sets the process-wide OpenMP thread count from its own ``num_threads``,
and its parallel sections size their per-thread buffers from that count. A call that bins a
Dataset on every core while another thread builds a one-thread booster resets the count under
that booster, whose parallel loop then runs more threads than it has buffers for: a segfault
in ``Dataset::PushDataToMultiValBin`` (seen on sparse tables: one fit's thread building its
Dataset subsets while another built a booster, and two fits in two threads).

So per-label work (training, prediction) always asks for one thread and runs inside
:func:`one_thread`; a call that wants more cores (binning the shared Dataset) asks
:func:`cores` and gets them only while no per-label work runs anywhere in the process, one
thread otherwise. It never waits for per-label work, which can last minutes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

# LightGBM's names for num_threads: a config must not set it (see the docstring)
THREAD_ALIASES = ("num_threads", "num_thread", "nthread", "nthreads", "n_jobs")

_state = threading.Condition()
_one_thread = 0  # sections running one-thread LightGBM calls
_many = False  # a call using several threads is running


@contextmanager
def one_thread() -> Iterator[None]:
    """A section whose LightGBM calls all use ``num_threads=1`` (it waits while a
    several-thread call, a few seconds of binning at most, finishes)."""
    global _one_thread
    with _state:
        _state.wait_for(lambda: not _many)
        _one_thread += 1
    try:
        yield
    finally:
        with _state:
            _one_thread -= 1
            _state.notify_all()


@contextmanager
def cores(wanted: int) -> Iterator[int]:
    """The ``num_threads`` a call may use: ``wanted`` when nothing else runs LightGBM,
    else 1 (then it counts as a :func:`one_thread` section)."""
    global _many, _one_thread
    with _state:
        _state.wait_for(lambda: not _many)
        alone = wanted > 1 and _one_thread == 0
        if alone:
            _many = True
        else:
            _one_thread += 1
    try:
        yield wanted if alone else 1
    finally:
        with _state:
            if alone:
                _many = False
            else:
                _one_thread -= 1
            _state.notify_all()
