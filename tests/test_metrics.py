"""Every metric equals scikit-learn's on the same inputs (property tests)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

from labelwise.engine import metrics as lm

# sklearn reads a one-column 0/1 matrix as binary, not multi-label: compare from two labels on
shapes = st.tuples(st.integers(1, 25), st.integers(2, 8))


@st.composite
def label_pair(draw):
    n, n_labels = draw(shapes)
    Y = draw(arrays(np.uint8, (n, n_labels), elements=st.integers(0, 1)))
    P = draw(arrays(np.uint8, (n, n_labels), elements=st.integers(0, 1)))
    return Y, P


@st.composite
def score_pair(draw):
    n, n_labels = draw(shapes)
    Y = draw(arrays(np.uint8, (n, n_labels), elements=st.integers(0, 1)))
    # few distinct values so that ties happen often
    S = draw(
        arrays(
            np.float64,
            (n, n_labels),
            elements=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 1.0]) | st.floats(0, 1),
        )
    )
    return Y, S


@settings(max_examples=300, deadline=None)
@given(label_pair())
def test_classification_metrics_equal_sklearn(pair):
    Y, P = pair
    ours = lm.classification_metrics(Y, P)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ours["hamming_loss"] == pytest.approx(skm.hamming_loss(Y, P), abs=1e-12)
        assert ours["subset_accuracy"] == pytest.approx(skm.accuracy_score(Y, P), abs=1e-12)
        for avg in ("micro", "macro", "weighted", "samples"):
            for name, fn in (
                ("precision", skm.precision_score),
                ("recall", skm.recall_score),
                ("f1", skm.f1_score),
                ("jaccard", skm.jaccard_score),
            ):
                ref = fn(Y, P, average=avg, zero_division=0)
                assert ours[f"{name}_{avg}"] == pytest.approx(ref, abs=1e-12), (name, avg)


@settings(max_examples=300, deadline=None)
@given(score_pair())
def test_ranking_metrics_equal_sklearn(pair):
    Y, S = pair
    assert lm.label_ranking_average_precision(Y, S) == pytest.approx(
        skm.label_ranking_average_precision_score(Y, S), abs=1e-12
    )
    assert lm.coverage_error(Y, S) == pytest.approx(skm.coverage_error(Y, S), abs=1e-12)
    assert lm.label_ranking_loss(Y, S) == pytest.approx(skm.label_ranking_loss(Y, S), abs=1e-12)


@st.composite
def untied_scores(draw):
    """Labels and scores without ties within a row (a permutation per row): ranking at k is
    then defined by the scores alone."""
    n, n_labels = draw(st.tuples(st.integers(1, 25), st.integers(2, 12)))
    Y = draw(arrays(np.uint8, (n, n_labels), elements=st.integers(0, 1)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    S = np.argsort(rng.random((n, n_labels)), axis=1).astype(np.float64) / n_labels
    return Y, S


@settings(max_examples=300, deadline=None)
@given(untied_scores())
def test_precision_and_ndcg_at_k_equal_references(pair):
    Y, S = pair
    ours = lm.precision_ndcg_at_k(Y, S, ks=(1, 3, 5))
    order = np.argsort(-S, axis=1)
    for k in (1, 3, 5):
        # precision@k of the extreme-classification repository: hits in the top k, over k
        ref = np.mean([Y[i, order[i, :k]].sum() / k for i in range(len(Y))])
        assert ours[f"precision_at_{k}"] == pytest.approx(ref, abs=1e-12)
        assert ours[f"ndcg_at_{k}"] == pytest.approx(skm.ndcg_score(Y, S, k=k), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(untied_scores(), st.integers(1, 14))
def test_top_k_is_the_k_best_scores_in_order(pair, k):
    from labelwise.engine.scored import top_k

    _, S = pair
    labels = [f"l{j}" for j in range(S.shape[1])]
    names, scores = top_k(S, labels, k)
    for i in range(len(S)):
        best = np.argsort(-S[i])[: min(k, S.shape[1])]
        assert names[i] == [labels[j] for j in best]
        assert scores[i] == S[i, best].tolist()


@settings(max_examples=300, deadline=None)
@given(score_pair())
def test_per_label_auc_equal_sklearn(pair):
    Y, S = pair
    for j in range(Y.shape[1]):
        y, s = Y[:, j], S[:, j]
        if 0 < y.sum() < len(y):
            assert lm.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
        else:
            assert np.isnan(lm.roc_auc(y, s))
        if y.sum() > 0:
            assert lm.average_precision(y, s) == pytest.approx(
                skm.average_precision_score(y, s), abs=1e-12
            )
        else:
            assert np.isnan(lm.average_precision(y, s))


def test_per_label_table_and_statistics():
    Y = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=np.uint8)
    P = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 0], [1, 0, 1]], dtype=np.uint8)
    rows = lm.per_label_table(Y, P, S=P.astype(float), labels=["a", "b", "c"])
    assert [r["label"] for r in rows] == ["a", "b", "c"]
    f1 = [skm.f1_score(Y[:, j], P[:, j], zero_division=0) for j in range(Y.shape[1])]
    assert [r["f1"] for r in rows] == pytest.approx(f1)
    assert [r["support"] for r in rows] == Y.sum(axis=0).tolist()
    stats = lm.label_statistics(Y)
    assert stats["cardinality"] == pytest.approx(Y.sum() / 4)
    assert stats["density"] == pytest.approx(Y.sum() / 12)
    assert stats["distinct_label_sets"] == 4
    assert (lm.cooccurrence(Y) == Y.T.astype(int) @ Y.astype(int)).all()
    assert lm.cooccurrence(Y).dtype == np.int64  # uint8 products would wrap at 256


def test_multiclass_warning():
    Y = np.eye(3, dtype=np.uint8)[[0, 1, 2, 1]]
    with pytest.warns(lm.MulticlassWarning, match="multi-class"):
        assert lm.check_multiclass(Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not lm.check_multiclass(np.array([[1, 1], [0, 1]]))


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 6)), elements=st.integers(0, 1)),
    st.integers(0, 2**31 - 1),
)
def test_prediction_warnings_name_exactly_the_labels_sklearn_scores_zero(Y, seed):
    """The labels said to score F1 0.00 are those with test positives whose F1 (scikit-learn)
    is 0; one label set for >= 90% of 20+ rows is said, with its labels."""
    from labelwise.engine.quality import prediction_warnings

    P = (np.random.default_rng(seed).random(Y.shape) < 0.4).astype(np.uint8)
    labels = [f"L{j}" for j in range(Y.shape[1])]
    f1 = [skm.f1_score(Y[:, j], P[:, j], zero_division=0) for j in range(Y.shape[1])]
    dead = [labels[j] for j in range(Y.shape[1]) if Y[:, j].sum() > 0 and f1[j] == 0]
    said = prediction_warnings(Y, P, labels)
    named = [w for w in said if "F1 0.00" in w]
    assert bool(named) == bool(dead)
    if dead:
        assert named[0].split("right): ")[1].split(";")[0] == ", ".join(dead[:10])
    same = np.tile(P[:1], (max(Y.shape[0], 20), 1))
    said = prediction_warnings(np.tile(Y[:1], (same.shape[0], 1)), same, labels)
    assert any("100% of test rows get the same prediction" in w for w in said)


def test_most_frequent_labels_first_with_uint8_labels():
    """A uint8 label matrix sums to uint64: negated, a label without positives sorted first
    (the per-label plots of a 1,671-label run showed 40 labels with n=0)."""
    from labelwise.engine.metrics import most_frequent

    Y = np.array([[0, 1, 0, 1], [0, 1, 1, 0], [0, 1, 0, 0]], dtype=np.uint8)
    assert most_frequent(Y).tolist() == [1, 2, 3, 0]
    assert most_frequent(Y, 2).tolist() == [1, 2]


@st.composite
def mostly_zero_scores(draw):
    """Labels, 0/1 predictions and scores where most scores are 0: what a label tree gives."""
    n, n_labels = draw(shapes)
    Y = draw(arrays(np.uint8, (n, n_labels), elements=st.integers(0, 1)))
    P = draw(arrays(np.uint8, (n, n_labels), elements=st.integers(0, 1)))
    S = draw(
        arrays(
            np.float64,
            (n, n_labels),
            elements=st.sampled_from([0.0, 0.0, 0.0, 0.3, 0.5]) | st.floats(0.01, 1),
        )
    )
    return Y, P, S


@settings(max_examples=200, deadline=None)
@given(mostly_zero_scores(), st.sampled_from(["csr", "csc"]))
def test_sparse_labels_predictions_and_scores_give_the_dense_metrics(triple, form):
    """Every metric, the per-label table and the prediction warnings read scipy sparse inputs
    (a label tree's) exactly as their dense equivalents (themselves equal to scikit-learn's)."""
    import scipy.sparse as sp

    from labelwise.engine.quality import prediction_warnings

    Y, P, S = triple
    Ys, Ps, Ss = (sp.csr_matrix(A).asformat(form) for A in (Y, P, S))
    dense = lm.evaluate(Y, P, S)
    for args in ((Y, Ps, Ss), (Ys, Ps, Ss), (Ys, P, S)):
        got = lm.evaluate(*args)
        assert got.keys() == dense.keys()
        for k, v in dense.items():
            assert got[k] == pytest.approx(v, nan_ok=True), k
    labels = [f"L{j}" for j in range(Y.shape[1])]
    for got_row, row in zip(
        lm.per_label_table(Y, Ps, Ss, labels), lm.per_label_table(Y, P, S, labels), strict=True
    ):
        assert got_row.pop("label") == row.pop("label")
        assert got_row == pytest.approx(row, nan_ok=True)
    assert prediction_warnings(Ys, Ps, labels) == prediction_warnings(Y, P, labels)
    assert lm.most_frequent(Ys).tolist() == lm.most_frequent(Y).tolist()


@settings(max_examples=200, deadline=None)
@given(mostly_zero_scores(), st.integers(1, 10))
def test_top_k_and_label_sets_of_sparse_scores_are_the_dense_ones(triple, k):
    """Batch predict keeps a label tree's scores sparse: its top-k (ties, 0 included, to the
    lower label index) and predicted label sets are those of the dense matrix."""
    import scipy.sparse as sp

    from labelwise.engine.scored import label_sets, top_k

    _, P, S = triple
    labels = [f"l{j}" for j in range(S.shape[1])]
    assert top_k(sp.csr_matrix(S), labels, k) == top_k(S, labels, k)
    assert label_sets(sp.csr_matrix(P), labels) == label_sets(P, labels)


@settings(max_examples=300, deadline=None)
@given(score_pair(), st.integers(0, 10))
def test_best_k_breaks_ties_by_label_index_even_across_the_kth_place(pair, k):
    """The k best columns equal a stable full sort's first k, ties and all (the ranking
    metrics and top-k outputs use it: ``np.argpartition`` alone picks any of the tied)."""
    _, S = pair
    want = np.argsort(-S, axis=1, kind="stable")[:, : min(k, S.shape[1])]
    np.testing.assert_array_equal(lm.best_k(S, k), want)
