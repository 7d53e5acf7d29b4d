"""strategy="label_tree": one probabilistic label tree over 2,000 labels (the engine, no
pipeline): it ranks far above a frequency baseline, saves and loads to the same probabilities,
its own top-k search agrees with the probabilities, and settings that cannot apply are refused."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from labelwise.engine.classifier import LabelwiseClassifier
from labelwise.engine.errors import ConfigError, DataError, ModelFormatError
from labelwise.engine.label_tree import LabelTreeSettings
from labelwise.engine.metrics import precision_ndcg_at_k
from labelwise.engine.scored import top_k
from labelwise.engine.synthetic import make_multilabel_table
from labelwise.engine.synthetic_xc import make_extreme_multilabel

N_LABELS = 2000


@pytest.fixture(scope="module")
def extreme():
    X, Y = make_extreme_multilabel(n_rows=6000, n_labels=N_LABELS, n_features=4000, seed=3)
    return X[:5000], Y[:5000], X[5000:], Y[5000:]


@pytest.fixture(scope="module")
def tree(extreme):
    X, Y, _, _ = extreme
    return LabelwiseClassifier(strategy="label_tree", n_jobs=2).fit(X, Y)


def test_zipf_labels_generated(extreme):
    _, Y, _, _ = extreme
    freq = Y.sum(axis=0)
    assert Y.shape[1] == N_LABELS and freq[0] > 20 * np.median(freq[freq > 0])
    assert (freq == 0).any() or freq.min() < 5  # a long tail of rare labels


def test_ranks_far_above_frequency(extreme, tree):
    _, Y, Xt, Yt = extreme
    P = tree.predict_proba(Xt)
    assert P.shape == Yt.shape and P.min() >= 0 and P.max() <= 1
    got = precision_ndcg_at_k(Yt, P)
    # the labels most frequent in training, the same for every row: what no model gives
    prior = np.tile(Y.mean(axis=0), (Yt.shape[0], 1))
    floor = precision_ndcg_at_k(Yt, prior)
    assert got["precision_at_1"] > floor["precision_at_1"] + 0.3
    assert got["precision_at_5"] > 2 * floor["precision_at_5"]
    pred = tree.predict(Xt)
    assert pred.shape == Yt.shape and 0 < pred.sum() < Yt.size
    # thresholds come from held-out rows, one per label, never below what the tree searches
    assert len(tree.thresholds_) == N_LABELS and tree.validation_metrics_
    assert tree.thresholds_.min() >= tree.tree_.min_proba
    # a label whose held-out positives the tree never reached must not be predicted for all
    assert pred.mean(axis=0).max() < 0.5


def test_sparse_probabilities_are_the_dense_ones_without_the_zeros(extreme, tree):
    """At thousands of labels the probabilities stay sparse: the labels the tree searched,
    equal to the dense matrix, the predictions and metrics the same, and the held-out score
    (labelwise tune's) the same from sparse held-out probabilities as from dense ones."""
    import scipy.sparse as sp

    from labelwise.engine.held_out import HeldOutScore
    from labelwise.engine.metrics import evaluate

    _, _, Xt, Yt = extreme
    S, Ss = tree.predict_proba(Xt), tree.predict_proba(Xt, sparse=True)
    assert sp.issparse(Ss) and tree.sparse_proba
    assert Ss.nnz == np.count_nonzero(S) < S.size / 20
    np.testing.assert_array_equal(Ss.toarray(), S)
    P, Ps = tree.predict(Xt), tree.predict(Xt, sparse=True)
    np.testing.assert_array_equal(Ps.toarray(), P)
    assert evaluate(Yt, Ps, Ss) == pytest.approx(evaluate(Yt, P, S), nan_ok=True)
    folds = [np.arange(0, 400), np.arange(400, 1000)]
    dense, sparse = HeldOutScore(tree.policy), HeldOutScore(tree.policy)
    dense.held_out(Yt, S, folds, tree.tree_.min_proba)
    sparse.held_out(Yt, Ss, folds, tree.tree_.min_proba)
    assert sparse.metrics_ == pytest.approx(dense.metrics_)


def test_sparse_labels_fit_the_same_model(extreme, tree):
    """Y may be scipy sparse, as scikit-learn's multi-label estimators take it (100,000 labels
    do not fit in memory dense): the same tree, thresholds and held-out metrics; a model per
    label reads it as its columns; anything but 0/1 is refused."""
    import scipy.sparse as sp

    X, Y, Xt, _ = extreme
    sparse = LabelwiseClassifier(strategy="label_tree", n_jobs=2).fit(X, sp.csr_matrix(Y))
    np.testing.assert_array_equal(sparse.thresholds_, tree.thresholds_)
    assert sparse.validation_metrics_ == pytest.approx(tree.validation_metrics_)
    np.testing.assert_array_equal(sparse.predict_proba(Xt[:50]), tree.predict_proba(Xt[:50]))
    per_label = dict(n_estimators=10, cv_folds=None)
    a = LabelwiseClassifier(**per_label).fit(X[:800], sp.csc_matrix(Y[:800, :5]))
    b = LabelwiseClassifier(**per_label).fit(X[:800], Y[:800, :5])
    np.testing.assert_array_equal(a.predict_proba(Xt[:50]), b.predict_proba(Xt[:50]))
    with pytest.raises(DataError, match="only 0 and 1"):
        LabelwiseClassifier(strategy="label_tree").fit(X[:50], sp.csr_matrix(Y[:50]) * 2)


def test_save_load_same_probabilities(extreme, tree, tmp_path):
    _, _, Xt, _ = extreme
    tree.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["strategy"] == "label_tree" and manifest["level1"] == []
    assert set(manifest["label_tree"]) >= {"tree.bin", "weights.bin", "scale.npy"}
    loaded = LabelwiseClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(Xt), tree.predict_proba(Xt))
    np.testing.assert_array_equal(loaded.thresholds_, tree.thresholds_)
    weights = tmp_path / "m" / manifest["label_tree"]["weights.bin"]["file"]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a corrupted tree
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match=r"weights\.bin"):
        LabelwiseClassifier.load(tmp_path / "m")


def test_tree_top_k_is_the_probabilities_top_k(extreme, tree):
    _, _, Xt, _ = extreme
    rows = Xt[:50]
    idx, score = tree.tree_.top_k(tree._linear_matrix(rows), 10)
    names, scores = top_k(tree.predict_proba(rows), tree.labels_, 10)
    assert idx.shape == (50, 10) and (score[:, 0] >= tree.tree_.min_proba).all()
    for i in range(50):
        # below min_proba the probabilities read 0 (ties), the tree's search still ranks them
        kept = (idx[i] >= 0) & (score[i] >= tree.tree_.min_proba)
        assert [tree.labels_[j] for j in idx[i][kept]] == names[i][: kept.sum()]
        np.testing.assert_allclose(score[i][kept], scores[i][: kept.sum()])


def test_dense_tabular_features():
    table = make_multilabel_table(n_rows=1500, n_labels=12, seed=1)
    labels = [c for c in table.columns if c.startswith("label_")]
    X, Y = table.drop(["id", *labels]), table.select(labels)
    settings = LabelTreeSettings(max_leaves=4, deterministic=False)  # on n_jobs threads
    clf = LabelwiseClassifier(strategy="label_tree", label_tree=settings)
    clf.fit(X[:1200], Y[:1200])
    P = clf.predict_proba(X[1200:])
    got = precision_ndcg_at_k(Y[1200:].to_numpy(), P)
    prior = np.tile(Y[:1200].to_numpy().mean(axis=0), (300, 1))
    assert got["precision_at_1"] > precision_ndcg_at_k(Y[1200:].to_numpy(), prior)["precision_at_1"]


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"strategy": "label_tree", "weighting": "balanced"}, "weighting"),
        ({"strategy": "label_tree", "linear_weight": 0.5}, "linear_weight"),
        ({"strategy": "label_tree", "calibration": "isotonic"}, "calibration"),
        ({"strategy": "binary_relevance", "label_tree": LabelTreeSettings()}, "label_tree"),
    ],
)
def test_settings_that_cannot_apply_are_refused(params, key):
    with pytest.raises(ConfigError) as err:
        LabelwiseClassifier(**params).fit(np.zeros((10, 2)), np.eye(10, 2, dtype=int))
    assert err.value.param == key


def test_bad_settings_and_missing_values_are_named():
    with pytest.raises(ConfigError, match="arity"):
        LabelTreeSettings(arity=1)
    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(DataError, match="no label at all"):  # napkinXC itself would crash
        LabelwiseClassifier(strategy="label_tree").fit(X, np.zeros((40, 2)))
    clf = LabelwiseClassifier(strategy="label_tree").fit(X, np.eye(40, 2))
    with pytest.raises(DataError, match="columns"):
        clf.predict(X[:, :2])


def test_missing_values_read_as_zero_with_a_warning():
    X = pl.DataFrame({"x": [0.1, None, 2.0, 3.0] * 10, "z": [1.0, 0.0, 0.5, 0.2] * 10})
    Y = pl.DataFrame({"a": [0, 1] * 20, "b": [1, 0, 0, 1] * 10})
    clf = LabelwiseClassifier(strategy="label_tree").fit(X, Y)
    assert any("missing values read as 0" in w and "'x'" in w for w in clf.warnings_)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_auto_chooses_by_label_count(extreme, tree, tmp_path):
    from labelwise.engine.classifier import AUTO_LABEL_TREE_LABELS

    X, Y, Xt, _ = extreme
    assert Y.shape[1] >= AUTO_LABEL_TREE_LABELS
    auto = LabelwiseClassifier(strategy="auto", n_jobs=2).fit(X, Y)
    assert auto.strategy_ == "label_tree"
    np.testing.assert_array_equal(auto.predict_proba(Xt[:20]), tree.predict_proba(Xt[:20]))
    auto.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["strategy"] == "label_tree" and manifest["params"]["strategy"] == "auto"
    assert LabelwiseClassifier.load(tmp_path / "m").strategy_ == "label_tree"
    few = LabelwiseClassifier(strategy="auto", n_estimators=20).fit(X[:600], Y[:600, :30])
    assert few.strategy_ == "binary_relevance" and few.tree_ is None
    # what cannot apply to the tree auto chose is refused, saying auto chose it
    with pytest.raises(ConfigError, match="'auto' chose 'label_tree' for 2000 labels"):
        LabelwiseClassifier(strategy="auto", weighting="sqrt").fit(X[:600], Y[:600])


def test_one_list_of_strategies():
    """The config's and the CLI's choices are the engine's."""
    import typing

    from labelwise.cli import Strategy
    from labelwise.engine.classifier import STRATEGIES
    from labelwise.pipeline.config import Strategy as ConfigStrategy

    assert typing.get_args(ConfigStrategy) == STRATEGIES
    assert tuple(s.value for s in Strategy) == STRATEGIES


def test_one_list_of_presets():
    """The config's and the CLI's presets are the engine's (written out where importing the
    engine would slow ``labelwise --help``)."""
    import typing

    from labelwise.cli import Preset
    from labelwise.engine.classifier import PRESETS
    from labelwise.pipeline.config import ModelConfig

    assert typing.get_args(ModelConfig.model_fields["preset"].annotation) == tuple(PRESETS)
    assert tuple(p.value for p in Preset) == tuple(PRESETS)


def test_the_same_rows_fit_the_same_tree(extreme):
    X, Y, Xt, _ = extreme
    a = LabelwiseClassifier(strategy="label_tree", cv_folds=None).fit(X[:2000], Y[:2000])
    b = LabelwiseClassifier(strategy="label_tree", cv_folds=None).fit(X[:2000], Y[:2000])
    np.testing.assert_array_equal(a.predict_proba(Xt), b.predict_proba(Xt))


@pytest.mark.parametrize(
    ("strategy", "n_labels", "tree"),
    [("label_tree", 10, True), ("auto", 2000, True), ("auto", 50, False), ("chain", 2000, False)],
)
def test_tune_searches_the_tree_settings_of_a_tree(strategy, n_labels, tree):
    from labelwise.pipeline.config import parse_config
    from labelwise.pipeline.search_space import search_space

    raw = {"name": "t", "data": {"train": "t.parquet", "labels": {"prefix": "y_"}}}
    cfg = parse_config(raw | {"model": {"strategy": strategy}})
    keys = {d.key for d in search_space(cfg, text=True, n_labels=n_labels)}
    assert ("label_tree.max_leaves" in keys) is tree
    # per-label weighting and the linear head do not apply to a tree: never searched there
    assert ("weighting.scheme" in keys) is not tree
    assert ("model.params.linear_C" in keys) is not tree
    assert "text.min_df" in keys


def test_label_tree_section_needs_a_tree_strategy():
    from labelwise.pipeline.config import parse_config

    raw = {"name": "t", "data": {"train": "t.parquet", "labels": {"prefix": "y_"}}}
    with pytest.raises(ConfigError, match="label_tree section"):
        parse_config(raw | {"label_tree": {"arity": 4}})
    assert parse_config(raw | {"model": {"strategy": "auto"}, "label_tree": {"arity": 4}})


def test_a_million_distinct_label_strings_are_refused():
    from labelwise.engine.data import LabelSpec, encode_labels

    tags = pl.DataFrame({"tags": [f"t{i}|t{i + 1}" for i in range(0, 2_000_000, 2)][:5000]})
    tags = pl.concat([tags, pl.DataFrame({"tags": [f"u{i}" for i in range(1_000_000)]})])
    with pytest.raises(
        DataError, match=r"1,010,000 distinct labels over 1,005,000 rows \(the limit is 1,000,000"
    ):
        encode_labels(tags, LabelSpec(set_column="tags", separator="|"), source="tags.parquet")
