"""Registry reads and writes: resolving ``models:/name@alias``, the promotion gate's record,
champion history for rollback."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelwise.engine.errors import RegistryError
from labelwise.pipeline.records import Snapshot

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from labelwise.engine.classifier import LabelwiseClassifier
    from labelwise.pipeline.config import Config


def tracking_uri_of(cfg: Config) -> str:
    """The config's tracking URI, else the environment's, else the embedded SQLite store."""
    from labelwise.pipeline.environment import default_tracking_uri

    return cfg.tracking.tracking_uri or default_tracking_uri()


HISTORY_TAG = "labelwise.champion_history"
CHALLENGER, CHAMPION = "challenger", "champion"


def mlflow_client(tracking_uri: str) -> MlflowClient:
    """The one way labelwise talks to MLflow: tracking and registry at the same URI."""
    from mlflow import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        _created_once(tracking_uri)
    return MlflowClient(tracking_uri, registry_uri=tracking_uri)


@functools.lru_cache(maxsize=8)
def _created_once(tracking_uri: str) -> None:
    """Create (migrate) a SQLite store under a file lock: two commands starting on a new
    store at once would otherwise both run MLflow's migrations, and one fail with
    ``duplicate column name``. Once per process and store."""
    import fcntl

    from mlflow import MlflowClient

    db = Path(tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
        c = MlflowClient(tracking_uri, registry_uri=tracking_uri)
        c.search_experiments(max_results=1)  # the tracking store's tables
        c.search_registered_models(max_results=1)  # the registry's


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` or ``models:/name/3`` -> (name, alias, version)."""
    if not uri.startswith("models:/"):
        raise RegistryError(
            f"{uri!r} is not a registry URI; use models:/<name>@<alias> or "
            "models:/<name>/<version> (or a local model directory)"
        )
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, alias, None
    if "/" in rest:
        name, version = rest.rsplit("/", 1)
        return name, None, version
    raise RegistryError(f"{uri!r}: name an alias (models:/{rest}@champion) or a version")


def resolve_version(tracking_uri: str, uri: str) -> ModelVersion:
    """The ModelVersion a registry URI points at, with errors that say what exists."""
    from mlflow.exceptions import MlflowException

    c = mlflow_client(tracking_uri)
    name, alias, version = parse_model_uri(uri)
    try:
        model = c.get_registered_model(name)
    except MlflowException:
        names = [m.name for m in c.search_registered_models(max_results=50)]
        raise RegistryError(
            f"registered model {name!r} does not exist at {tracking_uri} "
            f"(known: {names or 'none'}); train and register it first"
        ) from None
    try:
        if alias is not None:
            return c.get_model_version_by_alias(name, alias)
        return c.get_model_version(name, str(version))
    except MlflowException:
        what = f"alias {alias!r}" if alias else f"version {version!r}"
        raise RegistryError(
            f"model {name!r} has no {what} (aliases: "
            f"{sorted(model.aliases) if model.aliases else 'none'})"
        ) from None


def download_model_dir(tracking_uri: str, uri: str, dst: str | None = None) -> tuple[Any, Path]:
    """Fetch a registered version's artifacts; return (version, the labelwise model directory)."""
    import mlflow

    mv = resolve_version(tracking_uri, uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    dst = dst or tempfile.mkdtemp(prefix="labelwise-model-")
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{mv.name}/{mv.version}", dst_path=dst
        )
    )
    found = sorted(local.rglob("manifest.json"))
    if not found:
        raise RegistryError(
            f"{uri}: version {mv.version} holds no labelwise model (manifest.json missing)"
        )
    return mv, found[0].parent


def locate_model(model: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """(local directory, description) of ``models:/name@alias``, ``models:/name/3`` or a
    directory; registry models are downloaded."""
    if not model.startswith("models:/"):
        return model, model
    from labelwise.pipeline.environment import default_tracking_uri

    mv, model_dir = download_model_dir(tracking_uri or default_tracking_uri(), model)
    return str(model_dir), f"{mv.name} v{mv.version}"


def load_model(model: str, tracking_uri: str | None = None) -> tuple[LabelwiseClassifier, str]:
    """A fitted LabelwiseClassifier from a registry URI or a model directory."""
    from labelwise.engine.classifier import LabelwiseClassifier

    model_dir, what = locate_model(model, tracking_uri)
    return LabelwiseClassifier.load(model_dir), what


def lineage_tags(cfg: Config, info: Snapshot) -> dict[str, str]:
    """What makes two trainings the same: the config digest and the tables' digests."""
    tags = {"config.digest": cfg.digest(), "data.train.digest": info.train.digest}
    if info.test is not None:
        tags["data.test.digest"] = info.test.digest
    return tags


def source_tags(info: Snapshot, run: bool = True) -> dict[str, str]:
    """Where the rows came from (credentials never included) and, for a time-windowed
    source, the window, the as-of time and the newest row; a run also gets the source kind
    and the row count (a version stays short: its run has them)."""
    train = info.train
    tags = {"data.source": train.source[:5000]}
    if run:
        tags |= {"data.kind": train.kind, "data.rows": str(train.rows)}
    for k, value in (
        ("window", train.window),
        ("as_of", train.as_of),
        ("max_time", train.max_time),
    ):
        if value:
            tags[f"data.{k}"] = value
    return tags


def nothing_new(cfg: Config, info: Snapshot) -> Any | None:
    """The newest-data version of this same config (the champion or a later challenger) when
    its snapshot's newest row is at least as new as the newest row now in the window: a
    retrain would learn from nothing it has not seen."""
    from datetime import datetime

    newest = info.train.max_time
    if not newest:
        return None
    mine = [
        v
        for v in _versions(cfg)
        if (v.tags or {}).get("config.digest") == cfg.digest() and v.tags.get("data.max_time")
    ]
    if not mine:
        return None
    latest = max(mine, key=lambda v: datetime.fromisoformat(v.tags["data.max_time"]))
    seen = datetime.fromisoformat(latest.tags["data.max_time"])
    return latest if datetime.fromisoformat(newest) <= seen else None


def _versions(cfg: Config) -> list[Any]:
    """Every version of the config's registered model (none when the model does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        return list(
            mlflow_client(tracking_uri_of(cfg)).search_model_versions(
                f"name='{cfg.registered_model}'"
            )
        )
    except MlflowException:
        return []


def identical_version(cfg: Config, info: Snapshot) -> Any | None:
    """The registered version trained from the same config on the same tables, if any: a
    retrain of an unchanged job would only register it again."""
    want = lineage_tags(cfg, info)
    same = [
        v
        for v in _versions(cfg)
        if all((v.tags or {}).get(k) == x for k, x in want.items())
        and (v.tags or {}).get("data.test.digest") == want.get("data.test.digest")
    ]
    return max(same, key=lambda v: int(v.version)) if same else None


def champion_history(tracking_uri: str, name: str) -> list[str]:
    model = mlflow_client(tracking_uri).get_registered_model(name)
    try:
        return list(json.loads(model.tags.get(HISTORY_TAG, "[]")))
    except json.JSONDecodeError:
        return []
