"""The tune flow: a budgeted Optuna search over a config's settings, trials as MLflow child runs.

snapshot the training rows -> contract -> split -> trials (Prefect tasks) until the budget is
spent -> best config written as YAML -> the test table scored once, for the best config only
(or, with ``register``, the best config trained through the train flow).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from optuna.trial import TrialState
from prefect import flow
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from labelwise.engine.errors import ConfigError, LabelwiseError
from labelwise.pipeline.config import Config, _yaml, load_config, set_keys, with_settings
from labelwise.pipeline.environment import configure_environment, redact
from labelwise.pipeline.records import Setting, Snapshot, TrialResult, TuneResult
from labelwise.pipeline.search_space import check_metric, objective_value, search_space, suggest
from labelwise.pipeline.sources import scheme
from labelwise.pipeline.tables import has_text, label_count
from labelwise.tasks.contract import validate_contract
from labelwise.tasks.data import (
    SourceNames,
    scheduled_start,
    snapshot_data,
    split_data,
    test_only_labels,
    workdir_for,
)
from labelwise.tasks.progress import say, stage
from labelwise.tasks.runs import repair_abandoned_runs, tracked_run
from labelwise.tasks.tracking import client, log_metrics
from labelwise.tasks.trials import TrialTooSlow, run_trial, trial_limit
from labelwise.tasks.tune import (
    attach_run,
    chosen_trial,
    claim,
    end_trial_run,
    first_trial,
    open_study,
    parent_run,
    reclaim_abandoned,
    score_best,
    start_trial_run,
    study_storage,
    summarise,
)

if TYPE_CHECKING:
    from prefect.futures import PrefectFuture
    from prefect.task_runners import TaskRunner


@flow(
    name="labelwise-tune",
    log_prints=True,
    # room for every parallel trial (at most --parallel are ever submitted at once)
    # Prefect types the parameter as TaskRunner[PrefectFuture] (invariant): a cast, not a change
    task_runner=cast("TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner(max_workers=64)),
)
def tune_flow(
    config_path: str,
    budget_seconds: float = 600.0,
    trials: int | None = None,
    metric: str = "f1_micro_macro",
    parallel: int = 1,
    register_best: bool = False,
    as_of: str | None = None,
    output: str | None = None,
) -> TuneResult:
    """Search the settings of ``config_path`` for ``budget_seconds`` of wall-clock time (new
    trials start until it is spent; ``trials`` caps the study's finished trials), judged by
    ``metric`` on held-out rows of the training part only. Writes ``<config>.tuned.yaml`` next
    to the config (or to ``output``); scores the test table once, for the best config; with
    ``register_best`` trains that config through the train flow (contract, tracking,
    challenger alias)."""

    configure_environment()
    cfg = load_config(config_path)
    check_metric(metric)
    tuned_config_path(Path(config_path), output)  # refused now, not after the search
    when = as_of or scheduled_start()
    train_path, info = _training_part(cfg, when)
    search = _Search(cfg, info, metric, budget_seconds, trials, max(1, parallel))
    registered = None
    with tracked_run(cfg, lambda: search.run_id, on_error=search.abandon_trials):
        search.run(train_path)
        best_yaml = write_tuned_config(
            Path(config_path), search.best_overrides(), search.headline(), output
        )
        search.summarise(best_yaml)
        if register_best:
            from labelwise.flows.train import train_flow

            trained = train_flow(str(best_yaml), as_of=when)
            test, registered = (trained.metrics or None), trained.version
        else:
            test = _score_on_test(search.best_config(), when, train_path)
        search.log_test(test)
    say(_result_line(search, test, best_yaml))
    best = search.chosen()
    return TuneResult(
        run_id=search.run_id,
        study=search.study.study_name,
        best_trial=best.number,
        best_value=float(best.value or 0.0),
        trials=search.finished(),
        best_config=str(best_yaml),
        test_metrics=test,
        registered=registered,
    )


def _training_part(cfg: Config, when: str | None) -> tuple[str, Snapshot]:
    """The rows the search may see: the training snapshot, contract-checked, and -- with no
    data.test -- its training part after the usual split (the test part is never read)."""

    info = snapshot_data(cfg, when, parts=("train",))
    with SourceNames() as names:
        names.add(cfg, info)
        validate_contract(cfg, info.train.path, "train", info.train.source)
        if cfg.data.test is not None:
            return info.train.path, info
        paths = split_data(cfg, info, str(workdir_for(cfg, info.train.digest)))
    return paths.train, info


def _score_on_test(cfg: Config, when: str | None, train_path: str) -> dict[str, float]:
    """The test table, read for the first time: snapshot (data.test) or the split's test part."""

    info = snapshot_data(cfg, when)
    with SourceNames() as names:
        names.add(cfg, info)
        paths = split_data(cfg, info, str(workdir_for(cfg, info.train.digest)))
        for warning in test_only_labels(cfg, train_path, paths.test):
            say(f"warning: {names.named(warning)}")
        return score_best(cfg, train_path, paths.test)


def write_tuned_config(
    path: Path, overrides: dict[str, Setting], headline: str, output: str | None = None
) -> Path:
    """``<name>.tuned.yaml`` next to the config (or ``output``): the config's own YAML with the
    best settings; relative data paths are made absolute when it is written elsewhere."""

    data = set_keys(_yaml(path.read_text()), overrides)
    out = tuned_config_path(path, output)
    if out.resolve().parent != path.resolve().parent:
        data = set_keys(data, _absolute_paths(data, path.resolve().parent))
    text = f"{TUNED_HEADER} from {path.name}: {headline}\n" + yaml.safe_dump(data, sort_keys=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    return out


TUNED_HEADER = "# written by labelwise tune"


def tuned_config_path(config: Path, output: str | None) -> Path:
    """Where the best config goes: ``output``, else ``<name>.tuned.yaml`` next to the config.
    A directory, a device or a file labelwise tune did not write (the input config, a file
    of the user's) is refused: a search never ends by destroying a user's file."""

    out = Path(output) if output is not None else None
    out = out or config.with_name(f"{config.stem.removesuffix('.tuned')}.tuned.yaml")
    name = f"--output {output}" if output is not None else str(out)
    if out.is_dir():
        raise ConfigError(
            f"{name} is a directory; give a file path, e.g. {out / (config.stem + '.tuned.yaml')}"
        )
    if out.exists() and not out.is_file():
        raise ConfigError(f"{name} is not a regular file (a device, pipe or socket); give a path")
    if out.is_file() and not out.read_bytes().startswith(TUNED_HEADER.encode()):
        same = out.samefile(config)
        what = "the config being tuned" if same else "a file labelwise tune did not write"
        raise ConfigError(f"{name} is {what}; it is never overwritten: give a new path")
    return out


def _absolute_paths(data: dict[str, Any], base: Path) -> dict[str, str]:
    """Dotted keys of the config's relative local paths, made absolute against ``base``."""

    keys = ("data.train", "data.test", "contract.suite", "monitoring.batch")
    out = {}
    for key in keys:
        section, leaf = key.split(".")
        value = (data.get(section) or {}).get(leaf)
        if isinstance(value, str) and scheme(value) is None and not Path(value).is_absolute():
            out[key] = str((base / value).resolve())
    return out


def _result_line(search: _Search, test: dict[str, float] | None, best_yaml: Path) -> str:
    shown = (
        f"; test f1_micro={test['f1_micro']:.4f} f1_macro={test['f1_macro']:.4f}" if test else ""
    )
    return f"{search.headline()}{shown}; best config: {best_yaml}"


class _Search:
    """One invocation's part of the study: the trial loop and its MLflow runs."""

    def __init__(
        self,
        cfg: Config,
        info: Snapshot,
        metric: str,
        budget: float,
        trials: int | None,
        parallel: int,
    ) -> None:

        self.cfg, self.metric, self.parallel = cfg, metric, parallel
        self.deadline = time.monotonic() + budget
        self.limit = trials
        path = info.train.path
        self.space = search_space(cfg, has_text(cfg, path), label_count(cfg, path))
        self.study = open_study(cfg, info.train.digest, metric, self.space)
        lost = reclaim_abandoned(cfg, self.study)
        if lost:
            say(f"resumed: trial(s) {lost} of a killed tune are asked again")
        for note in repair_abandoned_runs(cfg):
            say(note)
        first_trial(self.study, cfg, self.space)
        settings = {
            "tune.metric": metric,
            "tune.budget_seconds": str(budget),
            "tune.trials": str(trials),
            "tune.parallel": str(parallel),
            "tune.storage": redact(study_storage(cfg)),
            "tune.searched": ", ".join(d.key for d in self.space),
        }
        self.run_id = parent_run(cfg, info, self.study, settings)
        self.failures: list[str] = []
        self.running: dict[Any, tuple[Any, str, dict[str, Setting]]] = {}

    def finished(self) -> int:

        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def _may_start(self, running: int) -> bool:
        if time.monotonic() >= self.deadline:
            return False
        return self.limit is None or self.finished() + running < self.limit

    def run(self, train_path: str) -> None:
        """Start trials while the budget lasts; each ends in the study and in MLflow."""

        running = self.running
        while True:
            while len(running) < self.parallel and self._may_start(len(running)):
                trial, run_id, overrides = self._ask()
                future = _trial_task().submit(
                    self.cfg, overrides, train_path, trial.number, self.metric, self._limit()
                )
                running[future] = (trial, run_id, overrides)
            if not running:
                break
            future = next(as_completed(list(running)))
            self._tell(future, *running.pop(future))
        if self.finished() == 0:
            why = "; ".join(self.failures[-3:]) or "the budget ended before the first trial did"
            raise LabelwiseError(f"no trial of the search finished: {why}")

    def _limit(self) -> float | None:
        """The next trial's time limit, from the finished trials and the budget left."""

        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        known = [float(s) for t in done if (s := t.user_attrs.get("fit_seconds")) is not None]
        return trial_limit(known, self.deadline - time.monotonic())

    def abandon_trials(self, exc: BaseException) -> None:
        """The tune failed or was interrupted: its running trials end FAILED (its own run
        ends FAILED with it, see ``tracked_run``)."""

        error = f"{type(exc).__name__}: {exc}"
        for trial, run_id, _ in self.running.values():
            self.study.tell(trial, state=TrialState.FAIL)
            end_trial_run(self.cfg, run_id, "FAILED", error=f"the tune ended: {error}")
        self.running.clear()

    def _ask(self) -> tuple[Any, str, dict[str, Setting]]:

        trial = self.study.ask()
        claim(trial)
        stage(f"trial {trial.number}: fitting")
        overrides = suggest(trial, self.space)
        if self.parallel > 1:  # parallel trials share the cores instead of each taking all
            overrides["n_jobs"] = max(1, (os.cpu_count() or 2) // self.parallel)
        run_id = start_trial_run(self.cfg, self.run_id, trial.number, overrides)
        attach_run(trial, run_id, overrides)
        return trial, run_id, overrides

    def _tell(self, future: Any, trial: Any, run_id: str, overrides: dict[str, Setting]) -> None:

        try:
            result: TrialResult = future.result()
        except TrialTooSlow as exc:
            self.study.tell(trial, state=TrialState.PRUNED)
            end_trial_run(self.cfg, run_id, "KILLED", error=str(exc))
            say(f"trial {trial.number}: {exc}")
            return
        except Exception as exc:  # a setting LightGBM cannot use fails its trial, not the tune
            error = f"{type(exc).__name__}: {exc}"
            self.failures.append(f"trial {trial.number}: {error}")
            self.study.tell(trial, state=TrialState.FAIL)
            end_trial_run(self.cfg, run_id, "FAILED", error=error)
            say(f"trial {trial.number} failed: {error}")
            if len(self.failures) >= 3 and self.finished() == 0:
                raise
            return
        value = objective_value(result.metrics, self.metric)
        settings = overrides | result.thresholds  # the model's and its best thresholds
        trial.set_user_attr("overrides", json.dumps(settings))
        trial.set_user_attr("fit_seconds", result.fit_seconds)
        trial.set_user_attr("fold_objective", list(result.fold_objective))
        self.study.tell(trial, value)
        end_trial_run(self.cfg, run_id, "FINISHED", result, (self.metric, value), settings)
        say(
            f"trial {trial.number}: held-out {self.metric} {value:.4f} in "
            f"{result.fit_seconds:.1f} s (best {self.study.best_value:.4f}, trial "
            f"{self.study.best_trial.number})"
        )

    def chosen(self) -> Any:

        return chosen_trial(self.study, self.metric)

    def best_overrides(self) -> dict[str, Setting]:

        overrides: dict[str, Setting] = json.loads(self.chosen().user_attrs["overrides"])
        overrides.pop("n_jobs", None)  # how this search ran, not part of the model
        return overrides

    def best_config(self) -> Config:

        return with_settings(self.cfg, self.best_overrides(), source="best trial")

    def headline(self) -> str:
        best, top = self.chosen(), self.study.best_trial
        kept = (
            f" (the config's own: trial {top.number}'s {top.value:.4f} is within one standard "
            "error of it)"
            if best.number != top.number
            else ""
        )
        return (
            f"best of {self.finished()} trials: trial {best.number}{kept}, held-out "
            f"{self.metric}={best.value:.4f}"
        )

    def summarise(self, best_yaml: Path) -> None:

        summarise(self.cfg, self.run_id, self.study, self.metric, best_yaml)

    def log_test(self, test: dict[str, float] | None) -> None:

        if test:
            log_metrics(client(self.cfg), self.run_id, {f"test/{k}": v for k, v in test.items()})


def _trial_task() -> Any:

    return run_trial
