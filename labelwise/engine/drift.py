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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import numpy as np

from labelwise.engine.sparse import by_columns, column_means, dense_column

EPS = 1e-4  # share given to an empty bin so that ln(q/p) stays finite
PROFILE_FILE = "reference.json"


def histogram(
    values: np.ndarray, bins: int = 10, discrete: bool = False, max_categories: int = 30
) -> dict[str, Any]:
    """Reference bins of ``values`` (NaN = missing) and the share of values in each."""
    v = np.asarray(values, dtype=np.float64)
    present = v[~np.isnan(v)]
    if discrete:
        cats, counts = np.unique(present, return_counts=True)
        keep = cats[np.argsort(-counts, kind="stable")[:max_categories]]
        spec: dict[str, Any] = {"categories": sorted(float(c) for c in keep)}
    else:
        qs = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]) if len(present) else ()
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


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    p = np.maximum(np.asarray(reference, dtype=np.float64), EPS)
    q = np.maximum(np.asarray(current, dtype=np.float64), EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def reference_profile(
    labels: Sequence[str],
    features: Sequence[str],
    X_train: np.ndarray,
    Y_train: np.ndarray,
    S_ref: Any,
    P_ref: Any,
    f1_ref: Sequence[float],
    importance: dict[str, float],
    categorical: Sequence[str] = (),
    top_features: int = 20,
    bins: int = 10,
    held_out: Mapping[str, np.ndarray] | None = None,
    terms: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """What a model saw: ``X_train``/``Y_train`` its training rows (encoded), ``S_ref``/``P_ref``
    its scores / 0-1 predictions on held-out rows, ``f1_ref`` its held-out F1 per label;
    ``held_out``: more profiled columns whose reference is the held-out rows (a text column's
    out-of-vocabulary share is 0 on its own training rows); ``terms``: the important terms'
    0/1 presence on the training rows, profiled besides the ``top_features`` (a term's share
    of documents moves when the topics do, before the document lengths or vocabulary do)."""
    held, present = dict(held_out or {}), dict(terms or {})
    by_importance = sorted([*features, *held], key=lambda f: -importance.get(f, 0.0))
    ranked = by_importance[:top_features] + list(present)
    extra = held | present
    col = {f: i for i, f in enumerate(features)}
    cat = set(categorical) | set(present)
    S_cols = by_columns(S_ref)  # a label tree's scores are sparse: one column at a time

    def values(f: str) -> np.ndarray:
        return extra[f] if f in extra else X_train[:, col[f]]

    return {
        "labels": list(labels),
        "n_train": int(X_train.shape[0]),
        "n_reference": int(S_ref.shape[0]),
        "train_prevalence": column_means(Y_train).tolist(),
        "predicted_prevalence": column_means(P_ref).tolist(),
        "f1": [float(x) for x in f1_ref],
        "scores": [histogram(dense_column(S_cols, j), bins) for j in range(len(labels))],
        "terms": list(present),
        "features": {
            f: histogram(values(f), bins, discrete=f in cat)
            | {"importance": float(importance.get(f, 0.0))}
            for f in ranked
        },
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


class LabelAlert(TypedDict):
    label: str
    why: str


class FeatureAlert(TypedDict):
    feature: str
    why: str


class DriftReport(TypedDict):
    """A batch against the reference profile: a row per label (``label``, prevalences,
    ``score_psi``, with truth ``f1``/``precision``/``recall``/``support``, ``alert``) and per
    profiled feature (``feature``, ``importance``, ``psi``), the alerts, the batch's size.
    A JSON document: logged as the monitoring run's ``report.json``."""

    labels: list[dict[str, Any]]
    features: list[dict[str, Any]]
    alerts: list[LabelAlert]
    feature_alerts: list[FeatureAlert]
    n_rows: int
    has_truth: bool
    unseen_categories: NotRequired[dict[str, int]]


def drift_report(
    profile: dict[str, Any],
    features: Sequence[str],
    X: np.ndarray,
    S: Any,
    P: Any,
    Y: Any = None,
    rules: DriftRules = DriftRules(),
) -> DriftReport:
    """Per-label and per-feature drift of a batch (encoded ``X``, scores ``S``, predictions
    ``P``, optional truth ``Y``; each dense or scipy sparse) against ``profile``; ``alerts``
    lists what crossed ``rules``."""
    from labelwise.engine.metrics import per_label_table

    labels = profile["labels"]
    if S.shape[1] != len(labels):
        raise ValueError(f"{S.shape[1]} score columns for {len(labels)} labels")
    truth = per_label_table(Y, P, S, labels) if Y is not None else None
    S, P, Y = by_columns(S), by_columns(P), None if Y is None else by_columns(Y)
    rows = [
        _label_drift(
            profile,
            j,
            dense_column(S, j),
            dense_column(P, j),
            None if Y is None else dense_column(Y, j),
            None if truth is None else truth[j],
            rules,
        )
        for j in range(len(labels))
    ]
    feat_rows = _feature_drift(profile, features, X)
    return {
        "labels": rows,
        "features": feat_rows,
        "alerts": [{"label": r["label"], "why": r["alert"]} for r in rows if r["alert"]],
        "feature_alerts": [
            {"feature": r["feature"], "why": f"PSI {r['psi']:.2f}"}
            for r in feat_rows
            if r["psi"] > rules.feature_psi
        ],
        "n_rows": int(S.shape[0]),
        "has_truth": truth is not None,
    }


def _shifted(now: float, ref: float, rules: DriftRules) -> bool:
    """A prevalence moved by more than the ratio and the absolute change the rules allow."""
    ratio = (now + EPS) / (ref + EPS)
    return max(ratio, 1 / ratio) > rules.prevalence_ratio and (
        abs(now - ref) >= rules.prevalence_min_change
    )


def _label_drift(
    profile: dict[str, Any],
    j: int,
    s: np.ndarray,
    p: np.ndarray,
    y: np.ndarray | None,
    truth: dict[str, Any] | None,
    rules: DriftRules,
) -> dict[str, Any]:
    """Label ``j``'s row of the report; ``alert`` says why it drifted ("" if it did not)."""
    pred, ref_pred = float(p.mean()), profile["predicted_prevalence"][j]
    row: dict[str, Any] = {
        "label": profile["labels"][j],
        "train_prevalence": profile["train_prevalence"][j],
        "reference_predicted_prevalence": ref_pred,
        "predicted_prevalence": pred,
        "prevalence_ratio": float((pred + EPS) / (ref_pred + EPS)),
        "score_psi": psi(profile["scores"][j]["shares"], shares(profile["scores"][j], s)),
    }
    why = []
    if _shifted(pred, ref_pred, rules):
        why.append(f"predicted prevalence {pred:.4f} vs {ref_pred:.4f}")
    if row["score_psi"] > rules.score_psi:
        why.append(f"score PSI {row['score_psi']:.2f}")
    if y is not None and truth is not None:
        true_prev, ref_true, ref_f1 = float(y.mean()), row["train_prevalence"], profile["f1"][j]
        row |= {"true_prevalence": true_prev, "reference_f1": ref_f1}
        row |= {k: truth[k] for k in ("support", "f1", "precision", "recall")}
        if _shifted(true_prev, ref_true, rules):
            why.append(f"true prevalence {true_prev:.4f} vs {ref_true:.4f} in training")
        noise = 2.5 * np.sqrt(ref_f1 * (1 - ref_f1) / max(truth["support"], 1))
        if truth["support"] >= rules.min_support and ref_f1 - truth["f1"] > max(
            rules.f1_drop, noise
        ):
            why.append(f"F1 {truth['f1']:.4f} vs {ref_f1:.4f}")
    row["alert"] = "; ".join(why)
    return row


def _feature_drift(
    profile: dict[str, Any], features: Sequence[str], X: np.ndarray
) -> list[dict[str, Any]]:
    """PSI of each profiled feature present in the batch."""
    col = {f: i for i, f in enumerate(features)}
    return [
        {
            "feature": f,
            "importance": spec.get("importance", 0.0),
            "psi": psi(spec["shares"], shares(spec, X[:, col[f]])),
        }
        for f, spec in profile["features"].items()
        if f in col
    ]
