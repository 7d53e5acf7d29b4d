"""What a run and a registry version say of themselves in markdown, and how a new model
compares with the current champion (its metrics and its label set)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from labelwise.pipeline.config import Config
from labelwise.pipeline.records import Snapshot

if TYPE_CHECKING:
    pass
from labelwise.tasks.registry import (
    CHAMPION,
)
from labelwise.tasks.run_views import HEADLINE
from labelwise.tasks.tracking import client


def headline_metrics(cfg: Config, metrics: dict[str, float]) -> list[tuple[str, float]]:
    """The metrics a person compares first: the promotion metric, then the usual ones."""
    names = [cfg.promotion.metric, *(m for m in HEADLINE if m != cfg.promotion.metric)]
    return [(m, metrics[m]) for m in names if m in metrics]


def champion_metrics(cfg: Config) -> tuple[str, dict[str, float]] | None:
    """(version, test metrics) of the current champion, to compare a new run with."""
    from mlflow.exceptions import MlflowException

    c = client(cfg)
    try:
        mv = c.get_model_version_by_alias(cfg.registered_model, CHAMPION)
        if mv.run_id is None:  # registered from outside a run: no metrics to compare
            return None
        run = c.get_run(mv.run_id)
    except MlflowException:
        return None
    prefix = "test/"
    metrics = {k[len(prefix) :]: v for k, v in run.data.metrics.items() if k.startswith(prefix)}
    return str(mv.version), metrics


def label_change_note(cfg: Config, labels: list[str]) -> str | None:
    """Which labels a new model gained and lost against the current champion (read from the
    champion run's ``training/labels.json``), as a warning; None when they are the same or
    there is no champion to compare with."""
    import json
    import tempfile

    from mlflow.exceptions import MlflowException

    from labelwise.engine.promotion import label_changes

    c = client(cfg)
    try:
        mv = c.get_model_version_by_alias(cfg.registered_model, CHAMPION)
        if mv.run_id is None:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = c.download_artifacts(mv.run_id, "training/labels.json", tmp)
            champion = list(json.loads(Path(path).read_text())["label_weights"])
    except (MlflowException, OSError, KeyError, ValueError):
        return None
    lost, gained = label_changes(champion, labels)
    if not (lost or gained):
        return None
    return (
        f"the label set differs from the champion's ({cfg.registered_model} v{mv.version}): "
        f"lost {lost[:20] or 'none'}, gained {gained[:20] or 'none'}; promote compares the "
        "shared labels and refuses the change unless promotion.allow_label_changes is true"
    )


def run_description(
    cfg: Config,
    info: Snapshot,
    metrics: dict[str, float],
    champion: tuple[str, dict[str, float]] | None,
) -> str:
    """The run page's description (markdown): data, rows and labels, headline test metrics and
    their change against the current champion."""
    train, test = info.train, info.test
    data = f"`{_short(train.source)}` ({train.rows} rows"
    if train.window:
        data += f", {train.window}"
    data += (
        f"; test `{_short(test.source)}`, {test.rows} rows)"
        if test is not None
        else f"; test: a {cfg.split.by} split of it)"
    )
    head = "| test metric | this run |" + (
        f" champion v{champion[0]} | change |" if champion else ""
    )
    rule = "|---|---|" + ("---|---|" if champion else "")
    lines = [
        f"**{cfg.name}**: `{cfg.model.preset}` preset, `{cfg.model.strategy}`, weighting "
        f"`{cfg.weighting.scheme}`, config `{cfg.digest()[:6]}`.",
        "",
        f"Data: {data}.",
        "",
        head,
        rule,
    ]
    for m, v in headline_metrics(cfg, metrics):
        row = f"| {m} | {v:.4f} |"
        if champion and m in champion[1]:
            row += f" {champion[1][m]:.4f} | {v - champion[1][m]:+.4f} |"
        elif champion:
            row += " | |"
        lines.append(row)
    return "\n".join(lines)


def _short(source: str) -> str:
    """A source as a description shows it: a path's last two parts, a query's first line."""
    first = source.strip().splitlines()[0] if source.strip() else source
    if "://" in first or " " in first:
        return first[:120]
    return "/".join(Path(first).parts[-2:])


def version_description(cfg: Config, info: Snapshot, metrics: dict[str, float], run_id: str) -> str:
    """What a registry version is, in markdown: what was trained on what, headline metrics."""
    rows = f"{info.train.rows} rows" + (
        f", tested on {info.test.rows}" if info.test is not None else " (split for testing)"
    )
    lines = [
        f"**{cfg.name}** `{cfg.model.preset}` / `{cfg.model.strategy}`, trained on "
        f"`{_short(info.train.source)}` ({rows}); run `{run_id}`.",
        "",
        "| test metric | value |",
        "|---|---|",
    ]
    lines += [f"| {m} | {v:.4f} |" for m, v in headline_metrics(cfg, metrics)]
    return "\n".join(lines)
