"""A small batch (a served request) is scored through merged forests, a few LightGBM calls;
a large one booster by booster. Both give the same probabilities."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest

from labelwise.engine.classifier import LabelwiseClassifier
from labelwise.engine.forest import MergedForest
from labelwise.engine.per_label import THREADED_PREDICT_ROWS


@pytest.fixture(scope="module")
def data(split_table):
    train, test = split_table
    labels = [c for c in train.columns if c.startswith("label_")]
    return train.drop(["id", *labels]), train.select(labels), test.drop(["id", *labels])


def _both_paths(clf: LabelwiseClassifier, rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(the small batch's probabilities, the same rows' within a large batch)."""
    assert rows.height < THREADED_PREDICT_ROWS
    copies = -(-THREADED_PREDICT_ROWS // rows.height)
    large = clf.predict_proba(pl.concat([rows] * copies))[: rows.height]
    return clf.predict_proba(rows), large


@pytest.mark.parametrize("strategy", ["binary_relevance", "stacking", "chain"])
def test_a_small_batch_scores_as_a_large_one(data, strategy):
    X, Y, Xt = data
    clf = LabelwiseClassifier(n_estimators=40, cv_folds=3, strategy=strategy).fit(X, Y)
    small, large = _both_paths(clf, Xt)
    np.testing.assert_allclose(small, large, rtol=0, atol=1e-12)
    one_row, _ = _both_paths(clf, Xt.head(1))
    np.testing.assert_allclose(one_row, large[:1], rtol=0, atol=1e-12)


def test_constant_labels_and_uneven_boosters_merge(data):
    """A label with one class is a constant in every member; boosters stopped early at very
    different rounds land in different groups; the mean is still each member's."""
    X, Y, Xt = data
    Ya = Y.to_numpy().copy()
    Ya[:, 0] = 0
    clf = LabelwiseClassifier(n_estimators=300, cv_folds=5, early_stopping_rounds=5)
    clf.fit(X, Ya)
    forest = MergedForest(clf.level1_)
    boosters = sum(m.booster is not None for member in clf.level1_ for m in member)
    assert 1 <= forest.n_calls < boosters
    small, large = _both_paths(clf, Xt)
    np.testing.assert_allclose(small, large, rtol=0, atol=1e-12)
    assert (small[:, 0] == 0).all()


def test_text_models_merge_on_sparse_rows():
    from labelwise.engine.data import LabelSpec, table_xy
    from labelwise.engine.synthetic_text import make_text_table

    df = make_text_table(n_rows=900, n_labels=4, vocabulary=800, body_words=25, seed=3)
    spec = LabelSpec(set_column="topics", separator="|")
    X, Y, _ = table_xy(df, spec, exclude=["doc_id", "published"])
    clf = LabelwiseClassifier(n_estimators=30, cv_folds=3).fit(X[:700], Y[:700])
    small, large = _both_paths(clf, X[700:])
    np.testing.assert_allclose(small, large, rtol=0, atol=1e-12)


def test_first_requests_in_parallel_build_one_forest(data):
    """A server's first requests may arrive together: each gets the same probabilities and
    the forest is built once."""
    X, Y, Xt = data
    clf = LabelwiseClassifier(n_estimators=30).fit(X, Y)
    rows = [Xt.slice(i, 1) for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(clf.predict_proba, rows))
    np.testing.assert_allclose(np.vstack(got), _both_paths(clf, Xt.head(16))[1], atol=1e-12)
    assert len(clf.__dict__["_merged_forests"]) == 1
    assert clf.warm_up() is clf


def test_a_warmed_up_model_splits_a_large_batch_over_threads_alike(data):
    """After ``warm_up`` (a server's load), a large batch goes through the forest with its
    rows on threads: the same probabilities as label by label."""
    X, Y, Xt = data
    clf = LabelwiseClassifier(n_estimators=30, n_jobs=2).fit(X, Y)
    big = pl.concat([Xt] * 2)
    by_label = clf.predict_proba(big)  # no forest built yet: label by label
    assert clf._merged(clf.level1_, build=False) is None
    assert clf.warm_up()._merged(clf.level1_, build=False) is not None
    np.testing.assert_allclose(clf.predict_proba(big), by_label, rtol=0, atol=1e-12)
