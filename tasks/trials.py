"""A tune's trial: the config with a trial's settings fitted on the training part only and
judged on its own held-out rows, within the trial's time limit, which the search sets from the
trials that finished and the budget left (:func:`trial_limit`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from statistics import median
from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelwise.engine.callbacks import FitCallback
from labelwise.pipeline.config import Config
from labelwise.pipeline.records import Setting, TrialResult
from labelwise.pipeline.search_space import OBJECTIVES


def trial_limit(finished_seconds: Sequence[float], seconds_left: float) -> float | None:
    """A trial's time limit: none until one trial has finished (the config's own settings
    come first); then three times the median finished trial (not the slowest: each slow trial
    that finished would raise the next limit threefold); at least 30 s. A trial may run to
    ``OVERRUN`` times its limit, and that stays within the budget left plus one such trial
    (the budget is honoured to within a trial)."""
    if not finished_seconds:
        return None
    typical = float(median(finished_seconds))
    return max(30.0, min(3.0 * typical, (seconds_left + typical) / OVERRUN))


@task(name="tune-trial", task_run_name="trial-{number}", cache_policy=NO_CACHE)
def run_trial(
    cfg: Config,
    overrides: dict[str, Setting],
    train_path: str,
    number: int,
    metric: str,
    time_limit: float | None = None,
) -> TrialResult:
    """Fit the config with ``overrides`` on the training part only; judge it on its own
    held-out rows (:class:`~labelwise.engine.held_out.HeldOutScore`) under each threshold
    policy of the grid, and keep the best policy (its settings in ``thresholds``). A trial
    still fitting after ``time_limit`` seconds, or on pace to, stops with :class:`TrialTooSlow`."""
    from labelwise.engine.held_out import HeldOutScore
    from labelwise.pipeline.config import with_settings
    from labelwise.pipeline.search_space import own_thresholds, threshold_grid
    from labelwise.pipeline.tables import named_errors, read_xy

    trial_cfg = with_settings(cfg, overrides, source=f"trial {number}")
    grid = threshold_grid(trial_cfg)
    # each policy straight from the config's own: re-validating the whole config for each of
    # the 30 policies repeats the estimator checks (and a LightGBM dry run with lgb_params)
    # (the policy's own checks validate each value: its constructor is typed per field)
    as_fields: list[dict[str, Any]] = [
        {k.removeprefix("thresholds."): v for k, v in g.items()} for g in grid
    ]
    policies = [replace(trial_cfg.thresholds, **fields) for fields in as_fields]
    X, Y, labels = read_xy(trial_cfg, train_path)
    deadline = _Deadline(time_limit, repeats_for(Y.shape[0]))
    scores, folds, iterations = [], [], []
    t0 = time.perf_counter()
    for seed in range(repeats_for(Y.shape[0])):
        # the refit is never scored here; another seed draws other folds
        clf = trial_cfg.estimator().set_params(refit=False, random_state=seed)
        score = HeldOutScore(
            clf.policy, clf.calibration, seed=seed, grid=policies, fold_score=_fold_score(metric)
        )
        with ExitStack() as stack, named_errors(train_path):
            executor = _executor(trial_cfg, stack)
            clf.fit(X, Y, labels=labels, callbacks=[score, deadline], executor=executor)
        scores.append([score.metrics_, *score.grid_metrics_])
        folds.append(score.fold_scores_)
        iterations.append(float(clf.best_iterations_.mean()))
    # per policy, the metrics averaged over the repeats and its scores on every fold of them
    mean = [
        {k: float(np.mean([rep[i][k] for rep in scores])) for k in scores[0][i]}
        for i in range(len(scores[0]))
    ]
    per_fold = [[x for rep in folds for x in rep[i]] for i in range(len(mean))]
    best = _best_policy(mean, per_fold, metric)
    return TrialResult(
        metrics=mean[best],
        thresholds=own_thresholds(trial_cfg) if best == 0 else dict(grid[best - 1]),
        fold_objective=tuple(per_fold[best]),
        repeats=len(scores),
        fit_seconds=time.perf_counter() - t0,
        mean_best_iteration=float(np.mean(iterations)),
    )


def _fold_score(metric: str) -> Any:
    from labelwise.engine.metrics import classification_metrics
    from labelwise.pipeline.search_space import objective_value

    return lambda Y, pred: objective_value(classification_metrics(Y, pred), metric)


def direction_sign(metric: str) -> float:
    """+1 where higher ``metric`` is better, -1 where lower is (the study's direction)."""
    return 1.0 if OBJECTIVES[metric] == "maximize" else -1.0


def _best_policy(mean: list[dict[str, float]], per_fold: list[list[float]], metric: str) -> int:
    """The policy with the best held-out score, if its gain over the config's own (index 0)
    clears one standard error of the per-fold differences; else the config's own. Forty-eight
    policies judged on the same rows: the best of them wins by chance by about the noise."""
    from labelwise.engine.held_out import clear_gain
    from labelwise.pipeline.search_space import objective_value

    s = direction_sign(metric)
    best = max(range(len(mean)), key=lambda i: s * objective_value(mean[i], metric))
    gain = s * (np.asarray(per_fold[best]) - np.asarray(per_fold[0]))
    return best if best == 0 or clear_gain(gain) else 0


# how far past its limit a trial may run: per-label costs vary (rare labels stop early), so the
# pace is a rough projection, and a trial on pace for a little over its limit is worth finishing
OVERRUN = 1.25


class TrialTooSlow(Exception):
    """A trial ran past its time limit (it is pruned, not failed)."""


class _Deadline(FitCallback):
    """Stops a trial as soon as its pace says it would run past ``OVERRUN`` times ``seconds``,
    and at that point at the latest: a random trial with 60-leaf trees at a low learning rate
    can cost ten trials of the config's own settings, and a budget of minutes is better spent
    on those ten. The pace is the time per per-label model so far times the models the trial
    plans (``repeats`` fits of ``begin``'s plan), judged once a twentieth of them (at least 4)
    is done. A trial on pace for a little over its limit is let finish: stopped late, it
    wastes what it spent (benchmarks/RESULTS.md, the tune's pace rule)."""

    def __init__(self, seconds: float | None, repeats: int = 1) -> None:
        self.seconds, self.repeats = seconds, repeats
        self.start = time.monotonic()
        self.planned, self.done = 0, 0
        self._lock = threading.Lock()

    def begin(self, planned: int, labels: list[str]) -> None:
        self.planned = planned * self.repeats

    def model_done(self, step: str, index: int, model: Any, p_valid: Any, restored: bool) -> None:
        if self.seconds is None:
            return
        with self._lock:
            self.done += 1
            done = self.done
        spent, cap = time.monotonic() - self.start, OVERRUN * self.seconds
        if spent > cap:
            raise TrialTooSlow(
                f"still fitting after {spent:.0f} s (limit {self.seconds:.0f} s); pruned"
            )
        if self.planned and done >= max(4, self.planned // 20):
            projected = spent * self.planned / done
            if projected > cap:
                raise TrialTooSlow(
                    f"{done} of {self.planned} models in {spent:.0f} s: on pace for about "
                    f"{projected:.0f} s, over {OVERRUN:g}x the {self.seconds:.0f} s limit; "
                    "pruned"
                )


def _executor(cfg: Config, stack: ExitStack) -> Any:
    """A trial's per-label work: the Dask cluster with ``task_runner: dask``, else plain
    threads. Not Prefect tasks: trials are tasks themselves, and parallel trials each waiting
    on nested tasks could take every thread of the flow's task runner."""
    from labelwise.engine.executors import ThreadExecutor, n_workers
    from labelwise.tasks.train import dask_executor

    if cfg.task_runner == "dask":
        return stack.enter_context(dask_executor(cfg))
    return ThreadExecutor(n_workers(cfg.n_jobs))


HELD_OUT_ROWS = 2000


def repeats_for(n_rows: int) -> int:
    """Cross-fits per trial: a small table's held-out estimate is noisy (one label of 400
    rows may have 20 positives), and a search picks the luckiest noise. Repeating the fit
    with other folds until about ``HELD_OUT_ROWS`` rows were held out (at most 5 times)
    averages it down, at a cost small tables can afford."""
    return int(min(5, max(1, -(-HELD_OUT_ROWS // max(n_rows, 1)))))
