"""Where per-label work runs: the one executor protocol of a fit.

A fit hands its per-label work to an :class:`Executor` (``fit(..., executor=...)``). An executor
that ``shares_memory`` runs ``fn`` on per-label items in threads of this process, which read the
one binned Dataset in place; one that does not gets self-contained chunks instead (the binned
Dataset as LightGBM's binary file plus the chunk's label columns) and runs
:func:`labelwise.engine.per_label.fit_remote_chunk` on them in other processes or machines.
Either way ``map`` yields results in the order of the items, each as soon as it is ready, so the
fit checkpoints finished models while the rest still train.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol


class Executor(Protocol):
    """Runs ``fn`` on every item of one training step (a fold, a chain level...)."""

    n_workers: int
    shares_memory: ClassVar[bool]

    def map(self, step: str, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
        """``fn(item)`` for every item, yielded in item order as each is ready."""
        ...


@dataclass
class ThreadExecutor:
    """Threads of this process (LightGBM releases the GIL: real label parallelism)."""

    n_workers: int = 1
    shares_memory: ClassVar[bool] = True

    def map(self, step: str, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
        if self.n_workers <= 1 or len(items) <= 1:
            yield from map(fn, items)
            return
        pool = ThreadPoolExecutor(min(self.n_workers, len(items)))
        try:
            yield from pool.map(fn, items)
        finally:  # after an error, labels not yet started are dropped, not trained for nothing
            pool.shutdown(wait=True, cancel_futures=True)


def n_workers(n_jobs: int | None) -> int:
    """Workers for ``n_jobs`` (-1 or None: one per core)."""
    return max(1, os.cpu_count() or 1) if n_jobs in (-1, None) else max(1, n_jobs)
