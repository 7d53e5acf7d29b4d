"""Per-label LightGBM training on ONE binned Dataset.

Binning is the expensive, label-independent part of building a LightGBM Dataset, so it is done
once for all labels. Each worker thread takes its own subsets of that Dataset (``subset`` copies
the binned rows without re-binning) and then, label after label, sets the label on them and calls
``lgb.train``. Two LightGBM traps this design avoids:

* two labels are never trained on the same Dataset object at the same time (the objective keeps a
  pointer to the label array), hence one set of subsets per worker thread;
* per-label class weights go through ``scale_pos_weight``, never through ``set_weight`` (on a
  constructed Dataset ``set_weight(None)`` keeps the previous label's weights).

Each booster runs single-threaded: for the small per-label problems of multi-label data, labels in
parallel beat threads inside one booster.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.engine.callbacks import FitCallback
from labelwise.engine.executors import Executor, ThreadExecutor
from labelwise.engine.label_model import LabelModel
from labelwise.engine.lgb_threads import one_thread

if TYPE_CHECKING:
    import lightgbm as lgb


@dataclass
class LabelJob:
    """What to train for one label: its index, LightGBM params, and optionally a fixed number
    of rounds (used when there are no validation rows, e.g. out-of-fold refits)."""

    index: int
    params: dict[str, Any]
    rounds: int | None = None


@dataclass(frozen=True)
class Rounds:
    """How many boosting rounds: at most ``num_boost_round``, early-stopped after
    ``early_stopping_rounds`` without progress on the validation rows; with ``refit``, retrained
    on all rows for ``best * n_all / n_train`` rounds; ``fallback`` rounds where no early stopping
    is possible (no validation rows, or one class in the training part)."""

    num_boost_round: int
    early_stopping_rounds: int | None
    refit: bool
    fallback: int = 100


@dataclass(frozen=True)
class _Split:
    train_idx: np.ndarray
    valid_idx: np.ndarray | None  # None: no validation rows
    X_valid: np.ndarray | None
    n_all: int

    @property
    def n_valid(self) -> int:
        return 0 if self.valid_idx is None else len(self.valid_idx)


class _Views:
    """Each thread's own subsets of the binned parent (rows copied, no re-binning); built one
    at a time, since construction reads the shared parent."""

    def __init__(self, base: lgb.Dataset, split: _Split, refit: bool) -> None:
        self.base, self.split, self.refit = base, split, refit
        self._lock, self._local = threading.Lock(), threading.local()

    def mine(self) -> tuple[Any, Any, Any]:
        view = getattr(self._local, "view", None)
        if view is None:
            s = self.split
            with self._lock:
                tr = self._subset(s.train_idx)
                va = self._subset(s.valid_idx) if s.n_valid else None
                full = self._subset(np.arange(s.n_all)) if self.refit and s.n_valid else None
            view = self._local.view = (tr, va, full)
        return view

    def _subset(self, rows: Any) -> Any:
        # LightGBM takes index arrays (typed as list[int]) but keeps them as a sorted Python
        # list, 40 bytes a row (about 60 MB a thread at 800,000 rows): once the subset is
        # built, the same sorted indices as an array
        subset = self.base.subset(
            rows, params={**(self.base.params or {}), "num_threads": 1}
        ).construct()
        subset.used_indices = np.sort(rows)  # type: ignore[assignment]  # read as a sequence
        return subset


def fit_label(
    view: tuple[Any, Any, Any], y_all: np.ndarray, split: _Split, job: LabelJob, rounds: Rounds
) -> tuple[LabelModel, np.ndarray | float | None]:
    """One label's model and its held-out probabilities (of the model before any refit: the
    refitted one has seen those rows, so its predictions there would leak into thresholds)."""
    y_all = y_all.astype(np.float64)
    n_pos = y_all.sum()
    if n_pos == 0 or n_pos == split.n_all:
        model = LabelModel(None, float(n_pos > 0), 0)
        return model, (model.constant if split.n_valid else None)
    y_tr = y_all[split.train_idx]
    if split.n_valid and 0 < y_tr.sum() < len(y_tr):
        return _fit_early_stopped(view, y_all, split, job, rounds)
    model = _fit_fixed_rounds(view, y_all, split, job, rounds)
    assert split.X_valid is not None or not split.n_valid
    return model, (model.predict(split.X_valid) if split.X_valid is not None else None)


def _fit_early_stopped(
    view: tuple[Any, Any, Any], y_all: np.ndarray, split: _Split, job: LabelJob, rounds: Rounds
) -> tuple[LabelModel, np.ndarray]:
    import lightgbm as lgb

    tr, va, full = view
    tr.set_label(y_all[split.train_idx])
    va.set_label(y_all[split.valid_idx])
    callbacks: list[Callable[..., Any]] = (
        [lgb.early_stopping(rounds.early_stopping_rounds, verbose=False)]
        if rounds.early_stopping_rounds
        else []
    )
    booster = lgb.train(
        job.params,
        tr,
        num_boost_round=rounds.num_boost_round,
        valid_sets=[va],
        valid_names=["valid"],
        callbacks=callbacks,
    )
    best = booster.best_iteration or booster.current_iteration()
    p_valid = booster.predict(split.X_valid, num_iteration=best, num_threads=1)
    if rounds.refit:
        best = max(1, round(best * split.n_all / len(split.train_idx)))
        full.set_label(y_all)
        booster = lgb.train(job.params, full, num_boost_round=best)
    return LabelModel(booster, None, best), np.asarray(p_valid, dtype=np.float64)


def _fit_fixed_rounds(
    view: tuple[Any, Any, Any], y_all: np.ndarray, split: _Split, job: LabelJob, rounds: Rounds
) -> LabelModel:
    """No early stopping possible: fixed rounds on every row this step may use."""
    import lightgbm as lgb

    tr, _, full = view
    target, idx = (full, np.arange(split.n_all)) if full is not None else (tr, split.train_idx)
    y_fit = y_all[idx]
    if y_fit.min() == y_fit.max():
        return LabelModel(None, float(y_fit[0]), 0)
    target.set_label(y_fit)
    n = job.rounds or rounds.fallback
    return LabelModel(lgb.train(job.params, target, num_boost_round=n), None, n)


class _Collector:
    """Where finished per-label models go: the results, their column of held-out
    probabilities, and the fit's callbacks (checkpoint, progress). Thread-safe."""

    def __init__(
        self, step: str, split: _Split, n_jobs: int, callbacks: Sequence[FitCallback]
    ) -> None:
        self.step, self.callbacks = step, list(callbacks)
        self.P_valid = np.zeros((split.n_valid, n_jobs)) if split.n_valid else None
        self.results: dict[int, LabelModel] = {}
        self._lock = threading.Lock()

    def restore(self, pos: int, index: int) -> bool:
        """Take a model finished before a crash from a callback; False if none has it."""
        n_valid = 0 if self.P_valid is None else self.P_valid.shape[0]
        for cb in self.callbacks:
            found = cb.restore(self.step, index, n_valid)
            if found is not None:
                self.add(pos, index, *found, restored=True)
                return True
        return False

    def add(
        self,
        pos: int,
        index: int,
        model: LabelModel,
        p_valid: np.ndarray | float | None,
        restored: bool = False,
    ) -> None:
        held = None
        if self.P_valid is not None:
            self.P_valid[:, pos] = p_valid
            held = self.P_valid[:, pos]
        with self._lock:
            self.results[index] = model
        for cb in self.callbacks:
            cb.model_done(self.step, index, model, held, restored)


def train_per_label(
    base: lgb.Dataset,
    Y: np.ndarray,
    X: np.ndarray | None,
    train_idx: np.ndarray,
    valid_idx: np.ndarray | None,
    jobs: Sequence[LabelJob],
    rounds: Rounds,
    *,
    step: str = "L1m0",
    executor: Executor | None = None,
    callbacks: Sequence[FitCallback] = (),
    X_valid: np.ndarray | None = None,
) -> tuple[dict[int, LabelModel], np.ndarray | None]:
    """Train one model per job on the shared constructed Dataset ``base`` (all rows of ``X``).

    With ``valid_idx``: early stopping on those rows; their probabilities are returned (n_valid x
    n_jobs, in job order) for threshold calibration. A label whose training part holds one class
    is fitted on all rows for ``rounds.fallback``; a label with one class in all rows gets a
    constant model. Models a callback can restore (a checkpoint of a killed fit) are reused.
    ``X_valid`` replaces ``X[valid_idx]`` (then ``X`` may be None).
    """
    has_valid = valid_idx is not None and len(valid_idx) > 0
    if X_valid is None and has_valid and X is not None:
        X_valid = X[valid_idx]
    split = _Split(train_idx, valid_idx if has_valid else None, X_valid, base.num_data())
    out = _Collector(step, split, len(jobs), callbacks)
    todo = [(pos, job) for pos, job in enumerate(jobs) if not out.restore(pos, job.index)]
    executor = executor or ThreadExecutor()
    if todo and executor.shares_memory:
        views = _Views(base, split, rounds.refit)

        def fit(item: tuple[int, LabelJob]) -> None:
            pos, job = item
            model, p_valid = fit_label(views.mine(), Y[:, job.index], split, job, rounds)
            out.add(pos, job.index, model, p_valid)

        with one_thread():
            for _ in executor.map(step, fit, todo):
                pass
    elif todo:
        _train_remote(base, Y, split, todo, rounds, step, executor, out)
    return out.results, out.P_valid


def _train_remote(
    base: lgb.Dataset,
    Y: np.ndarray,
    split: _Split,
    todo: list[tuple[int, LabelJob]],
    rounds: Rounds,
    step: str,
    executor: Executor,
    out: _Collector,
) -> None:
    """Chunks of labels as self-contained payloads for other processes (a Dask cluster)."""
    import lightgbm as lgb

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.bin"
        base.save_binary(str(path))
        data = path.read_bytes()
    n_chunks = min(len(todo), max(2 * executor.n_workers, -(-len(todo) // 64)))
    chunks = [todo[i::n_chunks] for i in range(n_chunks)]
    common = {
        "data": data,
        "dataset_params": dict(base.params or {}),
        "split": split,
        "rounds": rounds,
    }
    payloads = [
        common
        | {
            "Y": Y[:, [job.index for _, job in chunk]],
            "jobs": [replace(job, index=k) for k, (_, job) in enumerate(chunk)],
        }
        for chunk in chunks
    ]
    results = executor.map(step, fit_remote_chunk, payloads)
    for chunk, (models, P_chunk) in zip(chunks, results, strict=True):
        for k, ((pos, job), (text, constant, best)) in enumerate(zip(chunk, models, strict=True)):
            booster = lgb.Booster(model_str=text) if text is not None else None
            out.add(
                pos,
                job.index,
                LabelModel(booster, constant, best),
                P_chunk[:, k] if P_chunk is not None else None,
            )


RemoteModel = tuple[str | None, float | None, int]  # (LightGBM text, constant, best iteration)


def fit_remote_chunk(payload: dict[str, Any]) -> tuple[list[RemoteModel], np.ndarray | None]:
    """Runs in a worker process: load the binned data, train the chunk's labels; return each
    model as LightGBM text (or a constant) and the chunk's held-out probabilities."""
    import lightgbm as lgb

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.bin"
        path.write_bytes(payload["data"])
        with one_thread():  # other chunks may train in this worker's other threads
            params = payload["dataset_params"] | {"num_threads": 1}
            base = lgb.Dataset(str(path), params=params).construct()
    split: _Split = payload["split"]
    models, P_valid = train_per_label(
        base,
        payload["Y"],
        None,
        split.train_idx,
        split.valid_idx,
        payload["jobs"],
        payload["rounds"],
        X_valid=split.X_valid,
    )
    out: list[RemoteModel] = [
        (None, m.constant, 0) if m.booster is None else (m.to_text(), None, m.best_iteration)
        for m in (models[k] for k in range(len(payload["jobs"])))
    ]
    return out, P_valid


# below this many rows a batch is scored label after label in the calling thread: for small
# batches a thread pool's hand-offs cost more than the trees
THREADED_PREDICT_ROWS = 1000


def predict_per_label(models: Sequence[LabelModel], X: Any, n_jobs: int = 1) -> np.ndarray:
    """Probabilities (n x len(models)); labels in parallel threads for large batches."""
    out = np.empty((X.shape[0], len(models)), dtype=np.float64)

    def one(j: int) -> None:
        out[:, j] = models[j].predict(X)

    with one_thread():
        if X.shape[0] < THREADED_PREDICT_ROWS or n_jobs == 1:
            for j in range(len(models)):
                one(j)
        else:
            for _ in ThreadExecutor(n_jobs).map("predict", one, range(len(models))):
                pass
    return out
