"""An evaluation report on disk: metrics JSON, per-label table, thresholds, and plots.

Pure engine code (numpy, polars, matplotlib); the tracking task uploads the folder to MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from labelwise.engine.metrics import (
    cooccurrence,
    evaluate,
    label_statistics,
    most_frequent,
    per_label_table,
)
from labelwise.engine.sparse import column_means


def write_report(
    out: Path,
    Y: Any,
    S: Any,
    thresholds: np.ndarray,
    labels: list[str],
    at_least_one: bool = False,
    prefix: str = "test",
    plots: bool = True,
) -> dict[str, Any]:
    """Evaluate probabilities ``S`` against ``Y`` (each dense or scipy sparse); write files
    into ``out``; return metrics."""
    from labelwise.engine.thresholds import apply_thresholds

    out.mkdir(parents=True, exist_ok=True)
    P = apply_thresholds(S, thresholds, at_least_one)
    metrics = evaluate(Y, P, S)
    table = pl.DataFrame(per_label_table(Y, P, S, labels)).with_columns(
        pl.Series("threshold", np.asarray(thresholds, dtype=np.float64)),
        pl.Series("prevalence", column_means(Y)),
    )
    table.with_columns(pl.col(pl.Float64).round(4)).write_csv(out / f"{prefix}_per_label.csv")
    # the same at full precision, typed, for tables of 100,000 labels read back by a program
    table.write_parquet(out / f"{prefix}_per_label.parquet")
    stats = label_statistics(Y)
    (out / f"{prefix}_metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "thresholds.json").write_text(
        json.dumps(dict(zip(labels, map(float, thresholds), strict=True)), indent=1)
    )
    summary = {k: v for k, v in stats.items() if k != "prevalence"}
    (out / f"{prefix}_label_statistics.json").write_text(json.dumps(summary, indent=1))
    if plots:
        write_plots(out, Y, S, table, labels, prefix)
    return {"metrics": metrics, "table": table}


def write_plots(
    out: Path,
    Y: Any,
    S: Any,
    table: pl.DataFrame,
    labels: list[str],
    prefix: str,
    max_labels: int = 40,
) -> None:
    """Per-label F1 bars, PR curves, F1-vs-threshold curves, co-occurrence, frequencies."""
    import matplotlib

    matplotlib.use("Agg")
    # most frequent labels first: the plots stay readable with hundreds of labels
    order = most_frequent(Y, max_labels)
    names = [labels[j] for j in order]
    f1 = table.get_column("f1").to_numpy()[order]
    which = (
        f"all {len(labels)} labels"
        if len(order) == len(labels)
        else f"the {len(order)} most frequent of {len(labels)} labels"
    )
    support = np.asarray(Y.sum(axis=0, dtype=np.int64)).ravel()[order]
    Y_shown = Y[:, order]  # a few columns: dense even when the labels are sparse
    Y_shown = Y_shown.toarray() if sp.issparse(Y_shown) else np.asarray(Y_shown)
    _bars(
        out / f"{prefix}_per_label_f1.png",
        names,
        f1,
        "F1",
        f"per-label F1 on the {prefix} split, {which}",
        "#3b7dd8",
        (0, 1.1),
        [f"{v:.2f}\nn={n}" for v, n in zip(f1, support, strict=True)],
    )
    share = column_means(Y)[order]
    _bars(
        out / f"{prefix}_label_frequencies.png",
        names,
        share,
        "share of rows",
        f"label frequencies on the {prefix} split, {which}",
        "#6aa84f",
        None,
        [f"{n}" for n in support],
    )
    thr = table.get_column("threshold").to_numpy()[order]
    S_shown = S[:, order]  # a few columns: dense even when the scores are sparse
    S_shown = S_shown.toarray() if sp.issparse(S_shown) else S_shown
    _curves(out / f"{prefix}_pr_and_threshold_curves.png", Y_shown, S_shown, names, thr)
    _cooccurrence(out / f"{prefix}_label_cooccurrence.png", cooccurrence(Y_shown), names)


def _bars(
    path: Path,
    names: list[str],
    values: np.ndarray,
    ylabel: str,
    title: str,
    color: str,
    ylim: tuple[float, float] | None = None,
    notes: list[str] | None = None,
) -> None:
    """Bars with their value (and support) written above each, readable at 100% zoom."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(7, 0.45 * len(names)), 4.5))
    bars = ax.bar(range(len(names)), values, color=color)
    if notes:
        ax.bar_label(bars, labels=notes, fontsize=7, padding=2)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curves(
    path: Path, Y: np.ndarray, S: np.ndarray, names: list[str], thresholds: np.ndarray, k: int = 8
) -> None:
    """Precision-recall and F1-vs-threshold curves of the first ``k`` labels."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    grid = np.linspace(0.0, 1.0, 101)
    for j in range(min(k, len(names))):
        y, s = Y[:, j].astype(bool), S[:, j]
        if y.sum() == 0:
            continue
        tp = np.cumsum(y[np.argsort(-s, kind="stable")])
        # a line of at most ~1,000 points looks the same and draws in milliseconds
        at = np.unique(np.linspace(0, len(y) - 1, min(len(y), 1000)).astype(np.int64))
        axes[0].plot(tp[at] / y.sum(), tp[at] / (at + 1), label=names[j], lw=1)
        # rows scoring >= each grid threshold, all and true ones, by binary search
        n_pred = len(s) - np.searchsorted(np.sort(s), grid, side="left")
        n_tp = y.sum() - np.searchsorted(np.sort(s[y]), grid, side="left")
        f1g = 2 * n_tp / np.maximum(n_pred + y.sum(), 1)
        line = axes[1].plot(grid, f1g, lw=1, label=names[j])[0]
        axes[1].axvline(thresholds[j], color=line.get_color(), ls=":", lw=0.8)
    axes[0].set(xlabel="recall", ylabel="precision", title="precision-recall curves")
    axes[1].set(xlabel="threshold", ylabel="F1", title="F1 vs threshold (dotted: chosen)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cooccurrence(path: Path, cooc: np.ndarray, names: list[str]) -> None:
    import matplotlib.pyplot as plt

    sub = cooc.astype(np.float64)
    diag = np.maximum(np.diag(sub), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(sub / diag[:, None], cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_title("P(column label | row label)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
