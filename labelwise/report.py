"""An evaluation report on disk: metrics JSON, per-label table, thresholds, and plots.

Pure engine code (numpy, polars, matplotlib); the tracking task uploads the folder to MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from labelwise.metrics import evaluate, label_statistics, per_label_table


def write_report(out: Path, Y: np.ndarray, S: np.ndarray, thresholds: np.ndarray,
                 labels: list[str], at_least_one: bool = False, prefix: str = "test",
                 plots: bool = True) -> dict[str, Any]:
    """Evaluate probabilities ``S`` against ``Y``; write files into ``out``; return metrics."""
    from labelwise.thresholds import apply_thresholds

    out.mkdir(parents=True, exist_ok=True)
    P = apply_thresholds(S, thresholds, at_least_one)
    metrics = evaluate(Y, P, S)
    table = pl.DataFrame(per_label_table(Y, P, S, labels)).with_columns(
        pl.Series("threshold", np.asarray(thresholds, dtype=np.float64)),
        pl.Series("prevalence", Y.mean(axis=0).astype(np.float64)))
    table.write_csv(out / f"{prefix}_per_label.csv")
    stats = label_statistics(Y)
    (out / f"{prefix}_metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "thresholds.json").write_text(json.dumps(dict(zip(labels, map(float, thresholds),
                                                             strict=True)), indent=1))
    summary = {k: v for k, v in stats.items() if k not in ("cooccurrence", "prevalence")}
    (out / f"{prefix}_label_statistics.json").write_text(json.dumps(summary, indent=1))
    if plots:
        write_plots(out, Y, S, table, stats["cooccurrence"], labels, prefix)
    return {"metrics": metrics, "table": table}


def write_plots(out: Path, Y: np.ndarray, S: np.ndarray, table: pl.DataFrame,
                cooc: np.ndarray, labels: list[str], prefix: str, max_labels: int = 40) -> None:
    """Per-label F1 bars, PR curves, F1-vs-threshold curves, co-occurrence, frequencies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # most frequent labels first: the plots stay readable with hundreds of labels
    order = np.argsort(-Y.sum(axis=0), kind="stable")[:max_labels]
    names = [labels[j] for j in order]
    f1 = table.get_column("f1").to_numpy()[order]
    thr = table.get_column("threshold").to_numpy()[order]

    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(order)), 4))
    ax.bar(range(len(order)), f1, color="#3b7dd8")
    ax.set_xticks(range(len(order)), names, rotation=90, fontsize=7)
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.set_title(f"{prefix}: per-label F1 (most frequent {len(order)} labels)")
    fig.tight_layout()
    fig.savefig(out / f"{prefix}_per_label_f1.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(order)), 4))
    freq = Y.mean(axis=0)[order]
    ax.bar(range(len(order)), freq, color="#6aa84f")
    ax.set_xticks(range(len(order)), names, rotation=90, fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title(f"{prefix}: label frequencies")
    fig.tight_layout()
    fig.savefig(out / f"{prefix}_label_frequencies.png", dpi=110)
    plt.close(fig)

    k = min(8, len(order))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    grid = np.linspace(0.0, 1.0, 101)
    for j, name, t in zip(order[:k], names[:k], thr[:k], strict=True):
        y, s = Y[:, j].astype(bool), S[:, j]
        if y.sum() == 0:
            continue
        o = np.argsort(-s, kind="stable")
        tp = np.cumsum(y[o])
        prec, rec = tp / np.arange(1, len(y) + 1), tp / y.sum()
        axes[0].plot(rec, prec, label=name, lw=1)
        pred = s[None, :] >= grid[:, None]
        tpg = (pred & y).sum(axis=1)
        f1g = 2 * tpg / np.maximum(pred.sum(axis=1) + y.sum(), 1)
        line = axes[1].plot(grid, f1g, lw=1, label=name)[0]
        axes[1].axvline(t, color=line.get_color(), ls=":", lw=0.8)
    axes[0].set(xlabel="recall", ylabel="precision", title="precision-recall curves")
    axes[1].set(xlabel="threshold", ylabel="F1", title="F1 vs threshold (dotted: chosen)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"{prefix}_pr_and_threshold_curves.png", dpi=110)
    plt.close(fig)

    sub = cooc[np.ix_(order, order)].astype(np.float64)
    diag = np.maximum(np.diag(sub), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(sub / diag[:, None], cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(order)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(order)), names, fontsize=6)
    ax.set_title("P(column label | row label)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out / f"{prefix}_label_cooccurrence.png", dpi=110)
    plt.close(fig)
