"""The multi-label metric set, equal to scikit-learn's on the same inputs.

Conventions for 0/0 (the same as scikit-learn with ``zero_division=0``):

* precision, recall, F1, Jaccard of a label (or a row, for ``samples``) with nothing predicted
  and/or nothing true are 0 where the denominator is 0;
* ``weighted`` averages weight each label by its support; with no support at all they are 0;
* LRAP counts a row with no true label or only true labels as 1; ranking loss counts such a row
  as 0; coverage error of a row with no true label is 0;
* per-label ROC-AUC is NaN when the label has only one class in ``y_true``; PR-AUC (average
  precision) is NaN when it has no positive.

Labels, predictions and scores may each be dense or scipy sparse (a label tree's scores and
predictions at 20,000 labels are; an absent score is 0): the counts are taken on the sparse
matrices, the rankings on dense blocks of rows, the per-label curves one dense column at a time.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from labelwise.engine.errors import DataError
from labelwise.engine.sparse import by_columns, column_means, dense_column, dense_rows


class MulticlassWarning(UserWarning):
    """Every row carries exactly one label: the problem is multi-class, not multi-label."""


def _check(Y: Any, Z: Any, what: str = "predictions") -> tuple[Any, ...]:
    Y = Y if sp.issparse(Y) else np.asarray(Y)
    Z = Z if sp.issparse(Z) else np.asarray(Z)
    if Y.ndim != 2 or Y.shape != Z.shape:
        raise DataError(f"y_true {Y.shape} and {what} {Z.shape} must be 2-D and of equal shape")
    return Y, Z


def _div(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def _binary(A: Any) -> sp.csr_matrix:
    """A 0/1 float CSR copy of ``A`` (its nonzeros as 1)."""
    B = sp.csr_matrix(A, dtype=np.float64)
    B.eliminate_zeros()
    B.data[:] = 1.0
    return B


def _counts(Y: Any, P: Any, axis: int) -> tuple[np.ndarray, ...]:
    if sp.issparse(Y) or sp.issparse(P):
        Yb, Pb = _binary(Y), _binary(P)
        tp = np.asarray(Yb.multiply(Pb).sum(axis=axis)).ravel()
        return (
            tp,
            np.asarray(Pb.sum(axis=axis)).ravel() - tp,
            np.asarray(Yb.sum(axis=axis)).ravel() - tp,
        )
    Yb, Pb = Y.astype(bool), P.astype(bool)
    tp = (Yb & Pb).sum(axis=axis, dtype=np.float64)
    fp = (~Yb & Pb).sum(axis=axis, dtype=np.float64)
    fn = (Yb & ~Pb).sum(axis=axis, dtype=np.float64)
    return tp, fp, fn


def _prfj(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "precision": _div(tp, tp + fp),
        "recall": _div(tp, tp + fn),
        "f1": _div(2 * tp, 2 * tp + fp + fn),
        "jaccard": _div(tp, tp + fp + fn),
    }


def classification_metrics(Y: Any, P: Any) -> dict[str, float]:
    """Threshold metrics of 0/1 predictions ``P`` against ``Y`` (both n x L)."""
    Y, P = _check(Y, P)
    n, n_labels = Y.shape
    tp, fp, fn = _counts(Y, P, axis=0)
    row_counts = _counts(Y, P, axis=1)
    wrong = row_counts[1] + row_counts[2]
    out: dict[str, float] = {
        "hamming_loss": float(wrong.sum() / (n * n_labels)) if n * n_labels else 0.0,
        "subset_accuracy": float(np.mean(wrong == 0)),
    }
    per_label = _prfj(tp, fp, fn)
    micro = _prfj(tp.sum(), fp.sum(), fn.sum())
    support = tp + fn
    per_row = _prfj(*row_counts)
    for name in ("precision", "recall", "f1", "jaccard"):
        out[f"{name}_micro"] = float(micro[name])
        out[f"{name}_macro"] = float(per_label[name].mean())
        out[f"{name}_weighted"] = (
            float(np.sum(per_label[name] * support) / support.sum()) if support.sum() > 0 else 0.0
        )
        out[f"{name}_samples"] = float(per_row[name].mean())
    return out


def _rank_counts(Y: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row, each label sorted by score, with how many labels, and how many true ones, score
    at least as high as it (ties count as above): the two ranks of LRAP and ranking loss."""
    order = np.argsort(-S, axis=1, kind="stable")
    s = np.take_along_axis(S, order, axis=1)
    y = np.take_along_axis(Y.astype(bool), order, axis=1)
    n_labels = S.shape[1]
    # the last position of each tie group, carried back over the group
    last = np.where(np.diff(s, axis=1, append=np.nan) != 0, np.arange(n_labels), n_labels)
    last = np.minimum.accumulate(last[:, ::-1], axis=1)[:, ::-1]
    above_true = np.take_along_axis(np.cumsum(y, axis=1), last, axis=1)
    return y, last + 1.0, above_true.astype(np.float64)


def _row_chunks(n: int, n_labels: int, cells: int = 2_000_000) -> range:
    """Row starts of chunks of about ``cells`` cells: the rank arrays stay small."""
    return range(0, n, max(1, cells // max(n_labels, 1)))


def label_ranking_average_precision(Y: Any, S: Any) -> float:
    """LRAP, as ``sklearn.metrics.label_ranking_average_precision_score``."""
    Y, S = _check(Y, S, "scores")
    n, n_labels = Y.shape
    step = _row_chunks(n, n_labels).step
    total = 0.0
    for i in _row_chunks(n, n_labels):
        y, above_all, above_true = _rank_counts(
            dense_rows(Y, i, i + step), dense_rows(S, i, i + step)
        )
        n_true = y.sum(axis=1)
        row = _div(np.where(y, above_true / above_all, 0.0).sum(axis=1), n_true)
        total += float(np.where((n_true == 0) | (n_true == n_labels), 1.0, row).sum())
    return total / n if n else 0.0


def coverage_error(Y: Any, S: Any) -> float:
    """Average depth of the ranking needed to cover all true labels (sklearn's definition)."""
    Y, S = _check(Y, S, "scores")
    n, n_labels = Y.shape
    step = _row_chunks(n, n_labels).step
    total = 0.0
    for i in _row_chunks(n, n_labels):
        y, s = dense_rows(Y, i, i + step).astype(bool), dense_rows(S, i, i + step)
        min_rel = np.where(y, s, np.inf).min(axis=1, initial=np.inf)[:, None]
        cov = (min_rel <= s).sum(axis=1).astype(np.float64)
        total += float(np.where(y.any(axis=1), cov, 0.0).sum())
    return total / n if n else 0.0


def label_ranking_loss(Y: Any, S: Any) -> float:
    """Share of (true, false) label pairs ranked wrongly (ties count as wrong), per row."""
    Y, S = _check(Y, S, "scores")
    n, n_labels = Y.shape
    step = _row_chunks(n, n_labels).step
    total = 0.0
    for i in _row_chunks(n, n_labels):
        y, above_all, above_true = _rank_counts(
            dense_rows(Y, i, i + step), dense_rows(S, i, i + step)
        )
        n_true = y.sum(axis=1)
        wrong = np.where(y, above_all - above_true, 0.0).sum(axis=1)
        total += float(_div(wrong, n_true * (n_labels - n_true)).sum())
    return total / n if n else 0.0


TOP_K = (1, 3, 5)


def precision_ndcg_at_k(Y: Any, S: Any, ks: tuple[int, ...] = TOP_K) -> dict[str, float]:
    """``precision_at_k`` (true labels among the k best-scored, over k) and ``ndcg_at_k``
    (their discounted gain over the best possible, 0 for a row without a true label: as
    ``sklearn.metrics.ndcg_score(k=k)`` with binary relevance), averaged over rows: the
    extreme-classification ranking metrics. Ties go to the lower label index."""
    Y, S = _check(Y, S, "scores")
    n, n_labels = Y.shape
    kmax = min(max(ks), n_labels)
    discount = 1.0 / np.log2(np.arange(2, kmax + 2))
    hits_sum = {k: 0.0 for k in ks}
    ndcg_sum = {k: 0.0 for k in ks}
    step = _row_chunks(n, n_labels).step
    for i in _row_chunks(n, n_labels):
        s, y = dense_rows(S, i, i + step), dense_rows(Y, i, i + step).astype(bool)
        top = np.take_along_axis(y, best_k(s, kmax), axis=1)
        n_true = y.sum(axis=1)
        for k in ks:
            kk = min(k, kmax)
            hits_sum[k] += float(top[:, :kk].sum() / k)
            dcg = (top[:, :kk] * discount[:kk]).sum(axis=1)
            ideal = np.cumsum(discount[:kk])[np.minimum(n_true, kk) - 1]
            ndcg_sum[k] += float(
                np.where(n_true > 0, dcg / np.where(n_true > 0, ideal, 1), 0).sum()
            )
    out: dict[str, float] = {}
    for k in ks:
        out[f"precision_at_{k}"] = hits_sum[k] / n if n else 0.0
        out[f"ndcg_at_{k}"] = ndcg_sum[k] / n if n else 0.0
    return out


def best_k(S: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` best-scored columns in score order (n x k), ties to the lower index,
    also where a tie straddles the k-th place (``np.argpartition`` alone picks any of them)."""
    n, n_labels = S.shape
    k = min(k, n_labels)
    if k == 0:
        return np.zeros((n, 0), dtype=np.int64)
    if k < n_labels:
        kth = -np.partition(-S, k - 1, axis=1)[:, k - 1 : k]  # the k-th best score of each row
        above, tie = kth < S, kth == S
        need = k - above.sum(axis=1, keepdims=True)
        take = above | (tie & (np.cumsum(tie, axis=1) <= need))
        part = np.nonzero(take)[1].reshape(n, k)  # k columns per row, in column order
    else:
        part = np.tile(np.arange(n_labels), (n, 1))
    best = np.argsort(-np.take_along_axis(S, part, axis=1), axis=1, kind="stable")
    out: np.ndarray = np.take_along_axis(part, best, axis=1)
    return out


def ranking_metrics(Y: Any, S: Any) -> dict[str, float]:
    return {
        "lrap": label_ranking_average_precision(Y, S),
        "coverage_error": coverage_error(Y, S),
        "ranking_loss": label_ranking_loss(Y, S),
        **precision_ndcg_at_k(Y, S),
    }


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Binary ROC-AUC via the rank-sum (Mann-Whitney) statistic; NaN with one class."""
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ss = np.asarray(s, dtype=np.float64)[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average ranks over ties
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    ends = np.r_[starts[1:], len(ss)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the precision-recall curve as sklearn's ``average_precision_score``."""
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(s, dtype=np.float64), kind="mergesort")
    ss, ys = np.asarray(s)[order], y[order]
    last = np.flatnonzero(np.r_[ss[1:] != ss[:-1], True])
    tp = np.cumsum(ys)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def per_label_table(
    Y: Any, P: Any, S: Any = None, labels: list[str] | None = None
) -> list[dict[str, Any]]:
    """One row per label: precision, recall, f1, support, predicted, (roc_auc, pr_auc)."""
    Y, P = _check(Y, P)
    tp, fp, fn = _counts(Y, P, axis=0)
    prf = _prfj(tp, fp, fn)
    names = labels or [str(j) for j in range(Y.shape[1])]
    if S is not None:
        Y, S = by_columns(Y), by_columns(S)
    rows = []
    for j, name in enumerate(names):
        row: dict[str, Any] = {
            "label": name,
            "precision": float(prf["precision"][j]),
            "recall": float(prf["recall"][j]),
            "f1": float(prf["f1"][j]),
            "support": int(tp[j] + fn[j]),
            "predicted": int(tp[j] + fp[j]),
        }
        if S is not None:
            y, s = dense_column(Y, j), dense_column(S, j)
            row["roc_auc"] = roc_auc(y, s)
            row["pr_auc"] = average_precision(y, s)
        rows.append(row)
    return rows


def most_frequent(Y: Any, k: int | None = None) -> np.ndarray:
    """Label indices by positives, most first (ties by index); the first ``k``. Counted in
    int64: a uint8 label matrix sums to uint64, whose negation wraps and sorted labels
    without positives first."""
    counts = np.asarray(Y.sum(axis=0, dtype=np.int64)).ravel()
    return np.argsort(-counts, kind="stable")[:k]


def label_statistics(Y: Any) -> dict[str, Any]:
    """Cardinality, density, distinct label sets and prevalence of a label matrix, dense or
    scipy sparse (no dense copy of it: at 20,000 labels a float copy and an L x L
    co-occurrence are gigabytes)."""
    Y = Y if sp.issparse(Y) else np.asarray(Y)
    n, n_labels = Y.shape
    per_row = np.asarray(Y.sum(axis=1, dtype=np.int64)).ravel()
    if sp.issparse(Y):
        B = sp.csr_matrix(Y)
        B.eliminate_zeros()
        B.sort_indices()
        rows = np.split(B.indices, B.indptr[1:-1]) if n else []
        distinct = len({tuple(a.tolist()) for a in rows})
    else:
        distinct = len(np.unique(np.packbits(Y.astype(bool), axis=1), axis=0)) if n else 0
    return {
        "n_rows": n,
        "n_labels": n_labels,
        "cardinality": float(per_row.mean()) if n else 0.0,
        "density": float(per_row.mean() / n_labels) if n and n_labels else 0.0,
        "distinct_label_sets": int(distinct),
        "prevalence": (column_means(Y) if n else np.zeros(n_labels)).tolist(),
    }


def cooccurrence(Y: np.ndarray) -> np.ndarray:
    """How often each pair of labels (columns of ``Y``) holds together: L x L, int64."""
    A = np.asarray(Y, dtype=np.int64)
    out: np.ndarray = A.T @ A
    return out


MULTICLASS_MESSAGE = (
    "every row carries exactly one label: the labels are mutually exclusive, "
    "so this is a multi-class problem; a multi-class model (softmax) fits it "
    "better than independent per-label models"
)


def check_multiclass(Y: Any) -> bool:
    """Warn (and return True) when every row has exactly one label."""
    Y = Y if sp.issparse(Y) else np.asarray(Y)
    per_row = np.asarray(Y.sum(axis=1)).ravel()
    if Y.shape[0] and Y.shape[1] > 1 and np.all(per_row == 1):
        warnings.warn(MULTICLASS_MESSAGE, MulticlassWarning, stacklevel=2)
        return True
    return False


def evaluate(Y: Any, P: Any, S: Any = None) -> dict[str, float]:
    """All aggregate metrics: threshold metrics of ``P``; with scores ``S``, ranking metrics and
    macro ROC-AUC / PR-AUC over the labels where they are defined."""
    out = classification_metrics(Y, P)
    if S is not None:
        out.update(ranking_metrics(Y, S))
        Yc, Sc = by_columns(Y), by_columns(S)
        aucs, aps = [], []
        for j in range(Y.shape[1]):  # one dense column at a time
            y, s = dense_column(Yc, j), dense_column(Sc, j)
            aucs.append(roc_auc(y, s))
            aps.append(average_precision(y, s))
        out["roc_auc_macro"] = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")
        out["pr_auc_macro"] = float(np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")
    return out


def metric_names() -> list[str]:
    """The names :func:`evaluate` reports (with scores), e.g. for checking a config early."""
    Y = np.array([[1, 0], [0, 1]], dtype=np.uint8)
    return sorted(evaluate(Y, Y, Y.astype(np.float64)))
