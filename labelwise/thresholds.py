"""Per-label decision thresholds, chosen on held-out probabilities.

0.5 is rarely the right cut for an imbalanced label. For each label the candidates are the
distinct held-out probabilities; one sort and two cumulative sums give TP and FP at every cut,
so the sweep is exact and O(n log n) per label (no grid).

Objectives: ``f1``, ``fbeta`` (with ``beta``), ``precision`` (reach ``target`` precision with the
most recall) and ``recall`` (reach ``target`` recall with the most precision).

A label with few held-out positives has a noisy best cut, so its threshold shrinks toward the
global one: ``t = (p * t_label + k * t_global) / (p + k)`` with ``p`` positives and ``k =
shrinkage``. Per-label cuts maximise each label's F1 (macro-F1); the global cut maximises
micro-F1; ``k = 30`` was the measured compromise on the benchmark datasets (yeast: k=10 gave
micro/macro .637/.480, k=30 .652/.470, k=100 .671/.466; enron: .609/.231, .620/.216,
.624/.203). The global threshold is the best single cut for all labels pooled (micro-average);
``mode="global"`` uses it for every label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelwise.errors import ConfigError

OBJECTIVES = ("f1", "fbeta", "precision", "recall")


@dataclass(frozen=True)
class ThresholdPolicy:
    """How thresholds are chosen. See the module docstring for the meaning of each field."""

    objective: str = "f1"
    beta: float = 1.0
    target: float | None = None
    mode: str = "per_label"  # per_label | global | fixed
    shrinkage: float = 30.0
    fixed: float = 0.5
    at_least_one: bool = False

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"threshold objective must be one of {OBJECTIVES}, got "
                              f"{self.objective!r}")
        if self.mode not in ("per_label", "global", "fixed"):
            raise ConfigError(f"threshold mode must be per_label, global or fixed, got "
                              f"{self.mode!r}")
        if self.objective in ("precision", "recall") and (
                self.target is None or not 0 < self.target <= 1):
            raise ConfigError(f"threshold objective {self.objective!r} needs a target in (0, 1]")
        if not 0 <= self.fixed <= 1:
            raise ConfigError(f"fixed threshold must be in [0, 1], got {self.fixed}")
        if self.beta <= 0 or self.shrinkage < 0:
            raise ConfigError("threshold beta must be > 0 and shrinkage >= 0")


def _sweep(y: np.ndarray, p: np.ndarray, policy: ThresholdPolicy) -> tuple[float, float]:
    """Best cut for one label (or a pooled vector): (threshold, score)."""
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return policy.fixed, float("nan")
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order].astype(np.float64)
    # last index of each run of equal scores: cutting there predicts that score and all above
    last = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    tp = np.cumsum(ys)[last]
    fp = (last + 1) - tp
    fn = n_pos - tp
    if policy.objective in ("f1", "fbeta"):
        b2 = 1.0 if policy.objective == "f1" else policy.beta ** 2
        score = (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp)
        best = int(np.argmax(score))
    else:
        precision = tp / (tp + fp)
        recall = tp / n_pos
        if policy.objective == "precision":
            ok = precision >= policy.target
            score = np.where(ok, recall, -1.0)
        else:
            ok = recall >= policy.target
            score = np.where(ok, precision, -1.0)
        if not ok.any():
            best = int(np.argmax(precision if policy.objective == "precision" else recall))
            score = np.where(np.arange(len(score)) == best, 0.0, -1.0)
        best = int(np.argmax(score))
    # threshold halfway between the chosen score and the next lower one: robust to ties / noise
    hi = ps[last[best]]
    lo = ps[last[best] + 1] if last[best] + 1 < len(ps) else hi - 1e-6
    return float(np.clip((hi + lo) / 2.0, 0.0, 1.0)), float(score[best])


def fit_thresholds(Y: np.ndarray, P: np.ndarray, policy: ThresholdPolicy | None = None
                   ) -> np.ndarray:
    """Thresholds (float64, length L) from held-out labels ``Y`` and probabilities ``P``."""
    policy = policy or ThresholdPolicy()
    Y = np.asarray(Y)
    P = np.asarray(P, dtype=np.float64)
    n_labels = Y.shape[1]
    if policy.mode == "fixed":
        return np.full(n_labels, policy.fixed)
    t_global, _ = _sweep(Y.ravel(), P.ravel(), policy)
    if policy.mode == "global":
        return np.full(n_labels, t_global)
    out = np.empty(n_labels)
    for j in range(n_labels):
        t, _ = _sweep(Y[:, j], P[:, j], policy)
        pos = float(Y[:, j].sum())
        if not np.isfinite(_) or pos == 0:
            out[j] = t_global
            continue
        w = pos / (pos + policy.shrinkage) if policy.shrinkage > 0 else 1.0
        out[j] = w * t + (1 - w) * t_global
    return out


PROBA_PREFIX = "p:"  # scored tables: one probability column per label, "p:<label>"
LABELS_COLUMN = "labels"  # ...and the predicted label set


def label_sets(pred: np.ndarray, labels: list[str]) -> list[list[str]]:
    """The predicted label names of each row of a 0/1 matrix."""
    names = np.asarray(labels, dtype=object)
    return [names[row.astype(bool)].tolist() for row in pred]


def apply_thresholds(P: np.ndarray, thresholds: np.ndarray, at_least_one: bool = False
                     ) -> np.ndarray:
    """0/1 predictions (uint8). With ``at_least_one``, an empty row gets the label whose
    probability is highest relative to its threshold."""
    P = np.asarray(P)
    t = np.asarray(thresholds)
    pred = (t <= P).astype(np.uint8)
    if at_least_one and P.shape[1]:
        empty = pred.sum(axis=1) == 0
        if empty.any():
            rel = P[empty] / np.maximum(t, 1e-12)
            pred[np.flatnonzero(empty), np.argmax(rel, axis=1)] = 1
    return pred
