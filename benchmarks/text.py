"""Text: labelwise from raw text columns against scikit-learn's tf-idf + one-vs-rest linear
models, side by side in one process, and against labelwise on the same rows as word columns.

    python -m benchmarks.text [--data-root DIR] [--datasets a,b] [--systems x,y] [--json OUT]

Datasets: ``enron-text``, ``bibtex-text``, ``tmc2007-500-text`` (shared data: each row's words as
one ``text`` column, the same rows and split as the indicator versions),
``textgen-<rows>x<labels>`` (:func:`labelwise.engine.synthetic_text.make_text_table`: ``title``
and ``body`` columns, a ``|``-separated label set, an id and a date column left out; the first
75% of rows train, the rest test; generated here, never stored), and
``debtags-<rows>[-s<seed>][-m<share>]`` (real prose: :func:`benchmarks.debtags.debtags_table`,
Debian package descriptions with their debtags, built from this machine's apt lists; a seeded
sample, the first 75% train; the tags on at least ``share`` of it, 0.01 unless given).

Systems: ``labelwise`` (defaults, the text columns found, not named), ``labelwise-linear`` (the
linear head alone), ``labelwise+key=value+...`` (the defaults with text settings or classifier
parameters changed, e.g. ``labelwise+ngram_max=2+min_df=2``), ``labelwise-indicator``
(defaults on the indicator-column version of a shared dataset), ``sklearn-linearsvc`` /
``sklearn-logreg`` (``TfidfVectorizer(sublinear_tf=True)`` + ``OneVsRestClassifier`` of
``LinearSVC()`` / ``LogisticRegression(max_iter=1000)``, default thresholds, as a user calls
them; several text columns are joined by a space). Fit time covers vectorising; peak RSS is
sampled during fit + predict (the process's, data included).
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.quality import DEFAULT_DATA, PeakRSS, _Guarded

DATASETS = ["enron-text", "bibtex-text", "tmc2007-500-text"]
SYSTEMS = ["labelwise", "labelwise-linear", "labelwise-indicator", "sklearn-linearsvc",
           "sklearn-logreg"]  # fmt: skip
# not run by default: the defaults with character 2-4-grams inside words as the text terms,
# and with terms hashed into 2**20 buckets instead of a learnt vocabulary
OPTIONAL = ["labelwise-char", "labelwise-hashing"]


def load(root: Path, name: str) -> dict[str, Any]:
    """Train/test frames of text columns, label matrices and label names."""
    from labelwise.engine.data import LabelSpec, table_xy

    if m := re.fullmatch(r"textgen-(\d+)x(\d+)", name):
        from labelwise.engine.synthetic_text import make_text_table

        n_rows, n_labels = int(m.group(1)), int(m.group(2))
        df = make_text_table(n_rows, n_labels, vocabulary=max(5000, n_rows), seed=7)
        X, Ys, labels = table_xy(
            df, LabelSpec(set_column="topics", separator="|"), exclude=["doc_id", "published"]
        )
    elif m := re.fullmatch(r"debtags-(\d+)(?:-s(\d+))?(?:-m([0-9.]+))?", name):
        from benchmarks.debtags import debtags_table

        share = float(m.group(3) or 0.01)
        df = debtags_table(int(m.group(1)), seed=int(m.group(2) or 7), min_share=share)
        X, Ys, labels = table_xy(df, LabelSpec(set_column="tags"), exclude=["package", "version"])
    if m:
        Y = Ys.toarray()  # the peers' own metrics read dense labels
        cut = int(0.75 * X.height)
        return {"name": name, "Xtr": X[:cut], "Xte": X[cut:], "Ytr": Y[:cut], "Yte": Y[cut:],
                "labels": labels, "indicator": None}  # fmt: skip
    meta = json.loads((root / name / "meta.json").read_text())
    tr, te = (
        pl.read_parquet(root / name / "train.parquet"),
        pl.read_parquet(root / name / "test.parquet"),
    )
    labels = meta["labels"]
    base = name.removesuffix("-text")
    return {"name": name, "Xtr": tr.drop(labels), "Xte": te.drop(labels),
            "Ytr": tr.select(labels).to_numpy(), "Yte": te.select(labels).to_numpy(),
            "labels": labels, "indicator": base if (root / base).is_dir() else None}  # fmt: skip


def _joined(X: pl.DataFrame) -> list[str]:
    return (
        X.select(pl.concat_str(pl.all().cast(pl.String).fill_null(""), separator=" "))
        .to_series()
        .to_list()
    )


def _settings(system: str) -> dict[str, Any]:
    """``labelwise+ngram_max=2+linear_C=16``: the defaults with these settings, each a
    :class:`TextSettings` field or a ``LabelwiseClassifier`` parameter (values read as JSON)."""
    from dataclasses import fields

    from labelwise.engine.text import TextSettings

    text_keys = {f.name for f in fields(TextSettings)}
    kw: dict[str, Any] = {}
    text: dict[str, Any] = {}
    for pair in system.split("+")[1:]:
        key, _, raw = pair.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        (text if key in text_keys else kw)[key] = value
    return {**kw, "text": TextSettings(**text)} if text else kw


def run_one(root: Path, data: dict[str, Any], system: str) -> dict[str, Any] | None:
    from labelwise import LabelwiseClassifier
    from labelwise.engine.metrics import classification_metrics

    Xtr, Xte, Ytr = data["Xtr"], data["Xte"], data["Ytr"]
    if system == "labelwise-indicator":
        if data["indicator"] is None:
            return None
        meta = json.loads((root / data["indicator"] / "meta.json").read_text())
        tr = pl.read_parquet(root / data["indicator"] / "train.parquet")
        te = pl.read_parquet(root / data["indicator"] / "test.parquet")
        Xtr, Xte = tr.select(meta["features"]), te.select(meta["features"])
        Ytr = tr.select(data["labels"]).to_numpy()
    gc.collect()
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        if system.startswith("labelwise"):
            from labelwise.engine.text import TextSettings

            kw: dict[str, Any] = {"linear_weight": 1.0} if system == "labelwise-linear" else {}
            if system == "labelwise-char":
                kw["text"] = TextSettings(analyzer="char_wb", ngram_min=2, ngram_max=4)
            if system == "labelwise-hashing":
                kw["text"] = TextSettings(hashing=True)
            if system.startswith("labelwise+"):
                kw = _settings(system)
            model = LabelwiseClassifier(**kw).fit(Xtr, Ytr, labels=data["labels"])
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            P = model.predict(Xte)
            extra = {"linear_weight": float(model.linear_weight_)}
        else:
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import LogisticRegression
            from sklearn.multiclass import OneVsRestClassifier
            from sklearn.pipeline import make_pipeline
            from sklearn.svm import LinearSVC

            head = (
                LinearSVC() if system == "sklearn-linearsvc" else LogisticRegression(max_iter=1000)
            )
            vec = TfidfVectorizer(sublinear_tf=True)
            docs = _joined(Xtr)
            model = _Guarded(lambda: make_pipeline(vec, OneVsRestClassifier(head)))
            model.fit(np.asarray(docs, dtype=object), Ytr)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            P = model.predict(np.asarray(_joined(Xte), dtype=object))
            extra = {}
        pred_s = time.perf_counter() - t0
    m = classification_metrics(data["Yte"], np.asarray(P).astype(np.uint8))
    return {"dataset": data["name"], "system": system, "micro_f1": m["f1_micro"],
            "macro_f1": m["f1_macro"], "fit_seconds": fit_s, "predict_seconds": pred_s,
            "peak_rss_mb": rss.peak / 2**20, **extra}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for name in [d for d in args.datasets.split(",") if d]:
        data = load(args.data_root, name)
        for system in [s for s in args.systems.split(",") if s]:
            row = run_one(args.data_root, data, system)
            if row is None:
                continue
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
    print("\n| dataset | system | micro-F1 | macro-F1 | fit s | fit / LinearSVC | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        svc = next((x for x in rows if x["dataset"] == r["dataset"]
                    and x["system"] == "sklearn-linearsvc"), None)  # fmt: skip
        ratio = f"{r['fit_seconds'] / svc['fit_seconds']:.1f}x" if svc else "-"
        print(f"| {r['dataset']} | {r['system']} | {r['micro_f1']:.4f} | {r['macro_f1']:.4f} | "
              f"{r['fit_seconds']:.1f} | {ratio} | {r['peak_rss_mb']:.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
