"""Text columns and sparse matrices in the engine: found or declared, vectorised inside the model,
saved without pickle, and scored from raw text."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score

from labelwise.engine.classifier import LabelwiseClassifier
from labelwise.engine.data import DataWarning, FeatureEncoder, LabelSpec, table_xy
from labelwise.engine.errors import ConfigError, DataError, ModelFormatError
from labelwise.engine.persistence import FORMAT_VERSION
from labelwise.engine.synthetic_text import make_text_table
from labelwise.engine.text import TOKEN_PATTERN, TextColumn, TextSettings

FAST = {"n_estimators": 60, "cv_folds": 3}


@pytest.fixture(scope="module")
def docs():
    df = make_text_table(n_rows=900, n_labels=8, vocabulary=1500, body_words=40, seed=3)
    X, Ys, labels = table_xy(
        df, LabelSpec(set_column="topics", separator="|"), exclude=["doc_id", "published"]
    )
    Y = Ys.toarray()  # a label-set column's matrix is sparse; these tests index it densely
    return X[:700], Y[:700], X[700:], Y[700:], labels


@pytest.fixture(scope="module")
def fitted(docs):
    X, Y, _, _, labels = docs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return LabelwiseClassifier(**FAST).fit(X, Y, labels=labels)


def test_text_columns_are_found_and_say_so(docs):
    X = docs[0]
    with pytest.warns(DataWarning, match=r"\['title', 'body'\] hold free text"):
        enc = FeatureEncoder().fit(X, X.columns)
    assert enc.text_columns == ["title", "body"]
    assert enc.tabular_features == []
    assert any("free text" in w for w in enc.warnings_)


def test_declared_text_columns_are_used_as_given(docs):
    X, *_ = docs
    with pytest.warns(DataWarning, match=r"\['title'\] hold many distinct short strings"):
        enc = FeatureEncoder().fit(X, X.columns, text_columns=["body"])
    assert enc.text_columns == ["body"]
    assert enc.tabular_features == ["title"]  # declared: title stays a (warned-about) category
    with pytest.raises(DataError, match=r"text column\(s\) \['summary'\] are not feature"):
        FeatureEncoder().fit(X, X.columns, text_columns=["summary"])
    numbers = pl.DataFrame({"n": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="text column 'n' has type Float64"):
        FeatureEncoder().fit(numbers, ["n"], text_columns=["n"])


def test_an_id_column_is_never_silently_a_category():
    df = pl.DataFrame({"ticket": [f"T-{i:05d}" for i in range(200)], "x": np.arange(200.0)})
    with pytest.warns(DataWarning, match=r"\['ticket'\] hold many distinct short strings"):
        enc = FeatureEncoder().fit(df, df.columns)
    assert enc.text_columns == []


def test_the_text_model_learns_what_a_category_cannot(docs, fitted):
    X, Y, Xt, Yt, _ = docs
    pred = fitted.predict(Xt)
    micro = f1_score(Yt, pred, average="micro")
    assert fitted.encoder_.text_columns == ["title", "body"]
    # the same table with text as categories (the behaviour before text columns): every test
    # document is an unseen category, so the model can only guess prevalences
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        as_category = LabelwiseClassifier(text_columns=None, **FAST).fit(X, Y)
    baseline = as_category.predict(Xt)
    assert micro > f1_score(Yt, baseline, average="micro") + 0.15
    macro = f1_score(Yt, pred, average="macro", zero_division=0)
    assert macro > f1_score(Yt, baseline, average="macro", zero_division=0) + 0.25
    assert fitted.linear_weight_ in (0.0, 0.25, 0.5, 0.75, 1.0)


def test_top_terms_name_each_labels_own_words(docs, fitted):
    from labelwise.engine.explain import top_terms

    table = top_terms(fitted, k=5)
    assert set(table["label"]) <= set(fitted.labels_) and table["rank"].max() <= 5
    assert (table["weight"] > 0).all() and set(table["column"]) <= {"title", "body"}
    # the synthetic topics have their own words: labels' top terms barely overlap
    tops = table.group_by("label").agg(pl.col("term")).to_dict(as_series=False)
    sets = [set(t) for t in tops["term"]]
    shared = sum(len(a & b) for i, a in enumerate(sets) for b in sets[i + 1 :])
    assert shared < sum(len(a) for a in sets) / 2


def test_the_important_terms_and_their_presence_are_what_the_monitor_profiles(docs, fitted):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.feature_selection import chi2

    from labelwise.engine.explain import important_terms, top_terms

    X, _, Xt, _, _ = docs
    terms = important_terms(fitted, k=12)
    assert 0 < len(terms) <= 12 and all(":term:" in t for t in terms)
    assert set(terms) <= set(fitted.encoder_.term_names())
    # each text column's importance is split over its terms: never more than the column's
    column = fitted.feature_importance()
    for name in ("title", "body"):
        mine = [v for t, v in terms.items() if t.startswith(f"{name}:term:")]
        assert all(v >= 0 for v in mine) and sum(mine) <= column[name] + 1e-12
    # each is among the terms that push some label up (top_terms' rows), and it is a topic's
    # word: in documents of one label or another far more often than in the rest
    pushing = top_terms(fitted, k=fitted.encoder_.n_terms)
    assert set(terms) <= {f"{c}:term:{t}" for c, t in pushing.select("column", "term").rows()}
    Ytr = docs[1].astype(bool)

    def association(names: list[str]) -> np.ndarray:  # chi2 of presence, best over labels
        held = fitted.encoder_.term_presence(X, names)
        return np.max([chi2(held, Ytr[:, i])[0] for i in range(Ytr.shape[1])], axis=0)

    picked, every = association(list(terms)), association(fitted.encoder_.term_names())
    assert np.median(picked) > np.percentile(every, 90)
    # presence is 1 exactly where scikit-learn's own count of the term is positive
    P = fitted.encoder_.term_presence(Xt, list(terms))
    assert P.shape == (Xt.height, len(terms)) and set(np.unique(P)) <= {0.0, 1.0}
    for j, name in enumerate(terms):
        col, _, term = name.partition(":term:")
        counts = CountVectorizer(vocabulary=[term]).fit_transform(Xt[col].fill_null(""))
        np.testing.assert_array_equal(P[:, j], counts.toarray()[:, 0] > 0)
    names, M = fitted.encoder_.profile_columns(Xt, terms=list(terms))
    assert names[-len(terms) :] == list(terms)
    np.testing.assert_array_equal(M[:, -len(terms) :], P)
    with pytest.raises(DataError, match="no term"):
        fitted.encoder_.term_presence(Xt, ["body:term:zzzunknown"])
    assert important_terms(fitted, k=0) == {}


def test_save_load_scores_raw_text_identically(tmp_path, docs, fitted):
    _, _, Xt, _, _ = docs
    fitted.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    files = {p.relative_to(tmp_path / "m").as_posix() for p in (tmp_path / "m").rglob("*.*")}
    assert {"text/000.json", "text/001.json"} <= files
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)
    loaded = LabelwiseClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(Xt), fitted.predict_proba(Xt))
    np.testing.assert_array_equal(loaded.predict(Xt), fitted.predict(Xt))
    # an edited vocabulary is refused, naming the file
    vocab = tmp_path / "m" / "text" / "000.json"
    vocab.write_text(vocab.read_text().replace('"idf": [', '"idf": [9.0, '))
    with pytest.raises(ModelFormatError, match=r"text/000\.json"):
        LabelwiseClassifier.load(tmp_path / "m")


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abc de\u00e9\u4e2d1!", min_size=0, max_size=40), min_size=2, max_size=30
    ),
    st.integers(1, 3),
)
def test_vocabulary_round_trip_transforms_identically(texts, ngram_max):
    s = pl.Series("t", texts)
    column = TextColumn("t", TextSettings(ngram_max=ngram_max))
    try:
        counts, tfidf = column.fit_transform(s, "table")
    except DataError:  # no word in any document
        return
    again = TextColumn.from_json("t", column.settings, column.to_json(), "m")
    counts2, tfidf2 = again.transform(s, "table")
    assert abs(counts - counts2).sum() == 0 and abs(tfidf - tfidf2).sum() == 0
    # ... tf-idf equal to scikit-learn's own vectoriser with the same settings, and the counts
    # its term counts
    ref = TfidfVectorizer(
        ngram_range=(1, ngram_max), sublinear_tf=True, token_pattern=TOKEN_PATTERN
    )
    np.testing.assert_allclose(
        tfidf2.toarray(), ref.fit_transform(texts).toarray(), rtol=1e-6, atol=1e-7
    )
    assert column.terms() == list(ref.get_feature_names_out())
    words = [TfidfVectorizer(token_pattern=TOKEN_PATTERN).build_analyzer()(t) for t in texts]
    assert counts2.sum() == sum(len(w) for w in words) or ngram_max > 1


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.text(alphabet="ab de\u00e9_1.", min_size=0, max_size=30), min_size=2, max_size=20),
    st.integers(1, 3),
    st.integers(0, 2),
)
def test_character_ngrams_are_scikit_learns(texts, ngram_min, extra):
    settings = TextSettings(analyzer="char_wb", ngram_min=ngram_min, ngram_max=ngram_min + extra)
    column = TextColumn("t", settings)
    s = pl.Series("t", texts)
    try:
        column.fit_transform(s, "table")
    except DataError:  # no term in any document
        return
    again = TextColumn.from_json("t", settings, column.to_json(), "m")
    ref = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(ngram_min, ngram_min + extra), sublinear_tf=True
    )
    np.testing.assert_allclose(
        again.transform(s, "table")[1].toarray(),
        ref.fit_transform(texts).toarray(),
        rtol=1e-6,
        atol=1e-7,
    )
    assert again.terms() == list(ref.get_feature_names_out())
    _, oov = again.statistics(pl.Series("t", ["zzzz", *texts[:1]]), "table")
    grams = ref.build_analyzer()("zzzz")  # the padding spaces may be known, the z's are not
    assert oov[0] == np.mean([g not in ref.vocabulary_ for g in grams]) > 0


def test_character_ngrams_model_round_trip(docs, tmp_path: Path):
    X, Y, Xt, _, labels = docs
    text = TextSettings(analyzer="char_wb", ngram_min=2, ngram_max=4, max_features=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        clf = LabelwiseClassifier(**FAST, text=text).fit(X, Y, labels=labels)
    assert clf.encoder_.text[0].n_terms <= 5000
    assert all(len(t) <= 4 for t in clf.encoder_.text[0].terms())
    clf.save(tmp_path / "m")
    again = LabelwiseClassifier.load(tmp_path / "m")
    assert again.encoder_.text[0].settings == text
    np.testing.assert_array_equal(again.predict_proba(Xt), clf.predict_proba(Xt))
    with pytest.raises(ConfigError, match="ngram_min"):
        TextSettings(ngram_min=3, ngram_max=2)
    with pytest.raises(ConfigError, match="analyzer"):
        TextSettings(analyzer="char")


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abc de\u00e9\u4e2d1!", min_size=0, max_size=40), min_size=2, max_size=30
    ),
    st.integers(1, 2),
    st.sampled_from(["word", "char_wb"]),
)
def test_hashed_terms_are_scikit_learns(texts, ngram_max, analyzer):
    """Hashing: the kept buckets' tf-idf equals scikit-learn's ``HashingVectorizer`` +
    ``TfidfTransformer`` on those columns, every other bucket is empty in the training rows,
    and the saved buckets transform identically."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

    settings = TextSettings(
        analyzer=analyzer, ngram_max=ngram_max, hashing=True, hash_buckets=2**12
    )
    column = TextColumn("t", settings)
    s = pl.Series("t", texts)
    try:
        counts, tfidf = column.fit_transform(s, "table")
    except DataError:  # no term in any document
        return
    pattern = TOKEN_PATTERN if analyzer == "word" else None
    hashed = HashingVectorizer(
        analyzer=analyzer, ngram_range=(1, ngram_max), token_pattern=pattern,
        n_features=2**12, alternate_sign=False, norm=None,
    ).transform(texts)  # fmt: skip
    ref = TfidfTransformer(sublinear_tf=True).fit_transform(hashed).toarray()
    kept = column.buckets
    assert kept is not None and set(np.flatnonzero(ref.any(axis=0))) == set(kept.tolist())
    np.testing.assert_allclose(tfidf.toarray(), ref[:, kept], rtol=1e-6, atol=1e-7)
    # each bucket is named by a term that hashes into it (every document is read to name them)
    assert column.bucket_names is not None and all(column.bucket_names)
    assert column.terms() == [f"{n} (#{b})" for n, b in zip(column.bucket_names, kept, strict=True)]
    named = HashingVectorizer(
        analyzer=lambda t: [t], n_features=2**12, alternate_sign=False, norm=None
    ).transform(column.bucket_names)
    assert named.indices.tolist() == kept.tolist()
    again = TextColumn.from_json("t", settings, column.to_json(), "m")
    counts2, tfidf2 = again.transform(s, "table")
    assert abs(counts - counts2).sum() == 0 and abs(tfidf - tfidf2).sum() == 0
    _, oov = again.statistics(s, "table")  # the training documents' terms are all kept
    assert np.all((oov == 0) | np.isnan(oov))


def test_hashed_text_model_scores_like_the_vocabulary_one(docs, fitted, tmp_path: Path):
    X, Y, Xt, Yt, labels = docs
    text = TextSettings(hashing=True, hash_buckets=2**16, max_features=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        clf = LabelwiseClassifier(**FAST, text=text).fit(X, Y, labels=labels)
    assert all(t.n_terms <= 1000 for t in clf.encoder_.text)
    micro = f1_score(Yt, clf.predict(Xt), average="micro")
    assert micro > f1_score(Yt, fitted.predict(Xt), average="micro") - 0.05
    # the explanation names words, as the vocabulary model's does, and mostly the same ones
    from labelwise.engine.explain import top_terms

    hashed = top_terms(clf, k=5)
    assert hashed["term"].str.contains(r"^\w+ \(#\d+\)$").all()
    words = set(hashed["term"].str.replace(r" \(#\d+\)$", ""))
    assert len(words & set(top_terms(fitted, k=5)["term"])) >= len(words) / 2
    clf.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "text" / "001.json").read_text())
    assert "vocabulary" not in saved and len(saved["buckets"]) == len(saved["idf"])
    again = LabelwiseClassifier.load(tmp_path / "m")
    assert again.encoder_.text[1].settings == text
    np.testing.assert_array_equal(again.predict_proba(Xt), clf.predict_proba(Xt))
    # a document of words never seen in training hashes into buckets it did not keep
    unseen = Xt.head(1).with_columns(body=pl.lit("qqqzz xxyyq wwvvk"))
    _, stats = again.encoder_.text_profile(unseen)
    assert stats[0, 3] > 0.5  # body:oov_share
    # an edited file is refused naming it; buckets out of order or beyond hash_buckets too
    (tmp_path / "m" / "text" / "001.json").write_text(json.dumps({**saved, "idf": [1.0]}))
    with pytest.raises(ModelFormatError, match=r"text/001\.json"):
        LabelwiseClassifier.load(tmp_path / "m")
    for bad in (saved["buckets"][::-1], [*saved["buckets"][:-1], 2**16]):
        with pytest.raises(ModelFormatError, match="'body': vocabulary and idf disagree"):
            TextColumn.from_json("body", text, json.dumps({**saved, "buckets": bad}), "m")
    with pytest.raises(ConfigError, match="hash_buckets"):
        TextSettings(hashing=True, hash_buckets=10)


def test_bad_text_values(docs, fitted):
    _, _, Xt, _, _ = docs
    odd = Xt.head(3).with_columns(
        body=pl.Series(["", None, "x" * 1_000_000]),  # empty, null, a 1 MB document
    )
    P = fitted.predict_proba(odd)
    assert P.shape == (3, len(fitted.labels_)) and np.isfinite(P).all()
    with pytest.raises(DataError, match=r"X: feature column\(s\) \['body'\] are missing"):
        fitted.predict_proba(Xt.drop("body"))
    with pytest.raises(DataError, match="text column 'body' has type Int64"):
        fitted.predict_proba(Xt.head(2).with_columns(body=pl.Series([1, 2])))


def test_invalid_utf8_in_a_csv_names_the_file(tmp_path: Path):
    from labelwise.engine.data import read_table

    path = tmp_path / "tickets.csv"
    path.write_bytes(b"body,tags\nhello world,a\n\xff\xfe broken bytes,b\n")
    with pytest.raises(DataError, match=r"tickets\.csv: cannot read .*save the file as UTF-8"):
        read_table(path)


def test_sparse_matrices_are_accepted_like_arrays():
    rng = np.random.default_rng(0)
    dense = (rng.random((400, 30)) < 0.15) * rng.random((400, 30))
    Y = np.column_stack([dense[:, 0] > 0, (dense[:, 1] + dense[:, 2]) > 0.3]).astype(np.uint8)
    params = {"linear_weight": 0.0, "n_estimators": 40, "cv_folds": 3}
    from_dense = LabelwiseClassifier(**params).fit(dense, Y)
    for fmt in (sp.csr_matrix, sp.csc_matrix):
        from_sparse = LabelwiseClassifier(**params).fit(fmt(dense), Y)
        # the trees see the same values, whether given dense or sparse
        np.testing.assert_allclose(
            from_sparse.predict_proba(fmt(dense)), from_dense.predict_proba(dense), atol=1e-12
        )
    auto = LabelwiseClassifier(n_estimators=40, cv_folds=3).fit(sp.csr_matrix(dense), Y)
    assert auto.linear_weight_ in (0.0, 0.25, 0.5, 0.75, 1.0)


def test_bad_sparse_input_is_refused():
    X = sp.random(50, 6, density=0.3, format="csr", random_state=0)
    Y = np.tile([[0, 1], [1, 0], [1, 1], [0, 0], [1, 0]], (10, 1))
    clf = LabelwiseClassifier(n_estimators=5, cv_folds=None, linear_weight=1.0).fit(X, Y)
    with pytest.raises(DataError, match="X has 5 columns, the model expects 6"):
        clf.predict(X[:, :5])
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(DataError, match=r"NaN in column\(s\) \[\d\] of a sparse matrix"):
        LabelwiseClassifier().fit(bad, Y)
    bad.data[0] = np.inf
    with pytest.raises(DataError, match="infinite values"):
        clf.predict(bad)
    with pytest.raises(DataError, match="dtype complex128; it must be numeric"):
        clf.predict(X.astype(np.complex128))


def test_linear_head_alone_and_its_settings(docs):
    X, Y, Xt, Yt, labels = docs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        clf = LabelwiseClassifier(linear_weight=1.0, cv_folds=3).fit(X, Y, labels=labels)
    assert clf.level1_ == [] and clf.linear_ is not None
    assert f1_score(Yt, clf.predict(Xt), average="micro") > 0.5
    with pytest.raises(ConfigError, match="linear_weight"):
        LabelwiseClassifier(linear_weight=2.0).fit(X, Y)
    with pytest.raises(ConfigError, match="ngram_max"):
        TextSettings(ngram_max=0)


def test_text_and_tabular_columns_side_by_side(docs, tmp_path: Path):
    X, Y, Xt, Yt, labels = docs
    rng = np.random.default_rng(1)
    signal = Y[:, 0] * 2.0 + rng.normal(size=len(Y))  # a tabular column that knows label 0
    Xb = X.with_columns(score=signal, channel=pl.Series(rng.choice(["mail", "web", "app"], len(Y))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        clf = LabelwiseClassifier(**FAST).fit(Xb, Y, labels=labels)
    assert clf.encoder_.tabular_features == ["score", "channel"]
    assert clf.categorical_features_ == [1]
    importance = clf.feature_importance()
    assert set(importance) == {"title", "body", "score", "channel"}
    assert abs(sum(importance.values()) - 1) < 1e-9 or clf.linear_weight_ == 1.0
    Xtb = Xt.with_columns(score=Yt[:, 0] * 2.0, channel=pl.lit("web"))
    clf.save(tmp_path / "m")
    loaded = LabelwiseClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(Xtb), clf.predict_proba(Xtb))


def test_tune_searches_text_settings_only_for_text(tmp_path: Path):
    from labelwise.pipeline.config import parse_config, with_settings
    from labelwise.pipeline.search_space import current_values, search_space

    cfg = parse_config(
        {
            "name": "t",
            "data": {"train": "t.parquet", "labels": {"prefix": "y_"}},
            "text": {"ngram_max": 3},
        },
        base_dir=tmp_path,
    )
    plain = {d.key for d in search_space(cfg)}
    text = {d.key: d for d in search_space(cfg, text=True)}
    assert set(text) - plain == {"text.ngram_max", "text.min_df", "text.max_features",
                                 "model.params.linear_C", "model.params.linear_weight"}  # fmt: skip
    assert text["text.ngram_max"].choices == (1, 2, 3)  # the config's own value is an option
    assert text["model.params.linear_weight"].choices == ("auto", 1.0)
    own = current_values(cfg, list(text.values()))
    assert own["text.ngram_max"] == 3 and own["text.min_df"] == 1
    assert own["model.params.linear_C"] == 4.0 and own["model.params.linear_weight"] == "auto"
    assert own["text.max_features"] in text["text.max_features"].choices
    # a user's own head and vocabulary size are options too, and the trials' overrides parse
    mine = parse_config(
        {"name": "t", "data": {"train": "t.parquet", "labels": {"prefix": "y_"}},
         "model": {"params": {"linear_weight": 0.5}}, "text": {"max_features": None}},
        base_dir=tmp_path,
    )  # fmt: skip
    dims = {d.key: d for d in search_space(mine, text=True)}
    assert 0.5 in dims["model.params.linear_weight"].choices
    assert None in dims["text.max_features"].choices
    for head in dims["model.params.linear_weight"].choices:
        for size in dims["text.max_features"].choices:
            trial = with_settings(
                mine, {"model.params.linear_weight": head, "text.max_features": size}
            )
            assert trial.estimator().get_params()["linear_weight"] == head
            assert trial.text.max_features == size
