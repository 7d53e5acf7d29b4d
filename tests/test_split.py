from __future__ import annotations

import numpy as np
import pytest

from labelwise.engine.errors import DataError
from labelwise.engine.split import (
    iterative_stratification,
    label_share_spread,
    stratified_kfold,
)


def _labels(n=3000, n_labels=30, seed=0):
    rng = np.random.default_rng(seed)
    prev = np.geomspace(0.4, 0.003, n_labels)
    return (rng.random((n, n_labels)) < prev).astype(np.uint8)


def test_fractions_and_partition():
    Y = _labels()
    fold = iterative_stratification(Y, (0.7, 0.15, 0.15), seed=3)
    parts = [np.flatnonzero(fold == j) for j in range(3)]
    allidx = np.sort(np.concatenate(parts))
    assert (allidx == np.arange(len(Y))).all()
    sizes = [len(p) / len(Y) for p in parts]
    assert sizes == pytest.approx([0.7, 0.15, 0.15], abs=0.01)


def test_every_label_spread_evenly_and_better_than_random():
    Y = _labels()
    fold = iterative_stratification(Y, [1] * 5, seed=0)
    pos = Y.sum(axis=0)
    for j in np.flatnonzero(pos >= 5):
        per_fold = np.array([Y[fold == f, j].sum() for f in range(5)])
        # each fold gets its share of the label's positives, give or take one
        assert per_fold.max() - per_fold.min() <= 1, (j, per_fold)
    rng = np.random.default_rng(0)
    random_fold = rng.integers(0, 5, len(Y))
    assert label_share_spread(Y, fold) < label_share_spread(Y, random_fold) / 3


def test_seeded_and_kfold():
    Y = _labels(500, 8)
    a = iterative_stratification(Y, [0.5, 0.5], seed=1)
    b = iterative_stratification(Y, [0.5, 0.5], seed=1)
    assert (a == b).all()
    folds = stratified_kfold(Y, 4, seed=0)
    tests = np.sort(np.concatenate([te for _, te in folds]))
    assert (tests == np.arange(len(Y))).all()
    for tr, te in folds:
        assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(Y)


def test_rows_without_labels_are_assigned():
    Y = np.zeros((100, 3), dtype=np.uint8)
    Y[:10, 0] = 1
    fold = iterative_stratification(Y, [0.8, 0.2], seed=0)
    assert (fold >= 0).all()
    assert (fold == 1).sum() == 20


def test_bad_arguments():
    with pytest.raises(DataError):
        iterative_stratification(np.zeros((5, 2)), [1.0])
    with pytest.raises(DataError):
        stratified_kfold(np.zeros((5, 2)), 1)
