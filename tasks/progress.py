"""In-process listeners of training progress (the CLI's progress bar).

Kept out of tasks/train.py on purpose: prefect-dask pickles the running task (by value) into
every chunk it ships to a Dask worker, and a listener holding a live progress bar (locks,
a terminal) must not travel with it.
"""

from __future__ import annotations

from collections.abc import Callable

LISTENERS: list[Callable[[int, int, str], None]] = []


def notify(done: int, planned: int, label: str) -> None:
    """Tell every listener that ``done`` of ``planned`` per-label models are trained."""
    for listen in list(LISTENERS):
        listen(done, planned, label)


STAGE_LISTENERS: list[Callable[[str], None]] = []


def stage(name: str) -> None:
    """Tell every stage listener that the run moved on to ``name`` (contract, split, fit...)."""
    for listen in list(STAGE_LISTENERS):
        listen(name)


SAY_LISTENERS: list[Callable[[str], None]] = []


def say(line: str) -> None:
    """A line worth keeping on the terminal (a finished trial of ``labelwise tune``)."""
    for listen in list(SAY_LISTENERS):
        listen(line)
