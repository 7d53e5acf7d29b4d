"""Errors name the user's data: the table, folder or query the config gave (never the run's
snapshot or split files), the columns a table lost or gained (never a bare count), and a
folder's partition columns are never silently features; `validate` reads every source kind
`train` reads. Through the CLI, real stores."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from labelwise.cli import app
from labelwise.engine.synthetic import make_multilabel_table
from tests.store import client as _client
from tests.store import runs as _runs

pytestmark = pytest.mark.slow
runner = CliRunner()


def _config(tmp: Path, name: str, data: dict, **sections: object) -> tuple[Path, str]:
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cfg = {
        "name": name,
        "data": {"labels": {"prefix": "label_"}, "exclude": ["id"], **data},
        "model": {"preset": "fast"},
        "tracking": {"tracking_uri": uri},
        "contract": {"min_rows": 20},
        **sections,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, uri


def test_a_changed_table_names_its_columns_and_the_users_file(tmp_path, prefect_api):
    """A suite that only counts columns; fresh data that lost two columns and gained one:
    validate and train name all three, against the champion's training table, and train
    names the user's file, not the run's snapshot; nothing is registered, no run RUNNING."""
    df = make_multilabel_table(n_rows=500, n_labels=4, seed=41)
    table = tmp_path / "fresh.parquet"
    df.write_parquet(table)
    suite = {
        "name": "width",
        "expectations": [
            {"type": "expect_table_column_count_to_equal", "kwargs": {"value": df.width}}
        ],
    }
    (tmp_path / "width.json").write_text(json.dumps(suite))
    contract = {"min_rows": 20, "suite": "width.json"}
    config, uri = _config(tmp_path, "widths", {"train": "fresh.parquet"}, contract=contract)
    first = runner.invoke(app, ["train", "-c", str(config)])
    assert first.exit_code == 0, first.output

    lost = [c for c in df.columns if c.startswith("x")][1:3]
    df.drop(lost).with_columns(pl.lit(1.0).alias("x_new")).write_parquet(table)
    for command in ("validate", "train"):
        res = runner.invoke(app, [command, "-c", str(config)])
        assert res.exit_code == 2, res.output
        assert all(repr(c) in res.output for c in lost), res.output
        assert "unexpected: 'x_new'" in res.output and "widths v1" in res.output
        assert str(table) in res.output and "snapshot/" not in res.output, res.output
    assert len(_client(uri).search_model_versions("name='widths'")) == 1
    [failed] = [r for r in _runs(uri, "widths") if r.info.status != "FINISHED"]
    assert failed.info.status == "FAILED"  # and its error as the user read it
    assert (
        str(table) in failed.data.tags["labelwise.error"]
        and lost[0] in failed.data.tags["labelwise.error"]
    )


def test_partition_columns_are_not_features(tmp_path, prefect_api):
    """A folder partitioned by region and day, windowed on the day: the region is left out
    with a note, the day is the time column; neither is one of the model's features."""
    df = make_multilabel_table(n_rows=600, n_labels=4, seed=43)
    for i, part in enumerate(df.iter_slices(100)):
        region, day = ("eu", "us")[i % 2], date(2026, 11, 1) + timedelta(days=i)
        folder = tmp_path / "events" / f"region={region}" / f"dt={day}"
        folder.mkdir(parents=True)
        part.write_parquet(folder / "part-0.parquet")
    data = {"train": "events/", "time_column": "dt", "window": "30d"}
    config, uri = _config(tmp_path, "parts", data)
    checked = runner.invoke(app, ["validate", "-c", str(config), "--as-of", "2026-11-10"])
    assert checked.exit_code == 0 and f"ok {tmp_path / 'events'}" in checked.output, checked.output
    res = runner.invoke(app, ["train", "-c", str(config), "--as-of", "2026-11-10"])
    assert res.exit_code == 0, res.output
    assert "partition column(s) 'region'" in res.output, res.output
    from labelwise.engine.classifier import LabelwiseClassifier
    from labelwise.tasks.registry import download_model_dir

    _, model_dir = download_model_dir(uri, "models:/parts/1", str(tmp_path / "model"))
    features = LabelwiseClassifier.load(model_dir).encoder_.features
    assert features == [c for c in df.columns if c not in ("id",) and not c.startswith("label_")]
