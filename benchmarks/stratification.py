"""Iterative stratification: labelwise against the `iterative-stratification` package.

    python -m benchmarks.stratification [--rows 100000] [--labels 100] [--folds 5] [--json OUT]

Both split the same synthetic label matrix (label prevalence from 40% down to 0.05%, correlated
through shared latent factors) into k folds. Reported: wall time, and evenness as the mean over
labels of the standard deviation of (fold's share of the label's positives - fold's share of the
rows): lower is more even; a random split is shown for scale.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from labelwise.engine.split import iterative_stratification, label_share_spread


def make_labels(n: int, n_labels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 8))
    w = rng.normal(size=(8, n_labels))
    base = np.log(np.geomspace(0.4, 0.0005, n_labels))
    logits = base + 0.8 * (z @ w) / np.sqrt(8)
    return (rng.random((n, n_labels)) < 1 / (1 + np.exp(-logits))).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stratification")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--labels", type=int, default=100)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    Y = make_labels(args.rows, args.labels)
    rows = []

    t0 = time.perf_counter()
    fold = iterative_stratification(Y, [1.0] * args.folds, seed=0)
    rows.append(
        {
            "system": "labelwise",
            "seconds": time.perf_counter() - t0,
            "spread": label_share_spread(Y, fold),
        }
    )

    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    t0 = time.perf_counter()
    other = np.empty(len(Y), dtype=np.int16)
    X = np.zeros((len(Y), 1))
    for j, (_, te) in enumerate(
        MultilabelStratifiedKFold(args.folds, shuffle=True, random_state=0).split(X, Y)
    ):
        other[te] = j
    rows.append(
        {
            "system": "iterative-stratification",
            "seconds": time.perf_counter() - t0,
            "spread": label_share_spread(Y, other),
        }
    )
    rnd = np.random.default_rng(0).integers(0, args.folds, len(Y))
    rows.append({"system": "random", "seconds": float("nan"), "spread": label_share_spread(Y, rnd)})
    speedup = rows[1]["seconds"] / rows[0]["seconds"]
    print(
        f"{args.rows} rows x {args.labels} labels, {args.folds} folds; "
        f"labels with positives: {int((Y.sum(0) > 0).sum())}"
    )
    print("| system | seconds | spread (lower is more even) |\n|---|---|---|")
    for r in rows:
        print(f"| {r['system']} | {r['seconds']:.2f} | {r['spread']:.5f} |")
    print(f"speed-up of labelwise: {speedup:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "speedup": speedup}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
