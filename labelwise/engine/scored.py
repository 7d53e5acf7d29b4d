"""The columns of a scored table: one probability column per label and the predicted label set.

``p:<label>`` holds each label's probability and ``labels`` the names of the labels predicted
for the row (a list). The batch predict flow, the MLflow pyfunc and the monitor share them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PROBA_PREFIX = "p:"
LABELS_COLUMN = "labels"
TOP_LABELS, TOP_SCORES = "top_labels", "top_scores"


def proba_columns(labels: Sequence[str]) -> list[str]:
    """The probability column of each label, in label order."""
    return [PROBA_PREFIX + lab for lab in labels]


def top_k(
    S: np.ndarray, labels: Sequence[str], k: int
) -> tuple[list[list[str]], list[list[float]]]:
    """Each row's ``k`` most probable labels, best first, and their probabilities: what a
    client of a model with thousands of labels reads instead of a column per label."""
    k = min(k, S.shape[1])
    part = (
        np.argpartition(-S, k - 1, axis=1)[:, :k]
        if k < S.shape[1]
        else np.tile(np.arange(S.shape[1]), (S.shape[0], 1))
    )
    part.sort(axis=1)  # ties by label index, as the ranking metrics
    best = np.argsort(-np.take_along_axis(S, part, axis=1), axis=1, kind="stable")
    order = np.take_along_axis(part, best, axis=1)
    names = np.asarray(labels, dtype=object)
    return names[order].tolist(), np.take_along_axis(S, order, axis=1).tolist()


def label_sets(pred: np.ndarray, labels: Sequence[str]) -> list[list[str]]:
    """The predicted label names of each row of a 0/1 matrix."""
    names = np.asarray(labels, dtype=object)
    return [names[row.astype(bool)].tolist() for row in pred]
