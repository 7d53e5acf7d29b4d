"""The columns of a scored table: one probability column per label and the predicted label set.

``p:<label>`` holds each label's probability and ``labels`` the names of the labels predicted
for the row (a list). The batch predict flow, the MLflow pyfunc and the monitor share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from labelwise.engine.metrics import best_k

PROBA_PREFIX = "p:"
LABELS_COLUMN = "labels"
TOP_LABELS, TOP_SCORES = "top_labels", "top_scores"


def proba_columns(labels: Sequence[str]) -> list[str]:
    """The probability column of each label, in label order."""
    return [PROBA_PREFIX + lab for lab in labels]


def top_k(S: Any, labels: Sequence[str], k: int) -> tuple[list[list[str]], list[list[float]]]:
    """Each row's ``k`` most probable labels, best first, and their probabilities: what a
    client of a model with thousands of labels reads instead of a column per label. ``S``
    may be scipy sparse (a label tree's: absent entries score 0); ties, 0 included, go to the
    lower label index either way."""
    if sp.issparse(S):
        return _top_k_sparse(sp.csr_matrix(S), labels, k)
    S = np.asarray(S)
    order = best_k(S, k)  # ties by label index, as the ranking metrics
    names = np.asarray(labels, dtype=object)
    return names[order].tolist(), np.take_along_axis(S, order, axis=1).tolist()


def _top_k_sparse(
    S: sp.csr_matrix, labels: Sequence[str], k: int
) -> tuple[list[list[str]], list[list[float]]]:
    k = min(k, S.shape[1])
    S = S.copy()
    S.eliminate_zeros()
    S.sort_indices()
    out_names, out_scores = [], []
    for i in range(S.shape[0]):
        cols = S.indices[S.indptr[i] : S.indptr[i + 1]]
        vals = S.data[S.indptr[i] : S.indptr[i + 1]]
        order = np.lexsort((cols, -vals))[:k]
        best, scores = cols[order].tolist(), vals[order].tolist()
        if len(best) < k:  # then the labels scored 0, lowest index first, as a dense row ranks
            stored, j = set(cols.tolist()), 0
            while len(best) < k:
                if j not in stored:
                    best.append(j)
                    scores.append(0.0)
                j += 1
        out_names.append([labels[j] for j in best])
        out_scores.append(scores)
    return out_names, out_scores


def label_sets(pred: Any, labels: Sequence[str]) -> list[list[str]]:
    """The predicted label names of each row of a 0/1 matrix (dense or scipy sparse)."""
    names = np.asarray(labels, dtype=object)
    if sp.issparse(pred):
        pred = sp.csr_matrix(pred)
        pred.eliminate_zeros()
        pred.sort_indices()
        return [
            names[pred.indices[pred.indptr[i] : pred.indptr[i + 1]]].tolist()
            for i in range(pred.shape[0])
        ]
    return [names[row.astype(bool)].tolist() for row in pred]
