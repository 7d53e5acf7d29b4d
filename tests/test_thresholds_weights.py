from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import f1_score, fbeta_score, precision_score, recall_score

from labelwise.engine.errors import ConfigError
from labelwise.engine.thresholds import ThresholdPolicy, _sweep, apply_thresholds, fit_thresholds
from labelwise.engine.weights import Weighting


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.uint8, st.integers(2, 40), elements=st.integers(0, 1)),
    st.data(),
    st.sampled_from([0.5, 1.0, 2.0]),
)
def test_sweep_finds_the_best_cut(y, data, beta):
    p = data.draw(
        arrays(
            np.float64,
            len(y),
            elements=st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]) | st.floats(0, 1),
        )
    )
    if y.sum() in (0, len(y)):
        return
    t, score = _sweep(y, p, ThresholdPolicy(objective="fbeta", beta=beta))
    # the sweep's score is what the threshold actually gets...
    assert fbeta_score(y, p >= t, beta=beta, zero_division=0) == pytest.approx(score)
    # ...and no candidate cut does better (brute force over every distinct score)
    best = max(fbeta_score(y, p >= c, beta=beta, zero_division=0) for c in np.unique(p))
    assert score == pytest.approx(best)


def test_precision_and_recall_targets():
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.3).astype(np.uint8)
    p = np.clip(y * 0.3 + rng.random(2000) * 0.7, 0, 1)
    t, _ = _sweep(y, p, ThresholdPolicy(objective="precision", target=0.8))
    assert precision_score(y, p >= t) >= 0.8
    t2, _ = _sweep(y, p, ThresholdPolicy(objective="recall", target=0.9))
    assert recall_score(y, p >= t2) >= 0.9


def test_shrinkage_global_and_fixed_modes():
    rng = np.random.default_rng(1)
    Y = (rng.random((500, 4)) < [0.4, 0.2, 0.01, 0.0]).astype(np.uint8)
    P = np.clip(Y * 0.4 + rng.random(Y.shape) * 0.6, 0, 1)
    glob = fit_thresholds(Y, P, ThresholdPolicy(mode="global"))
    assert np.unique(glob).size == 1
    per = fit_thresholds(Y, P, ThresholdPolicy(shrinkage=0))
    shrunk = fit_thresholds(Y, P, ThresholdPolicy(shrinkage=1e9, shrink_to="global"))
    assert shrunk == pytest.approx(glob, abs=1e-6)  # infinite shrinkage = the global cut
    assert per[3] == pytest.approx(glob[3])  # no positive: the global cut
    assert f1_score(Y[:, 0], P[:, 0] >= per[0]) >= f1_score(Y[:, 0], P[:, 0] >= 0.5)
    assert (fit_thresholds(Y, P, ThresholdPolicy(mode="fixed", fixed=0.3)) == 0.3).all()
    with pytest.raises(ConfigError):
        ThresholdPolicy(fixed=1.5)
    with pytest.raises(ConfigError):
        ThresholdPolicy(objective="precision")


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, (60, 3), elements=st.floats(0, 1)), st.data())
def test_rate_cut_predicts_as_many_rows_as_positives(P, data):
    Y = data.draw(arrays(np.uint8, P.shape, elements=st.integers(0, 1)))
    rate = fit_thresholds(Y, P, ThresholdPolicy(shrinkage=1e12, shrink_to="rate"))
    glob = fit_thresholds(Y, P, ThresholdPolicy(mode="global"))[0]
    lower = fit_thresholds(Y, P, ThresholdPolicy(shrinkage=1e12, shrink_to="lower"))
    for j in range(Y.shape[1]):
        n = int(Y[:, j].sum())
        if n in (0, len(Y)):  # no cut of its own: the global one
            assert rate[j] == pytest.approx(glob) and lower[j] == pytest.approx(glob)
            continue
        top = np.sort(P[:, j])[::-1]
        if top[n - 1] > top[n]:  # no tie at the boundary: exactly n rows are predicted
            assert int((P[:, j] >= rate[j]).sum()) == n
        assert lower[j] == pytest.approx(min(rate[j], glob), abs=1e-9)


def test_a_cut_between_subnormal_scores_still_separates_them():
    """Halfway between 5e-324 and 0 rounds to 0, which would predict every row: the cut is
    then the higher score itself (hypothesis found this one)."""
    P = np.ones((60, 1))
    P[[0, 12, 51], 0] = [5e-324, 0.0, 0.0]
    Y = np.ones((60, 1), dtype=np.uint8)
    Y[[12, 36], 0] = 0  # 58 positives: the 58th highest score is 5e-324, the next 0
    rate = fit_thresholds(Y, P, ThresholdPolicy(shrinkage=1e12, shrink_to="rate"))
    assert int((P[:, 0] >= rate[0]).sum()) == 58


def test_a_rare_label_below_the_global_cut_is_predicted_with_its_rate_cut():
    rng = np.random.default_rng(3)
    Y = (rng.random((2000, 2)) < [0.4, 0.01]).astype(np.uint8)
    # label 1 is ranked well but its probabilities stay far below label 0's
    P = np.c_[np.clip(Y[:, 0] * 0.5 + rng.random(2000) * 0.5, 0, 1), 0.02 + 0.1 * Y[:, 1]]
    P[:, 1] += rng.random(2000) * 0.05
    old = fit_thresholds(Y, P, ThresholdPolicy(shrinkage=30, shrink_to="global"))
    new = fit_thresholds(Y, P, ThresholdPolicy())  # lower, k=1000
    assert f1_score(Y[:, 1], P[:, 1] >= old[1], zero_division=0) == 0.0
    assert f1_score(Y[:, 1], P[:, 1] >= new[1]) > 0.8
    with pytest.raises(ConfigError):
        ThresholdPolicy(shrink_to="median")


def test_at_least_one_label_per_row():
    P = np.array([[0.1, 0.2], [0.9, 0.1], [0.05, 0.01]])
    t = np.array([0.5, 0.4])
    plain = apply_thresholds(P, t)
    assert plain[0].sum() == 0
    forced = apply_thresholds(P, t, at_least_one=True)
    assert (forced.sum(axis=1) >= 1).all()
    assert forced[0].tolist() == [0, 1]  # 0.2/0.4 beats 0.1/0.5
    assert (forced[1] == plain[1]).all()


def test_weight_schemes():
    Y = np.zeros((100, 3), dtype=np.uint8)
    Y[:50, 0] = 1
    Y[:10, 1] = 1
    assert Weighting("none").weights(Y).tolist() == [1, 1, 1]
    assert Weighting("balanced").weights(Y)[:2] == pytest.approx([1.0, 9.0])
    assert Weighting("sqrt").weights(Y)[1] == pytest.approx(3.0)
    eff = Weighting("effective", beta=0.99).weights(Y)
    assert eff[1] == pytest.approx((1 - 0.99**90) / (1 - 0.99**10))
    assert Weighting("balanced").weights(Y)[2] == 1.0  # no positive: neutral
    assert Weighting("balanced", cap=5).weights(Y)[1] == 5.0
    assert Weighting({"b": 2.0}).weights(Y, ["a", "b", "c"]).tolist() == [1, 2, 1]
    with pytest.raises(ConfigError, match="unknown label"):
        Weighting({"zz": 2.0}).weights(Y, ["a", "b", "c"])
    with pytest.raises(ConfigError):
        Weighting("nope")


@settings(max_examples=100, deadline=None)
@given(arrays(np.uint8, (50, 4), elements=st.integers(0, 1)), st.data())
def test_label_cuts_with_mostly_zero_scores_are_the_best_cut(Y, data):
    """A label tree leaves most probabilities at 0 (unsearched): those rows are counted as one
    run instead of sorted, and each label's cut is still the best one (brute force over every
    distinct score, 0 included)."""
    P = data.draw(arrays(np.float64, Y.shape, elements=st.sampled_from([0.0, 0.0, 0.0, 0.2, 0.6])
                         | st.floats(0.01, 1)))  # fmt: skip
    own = fit_thresholds(Y, P, ThresholdPolicy(shrinkage=0))
    for j in range(Y.shape[1]):
        y, p = Y[:, j], P[:, j]
        if y.sum() in (0, len(y)):
            continue
        best = max(f1_score(y, p >= c, zero_division=0) for c in np.unique(p))
        assert f1_score(y, p >= own[j], zero_division=0) == pytest.approx(best)


@settings(max_examples=150, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 6)), elements=st.integers(0, 1)),
    st.data(),
)
def test_sparse_scores_give_the_dense_cuts_and_predictions(Y, data):
    """A label tree's held-out probabilities stay sparse (the labels it did not search are
    absent, read as 0): every policy's cuts and the predictions they give are those of the
    same scores dense."""
    import scipy.sparse as sp

    P = data.draw(arrays(np.float64, Y.shape, elements=st.sampled_from([0.0, 0.0, 0.0, 0.4])
                         | st.floats(0.01, 1)))  # fmt: skip
    policies = [
        ThresholdPolicy(),
        ThresholdPolicy(shrinkage=0),
        ThresholdPolicy(shrink_to="rate", shrinkage=5),
        ThresholdPolicy(mode="global"),
        ThresholdPolicy(objective="precision", target=0.7),
        ThresholdPolicy(objective="recall", target=0.6, at_least_one=True),
    ]
    for policy in policies:
        dense = fit_thresholds(Y, P, policy)
        for Ys in (Y, sp.csr_matrix(Y)):
            cuts = fit_thresholds(Ys, sp.csr_matrix(P), policy)
            np.testing.assert_allclose(cuts, dense, rtol=0, atol=1e-12)
        for t in (dense, np.maximum(dense, 1e-3), np.zeros_like(dense)):  # a cut at 0 too
            pred = apply_thresholds(sp.csr_matrix(P), t, policy.at_least_one)
            assert sp.issparse(pred)
            np.testing.assert_array_equal(
                pred.toarray(), apply_thresholds(P, t, policy.at_least_one)
            )


def test_at_least_one_never_gives_a_row_a_label_it_scored_0():
    """An empty row gets its best label relative to the threshold, but a row whose every
    probability is 0 (nothing searched) gets none, dense or sparse alike."""
    import scipy.sparse as sp

    P = np.array([[0.2, 0.0, 0.1], [0.0, 0.0, 0.0], [0.9, 0.0, 0.0]])
    t = np.array([0.5, 0.5, 0.15])
    want = [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    assert apply_thresholds(P, t, at_least_one=True).tolist() == want
    assert apply_thresholds(sp.csr_matrix(P), t, at_least_one=True).toarray().tolist() == want
