"""Fresh-data sources: partitioned parquet folders, SQL (the machine's PostgreSQL), an
S3-compatible object store (moto's server, a real HTTP S3 endpoint), time windows ending at the
run's as-of time, out-of-time splits, snapshots that make a run reproducible, and the bad inputs
of each. Everything runs through the CLI a user runs, on a real MLflow store and Prefect API."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
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
DAY_ROWS = 150
START = date(2026, 11, 1)


def _day(d: int) -> date:
    return START + timedelta(days=d)


def _rows(days: int, seed: int = 5) -> pl.DataFrame:
    """``days`` days of DAY_ROWS labelled rows each, with a ``ts`` timestamp column."""
    df = make_multilabel_table(n_rows=DAY_ROWS * days, n_labels=4, seed=seed)
    ts = [
        datetime(2026, 11, 1) + timedelta(days=i // DAY_ROWS, minutes=i % DAY_ROWS)
        for i in range(df.height)
    ]
    return df.with_columns(pl.Series("ts", ts).dt.replace_time_zone("UTC"))


def _write_partitions(root: Path, df: pl.DataFrame, days: range) -> None:
    """Hive-style partitions events/dt=YYYY-MM-DD/part-0.parquet (dt is not in the file)."""
    for d in days:
        part = df.filter(pl.col("ts").dt.date() == _day(d)).drop("ts")
        folder = root / f"dt={_day(d)}"
        folder.mkdir(parents=True, exist_ok=True)
        part.write_parquet(folder / "part-0.parquet")


def _config(tmp: Path, name: str, data: dict, **sections: object) -> tuple[Path, str]:
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cfg = {
        "name": name,
        "data": {"labels": {"prefix": "label_"}, "exclude": ["id"], **data},
        "model": {"preset": "fast"},
        "contract": {"min_rows": 20},
        "tracking": {"tracking_uri": uri},
        **sections,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, uri


def _versions(uri: str, name: str) -> list:
    return _client(uri).search_model_versions(f"name='{name}'")


def _inputs(uri: str, run_id: str) -> dict[str, tuple[str, str, dict[str, str]]]:
    """context -> (source type, source, tags) of a run's logged datasets."""
    run = _client(uri).get_run(run_id)
    out = {}
    for d in run.inputs.dataset_inputs:
        tags = {t.key: t.value for t in d.tags}
        out[tags["mlflow.data.context"]] = (d.dataset.source_type, d.dataset.source, tags)
    return out


def test_partitioned_folder_gains_a_partition(tmp_path, prefect_api):
    """A hive-partitioned folder read with a window: a new partition is in the next run's
    snapshot and its MLflow inputs; a run with nothing new registers nothing; --snapshot of the
    first run reproduces it exactly although the folder has changed since."""
    df = _rows(8)
    events = tmp_path / "events"
    _write_partitions(events, df, range(5))
    data = {"train": "events/", "time_column": "dt", "window": "5d"}
    config, uri = _config(tmp_path, "hive", data, split={"by": "time", "test_last": "1d"})

    def train(*args: str):
        res = runner.invoke(app, ["train", "-c", str(config), *args])
        assert res.exit_code == 0, res.output
        return res

    first = train("--as-of", f"{_day(4)}T12:00:00")
    _write_partitions(events, df, range(5, 6))
    second = train("--as-of", f"{_day(5)}T12:00:00")
    assert len(_versions(uri, "hive")) == 2
    same = train("--as-of", f"{_day(5)}T13:00:00+01:00")  # the same instant, written aware
    assert "identical to hive v2" in same.output, same.output
    runs = {r.data.tags["data.as_of"][:10]: r for r in _runs(uri, "hive")}
    r1, r2 = runs[str(_day(4))], runs[str(_day(5))]
    assert r1.data.tags["data.rows"] == str(5 * DAY_ROWS)
    assert r2.data.tags["data.rows"] == str(5 * DAY_ROWS)  # day 0 has left the window
    assert r2.data.tags["data.max_time"].startswith(str(_day(5)))
    in1, in2 = _inputs(uri, r1.info.run_id), _inputs(uri, r2.info.run_id)
    assert str(events) in in1["train"][1] and in1["train"][2]["labelwise.window"]
    assert in1["train"][2] != in2["train"][2]  # window, as-of and rows differ
    assert r1.data.tags["data.train.digest"] != r2.data.tags["data.train.digest"]
    snap = pl.read_parquet(_download(uri, r2.info.run_id, "snapshot/train.parquet"))
    assert (snap["dt"].min(), snap["dt"].max()) == (_day(1), _day(5))

    # two days later, no new partition: the window holds fewer, older rows, nothing newer
    third = train("--as-of", f"{_day(7)}T12:00:00")
    assert "nothing new" in third.output, third.output
    assert len(_versions(uri, "hive")) == 2 and len(_runs(uri, "hive")) == 2

    replay = train("--snapshot", r1.info.run_id)  # the folder holds 6 days now, the run saw 5
    assert "identical" in replay.output and "v1" in replay.output, replay.output
    assert "registered hive v1" in first.output and "registered hive v2" in second.output

    # snapshots that cannot be replayed, and as-of times that cannot be read: one message
    c = _client(uri)
    foreign = c.create_run(c.create_experiment("another-job")).info.run_id
    c.set_terminated(foreign)
    artifacts = Path(c.get_run(r2.info.run_id).info.artifact_uri.removeprefix("file://"))
    shutil.rmtree(artifacts / "snapshot")
    for args, words in (
        (["--snapshot", "0" * 32], "no such run"),
        (["--snapshot", foreign], "belongs to experiment 'another-job'"),
        (["--snapshot", r2.info.run_id], "has no snapshot/ artifacts"),
        (["--as-of", "yesterday"], "not an ISO date or time"),
        (["--as-of", "2026-11-31"], "not an ISO date or time"),
    ):
        res = runner.invoke(app, ["train", "-c", str(config), *args])
        assert res.exit_code == 2 and words in res.output, res.output
    assert len(_versions(uri, "hive")) == 2 and len(_runs(uri, "hive")) == 2


def _download(uri: str, run_id: str, path: str) -> str:
    import tempfile

    return _client(uri).download_artifacts(run_id, path, tempfile.mkdtemp())


def test_out_of_time_split_tests_on_the_latest_rows(tmp_path, prefect_api):
    """split.by: time with test_fraction: every test row is later than every train row."""
    df = _rows(6)
    df.write_parquet(tmp_path / "events.parquet")
    data = {"train": "events.parquet", "time_column": "ts"}
    config, _ = _config(tmp_path, "oot", data, split={"by": "time", "test_fraction": 0.25})
    res = runner.invoke(app, ["train", "-c", str(config), "--no-register"])
    assert res.exit_code == 0, res.output
    from labelwise.pipeline.environment import state_dir

    [train_part] = (state_dir() / "runs" / "oot").glob("*/data/train.parquet")
    test_part = pl.read_parquet(train_part.with_name("test.parquet"))
    train_part = pl.read_parquet(train_part)
    assert test_part.height == pytest.approx(0.25 * df.height, abs=DAY_ROWS)
    assert train_part["ts"].max() < test_part["ts"].min()


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def database():
    """A fresh PostgreSQL database on the machine's server, dropped afterwards; its URI carries
    a password (trust auth ignores it) that must never reach MLflow or the output."""
    import psycopg

    from tests.servers import ADMIN_URL, require_postgres

    require_postgres()
    name = f"lw_src_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    password = "pw-" + secrets.token_hex(6)
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgres@", f"postgres:{password}@")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _password(uri: str) -> str:
    from urllib.parse import urlsplit

    return str(urlsplit(uri).password)


def test_sql_source_windowed_out_of_time_and_reproducible(
    tmp_path, prefect_api, database, monkeypatch
):
    """A PostgreSQL table with a timestamp column: a 7-day window ending at --as-of, the last
    2 days as the test part, the query and window on the MLflow run, the same as-of giving the
    same snapshot, and the database password nowhere in MLflow or the output."""
    df = _rows(10)
    df.write_database("events", database, engine="adbc")
    monkeypatch.setenv("LABELWISE_TEST_DB_URI", database)
    query = "SELECT * FROM events"
    data = {
        "sql": {"uri_env": "LABELWISE_TEST_DB_URI", "query": query},
        "time_column": "ts",
        "window": "7d",
    }
    monitoring = {"sql": {"uri_env": "LABELWISE_TEST_DB_URI", "query": query}, "window": "2d"}
    split = {"by": "time", "test_last": "2d"}
    config, uri = _config(tmp_path, "pg", data, split=split, monitoring=monitoring)
    as_of = f"{_day(9)}T00:00:00Z"
    res = runner.invoke(app, ["train", "-c", str(config), "--as-of", as_of])
    assert res.exit_code == 0, res.output
    [run] = _runs(uri, "pg")
    tags = run.data.tags
    assert tags["data.kind"] == "sql" and query in tags["data.source"]
    assert tags["data.window"] == "ts in (2026-11-03 00:00:00+00:00, 2026-11-10 00:00:00+00:00]"
    utc = pl.datetime(2026, 11, 3, time_zone="UTC"), pl.datetime(2026, 11, 10, time_zone="UTC")
    in_window = df.filter((pl.col("ts") > utc[0]) & (pl.col("ts") <= utc[1]))
    assert tags["data.rows"] == str(in_window.height)
    source_type, source, input_tags = _inputs(uri, run.info.run_id)["train"]
    assert source_type == "sql" and query in source and "127.0.0.1" in source
    assert input_tags["labelwise.window"] == tags["data.window"]

    again = runner.invoke(app, ["train", "-c", str(config), "--as-of", as_of])
    assert again.exit_code == 0 and "identical" in again.output, again.output

    # monitoring reads the same kind of source: the last 2 days of the query
    mon = runner.invoke(app, ["monitor", "-c", str(config), "--as-of", as_of])
    assert mon.exit_code in (0, 3), mon.output
    c = _client(uri)
    [m] = c.search_runs([c.get_experiment_by_name("pg-monitoring").experiment_id])
    assert query in m.data.params["batch"] and m.data.params["batch.window"].startswith("ts in")

    secret = _password(database)
    everything = res.output + again.output + mon.output + repr(run.data) + repr(m.data) + source
    assert secret not in everything
    for v in _versions(uri, "pg"):
        assert secret not in repr(v.tags) + (v.description or "")


def test_sql_errors_name_the_server_and_say_what_the_database_said(
    tmp_path, prefect_api, database, monkeypatch
):
    """An unreachable server, a query the database refuses, an unset variable: exit 2 with a
    message naming the server (never the password), no MLflow run left behind."""
    from tests.servers import free_port

    _rows(3).write_database("events", database, engine="adbc")
    secret = _password(database)
    port = free_port()
    cases = [
        (database.replace(":5432/", f":{port}/"), "SELECT * FROM events", [f"127.0.0.1:{port}"]),
        (database, "SELECT nope FROM events", ['column "nope" does not exist']),
        (None, "SELECT * FROM events", ["LABELWISE_TEST_DB_URI is not set"]),
        (database, "SELECT x00 AS a, x01 AS a FROM events", ["returns a column name more"]),
        (database, "SELECT * FROM events WHERE false", ["no rows to read"]),
    ]
    for i, (db_uri, query, words) in enumerate(cases):
        if db_uri is None:
            monkeypatch.delenv("LABELWISE_TEST_DB_URI", raising=False)
        else:
            monkeypatch.setenv("LABELWISE_TEST_DB_URI", db_uri)
        data = {"sql": {"uri_env": "LABELWISE_TEST_DB_URI", "query": query}}
        config, uri = _config(tmp_path, f"pgbad{i}", data)
        res = runner.invoke(app, ["train", "-c", str(config)])
        assert res.exit_code == 2, res.output
        assert all(w in res.output for w in words), res.output
        assert secret not in res.output
        assert not _runs(uri, f"pgbad{i}")


@pytest.mark.parametrize(
    "data, as_of, words",
    [
        ({"train": "ftp://host/events"}, None, ["data.train", "unknown source kind 'ftp://'"]),
        (
            {"train": "events/", "sql": {"uri_env": "DB", "query": "SELECT 1"}},
            None,
            ["exactly one source kind"],
        ),
        ({"train": "nothing/*.parquet"}, None, ["data.train", "no parquet files"]),
        ({"train": "events/", "time_column": "when"}, None, ["'when' is not a column"]),
        ({"train": "events/", "time_column": "label_00"}, None, ["not a date or datetime"]),
        (
            {"train": "events/", "time_column": "dt", "window": "1d"},
            "2027-01-01",
            ["no rows to read", "dt in (2026-12-31"],
        ),
        ({"train": "mixed/"}, None, ["different schema", "x00"]),
        ({"train": "events/", "window": "7d"}, None, ["data.window needs data.time_column"]),
        ({"train": "events/", "time_column": "dt", "window": "7 days"}, None, ["not a duration"]),
    ],
)
def test_bad_sources_are_refused_with_the_key_named(tmp_path, prefect_api, data, as_of, words):
    df = _rows(3)
    _write_partitions(tmp_path / "events", df, range(3))
    _write_partitions(tmp_path / "mixed", df, range(3))
    odd = tmp_path / "mixed" / f"dt={_day(2)}" / "part-0.parquet"
    pl.read_parquet(odd).with_columns(pl.col("x00").cast(pl.String)).write_parquet(odd)
    config, uri = _config(tmp_path, "badsrc", data)
    res = runner.invoke(app, ["train", "-c", str(config), *(["--as-of", as_of] if as_of else [])])
    assert res.exit_code == 2, res.output
    assert all(w in res.output for w in words), res.output
    assert not _runs(uri, "badsrc") and not _versions(uri, "badsrc")


# ---------------------------------------------------------------- object store


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """A real S3 endpoint over HTTP (moto's server, from the package registry), credentials
    in the environment only, as a user's job would have them."""
    import boto3

    from tests.servers import free_port

    port = free_port()
    log = open(tmp_path / "moto.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    secret = "sk-" + secrets.token_hex(8)
    env = {
        "AWS_ACCESS_KEY_ID": "labelwise-test",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3")
    for _ in range(100):
        try:
            client.create_bucket(Bucket="lw-test")
            break
        except Exception:
            time.sleep(0.2)
    try:
        yield client, secret
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_object_store_source_and_monitoring_batch(tmp_path, prefect_api, s3):
    client, secret = s3
    df = _rows(4)
    _write_partitions(tmp_path / "events", df, range(4))
    for f in sorted((tmp_path / "events").rglob("*.parquet")):
        client.upload_file(str(f), "lw-test", str(f.relative_to(tmp_path)))
    data = {"train": "s3://lw-test/events/", "time_column": "dt", "window": "30d"}
    config, uri = _config(tmp_path, "s3job", data)
    res = runner.invoke(app, ["train", "-c", str(config), "--as-of", f"{_day(3)}T12:00:00"])
    assert res.exit_code == 0, res.output
    [run] = _runs(uri, "s3job")
    assert run.data.tags["data.kind"] == "object_store"
    assert run.data.tags["data.source"] == "s3://lw-test/events/"
    assert run.data.tags["data.rows"] == str(4 * DAY_ROWS)
    source_type, source, _ = _inputs(uri, run.info.run_id)["train"]
    assert source_type == "s3" and "s3://lw-test/events/" in source

    batch = "s3://lw-test/events/dt=2026-11-04/"
    mon = runner.invoke(app, ["monitor", "-c", str(config), "-b", batch])
    assert mon.exit_code in (0, 3), mon.output
    c = _client(uri)
    [m] = c.search_runs([c.get_experiment_by_name("s3job-monitoring").experiment_id])
    assert m.data.params["batch"] == batch and m.data.params["batch.digest"]
    blob = res.output + mon.output + repr(run.data) + repr(m.data)
    assert secret not in blob

    # a bucket that does not exist: one message naming the URI, nothing tracked
    data["train"] = "s3://no-such-bucket/events/"
    config, uri = _config(tmp_path, "s3missing", data)
    res = runner.invoke(app, ["train", "-c", str(config)])
    assert res.exit_code == 2 and "cannot read s3://no-such-bucket/events/" in res.output
    assert secret not in res.output and not _runs(uri, "s3missing")


def test_object_store_with_wrong_credentials(tmp_path, prefect_api, monkeypatch):
    """An S3 endpoint that checks credentials (moto with authentication on) and a key it
    does not know: one message naming the URI and the credentials, never the secret."""
    from tests.servers import free_port

    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    secret = "sk-" + secrets.token_hex(8)
    for k, v in {
        "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG0",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(k, v)
    try:
        data = {"train": "s3://lw-test/events/"}
        config, uri = _config(tmp_path, "s3denied", data)
        for _ in range(50):  # the server is up when its port answers
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.2)
        res = runner.invoke(app, ["train", "-c", str(config)])
        assert res.exit_code == 2 and "cannot read s3://lw-test/events/" in res.output
        assert "credentials" in res.output and secret not in res.output, res.output
        assert not _runs(uri, "s3denied")
    finally:
        proc.terminate()
        proc.wait(10)
