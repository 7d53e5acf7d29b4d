"""Scale: delicious (983 labels) end to end, and fit time / peak memory as labels and rows grow.

    python -m benchmarks.scale [--config configs/delicious.yaml] [--labels 100,300,983]
                               [--rows 0.25,0.5,1.0] [--rows-labels 100] [--json OUT]
                               [--skip-end-to-end]    (an empty --labels/--rows skips those)

Every measurement runs in its own process; its peak memory is the largest total RSS of that
process and all its children (Dask workers, Prefect's ephemeral server), polled every 0.1 s.

1. End to end: `labelwise train -c CONFIG --no-register` with `task_runner: thread`, then with
   `task_runner: dask` (a LocalCluster of one single-threaded worker process per core), each on
   a fresh state directory: the whole flow (contract, split, fit, evaluation, MLflow logging).
2. Labels: the engine's read + encode + fit on the first k labels of the config, for each k.
3. Rows: the same on the first fraction of the training rows, at a fixed label count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak tree RSS in MB, stdout) of a command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        with contextlib.suppress(psutil.Error):  # processes come and go while we look
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        peak = max(peak, total)
        time.sleep(0.1)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, peak / 2**20, out


def absolute_config(config: Path, out: Path, **changes: object) -> Path:
    """A copy of ``config`` with its relative paths made absolute, plus ``changes``."""
    raw = yaml.safe_load(config.read_text())
    base = config.parent
    for key in ("train", "test"):
        if raw["data"].get(key):
            raw["data"][key] = str((base / raw["data"][key]).resolve())
    if raw.get("contract", {}).get("suite"):
        raw["contract"]["suite"] = str((base / raw["contract"]["suite"]).resolve())
    raw.update(changes)
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def end_to_end(config: Path, task_runner: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="labelwise-scale-"))
    cfg = absolute_config(config, tmp / config.name, task_runner=task_runner)
    env = {
        **os.environ,
        "LABELWISE_HOME": str(tmp / "state"),
        "PREFECT_HOME": str(tmp / "state" / "prefect"),
    }
    for k in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(k, None)
    wall, peak, _ = measure(
        [sys.executable, "-m", "labelwise.cli", "train", "-c", str(cfg), "--no-register"], env
    )
    from mlflow import MlflowClient

    from labelwise.pipeline.config import load_config

    c = MlflowClient(f"sqlite:///{tmp / 'state' / 'mlflow.db'}")
    exp = c.get_experiment_by_name(load_config(cfg).experiment)
    run = c.search_runs([exp.experiment_id])[0]
    m = run.data.metrics
    return {
        "task_runner": task_runner,
        "wall_s": wall,
        "peak_rss_mb": peak,
        "fit_s": m["fit_seconds"],
        "micro_f1": m["test/f1_micro"],
        "macro_f1": m["test/f1_macro"],
    }


def engine_fit(config: Path, n_labels: int, row_fraction: float) -> dict:
    """Runs in a child process (``--one``): read, encode and fit; prints a JSON line."""
    import numpy as np

    from labelwise.pipeline.config import load_config
    from labelwise.tasks.train import read_xy

    cfg = load_config(config)
    t0 = time.perf_counter()
    X, Y, labels = read_xy(cfg, str(cfg.data.train))
    n = round(X.height * row_fraction)
    X, Y = X.head(n), np.ascontiguousarray(Y[:n, :n_labels])
    rss_data = psutil.Process().memory_info().rss / 2**20
    clf = cfg.estimator().fit(X, Y, labels=labels[:n_labels])
    return {
        "labels": int(Y.shape[1]),
        "rows": n,
        "fit_s": time.perf_counter() - t0,
        "rss_after_data_mb": rss_data,
        "models": len(clf.labels_),
    }


def one(config: Path, n_labels: int, row_fraction: float) -> dict:
    wall, peak, out = measure(
        [sys.executable, "-m", "benchmarks.scale", "--one", f"{config}:{n_labels}:{row_fraction}"]
    )
    res = json.loads(out.strip().splitlines()[-1])
    return res | {"wall_s": wall, "peak_rss_mb": peak}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "delicious.yaml")
    ap.add_argument("--labels", default="100,300,983")
    ap.add_argument("--rows", default="0.25,0.5,1.0")
    ap.add_argument("--rows-labels", type=int, default=100)
    ap.add_argument("--skip-end-to-end", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        path, k, frac = args.one.rsplit(":", 2)
        print(json.dumps(engine_fit(Path(path), int(k), float(frac))))
        return 0

    out: dict[str, list] = {"end_to_end": [], "labels": [], "rows": []}
    if not args.skip_end_to_end:
        for runner in ("thread", "dask"):
            out["end_to_end"].append(end_to_end(args.config.resolve(), runner))
            print(out["end_to_end"][-1], flush=True)
    for k in [int(x) for x in args.labels.split(",") if x]:
        out["labels"].append(one(args.config.resolve(), k, 1.0))
        print(out["labels"][-1], flush=True)
    for frac in [float(x) for x in args.rows.split(",") if x]:
        out["rows"].append(one(args.config.resolve(), args.rows_labels, frac))
        print(out["rows"][-1], flush=True)
    print(markdown(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


def markdown(out: dict) -> str:
    lines = []
    if out["end_to_end"]:
        base = out["end_to_end"][0]
        lines += [
            "| task_runner | `labelwise train` wall s | fit s | vs thread (fit) | "
            "peak RSS MB (tree) | test micro-F1 | test macro-F1 |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['task_runner']} | {r['wall_s']:.1f} | {r['fit_s']:.1f} | "
            f"{r['fit_s'] / base['fit_s']:.2f}x | {r['peak_rss_mb']:.0f} | "
            f"{r['micro_f1']:.4f} | {r['macro_f1']:.4f} |"
            for r in out["end_to_end"]
        ]
        lines.append("")
    for key in ("labels", "rows"):
        rs = out[key]
        if not rs:
            continue
        first = rs[0]
        lines += [
            "| labels | rows | read + fit s | s per label | time vs first | "
            "RSS after data MB | peak RSS MB | peak - data MB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['labels']} | {r['rows']} | "
            f"{r['fit_s']:.1f} | {r['fit_s'] / r['labels']:.3f} | "
            f"{r['fit_s'] / first['fit_s']:.2f}x | {r['rss_after_data_mb']:.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - r['rss_after_data_mb']:.0f} |"
            for r in rs
        ]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
