"""Flow tests: the real ephemeral Prefect API and a real SQLite MLflow store in a temp dir."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from labelwise.engine.errors import ContractError, RegistryError
from labelwise.engine.synthetic import make_multilabel_table
from labelwise.pipeline.records import RegisteredVersion, Rollback
from tests.helpers import client, write_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def job(tmp_path_factory, prefect_api) -> dict:
    root = tmp_path_factory.mktemp("job")
    df = make_multilabel_table(n_rows=1600, n_labels=8, seed=3)
    labels = [c for c in df.columns if c.startswith("label_")]
    df.tail(400).drop(labels).write_parquet(root / "fresh.parquet")
    edits = {
        "model": {"params": {"n_estimators": 60}},  # the defaults, fewer rounds
        "contract": {"min_rows": 50, "min_positives_per_label": 3},
        "promotion": {
            "metric": "f1_macro",
            "min_gain": 0.0,
            "max_label_regression": 0.5,
            "min_label_support": 5,
        },
    }
    config, uri = write_job(root, "flowtest", df.head(1200), test=df.tail(400), edits=edits)
    return {"root": root, "config": str(config), "uri": uri, "labels": labels}


def _table_artifact(c, run_id: str, path: str) -> dict:
    """A table logged with log_table, as {column: values}."""
    import json

    raw = json.loads(Path(c.download_artifacts(run_id, path)).read_text())
    return {col: [row[i] for row in raw["data"]] for i, col in enumerate(raw["columns"])}


@pytest.fixture(scope="module")
def cycle(job) -> dict:
    """A model's life, once, with what the registry showed at each step: a weak v1 (the first
    champion), the defaults' v2 promoted over it, the same job again (nothing registered), a
    weak v3 refused (also by the CLI, exit 4), a rollback to v1, a batch scored by alias."""
    from typer.testing import CliRunner

    from labelwise.cli import app
    from labelwise.flows.predict import predict_flow
    from labelwise.flows.promote import promote_flow, rollback_flow
    from labelwise.flows.train import train_flow

    c = client(job["uri"])

    def alias(name: str) -> str:
        return str(c.get_model_version_by_alias("flowtest", name).version)

    def decision(version: str) -> str:
        return str(c.get_model_version("flowtest", version).tags["promotion.decision"])

    one_round = {"cv_folds": None, "validation_fraction": 0.0}
    seen: dict = {}
    seen["r1"] = train_flow(
        job["config"], overrides={"model.params": {"n_estimators": 1, **one_round}}
    )
    seen["r2"] = train_flow(job["config"])
    seen["challenger after v2"] = alias("challenger")
    seen["promoted"] = promote_flow(job["config"])
    seen["champion after promotion"] = alias("champion")
    seen["decisions after promotion"] = [decision(v) for v in ("1", "2")]
    seen["again"] = train_flow(job["config"])
    seen["versions after again"] = len(c.search_model_versions("name='flowtest'"))
    seen["r3"] = train_flow(
        job["config"], overrides={"model.params": {"n_estimators": 2, **one_round}}
    )
    seen["refused"] = promote_flow(job["config"])
    seen["champion after refusal"] = alias("champion")
    seen["decision of v3"] = decision("3")
    seen["cli refused"] = CliRunner().invoke(
        app, ["promote", "-c", job["config"], "--fail-if-refused"]
    )
    seen["back"] = rollback_flow(job["config"])
    seen["champion after rollback"] = alias("champion")
    seen["scored path"] = job["root"] / "scored.parquet"
    seen["scored"] = predict_flow(
        "models:/flowtest@challenger",
        str(job["root"] / "fresh.parquet"),
        str(seen["scored path"]),
        chunk_rows=150,
        tracking_uri=job["uri"],
    )
    return seen


def test_the_first_version_is_champion_and_its_run_says_what_it_is(job, cycle):
    """A run a person can tell apart: FINISHED, named for what it trains, described, the
    settings that change the model as params and where/when it runs as tags, lineage,
    per-label results as one table, the evaluation and contract artifacts."""
    c, r1 = client(job["uri"]), cycle["r1"]
    assert r1.version == RegisteredVersion(name="flowtest", version="1", champion=True)
    run = c.get_run(r1.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["config.digest"] and run.data.tags["data.train.digest"]
    assert "test/f1_macro" in run.data.metrics and "valid/f1_micro" not in run.data.metrics
    assert run.data.params["model.params.n_estimators"] == "1"
    assert run.info.run_name.startswith("cv_folds=None n_estimators=1 ")  # what it changes
    assert "f1_macro" in run.data.tags["mlflow.note.content"]
    assert "n_jobs" not in run.data.params and "labelwise.runtime.n_jobs" in run.data.tags
    assert not any(k.startswith(("schedule.", "tracking.")) for k in run.data.params)
    assert not any("/label/" in k for k in run.data.metrics)
    table = _table_artifact(c, r1.run_id, "evaluation/test_per_label.json")
    assert set(table["label"]) == set(job["labels"])
    exp = c.get_experiment_by_name("flowtest")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    v1 = c.get_model_version("flowtest", "1")
    assert "f1_macro" in v1.description and len(v1.tags) <= 8
    arts = {a.path for a in c.list_artifacts(r1.run_id, "evaluation")}
    for name in (
        "test_per_label.csv",
        "test_per_label_f1.png",
        "test_label_cooccurrence.png",
        "test_pr_and_threshold_curves.png",
        "thresholds.json",
    ):
        assert f"evaluation/{name}" in arts
    assert {a.path for a in c.list_artifacts(r1.run_id, "contract")} >= {
        "contract/train.json",
        "contract/test.json",
    }
    assert run.inputs.dataset_inputs, "dataset lineage missing"


def test_the_per_label_work_is_visible_in_prefect(cycle):
    """One task run per chunk of labels and fold, all completed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[cycle["r2"].flow_run_id]))
    with get_client(sync_client=True) as pc:
        runs = pc.read_task_runs(flow_run_filter=flow_run, limit=200)
    chunks = [t for t in runs if t.name.startswith("train-labels-")]
    assert {t.name.split("-chunk")[0] for t in chunks} >= {f"train-labels-L1m{i}" for i in range(5)}
    assert all(t.state.is_completed() for t in chunks)


def test_a_better_challenger_is_promoted(job, cycle):
    """v2 is challenger, compared with the champion in its description, better, promoted."""
    c, r1, r2 = client(job["uri"]), cycle["r1"], cycle["r2"]
    assert r2.version is not None and r2.version.version == "2" and not r2.version.champion
    assert "valid/f1_micro" in c.get_run(r2.run_id).data.metrics
    assert "champion v1" in c.get_run(r2.run_id).data.tags["mlflow.note.content"]
    assert cycle["challenger after v2"] == "2"
    assert r2.metrics["f1_macro"] > r1.metrics["f1_macro"]
    assert cycle["promoted"].promote is True and cycle["promoted"].champion == "2"
    assert cycle["champion after promotion"] == "2"
    assert all("promoted v2 over v1" in d for d in cycle["decisions after promotion"])


def test_the_same_job_on_the_same_data_registers_nothing(cycle):
    again = cycle["again"]
    assert again.version is None and again.skipped and again.skipped.version == "2"
    assert again.skipped.reason == "identical"
    assert cycle["versions after again"] == 2


def test_a_worse_challenger_is_refused_and_the_refusal_can_fail_a_ci_job(job, cycle):
    """The gate keeps v2; the promotion run shows the rule as params; --fail-if-refused
    exits 4."""
    r3, refused = cycle["r3"], cycle["refused"]
    assert r3.version is not None and r3.version.version == "3"
    assert refused.promote is False and refused.champion == "2"
    assert cycle["champion after refusal"] == "2" and "refused" in cycle["decision of v3"]
    promo = client(job["uri"]).get_run(refused.run_id)
    assert promo.data.params["rule.metric"] == "f1_macro" and "rule.min_gain" in promo.data.params
    assert cycle["cli refused"].exit_code == 4, cycle["cli refused"].output


def test_rollback_restores_the_previous_champion(cycle):
    assert cycle["back"] == Rollback(champion="1", previous="2")
    assert cycle["champion after rollback"] == "1"


def test_a_batch_is_scored_by_alias_in_chunks(job, cycle):
    """Every row, in order, a probability column per label and the predicted label set."""
    scored = pl.read_parquet(cycle["scored path"])
    assert cycle["scored"].rows == scored.height == 400
    assert [f"p:{lab}" for lab in job["labels"]] == [
        c for c in scored.columns if c.startswith("p:")
    ]
    assert (
        scored.get_column("id").to_list()
        == pl.read_parquet(job["root"] / "fresh.parquet").get_column("id").to_list()
    )
    assert scored.get_column("labels").dtype == pl.List(pl.String)


def test_pyfunc_round_trip_without_pickle(job):
    """Log, load by alias with pickle disabled, and predict the same as the engine."""
    import mlflow

    from labelwise.flows.train import train_flow
    from labelwise.tasks.registry import load_model

    r = train_flow(job["config"], register_version=False)
    again = train_flow(job["config"], register_version=False)
    # same data + config: the fitted model is reused from Prefect's cache, not refitted
    assert again.fit_seconds == r.fit_seconds and again.model_dir == r.model_dir
    assert again.run_id != r.run_id and again.version is None
    registered = train_flow(job["config"])  # a new version, or the identical one found
    v = registered.version or registered.skipped
    assert v is not None
    name, version = v.name, v.version
    mlflow.set_tracking_uri(job["uri"])
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    fresh = pl.read_parquet(job["root"] / "fresh.parquet")
    out = model.predict(fresh.drop("id").to_pandas())
    clf, _ = load_model(f"models:/{name}/{version}", job["uri"])
    expected = clf.predict_proba(fresh.drop("id"))
    got = out[[f"p:{lab}" for lab in clf.labels_]].to_numpy()
    assert np.allclose(got, expected)
    pred = clf.predict(fresh.drop("id"))
    labels = np.array(clf.labels_)
    assert [sorted(x) for x in out["labels"]] == [
        sorted(labels[p.astype(bool)].tolist()) for p in pred
    ]
    assert model.metadata.signature is not None


def test_dask_fan_out_equals_local(job, tmp_path: Path, monkeypatch):
    """task_runner: dask trains the per-label models on a LocalCluster of two worker
    processes through prefect-dask: Prefect sees every chunk, the model predicts as the
    threads' one does."""
    from distributed import LocalCluster
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from labelwise.engine.classifier import LabelwiseClassifier
    from labelwise.flows.train import train_flow

    small = {"model.params": {"n_estimators": 40, "cv_folds": 2}, "model.strategy": "chain"}
    runs = {}
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        for mode, extra in (
            ("thread", {}),
            ("dask", {"dask_workers": 2}),
            ("address", {"dask_address": cluster.scheduler_address}),
        ):
            # a state folder each, so no run reuses another's per-label checkpoints
            monkeypatch.setenv("LABELWISE_HOME", str(tmp_path / mode))
            runner = "thread" if mode == "thread" else "dask"
            runs[mode] = train_flow(
                job["config"],
                register_version=False,
                overrides={**small, "task_runner": runner, **extra},
            )
        # the address run's chunks ran on the given cluster
        assert any(
            p.startswith("train_label_chunk_remote") for p in cluster.scheduler.task_prefixes
        ), cluster.scheduler.task_prefixes
    fresh = pl.read_parquet(job["root"] / "fresh.parquet").drop("id")
    local = LabelwiseClassifier.load(runs["thread"].model_dir)
    for mode in ("dask", "address"):
        with get_client(sync_client=True) as pc:
            tasks = pc.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[mode].flow_run_id])),
                limit=200,
            )
        remote = [t for t in tasks if t.task_key.startswith("train_label_chunk_remote")]
        assert remote and all(t.state.is_completed() for t in remote)
        steps = {t.name.split("-chunk")[0] for t in remote}
        assert "train-labels-L1m0" in steps
        assert any(s.startswith("train-labels-L2c") for s in steps)
        dask = LabelwiseClassifier.load(runs[mode].model_dir)
        assert np.allclose(local.predict_proba(fresh), dask.predict_proba(fresh))
        assert np.allclose(local.thresholds_, dask.thresholds_)
        assert runs[mode].metrics == runs["thread"].metrics


def test_failing_contract_registers_nothing(job, tmp_path: Path):
    from labelwise.flows.train import train_flow

    bad = pl.read_parquet(job["root"] / "train.parquet").with_columns(
        pl.when(pl.col("id").str.ends_with("7"))
        .then(2)
        .otherwise(pl.col("label_03"))
        .alias("label_03")
    )
    bad.write_parquet(tmp_path / "bad.parquet")
    cfg = yaml.safe_load(Path(job["config"]).read_text())
    cfg["name"] = "badjob"
    cfg["data"]["train"] = str(tmp_path / "bad.parquet")
    cfg["data"]["test"] = str(job["root"] / "test.parquet")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ContractError, match="label_03") as info:
        train_flow(str(tmp_path / "bad.yaml"))
    assert any(f["column"] == "label_03" for f in info.value.report["failures"])
    c = client(job["uri"])
    assert not c.search_model_versions("name='badjob'")
    exp = c.get_experiment_by_name("badjob")
    runs = c.search_runs([exp.experiment_id])
    assert runs and all(r.info.status == "FAILED" for r in runs)
    assert "contract/failed.json" in {
        a.path for a in c.list_artifacts(runs[0].info.run_id, "contract")
    }


def test_unknown_alias_and_model_are_named(job):
    from labelwise.tasks.registry import resolve_version

    with pytest.raises(RegistryError, match="no alias 'nope'"):
        resolve_version(job["uri"], "models:/flowtest@nope")
    with pytest.raises(RegistryError, match="does not exist"):
        resolve_version(job["uri"], "models:/ghost@champion")


def _task_runs(flow_run_id: str, prefix: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as pc:
        runs = pc.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200
        )
    return [t for t in runs if t.name.startswith(prefix)]


def test_transient_io_failure_is_retried_not_labelwise_errors(job, monkeypatch):
    """Fault injection: the first read of the table fails like a flaky network disk; Prefect
    retries the task and the run completes. A labelwise error is never retried."""
    import labelwise.pipeline.snapshot as sources
    from labelwise.engine.errors import DataError
    from labelwise.flows.train import train_flow

    real, calls = sources.file_digest, []

    def flaky(path):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(5, "Input/output error (injected)", str(path))
        return real(path)

    monkeypatch.setattr(sources, "file_digest", flaky)
    ok = train_flow(job["config"], register_version=False)
    [inspect] = _task_runs(ok.flow_run_id, "snapshot-data")
    assert inspect.run_count == 2 and inspect.state.is_completed()
    assert client(job["uri"]).get_run(ok.run_id).info.status == "FINISHED"

    def broken(path):
        calls.append(path)
        raise DataError(f"{path}: not a table (injected)")

    monkeypatch.setattr(sources, "file_digest", broken)
    calls.clear()
    with pytest.raises(DataError, match="injected"):
        train_flow(job["config"], register_version=False)
    assert len(calls) == 1  # no retry of a labelwise error


def test_racing_promotions_leave_one_consistent_decision(job, tmp_path: Path):
    """Two `labelwise promote` processes on the same registry at once (as two workers would):
    exactly one moves the champion, to a valid version, and the records agree with it."""
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    from labelwise.flows.train import train_flow

    cfg = yaml.safe_load(Path(job["config"]).read_text())
    cfg["name"] = "race"
    for part in ("train", "test"):
        cfg["data"][part] = str(job["root"] / f"{part}.parquet")
    (tmp_path / "race.yaml").write_text(yaml.safe_dump(cfg))
    weak = {"model.params": {"n_estimators": 1, "cv_folds": None, "validation_fraction": 0.0}}
    train_flow(str(tmp_path / "race.yaml"), overrides=weak)  # v1: champion
    train_flow(str(tmp_path / "race.yaml"))  # v2: a better challenger
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}  # one Prefect API
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "labelwise.cli", "promote", "-c", str(tmp_path / "race.yaml")],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = "\n".join(o + e for o, e in outs)
    assert said.count("promoted v2 over v1") == 1, said
    assert "already the champion" in said, said

    c = client(job["uri"])
    assert str(c.get_model_version_by_alias("race", "champion").version) == "2"
    for v in ("1", "2"):
        assert "promoted v2 over v1" in c.get_model_version("race", v).tags["promotion.decision"]
    exp = c.get_experiment_by_name("race-promotion")
    runs = c.search_runs([exp.experiment_id])
    assert [r.data.tags["promotion.decision"] for r in runs] == ["promoted v2 over v1"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_rollback_sticks_and_the_limit_is_created_once(job, capfd):
    """After a rollback the rolled-back version loses `challenger`, is tagged rejected and is
    not promoted back by the next promotion unless asked; the version that returns sheds the
    reasons of the promotion it lost. The registry lock's concurrency limit is created once:
    later promotions leave no constraint error in the output."""
    from labelwise.flows.promote import promote_flow, rollback_flow
    from labelwise.flows.train import train_flow
    from labelwise.tasks.promotion import REJECTED_TAG

    c, name = client(job["uri"]), "sticky"
    over = {"tracking.registered_model": name}
    weak = {"model.params": {"n_estimators": 1, "cv_folds": None, "validation_fraction": 0.0}}
    train_flow(job["config"], overrides=over | weak)
    train_flow(job["config"], overrides=over)
    config = job["root"] / "sticky.yaml"
    spec = yaml.safe_load(Path(job["config"]).read_text())
    spec["tracking"]["registered_model"] = name
    config.write_text(yaml.safe_dump(spec))
    assert promote_flow(str(config)).champion == "2"
    assert rollback_flow(str(config)) == Rollback(champion="1", previous="2")
    v1, v2 = c.get_model_version(name, "1"), c.get_model_version(name, "2")
    assert "challenger" not in (v2.aliases or []) and "rolled back" in v2.tags[REJECTED_TAG]
    assert "promotion.reasons" not in v1.tags and "after rollback" in v1.tags["promotion.decision"]
    # the scheduled promotion after a rollback: nothing to promote, champion stays v1
    again = promote_flow(str(config))
    assert again.promote is False and "no challenger" in again.reasons[0]
    assert "v2 was rolled back; --include-rejected" in again.reasons[0]
    # a user points challenger at v2 again: refused as rejected, unless asked explicitly
    c.set_registered_model_alias(name, "challenger", "2")
    refused = promote_flow(str(config))
    assert refused.promote is False and "include-rejected" in refused.reasons[0]
    assert str(c.get_model_version_by_alias(name, "champion").version) == "1"
    c.delete_registered_model_alias(name, "challenger")  # as the rollback left it
    asked = promote_flow(str(config), include_rejected=True)
    assert asked.promote is True and asked.champion == "2"
    assert "UNIQUE constraint" not in capfd.readouterr().err
    # rolled back again, and once more: the second says why there is nothing earlier
    assert rollback_flow(str(config)).champion == "1"
    with pytest.raises(RegistryError, match=r"earlier rollbacks used the champion history up"):
        rollback_flow(str(config))
