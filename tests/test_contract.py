"""The data contract reads only the columns its checks look at, and still sees every one of
them (real great-expectations suites on parquet files)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from labelwise.pipeline.config import Config
from labelwise.tasks.contract_check import check_table, columns_needed


def _table(path: Path) -> str:
    pl.DataFrame(
        {
            "id": [f"r{i}" for i in range(40)],
            "x0": [float(i) for i in range(40)],
            "x1": [float(i) + 1 for i in range(40)],
            "y_a": [i % 2 for i in range(40)],
            "y_b": [int(i % 3 == 0) for i in range(40)],
        }
    ).write_parquet(path)
    return str(path)


def _config(tmp_path: Path, expectations: list[dict]) -> Config:
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"expectations": expectations}))
    return Config.model_validate(
        {
            "name": "contract",
            "data": {"train": str(tmp_path / "t.parquet"), "labels": {"prefix": "y_"}},
            "contract": {"min_rows": 10, "suite": str(suite)},
        }
    )


@pytest.mark.parametrize(
    ("a", "b", "passes"),
    [("x1", "x0", True), ("x0", "x1", False)],
)
def test_a_two_column_expectation_gets_both_columns(tmp_path: Path, a, b, passes):
    path = _table(tmp_path / "t.parquet")
    pair = {
        "type": "expect_column_pair_values_a_to_be_greater_than_b",
        "kwargs": {"column_A": a, "column_B": b},
    }
    report = check_table(_config(tmp_path, [pair]), path)
    assert report["success"] is passes
    if not passes:
        assert [f["expectation"] for f in report["failures"]] == [pair["type"]]


def test_a_table_level_column_check_sees_every_column(tmp_path: Path):
    path = _table(tmp_path / "t.parquet")
    exact = {
        "type": "expect_table_columns_to_match_set",
        "kwargs": {"column_set": ["id", "x0", "x1", "y_a", "y_b"], "exact_match": True},
    }
    assert check_table(_config(tmp_path, [exact]), path)["success"]
    exact["kwargs"]["column_set"] = ["id", "x0", "y_a", "y_b"]
    assert not check_table(_config(tmp_path, [exact]), path)["success"]


def test_a_row_count_alone_reads_one_number_column(tmp_path: Path):
    schema = pl.scan_parquet(_table(tmp_path / "t.parquet")).collect_schema()
    rows = [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]
    assert columns_needed(rows, schema) == ["x0"]  # not the string id
    named = [*rows, {"type": "expect_column_to_exist", "kwargs": {"column": "id"}}]
    assert columns_needed(named, schema) == ["id"]
