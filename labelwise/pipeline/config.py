"""The YAML config of a labelwise job, validated by pydantic.

Every section forbids unknown keys, so a typo (``learnig_rate``) is an error, not a silent
default. Errors name the YAML path of the bad key (``model.params.n_estimators``). Relative data
paths are resolved against the config file's folder. Secrets (server passwords, tokens) never go
here: they come from the environment (MLFLOW_TRACKING_USERNAME / _PASSWORD, PREFECT_API_KEY...).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from labelwise.engine.data import LabelSpec
from labelwise.engine.errors import ConfigError
from labelwise.engine.label_tree import LabelTreeSettings
from labelwise.engine.promotion import PromotionRule
from labelwise.engine.text import TextSettings
from labelwise.engine.thresholds import ThresholdPolicy
from labelwise.engine.weights import Weighting
from labelwise.pipeline.environment import redact
from labelwise.pipeline.source_kinds import check_source
from labelwise.pipeline.sources import is_glob, local_matches, parse_duration, scheme

if TYPE_CHECKING:
    from labelwise.engine.classifier import LabelwiseClassifier
    from labelwise.engine.drift import DriftRules


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(text: str) -> str:
    parse_duration(text)
    return text


# a span of time written as a number and a unit: 90d, 12h, 2w (see sources.parse_duration)
Duration = Annotated[str, AfterValidator(_duration)]
# a table file, a folder or glob of parquet files, or an object-store URI
SourceSpec = Annotated[str, AfterValidator(check_source)]


class SqlSource(_Section):
    """Rows of a SQL query. The database URI, credentials included, is read at run time from
    the environment variable ``uri_env``: the config, MLflow and the logs never hold it."""

    uri_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="env var of the URI")
    query: str = Field(min_length=1, description="SELECT ... (the window is applied around it)")


class DataConfig(_Section):
    train: SourceSpec | None = Field(
        None,
        description="a table file (parquet / CSV / NDJSON), a folder or glob of parquet files "
        "(hive partitions such as dt=2026-11-23/ become columns), or an object-store URI",
    )
    sql: SqlSource | None = Field(None, description="or: the rows of a SQL query")
    test: SourceSpec | None = Field(None, description="held-out table; else split off the train")
    labels: LabelSpec = Field(
        description="exactly one of columns, prefix, regex, set_column (+ separator)"
    )
    features: list[str] | None = Field(None, description="feature columns; default: all others")
    exclude: list[str] = Field(default_factory=list, description="columns that are not features")
    text: list[str] | None = Field(
        None,
        description="free-text columns, vectorised as tf-idf inside the model (settings: the "
        "text section); unset: found (long, mostly distinct strings); []: none",
    )
    time_column: str | None = Field(
        None,
        description="when each row happened (date or datetime; never a feature): rows after "
        "the run's as-of time are never read",
    )
    window: Duration | None = Field(None, description="only rows of the last <window> (90d)")

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        given = [k for k in ("train", "sql") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one source kind: data.train (a file, folder, glob or object-store "
                f"URI) or data.sql ({{uri_env, query}}); got {given or 'neither'}"
            )
        if self.window is not None and self.time_column is None:
            raise ValueError("data.window needs data.time_column, the column it selects on")
        return self

    def source(self, part: str) -> tuple[str | SqlSource, str] | None:
        """Where ``part`` (train or test) is read from and the key that names it in
        messages; None for a test part that is split off the training rows."""
        if part == "train" and self.sql is not None:
            return self.sql, "data.sql"
        given = self.train if part == "train" else self.test
        return None if given is None else (str(given), f"data.{part}")


class SplitConfig(_Section):
    by: Literal["stratified", "time"] = Field(
        "stratified",
        description="stratified: a random part with every label's share kept; time: the "
        "latest rows (data.time_column), what a retraining job is judged on",
    )
    test_fraction: float = Field(0.2, gt=0, lt=1)
    test_last: Duration | None = Field(None, description="by: time: the last <span> instead")
    seed: int = 0


# the engine's STRATEGIES (a literal here, for the JSON schema and pydantic's message)
Strategy = Literal["binary_relevance", "stacking", "chain", "chain_ensemble", "label_tree", "auto"]


class ModelConfig(_Section):
    strategy: Strategy = Field(
        "binary_relevance",
        description="a LightGBM model per label (binary_relevance; stacking and chains add "
        "label dependencies), label_tree: one tree over all labels, for thousands of labels, "
        "or auto: label_tree from 1,000 labels on",
    )
    preset: Literal["default", "fast"] = "default"
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="LabelwiseClassifier parameters (n_estimators, "
        "cv_folds, ...), validated by the estimator's own constraints",
    )
    lgb_params: dict[str, Any] = Field(
        default_factory=dict, description="any other LightGBM parameter"
    )

    @field_validator("preset", mode="before")
    @classmethod
    def _removed(cls, v: Any) -> Any:
        from labelwise.engine.classifier import REMOVED_PRESETS

        if v in REMOVED_PRESETS:
            raise ValueError(
                f"preset {v!r} was removed (not better than 'default' on the benchmark datasets, "
                f"at several times the cost); search instead: {REMOVED_PRESETS[v]}"
            )
        return v

    @field_validator("params")
    @classmethod
    def _known(cls, v: dict[str, Any]) -> dict[str, Any]:
        import inspect

        from labelwise.engine.classifier import LabelwiseClassifier

        allowed = set(inspect.signature(LabelwiseClassifier.__init__).parameters) - {
            "self",
            *SECTION_PARAMS,
        }
        taken = sorted(set(v) & set(SECTION_PARAMS))
        if taken:
            raise ValueError(
                f"{taken} are set by their own config keys "
                f"({[SECTION_PARAMS[k] for k in taken]}), not here"
            )
        unknown = sorted(set(v) - allowed)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")
        return v


class ContractConfig(_Section):
    suite: Path | None = Field(None, description="great-expectations suite JSON")
    min_rows: int = Field(10, ge=1)
    min_positives_per_label: int = Field(1, ge=0)
    min_negatives_per_label: int = Field(1, ge=0)
    min_test_rows: int = Field(10, ge=1, description="rows a model must be judged on")
    min_test_positives: int = Field(1, ge=1, description="positive labels in those rows")
    text_max_empty: float = Field(
        0.5, ge=0, le=1, description="share of rows a declared text column may leave null or blank"
    )
    text_max_chars: int = Field(
        1_000_000, ge=1, description="longest document a declared text column may hold"
    )


class TrackingConfig(_Section):
    tracking_uri: str | None = Field(None, description="default: SQLite in the state dir")
    experiment: str | None = Field(None, description="default: the config name")
    registered_model: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$",
        max_length=200,
        description="default: the config name",
    )


class ScheduleConfig(_Section):
    cron: str | None = None
    timezone: str = "UTC"


class MonitoringConfig(_Section):
    """The monitor flow: which batch it reads on its schedule and when a batch counts as drifted
    (see labelwise.drift.DriftRules for the meaning of each limit)."""

    batch: SourceSpec | None = Field(
        None, description="what the scheduled monitor run reads: any data.train source kind"
    )
    sql: SqlSource | None = Field(None, description="or: the rows of a SQL query")
    window: Duration | None = Field(None, description="only the batch's last <window> (7d)")
    cron: str | None = Field(None, description="schedule of the monitor deployment")
    top_features: int = Field(20, ge=0, description="features profiled, by importance")
    top_terms: int = Field(
        20, ge=0, description="terms profiled (share of documents holding each), by weight"
    )
    prevalence_ratio: float = Field(2.0, gt=1)
    prevalence_min_change: float = Field(0.02, ge=0, le=1)
    score_psi: float = Field(0.25, gt=0)
    feature_psi: float = Field(0.25, gt=0)
    f1_drop: float = Field(0.15, ge=0, le=1)
    min_support: int = Field(20, ge=1)
    retrain_on_drift: bool = Field(False, description="run the retrain deployment on drift")

    def rules(self) -> DriftRules:
        from labelwise.engine.drift import DriftRules

        return DriftRules(
            prevalence_ratio=self.prevalence_ratio,
            prevalence_min_change=self.prevalence_min_change,
            score_psi=self.score_psi,
            feature_psi=self.feature_psi,
            f1_drop=self.f1_drop,
            min_support=self.min_support,
        )


# settings that change how or when a job runs, never the model it makes: not in the config's
# digest (a job rescheduled is the same job)
EXECUTION_KEYS = ("monitoring", "schedule", "task_runner", "dask_address", "dask_workers", "n_jobs")
# ...and where it is tracked: a run's tags, not its params (the digest keeps ``tracking``: a job
# registered under another name is another job)
RUNTIME_SECTIONS = (*EXECUTION_KEYS, "tracking")


class Config(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataConfig
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    weighting: Weighting = Weighting()
    thresholds: ThresholdPolicy = ThresholdPolicy()
    text: TextSettings = TextSettings()
    label_tree: LabelTreeSettings = LabelTreeSettings()
    contract: ContractConfig = ContractConfig()
    tracking: TrackingConfig = TrackingConfig()
    promotion: PromotionRule = PromotionRule()
    schedule: ScheduleConfig = ScheduleConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    task_runner: Literal["thread", "dask"] = Field(
        "thread",
        description="where per-label models train: threads of the flow's process, "
        "or a Dask cluster (prefect-dask)",
    )
    dask_address: str | None = Field(
        None,
        description="scheduler of an existing Dask cluster, e.g. tcp://scheduler:8786; "
        "unset: a local cluster of dask_workers processes for the run",
    )
    dask_workers: int | None = Field(None, ge=1, description="local cluster size (CPUs)")
    n_jobs: int = -1

    @model_validator(mode="after")
    def _time_settings(self) -> Config:
        """Settings that read data.time_column need it; a time split needs something to split."""
        d, sp, mon = self.data, self.split, self.monitoring
        if sp.by == "time" and d.time_column is None:
            raise ValueError("split.by: time needs data.time_column")
        if sp.test_last is not None and sp.by != "time":
            raise ValueError("split.test_last is for split.by: time")
        if sp.by == "time" and d.test is not None:
            raise ValueError("split.by: time splits data.train; data.test is given, so drop one")
        if mon.window is not None and d.time_column is None:
            raise ValueError("monitoring.window needs data.time_column")
        if mon.batch is not None and mon.sql is not None:
            raise ValueError("give one monitoring source: monitoring.batch or monitoring.sql")
        if not tree_strategy(self.model.strategy) and self.label_tree != LabelTreeSettings():
            raise ValueError("the label_tree section is for model.strategy: label_tree (or auto)")
        return self

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    @property
    def registered_model(self) -> str:
        return self.tracking.registered_model or self.name

    def missing_files(self) -> list[str]:
        """``key: path`` of each local table, folder or suite this config needs that is not
        there: a missing path, a folder or glob without parquet files (a monitoring batch may
        arrive later; URIs and databases are checked when read)."""
        files = {
            "data.train": self.data.train,
            "data.test": self.data.test,
            "contract.suite": self.contract.suite,
        }
        out = []
        for key, p in files.items():
            if p is None or scheme(str(p)) is not None:
                continue
            if is_glob(str(p)) or Path(p).is_dir():
                if not local_matches(str(p)):
                    out.append(f"{key}: {p} (no parquet files match)")
            elif not Path(p).exists():
                out.append(f"{key}: {p}")
        return out

    def digest(self) -> str:
        """Stable hash of the validated config (paths as given): a cache and lineage key.
        Monitoring, scheduling and where the work runs do not change the model, so they are
        left out (a run resumed on a Dask cluster reuses what threads finished, and back)."""
        blob = json.dumps(self.model_dump(mode="json", exclude=set(EXECUTION_KEYS)), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def flat(self) -> dict[str, str]:
        """Dotted-key view, the shape MLflow params want."""
        out: dict[str, str] = {}

        def walk(prefix: str, v: Any) -> None:
            if isinstance(v, dict) and v:
                for k, x in v.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), x)
            else:
                text = json.dumps(v) if isinstance(v, list | dict) else str(v)
                out[prefix] = redact(text)  # a URI with credentials is never logged

        walk("", self.model_dump(mode="json"))
        return out

    def estimator(self) -> LabelwiseClassifier:
        """The LabelwiseClassifier this config describes (each section's object as it is)."""
        from labelwise.engine.classifier import LabelwiseClassifier

        return LabelwiseClassifier.from_preset(
            self.model.preset,
            **self.model.params,
            strategy=self.model.strategy,
            weighting=self.weighting,
            threshold_policy=self.thresholds,
            text_columns="auto" if self.data.text is None else list(self.data.text),
            text=self.text,
            label_tree=self.label_tree if tree_strategy(self.model.strategy) else None,
            n_jobs=self.n_jobs,
            lgb_params=dict(self.model.lgb_params) or None,
        )


def tree_strategy(strategy: str) -> bool:
    """Whether the label_tree section applies: the strategy is or may become label_tree."""
    return strategy in ("label_tree", "auto")


# estimator parameters that a config section sets, and the YAML path of that section
SECTION_PARAMS = {
    "strategy": "model.strategy",
    "lgb_params": "model.lgb_params",
    "weighting": "weighting",
    "threshold_policy": "thresholds",
    "text_columns": "data.text",
    "text": "text",
    "label_tree": "label_tree",
    "n_jobs": "n_jobs",
    "preset": "model.preset",
}


def _format_errors(exc: ValidationError, source: str) -> str:
    """One line per YAML path; the alternatives of a union (``str | dict``) become one
    sentence ("must be a valid string, or a valid dictionary; got [1]"), not one line each."""
    by_path: dict[str, list[str]] = {}
    for err in exc.errors():
        path, msg = _error_line(err)
        by_path.setdefault(path, []).append(msg)
    lines = [f"{source}: invalid config"]
    for path, msgs in by_path.items():
        if len(msgs) > 1:
            wanted = ", or ".join(
                m.removeprefix("Input should be ").split("; got")[0] for m in msgs
            )
            msgs = [f"must be {wanted}{_got(msgs[0])}"]
        lines.append(f"  {path}: {msgs[0]}")
    return "\n".join(lines)


def _got(msg: str) -> str:
    return "; got" + msg.split("; got", 1)[1] if "; got" in msg else ""


# pydantic names each branch of a union in the error location: not part of the YAML path
_TYPE_TAG = re.compile(r"\[|^(str|int|float|bool|dict|list|none|function-.*)$")


def _error_line(err: Any) -> tuple[str, str]:
    """(YAML path, message) of one pydantic error."""
    loc = [str(p) for p in err["loc"] if not _TYPE_TAG.search(str(p))]
    msg = err["msg"]
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        msg = "unknown key (typo?)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "value_error":  # our own validators' sentences, said once
        msg = msg.removeprefix("Value error, ")
        if not isinstance(err.get("input"), dict):
            msg += f"; got {err['input']!r}"[:160] if "; got" not in msg else ""
    elif "input" in err:
        msg += f"; got {err['input']!r}"[:120]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):  # an engine object's own check names its field
        msg = str(cause)
        loc += [cause.param] if cause.param else []
    return ".".join(loc) or "(top level)", msg


def _param_path(param: str | None) -> str:
    if param is None:
        return "model"
    return SECTION_PARAMS.get(param, f"model.params.{param}")


def parse_config(data: Any, source: str = "config", base_dir: Path | None = None) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, got {type(data).__name__}"
        )
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    if base_dir is not None:
        cfg = _resolve_paths(cfg, base_dir)
    try:
        estimator = cfg.estimator()
        estimator.validate_params()
        estimator.check_lgb_params()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {_param_path(exc.param)}: {exc}") from None
    return cfg


def _resolve_paths(cfg: Config, base: Path) -> Config:
    """Relative paths and globs in a config are relative to the config file's own folder;
    URIs stay as they are."""
    d, mon, con = cfg.data, cfg.monitoring, cfg.contract
    upd = {k: _resolve_spec(getattr(d, k), base) for k in ("train", "test")}
    updates: dict[str, Any] = {"data": d.model_copy(update=upd)}
    if mon.batch is not None:
        updates["monitoring"] = mon.model_copy(update={"batch": _resolve_spec(mon.batch, base)})
    if con.suite is not None:
        updates["contract"] = con.model_copy(update={"suite": _resolve(con.suite, base)})
    return cfg.model_copy(update=updates)


def _resolve_spec(spec: str | None, base: Path) -> str | None:
    if spec is None or scheme(spec) is not None:
        return spec
    return spec if Path(spec).is_absolute() else str((base / spec).resolve())


def _resolve(p: Path, base: Path) -> Path:
    return p if p.is_absolute() else (base / p).resolve()


def read_document(path: Path, parse: Callable[[str], Any], kind: str, what: str) -> Any:
    """``parse`` the text of file ``path`` (a ``what``: "config file", "contract suite"), with
    one clear error for a missing file and one for text that is not valid ``kind``."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        return parse(path.read_text())
    except (ValueError, ArithmeticError, LookupError) as exc:
        raise ConfigError(f"{path}: invalid {kind} ({exc})") from None


def _yaml(text: str) -> Any:
    """Safe YAML without aliases: an alias bomb (``&a [*a, *a, ...]``) would expand past any
    memory before validation could refuse it, and a config has no need for them."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise ValueError(
                    "YAML aliases (*name) are not allowed in a labelwise config; "
                    f"write the value out ({self.get_mark()})"
                )
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=NoAliases)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a YAML config; errors name the file and the YAML path of the bad key.

    ``overrides`` sets dotted keys (``{"model.preset": "fast"}``) before validation.
    """
    p = Path(path)
    data = set_keys(read_document(p, _yaml, "YAML", "config file"), overrides or {})
    # relative paths in a config are relative to the config file's own folder
    return parse_config(data, source=str(p), base_dir=p.parent)


def set_keys(data: Any, overrides: dict[str, Any]) -> Any:
    """``data`` (a parsed YAML mapping) with dotted keys set: ``{"model.preset": "fast"}``."""
    for key, value in overrides.items():
        node = data if isinstance(data, dict) else {}
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


def with_settings(cfg: Config, overrides: dict[str, Any], source: str = "config") -> Config:
    """``cfg`` with dotted keys set, validated again as a whole (``labelwise tune``'s trials)."""
    return parse_config(set_keys(cfg.model_dump(mode="json"), overrides), source=source)
