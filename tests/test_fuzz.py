"""Property-based fuzzing of contract -> encode -> fit -> predict: any table ends in a result or
in labelwise's own error type, never in another exception."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelwise.engine.classifier import LabelwiseClassifier
from labelwise.engine.data import LabelSpec, table_xy
from labelwise.engine.errors import LabelwiseError

FLOATS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32))
LABEL_VALUES = st.one_of(st.sampled_from([0, 1]), st.sampled_from([0, 1, 2, -1, None]))


@st.composite
def column(draw, n: int) -> pl.Series:
    kind = draw(st.sampled_from(["float", "int", "str", "bool", "null", "numstr"]))
    if kind == "float":
        return pl.Series(draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype=pl.Float64)
    if kind == "int":
        return pl.Series(
            draw(st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=n, max_size=n)),
            dtype=pl.Int64,
        )
    if kind == "str":
        return pl.Series(
            draw(
                st.lists(
                    st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), min_size=n, max_size=n
                )
            ),
            dtype=pl.String,
        )
    if kind == "numstr":  # numbers with a stray word: a mixed column
        return pl.Series(
            draw(st.lists(st.sampled_from(["1", "2.5", "x"]), min_size=n, max_size=n)),
            dtype=pl.String,
        )
    if kind == "bool":
        return pl.Series(
            draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n)),
            dtype=pl.Boolean,
        )
    return pl.Series([None] * n, dtype=pl.Null)


@st.composite
def table(draw) -> pl.DataFrame:
    n = draw(st.integers(0, 40))
    n_feat = draw(st.integers(1, 4))
    n_lab = draw(st.integers(1, 3))
    cols = {f"f{i}": draw(column(n)) for i in range(n_feat)}
    for j in range(n_lab):
        clean = draw(st.booleans())
        values = draw(
            st.lists(st.sampled_from([0, 1]) if clean else LABEL_VALUES, min_size=n, max_size=n)
        )
        cols[f"y{j}"] = pl.Series(values, dtype=pl.Int64)
    return pl.DataFrame(cols)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(table(), table())
def test_encode_fit_predict_never_crashes_outside_labelwise_errors(train, new):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            X, Y, _ = table_xy(train, LabelSpec(prefix="y"))
            clf = LabelwiseClassifier(
                n_estimators=3, cv_folds=None, validation_fraction=0.3, n_jobs=1
            ).fit(X, Y)
        except LabelwiseError:
            return
        P = clf.predict_proba(X)
        assert P.shape == Y.shape and np.all((P >= 0) & (P <= 1))
        try:  # another table at predict time: a result or our own error
            out = clf.predict(new.select(X.columns) if set(X.columns) <= set(new.columns) else new)
        except LabelwiseError:
            return
        assert out.shape[1] == Y.shape[1]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(table())
def test_contract_then_training_never_crashes_outside_labelwise_errors(df):
    """The real contract task (great-expectations) on a parquet file of the generated table,
    then the training path behind it: a pass, or labelwise's own error naming the problem."""
    import tempfile
    from pathlib import Path

    from labelwise.pipeline.config import Config
    from labelwise.tasks.contract import validate_contract

    cfg = Config.model_validate(
        {
            "name": "fuzz",
            "data": {"train": "t.parquet", "labels": {"prefix": "y"}},
            "contract": {"min_rows": 5, "min_positives_per_label": 1},
        }
    )
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "t.parquet"
        df.write_parquet(path)
        try:
            report = validate_contract.fn(cfg, str(path), "train")
        except LabelwiseError as exc:
            assert str(path) in str(exc) or "y" in str(exc)
            return
        assert report["success"]
        # the contract passed: the labels are clean 0/1, so encoding them cannot fail
        from labelwise.engine.data import encode_labels

        Y, _ = encode_labels(df, LabelSpec(prefix="y"), source=str(path))
        assert Y.shape == (df.height, len([c for c in df.columns if c.startswith("y")]))
        assert set(np.unique(Y)) <= {0, 1} and (Y.sum(axis=0) >= 1).all()
        try:
            X, Y, _ = table_xy(df, LabelSpec(prefix="y"))
            LabelwiseClassifier(
                n_estimators=3, cv_folds=None, validation_fraction=0.3, n_jobs=1
            ).fit(X, Y)
        except LabelwiseError:
            return
