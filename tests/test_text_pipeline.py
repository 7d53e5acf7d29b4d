"""A text table as a newcomer gives it (a label-set column, an id and a date column excluded, the
text columns not named) through `train`, the MLflow run and the registered pyfunc, which scores
raw text in a fresh process with pickle deserialization disabled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from labelwise.engine.synthetic_text import make_text_table

pytestmark = pytest.mark.slow

SCORE = """
import json, sys
import mlflow, polars as pl
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = pl.read_parquet(sys.argv[2]).to_pandas()
out = model.predict(rows)
top = model.predict(rows, params={"top_k": 2})
print(json.dumps({"columns": list(out.columns), "p": out.filter(like="p:").values.tolist(),
                  "labels": [list(x) for x in out["labels"]],
                  "top_columns": list(top.columns),
                  "top_labels": [list(x) for x in top["top_labels"]],
                  "top_scores": [list(x) for x in top["top_scores"]]}))
"""


def test_a_text_table_trains_registers_and_serves_raw_text(tmp_path: Path, prefect_api):
    from mlflow import MlflowClient

    from labelwise.engine.classifier import LabelwiseClassifier
    from labelwise.flows.train import train_flow

    df = make_text_table(n_rows=700, n_labels=6, vocabulary=1500, body_words=40, seed=5)
    df.head(550).write_parquet(tmp_path / "train.parquet")
    df.tail(150).write_parquet(tmp_path / "test.parquet")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = {
        "name": "tickets",
        "data": {
            "train": "train.parquet",
            "test": "test.parquet",
            "labels": {"set_column": "topics", "separator": "|"},
            "exclude": ["doc_id", "published"],
        },
        "model": {"params": {"n_estimators": 60, "cv_folds": 3}},
        "contract": {"min_rows": 50},
        "tracking": {"tracking_uri": uri},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    train_flow(str(tmp_path / "job.yaml"))

    c = MlflowClient(uri)
    run = c.search_runs([c.get_experiment_by_name("tickets").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["labelwise.text_columns"] == "title, body"
    warned = run.data.tags["labelwise.warnings"]
    assert "hold free text" in warned
    # named by the file the user gave, not by the run's snapshot of it
    assert f"{tmp_path / 'train.parquet'}: column(s) ['title', 'body']" in warned, warned
    assert "snapshot" not in warned
    assert run.data.metrics["text/body/vocabulary_size"] > 100
    assert run.data.params["text.ngram_max"] == "1"
    arts = {a.path for a in c.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/top_terms.csv" in arts
    # far above what text-as-categories scores (prevalence guesses, micro-F1 about .35 here)
    assert run.data.metrics["test/f1_micro"] > 0.5

    rows = df.tail(4).drop(["doc_id", "published", "topics"])
    rows.write_parquet(tmp_path / "rows.parquet")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
           "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", SCORE, "models:/tickets@champion", str(tmp_path / "rows.parquet")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    served = json.loads(done.stdout.strip().splitlines()[-1])
    # the served probabilities are the engine's, from the raw text of the same rows
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    dst = tmp_path / "champion"
    local = mlflow.artifacts.download_artifacts("models:/tickets@champion", dst_path=str(dst))
    clf = LabelwiseClassifier.load(Path(local) / "artifacts" / "model")
    np.testing.assert_allclose(served["p"], clf.predict_proba(rows), rtol=1e-9, atol=1e-12)
    assert served["columns"][: len(clf.labels_)] == [f"p:{lab}" for lab in clf.labels_]
    # top_k (a param the signature declares): the most probable labels, best first
    assert served["top_columns"] == ["top_labels", "top_scores", "labels"]
    P = np.asarray(served["p"])
    for i, (names, scores) in enumerate(
        zip(served["top_labels"], served["top_scores"], strict=True)
    ):
        best = np.argsort(-P[i], kind="stable")[:2]
        assert names == [clf.labels_[j] for j in best]
        np.testing.assert_allclose(scores, P[i, best])

    # batch predict with --top-k writes the same two list columns
    from labelwise.flows.predict import predict_flow

    res = predict_flow(
        "models:/tickets@champion",
        str(tmp_path / "rows.parquet"),
        str(tmp_path / "scored.parquet"),
        tracking_uri=uri,
        top_k=3,
    )
    scored = pl.read_parquet(res.output)
    assert {"top_labels", "top_scores", "labels"} <= set(scored.columns)
    assert not any(c.startswith("p:") for c in scored.columns)
    assert scored["top_labels"].list.len().to_list() == [3] * 4
    # numbers in a text column: an error naming the file given and the column; no output
    from labelwise.engine.errors import DataError

    rows.with_columns(body=pl.lit(7, dtype=pl.Int64)).write_parquet(tmp_path / "numbers.parquet")
    with pytest.raises(DataError, match=r"numbers\.parquet: text column 'body' has type Int64"):
        predict_flow("models:/tickets@champion", str(tmp_path / "numbers.parquet"),
                     str(tmp_path / "numbers-scored.parquet"), tracking_uri=uri)  # fmt: skip
    assert not list(tmp_path.glob("*numbers-scored*"))

    # text drift: documents of words the model never saw show in the out-of-vocabulary share
    from labelwise.engine.errors import DriftError
    from labelwise.flows.monitor import monitor_flow

    same = df.tail(150).drop("topics")
    same.write_parquet(tmp_path / "same.parquet")
    assert not any(
        a["feature"].startswith("body:") for a in _alerts(monitor_flow, tmp_path, "same")
    )
    foreign = make_text_table(n_rows=150, n_labels=6, vocabulary=1500, body_words=40, seed=99)
    foreign.drop("topics").write_parquet(tmp_path / "foreign.parquet")
    with pytest.raises(DriftError, match="body:oov_share"):
        monitor_flow(str(tmp_path / "job.yaml"), str(tmp_path / "foreign.parquet"))
    # a shift of topics (only the rarest topic's documents, in words the model knows) shows
    # in the share of documents holding the important terms (the same rows above raise none)
    topics = df["topics"].str.split("|")
    named = topics.explode()
    rarest = named.filter(named != "").value_counts().sort("count", "topics")[0, 0]
    shifted = df.filter(topics.list.contains(rarest)).drop("topics")
    shifted.write_parquet(tmp_path / "shifted.parquet")
    moved = [a["feature"] for a in _alerts(monitor_flow, tmp_path, "shifted")]
    assert any(":term:" in f for f in moved), moved


def _alerts(monitor_flow, tmp_path: Path, name: str) -> list[dict]:
    from labelwise.engine.errors import DriftError

    try:
        return monitor_flow(str(tmp_path / "job.yaml"), str(tmp_path / f"{name}.parquet"))[
            "feature_alerts"
        ]
    except DriftError as err:  # a label may drift by chance on 150 rows; text must not
        return err.report["feature_alerts"]
