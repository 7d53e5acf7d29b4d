"""One default setting against another value of it, on every dataset, over several seeds.

    python -m benchmarks.settings --set extra_trees=false [--datasets a,b] [--seeds 0,1,2]
                                  [--json OUT]

What a default change is judged by: ``LabelwiseClassifier()`` against the same with each
``--set KEY=VALUE`` (a JSON value; several ``--set`` give several alternatives), fitted with
seeds ``--seeds`` on the official training split. Each fit reports two scores: its held-out
estimate (:class:`~labelwise.engine.held_out.HeldOutScore`: out-of-fold probabilities, each
fold's thresholds fitted on the other folds, the training data only) and the official test
split's. The held-out estimate is the one to decide by; the test score shows it carried over.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality import DATASETS, DEFAULT_DATA, each_dataset


def score(data: dict[str, Any], params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Held-out and test micro/macro-F1 of one fit, and its fit time."""
    from labelwise.engine.classifier import LabelwiseClassifier
    from labelwise.engine.held_out import HeldOutScore
    from labelwise.engine.metrics import classification_metrics

    clf = LabelwiseClassifier(random_state=seed, **params)
    held_out = HeldOutScore(clf.policy, clf.calibration, seed=seed)
    t0 = time.perf_counter()
    clf.fit(data["Xtr"], data["Ytr"], callbacks=[held_out])
    seconds = time.perf_counter() - t0
    test = classification_metrics(data["Yte"], clf.predict(data["Xte"]))
    return {
        "held_out": [held_out.metrics_["f1_micro"], held_out.metrics_["f1_macro"]],
        "test": [test["f1_micro"], test["f1_macro"]],
        "fit_seconds": seconds,
    }


def compare(
    data: dict[str, Any], alternatives: dict[str, dict[str, Any]], seeds: list[int]
) -> dict[str, dict[str, Any]]:
    """Per alternative (``default`` first): mean held-out and test scores, mean fit time."""
    out = {}
    for name, params in alternatives.items():
        runs = [score(data, params, seed) for seed in seeds]
        out[name] = {
            k: np.round(np.mean([r[k] for r in runs], axis=0), 4).tolist()
            for k in ("held_out", "test", "fit_seconds")
        }
    return out


def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    alternatives: dict[str, dict[str, Any]] = {"default": {}}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE (a JSON value)")
        alternatives[item] = {key: json.loads(value)}
    return alternatives


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.settings", description=__doc__)
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    alternatives = parse_set(args.set)
    seeds = [int(s) for s in args.seeds.split(",")]
    each_dataset(
        args.data_root, args.datasets, args.json, lambda data: compare(data, alternatives, seeds)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
