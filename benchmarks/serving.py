"""Scoring latency of one model along every path, next to its raw booster loop, in one run.

    python -m benchmarks.serving [--data-root DIR] [--datasets yeast,enron-text] [--json OUT]
                                 [--requests 200] [--strategy label_tree]

``--datasets tags-<rows>x<labels>`` is a generated tag table (a text column, Zipf-like labels);
with ``--strategy label_tree`` the floor is the tree's own search instead of the booster loop.
Every path is also timed with the pyfunc's ``top_k=10`` (the ten most probable labels).

Per dataset: fit ``LabelwiseClassifier()`` on the official training split, save it, and time
on test rows: the raw loop of ``Booster.predict`` over every booster of the model on the
encoded row (the floor), the engine's ``predict_proba`` on the row as a table, the pyfunc's
``predict`` in process, and ``mlflow models serve`` of the saved pyfunc (``--env-manager
local``, the same models-from-code file the registry serves) over HTTP: one row per request
(p50 / p95) and one request of 1,000 rows (rows per second).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.quality import DEFAULT_DATA


def _timed(fn: Any, n: int) -> dict[str, float]:
    fn()  # warm
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def _load(root: Path, name: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    if name.startswith("tags-"):  # a generated tag table: tags-<rows>x<labels>
        return _tags(*(int(v) for v in name.removeprefix("tags-").split("x")))
    meta = json.loads((root / name / "meta.json").read_text())
    tr = pl.read_parquet(root / name / "train.parquet")
    te = pl.read_parquet(root / name / "test.parquet")
    labels = meta["labels"]
    return tr.drop(labels), tr.select(labels), te.drop(labels)


def _tags(rows: int, labels: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A text column of word ids and ``labels`` 0/1 columns (Zipf-like frequencies)."""
    from labelwise.engine.data import LabelSpec, encode_labels
    from labelwise.engine.synthetic_xc import make_tag_table

    table = make_tag_table(rows, labels)
    Y, names = encode_labels(table, LabelSpec(set_column="tags", separator="|"), source="tags")
    cut = int(rows * 0.8)
    docs = table.select("doc")
    return docs.head(cut), pl.DataFrame(Y[:cut].toarray(), schema=names), docs.tail(rows - cut)


def _body(frame: pl.DataFrame, params: dict[str, Any] | None = None) -> bytes:
    """A request as a client sends it (encoded once, outside the timings: the client's cost)."""
    split = json.loads(frame.to_pandas().to_json(orient="split", index=False))
    return json.dumps({"dataframe_split": split, **({"params": params} if params else {})}).encode()


def _post(url: str, body: bytes) -> Any:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def _serve(model_path: Path, port: int) -> subprocess.Popen[bytes]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false", "PATH": path}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            str(model_path),
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("mlflow models serve did not start")


def run(root: Path, name: str, requests: int, strategy: str = "binary_relevance") -> dict[str, Any]:
    import warnings

    import mlflow

    import labelwise
    from labelwise import LabelwiseClassifier
    from labelwise.mlflow_model import LabelwisePyfunc

    Xtr, Ytr, Xte = _load(root, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LabelwiseClassifier(strategy=strategy).fit(Xtr, Ytr)
    row = Xte.head(1)
    Xa = clf._to_matrix(row, fitting=False)
    Xt = clf._tree_matrix(Xa) if clf.level1_ else Xa
    boosters = [m.booster for ms in clf.level1_ for m in ms if m.booster is not None]
    out: dict[str, Any] = {"dataset": name, "labels": len(clf.labels_), "boosters": len(boosters),
                           "trees": sum(b.num_trees() for b in boosters),
                           "linear_weight": clf.linear_weight_}  # fmt: skip
    if clf.tree_ is not None:  # the floor: the tree's own search on the encoded row
        tree = clf.tree_
        out["raw_tree_search"] = _timed(lambda: tree.candidates(clf._linear_matrix(Xa)), requests)
    else:
        out["raw_booster_loop"] = _timed(
            lambda: [b.predict(Xt, num_threads=1) for b in boosters], requests
        )
    out["engine_predict_proba"] = _timed(lambda: clf.predict_proba(row), requests)
    batch = pl.concat([Xte] * (1000 // Xte.height + 1)).head(1000)
    clf.warm_up()  # as the served pyfunc is: its 1,000 rows go through the merged forests
    out["engine_1000_rows_per_s"] = 1000 / (
        _timed(lambda: clf.predict_proba(batch), 5)["p50_ms"] / 1000
    )
    with tempfile.TemporaryDirectory() as tmp:
        clf.save(Path(tmp) / "model")
        pyfunc = LabelwisePyfunc()
        pyfunc.model = LabelwiseClassifier.load(Path(tmp) / "model").warm_up()
        pdrow = row.to_pandas()
        out["pyfunc_predict"] = _timed(lambda: pyfunc.predict(None, pdrow), requests)
        top10 = {"top_k": 10}
        out["pyfunc_top10"] = _timed(lambda: pyfunc.predict(None, pdrow, top10), requests)
        served = Path(tmp) / "served"
        pkg = Path(labelwise.__file__).parent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the signature the registry's models carry: without its params, the server
            # drops top_k and answers with a column per label
            from mlflow.models import infer_signature

            example = Xte.head(2).to_pandas()
            signature = infer_signature(example, pyfunc.predict(None, example), params={"top_k": 0})
            mlflow.pyfunc.save_model(
                str(served),
                python_model=str(pkg / "mlflow_model.py"),
                artifacts={"model_dir": str(Path(tmp) / "model")},
                code_paths=[str(pkg)],
                signature=signature,
            )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = _serve(served, port)
        try:
            url = f"http://127.0.0.1:{port}/invocations"
            one, one_top10, thousand = _body(row), _body(row, top10), _body(batch)
            out["serve_one_row"] = _timed(lambda: _post(url, one), requests)
            out["serve_one_row_top10"] = _timed(lambda: _post(url, one_top10), requests)
            per_request = _timed(lambda: _post(url, thousand), 5)["p50_ms"]
            out["serve_1000_rows_per_s"] = 1000 / (per_request / 1000)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--datasets", default="yeast,enron-text")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--strategy", default="binary_relevance")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows = []
    for name in [d for d in args.datasets.split(",") if d]:
        rows.append(run(args.data_root, name, args.requests, args.strategy))
        print(json.dumps(rows[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
