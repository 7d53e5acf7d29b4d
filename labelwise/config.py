"""The YAML config of a labelwise job, validated by pydantic.

Every section forbids unknown keys, so a typo (``learnig_rate``) is an error, not a silent
default. Errors name the YAML path of the bad key (``model.params.n_estimators``). Relative data
paths are resolved against the config file's folder. Secrets (server passwords, tokens) never go
here: they come from the environment (MLFLOW_TRACKING_USERNAME / _PASSWORD, PREFECT_API_KEY...).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labelwise.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelsConfig(_Section):
    """Which columns hold the labels: exactly one of columns / prefix / regex / set_column."""

    columns: list[str] | None = None
    prefix: str | None = None
    regex: str | None = None
    set_column: str | None = None
    separator: str | None = None

    @model_validator(mode="after")
    def _one(self) -> LabelsConfig:
        given = [k for k in ("columns", "prefix", "regex", "set_column") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of columns, prefix, regex, set_column (got "
                             f"{given or 'none'})")
        return self

    def spec(self) -> Any:
        from labelwise.data import LabelSpec

        return LabelSpec(columns=tuple(self.columns) if self.columns else None,
                         prefix=self.prefix, regex=self.regex, set_column=self.set_column,
                         separator=self.separator)


class DataConfig(_Section):
    train: Path = Field(description="training table (parquet / CSV / NDJSON)")
    test: Path | None = Field(None, description="held-out table; else split off the training one")
    labels: LabelsConfig
    features: list[str] | None = Field(None, description="feature columns; default: all others")
    exclude: list[str] = Field(default_factory=list, description="columns that are not features")


class SplitConfig(_Section):
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0


class ModelConfig(_Section):
    strategy: Literal["binary_relevance", "stacking", "chain", "chain_ensemble"] = (
        "binary_relevance")
    preset: Literal["default", "fast", "accurate"] = "default"
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="LabelwiseClassifier parameters")
    lgb_params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _known(cls, v: dict[str, Any]) -> dict[str, Any]:
        import inspect

        from labelwise.model import LabelwiseClassifier

        sig = inspect.signature(LabelwiseClassifier.__init__).parameters
        allowed = set(sig) - {"self", "strategy", "lgb_params", "weighting", "weighting_cap"}
        unknown = sorted(set(v) - allowed)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")
        kinds = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                 "None": (type(None),), "dict": (dict,), "Sequence": (list, tuple)}
        for key, value in v.items():
            # annotations are strings here ("int | str | None"): check against their names
            names = [n.strip().split("[")[0] for n in str(sig[key].annotation).split("|")]
            allowed_types = tuple(t for n in names for t in kinds.get(n, (object,)))
            ok = isinstance(value, allowed_types) and not (
                isinstance(value, bool) and "bool" not in names)
            if not ok:
                raise ValueError(f"{key} must be {sig[key].annotation}, got {value!r}")
        return v


class WeightingConfig(_Section):
    scheme: Literal["none", "balanced", "sqrt", "effective"] | dict[str, float] = "none"
    cap: float = Field(50.0, ge=1)
    beta: float = Field(0.999, gt=0, lt=1)


class ThresholdConfig(_Section):
    objective: Literal["f1", "fbeta", "precision", "recall"] = "f1"
    beta: float = Field(1.0, gt=0)
    target: float | None = Field(None, gt=0, le=1)
    mode: Literal["per_label", "global", "fixed"] = "per_label"
    fixed: float = Field(0.5, ge=0, le=1)
    shrinkage: float = Field(30.0, ge=0)
    at_least_one: bool = False


class ContractConfig(_Section):
    suite: Path | None = Field(None, description="great-expectations suite JSON")
    min_rows: int = Field(10, ge=1)
    min_positives_per_label: int = Field(1, ge=0)
    min_negatives_per_label: int = Field(1, ge=0)


class TrackingConfig(_Section):
    tracking_uri: str | None = Field(None, description="default: SQLite in the state dir")
    experiment: str | None = Field(None, description="default: the config name")
    registered_model: str | None = Field(None, description="default: the config name")


class PromotionConfig(_Section):
    metric: str = "f1_macro"
    higher_is_better: bool = True
    min_gain: float = Field(0.0, ge=0)
    max_label_regression: float = Field(0.05, ge=0, le=1)
    min_label_support: int = Field(20, ge=1)


class ScheduleConfig(_Section):
    cron: str | None = None
    timezone: str = "UTC"


class MonitoringConfig(_Section):
    """The monitor flow: which batch it reads on its schedule and when a batch counts as drifted
    (see labelwise.drift.DriftRules for the meaning of each limit)."""

    batch: Path | None = Field(None, description="table the scheduled monitor run reads")
    cron: str | None = Field(None, description="schedule of the monitor deployment")
    top_features: int = Field(20, ge=0, description="features profiled, by importance")
    prevalence_ratio: float = Field(2.0, gt=1)
    prevalence_min_change: float = Field(0.02, ge=0, le=1)
    score_psi: float = Field(0.25, gt=0)
    feature_psi: float = Field(0.25, gt=0)
    f1_drop: float = Field(0.15, ge=0, le=1)
    min_support: int = Field(20, ge=1)
    retrain_on_drift: bool = Field(False, description="run the retrain deployment on drift")

    def rules(self) -> Any:
        from labelwise.drift import DriftRules

        return DriftRules(prevalence_ratio=self.prevalence_ratio,
                          prevalence_min_change=self.prevalence_min_change,
                          score_psi=self.score_psi, feature_psi=self.feature_psi,
                          f1_drop=self.f1_drop, min_support=self.min_support)


# settings that change how or when a job runs, never the model it makes
EXECUTION_KEYS = {"monitoring", "schedule", "task_runner", "dask_address", "dask_workers",
                  "n_jobs"}


class Config(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataConfig
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    weighting: WeightingConfig = WeightingConfig()
    thresholds: ThresholdConfig = ThresholdConfig()
    contract: ContractConfig = ContractConfig()
    tracking: TrackingConfig = TrackingConfig()
    promotion: PromotionConfig = PromotionConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    task_runner: Literal["thread", "dask"] = Field(
        "thread", description="where per-label models train: threads of the flow's process, "
        "or a Dask cluster (prefect-dask)")
    dask_address: str | None = Field(
        None, description="scheduler of an existing Dask cluster, e.g. tcp://scheduler:8786; "
        "unset: a local cluster of dask_workers processes for the run")
    dask_workers: int | None = Field(None, ge=1, description="local cluster size (CPUs)")
    n_jobs: int = -1

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    @property
    def registered_model(self) -> str:
        return self.tracking.registered_model or self.name

    def digest(self) -> str:
        """Stable hash of the validated config (paths as given): a cache and lineage key.
        Monitoring, scheduling and where the work runs do not change the model, so they are
        left out (a run resumed on a Dask cluster reuses what threads finished, and back)."""
        blob = json.dumps(self.model_dump(mode="json", exclude=EXECUTION_KEYS), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def flat(self) -> dict[str, str]:
        """Dotted-key view, the shape MLflow params want."""
        out: dict[str, str] = {}

        def walk(prefix: str, v: Any) -> None:
            if isinstance(v, dict) and v:
                for k, x in v.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), x)
            else:
                out[prefix] = json.dumps(v) if isinstance(v, list | dict) else str(v)

        walk("", self.model_dump(mode="json"))
        return out

    def estimator(self) -> Any:
        """The LabelwiseClassifier this config describes."""
        from labelwise.model import LabelwiseClassifier

        t = self.thresholds
        params = {**self.model.params, "strategy": self.model.strategy,
                  "weighting": self.weighting.scheme, "weighting_cap": self.weighting.cap,
                  "threshold_objective": t.objective, "threshold_beta": t.beta,
                  "threshold_target": t.target, "threshold_mode": t.mode,
                  "threshold_shrinkage": t.shrinkage, "threshold_fixed": t.fixed,
                  "at_least_one": t.at_least_one,
                  "n_jobs": self.n_jobs}
        if self.model.lgb_params:
            params["lgb_params"] = dict(self.model.lgb_params)
        return LabelwiseClassifier.from_preset(self.model.preset, **params)


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (typo?)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config", base_dir: Path | None = None) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got "
                          f"{type(data).__name__}")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    if base_dir is not None:
        d = cfg.data
        upd = {"train": _resolve(d.train, base_dir)}
        if d.test is not None:
            upd["test"] = _resolve(d.test, base_dir)
        updates: dict[str, Any] = {"data": d.model_copy(update=upd)}
        if cfg.monitoring.batch is not None:
            updates["monitoring"] = cfg.monitoring.model_copy(
                update={"batch": _resolve(cfg.monitoring.batch, base_dir)})
        if cfg.contract.suite is not None:
            updates["contract"] = cfg.contract.model_copy(
                update={"suite": _resolve(cfg.contract.suite, base_dir)})
        cfg = cfg.model_copy(update=updates)
    try:
        cfg.estimator()._check_params()
    except Exception as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg


def _resolve(p: Path, base: Path) -> Path:
    return p if p.is_absolute() else (base / p).resolve()


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a YAML config; errors name the file and the YAML path of the bad key.

    ``overrides`` sets dotted keys (``{"model.preset": "fast"}``) before validation.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML ({exc})") from None
    for key, value in (overrides or {}).items():
        node = data if isinstance(data, dict) else {}
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    # relative paths in a config are relative to the config file's own folder
    return parse_config(data, source=str(p), base_dir=p.parent)
