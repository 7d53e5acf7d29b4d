"""The records that cross the layers: what a job read, fitted and registered, and what a train
run ended with. Frozen dataclasses, so a type checker follows them from the task that makes
one to the CLI that prints it, and Prefect can hash them (cache keys) and pickle them
(persisted task results) as it does any value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from labelwise.engine.drift import FeatureAlert, LabelAlert


@dataclass(frozen=True)
class Database:
    """The database a SQL source was read from: its server (no credentials) and the
    environment variable that holds its URI."""

    server: str
    uri_env: str


@dataclass(frozen=True)
class TablePart:
    """One part (train, test or a monitored batch) read into a parquet snapshot: where the
    snapshot is, what it holds and what it was read from (credentials never included).

    ``kind`` is file, files, object_store, sql or snapshot (an earlier run's rows). With a
    time column: ``max_time``, the newest row; with a window: ``window`` and ``as_of``.
    ``dropped``: a folder's partition columns that were not read as features."""

    path: str
    rows: int
    digest: str
    columns: tuple[str, ...]
    source: str
    kind: str
    database: Database | None = None
    dropped: tuple[str, ...] = ()
    window: str | None = None
    as_of: str | None = None
    max_time: str | None = None

    def moved(self, path: str) -> TablePart:
        """The same rows at another path (a snapshot moved into the job's work directory)."""
        return dataclasses.replace(self, path=path)


@dataclass(frozen=True)
class Snapshot:
    """What a job reads: its training part and, when the config gives one, its test part."""

    train: TablePart
    test: TablePart | None = None

    def parts(self) -> dict[str, TablePart]:
        """The parts read, by name (``train``, then ``test`` when there is one)."""
        return {"train": self.train} | ({"test": self.test} if self.test is not None else {})


@dataclass(frozen=True)
class SplitPaths:
    """The parquet files a model is trained and tested on (the given test table, or the
    split of the training rows)."""

    train: str
    test: str

    def parts(self) -> dict[str, str]:
        return {"train": self.train, "test": self.test}


@dataclass(frozen=True)
class FitSummary:
    """A fitted model's directory and what the fit learned of its labels: validation (held-out
    rows of the training part) metrics and per-label rows, weights, best iterations, the
    text columns' vocabulary sizes, and what the user should be warned of."""

    model_dir: str
    fit_seconds: float
    labels: tuple[str, ...]
    n_train: int
    validation_metrics: dict[str, float]
    validation_per_label: list[dict[str, str | float | int]]
    label_weights: dict[str, float]
    best_iterations: dict[str, float]
    text_vocabulary: dict[str, int] = field(default_factory=dict)
    models_resumed: int = 0
    warnings: tuple[str, ...] = ()
    label_changes: str | None = None

    def warned(self, *more: str) -> FitSummary:
        """The same fit with more warnings."""
        return dataclasses.replace(self, warnings=(*self.warnings, *more))


@dataclass(frozen=True)
class RegisteredVersion:
    """A registry version a run created (or found registered by its retried self);
    ``champion`` when it became the first champion of its model."""

    name: str
    version: str
    champion: bool = False


@dataclass(frozen=True)
class Skipped:
    """Why a train run trained nothing: ``identical`` (a version of the same config and data
    exists) or ``nothing_new`` (a version already saw the newest row of the window)."""

    reason: str
    name: str
    version: str
    run_id: str
    why: str


@dataclass(frozen=True)
class TrainResult:
    """What ``labelwise train`` ended with: the run, its test metrics and the version it
    registered; or, with ``skipped``, why nothing was trained. ``notes`` and ``warnings``
    are for the user's screen."""

    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    version: RegisteredVersion | None = None
    model_dir: str | None = None
    fit_seconds: float | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    skipped: Skipped | None = None
    flow_run_id: str | None = None


@dataclass(frozen=True)
class PromotionRecord:
    """What ``labelwise promote`` decided: whether the champion moved, which version is
    champion now, and why. ``verdict`` and ``run_id`` are set when the two versions were
    compared (a promotion run exists); without them there was nothing to compare."""

    promote: bool
    champion: str
    reasons: tuple[str, ...]
    verdict: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class Rollback:
    """A rollback: the version that is champion again and the one it replaced."""

    champion: str
    previous: str


class MonitorResult(TypedDict):
    """What ``labelwise monitor`` found in a batch (a JSON document: ``--json`` prints it):
    its monitoring run, the model compared with, the batch's rows, the alerts and the
    per-label drift rows (see ``labelwise.engine.drift.DriftReport``)."""

    run_id: str
    model: str
    rows: int
    alerts: list[LabelAlert]
    feature_alerts: list[FeatureAlert]
    labels: list[dict[str, Any]]
    retrain_flow_run: NotRequired[str | None]


# a dotted config key's value, as YAML gives it (``model.params.num_leaves: 31``)
Setting = str | int | float | bool | None


@dataclass(frozen=True)
class TrialResult:
    """A tune trial's held-out verdict: the metrics of its best threshold policy (averaged over
    ``repeats`` cross-fits), that policy's settings, the objective on every fold (for the
    one-standard-error rule across trials), and what the fit cost."""

    metrics: dict[str, float]
    thresholds: dict[str, Setting]
    fold_objective: tuple[float, ...]
    repeats: int
    fit_seconds: float
    mean_best_iteration: float


@dataclass(frozen=True)
class TuneResult:
    """What ``labelwise tune`` ended with: its MLflow run and Optuna study, the chosen trial,
    the best config's path, its test metrics (scored once) and, with ``--register``, the
    version the best config registered."""

    run_id: str
    study: str
    best_trial: int
    best_value: float
    trials: int
    best_config: str
    test_metrics: dict[str, float] | None = None
    registered: RegisteredVersion | None = None


class Expectation(TypedDict):
    """A great-expectations suite-JSON entry: the expectation's ``type`` and its ``kwargs``
    (``column``, bounds, ``mostly``...), as a suite file in ``data_contracts/`` holds them."""

    type: str
    kwargs: dict[str, Any]
    meta: NotRequired[dict[str, Any] | None]


class ContractFailure(TypedDict):
    """One failed expectation, as the report, the artifact and the error message show it."""

    expectation: str
    column: str | None
    observed: object
    expected: dict[str, object]


class ContractReport(TypedDict):
    """A table checked against its data contract (a JSON document: logged on the run as
    ``contract/<part>.json``, carried by ``ContractError.report``); ``table`` names the
    source the user gave."""

    suite: str
    success: bool
    failures: list[ContractFailure]
    evaluated: int
    successful: int
    table: NotRequired[str]


@dataclass(frozen=True)
class Deployments:
    """The deployments ``labelwise deploy`` made of a config: their ids by kind (retrain,
    promote, monitor), the work pool and the two schedules."""

    ids: dict[str, str]
    work_pool: str
    cron: str | None
    monitor_cron: str | None


@dataclass(frozen=True)
class TriggeredRun:
    """A flow run asked of a deployment (``labelwise trigger``): a worker runs it."""

    deployment: str
    flow_run_id: str
    flow_run: str


@dataclass(frozen=True)
class BatchPrediction:
    """A table scored by ``labelwise predict``: its rows, the parquet written, the model that
    scored it, the categories it had never seen in training (scored as missing), and the
    seconds from the first chunk read to the output renamed (the model's load not counted)."""

    rows: int
    output: str
    model: str
    unseen_categories: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0
