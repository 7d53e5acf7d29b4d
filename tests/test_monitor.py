"""Monitoring: PSI against hand computation, and the monitor flow on a real Prefect API and a
real MLflow store: a batch like the training data passes, a shifted one fails naming labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.engine.drift import histogram, psi, shares
from labelwise.engine.errors import DriftError
from labelwise.engine.synthetic import make_multilabel_table


def test_psi_matches_the_formula_and_is_zero_on_the_same_data():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    spec = histogram(ref, bins=10)
    assert len(spec["shares"]) == len(spec["edges"]) + 2  # + the missing-values bin
    assert psi(spec["shares"], shares(spec, ref)) == pytest.approx(0.0, abs=1e-12)
    cur = rng.normal(loc=1.0, size=5000)
    q = shares(spec, cur)
    p = np.asarray(spec["shares"])
    expected = sum(
        (max(b, 1e-4) - max(a, 1e-4)) * np.log(max(b, 1e-4) / max(a, 1e-4))
        for a, b in zip(p, q, strict=True)
    )
    assert psi(p, q) == pytest.approx(expected)
    assert psi(p, q) > 0.25  # a one-sigma shift is a major shift
    # missing values are a bin of their own: a feature arriving empty drifts
    assert psi(p, shares(spec, np.full(100, np.nan))) > 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6) | st.just(-1), min_size=1, max_size=200),
    st.lists(st.integers(0, 9) | st.just(-1), min_size=1, max_size=200),
)
def test_categorical_shares_are_a_distribution(ref, cur):
    to = lambda xs: np.array([np.nan if x < 0 else float(x) for x in xs])  # noqa: E731
    spec = histogram(to(ref), discrete=True)
    s = shares(spec, to(cur))
    assert s.shape == (len(spec["categories"]) + 2,)
    assert s.sum() == pytest.approx(1.0) and (s >= 0).all()
    assert psi(spec["shares"], s) >= 0


@pytest.fixture(scope="module")
def watched(tmp_path_factory, prefect_api) -> dict:
    from labelwise.flows.train import train_flow

    root = tmp_path_factory.mktemp("monitor")
    df = make_multilabel_table(n_rows=2400, n_labels=6, seed=11)
    df.head(1400).write_parquet(root / "train.parquet")
    df.slice(1400, 400).write_parquet(root / "test.parquet")
    batch = df.tail(600)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = {
        "name": "watched",
        "data": {
            "train": "train.parquet",
            "test": "test.parquet",
            "labels": {"prefix": "label_"},
            "exclude": ["id"],
        },
        "model": {"preset": "fast"},
        "contract": {"min_rows": 50},
        "tracking": {"tracking_uri": uri},
        "monitoring": {"batch": "batch.parquet", "top_features": 8},
    }
    (root / "job.yaml").write_text(yaml.safe_dump(cfg))
    res = train_flow(str(root / "job.yaml"))
    return {
        "root": root,
        "config": str(root / "job.yaml"),
        "uri": uri,
        "batch": batch,
        "model_dir": res.model_dir,
    }


@pytest.mark.slow
def test_monitor_flow_passes_a_like_batch_and_fails_a_shifted_one(watched):
    import json

    from mlflow import MlflowClient

    from labelwise.flows.monitor import monitor_flow

    root, batch = watched["root"], watched["batch"]
    labels = [c for c in batch.columns if c.startswith("label_")]
    batch.drop(labels).write_parquet(root / "batch.parquet")
    ok = monitor_flow(watched["config"])  # the configured batch, no truth
    assert ok["alerts"] == [] and ok["feature_alerts"] == [] and ok["rows"] == 600

    prof = json.loads((Path(watched["model_dir"]) / "reference.json").read_text())
    top = max(prof["features"], key=lambda f: prof["features"][f]["importance"])
    shifted = batch.with_columns((pl.col(top) * 3 + 5).alias(top))
    shifted.write_parquet(root / "shifted.parquet")
    with pytest.raises(DriftError) as err:
        monitor_flow(watched["config"], str(root / "shifted.parquet"))
    rep = err.value.report
    assert rep["has_truth"]  # the label columns came along: per-label metrics too
    assert top in [a["feature"] for a in rep["feature_alerts"]]
    assert rep["alerts"], "a shift of the most important feature moves some label's scores"
    for a in rep["alerts"]:
        assert a["label"] in str(err.value)
    assert all("f1" in r and "reference_f1" in r for r in rep["labels"])

    c = MlflowClient(watched["uri"])
    exp = c.get_experiment_by_name("watched-monitoring")
    runs = c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.data.tags["labelwise.drift"] for r in runs] == ["false", "true"]
    assert all(r.info.status == "FINISHED" for r in runs)
    key = f"label/{rep['alerts'][0]['label']}/score_psi"
    hist = c.get_metric_history(runs[1].info.run_id, key)
    assert hist[0].step == 1 and hist[0].value > 0.25
    arts = {a.path for a in c.list_artifacts(runs[1].info.run_id, "monitoring")}
    assert {
        "monitoring/report.json",
        "monitoring/score_psi.png",
        "monitoring/score_psi_history.png",
    } <= arts


@pytest.mark.slow
def test_monitor_cli_exit_codes(watched):
    from typer.testing import CliRunner

    from labelwise.cli import app

    root = watched["root"]
    # truth without a single positive for three labels: a label shift the monitor must name
    wrong = watched["batch"].with_columns(
        [pl.lit(0).alias(c) for c in watched["batch"].columns if c.startswith("label_")][:3]
    )
    wrong.write_parquet(root / "wrong_truth.parquet")
    res = CliRunner().invoke(
        app, ["monitor", "-c", watched["config"], "-b", str(root / "wrong_truth.parquet")]
    )
    assert res.exit_code == 3, res.output
    assert "label_00" in res.output and "drift" in res.output
    assert "drift alerts" in res.stdout  # the table of what drifted, not only the message
    as_json = CliRunner().invoke(
        app, ["monitor", "-c", watched["config"], "-b", str(root / "wrong_truth.parquet"), "--json"]
    )
    assert as_json.exit_code == 3
    import json

    report = json.loads(as_json.stdout)
    assert {a["label"] for a in report["alerts"]} >= {"label_00"}
    res = CliRunner().invoke(
        app, ["monitor", "-c", watched["config"], "-b", str(root / "nope.parquet")]
    )
    assert res.exit_code == 2 and "nope.parquet" in res.output
