"""Training and evaluation tasks: the engine, wrapped with progress reporting and caching."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
from prefect import task
from prefect.cache_policies import INPUTS, NO_CACHE

from labelwise.pipeline.config import Config
from labelwise.pipeline.records import FitSummary

if TYPE_CHECKING:
    from uuid import UUID
from labelwise.pipeline.tables import named_errors, read_xy, score_table


@task(
    name="train-labels",
    task_run_name="train-labels-{step}-chunk{index}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def train_label_chunk(fn: Any, items: list[Any], step: str, index: int) -> list[Any]:
    """One chunk of per-label models of one training step (a fold, a chain...)."""
    return [fn(item) for item in items]


@dataclass
class PrefectExecutor:
    """Per-label work as Prefect tasks on the flow's task runner (threads of this process):
    every chunk of labels a visible task run, at most 64 labels a chunk."""

    n_workers: int
    shares_memory: ClassVar[bool] = True

    def map(self, step: str, fn: Any, items: Sequence[Any]) -> Iterator[Any]:
        n_chunks = min(len(items), max(self.n_workers, -(-len(items) // 64)))
        chunks = [list(items)[i::n_chunks] for i in range(n_chunks)]
        futures = [train_label_chunk.submit(fn, chunk, step, i) for i, chunk in enumerate(chunks)]
        results = [f.result() for f in futures]  # re-raises a chunk's error
        by_item: list[Any] = [None] * len(items)
        for i, chunk_results in enumerate(results):
            by_item[i::n_chunks] = chunk_results
        yield from by_item


@task(
    name="train-labels-remote",
    task_run_name="train-labels-{step}-chunk{index}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=1,
)
def train_label_chunk_remote(payload: dict[str, Any], step: str, index: int) -> tuple[Any, ...]:
    """One self-contained chunk of per-label models, run on a Dask worker. A retry covers a
    worker lost mid-chunk; the chunk holds everything it needs."""
    from labelwise.engine.per_label import fit_remote_chunk

    return fit_remote_chunk(payload)


@dataclass
class DaskExecutor:
    """Self-contained label chunks as Prefect tasks on a Dask cluster (prefect-dask)."""

    runner: Any  # an entered prefect_dask.DaskTaskRunner
    n_workers: int
    shares_memory: ClassVar[bool] = False

    def map(self, step: str, fn: Any, items: Sequence[Any]) -> Iterator[Any]:
        futures = [
            self.runner.submit(train_label_chunk_remote, {"payload": p, "step": step, "index": i})
            for i, p in enumerate(items)
        ]
        for f in futures:  # in order, each as soon as it is done: checkpointed at once
            yield f.result()  # re-raises a chunk's error


@contextmanager
def dask_executor(cfg: Config) -> Iterator[DaskExecutor]:
    """A Dask cluster for one fit: the one at ``cfg.dask_address``, or a local cluster of
    ``cfg.dask_workers`` single-threaded worker processes (LightGBM is pinned to one thread per
    chunk, so processes, not threads, are the unit of parallelism)."""
    import os

    from prefect_dask.task_runners import DaskTaskRunner

    if cfg.dask_address:
        runner = DaskTaskRunner(address=cfg.dask_address)
    else:
        n = cfg.dask_workers or os.cpu_count() or 2
        runner = DaskTaskRunner(
            cluster_kwargs={
                "n_workers": n,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    with runner:
        yield DaskExecutor(runner, max(1, len(runner.client.scheduler_info()["workers"])))


def fit_executor(cfg: Config, stack: ExitStack) -> PrefectExecutor | DaskExecutor:
    """Where a fit's per-label work runs: a Dask cluster (``task_runner: dask``, entered on
    ``stack``) or Prefect tasks on the flow's threads."""
    from labelwise.engine.executors import n_workers

    if cfg.task_runner == "dask":
        return stack.enter_context(dask_executor(cfg))
    return PrefectExecutor(n_workers(cfg.n_jobs))


@task(name="train-model", cache_policy=INPUTS, persist_result=True)
def train_model(cfg: Config, train_path: str, data_digest: str, workdir: str) -> FitSummary:
    """Fit the configured estimator on the training table; save it; return its directory.

    Cached on (config, data digest, workdir): rerunning the same job reuses the fitted model.
    """
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    from labelwise.engine.callbacks import Checkpoint, Progress
    from labelwise.tasks.progress import (
        notify,
    )  # imported here so it is never pickled with the task

    X, Y, labels = read_xy(cfg, train_path)
    clf = cfg.estimator()
    art = create_progress_artifact(0.0, description=f"per-label models trained ({cfg.name})")
    state = {"last": 0.0}

    def progress(done: int, planned: int, label: str) -> None:
        pct = 100.0 * done / max(planned, 1)
        if pct - state["last"] >= 2 or done == planned:  # bound the number of API calls
            state["last"] = pct
            update_progress_artifact(cast("UUID", art), pct)  # sync-compatible: not async here
        notify(done, planned, label)

    # per-label checkpoints: a killed run restarted with the same config and data resumes
    checkpoint = Checkpoint(Path(workdir) / "checkpoints")
    t0 = time.perf_counter()
    with ExitStack() as stack, named_errors(train_path):
        executor = fit_executor(cfg, stack)
        clf.fit(X, Y, labels=labels, callbacks=[checkpoint, Progress(progress)], executor=executor)
    fit_s = time.perf_counter() - t0
    model_dir = Path(workdir) / "model"
    clf.save(model_dir)
    # the engine calls its input X: name the file instead
    warned = [train_path + w[1:] if w.startswith("X:") else w for w in clf.warnings_]
    return FitSummary(
        model_dir=str(model_dir),
        fit_seconds=fit_s,
        labels=tuple(labels),
        n_train=int(Y.shape[0]),
        validation_metrics=dict(clf.validation_metrics_),
        validation_per_label=list(clf.validation_per_label_),
        label_weights=dict(zip(labels, map(float, clf.label_weights_), strict=True)),
        best_iterations=dict(zip(labels, map(float, clf.best_iterations_), strict=True)),
        text_vocabulary={t.name: t.n_terms for t in clf.encoder_.text},
        models_resumed=checkpoint.restored,
        warnings=(*warned, *checkpoint.discarded),
    )


@task(name="evaluate-model")
def evaluate_model(
    cfg: Config,
    model_dir: str,
    test_path: str,
    out_dir: str,
    prefix: str = "test",
    scores_path: str | None = None,
) -> tuple[dict[str, float], list[str]]:
    """Score the test table; write metrics, per-label table and plots into ``out_dir``;
    return the metrics and what the predictions warn of (see ``prediction_warnings``)."""
    from prefect.artifacts import create_table_artifact

    from labelwise.engine.quality import prediction_warnings
    from labelwise.engine.report import write_report
    from labelwise.pipeline.tables import load_classifier

    clf = load_classifier(model_dir)
    Y, S, P = score_table(cfg, clf, test_path, others=True)  # see test_only_labels
    rep = write_report(
        Path(out_dir), Y, S, clf.thresholds_, clf.labels_, clf.policy.at_least_one, prefix=prefix
    )
    rows = rep["table"].sort("support", descending=True).head(50).to_dicts()
    create_table_artifact(
        [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        key=f"{prefix}-per-label",
        description="per-label test metrics",
    )
    (Path(out_dir) / "unseen_categories.json").write_text(json.dumps(clf.encoder_.unseen_counts))
    if clf.encoder_.text:  # the terms that push each label up, from the model itself
        from labelwise.engine.explain import top_terms

        top_terms(clf).write_csv(Path(out_dir) / "top_terms.csv", float_precision=4)
    if scores_path is not None:  # the profile step reuses them instead of scoring again
        _save_scores(scores_path, S)
    return rep["metrics"], prediction_warnings(Y, P, clf.labels_)


@task(name="profile-model")
def profile_model(
    cfg: Config,
    model_dir: str,
    train_path: str,
    reference_path: str,
    scores_path: str | None = None,
) -> None:
    """Save the reference profile the monitor flow compares new batches with, in the model
    directory (so it travels with the model into the registry): training prevalence and the
    important features' (and terms') distributions from ``train_path``; score distributions,
    predicted prevalence and F1 per label on the held-out ``reference_path`` (scored again
    unless ``scores_path`` holds its probabilities, as the evaluation step saves them)."""
    import warnings

    from labelwise.engine.drift import PROFILE_FILE, reference_profile
    from labelwise.engine.explain import important_terms
    from labelwise.engine.metrics import per_label_table
    from labelwise.pipeline.tables import load_classifier

    clf = load_classifier(model_dir)
    X, Y_train, _ = read_xy(cfg, train_path, clf.labels_)
    X_ref, Y, _ = read_xy(cfg, reference_path, clf.labels_, others=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Xa = clf.encoder_.transform(X)
        # text statistics from held-out rows: on its own training rows every word is known
        text_columns, text_stats = clf.encoder_.text_profile(X_ref)
        if scores_path is not None and Path(scores_path).is_file():
            S = _load_scores(scores_path)
        else:
            with named_errors(reference_path):
                S = clf.predict_proba(X_ref.select(clf.encoder_.features), sparse=clf.sparse_proba)
    P = clf.predict_from_proba(S)
    importance = clf.feature_importance()
    # a text column's statistics rank with the column's own importance
    importance |= {c: importance[c.rpartition(":")[0]] for c in text_columns}
    terms = important_terms(clf, cfg.monitoring.top_terms)
    importance |= terms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        present = clf.encoder_.term_presence(X, list(terms))
    f1 = [r["f1"] for r in per_label_table(Y, P, None, clf.labels_)]
    prof = reference_profile(
        clf.labels_,
        clf.encoder_.tabular_features,
        Xa,
        Y_train,
        S,
        P,
        f1,
        importance,
        list(clf.encoder_.categories),
        top_features=cfg.monitoring.top_features,
        held_out=dict(zip(text_columns, text_stats.T, strict=True)),
        terms=dict(zip(terms, present.T, strict=True)),
    )
    (Path(model_dir) / PROFILE_FILE).write_text(json.dumps(prof))


def _save_scores(path: str, S: Any) -> None:
    """Probabilities as .npy, or (sparse: a label tree's) as scipy's .npz, at ``path``."""
    import scipy.sparse as sp

    with open(path, "wb") as fh:
        if sp.issparse(S):
            sp.save_npz(fh, S)
        else:
            np.save(fh, S, allow_pickle=False)


def _load_scores(path: str) -> Any:
    import scipy.sparse as sp

    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        return loaded
    loaded.close()
    return sp.load_npz(path)
