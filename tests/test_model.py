from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.metrics import f1_score

from labelwise.engine.classifier import LabelwiseClassifier
from labelwise.engine.errors import ConfigError, ModelFormatError, NotFittedError
from labelwise.engine.persistence import FORMAT_VERSION


@pytest.fixture(scope="module")
def data(split_table):
    train, test = split_table
    labels = [c for c in train.columns if c.startswith("label_")]
    return (
        train.drop(["id", *labels]),
        train.select(labels),
        test.drop(["id", *labels]),
        test.select(labels).to_numpy(),
    )


@pytest.fixture(scope="module")
def fitted(data):
    X, Y, _, _ = data
    return LabelwiseClassifier(n_estimators=200).fit(X, Y)


def test_fit_predict_beats_baselines(data, fitted):
    _, Y, Xt, Yt = data
    P = fitted.predict_proba(Xt)
    assert P.shape == Yt.shape and P.min() >= 0 and P.max() <= 1
    pred = fitted.predict(Xt)
    assert pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1}
    macro = f1_score(Yt, pred, average="macro", zero_division=0)
    # predicting each label's training prevalence as a coin flip is the floor to beat by far
    prev = Y.to_numpy().mean(axis=0)
    rng = np.random.default_rng(0)
    coin = (rng.random(Yt.shape) < prev).astype(np.uint8)
    assert macro > f1_score(Yt, coin, average="macro", zero_division=0) + 0.2
    # tuned thresholds beat a flat 0.5 cut on macro-F1
    assert macro >= f1_score(Yt, (P >= 0.5).astype(np.uint8), average="macro", zero_division=0)
    assert fitted.labels_ == list(Y.columns)
    assert len(fitted.thresholds_) == Yt.shape[1]


def test_shared_dataset_equals_fresh_dataset(data):
    """The one-binned-Dataset trick trains the same model as a fresh Dataset per label."""
    X, Y, _, _ = data
    clf = LabelwiseClassifier(n_estimators=30, cv_folds=None, validation_fraction=0, n_jobs=1)
    clf.fit(X, Y)
    Xa = clf.encoder_.transform(X)
    Ya = Y.to_numpy()
    params = clf._lgb_params()
    for j in (0, 5, 17):
        ds = lgb.Dataset(
            Xa,
            label=Ya[:, j],
            params=clf._dataset_params(),
            categorical_feature=clf.categorical_features_,
        )
        ref = lgb.train(params, ds, num_boost_round=30)
        assert np.allclose(ref.predict(Xa), clf.level1_[0][j].predict(Xa))


def test_parallel_equals_serial(data):
    X, Y, Xt, _ = data
    a = LabelwiseClassifier(n_estimators=60, n_jobs=1).fit(X, Y)
    b = LabelwiseClassifier(n_estimators=60, n_jobs=2).fit(X, Y)
    assert np.allclose(a.predict_proba(Xt), b.predict_proba(Xt))
    assert np.allclose(a.thresholds_, b.thresholds_)


@pytest.mark.parametrize(
    "strategy, cv_folds", [("binary_relevance", 2), ("chain", 2), ("binary_relevance", None)]
)
def test_remote_runner_equals_local(data, strategy, cv_folds):
    """Chunks shipped to other processes (the Dask path, here a process pool) train the same
    models as the in-process fit: same probabilities, same thresholds (with cross-fitting,
    and with a hold-out + refit, where the thresholds must come from the pre-refit models)."""
    from concurrent.futures import ProcessPoolExecutor

    from labelwise.engine.executors import ThreadExecutor

    X, Y, Xt, _ = data
    steps: list[str] = []
    import multiprocessing

    # spawn, as Dask's worker processes do: a forked child of an OpenMP parent can hang
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:

        class ProcessExecutor(ThreadExecutor):
            shares_memory = False  # self-contained chunks, as a Dask cluster gets them

            def map(self, step, fn, items):
                steps.append(step)
                return pool.map(fn, items)  # lazily, in order, as the flow does

        params = dict(strategy=strategy, n_estimators=60, cv_folds=cv_folds, n_jobs=1)
        remote = LabelwiseClassifier(**params).fit(X, Y, executor=ProcessExecutor(2))
    local = LabelwiseClassifier(**params).fit(X, Y)
    assert steps  # the work did go through the runner
    assert np.allclose(local.predict_proba(Xt), remote.predict_proba(Xt))
    assert np.allclose(local.thresholds_, remote.thresholds_)


@pytest.mark.parametrize("strategy", ["stacking", "chain", "chain_ensemble"])
def test_dependency_strategies(data, strategy, tmp_path):
    X, Y, Xt, Yt = data
    clf = LabelwiseClassifier(strategy=strategy, n_estimators=80, n_chains=2, n_folds=2)
    clf.fit(X, Y)
    pred = clf.predict(Xt)
    assert f1_score(Yt, pred, average="micro") > 0.5
    assert clf.level2_ and len(clf.level2_[0]) == Yt.shape[1]
    clf.save(tmp_path / "m")
    again = LabelwiseClassifier.load(tmp_path / "m")
    assert np.allclose(again.predict_proba(Xt), clf.predict_proba(Xt))


def test_stacking_with_eval_set_uses_out_of_fold_inputs(data):
    X, Y, Xt, Yt = data
    Ya = Y.to_numpy()
    clf = LabelwiseClassifier(strategy="stacking", n_estimators=40, n_folds=2).fit(
        X.head(2000), Ya[:2000], eval_set=(X.tail(400), Ya[-400:])
    )
    # the second level learnt from real first-level probabilities, not from zeros
    n_feat = len(clf.encoder_.features)
    used = sum(
        m.booster.feature_importance("split")[n_feat:].sum()
        for m in clf.level2_[0]
        if m.booster is not None
    )
    assert used > 0
    assert f1_score(Yt, clf.predict(Xt), average="micro") > 0.5


def test_chain_respects_order(data):
    """In a chain, the first label may not look at any other label's probability."""
    X, Y, _, _ = data
    clf = LabelwiseClassifier(strategy="chain", n_estimators=40, n_folds=2).fit(X, Y)
    order = clf.orders_[0]
    n_feat = len(clf.encoder_.features)
    first = clf.level2_[0][order[0]].booster.feature_importance("split")
    assert first[n_feat:].sum() == 0
    last = clf.level2_[0][order[-1]].booster.feature_importance("split")
    assert last[n_feat:].sum() > 0


def test_cross_fitting_and_calibration(data):
    X, Y, Xt, Yt = data
    clf = LabelwiseClassifier(cv_folds=3, n_estimators=80, calibration="isotonic").fit(X, Y)
    assert len(clf.level1_) == 3 and clf.calibrators_ is not None
    assert f1_score(Yt, clf.predict(Xt), average="micro") > 0.5


def test_constant_labels_and_eval_set(data):
    X, Y, Xt, _ = data
    Ya = Y.to_numpy().copy()
    Ya[:, 0] = 0  # never positive
    Ya[:, 1] = 1  # always positive
    Xv, Yv = X.tail(400), Ya[-400:]
    clf = LabelwiseClassifier(n_estimators=50).fit(X.head(2000), Ya[:2000], eval_set=(Xv, Yv))
    P = clf.predict_proba(Xt)
    assert (P[:, 0] == 0).all() and (P[:, 1] == 1).all()
    assert clf.level1_[0][0].booster is None


def test_sklearn_conventions(fitted):
    params = fitted.get_params()
    assert params["strategy"] == "binary_relevance"
    c = clone(fitted)
    assert c.get_params() == params and not hasattr(c, "thresholds_")
    c.set_params(learning_rate=0.3)
    assert c.learning_rate == 0.3
    assert repr(c) == "LabelwiseClassifier(learning_rate=0.3, n_estimators=200)"  # non-defaults
    with pytest.raises(ValueError, match="invalid parameter 'learning_rat'"):
        c.set_params(learning_rat=0.3)
    with pytest.raises(NotFittedError):
        c.predict(np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="strategy"):
        LabelwiseClassifier(strategy="nope").fit(np.zeros((4, 2)), np.zeros((4, 2)))


def test_weighting_changes_models(data):
    X, Y, _, _ = data
    clf = LabelwiseClassifier(n_estimators=30, weighting="balanced").fit(X, Y)
    assert (clf.label_weights_ > 1).all()


def test_extra_trees_draws_thresholds_only_where_there_is_a_choice(data, tmp_path: Path):
    X, Y, _, _ = data
    numbers = X.select(pl.selectors.float())
    rng = np.random.default_rng(0)
    zero_one = (rng.random((numbers.height, 8)) < 0.3).astype(np.float64)
    zero_one[:, 0] = Y.to_numpy()[:, 0] ^ (rng.random(numbers.height) < 0.2)

    def proba(A, extra_trees: bool) -> np.ndarray:
        clf = LabelwiseClassifier(n_estimators=40, extra_trees=extra_trees, cv_folds=None)
        return clf.fit(A, Y).predict_proba(A)

    assert not np.array_equal(proba(numbers, True), proba(numbers, False))
    # one threshold per 0/1 feature: nothing to draw, the same trees
    assert np.array_equal(proba(zero_one, True), proba(zero_one, False))
    with pytest.raises(ConfigError, match="extra_trees"):
        LabelwiseClassifier(lgb_params={"extra_trees": False}).fit(zero_one, Y)

    # a model written before the setting existed searched its thresholds, and says so
    d = tmp_path / "old"
    LabelwiseClassifier(n_estimators=5, extra_trees=False, cv_folds=None).fit(zero_one, Y).save(d)
    manifest = json.loads((d / "manifest.json").read_text())
    del manifest["params"]["extra_trees"]
    (d / "manifest.json").write_text(json.dumps(manifest))
    assert LabelwiseClassifier.load(d).get_params()["extra_trees"] is False
    manifest["params"]["lgb_params"] = {"extra_trees": True, "min_data_in_bin": 3}
    (d / "manifest.json").write_text(json.dumps(manifest))
    params = LabelwiseClassifier.load(d).get_params()
    assert params["extra_trees"] is True and params["lgb_params"] == {"min_data_in_bin": 3}


def test_save_load_round_trip_and_tampering(fitted, data, tmp_path: Path):
    _, _, Xt, _ = data
    d = tmp_path / "model"
    fitted.save(d)
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["labels"] == fitted.labels_
    assert manifest["encoder"]["categories"]["city"]
    assert not list(d.rglob("*.pkl"))
    loaded = LabelwiseClassifier.load(d)
    assert np.array_equal(loaded.predict_proba(Xt), fitted.predict_proba(Xt))
    assert np.array_equal(loaded.predict(Xt), fitted.predict(Xt))

    def broken(edit):
        b = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        shutil.copytree(d, b)
        m = json.loads((b / "manifest.json").read_text())
        edit(b, m)
        (b / "manifest.json").write_text(json.dumps(m))
        return b

    cases = {
        "not supported": lambda b, m: m.update(format_version=99),
        "outside": lambda b, m: m["level1"][0][0].update(file="../../etc/passwd"),
        "missing": lambda b, m: (b / m["level1"][0][2]["file"]).unlink(),
        "digest": lambda b, m: (b / m["level1"][0][3]["file"]).write_text("tree\n"),
        "thresholds": lambda b, m: m.update(thresholds=m["thresholds"][:-1]),
    }
    for match, edit in cases.items():
        with pytest.raises(ModelFormatError, match=match):
            LabelwiseClassifier.load(broken(edit))
    with pytest.raises(ModelFormatError, match="manifest"):
        LabelwiseClassifier.load(tmp_path / "nowhere")


def test_pandas_rows_score_like_the_table_path(data):
    """A numeric model reads a pandas frame in one conversion (the served path); it must
    score exactly as the per-column table path, and fall back to it for anything odd."""
    X, Y, Xt, _ = data
    numeric = [c for c in X.columns if X.schema[c].is_numeric()]
    clf = LabelwiseClassifier(n_estimators=30, cv_folds=2).fit(X.select(numeric), Y)
    rows = Xt.select(numeric).head(7)
    expected = clf.predict_proba(rows)
    shuffled = rows.select(list(reversed(numeric))).to_pandas()  # column order is by name
    assert clf._numeric_pandas(shuffled) is not None
    np.testing.assert_array_equal(clf.predict_proba(shuffled), expected)
    with_nan = rows.with_columns(pl.lit(None, dtype=pl.Float64).alias(numeric[0]))
    np.testing.assert_array_equal(
        clf.predict_proba(with_nan.to_pandas()), clf.predict_proba(with_nan)
    )
    from labelwise.engine.errors import DataError

    with pytest.raises(DataError, match=repr(numeric[1])):
        clf.predict_proba(rows.drop(numeric[1]).to_pandas())
    odd = rows.to_pandas().astype({numeric[2]: object})
    odd.loc[0, numeric[2]] = "abc"
    with pytest.raises(DataError, match=repr(numeric[2])):
        clf.predict_proba(odd)
