"""Label-wise drift: a new batch against the reference profile of the data a model was made on.

A *reference profile* is saved next to the model when it is trained: per label, the training
prevalence, the predicted prevalence and a histogram of the scores on held-out rows, the held-out
F1; per important feature, a histogram of its training values. A batch is then compared bin by
bin with the population stability index

    PSI = sum_b (q_b - p_b) * ln(q_b / p_b)      (p: reference share of bin b, q: batch share)

read by the usual rule of thumb: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a
major one. Bins are reference quantiles (numeric) or categories (categorical codes); missing
values have their own bin, so a feature that starts arriving empty drifts too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EPS = 1e-4  # share given to an empty bin so that ln(q/p) stays finite
PROFILE_FILE = "reference.json"


def histogram(values: np.ndarray, bins: int = 10, discrete: bool = False,
              max_categories: int = 30) -> dict[str, Any]:
    """Reference bins of ``values`` (NaN = missing) and the share of values in each."""
    v = np.asarray(values, dtype=np.float64)
    present = v[~np.isnan(v)]
    if discrete:
        cats, counts = np.unique(present, return_counts=True)
        keep = cats[np.argsort(-counts, kind="stable")[:max_categories]]
        spec: dict[str, Any] = {"categories": sorted(float(c) for c in keep)}
    else:
        qs = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]) if len(present) else []
        spec = {"edges": sorted({float(q) for q in qs})}
    spec["shares"] = shares(spec, v).tolist()
    return spec


def shares(spec: dict[str, Any], values: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin of ``spec`` (last bin: missing; categorical: one before
    it holds the values not among the reference categories)."""
    v = np.asarray(values, dtype=np.float64)
    missing = np.isnan(v)
    if "categories" in spec:
        cats = np.asarray(spec["categories"], dtype=np.float64)
        pos = np.searchsorted(cats, v[~missing])
        if len(cats):
            hit = (pos < len(cats)) & (cats[np.minimum(pos, len(cats) - 1)] == v[~missing])
            idx = np.where(hit, pos, len(cats))
        else:  # the reference had only missing values: everything present is "other"
            idx = np.zeros(len(pos), dtype=np.int64)
        n_bins = len(cats) + 1
    else:
        idx = np.searchsorted(np.asarray(spec["edges"]), v[~missing], side="right")
        n_bins = len(spec["edges"]) + 1
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    counts = np.append(counts, missing.sum())
    return counts / max(len(v), 1)


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    p = np.maximum(np.asarray(reference, dtype=np.float64), EPS)
    q = np.maximum(np.asarray(current, dtype=np.float64), EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def reference_profile(labels: Sequence[str], features: Sequence[str], X_train: np.ndarray,
                      Y_train: np.ndarray, S_ref: np.ndarray, P_ref: np.ndarray,
                      f1_ref: Sequence[float], importance: dict[str, float],
                      categorical: Sequence[str] = (), top_features: int = 20,
                      bins: int = 10) -> dict[str, Any]:
    """What a model saw: ``X_train``/``Y_train`` its training rows (encoded), ``S_ref``/``P_ref``
    its scores / 0-1 predictions on held-out rows, ``f1_ref`` its held-out F1 per label."""
    ranked = sorted(features, key=lambda f: -importance.get(f, 0.0))[:top_features]
    col = {f: i for i, f in enumerate(features)}
    cat = set(categorical)
    return {
        "labels": list(labels),
        "n_train": int(X_train.shape[0]), "n_reference": int(S_ref.shape[0]),
        "train_prevalence": Y_train.mean(axis=0).tolist(),
        "predicted_prevalence": P_ref.mean(axis=0).tolist(),
        "f1": [float(x) for x in f1_ref],
        "scores": [histogram(S_ref[:, j], bins) for j in range(len(labels))],
        "features": {f: histogram(X_train[:, col[f]], bins, discrete=f in cat) | {
            "importance": float(importance.get(f, 0.0))} for f in ranked},
    }


@dataclass(frozen=True)
class DriftRules:
    """When a batch counts as drifted. ``prevalence_ratio``: predicted prevalence more than this
    many times above or below the reference's (and off by at least ``prevalence_min_change``);
    with truth, the same limits apply to the true prevalence against the training prevalence
    (label shift); ``score_psi`` / ``feature_psi``: PSI above this; ``f1_drop``: batch F1 below
    the held-out F1 by more than this and by more than 2.5 standard errors of an F1 measured on
    that many positives (small batches are noisy), on labels with at least ``min_support``
    positives in the batch."""

    prevalence_ratio: float = 2.0
    prevalence_min_change: float = 0.02
    score_psi: float = 0.25
    feature_psi: float = 0.25
    f1_drop: float = 0.15
    min_support: int = 20


def drift_report(profile: dict[str, Any], features: Sequence[str], X: np.ndarray,
                 S: np.ndarray, P: np.ndarray, Y: np.ndarray | None = None,
                 rules: DriftRules = DriftRules()) -> dict[str, Any]:
    """Per-label and per-feature drift of a batch (encoded ``X``, scores ``S``, predictions
    ``P``, optional truth ``Y``) against ``profile``; ``alerts`` lists what crossed ``rules``."""
    from labelwise.metrics import per_label_table

    labels = profile["labels"]
    if S.shape[1] != len(labels):
        raise ValueError(f"{S.shape[1]} score columns for {len(labels)} labels")
    pred_prev = P.mean(axis=0)
    truth = per_label_table(Y, P, S, labels) if Y is not None else None
    rows, alerts = [], []
    for j, lab in enumerate(labels):
        ref_pred = profile["predicted_prevalence"][j]
        ratio = (pred_prev[j] + EPS) / (ref_pred + EPS)
        row: dict[str, Any] = {
            "label": lab, "train_prevalence": profile["train_prevalence"][j],
            "reference_predicted_prevalence": ref_pred,
            "predicted_prevalence": float(pred_prev[j]), "prevalence_ratio": float(ratio),
            "score_psi": psi(profile["scores"][j]["shares"], shares(profile["scores"][j],
                                                                     S[:, j])),
        }
        why = []
        if (max(ratio, 1 / ratio) > rules.prevalence_ratio
                and abs(pred_prev[j] - ref_pred) >= rules.prevalence_min_change):
            why.append(f"predicted prevalence {pred_prev[j]:.3f} vs {ref_pred:.3f}")
        if row["score_psi"] > rules.score_psi:
            why.append(f"score PSI {row['score_psi']:.2f}")
        if truth is not None:
            t = truth[j]
            row |= {"true_prevalence": float(Y[:, j].mean()), "support": t["support"],
                    "f1": t["f1"], "precision": t["precision"], "recall": t["recall"],
                    "reference_f1": profile["f1"][j]}
            true_prev, ref_true = float(Y[:, j].mean()), profile["train_prevalence"][j]
            t_ratio = (true_prev + EPS) / (ref_true + EPS)
            if (max(t_ratio, 1 / t_ratio) > rules.prevalence_ratio
                    and abs(true_prev - ref_true) >= rules.prevalence_min_change):
                why.append(f"true prevalence {true_prev:.3f} vs {ref_true:.3f} in training")
            ref_f1 = profile["f1"][j]
            drop = ref_f1 - t["f1"]
            noise = 2.5 * np.sqrt(ref_f1 * (1 - ref_f1) / max(t["support"], 1))
            if t["support"] >= rules.min_support and drop > max(rules.f1_drop, noise):
                why.append(f"F1 {t['f1']:.3f} vs {ref_f1:.3f}")
        row["alert"] = "; ".join(why)
        if why:
            alerts.append({"label": lab, "why": row["alert"]})
        rows.append(row)
    col = {f: i for i, f in enumerate(features)}
    feat_rows, feat_alerts = [], []
    for f, spec in profile["features"].items():
        if f not in col:
            continue
        value = psi(spec["shares"], shares(spec, X[:, col[f]]))
        feat_rows.append({"feature": f, "importance": spec.get("importance", 0.0),
                          "psi": value})
        if value > rules.feature_psi:
            feat_alerts.append({"feature": f, "why": f"PSI {value:.2f}"})
    return {"labels": rows, "features": feat_rows, "alerts": alerts,
            "feature_alerts": feat_alerts, "n_rows": int(S.shape[0]),
            "has_truth": truth is not None}
