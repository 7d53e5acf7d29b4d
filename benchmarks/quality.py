"""Quality and speed of labelwise against its peers, on the same official splits, in one process.

    python -m benchmarks.quality [--data-root DIR] [--datasets a,b] [--systems x,y]
                                 [--json OUT] [--markdown OUT]

Systems: ``labelwise`` (defaults), ``labelwise-tune-<budget>`` (``labelwise tune --budget
<budget>`` on the dataset's config, e.g. ``labelwise-tune-10m``: see :func:`run_tuned`),
``labelwise-<strategy|preset>`` (``-fast``,
``-stacking``, ``-chain``, ``-chain_ensemble``), ``sklearn-br`` (MultiOutputClassifier of
LGBMClassifier), ``sklearn-cc`` (ClassifierChain of LGBMClassifier), ``xgboost-multi-output-tree``,
``xgboost-per-label`` (one_output_per_tree), ``catboost-multilogloss``. Every peer runs with its
library defaults, as a user would call it. Peers cannot fit a label with a single class in the
training split, so for them such labels are predicted constant (as labelwise does) and the rest
are fitted: a guard, not a change to the peer.

Fit time includes everything the system does to produce its final predictor (labelwise: binning,
the stratified validation split, early stopping, threshold calibration and the refit). Peak RSS is
sampled every 20 ms during fit + predict (the process's resident set, data included).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets"
DATASETS = ["emotions", "yeast", "scene", "enron", "bibtex", "corel5k", "delicious", "tmc2007-500"]
LABELWISE_VARIANTS = [
    "labelwise",
    "labelwise-fast",
    "labelwise-stacking",
    "labelwise-chain",
    "labelwise-chain_ensemble",
]
PEERS = [
    "sklearn-br",
    "sklearn-cc",
    "xgboost-multi-output-tree",
    "xgboost-per-label",
    "catboost-multilogloss",
]
SYSTEMS = LABELWISE_VARIANTS + PEERS


def each_dataset(
    root: Path, datasets: str, out: Path | None, run: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``run(data)`` on each named dataset (comma-separated): a JSON line printed per dataset,
    and all rows so far rewritten to ``out`` after each (a long run keeps what it measured)."""
    rows = {}
    for name in [d for d in datasets.split(",") if d]:
        rows[name] = run(load(root, name))
        print(json.dumps({"dataset": name, **rows[name]}), flush=True)
        if out:
            out.write_text(json.dumps(rows, indent=1))
    return rows


def load(root: Path, name: str) -> dict[str, Any]:
    """A shared dataset; ``<name>-nominal[-N]`` is its 0/1 features written as YES/NO text
    (categorical, as ARFF nominal attributes arrive), on its first N training rows: the small
    wide nominal tables of some Mulan sets (genbase: 463 x 1,185 YES/NO; medical: 333 x 1,449)."""
    base, nominal, rest = name.partition("-nominal")
    if nominal:
        return _nominal(load(root, base), name, int(rest.lstrip("-") or 0))
    meta = json.loads((root / name / "meta.json").read_text())
    tr = pl.read_parquet(root / name / "train.parquet")
    te = pl.read_parquet(root / name / "test.parquet")
    return {
        "meta": meta,
        "Xtr": tr.select(meta["features"]),
        "Ytr": tr.select(meta["labels"]),
        "Xte": te.select(meta["features"]),
        "Yte": te.select(meta["labels"]).to_numpy(),
    }


def _nominal(data: dict[str, Any], name: str, rows: int) -> dict[str, Any]:
    feats = data["meta"]["features"]
    binary = [c for c in feats if set(data["Xtr"][c].unique().to_list()) <= {0, 1}]
    text = [
        pl.when(pl.col(c) > 0).then(pl.lit("YES")).otherwise(pl.lit("NO")).alias(c) for c in binary
    ]
    out = dict(data, meta=dict(data["meta"], name=name, categorical_features=binary))
    out["Xtr"], out["Xte"] = data["Xtr"].with_columns(text), data["Xte"].with_columns(text)
    if rows:
        out["Xtr"], out["Ytr"] = out["Xtr"].head(rows), out["Ytr"].head(rows)
    return out


def _numeric(X: pl.DataFrame, cats: list[str]) -> np.ndarray:
    """Peers get categorical columns as integer codes (their common denominator)."""
    if cats:
        X = X.with_columns(
            [pl.col(c).cast(pl.String).cast(pl.Categorical).to_physical() for c in cats]
        )
    return X.to_numpy().astype(np.float32)


class _Guarded:
    """Fit a peer on the labels with two classes in train; predict the others constant."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    def fit(self, X: np.ndarray, Y: np.ndarray) -> _Guarded:
        pos = Y.sum(axis=0)
        self.keep = np.flatnonzero((pos > 0) & (pos < len(Y)))
        self.const = (pos > 0).astype(np.uint8)
        self.model = self.make().fit(X, Y[:, self.keep])
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = np.tile(self.const, (X.shape[0], 1))
        pred = np.asarray(self.model.predict(X))
        out[:, self.keep] = pred.reshape(X.shape[0], -1)
        return out


def make_peer(system: str) -> Any:
    if system == "sklearn-br":
        from lightgbm import LGBMClassifier
        from sklearn.multioutput import MultiOutputClassifier

        return _Guarded(lambda: MultiOutputClassifier(LGBMClassifier(verbose=-1)))
    if system == "sklearn-cc":
        from lightgbm import LGBMClassifier
        from sklearn.multioutput import ClassifierChain

        return _Guarded(lambda: ClassifierChain(LGBMClassifier(verbose=-1), random_state=0))
    if system.startswith("xgboost"):
        from xgboost import XGBClassifier

        strategy = (
            "multi_output_tree" if system == "xgboost-multi-output-tree" else "one_output_per_tree"
        )
        return _Guarded(
            lambda: XGBClassifier(tree_method="hist", multi_strategy=strategy, random_state=0)
        )
    if system == "catboost-multilogloss":
        from catboost import CatBoostClassifier

        return _Guarded(
            lambda: CatBoostClassifier(
                loss_function="MultiLogloss", verbose=0, random_seed=0, allow_writing_files=False
            )
        )
    raise ValueError(f"unknown system {system!r}; choose from {SYSTEMS}")


def make_labelwise(system: str) -> Any:
    # the engine imports LightGBM when it first fits; a peer's constructor already has: import
    # it here, so that no fit time holds a one-time import (1 s)
    import lightgbm  # noqa: F401

    from labelwise.engine.classifier import PRESETS, STRATEGIES, LabelwiseClassifier

    variant = system.removeprefix("labelwise").lstrip("-") or "default"
    if variant in PRESETS:
        return LabelwiseClassifier.from_preset(variant)
    if variant in STRATEGIES:
        return LabelwiseClassifier(strategy=variant)
    raise ValueError(f"unknown labelwise variant {system!r}")


class PeakRSS:
    """Samples this process's resident set size in a thread."""

    def __enter__(self) -> PeakRSS:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def run_tuned(root: Path, name: str, system: str) -> dict[str, Any]:
    """``labelwise-tune-<budget>``: the real ``labelwise tune --budget <budget>`` (its own
    state directory: SQLite MLflow, ephemeral Prefect) on the dataset's shipped config pointed
    at ``root``; the test score is what the tune reports for its best config, read back from
    its MLflow run. Time is the whole command, search and final fit included."""
    import os
    import subprocess
    import tempfile

    import yaml
    from mlflow import MlflowClient

    budget = system.removeprefix("labelwise-tune-")
    config = ROOT / "configs" / f"{name}.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["train"] = str(root / name / "train.parquet")
    cfg["data"]["test"] = str(root / name / "test.parquet")
    if cfg.get("contract", {}).get("suite"):
        cfg["contract"]["suite"] = str((config.parent / cfg["contract"]["suite"]).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        cli = Path(sys.executable).parent / "labelwise"
        t0 = time.perf_counter()
        subprocess.run(
            [str(cli), "tune", "-c", str(path), "--budget", budget],
            env=os.environ | {"LABELWISE_HOME": str(Path(tmp) / "state")},
            check=True,
        )
        seconds = time.perf_counter() - t0
        c = MlflowClient(f"sqlite:///{Path(tmp) / 'state' / 'mlflow.db'}")
        run = c.search_runs(
            [c.get_experiment_by_name(cfg["name"]).experiment_id],
            filter_string="tags.`labelwise.kind` = 'tune'",
        )[0]
    m = run.data.metrics
    return {
        "dataset": name,
        "system": system,
        "micro_f1": m["test/f1_micro"],
        "macro_f1": m["test/f1_macro"],
        "samples_f1": m["test/f1_samples"],
        "hamming_loss": m["test/hamming_loss"],
        "subset_accuracy": m["test/subset_accuracy"],
        "fit_seconds": seconds,
        "trials": int(m["trials_complete"]),
        "best_settings": {k: v for k, v in run.data.params.items() if k.startswith("best.")},
    }


def run_one(data: dict[str, Any], system: str) -> dict[str, Any]:
    from labelwise.engine.metrics import classification_metrics

    cats = data["meta"].get("categorical_features", [])
    gc.collect()
    with PeakRSS() as rss:
        if system.startswith("labelwise"):
            model = make_labelwise(system)
            Xtr, Xte, Ytr = data["Xtr"], data["Xte"], data["Ytr"]
        else:
            model = make_peer(system)
            Xtr, Xte = _numeric(data["Xtr"], cats), _numeric(data["Xte"], cats)
            Ytr = data["Ytr"].to_numpy()
        t0 = time.perf_counter()
        model.fit(Xtr, Ytr)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        P = np.asarray(model.predict(Xte)).astype(np.uint8)
        pred_s = time.perf_counter() - t0
    m = classification_metrics(data["Yte"], P)
    return {
        "dataset": data["meta"]["name"],
        "system": system,
        "micro_f1": m["f1_micro"],
        "macro_f1": m["f1_macro"],
        "samples_f1": m["f1_samples"],
        "hamming_loss": m["hamming_loss"],
        "subset_accuracy": m["subset_accuracy"],
        "fit_seconds": fit_s,
        "predict_seconds": pred_s,
        "peak_rss_mb": rss.peak / 2**20,
    }


# Best published results of 28 methods (Bogatinovski et al. 2022; their own splits: a ballpark)
PUBLISHED = {
    "emotions": (0.719, 0.698),
    "yeast": (0.682, 0.483),
    "scene": (0.792, 0.800),
    "enron": (0.610, 0.229),
    "bibtex": (0.457, 0.340),
    "corel5k": (0.257, 0.069),
    "delicious": (0.369, 0.179),
    "tmc2007-500": (0.792, 0.710),
}


def summary(rows: list[dict[str, Any]], baseline: str = "sklearn-br") -> str:
    """Per dataset: labelwise defaults vs the best peer and the published targets."""
    out = [
        "| dataset | labelwise micro / macro | best peer micro / macro | published best "
        "micro / macro | fit / sklearn-br | fast: fit / sklearn-br, micro / macro |",
        "|---|---|---|---|---|---|",
    ]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        sub = {r["system"]: r for r in rows if r["dataset"] == ds and not r.get("error")}
        lw, fast, base = sub.get("labelwise"), sub.get("labelwise-fast"), sub.get(baseline)
        peers = [r for name, r in sub.items() if not name.startswith("labelwise")]
        if lw is None or not peers:
            continue
        bm = max(peers, key=lambda r: r["micro_f1"])
        bM = max(peers, key=lambda r: r["macro_f1"])
        pub = PUBLISHED.get(ds)

        def mark(v: float, ref: float) -> str:
            return f"**{v:.3f}**" if v >= ref else f"{v:.3f}"

        ratio = f"{lw['fit_seconds'] / base['fit_seconds']:.2f}x" if base else "-"
        fast_s = (
            f"{fast['fit_seconds'] / base['fit_seconds']:.2f}x, {fast['micro_f1']:.3f} / "
            f"{fast['macro_f1']:.3f}"
            if fast and base
            else "-"
        )
        out.append(
            f"| {ds} | {mark(lw['micro_f1'], bm['micro_f1'])} / "
            f"{mark(lw['macro_f1'], bM['macro_f1'])} | {bm['micro_f1']:.3f} "
            f"({bm['system']}) / {bM['macro_f1']:.3f} ({bM['system']}) | "
            + (f"{pub[0]:.3f} / {pub[1]:.3f}" if pub else "-")
            + f" | {ratio} | {fast_s} |"
        )
    return "\n".join(out) + "\n\nBold: at or above the best peer in this run.\n"


def markdown(rows: list[dict[str, Any]], baseline: str = "sklearn-br") -> str:
    """One table per dataset, with fit time as a ratio to the baseline."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        sub = [r for r in rows if r["dataset"] == ds]
        base = next((r for r in sub if r["system"] == baseline), None)
        out.append(f"\n### {ds}\n")
        out.append(
            "| system | micro-F1 | macro-F1 | samples-F1 | Hamming | subset acc. | fit s | "
            f"fit / {baseline} | predict s | peak RSS MB |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in sub:
            ratio = (
                f"{r['fit_seconds'] / base['fit_seconds']:.2f}x"
                if base and r.get("fit_seconds") is not None
                else "-"
            )
            if r.get("error"):
                out.append(f"| {r['system']} | failed: {r['error'][:60]} |||||||||")
                continue
            out.append(
                f"| {r['system']} | {r['micro_f1']:.4f} | {r['macro_f1']:.4f} | "
                f"{r['samples_f1']:.4f} | {r['hamming_loss']:.4f} | "
                f"{r['subset_accuracy']:.4f} | {r['fit_seconds']:.2f} | {ratio} | "
                f"{r['predict_seconds']:.2f} | {r['peak_rss_mb']:.0f} |"
            )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--systems", default="labelwise,labelwise-fast," + ",".join(PEERS))
    ap.add_argument("--json", type=Path, help="write {'rows': [...]} here")
    ap.add_argument("--markdown", type=Path, help="write the tables here")
    ap.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        help="do not run: rebuild the markdown from earlier --json outputs",
    )
    args = ap.parse_args(argv)
    if args.from_json:
        rows = [r for f in args.from_json for r in json.loads(f.read_text())["rows"]]
        text = "## Summary\n\n" + summary(rows) + "\n## Per dataset\n" + markdown(rows)
        if args.markdown:
            args.markdown.write_text(text)
        print(text)
        return 0
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS and not s.startswith("labelwise-tune-")]
    if unknown:
        ap.error(f"unknown system(s) {unknown}; choose from {SYSTEMS}")
    rows: list[dict[str, Any]] = []
    for name in [d for d in args.datasets.split(",") if d]:
        if not (args.data_root / name.partition("-nominal")[0] / "meta.json").is_file():
            ap.error(
                f"{args.data_root / name}: no meta.json (expected <name>/train.parquet, "
                "test.parquet, meta.json)"
            )
        data = load(args.data_root, name)
        for system in systems:
            try:
                row = (
                    run_tuned(args.data_root, name, system)
                    if system.startswith("labelwise-tune-")
                    else run_one(data, system)
                )
            except Exception as exc:  # a peer failing is a result, not a crash
                row = {"dataset": name, "system": system, "error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            print(json.dumps(shown), flush=True)
            if args.json:
                args.json.write_text(json.dumps({"rows": rows}, indent=1))
            if args.markdown:
                args.markdown.write_text(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
