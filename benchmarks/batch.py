"""Batch predict of a large table: `labelwise predict` streams it in chunks; wall time, rows/s
(as the command reports it) and the peak RSS of the command's process tree, per chunk size.

    python -m benchmarks.batch [--rows 1000000] [--chunks 100000,20000] [--json OUT]

The model: the defaults fitted on 20,000 rows of the same generated table (24 labels, numeric,
categorical and boolean features, nulls; ``labelwise.engine.synthetic``), saved as a model
directory. The table to score is generated at run time (never committed). The input parquet's
size and the output's are reported: a chunked command should hold far less than either.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.scale import measure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.batch")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunks", default="100000,20000", help="--chunk-rows values to compare")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from labelwise.engine.classifier import LabelwiseClassifier
    from labelwise.engine.synthetic import make_multilabel_table

    tmp = Path(tempfile.mkdtemp(prefix="labelwise-batch-"))
    table = make_multilabel_table(n_rows=args.rows, n_labels=24, seed=0)
    labels = [c for c in table.columns if c.startswith("label_")]
    train = table.head(20_000)
    clf = LabelwiseClassifier().fit(train.drop(["id", *labels]), train.select(labels).to_numpy())
    model = tmp / "model"
    clf.save(model)
    big = tmp / "big.parquet"
    table.drop(labels).write_parquet(big)
    del table, train, clf
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env |= {"LABELWISE_HOME": str(tmp / "home"), "LABELWISE_WARM": "0"}
    rows = []
    for chunk in (int(c) for c in args.chunks.split(",")):
        out = tmp / f"scored-{chunk}.parquet"
        cmd = [sys.executable, "-m", "labelwise.cli", "predict", "-m", str(model), "-i", str(big)]
        cmd += ["-o", str(out), "--overwrite", "--chunk-rows", str(chunk)]
        wall, peak, stdout = measure(cmd, env=env)
        said = re.search(r"\(([\d.]+) s, ([\d,]+) rows/s\)", stdout)
        row = {
            "rows": args.rows,
            "chunk_rows": chunk,
            "wall_s": round(wall, 2),
            "scoring_s": float(said.group(1)) if said else None,
            "rows_per_s": int(said.group(2).replace(",", "")) if said else None,
            "peak_rss_mb": round(peak),
            "input_mb": round(big.stat().st_size / 2**20),
            "output_mb": round(out.stat().st_size / 2**20),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps({"started": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
