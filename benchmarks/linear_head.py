"""Where the linear head's time goes: one pass of its per-label logistic regressions.

    python -m benchmarks.linear_head [--dataset tmc2007-500-text] [--json OUT]

On the tf-idf of a shared ``*-text`` dataset's training split (``../shared/datasets``), each
label's ``LogisticRegression(C=4, solver="lbfgs")`` as the linear head fits it: a pass on the
first 80% of the rows (a held-out fit), a pass on all rows from scratch (the kept head), the
same pass warm-started from the 80% fit, and the from-scratch pass in two threads. Reports the
seconds and lbfgs iterations of each, and how far the warm start moves the coefficients.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
C = 4.0  # the linear head's default linear_C


def main() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from labelwise.engine.text import TOKEN_PATTERN

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=DATA)
    ap.add_argument("--dataset", default="tmc2007-500-text")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    meta = json.loads((args.data_root / args.dataset / "meta.json").read_text())
    train = pl.read_parquet(args.data_root / args.dataset / "train.parquet")
    tfidf = TfidfVectorizer(sublinear_tf=True, token_pattern=TOKEN_PATTERN, dtype=np.float32)
    X = tfidf.fit_transform(train["text"].to_list()).tocsr()
    Y = train.select(meta["labels"]).to_numpy()
    L = Y.shape[1]

    def fit(j: int, rows: np.ndarray | None = None, start: Any = None) -> Any:
        from sklearn.linear_model import LogisticRegression

        Xr, y = (X, Y[:, j]) if rows is None else (X[rows], Y[rows, j])
        if y.min() == y.max():
            return np.zeros(X.shape[1]), 0
        m = LogisticRegression(C=C, max_iter=1000, warm_start=start is not None)
        if start is not None:
            m.coef_, m.intercept_ = start[j][0][None, :].copy(), np.array([start[j][1]])
            m.classes_ = np.array([0, 1])
        m.fit(Xr, y)
        return (m.coef_[0], float(m.intercept_[0])), int(m.n_iter_[0])

    def timed(fn: Any) -> tuple[list[Any], float, int]:
        t0 = time.perf_counter()
        out = fn()
        return [o[0] for o in out], time.perf_counter() - t0, sum(o[1] for o in out)

    rows = np.arange(int(0.8 * X.shape[0]))
    part, part_s, part_it = timed(lambda: [fit(j, rows) for j in range(L)])
    cold, cold_s, cold_it = timed(lambda: [fit(j) for j in range(L)])
    warm, warm_s, warm_it = timed(lambda: [fit(j, start=part) for j in range(L)])
    with ThreadPoolExecutor(2) as pool:
        threaded, threads_s, _ = timed(lambda: list(pool.map(fit, range(L))))
    moved = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(cold, warm, strict=True))
    same = all(np.array_equal(a[0], b[0]) for a, b in zip(cold, threaded, strict=True))
    result = {
        "dataset": args.dataset,
        "rows": X.shape[0],
        "terms": X.shape[1],
        "labels": L,
        "pass_80pct_s": part_s,
        "pass_80pct_iterations": part_it,
        "pass_all_s": cold_s,
        "pass_all_iterations": cold_it,
        "pass_all_warm_s": warm_s,
        "pass_all_warm_iterations": warm_it,
        "warm_max_coef_change": moved,
        "pass_all_two_threads_s": threads_s,
        "two_threads_identical": same,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
