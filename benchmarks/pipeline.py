"""Pipeline overhead, side by side in one run: what a `labelwise` command costs beyond its work.

    python -m benchmarks.pipeline [--rows 300000,1000000] [--delicious] [--json OUT]
    python -m benchmarks.pipeline --commands-only [--json OUT]

1. `labelwise train` wall time (a subprocess; peak RSS of its process tree) against the engine's
   own read + encode + fit in a fresh process, for tmc2007-500 and synthetic tables of
   ``--rows`` rows (labelwise.synthetic, 24 labels, generated at run time), and delicious (983
   labels) with ``--delicious``. Each `train` runs on a state directory warmed by one earlier
   run of another config (MLflow's and Prefect's databases exist), first with Prefect's
   ephemeral API (what a plain command does), then with the state directory's shared local
   server (`labelwise server start`).
2. The small commands on emotions, warm state directory, ephemeral API vs shared server vs
   the warm process (the `labelwise` executable with ``LABELWISE_WARM`` on; each command
   timed once the warm process it will use is ready, the wait for it reported apart):
   `train`, `validate`, `predict` (the champion on 1,000 rows), `evaluate`.
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

from benchmarks.scale import absolute_config, measure

ROOT = Path(__file__).resolve().parents[1]


def engine_fit(config: Path) -> float:
    """Read + encode + fit of the rows `labelwise train` fits (without data.test: the
    training part of the same stratified split), in a fresh process; imports not counted (a
    library user pays them once per session)."""
    code = (
        "import time, sys\n"
        "import lightgbm\n"  # the engine imports it on its first fit: not counted either
        "from labelwise.engine.split import iterative_stratification\n"
        "from labelwise.pipeline.config import load_config\n"
        "from labelwise.pipeline.tables import read_xy\n"
        "cfg = load_config(sys.argv[1]); t0 = time.perf_counter()\n"
        "X, Y, labels = read_xy(cfg, str(cfg.data.train))\n"
        "if cfg.data.test is None:\n"
        "    f = cfg.split.test_fraction\n"
        "    keep = iterative_stratification(Y, [1 - f, f], cfg.split.seed) == 0\n"
        "    X, Y = X.filter(keep), Y[keep]\n"
        "cfg.estimator().fit(X, Y, labels=labels)\n"
        "print(time.perf_counter() - t0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(config)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


class Home:
    """A state directory, warmed by one train of ``warmup``; optionally with a shared server."""

    def __init__(
        self, tmp: Path, name: str, server: bool, warmup: Path, warm: bool = False
    ) -> None:
        self.path = tmp / name
        self.path.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLF"))}
        self.env |= {"LABELWISE_HOME": str(self.path), "LABELWISE_WARM": "600" if warm else "0"}
        self.server, self.warm, self.waited = server, warm, 0.0
        self.name = "warm process" if warm else "server" if server else "ephemeral"
        if server:
            self.run("server", "start")
        self.run("train", "-c", str(warmup), "--no-register")

    def run(self, *args: str) -> tuple[float, float]:
        if self.warm:  # the console script: it hands the command to the warm process
            t0 = time.perf_counter()
            first = not (self.path / "mlflow.db").exists()  # no warm process yet: cold
            while not first and not list(self.path.glob("warm-*.json")):
                if time.perf_counter() - t0 > 300:
                    raise SystemExit(f"no warm process in {self.path}: see warm.log")
                time.sleep(0.05)
            self.waited = time.perf_counter() - t0
            cmd = [str(Path(sys.executable).parent / "labelwise"), *args]
        else:
            cmd = [sys.executable, "-m", "labelwise.cli", *args]
        wall, peak, _ = measure(cmd, env=self.env)
        return wall, peak

    def close(self) -> None:
        if self.server or self.warm:
            self.run("server", "stop")


def train_rows(tmp: Path, homes: list[Home], configs: dict[str, Path]) -> list[dict]:
    rows = []
    for name, config in configs.items():
        fit = engine_fit(config)
        row: dict = {"case": name, "engine_fit_s": fit}
        for home in homes:
            wall, peak = home.run("train", "-c", str(config), "--no-register")
            key = home.name
            row |= {f"train_{key}_s": wall, f"ratio_{key}": wall / fit, f"rss_{key}_mb": peak}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def synthetic_config(tmp: Path, rows: int) -> Path:
    from labelwise.engine.synthetic import make_multilabel_table

    folder = tmp / f"synthetic-{rows}"
    folder.mkdir()
    make_multilabel_table(n_rows=rows, n_labels=24, seed=0).write_parquet(folder / "t.parquet")
    cfg = {
        "name": f"synthetic-{rows}",
        "data": {"train": "t.parquet", "labels": {"prefix": "label_"}, "exclude": ["id"]},
        "contract": {"min_rows": 100},
    }
    import yaml

    (folder / "job.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "job.yaml"


def small_commands(homes: list[Home], emotions: Path, tmp: Path) -> list[dict]:
    """train, validate, predict (1,000 rows), evaluate on emotions, each home."""
    import polars as pl

    data = ROOT.parent / "shared" / "datasets" / "emotions"
    rows = pl.concat(
        [pl.read_parquet(data / "train.parquet"), pl.read_parquet(data / "test.parquet")]
    )
    thousand = tmp / "emotions-1000.parquet"
    rows.sample(1000, with_replacement=True, seed=0).write_parquet(thousand)
    out = []
    for home in homes:
        row: dict = {"home": home.name}
        row["train_s"] = home.run("train", "-c", str(emotions))[0]  # registers the champion
        row["validate_s"] = home.run("validate", "-c", str(emotions))[0]
        row["wait_before_validate_s"] = home.waited  # for the warm process train left
        model = "models:/emotions@champion"
        scored = str(home.path / "scored.parquet")
        row["predict_1000_s"] = home.run(
            "predict", "-m", model, "-i", str(thousand), "-o", scored, "--overwrite"
        )[0]
        row["evaluate_s"] = home.run("evaluate", "-m", model, "-c", str(emotions))[0]
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.pipeline")
    ap.add_argument("--rows", default="300000", help="synthetic table sizes ('' for none)")
    ap.add_argument("--delicious", action="store_true", help="also delicious (983 labels)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--commands-only", action="store_true", help="only part 2 (small commands)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="labelwise-bench-"))
    cfgs = {"tmc2007-500": ROOT / "configs" / "tmc2007-500.yaml"}
    for r in filter(None, args.rows.split(",")):
        cfgs[f"synthetic {int(r):,}"] = synthetic_config(tmp, int(r))
    if args.delicious:
        cfgs["delicious"] = ROOT / "configs" / "delicious.yaml"
    cfgs = {k: absolute_config(v, tmp / f"{k.replace(' ', '-')}.yaml") for k, v in cfgs.items()}
    emotions = absolute_config(ROOT / "configs" / "emotions.yaml", tmp / "emotions.yaml")
    warmup = absolute_config(ROOT / "configs" / "yeast.yaml", tmp / "yeast.yaml")
    homes = [Home(tmp, "ephemeral", False, warmup), Home(tmp, "server", True, warmup)]
    if args.commands_only:
        homes.append(Home(tmp, "warm", False, warmup, warm=True))
    try:
        started = time.strftime("%Y-%m-%d %H:%M")
        result = {
            "started": started,
            "train": [] if args.commands_only else train_rows(tmp, homes, cfgs),
            "commands": small_commands(homes, emotions, tmp),
        }
    finally:
        for h in homes:
            h.close()
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
