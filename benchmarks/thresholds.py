"""Threshold policies re-cut from one default fit per dataset: what defaults could change.

    python -m benchmarks.thresholds [--datasets a,b] [--json OUT]

One ``LabelwiseClassifier()`` fit per dataset; its held-out (out-of-fold) probabilities are kept
through the fit's ``held_out`` callback, and every policy of the grid (``shrink_to``
target and ``shrinkage`` k x F-beta ``beta``) sets thresholds from them, scored on the official
test split. No refit, so the grid costs one fit per dataset and isolates the threshold policy
from everything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality import DATASETS, DEFAULT_DATA, each_dataset
from labelwise.pipeline.search_space import BETA, SHRINKAGE  # the grid `labelwise tune` scores


def grid(data: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """``<shrink_to>-k<shrinkage>-b<beta>`` -> (test micro-F1, macro-F1)."""
    from labelwise.engine.callbacks import FitCallback
    from labelwise.engine.classifier import LabelwiseClassifier
    from labelwise.engine.metrics import classification_metrics
    from labelwise.engine.thresholds import ThresholdPolicy, apply_thresholds, fit_thresholds

    class Keep(FitCallback):
        def held_out(self, Y: np.ndarray, P: np.ndarray, folds: list[np.ndarray]) -> None:
            self.Y, self.P = Y, P

    clf, keep = LabelwiseClassifier(), Keep()
    clf.fit(data["Xtr"], data["Ytr"], callbacks=[keep])
    P_test = clf.predict_proba(data["Xte"])
    out = {}
    for target, k in SHRINKAGE:
        for beta in BETA:
            policy = ThresholdPolicy(shrinkage=k, shrink_to=target, objective="fbeta", beta=beta)
            pred = apply_thresholds(P_test, fit_thresholds(keep.Y, keep.P, policy))
            m = classification_metrics(data["Yte"], pred)
            out[f"{target}-k{k:g}-b{beta:g}"] = (round(m["f1_micro"], 4), round(m["f1_macro"], 4))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.thresholds", description=__doc__)
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    each_dataset(args.data_root, args.datasets, args.json, grid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
