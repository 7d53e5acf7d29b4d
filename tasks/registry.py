"""Registry reads and writes: resolving ``models:/name@alias``, the promotion gate's record,
champion history for rollback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from prefect import task

from labelwise.errors import RegistryError

HISTORY_TAG = "labelwise.champion_history"


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri, registry_uri=tracking_uri)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` or ``models:/name/3`` -> (name, alias, version)."""
    if not uri.startswith("models:/"):
        raise RegistryError(f"{uri!r} is not a registry URI; use models:/<name>@<alias> or "
                            "models:/<name>/<version> (or a local model directory)")
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, alias, None
    if "/" in rest:
        name, version = rest.rsplit("/", 1)
        return name, None, version
    raise RegistryError(f"{uri!r}: name an alias (models:/{rest}@champion) or a version")


def resolve_version(tracking_uri: str, uri: str) -> Any:
    """The ModelVersion a registry URI points at, with errors that say what exists."""
    from mlflow.exceptions import MlflowException

    c = _client(tracking_uri)
    name, alias, version = parse_model_uri(uri)
    try:
        model = c.get_registered_model(name)
    except MlflowException:
        names = [m.name for m in c.search_registered_models(max_results=50)]
        raise RegistryError(f"registered model {name!r} does not exist at {tracking_uri} "
                            f"(known: {names or 'none'}); train and register it first") from None
    try:
        if alias is not None:
            return c.get_model_version_by_alias(name, alias)
        return c.get_model_version(name, version)
    except MlflowException:
        what = f"alias {alias!r}" if alias else f"version {version!r}"
        raise RegistryError(f"model {name!r} has no {what} (aliases: "
                            f"{sorted(model.aliases) if model.aliases else 'none'})") from None


def download_model_dir(tracking_uri: str, uri: str, dst: str | None = None) -> tuple[Any, Path]:
    """Fetch a registered version's artifacts; return (version, the labelwise model directory)."""
    import mlflow

    mv = resolve_version(tracking_uri, uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    dst = dst or tempfile.mkdtemp(prefix="labelwise-model-")
    local = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{mv.name}/{mv.version}", dst_path=dst))
    found = sorted(local.rglob("manifest.json"))
    if not found:
        raise RegistryError(f"{uri}: version {mv.version} holds no labelwise model "
                            "(manifest.json missing)")
    return mv, found[0].parent


def champion_history(tracking_uri: str, name: str) -> list[str]:
    model = _client(tracking_uri).get_registered_model(name)
    try:
        return list(json.loads(model.tags.get(HISTORY_TAG, "[]")))
    except json.JSONDecodeError:
        return []


@task(name="move-champion", retries=2, retry_delay_seconds=1)
def move_champion(tracking_uri: str, name: str, new_version: str, expected_current: str,
                  reason: str) -> bool:
    """Point ``champion`` at ``new_version`` if it still points at ``expected_current``.

    The registry has no compare-and-set, so this re-reads the alias right before moving it: a
    promotion that lost a race to another one refuses to move (and says so) instead of
    overwriting the other's decision.
    """
    c = _client(tracking_uri)
    current = c.get_model_version_by_alias(name, "champion").version
    if str(current) != str(expected_current):
        return False
    history = [*champion_history(tracking_uri, name), str(current)]
    c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-50:]))
    c.set_registered_model_alias(name, "champion", new_version)
    c.set_model_version_tag(name, new_version, "promotion.champion_since_reason", reason)
    return True
