"""Per-label LightGBM training on ONE binned Dataset.

Binning is the expensive, label-independent part of building a LightGBM Dataset, so it is done
once for all labels. Each worker thread takes its own subsets of that Dataset (``subset`` copies
the binned rows without re-binning) and then, label after label, sets the label on them and calls
``lgb.train``. Two traps this design avoids (see DESIGN.md):

* two labels are never trained on the same Dataset object at the same time (the objective keeps a
  pointer to the label array), hence one set of subsets per worker;
* per-label class weights go through ``scale_pos_weight``, never through ``set_weight``.

LightGBM releases the GIL inside its C calls, so threads give real label parallelism; each
booster then runs single-threaded, which for the small per-label problems of multi-label data is
faster than sharing threads inside one booster.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class LabelModel:
    """One label's fitted model: a booster, or a constant probability when the training rows
    hold a single class for that label."""

    booster: object | None  # lightgbm.Booster
    constant: float | None
    best_iteration: int

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        if self.booster is None:
            return np.full(X.shape[0], self.constant, dtype=np.float64)
        return self.booster.predict(X, num_iteration=self.best_iteration or None,
                                    num_threads=num_threads)


@dataclass
class LabelJob:
    """What to train for one label: its index, LightGBM params, and optionally a fixed number
    of rounds (used when there are no validation rows, e.g. out-of-fold refits)."""

    index: int
    params: dict
    rounds: int | None = None


# runner(run_chunk, chunks): calls run_chunk(chunk) for every chunk, returns when all are done
ChunkRunner = Callable[[Callable[[list], None], list[list]], None]


@dataclass
class RemoteRunner:
    """A runner whose chunks run in other processes or machines (a Dask cluster).

    ``call(step, fit_remote_chunk, payloads)`` must return, or better yield as they finish
    (each chunk's models are checkpointed as soon as they arrive), ``fit_remote_chunk(p)`` for
    every payload, in order. Nothing is shared with those processes: each payload carries the binned
    training data (LightGBM's binary Dataset file, so workers never re-bin), the label columns
    of its chunk and the job parameters; boosters come back as LightGBM model text.
    """

    call: Callable[[str, Callable[[dict], Any], list[dict]], Iterable[Any]]
    n_workers: int = 2
    step: str = ""

    def for_step(self, step: str) -> RemoteRunner:
        return RemoteRunner(self.call, self.n_workers, step)


class Checkpoint:
    """Per-label models of one training step on disk, so a killed fit resumes where it died.

    ``root/<step>/<label index>.txt`` is the booster (LightGBM text) or ``.json`` a constant
    model, and ``<label index>.valid.npy`` its held-out probabilities (those of the model
    *before* the refit on all rows: the refitted model has seen the held-out rows, so its
    predictions there would leak into the thresholds). Files are written to a temporary name
    and renamed, predictions first, so a half-written model is never read back. The caller
    keys ``root`` by data and parameters (the flow's work directory is).
    """

    def __init__(self, root: str | os.PathLike[str], step: str) -> None:
        self.dir = Path(root) / step
        self.dir.mkdir(parents=True, exist_ok=True)
        self.loaded: list[int] = []  # labels reused from disk (list.append is thread-safe)

    def save(self, index: int, model: LabelModel, p_valid: np.ndarray | None = None) -> None:
        if p_valid is not None:
            target = self.dir / f"{index}.valid.npy"
            tmp = target.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(p_valid, dtype=np.float64))
            os.replace(tmp, target)
        if model.booster is None:
            target, text = self.dir / f"{index}.json", json.dumps({"constant": model.constant})
        else:
            target, text = self.dir / f"{index}.txt", _model_text(model)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, target)

    def load(self, index: int) -> LabelModel | None:
        import lightgbm as lgb

        const = self.dir / f"{index}.json"
        path = self.dir / f"{index}.txt"
        if const.exists():
            model = LabelModel(None, float(json.loads(const.read_text())["constant"]), 0)
        elif path.exists():
            booster = lgb.Booster(model_file=str(path))
            model = LabelModel(booster, None, booster.current_iteration())
        else:
            return None
        self.loaded.append(index)
        return model

    def held_out(self, index: int, model: LabelModel, X_valid: np.ndarray) -> np.ndarray:
        """The saved held-out probabilities of a reused model (its own, for a checkpoint
        written before they were kept)."""
        path = self.dir / f"{index}.valid.npy"
        if path.exists():
            p = np.load(path)
            if p.shape == (len(X_valid),):
                return p
        return model.predict(X_valid)


class _Collector:
    """Where finished per-label models go, for the in-process and the remote path alike: the
    checkpoint (fresh models only), the results, their column of held-out probabilities and
    the progress callback. Thread-safe."""

    def __init__(self, n_valid: int, n_jobs: int, checkpoint: Checkpoint | None,
                 on_done: Callable[[int, LabelModel], None] | None) -> None:
        self.P_valid = np.zeros((n_valid, n_jobs)) if n_valid else None
        self.results: dict[int, LabelModel] = {}
        self.checkpoint, self.on_done = checkpoint, on_done
        self._lock = threading.Lock()

    def reuse(self, pos: int, index: int, X_valid: np.ndarray | None) -> bool:
        """Take a model finished before a crash from the checkpoint; False if there is none."""
        done = self.checkpoint.load(index) if self.checkpoint is not None else None
        if done is None:
            return False
        held = (self.checkpoint.held_out(index, done, X_valid) if self.P_valid is not None
                else None)
        self.add(pos, index, done, held, fresh=False)
        return True

    def add(self, pos: int, index: int, model: LabelModel, p_valid: np.ndarray | float | None,
            fresh: bool = True) -> None:
        if self.P_valid is not None:
            self.P_valid[:, pos] = p_valid
        if self.checkpoint is not None and fresh:
            held = self.P_valid[:, pos] if self.P_valid is not None else None
            self.checkpoint.save(index, model, held)
        with self._lock:
            self.results[index] = model
        if self.on_done is not None:
            self.on_done(index, model)


def _model_text(model: LabelModel) -> str:
    """A booster as LightGBM model text, cut at its best iteration."""
    return model.booster.model_to_string(num_iteration=model.best_iteration or None)


def train_per_label(base, Y: np.ndarray, X: np.ndarray, train_idx: np.ndarray,
                    valid_idx: np.ndarray | None, jobs: Sequence[LabelJob],
                    num_boost_round: int, early_stopping_rounds: int | None,
                    refit: bool, fallback_rounds: int = 100, n_jobs: int = 1,
                    on_done: Callable[[int, LabelModel], None] | None = None,
                    checkpoint: Checkpoint | None = None,
                    runner: ChunkRunner | RemoteRunner | None = None,
                    X_valid: np.ndarray | None = None,
                    ) -> tuple[dict[int, LabelModel], np.ndarray | None]:
    """Train one model per job on the shared constructed Dataset ``base`` (all rows of ``X``).

    With ``valid_idx``: early stopping on those rows; their probabilities are returned (n_valid x
    n_jobs, in job order) for threshold calibration. With ``refit``: the final model is retrained
    on all rows for ``best_iteration * n_all / n_train`` rounds. A label whose training part
    holds one class (its few positives all fell in the validation rows) is fitted on all rows for
    ``fallback_rounds``; a label with one class in all rows gets a constant model.
    With ``checkpoint``, each finished model is written at once and models found there are
    reused instead of retrained (resuming a killed fit). With ``runner``, the labels are cut
    into chunks and ``runner(run_chunk, chunks)`` must call ``run_chunk`` on every chunk (in
    any threads it likes, e.g. Prefect tasks) and return when all are done; a
    :class:`RemoteRunner` gets picklable chunks instead. ``X_valid`` replaces ``X[valid_idx]``
    (then ``X`` may be None).
    """
    import lightgbm as lgb

    if isinstance(runner, RemoteRunner):
        return _train_remote(base, Y, X, train_idx, valid_idx, jobs, num_boost_round,
                             early_stopping_rounds, refit, fallback_rounds, on_done,
                             checkpoint, runner)

    n_all = base.num_data()
    all_idx = np.arange(n_all)
    has_valid = valid_idx is not None and len(valid_idx) > 0
    n_workers = max(1, min(n_jobs, len(jobs)))
    view_lock = threading.Lock()

    def make_view() -> tuple:
        """A worker's own subsets of the binned parent (rows copied, no re-binning); built one
        at a time, since construction reads the shared parent."""
        with view_lock:
            tr = base.subset(train_idx).construct()
            va = base.subset(valid_idx).construct() if has_valid else None
            full = base.subset(all_idx).construct() if (refit and has_valid) else None
        return tr, va, full

    if X_valid is None and has_valid:
        X_valid = X[valid_idx]
    out = _Collector(len(valid_idx) if has_valid else 0, len(jobs), checkpoint, on_done)
    todo: queue.Queue[tuple[int, LabelJob]] = queue.Queue()
    for pos, job in enumerate(jobs):
        todo.put((pos, job))
    errors: list[BaseException] = []

    def fit_one(view, pos: int, job: LabelJob) -> None:
        tr, va, full = view
        if out.reuse(pos, job.index, X_valid):  # finished before a crash: do not retrain
            return
        y_all = Y[:, job.index].astype(np.float64)
        y_tr = y_all[train_idx]
        pos_all = y_all.sum()
        if pos_all == 0 or pos_all == n_all:
            model = LabelModel(None, float(pos_all > 0), 0)
            out.add(pos, job.index, model, model.constant)
            return
        p_valid = None
        params = dict(job.params)
        if has_valid and 0 < y_tr.sum() < len(y_tr):
            tr.set_label(y_tr)
            va.set_label(y_all[valid_idx])
            callbacks = []
            if early_stopping_rounds:
                callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
            booster = lgb.train(params, tr, num_boost_round=num_boost_round, valid_sets=[va],
                                valid_names=["valid"], callbacks=callbacks)
            best = booster.best_iteration or booster.current_iteration()
            # held-out probabilities of the model that has not seen those rows
            p_valid = booster.predict(X_valid, num_iteration=best, num_threads=1)
            if refit:
                rounds = max(1, round(best * n_all / len(train_idx)))
                full.set_label(y_all)
                booster = lgb.train(params, full, num_boost_round=rounds)
                best = rounds
            model = LabelModel(booster, None, best)
        else:
            # no early stopping possible: fixed rounds on every row we may use
            target, idx = (full, all_idx) if full is not None else (tr, train_idx)
            y_fit = y_all[idx]
            if y_fit.min() == y_fit.max():
                model = LabelModel(None, float(y_fit[0]), 0)
            else:
                target.set_label(y_fit)
                rounds = job.rounds or fallback_rounds
                booster = lgb.train(params, target, num_boost_round=rounds)
                model = LabelModel(booster, None, rounds)
            if has_valid:
                p_valid = model.predict(X_valid)
        out.add(pos, job.index, model, p_valid)

    def worker(view) -> None:
        while not errors:
            try:
                pos, job = todo.get_nowait()
            except queue.Empty:
                return
            try:
                fit_one(view, pos, job)
            except BaseException as exc:  # surfaced in the caller's thread
                errors.append(exc)
                return

    if runner is not None:
        # an orchestrator runs the chunks (e.g. as Prefect tasks); each chunk has its own view
        n_chunks = min(len(jobs), max(n_workers, -(-len(jobs) // 64)))
        chunks = [list(enumerate(jobs))[i::n_chunks] for i in range(n_chunks)]

        def run_chunk(items: list[tuple[int, LabelJob]]) -> None:
            view = make_view()
            for pos, job in items:
                fit_one(view, pos, job)

        runner(run_chunk, chunks)
    elif n_workers == 1:
        worker(make_view())
    else:
        views = [make_view() for _ in range(n_workers)]
        threads = [threading.Thread(target=worker, args=(v,), daemon=True) for v in views]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return out.results, out.P_valid


def _train_remote(base, Y: np.ndarray, X: np.ndarray, train_idx: np.ndarray,
                  valid_idx: np.ndarray | None, jobs: Sequence[LabelJob],
                  num_boost_round: int, early_stopping_rounds: int | None, refit: bool,
                  fallback_rounds: int, on_done: Callable[[int, LabelModel], None] | None,
                  checkpoint: Checkpoint | None, runner: RemoteRunner
                  ) -> tuple[dict[int, LabelModel], np.ndarray | None]:
    """train_per_label with the chunks shipped to ``runner`` (see :class:`RemoteRunner`)."""
    import tempfile

    import lightgbm as lgb

    has_valid = valid_idx is not None and len(valid_idx) > 0
    X_valid = X[valid_idx] if has_valid else None
    out = _Collector(len(valid_idx) if has_valid else 0, len(jobs), checkpoint, on_done)
    todo = [(pos, job) for pos, job in enumerate(jobs) if not out.reuse(pos, job.index, X_valid)]
    if not todo:
        return out.results, out.P_valid
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.bin"
        base.save_binary(str(path))
        data = path.read_bytes()
    n_chunks = min(len(todo), max(2 * runner.n_workers, -(-len(todo) // 64)))
    chunks = [todo[i::n_chunks] for i in range(n_chunks)]
    common = {"data": data, "dataset_params": dict(base.params or {}), "train_idx": train_idx,
              "valid_idx": valid_idx, "X_valid": X_valid, "num_boost_round": num_boost_round,
              "early_stopping_rounds": early_stopping_rounds, "refit": refit,
              "fallback_rounds": fallback_rounds}
    payloads = [common | {"Y": Y[:, [job.index for _, job in chunk]],
                          "jobs": [LabelJob(k, job.params, job.rounds)
                                   for k, (_, job) in enumerate(chunk)]} for chunk in chunks]
    for chunk, (models, P_chunk) in zip(chunks, runner.call(runner.step, fit_remote_chunk,
                                                             payloads), strict=True):
        for k, ((pos, job), (text, constant, best)) in enumerate(zip(chunk, models,
                                                                     strict=True)):
            booster = lgb.Booster(model_str=text) if text is not None else None
            out.add(pos, job.index, LabelModel(booster, constant, best),
                    P_chunk[:, k] if has_valid else None)
    return out.results, out.P_valid


def fit_remote_chunk(payload: dict
                     ) -> tuple[list[tuple[str | None, float | None, int]], np.ndarray | None]:
    """Runs in a worker process: load the binned data, train the chunk's labels; return each
    model as (LightGBM text or None, constant or None, best iteration), and the chunk's
    held-out probabilities (computed before any refit, as in-process training does)."""
    import tempfile

    import lightgbm as lgb

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.bin"
        path.write_bytes(payload["data"])
        base = lgb.Dataset(str(path), params=payload["dataset_params"]).construct()
    models, P_valid = train_per_label(
        base, payload["Y"], None, payload["train_idx"], payload["valid_idx"], payload["jobs"],
        payload["num_boost_round"], payload["early_stopping_rounds"], payload["refit"],
        payload["fallback_rounds"], n_jobs=1, X_valid=payload["X_valid"])
    out = []
    for m in (models[k] for k in range(len(payload["jobs"]))):
        out.append((None, m.constant, 0) if m.booster is None
                   else (_model_text(m), None, m.best_iteration))
    return out, P_valid


def predict_per_label(models: Sequence[LabelModel], X: np.ndarray, n_jobs: int = 1
                      ) -> np.ndarray:
    """Probabilities (n x len(models)), labels predicted in parallel threads."""
    out = np.empty((X.shape[0], len(models)), dtype=np.float64)
    if n_jobs <= 1 or len(models) < 2:
        for j, m in enumerate(models):
            out[:, j] = m.predict(X)
        return out
    from concurrent.futures import ThreadPoolExecutor

    def one(j: int) -> None:
        out[:, j] = models[j].predict(X)

    with ThreadPoolExecutor(n_jobs) as ex:
        list(ex.map(one, range(len(models))))
    return out
