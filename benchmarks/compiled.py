"""Compiled inference against LightGBM's own predictor, on one model's boosters.

    pip install -e ".[bench-compiled]"     # lleaves, with the llvmlite it still works with
    python -m benchmarks.compiled [--dataset yeast] [--repeats 200] [--json OUT]

The defaults fitted on the dataset's official training split (``../shared/datasets``), saved;
each booster's LightGBM text file compiled with lleaves (once: the compile time is reported,
then the cached library is loaded). One row and 1,000 rows of the test split, every booster
in a loop, one thread: p50 milliseconds of each, and the largest difference of the
probabilities.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def p50_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compiled")
    ap.add_argument("--dataset", default="yeast")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import lightgbm as lgb
    import lleaves
    import polars as pl

    from labelwise.engine.classifier import LabelwiseClassifier

    train = pl.read_parquet(DATA / args.dataset / "train.parquet")
    test = pl.read_parquet(DATA / args.dataset / "test.parquet")
    clf = LabelwiseClassifier()
    meta = json.loads((DATA / args.dataset / "meta.json").read_text())
    labels = meta["labels"]
    clf.fit(train.drop(labels), train.select(labels).to_numpy())
    tmp = Path(tempfile.mkdtemp(prefix="labelwise-compiled-"))
    clf.save(tmp / "model")
    files = sorted((tmp / "model" / "boosters").glob("*.txt"))
    X = test.drop(labels).to_numpy().astype(np.float64)
    rows = np.resize(X, (1000, X.shape[1]))
    boosters = [lgb.Booster(model_file=str(f)) for f in files]
    t0 = time.perf_counter()
    compiled = []
    for i, f in enumerate(files):
        m = lleaves.Model(model_file=str(f))
        m.compile(cache=str(tmp / f"{i}.so"))
        compiled.append(m)
    compile_s = time.perf_counter() - t0
    one = X[:1]
    result = {
        "dataset": args.dataset,
        "boosters": len(files),
        "trees": sum(b.num_trees() for b in boosters),
        "compile_s": round(compile_s, 1),
        "lightgbm_one_row_ms": p50_ms(lambda: [b.predict(one) for b in boosters], args.repeats),
        "lleaves_one_row_ms": p50_ms(
            lambda: [m.predict(one, n_jobs=1) for m in compiled], args.repeats
        ),
        "lightgbm_1000_rows_ms": p50_ms(
            lambda: [b.predict(rows, num_threads=1) for b in boosters], 20
        ),
        "lleaves_1000_rows_ms": p50_ms(lambda: [m.predict(rows, n_jobs=1) for m in compiled], 20),
        "max_abs_diff": float(
            np.abs(
                np.array([b.predict(X) for b in boosters])
                - np.array([m.predict(X, n_jobs=1) for m in compiled])
            ).max()
        ),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
