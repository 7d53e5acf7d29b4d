"""``labelwise tune``: the Optuna study, its trials as Prefect tasks, each an MLflow child run.

The study lives in an RDB storage that parallel ``labelwise tune`` processes can share: by
default a SQLite file next to the MLflow tracking database (``optuna.db``), or the database named
by ``LABELWISE_TUNE_STORAGE`` (``postgresql+psycopg://host/optuna`` when the servers are
PostgreSQL-backed; credentials stay in the environment). A trial records its owner (host, pid)
and its MLflow run, so a tune killed mid-trial is found by the next one, which marks the trial
failed, asks for the same settings again and ends its MLflow run as KILLED.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from labelwise.engine.errors import ConfigError
from labelwise.pipeline.config import Config
from labelwise.pipeline.environment import pid_alive, redact
from labelwise.pipeline.records import Setting, Snapshot, TrialResult
from labelwise.pipeline.search_space import OBJECTIVES, current_values
from labelwise.tasks.run_views import TUNE_OBJECTIVE
from labelwise.tasks.runs import create_run, end_run, reopen_run, start_run
from labelwise.tasks.tracking import client, log_metrics, tracking_uri
from labelwise.tasks.trials import direction_sign

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

STORAGE_ENV = "LABELWISE_TUNE_STORAGE"


def study_storage(cfg: Config) -> str:
    """Where the study is kept (see the module docstring)."""
    from labelwise.pipeline.environment import state_dir

    given = os.environ.get(STORAGE_ENV)
    if given:
        return given
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(uri.removeprefix('sqlite:///')).parent / 'optuna.db'}"
    return f"sqlite:///{state_dir() / 'optuna.db'}"


def open_study(cfg: Config, data_digest: str, metric: str, space: list[Any]) -> optuna.Study:
    """The study of this config, data, metric and searched ``space``: created, or loaded to be
    resumed."""
    import optuna

    from labelwise.pipeline.search_space import space_digest

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the flow prints its own lines
    url = study_storage(cfg)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with _creating(url):
            check_sqlite_storage(url)
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
            return optuna.create_study(
                study_name=(
                    f"{cfg.name}-{cfg.digest()[:8]}-{data_digest[:12]}-{metric}-"
                    f"{space_digest(space)[:6]}"
                ),
                storage=storage,
                direction=OBJECTIVES[metric],
                # 5 random trials, not 10: a 10-minute budget on a mid-size table is 10-20 trials
                sampler=optuna.samplers.TPESampler(seed=cfg.split.seed, n_startup_trials=5),
                load_if_exists=True,
            )
    except ConfigError:
        raise
    except Exception as exc:  # SQLAlchemy's and Optuna's storage errors, several types
        first = redact(str(exc)).splitlines()[0][:300] if str(exc) else ""
        raise ConfigError(
            f"the tune's study storage {redact(url)} cannot be used ({type(exc).__name__}: "
            f"{first}); check it, or set {STORAGE_ENV} to another database"
        ) from None


@contextlib.contextmanager
def _creating(url: str) -> Iterator[None]:
    """Held while a SQLite study file is opened: Optuna creates a new file's tables without a
    lock, so two tunes starting at once on a new file fail with "table studies already exists"
    (a server database takes its own locks)."""
    import fcntl

    fh = None
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        # an unwritable folder gets no lock: Optuna's own error names it
        with contextlib.suppress(OSError):
            fh = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 - closed below
    if fh is None:
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def check_sqlite_storage(url: str) -> None:
    """Refuse a SQLite study file that is damaged, or that holds another program's tables
    (Optuna would add its own to it): named, and left as it is."""
    import sqlite3

    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    if not path.is_file() or path.stat().st_size == 0:
        return
    what = None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        what = f"not a readable SQLite database ({exc})"
    else:
        if tables and not {"studies", "version_info"} <= tables:
            what = f"a SQLite database of another program (tables {sorted(tables)[:5]})"
    if what is not None:
        raise ConfigError(
            f"{path}: the tune's study file is {what}; it is left as it is: move it away (a "
            f"new study starts), or set {STORAGE_ENV} to another database"
        )


def first_trial(study: optuna.Study, cfg: Config, space: list[Any]) -> None:
    """A new study starts from the config's own settings."""
    if not study.trials:
        values = current_values(cfg, space)
        own = {k: v for k, v in values.items() if v is not None}
        study.enqueue_trial(own, user_attrs={"own": True})


def reclaim_abandoned(cfg: Config, study: optuna.Study) -> list[int]:
    """Trials left RUNNING by a tune that died on this host: failed, asked again, their MLflow
    runs KILLED. Returns their numbers."""
    from optuna.trial import TrialState

    host, lost = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = str(t.user_attrs.get("pid", ""))
        if t.user_attrs.get("host") != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"own": True} if t.user_attrs.get("own") else None)
        run_id = t.user_attrs.get("mlflow_run_id")
        if run_id:
            end_trial_run(cfg, run_id, "KILLED", error=f"process {pid} ended mid-trial")
        lost.append(t.number)
    return lost


def claim(trial: optuna.Trial) -> None:
    """Mark a just-asked trial as this process's, before anything slow: a tune killed before
    the mark would leave a RUNNING trial no later tune could tell abandoned."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def attach_run(trial: optuna.Trial, run_id: str, overrides: dict[str, Setting]) -> None:
    trial.set_user_attr("mlflow_run_id", run_id)
    trial.set_user_attr("overrides", json.dumps(overrides))


def chosen_trial(study: optuna.Study, metric: str) -> optuna.trial.FrozenTrial:
    """The study's best trial, unless its held-out gain over the config's own settings (the
    trial marked ``own``) does not clear one standard error of their paired per-fold
    differences: then the config's own (the rule of :func:`_best_policy`, across trials)."""
    from optuna.trial import TrialState

    from labelwise.engine.held_out import clear_gain

    best = study.best_trial
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    own = next((t for t in done if t.user_attrs.get("own")), None)
    if own is None or own.number == best.number:
        return best
    a, b = best.user_attrs.get("fold_objective"), own.user_attrs.get("fold_objective")
    if not a or not b or len(a) != len(b):  # a study from before per-fold scores
        return best
    s = direction_sign(metric)
    return best if clear_gain(s * (np.asarray(a) - np.asarray(b))) else own


def start_trial_run(cfg: Config, parent_id: str, number: int, overrides: dict[str, Setting]) -> str:
    """The trial's MLflow run, a child of the tune's run: its settings as params."""
    parent = client(cfg).get_run(parent_id)
    tags = {
        "mlflow.parentRunId": parent_id,
        "config.name": cfg.name,
        "labelwise.kind": "trial",
        "labelwise.trial": str(number),
        "mlflow.source.name": "labelwise tune",
    }
    params = {k: _param(v) for k, v in overrides.items()}
    return create_run(cfg, parent.info.experiment_id, f"trial {number}", tags, params)


def end_trial_run(
    cfg: Config,
    run_id: str,
    status: str,
    result: TrialResult | None = None,
    objective: tuple[str, float] | None = None,
    settings: dict[str, Setting] | None = None,
    error: str | None = None,
) -> None:
    """End a trial's run ``status``; a finished trial's metrics first (the objective, then
    the held-out metric set) and the threshold settings its model was judged with."""
    if result is not None and objective is not None:
        values = {f"objective_{objective[0]}": objective[1], TUNE_OBJECTIVE: objective[1]} | {
            f"held_out/{k}": v for k, v in result.metrics.items()
        }
        values |= {
            "fit_seconds": result.fit_seconds,
            "mean_best_iteration": result.mean_best_iteration,
        }
        chosen = {k: _param(v) for k, v in (settings or {}).items() if k.startswith("thresholds.")}
        log_metrics(client(cfg), run_id, values, params=chosen)
    end_run(cfg, run_id, status, error=error, patience_s=0.0)


def _param(value: Setting) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def parent_run(cfg: Config, info: Snapshot, study: optuna.Study, settings: dict[str, str]) -> str:
    """The tune's MLflow run: the study's, reopened when the study is resumed."""
    c = client(cfg)
    known = study.user_attrs.get("mlflow_run_id")
    if known:
        reopen_run(cfg, str(known))
        return str(known)
    run_id = start_run(cfg, info, name=f"tune {cfg.name} ({settings['tune.metric']})")
    tags = {
        "labelwise.kind": "tune",
        "mlflow.source.name": "labelwise tune",
        "mlflow.note.content": f"**Tune of {cfg.name}** (running): an Optuna search judged by "
        f"`{settings['tune.metric']}` on held-out rows; its trials are the child runs.",
    }
    log_metrics(c, run_id, {}, params=settings, tags=tags | {"labelwise.study": study.study_name})
    study.set_user_attr("mlflow_run_id", run_id)
    return run_id


def summarise(cfg: Config, run_id: str, study: optuna.Study, metric: str, best_yaml: Path) -> None:
    """Best settings, history and importance plots and the trial table on the tune's run."""
    import tempfile

    from optuna.trial import TrialState

    c = client(cfg)
    best, top = chosen_trial(study, metric), study.best_trial
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    tags = {"labelwise.best_trial": str(best.number)}
    if top.number != best.number:
        tags["labelwise.selection"] = (
            f"trial {top.number} scored {top.value:.4f} against the config's own "
            f"{best.value:.4f}: within one standard error of their per-fold differences, so "
            "the config's own settings are kept"
        )
    overrides = json.loads(best.user_attrs["overrides"])
    tags["mlflow.note.content"] = (
        f"**Tune of {cfg.name}**: an Optuna search judged by `{metric}` on held-out rows of "
        f"the training part; {len(done)} finished trials (the child runs, each with its "
        f"settings as params and `{TUNE_OBJECTIVE}`).\n\nChosen: trial {best.number}, "
        f"{metric} = {float(best.value or 0.0):.4f}; best config `{best_yaml.name}`"
        + (
            ": " + ", ".join(f"`{k}` = {v}" for k, v in overrides.items())
            if overrides
            else " (the config's own settings)"
        )
        + "."
    )
    log_metrics(
        c,
        run_id,
        {
            f"best_{metric}": float(best.value or 0.0),
            TUNE_OBJECTIVE: float(best.value or 0.0),
            "trials_complete": len(done),
        },
        params={f"best.{k}": str(v) for k, v in overrides.items()},
        tags=tags,
    )
    c.log_artifact(run_id, str(best_yaml), "tune")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in _plots(study, Path(tmp)).items():
            c.log_artifact(run_id, str(path), "tune")
            _log_image(c, run_id, path, name)
        table = Path(tmp) / "trials.csv"
        study.trials_dataframe().to_csv(table, index=False)
        c.log_artifact(run_id, str(table), "tune")


def _plots(study: optuna.Study, folder: Path) -> dict[str, Path]:
    """The study's optimisation history and parameter importances as PNG files."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ov

    out = {}
    for name, plot in (
        ("history", ov.plot_optimization_history),
        ("importance", ov.plot_param_importances),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                ax = plot(study)
        except (ValueError, RuntimeError):  # importances need two trials that differ
            continue
        fig = cast("Figure", ax.figure)
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        out[name] = folder / f"tune_{name}.png"
        fig.savefig(out[name], dpi=100)
        plt.close(fig)
    return out


def _log_image(c: Any, run_id: str, path: Path, key: str) -> None:
    from PIL import Image

    with Image.open(path) as image:
        c.log_image(run_id, image.convert("RGB"), key=f"tune_{key}", step=0)


@task(name="score-best-on-test", cache_policy=NO_CACHE)
def score_best(cfg: Config, train_path: str, test_path: str) -> dict[str, float]:
    """The one look at the test table: the best config fitted on the whole training part."""
    from contextlib import ExitStack

    from labelwise.engine.metrics import classification_metrics
    from labelwise.pipeline.tables import named_errors, read_xy, score_table
    from labelwise.tasks.train import fit_executor

    X, Y, labels = read_xy(cfg, train_path)
    clf = cfg.estimator()
    with ExitStack() as stack, named_errors(train_path):
        clf.fit(X, Y, labels=labels, executor=fit_executor(cfg, stack))
    # labels no training row holds are left out, as train does (test_only_labels says so)
    Y_test, _, pred = score_table(cfg, clf, test_path, others=True)
    return classification_metrics(Y_test, pred)
