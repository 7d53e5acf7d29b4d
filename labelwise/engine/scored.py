"""The columns of a scored table: one probability column per label and the predicted label set.

``p:<label>`` holds each label's probability and ``labels`` the names of the labels predicted
for the row (a list). The batch predict flow, the MLflow pyfunc and the monitor share them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PROBA_PREFIX = "p:"
LABELS_COLUMN = "labels"


def proba_columns(labels: Sequence[str]) -> list[str]:
    """The probability column of each label, in label order."""
    return [PROBA_PREFIX + lab for lab in labels]


def label_sets(pred: np.ndarray, labels: Sequence[str]) -> list[list[str]]:
    """The predicted label names of each row of a 0/1 matrix."""
    names = np.asarray(labels, dtype=object)
    return [names[row.astype(bool)].tolist() for row in pred]
