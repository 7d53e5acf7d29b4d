"""Pipeline overhead: `labelwise train` end to end against the engine's fit alone.

    python -m benchmarks.pipeline [--configs configs/tmc2007-500.yaml,configs/emotions.yaml]
                                  [--json OUT]

For each config: (1) the engine alone (read, encode, `LabelwiseClassifier.fit`) in this
process; (2) `labelwise train -c CONFIG` as a subprocess on a state directory warmed by one
earlier run (MLflow's SQLite schema and Prefect's database exist), wall time measured outside.
The difference is what the pipeline adds: Prefect's ephemeral API, the data contract, the
split, evaluation and plots, MLflow logging of metrics, artifacts and the model, registration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def engine_fit(config: Path) -> float:
    from labelwise.pipeline.config import load_config
    from labelwise.tasks.train import read_xy

    cfg = load_config(config)
    t0 = time.perf_counter()
    X, Y, labels = read_xy(cfg, str(cfg.data.train))
    cfg.estimator().fit(X, Y, labels=labels)
    return time.perf_counter() - t0


def cli_train(config: Path, home: str) -> tuple[float, float]:
    """Wall time of `labelwise train` and the fit time it logged to MLflow."""
    env = {**os.environ, "LABELWISE_HOME": home}
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "labelwise.cli", "train", "-c", str(config)],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    from mlflow import MlflowClient

    from labelwise.pipeline.config import load_config

    uri = f"sqlite:///{Path(home) / 'mlflow.db'}"
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(load_config(config).experiment)
    run = c.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]
    return wall, run.data.metrics["fit_seconds"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.pipeline")
    ap.add_argument("--configs", default="configs/tmc2007-500.yaml,configs/emotions.yaml")
    ap.add_argument("--warmup", default="configs/yeast.yaml")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    home = tempfile.mkdtemp(prefix="labelwise-bench-")
    cli_train(ROOT / args.warmup, home)  # warm the state directory
    rows = []
    for cfg in [ROOT / c for c in args.configs.split(",")]:
        fit = engine_fit(cfg)
        wall, logged_fit = cli_train(cfg, home)
        rows.append(
            {
                "config": cfg.name,
                "engine_fit_s": fit,
                "labelwise_train_s": wall,
                "fit_inside_pipeline_s": logged_fit,
                "ratio": wall / fit,
                "fixed_cost_s": wall - logged_fit,
            }
        )
    print("| config | engine fit s | `labelwise train` s | ratio | pipeline cost beyond fit s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['engine_fit_s']:.1f} | {r['labelwise_train_s']:.1f} | "
            f"{r['ratio']:.2f}x | {r['fixed_cost_s']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
