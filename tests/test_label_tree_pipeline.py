"""A tag table with 2,000 labels (a text column and a label-set column) through `train` with
model.strategy: label_tree: the run, its bounded metrics and plots, the registered model
served top-k by batch predict, and the test part's labels that no training row holds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from labelwise.engine.synthetic_xc import make_tag_table

pytestmark = pytest.mark.slow


def _job(
    tmp: Path, name: str, df: pl.DataFrame, n_train: int, strategy: str, **data: object
) -> str:
    """``job.yaml`` over the table's first ``n_train`` rows (train) and the rest (test), its
    label-set column ``tags``; returns the tracking URI."""
    df.head(n_train).write_parquet(tmp / "train.parquet")
    df.slice(n_train).write_parquet(tmp / "test.parquet")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cfg = {
        "name": name,
        "data": {
            "train": "train.parquet",
            "test": "test.parquet",
            "labels": {"set_column": "tags", "separator": "|"},
            **data,
        },
        "model": {"strategy": strategy},
        "contract": {"min_rows": 50, "min_positives_per_label": 0},
        "tracking": {"tracking_uri": uri},
    }
    (tmp / "job.yaml").write_text(yaml.safe_dump(cfg))
    return uri


def test_a_tag_table_with_2000_labels(tmp_path: Path, prefect_api):
    from mlflow import MlflowClient

    from labelwise.flows.predict import predict_flow
    from labelwise.flows.train import train_flow

    df = make_tag_table(4000, 2000, seed=2)
    uri = _job(tmp_path, "tags", df, 3200, "label_tree", text=["doc"])
    result = train_flow(str(tmp_path / "job.yaml"))

    c = MlflowClient(uri, registry_uri=uri)
    run = c.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["model.strategy"] == "label_tree"
    m = run.data.metrics
    # a long tail: labels of the test part no training row holds are named, not an error
    assert "in no training row" in run.data.tags["labelwise.warnings"]
    # far above the frequency prior (the same most frequent tags for every row)
    test_tags = df.tail(800)["tags"].str.split("|")
    train_counts = df.head(3200)["tags"].str.split("|").explode().value_counts(sort=True)
    top1 = train_counts["tags"][0]
    prior_p1 = float(test_tags.list.contains(top1).mean())
    assert m["test/precision_at_1"] > prior_p1 + 0.3
    assert m["test/f1_micro"] > 0.4
    # metrics stay aggregates whatever the label count; per-label figures are artifacts
    assert len(m) < 100
    per_label = c.download_artifacts(run.info.run_id, "evaluation/test_per_label.csv", tmp_path)
    table = pl.read_csv(per_label)
    assert table.height > 1000
    typed = pl.read_parquet(
        c.download_artifacts(run.info.run_id, "evaluation/test_per_label.parquet", tmp_path)
    )
    assert typed["label"].to_list() == table["label"].cast(pl.String).to_list()
    assert typed.schema["f1"] == pl.Float64 and typed.schema["support"] == pl.Int64
    # a tree's weights belong to nodes, not labels: no top-terms table (it was labels x terms)
    terms = c.download_artifacts(run.info.run_id, "evaluation/top_terms.csv", tmp_path)
    assert pl.read_csv(terms).height == 0

    rows = df.tail(5).drop("tags")
    rows.write_parquet(tmp_path / "rows.parquet")
    res = predict_flow(
        "models:/tags@champion",
        str(tmp_path / "rows.parquet"),
        str(tmp_path / "scored.parquet"),
        tracking_uri=uri,
        top_k=10,
    )
    scored = pl.read_parquet(res.output)
    assert scored.columns[-3:] == ["top_labels", "top_scores", "labels"]
    assert scored["top_labels"].list.len().to_list() == [10] * 5
    scores = np.array(scored["top_scores"].to_list())
    assert (np.diff(scores, axis=1) <= 0).all() and scores[:, 0].min() > 0
    json.dumps(result.metrics)  # the metrics stay plain data


def test_tune_of_a_tag_table_searches_the_tree(tmp_path: Path, prefect_api, monkeypatch):
    """The search sets the tree's settings, and its one look at the test part names the
    labels no training row holds instead of failing on them."""
    from typer.testing import CliRunner

    from labelwise.cli import app

    monkeypatch.setenv("LABELWISE_TUNE_STORAGE", f"sqlite:///{tmp_path / 'optuna.db'}")
    df = make_tag_table(1500, 3000, seed=4)  # 1,256 labels on the training rows
    _job(tmp_path, "tagtune", df, 1200, "auto")  # over 1,000 labels: a tree
    res = CliRunner().invoke(app, ["tune", "-c", str(tmp_path / "job.yaml"), "--trials", "2"])
    assert res.exit_code == 0, res.output
    assert "in no training row" in res.output
    tuned = yaml.safe_load((tmp_path / "job.tuned.yaml").read_text())
    assert tuned["model"]["strategy"] == "auto" and "weighting" not in tuned
    import optuna

    [summary] = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.load_study(
        study_name=summary.study_name, storage=f"sqlite:///{tmp_path / 'optuna.db'}"
    )
    assert {"label_tree.max_leaves", "label_tree.C"} <= set(study.trials[1].params)
