"""Promotion: challenger vs champion on the same evaluation data; move ``champion`` only when the
gate passes. Rollback: put the previous champion back."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from prefect import flow

from labelwise.config import Config, PromotionConfig, load_config
from labelwise.runtime import configure_environment


def gate(champ: dict[str, Any], chal: dict[str, Any], rule: PromotionConfig) -> dict[str, Any]:
    """Decide from two evaluations ({"metrics": ..., "per_label": [...]}) and the rule."""
    if rule.metric not in chal["metrics"]:
        raise ValueError(f"promotion.metric {rule.metric!r} is not a metric; choose one of "
                         f"{sorted(chal['metrics'])}")
    a, b = champ["metrics"][rule.metric], chal["metrics"][rule.metric]
    gain = (b - a) if rule.higher_is_better else (a - b)
    reasons = []
    ok_gain = gain > 0 if rule.min_gain == 0 else gain >= rule.min_gain
    reasons.append(f"{rule.metric}: champion {a:.4f}, challenger {b:.4f}, gain {gain:+.4f} "
                   f"({'meets' if ok_gain else 'below'} the minimum {rule.min_gain})")
    champ_f1 = {r["label"]: r for r in champ["per_label"]}
    regressions = []
    for r in chal["per_label"]:
        old = champ_f1.get(r["label"])
        if old is None or r["support"] < rule.min_label_support:
            continue
        drop = old["f1"] - r["f1"]
        if drop > rule.max_label_regression:
            regressions.append({"label": r["label"], "champion_f1": round(old["f1"], 4),
                                "challenger_f1": round(r["f1"], 4), "support": r["support"]})
    if regressions:
        names = ", ".join(x["label"] for x in regressions[:10])
        reasons.append(f"{len(regressions)} label(s) lose more than "
                       f"{rule.max_label_regression} F1: {names}")
    return {"promote": bool(ok_gain and not regressions), "gain": gain,
            "champion_score": a, "challenger_score": b, "regressions": regressions,
            "reasons": reasons}


def _evaluate(cfg: Config, model_dir: str, test_path: str) -> dict[str, Any]:
    from labelwise.metrics import evaluate, per_label_table
    from labelwise.model import LabelwiseClassifier
    from tasks.train import score_table

    clf = LabelwiseClassifier.load(model_dir)
    Y, S, P = score_table(cfg, clf, test_path)
    return {"metrics": evaluate(Y, P, S), "per_label": per_label_table(Y, P, None, clf.labels_)}


def registry_lock(name: str, timeout_s: float = 900) -> Any:
    """One promotion or rollback of a registered model at a time, on any worker: a Prefect
    global concurrency limit of 1 slot per model (created on first use). The MLflow registry
    has no compare-and-set, so racing promotions are serialised here; the loser then finds
    the challenger already champion and records nothing."""
    import re

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    key = "labelwise-registry-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)
    with get_client(sync_client=True) as c, contextlib.suppress(ObjectAlreadyExists):
        c.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=key, limit=1))
    return concurrency(key, occupy=1, timeout_seconds=timeout_s, strict=True)


@flow(name="labelwise-promote", log_prints=True)
def promote_flow(config_path: str, data_path: str | None = None) -> dict[str, Any]:
    """Score champion and challenger on the same data in one run; move champion if better."""
    configure_environment()  # a worker's run gets the same client defaults as the CLI
    cfg = load_config(config_path)
    with registry_lock(cfg.registered_model):
        return _promote(cfg, data_path)


def _promote(cfg: Config, data_path: str | None) -> dict[str, Any]:
    import mlflow

    from flows.train import workdir_for
    from tasks.data import inspect_data, split_data
    from tasks.registry import download_model_dir, move_champion
    from tasks.tracking import client, experiment_id, tracking_uri

    uri = tracking_uri(cfg)
    name = cfg.registered_model
    champ_v, champ_dir = download_model_dir(uri, f"models:/{name}@champion")
    chal_v, chal_dir = download_model_dir(uri, f"models:/{name}@challenger")
    if str(champ_v.version) == str(chal_v.version):
        msg = f"{name}: challenger v{chal_v.version} is already the champion; nothing to do"
        print(msg)
        return {"promote": False, "reasons": [msg], "champion": str(champ_v.version)}
    if data_path is None:
        info = inspect_data(cfg)
        data_path = split_data(cfg, info, str(workdir_for(cfg, info["train"]["digest"])))["test"]
    champ = _evaluate(cfg, str(champ_dir), data_path)
    chal = _evaluate(cfg, str(chal_dir), data_path)
    decision = gate(champ, chal, cfg.promotion)

    c = client(cfg)
    mlflow.set_tracking_uri(uri)
    run = c.create_run(experiment_id(cfg, f"{cfg.experiment}-promotion"),
                       run_name=f"v{chal_v.version}-vs-v{champ_v.version}",
                       tags={"champion.version": str(champ_v.version),
                             "challenger.version": str(chal_v.version),
                             "promotion.data": str(data_path)})
    run_id = run.info.run_id
    try:
        from mlflow.entities import Metric

        now = 0
        ms = [Metric(f"champion/{k}", float(v), now, 0) for k, v in champ["metrics"].items()
              if v == v] + [Metric(f"challenger/{k}", float(v), now, 0)
                            for k, v in chal["metrics"].items() if v == v]
        c.log_batch(run_id, metrics=ms)
        moved = False
        if decision["promote"]:
            moved = move_champion(uri, name, str(chal_v.version), str(champ_v.version),
                                  f"promotion run {run_id}")
            if not moved:
                decision["promote"] = False
                decision["reasons"].append("champion changed during this promotion (another "
                                           "promotion won the race); nothing moved")
        verdict = (f"promoted v{chal_v.version} over v{champ_v.version}" if moved else
                   f"kept v{champ_v.version}; v{chal_v.version} refused")
        record = {"decision": verdict, **decision, "run_id": run_id}
        c.log_dict(run_id, record, "promotion/decision.json")
        c.set_tag(run_id, "promotion.decision", verdict)
        for v in (champ_v.version, chal_v.version):
            c.set_model_version_tag(name, v, "promotion.decision", verdict)
            c.set_model_version_tag(name, v, "promotion.reasons",
                                    json.dumps(decision["reasons"])[:5000])
            c.set_model_version_tag(name, v, "promotion.run_id", run_id)
        c.set_terminated(run_id, "FINISHED")
    except BaseException:
        c.set_terminated(run_id, "FAILED")
        raise
    print(verdict + "\n  " + "\n  ".join(decision["reasons"]))
    return {**record, "champion": str(chal_v.version if moved else champ_v.version)}


@flow(name="labelwise-rollback", log_prints=True)
def rollback_flow(config_path: str) -> dict[str, Any]:
    """Put the previous champion back (from the champion history kept by promotions)."""
    from tasks.tracking import tracking_uri

    configure_environment()  # a worker's run gets the same client defaults as the CLI
    cfg = load_config(config_path)
    uri = tracking_uri(cfg)
    name = cfg.registered_model
    with registry_lock(name):
        return _rollback(cfg, uri, name)


def _rollback(cfg: Config, uri: str, name: str) -> dict[str, Any]:
    from labelwise.errors import RegistryError
    from tasks.registry import HISTORY_TAG, champion_history, resolve_version
    from tasks.tracking import client

    current = resolve_version(uri, f"models:/{name}@champion")
    history = champion_history(uri, name)
    if not history:
        raise RegistryError(f"{name}: no previous champion to roll back to (no promotion has "
                            "moved the champion yet)")
    previous = history.pop()
    c = client(cfg)
    c.set_registered_model_alias(name, "champion", previous)
    c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    c.set_model_version_tag(name, current.version, "promotion.decision",
                            f"rolled back: champion returned to v{previous}")
    c.set_model_version_tag(name, previous, "promotion.decision",
                            f"champion again after rollback from v{current.version}")
    print(f"{name}: champion v{current.version} -> v{previous}")
    return {"champion": previous, "previous": str(current.version)}
