"""Per-label decision thresholds, chosen on held-out probabilities.

0.5 is rarely the right cut for an imbalanced label. For each label the candidates are the
distinct held-out probabilities; one sort and two cumulative sums give TP and FP at every cut,
so the sweep is exact and O(n log n) per label (no grid).

Objectives: ``f1``, ``fbeta`` (with ``beta``), ``precision`` (reach ``target`` precision with the
most recall) and ``recall`` (reach ``target`` recall with the most precision).

A label's best cut on held-out rows is noisy (most of all with few positives), so it shrinks
toward a steadier target cut: ``t = (p * t_label + k * t_target) / (p + k)`` with ``p`` held-out
positives and ``k = shrinkage``. Targets (``shrink_to``):

``global``
    The best single cut for all labels pooled (micro-F1). A rare label's probabilities may never
    reach it, so the label is never predicted (F1 0, which macro-F1 counts in full).
``rate``
    The label's rate cut: it predicts as many held-out rows as the label has positives (the
    point where precision equals recall). It depends only on the label's own ranking.
``lower`` (default)
    The lower of the two: a rare label gets its rate cut, a frequent label whose rate cut lies
    above the global one keeps the global one's recall.

``lower`` with ``k = 1000`` (the label's own cut gets half the weight at 1,000 positives) is
the default: it kept micro-F1 and raised macro-F1 against ``global`` (benchmarks/RESULTS.md,
"Threshold policies").
``mode="global"`` uses the global cut for every label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from labelwise.engine.errors import ConfigError, DataError
from labelwise.engine.params import Constraint, Interval, Options, check_params

OBJECTIVES = ("f1", "fbeta", "precision", "recall")
MODES = ("per_label", "global", "fixed")
TARGETS = ("global", "rate", "lower")


@dataclass(frozen=True)
class ThresholdPolicy:
    """How per-label thresholds are chosen on held-out probabilities.

    objective : "f1" | "fbeta" | "precision" | "recall"
        What each label's cut maximises (see the module docstring).
    beta : float > 0
        The F-beta weight of recall (``objective="fbeta"``).
    target : float in (0, 1] or None
        The precision or recall to reach (``objective="precision" | "recall"``).
    mode : "per_label" | "global" | "fixed"
        A cut per label (shrunk toward the global one), one pooled cut, or ``fixed`` for all.
    shrinkage : float >= 0
        ``k`` of the shrinkage toward the target cut (0: none).
    shrink_to : "global" | "rate" | "lower"
        The target cut of the shrinkage (see the module docstring).
    fixed : float in [0, 1]
        The cut of ``mode="fixed"`` and of labels without held-out rows.
    at_least_one : bool
        Give a row with no predicted label the one closest to its threshold.
    """

    # read by the YAML loader (pydantic): an unknown key is an error, not a silent default
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    objective: str = "f1"
    beta: float = 1.0
    target: float | None = None
    mode: str = "per_label"
    shrinkage: float = 1000.0
    shrink_to: str = "lower"
    fixed: float = 0.5
    at_least_one: bool = False

    _constraints: ClassVar[dict[str, list[Constraint]]] = {
        "objective": [Options(OBJECTIVES)],
        "beta": [Interval(float, 0, None, closed="neither")],
        "target": [None, Interval(float, 0, 1, closed="right")],
        "mode": [Options(MODES)],
        "shrinkage": [Interval(float, 0, None)],
        "shrink_to": [Options(TARGETS)],
        "fixed": [Interval(float, 0, 1)],
        "at_least_one": [bool],
    }

    def __post_init__(self) -> None:
        check_params(asdict(self), self._constraints)
        if self.objective in ("precision", "recall") and self.target is None:
            raise ConfigError(
                f"threshold objective {self.objective!r} needs a target in (0, 1]", param="target"
            )


@dataclass(frozen=True)
class _Ranked:
    """Held-out scores of one label (or all labels pooled) sorted once: TP and FP at every
    distinct cut, shared by every cut objective."""

    runs: np.ndarray  # the distinct scores, descending: a cut predicts a run and all above
    count: np.ndarray  # rows at or above each run
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int

    @classmethod
    def of(cls, y: np.ndarray, p: np.ndarray) -> _Ranked | None:
        """None when ``y`` is all 0 or all 1 (no cut to choose). Rows scored 0 (a label tree
        leaves most of 20,000 labels at 0, unsearched) are one run, counted, not sorted:
        sorting them cost gigabytes."""
        n_pos, n = int(y.sum()), len(y)
        zero = p == 0
        if zero.any() and (p >= 0).all():
            y, p = y[~zero], p[~zero]
        return cls.scored(y, p, n, n_pos)

    @classmethod
    def scored(cls, y: np.ndarray, p: np.ndarray, n: int, n_pos: int) -> _Ranked | None:
        """The same from the scored rows alone (``y`` and ``p`` of the rows a sparse score
        matrix stores): the other ``n - len(p)`` rows score 0, ``n_pos`` rows in all are
        positive."""
        if n_pos == 0 or n_pos == n:
            return None
        order = np.argsort(-p, kind="stable")
        ps = p[order]
        last = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True]) if len(ps) else np.zeros(0, np.int64)
        tp = np.cumsum(y[order], dtype=np.float64)[last]
        runs, count = ps[last], last + 1
        if len(ps) < n:  # the rows scored 0, last
            runs, count = np.r_[runs, 0.0], np.r_[count, n]
            tp = np.r_[tp, float(n_pos)]
        return cls(runs, count, tp, count - tp, n_pos)

    def score_at(self, k: int) -> float:
        """The score of the row ranked ``k`` (0: the highest)."""
        return float(self.runs[np.searchsorted(self.count, k + 1)])

    def rate_cut(self) -> float:
        """Halfway between the ``n_pos``-th and the next highest score: it predicts as many
        rows as there are positives."""
        return _between(self.score_at(self.n_pos - 1), self.score_at(self.n_pos))


def _sweep(y: np.ndarray, p: np.ndarray, policy: ThresholdPolicy) -> tuple[float, float]:
    """Best cut for one label (or a pooled vector): (threshold, score)."""
    ranked = _Ranked.of(y, p)
    return (policy.fixed, float("nan")) if ranked is None else _best(ranked, policy)


def _best(r: _Ranked, policy: ThresholdPolicy) -> tuple[float, float]:
    tp, fp = r.tp, r.fp
    if policy.objective in ("f1", "fbeta"):
        b2 = 1.0 if policy.objective == "f1" else policy.beta**2
        score = (1 + b2) * tp / ((1 + b2) * tp + b2 * (r.n_pos - tp) + fp)
        best = int(np.argmax(score))
    else:
        precision = tp / (tp + fp)
        recall = tp / r.n_pos
        target = float(policy.target or 0.0)  # set whenever the objective needs one
        if policy.objective == "precision":
            ok = precision >= target
            score = np.where(ok, recall, -1.0)
        else:
            ok = recall >= target
            score = np.where(ok, precision, -1.0)
        if not ok.any():
            best = int(np.argmax(precision if policy.objective == "precision" else recall))
            score = np.where(np.arange(len(score)) == best, 0.0, -1.0)
        best = int(np.argmax(score))
    # threshold halfway between the chosen score and the next lower one: robust to ties / noise
    hi = r.runs[best]
    lo = r.runs[best + 1] if best + 1 < len(r.runs) else hi - 1e-6
    return float(np.clip(_between(hi, lo), 0.0, 1.0)), float(score[best])


def _between(hi: float, lo: float) -> float:
    """A cut halfway between two distinct scores, so it predicts ``hi`` and not ``lo``; ``hi``
    itself where the halfway point rounds down to ``lo`` (subnormal scores)."""
    mid = float((hi + lo) / 2.0)
    return mid if mid > lo else float(hi)


def fit_thresholds(Y: Any, P: Any, policy: ThresholdPolicy | None = None) -> np.ndarray:
    """Thresholds (float64, length L) from held-out labels ``Y`` and probabilities ``P`` (each
    dense or scipy sparse; a sparse ``P``'s absent entries score 0)."""
    return fit_thresholds_many(Y, P, [policy or ThresholdPolicy()])[0]


def fit_thresholds_many(Y: Any, P: Any, policies: Sequence[ThresholdPolicy]) -> list[np.ndarray]:
    """:func:`fit_thresholds` of each policy. Each label's scores are sorted once for all
    policies, and policies that differ only in ``shrinkage``, ``shrink_to`` or
    ``at_least_one`` share one cut per label (a grid of policies, as ``labelwise tune``
    scores, costs little more than one)."""
    scores = _Scores(Y, P)
    per_label = [p for p in policies if p.mode == "per_label"]
    cuts = _label_cuts(scores, {_cut_key(p): p for p in per_label}) if per_label else {}
    out = []
    for policy in policies:
        if policy.mode != "per_label":
            pooled = scores.pooled() if policy.mode == "global" else None
            cut = policy.fixed if pooled is None else _best(pooled, policy)[0]
            out.append(np.full(scores.n_labels, cut))
            continue
        t_global, t_label, t_rate, positives = cuts[_cut_key(policy)]
        target: np.ndarray | float = t_global
        if policy.shrink_to != "global":
            rate = np.where(np.isnan(t_rate), t_global, t_rate)
            target = rate if policy.shrink_to == "rate" else np.minimum(rate, t_global)
        k = policy.shrinkage
        w = positives / (positives + k) if k > 0 else np.ones_like(positives)
        out.append(np.where(np.isnan(t_label), t_global, w * t_label + (1 - w) * target))
    return out


def _cut_key(policy: ThresholdPolicy) -> tuple[object, ...]:
    """What a label's own cut depends on (F1 is F-beta with beta 1)."""
    if policy.objective == "f1" or (policy.objective == "fbeta" and policy.beta == 1.0):
        return ("fbeta", 1.0, None, policy.fixed)
    return (policy.objective, policy.beta, policy.target, policy.fixed)


Cuts = tuple[float, np.ndarray, np.ndarray, np.ndarray]


class _Scores:
    """Held-out labels and scores, each dense or scipy sparse, read label by label or pooled.

    A sparse score matrix of probabilities (a label tree's: the labels it did not search are
    absent) is never made dense: its stored entries are the scored rows, every other row scores
    0, below them all (a sparse matrix with negative scores is read dense)."""

    def __init__(self, Y: Any, P: Any) -> None:
        self.sparse = sp.issparse(P) and not (P.data < 0).any()
        self.n_rows, self.n_labels = P.shape
        if Y.shape != P.shape:
            raise DataError(f"labels {Y.shape} and scores {P.shape} differ in shape")
        if not self.sparse:
            self.Y = np.asarray(Y.toarray() if sp.issparse(Y) else Y)
            self.P = np.asarray(P.toarray() if sp.issparse(P) else P, dtype=np.float64)
            return
        S = sp.csc_matrix(P, dtype=np.float64)
        S.eliminate_zeros()
        S.sort_indices()
        T = sp.csc_matrix(Y, dtype=np.int8)
        T.eliminate_zeros()
        T.sort_indices()
        self.S, self.positives = S, np.diff(T.indptr).astype(np.int64)
        # y at each stored score: (column, row) keys of both, sorted, matched by binary search
        key_s = np.repeat(np.arange(self.n_labels, dtype=np.int64), np.diff(S.indptr))
        key_s = key_s * self.n_rows + S.indices
        key_t = np.repeat(np.arange(self.n_labels, dtype=np.int64), self.positives)
        key_t = key_t * self.n_rows + T.indices
        at = np.minimum(np.searchsorted(key_t, key_s), max(len(key_t) - 1, 0))
        self.y = (key_t[at] == key_s) if len(key_t) else np.zeros(len(key_s), dtype=bool)

    def positives_per_label(self) -> np.ndarray:
        if self.sparse:
            return self.positives.astype(np.float64)
        return self.Y.sum(axis=0, dtype=np.float64)

    def label(self, j: int) -> _Ranked | None:
        if not self.sparse:
            return _Ranked.of(self.Y[:, j], self.P[:, j])
        s = slice(self.S.indptr[j], self.S.indptr[j + 1])
        return _Ranked.scored(self.y[s], self.S.data[s], self.n_rows, int(self.positives[j]))

    def pooled(self) -> _Ranked | None:
        if not self.sparse:
            return _Ranked.of(self.Y.ravel(), self.P.ravel())
        n = self.n_rows * self.n_labels
        return _Ranked.scored(self.y, self.S.data, n, int(self.positives.sum()))


def _label_cuts(
    scores: _Scores, policies: dict[tuple[object, ...], ThresholdPolicy]
) -> dict[tuple[object, ...], Cuts]:
    """Per cut key: (global cut, each label's own cut and rate cut -- NaN where it has none
    --, positives per label)."""
    pooled = scores.pooled()
    positives = scores.positives_per_label()
    L = scores.n_labels
    out: dict[tuple[object, ...], Cuts] = {}
    for key, policy in policies.items():
        t_global = policy.fixed if pooled is None else _best(pooled, policy)[0]
        out[key] = (t_global, np.full(L, np.nan), np.full(L, np.nan), positives)
    for j in range(L):
        ranked = scores.label(j)
        if ranked is None:
            continue
        rate = ranked.rate_cut()
        for key, policy in policies.items():
            t, score = _best(ranked, policy)
            if np.isfinite(score):
                out[key][1][j] = t
                out[key][2][j] = rate
    return out


def apply_thresholds(P: Any, thresholds: np.ndarray, at_least_one: bool = False) -> Any:
    """0/1 predictions (uint8; a CSR matrix for sparse ``P``, whose absent entries score 0: a
    label with a threshold above 0 never predicts them). With ``at_least_one``, an empty row
    gets the label whose probability is highest relative to its threshold (none if every
    probability of the row is 0)."""
    t = np.asarray(thresholds)
    if sp.issparse(P):
        return _apply_sparse(sp.csr_matrix(P), t, at_least_one)
    P = np.asarray(P)
    pred = (t <= P).astype(np.uint8)
    if at_least_one and P.shape[1]:
        empty = np.flatnonzero(pred.sum(axis=1) == 0)
        if empty.size:
            rel = P[empty] / np.maximum(t, 1e-12)
            best = np.argmax(rel, axis=1)
            some = rel[np.arange(len(empty)), best] > 0
            pred[empty[some], best[some]] = 1
    return pred


def _apply_sparse(P: sp.csr_matrix, t: np.ndarray, at_least_one: bool) -> sp.csr_matrix:
    rows = np.repeat(np.arange(P.shape[0]), np.diff(P.indptr))
    keep = (P.data >= t[P.indices]) & (P.data > 0)
    if at_least_one and P.nnz:
        hit = np.bincount(rows[keep], minlength=P.shape[0])
        candidate = (hit[rows] == 0) & (P.data > 0)
        if candidate.any():
            rel = np.where(candidate, P.data / np.maximum(t[P.indices], 1e-12), -1.0)
            # per row, the stored entry of highest ``rel`` (the lowest label on ties)
            order = np.lexsort((P.indices, -rel, rows))
            first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
            keep[first[candidate[first]]] = True
    pred = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.uint8), (rows[keep], P.indices[keep])),
        shape=P.shape,
    )
    everyone = np.flatnonzero(t <= 0)  # a cut at 0 predicts the absent entries too
    if everyone.size:
        n = P.shape[0]
        cells = (np.repeat(np.arange(n), everyone.size), np.tile(everyone, n))
        every = sp.csr_matrix((np.ones(len(cells[0]), dtype=np.uint8), cells), shape=P.shape)
        pred = pred.maximum(every).astype(np.uint8).tocsr()
    return pred
