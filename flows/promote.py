"""Promotion: challenger vs champion on the same evaluation data; move ``champion`` only when the
gate passes. Rollback: put the previous champion back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import flow

from labelwise.pipeline.config import Config, load_config
from labelwise.pipeline.environment import configure_environment
from labelwise.pipeline.records import PromotionRecord, Rollback

if TYPE_CHECKING:
    from labelwise.tasks.data import SourceNames


@flow(name="labelwise-promote", log_prints=True)
def promote_flow(
    config_path: str, data_path: str | None = None, include_rejected: bool = False
) -> PromotionRecord:
    """Score champion and challenger on the same data in one run; move champion if better.
    A challenger that was rolled back before is skipped unless ``include_rejected``."""
    from labelwise.tasks.data import SourceNames
    from labelwise.tasks.promotion import registry_lock

    configure_environment()  # a worker's run gets the same client defaults as the CLI
    cfg = load_config(config_path)
    with registry_lock(cfg.registered_model), SourceNames() as names:
        return _promote(cfg, data_path, include_rejected, names)


def _promote(
    cfg: Config, data_path: str | None, include_rejected: bool, names: SourceNames
) -> PromotionRecord:
    from labelwise.engine.promotion import gate
    from labelwise.tasks.data import check_evaluable
    from labelwise.tasks.promotion import REJECTED_TAG, evaluate_version, record_promotion
    from labelwise.tasks.registry import CHAMPION, download_model_dir
    from labelwise.tasks.tracking import tracking_uri

    uri, name = tracking_uri(cfg), cfg.registered_model
    # the champion first: a missing model or alias is a RegistryError naming what exists
    champ_v, champ_dir = download_model_dir(uri, f"models:/{name}@{CHAMPION}")
    chal_uri, why = _challenger_uri(uri, name, str(champ_v.version), include_rejected)
    if chal_uri is None:
        return _nothing(why, champ_v.version)
    chal_v, chal_dir = download_model_dir(uri, chal_uri)
    rejected = (chal_v.tags or {}).get(REJECTED_TAG)
    if rejected and not include_rejected:
        return _nothing(
            f"{name}: challenger v{chal_v.version} was {rejected}; not promoting "
            "it again (ask for it with --include-rejected)",
            champ_v.version,
        )
    data_path = data_path or _evaluation_table(cfg, names)
    check_evaluable(cfg, data_path)  # never a decision on (almost) nothing
    from labelwise.engine.persistence import read_manifest

    champ_labels = list(read_manifest(champ_dir)["labels"])
    chal_labels = list(read_manifest(chal_dir)["labels"])
    # both on the labels they share: a label only one of them knows cannot be compared
    shared = [lab for lab in chal_labels if lab in set(champ_labels)]
    subset = None if champ_labels == chal_labels else shared
    if not shared:
        return _nothing(
            f"{name}: champion v{champ_v.version} and challenger v{chal_v.version} share no "
            "label; they cannot be compared (a new model name suits a new label set)",
            champ_v.version,
        )
    evaluations = (
        evaluate_version(cfg, str(champ_dir), data_path, subset),
        evaluate_version(cfg, str(chal_dir), data_path, subset),
    )
    decision = gate(*evaluations, cfg.promotion)
    record = record_promotion(
        cfg, (str(champ_v.version), str(chal_v.version)), evaluations, decision, data_path
    )
    print(f"{record.verdict}\n  " + "\n  ".join(record.reasons))
    return record


def _challenger_uri(
    uri: str, name: str, champion: str, include_rejected: bool
) -> tuple[str | None, str]:
    """The version to judge against the champion (a ``models:/`` URI), or None and why there
    is none. A rollback takes ``challenger`` off the version it rejects: asked for with
    ``include_rejected``, the newest such version is the challenger."""
    from labelwise.tasks.registry import CHALLENGER, mlflow_client

    aliases = mlflow_client(uri).get_registered_model(name).aliases or {}
    if CHALLENGER in aliases:
        if str(aliases[CHALLENGER]) == champion:
            return None, f"{name}: challenger v{champion} is already the champion; nothing to do"
        return f"models:/{name}@{CHALLENGER}", ""
    rejected = _rejected_versions(uri, name, champion)
    if include_rejected and rejected:
        return f"models:/{name}/{rejected[0]}", ""
    hint = (
        f" (v{rejected[0]} was rolled back; --include-rejected promotes it again)"
        if rejected
        else " (train a new version first)"
    )
    return None, f"{name}: no challenger to promote{hint}"


def _rejected_versions(uri: str, name: str, champion: str) -> list[str]:
    """The versions a rollback rejected, newest first (never the champion)."""
    from labelwise.tasks.promotion import REJECTED_TAG
    from labelwise.tasks.registry import mlflow_client

    found = mlflow_client(uri).search_model_versions(f"name='{name}'")
    return [
        str(v.version)
        for v in sorted(found, key=lambda v: int(v.version), reverse=True)
        if REJECTED_TAG in (v.tags or {}) and str(v.version) != champion
    ]


def _nothing(message: str, champion: object) -> PromotionRecord:
    print(message)
    return PromotionRecord(promote=False, champion=str(champion), reasons=(message,))


def _evaluation_table(cfg: Config, names: SourceNames) -> str:
    """The config's test table, or the test part of its stratified split (named, in errors,
    by the source it was read from)."""
    from labelwise.tasks.data import snapshot_data, split_data, workdir_for

    info = snapshot_data(cfg)
    names.add(cfg, info)
    return split_data(cfg, info, str(workdir_for(cfg, info.train.digest))).test


@flow(name="labelwise-rollback", log_prints=True)
def rollback_flow(config_path: str) -> Rollback:
    """Put the previous champion back (from the champion history kept by promotions); the
    rolled-back version is not promoted again unless a user asks for it."""
    from labelwise.tasks.promotion import registry_lock, roll_back

    configure_environment()  # a worker's run gets the same client defaults as the CLI
    cfg = load_config(config_path)
    with registry_lock(cfg.registered_model):
        return roll_back(cfg)
