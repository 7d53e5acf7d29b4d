"""Registry effects of promotion and rollback: the lock that serialises them, scoring a version,
the promotion run and the tags and aliases that record a decision."""

from __future__ import annotations

import contextlib
import json
import re
from contextlib import AbstractContextManager
from typing import Any

from prefect import task

from labelwise.engine.promotion import Decision, Evaluation
from labelwise.pipeline.config import Config
from labelwise.pipeline.records import PromotionRecord, Rollback
from labelwise.tasks.registry import (
    CHALLENGER,
    CHAMPION,
    HISTORY_TAG,
    champion_history,
    mlflow_client,
    resolve_version,
)
from labelwise.tasks.run_views import promotion_view
from labelwise.tasks.runs import create_run, tracked_run
from labelwise.tasks.tracking import client, experiment_id, log_metrics, tracking_uri

REJECTED_TAG = "promotion.rejected"  # a rolled-back version: never promoted again unasked


@task(name="move-champion", retries=2, retry_delay_seconds=1)
def move_champion(
    tracking_uri: str, name: str, new_version: str, expected_current: str, reason: str
) -> bool:
    """Point ``champion`` at ``new_version`` if it still points at ``expected_current``.

    The registry has no compare-and-set, so this re-reads the alias right before moving it: a
    promotion that lost a race to another one refuses to move (and says so) instead of
    overwriting the other's decision.
    """
    c = mlflow_client(tracking_uri)
    current = c.get_model_version_by_alias(name, CHAMPION).version
    if str(current) != str(expected_current):
        return False
    history = [*champion_history(tracking_uri, name), str(current)]
    c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-50:]))
    c.set_registered_model_alias(name, CHAMPION, new_version)
    c.set_model_version_tag(name, new_version, "promotion.champion_since_reason", reason)
    return True


def registry_lock(name: str, timeout_s: float = 900) -> AbstractContextManager[Any]:
    """One promotion or rollback of a registered model at a time, on any worker: a Prefect
    global concurrency limit of 1 slot per model. The MLflow registry has no compare-and-set,
    so racing promotions are serialised here; the loser then finds the challenger already
    champion and records nothing. The limit is created once (read first: creating an existing
    one makes the server log a constraint error)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    key = "labelwise-registry-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)
    with get_client(sync_client=True) as c:
        try:
            c.read_global_concurrency_limit_by_name(key)
        except ObjectNotFound:
            # a concurrent first promotion may create it between the read and here
            with contextlib.suppress(ObjectAlreadyExists):
                c.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=key, limit=1))
    return concurrency(key, occupy=1, timeout_seconds=timeout_s, strict=True)


def evaluate_version(
    cfg: Config, model_dir: str, data_path: str, labels: list[str] | None = None
) -> Evaluation:
    """Aggregate and per-label metrics of a model directory on a labelled table (on
    ``labels`` alone when given); ``labels`` of the result: all the model's labels."""
    from labelwise.engine.metrics import evaluate, per_label_table
    from labelwise.pipeline.tables import load_classifier, score_table

    clf = load_classifier(model_dir)
    Y, S, P = score_table(cfg, clf, data_path, labels)
    return Evaluation(
        metrics=evaluate(Y, P, S),
        per_label=per_label_table(Y, P, None, labels or clf.labels_),
        labels=tuple(clf.labels_),
    )


def record_promotion(
    cfg: Config,
    versions: tuple[str, str],
    evaluations: tuple[Evaluation, Evaluation],
    decision: Decision,
    data_path: str,
) -> PromotionRecord:
    """The promotion run (both evaluations, the rule as params, the decision) and, when the
    gate passed, the champion alias moved; both versions tagged with the verdict."""
    champ_v, chal_v = versions
    c, name = client(cfg), cfg.registered_model
    experiment = experiment_id(cfg, f"{cfg.experiment}-promotion", promotion_view(cfg))
    tags = {"champion.version": champ_v, "challenger.version": chal_v, "promotion.data": data_path}
    rule = {f"rule.{k}": str(v) for k, v in cfg.promotion.__dict__.items()}
    start = lambda: create_run(cfg, experiment, f"v{chal_v}-vs-v{champ_v}", tags, rule)  # noqa: E731
    with tracked_run(cfg, start) as run_id:
        values = {
            f"{who}/{k}": v
            for who, ev in zip(("champion", "challenger"), evaluations, strict=True)
            for k, v in ev.metrics.items()
        }
        log_metrics(c, run_id, values)
        reasons = decision.reasons
        moved = decision.promote and move_champion(
            tracking_uri(cfg), name, chal_v, champ_v, f"promotion run {run_id}"
        )
        if decision.promote and not moved:
            lost_race = "champion changed during this promotion (another promotion won the race)"
            reasons = (*reasons, f"{lost_race}; nothing moved")
        verdict = f"promoted v{chal_v} over v{champ_v}"
        if not moved:
            verdict = f"kept v{champ_v}; v{chal_v} refused"
        record = decision.as_json() | {"decision": verdict, "promote": bool(moved)}
        record |= {"reasons": reasons, "run_id": run_id}
        c.log_dict(run_id, record, "promotion/decision.json")
        c.set_tag(run_id, "promotion.decision", verdict)
        for v in versions:
            c.set_model_version_tag(name, v, "promotion.decision", verdict)
            c.set_model_version_tag(name, v, "promotion.reasons", json.dumps(reasons)[:5000])
            c.set_model_version_tag(name, v, "promotion.run_id", run_id)
    return PromotionRecord(
        promote=bool(moved),
        champion=chal_v if moved else champ_v,
        reasons=tuple(reasons),
        verdict=verdict,
        run_id=run_id,
    )


def roll_back(cfg: Config) -> Rollback:
    """Put the previous champion back. The version rolled back loses ``challenger`` and is
    tagged rejected, so no later promotion brings it back unasked; the version that returns
    sheds the reasons of the promotion it had lost."""
    from labelwise.engine.errors import RegistryError

    uri, name = tracking_uri(cfg), cfg.registered_model
    current = resolve_version(uri, f"models:/{name}@{CHAMPION}")
    history = champion_history(uri, name)
    if not history:
        rolled = [
            str(v.version)
            for v in client(cfg).search_model_versions(f"name='{name}'")
            if REJECTED_TAG in (v.tags or {})
        ]
        why = (
            f"earlier rollbacks used the champion history up (rolled back: "
            f"{', '.join('v' + v for v in sorted(rolled, key=int))}); `labelwise promote "
            "--include-rejected` brings the newest of them back"
            if rolled
            else "no promotion has moved the champion yet"
        )
        raise RegistryError(
            f"{name}: no earlier champion to roll back to from v{current.version} ({why})"
        )
    c = client(cfg)
    previous = _last_existing(c, name, history)
    c.set_registered_model_alias(name, CHAMPION, previous)
    c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    reason = f"rolled back: champion returned to v{previous}"
    if CHALLENGER in (current.aliases or []):
        c.delete_registered_model_alias(name, CHALLENGER)
    c.set_model_version_tag(name, current.version, "promotion.decision", reason)
    c.set_model_version_tag(name, current.version, REJECTED_TAG, reason)
    c.set_model_version_tag(
        name,
        previous,
        "promotion.decision",
        f"champion again after rollback from v{current.version}",
    )
    for tag in ("promotion.reasons", "promotion.run_id", REJECTED_TAG):
        if tag in (c.get_model_version(name, previous).tags or {}):
            c.delete_model_version_tag(name, previous, tag)
    print(f"{name}: champion v{current.version} -> v{previous}")
    return Rollback(champion=previous, previous=str(current.version))


def _last_existing(c: Any, name: str, history: list[str]) -> str:
    """Pop the most recent earlier champion that still exists (a deleted version is skipped,
    and said so); ``history`` keeps what is left."""
    from mlflow.exceptions import MlflowException

    from labelwise.engine.errors import RegistryError

    while history:
        version = history.pop()
        try:
            c.get_model_version(name, version)
            return version
        except MlflowException:
            print(f"{name}: earlier champion v{version} was deleted; skipping it")
    raise RegistryError(
        f"{name}: every earlier champion has been deleted; nothing to roll "
        "back to (promote a version instead)"
    )
