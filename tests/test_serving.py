"""REST serving: `mlflow models serve -m models:/<name>@champion` answers a real HTTP client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from labelwise.engine.synthetic import make_multilabel_table
from tests.helpers import free_port

pytestmark = pytest.mark.slow


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_mlflow_serves_the_champion(tmp_path: Path, prefect_api):
    from labelwise.flows.train import train_flow

    df = make_multilabel_table(n_rows=700, n_labels=5, seed=21)
    df.head(550).write_parquet(tmp_path / "train.parquet")
    df.tail(150).write_parquet(tmp_path / "test.parquet")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = {
        "name": "served",
        "data": {
            "train": "train.parquet",
            "test": "test.parquet",
            "labels": {"prefix": "label_"},
            "exclude": ["id"],
        },
        "model": {"preset": "fast"},
        "contract": {"min_rows": 50},
        "tracking": {"tracking_uri": uri},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(cfg))
    train_flow(str(tmp_path / "job.yaml"))

    port = free_port()
    # mlflow.set_tracking_uri / set_registry_uri (used by earlier tests in this process) export
    # MLFLOW_*_URI to child processes: name both explicitly
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/served@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {server.stderr.read().decode()}")
            time.sleep(1)

        rows = df.tail(3).drop(["id", *[c for c in df.columns if c.startswith("label_")]])
        split = json.loads(rows.to_pandas().to_json(orient="split", index=False))
        status, body = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_split": split})
        assert status == 200, body
        preds = body["predictions"]
        assert len(preds) == 3
        labels = [f"label_{j:02d}" for j in range(5)]
        for p in preds:
            assert all(0 <= p[f"p:{lab}"] <= 1 for lab in labels)
            assert set(p["labels"]) <= set(labels)

        # the same probabilities and label sets from the engine and from batch predict
        from labelwise.tasks.registry import load_model
        from labelwise.tasks.scoring import score_file

        clf, _ = load_model("models:/served@champion", uri)
        engine = clf.predict_proba(rows)
        served = np.array([[p[f"p:{lab}"] for lab in clf.labels_] for p in preds])
        np.testing.assert_allclose(served, engine, rtol=0, atol=1e-12)
        rows.write_parquet(tmp_path / "three.parquet")
        score_file(
            "models:/served@champion",
            str(tmp_path / "three.parquet"),
            str(tmp_path / "scored.parquet"),
            100_000,
            uri,
        )
        batch = pl.read_parquet(tmp_path / "scored.parquet")
        np.testing.assert_allclose(
            batch.select([f"p:{lab}" for lab in clf.labels_]).to_numpy(), engine, rtol=0, atol=0
        )
        assert batch["labels"].to_list() == [p["labels"] for p in preds]

        missing = {
            "columns": [c for c in split["columns"] if c != "x05"],
            "data": [
                [v for c, v in zip(split["columns"], row, strict=True) if c != "x05"]
                for row in split["data"]
            ],
        }
        status, body = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_split": missing})
        assert 400 <= status < 500 and "x05" in json.dumps(body)

        wrong = pl.DataFrame(rows).with_columns(pl.lit("abc").alias("x01"))
        split2 = json.loads(wrong.to_pandas().to_json(orient="split", index=False))
        status, body = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_split": split2})
        assert 400 <= status < 500 and "x01" in json.dumps(body)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
