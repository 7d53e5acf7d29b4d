"""A config's labelled tables as the engine's inputs, and scored under a fitted model.

Used by the train and evaluate tasks, the promote flow, the CLI and the benchmarks: reading a
table the way its config describes it (label spec, features, exclusions) happens here only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from labelwise.engine.data import read_table, table_xy
from labelwise.engine.errors import DataError
from labelwise.pipeline.config import Config

if TYPE_CHECKING:
    from labelwise.engine.classifier import LabelwiseClassifier


def read_xy(
    cfg: Config,
    path: str,
    labels: list[str] | None = None,
    others: bool = False,
    rows: int | None = None,
) -> tuple[pl.DataFrame, Any, list[str]]:
    """Features (polars), Y and label names of a table (its first ``rows`` when given);
    ``labels`` fixes the label order (``others``: the table's other labels are left out, not
    refused)."""
    from labelwise.pipeline.source_kinds import source_for

    d = cfg.data
    exclude = [*d.exclude, *([d.time_column] if d.time_column else [])]  # never a feature
    if Path(path).is_file():
        df = read_table(path, rows=rows)
    else:
        lf = source_for(path).scan(None, path)
        df = (lf if rows is None else lf.head(rows)).collect()
    return table_xy(df, d.labels, d.features, exclude, labels, source=path, others=others)


def has_text(cfg: Config, path: str, sample: int = 2000) -> bool:
    """Whether a fit of ``cfg`` on the table at ``path`` would read text columns (declared, or
    found on its first ``sample`` rows)."""
    from labelwise.engine.data import feature_kinds

    if cfg.data.text is not None:
        return bool(cfg.data.text)
    X, _, _ = read_xy(cfg, path, rows=sample)
    return bool(feature_kinds(X, X.columns)["text"])


def read_labels(cfg: Config, path: str) -> tuple[Any, list[str]]:
    """The 0/1 label matrix and label names of the table at ``path``, its label columns
    alone read."""
    from labelwise.engine.data import encode_labels, read_table, scan_table

    columns = scan_table(path).collect_schema().names()
    table = read_table(path, list(cfg.data.labels.source_columns(columns)))
    return encode_labels(table, cfg.data.labels, source=path)


def label_count(cfg: Config, path: str) -> int:
    """How many labels a fit of ``cfg`` on the table at ``path`` would have."""
    return len(read_labels(cfg, path)[1])


def load_classifier(model_dir: str | Path) -> LabelwiseClassifier:
    """A saved model, loaded (and its digests verified) once per process: the train flow's
    evaluation, profile and MLflow logging steps share one copy instead of parsing every
    booster three times (1.5 s each on 983 labels). A model directory written again (a
    new manifest) is loaded again."""
    manifest = Path(model_dir).resolve() / "manifest.json"
    stamp = manifest.stat().st_mtime_ns if manifest.is_file() else 0
    return _load(str(manifest.parent), stamp)


@lru_cache(maxsize=4)
def _load(model_dir: str, stamp: int) -> LabelwiseClassifier:
    from labelwise.engine.classifier import LabelwiseClassifier

    return LabelwiseClassifier.load(model_dir)


def score_table(
    cfg: Config,
    clf: LabelwiseClassifier,
    path: str,
    labels: list[str] | None = None,
    others: bool = False,
) -> tuple[np.ndarray, Any, Any]:
    """(Y, probabilities, 0/1 predictions) of a labelled table under a fitted model (sparse
    for a label tree, see ``LabelwiseClassifier.sparse_proba``); with
    ``labels`` (some of the model's), on those labels alone (two models with different label
    sets compared on the labels they share); ``others``: labels the model does not know are
    left out (a test part's labels never seen in training), not refused."""
    X, Y, _ = read_xy(cfg, path, labels or clf.labels_, others=others or labels is not None)
    with warnings.catch_warnings(), named_errors(path):
        warnings.simplefilter("ignore")  # unseen categories are counted, not warned about
        # a label tree's stay sparse: a dense test table x 20,000 labels is gigabytes
        S = clf.predict_proba(X.select(clf.encoder_.features), sparse=clf.sparse_proba)
    P = clf.predict_from_proba(S)
    if labels is not None:
        keep = [clf.labels_.index(lab) for lab in labels]
        S, P = S[:, keep], P[:, keep]
    return Y, S, P


@contextmanager
def named_errors(path: str) -> Iterator[None]:
    """The engine calls its input ``X``; in its data errors, name the file instead."""
    try:
        yield
    except DataError as exc:
        msg = str(exc)
        if not msg.startswith("X"):
            raise
        raise DataError(path + msg[1:]) from exc
