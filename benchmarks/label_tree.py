"""Label trees against a model per label: delicious and generated tag sets of thousands of labels.

    python -m benchmarks.label_tree [--datasets delicious] [--generated 100000x20000]
                                    [--systems labelwise,labelwise-label_tree,napkinxc,omikuji]
                                    [--json OUT]
    python -m benchmarks.label_tree --train 100000x20000 [--json OUT]

Each (dataset, system) runs in its own process (``--one``), so its peak RSS (sampled every
20 ms) is its own. Systems:

``labelwise``             binary_relevance defaults (a LightGBM model per label).
``labelwise-label_tree``  ``strategy="label_tree"`` defaults: napkinXC's PLT plus labelwise's
                          held-out per-label thresholds (one thread: repeatable).
``labelwise-label_tree-threads``  the same with ``deterministic=False`` (``n_jobs`` threads).
``napkinxc``              napkinXC's ``PLT`` with its defaults, as a user would call it; labels
                          are its probabilities at or above 0.5.
``omikuji``               Omikuji's Parabel defaults (trained from its own file format, written
                          inside the fit time); labels at or above 0.5 of its scores.

Generated sets (``<rows>x<labels>``): :func:`labelwise.engine.synthetic_xc.make_extreme_multilabel`
with 80% of the rows for training; nothing is written to the repository.

``--train <rows>x<labels>``: the same data as a user's tag table
(:func:`~labelwise.engine.synthetic_xc.make_tag_table`: a text column and a label-set column,
first 80% the train file, the rest the test file, in a temporary folder) through the real
``labelwise train`` (``model.strategy: label_tree``, a fresh state directory: SQLite MLflow and
the ephemeral Prefect API), its wall time and the peak RSS of the command's process tree,
sampled every 50 ms; ``--timeline`` writes the (seconds, MB) samples with the command's output
lines, to see which step holds the peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from benchmarks.quality import DEFAULT_DATA, PeakRSS

SYSTEMS = [
    "labelwise",
    "labelwise-label_tree",
    "labelwise-label_tree-threads",
    "napkinxc",
    "omikuji",
]


def load(root: Path, name: str) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """(X train, Y train, X test, Y test): X and Y sparse for the generated sets (text-like
    counts; 100,000 labels do not fit dense), dense for the shared ones."""
    if "x" in name and name.replace("x", "").isdigit():
        from labelwise.engine.synthetic_xc import make_extreme_multilabel

        rows, labels = (int(v) for v in name.split("x"))
        X, Y = make_extreme_multilabel(
            n_rows=rows, n_labels=labels, n_features=max(5000, labels), seed=0, sparse_labels=True
        )
        cut = int(rows * 0.8)
        return X[:cut], Y[:cut], X[cut:], Y[cut:]
    import polars as pl

    meta = json.loads((root / name / "meta.json").read_text())
    tr = pl.read_parquet(root / name / "train.parquet")
    te = pl.read_parquet(root / name / "test.parquet")
    feats, labs = meta["features"], meta["labels"]
    return (  # dense, as the quality benchmark gives them (sparse X turns on the linear head)
        tr.select(feats).to_numpy().astype(np.float32),
        tr.select(labs).to_numpy().astype(np.uint8),
        te.select(feats).to_numpy().astype(np.float32),
        te.select(labs).to_numpy().astype(np.uint8),
    )


def _sparse(pairs: list[list[tuple[int, float]]], n_labels: int) -> sp.csr_matrix:
    indptr = np.cumsum([0, *(len(row) for row in pairs)])
    flat = np.array([lp for row in pairs for lp in row], dtype=np.float64).reshape(-1, 2)
    return sp.csr_matrix(
        (flat[:, 1], flat[:, 0].astype(np.int64), indptr), shape=(len(pairs), n_labels)
    )


def fit_predict(system: str, X: Any, Y: Any, Xt: Any) -> tuple[Any, Any]:
    """(probabilities, 0/1 predictions) of the test rows, sparse (the labels searched) for
    the trees."""
    n_labels = Y.shape[1]
    if system.startswith("labelwise"):
        from labelwise.engine.classifier import LabelwiseClassifier
        from labelwise.engine.label_tree import LabelTreeSettings

        strategy = system.removeprefix("labelwise").lstrip("-") or "binary_relevance"
        settings = None
        if strategy == "label_tree-threads":  # n_jobs threads, not repeatable
            strategy, settings = "label_tree", LabelTreeSettings(deterministic=False)
        clf = LabelwiseClassifier(strategy=strategy, label_tree=settings).fit(X, Y)
        S = clf.predict_proba(Xt, sparse=clf.sparse_proba)
        return S, clf.predict_from_proba(S)
    Yr = sp.csr_matrix(Y)
    lists = [Yr.indices[Yr.indptr[i] : Yr.indptr[i + 1]].tolist() for i in range(Yr.shape[0])]
    X, Xt = sp.csr_matrix(X), sp.csr_matrix(Xt)
    if system == "napkinxc":
        from napkinxc.models import PLT

        with tempfile.TemporaryDirectory() as folder:
            model = PLT(folder, threads=os.cpu_count() or 1)
            model.fit(X, lists)
            S = _sparse(model.predict_proba(Xt, threshold=0.01), n_labels)
        return S, (S >= 0.5).astype(np.uint8)
    if system == "omikuji":
        import omikuji

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "train.txt"
            with path.open("w") as fh:
                fh.write(f"{X.shape[0]} {X.shape[1]} {n_labels}\n")
                for i, labels in enumerate(lists):
                    cols = X.indices[X.indptr[i] : X.indptr[i + 1]]
                    vals = X.data[X.indptr[i] : X.indptr[i + 1]]
                    pairs = " ".join(f"{c}:{v:g}" for c, v in zip(cols, vals, strict=True))
                    fh.write(",".join(map(str, labels)) + " " + pairs + "\n")
            model = omikuji.Model.train_on_data(str(path), n_threads=os.cpu_count() or 1)
        pairs_t = [
            model.predict(
                list(
                    zip(
                        Xt.indices[Xt.indptr[i] : Xt.indptr[i + 1]].tolist(),
                        Xt.data[Xt.indptr[i] : Xt.indptr[i + 1]].tolist(),
                        strict=True,
                    )
                ),
                top_k=100,
            )
            for i in range(Xt.shape[0])
        ]
        S = _sparse(pairs_t, n_labels)
        return S, (S >= 0.5).astype(np.uint8)
    raise SystemExit(f"unknown system {system!r}; choose from {SYSTEMS}")


def run_one(root: Path, dataset: str, system: str) -> dict[str, Any]:
    from labelwise.engine.metrics import classification_metrics, precision_ndcg_at_k

    X, Y, Xt, Yt = load(root, dataset)
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        S, P = fit_predict(system, X, Y, Xt)
        seconds = time.perf_counter() - t0
    m = classification_metrics(Yt, P)
    r = precision_ndcg_at_k(Yt, S)
    return {
        "dataset": dataset,
        "system": system,
        "labels": int(Y.shape[1]),
        "train_rows": int(Y.shape[0]),
        "fit_predict_seconds": round(seconds, 1),
        "peak_rss_mb": round(rss.peak / 2**20),
        "f1_micro": m["f1_micro"],
        "f1_macro": m["f1_macro"],
        **{k: r[k] for k in ("precision_at_1", "precision_at_3", "precision_at_5", "ndcg_at_5")},
    }


def run_train(size: str, timeline: Path | None = None) -> dict[str, Any]:
    """``labelwise train`` of a generated ``<rows>x<labels>`` tag table: wall, peak RSS, test
    metrics (read back from the run)."""
    import psutil
    import yaml

    from labelwise.engine.synthetic_xc import make_tag_table

    rows, labels = (int(v) for v in size.split("x"))
    with tempfile.TemporaryDirectory(prefix="labelwise-tags-") as tmp:
        folder = Path(tmp)
        table = make_tag_table(rows, labels)
        cut = int(rows * 0.8)
        table.head(cut).write_parquet(folder / "train.parquet")
        table.slice(cut).write_parquet(folder / "test.parquet")
        del table
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        cfg = {
            "name": f"tags-{size}",
            "data": {
                "train": "train.parquet",
                "test": "test.parquet",
                "labels": {"set_column": "tags", "separator": "|"},
                "text": ["doc"],
            },
            "model": {"strategy": "label_tree"},
            "contract": {"min_rows": 50, "min_positives_per_label": 0},
            "tracking": {"tracking_uri": uri},
        }
        (folder / "job.yaml").write_text(yaml.safe_dump(cfg))
        env = dict(os.environ, LABELWISE_HOME=str(folder / "state"))
        cmd = [sys.executable, "-m", "labelwise.cli", "train", "-c", str(folder / "job.yaml")]
        samples: list[tuple[float, float, str]] = []
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: list[str] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip())
                samples.append((time.perf_counter() - t0, -1.0, line.rstrip()))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        peak = 0
        parent = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in tree)
            except psutil.Error:
                rss = 0
            peak = max(peak, rss)
            samples.append((time.perf_counter() - t0, rss / 2**20, ""))
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        reader.join()
        if timeline is not None:
            timeline.write_text(
                "\n".join(f"{t:.2f}\t{mb:.0f}\t{line}" for t, mb, line in samples) + "\n"
            )
        if proc.returncode != 0:
            raise SystemExit(f"labelwise train failed ({proc.returncode}):\n" + "\n".join(lines))
        from mlflow import MlflowClient

        client = MlflowClient(uri, registry_uri=uri)
        run = client.search_runs(
            [client.get_experiment_by_name(cfg["name"]).experiment_id], max_results=1
        )[0]
        m = run.data.metrics
        sizes = _model_sizes(folder)
        return {
            "dataset": f"tags-{size}",
            "system": "labelwise train (label_tree)",
            "wall_seconds": round(wall, 1),
            "peak_rss_mb": round(peak / 2**20),
            **sizes,
            **{
                k: m[f"test/{k}"]
                for k in ("precision_at_1", "precision_at_5", "f1_micro", "f1_macro")
            },
        }


def _model_sizes(folder: Path) -> dict[str, float]:
    """MB of the registered model directory (the first one under ``folder`` holding a
    manifest), of its manifest and of its reference (drift) profile."""
    manifest = next(folder.rglob("manifest.json"), None)
    if manifest is None:
        return {}
    model = manifest.parent

    def mb(path: Path) -> float:
        return round(path.stat().st_size / 2**20, 2) if path.is_file() else 0.0

    return {
        "model_dir_mb": round(
            sum(f.stat().st_size for f in model.rglob("*") if f.is_file()) / 2**20, 1
        ),
        "manifest_mb": mb(manifest),
        "reference_profile_mb": mb(model / "reference.json"),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "| dataset | system | fit+predict s | x labelwise | peak RSS MB | P@1 | P@3 | P@5 "
        "| micro-F1 | macro-F1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = next(
            (b for b in rows if b["dataset"] == r["dataset"] and b["system"] == "labelwise"), None
        )
        ratio = f"{r['fit_predict_seconds'] / base['fit_predict_seconds']:.2f}" if base else "-"
        out.append(
            f"| {r['dataset']} | {r['system']} | {r['fit_predict_seconds']} | {ratio} "
            f"| {r['peak_rss_mb']} | {r['precision_at_1']:.4f} | {r['precision_at_3']:.4f} "
            f"| {r['precision_at_5']:.4f} | {r['f1_micro']:.4f} | {r['f1_macro']:.4f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--datasets", default="delicious")
    ap.add_argument("--generated", default="", help="e.g. 20000x2000,100000x20000")
    ap.add_argument("--systems", default=",".join(s for s in SYSTEMS if not s.endswith("threads")))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--train", default="", help="e.g. 100000x20000: through `labelwise train`")
    ap.add_argument("--timeline", type=Path, help="with --train: RSS samples and output lines")
    ap.add_argument("--one", nargs=2, metavar=("DATASET", "SYSTEM"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.data_root, *args.one)))
        return 0
    if args.train:
        result = run_train(args.train, args.timeline)
        print(json.dumps(result))
        if args.json:
            args.json.write_text(json.dumps([result], indent=1))
        return 0
    rows = []
    names = [d for d in [*args.datasets.split(","), *args.generated.split(",")] if d]
    for name in names:
        for system in [s for s in args.systems.split(",") if s]:
            cmd = [sys.executable, "-m", "benchmarks.label_tree", "--data-root"]
            cmd += [str(args.data_root), "--one", name, system]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{name} {system} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
