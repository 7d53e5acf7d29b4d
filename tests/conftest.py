from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from labelwise.synthetic import make_multilabel_table


@pytest.fixture(scope="session")
def table() -> pl.DataFrame:
    return make_multilabel_table(n_rows=3000, n_labels=24, seed=1)


@pytest.fixture(scope="session")
def split_table(table: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return table.head(2400), table.tail(600)


@pytest.fixture(scope="session")
def xy(table: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, list[str]]:
    labels = [c for c in table.columns if c.startswith("label_")]
    X = table.drop(["id", *labels])
    return X, table.select(labels).to_numpy(), labels
