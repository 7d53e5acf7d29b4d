"""Which terms push each label up: the explanation of a text model users ask for first.

From the linear head, a term's weight is its coefficient (per unit of tf-idf); from the trees
(no linear head), its split gain in that label's boosters. Bounded: ``k`` rows per label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from labelwise.engine.classifier import LabelwiseClassifier


def top_terms(clf: LabelwiseClassifier, k: int = 10) -> pl.DataFrame:
    """Per label, its ``k`` terms of largest positive weight: columns ``label``, ``rank``,
    ``column`` (the text column), ``term``, ``weight`` and ``source`` (``linear`` or
    ``trees``). Empty without text columns, and for a label tree: its weights belong to tree
    nodes shared by many labels, not to one label (and a labels x terms matrix of it was 37 GB
    at 50,000 labels)."""
    enc = clf.encoder_
    if not enc.text or clf.tree_ is not None:
        return pl.DataFrame(
            schema={
                "label": pl.String,
                "rank": pl.Int64,
                "column": pl.String,
                "term": pl.String,
                "weight": pl.Float64,
                "source": pl.String,
            }
        )
    names = [(t.name, w) for t in enc.text for w in t.terms()]
    if clf.linear_ is not None:
        W, source = clf.linear_.coef.astype(np.float64), "linear"  # over the tf-idf block
    else:
        W, source = _tree_gain(clf, len(names)), "trees"
    rows = []
    for j, label in enumerate(clf.labels_):
        w = W[j]
        best = np.argsort(-w, kind="stable")[:k]
        for r, i in enumerate(b for b in best if w[b] > 0):
            rows.append((label, r + 1, names[i][0], names[i][1], float(w[i]), source))
    return pl.DataFrame(
        rows, schema=["label", "rank", "column", "term", "weight", "source"], orient="row"
    )


def _tree_gain(clf: LabelwiseClassifier, n_terms: int) -> np.ndarray:
    """Labels x terms: split gain of each term's count column, summed over the members."""
    enc = clf.encoder_
    n_tab = len(enc.tabular_features)
    cols = clf.tree_columns_ if clf.tree_columns_ is not None else np.arange(enc.n_columns)
    gain = np.zeros((len(clf.labels_), n_terms))
    is_term = (cols >= n_tab) & (cols < n_tab + n_terms)
    for member in clf.level1_:
        for j, m in enumerate(member):
            if m.booster is not None:
                g = m.booster.feature_importance("gain")[: len(cols)]
                gain[j, cols[is_term] - n_tab] += g[is_term]
    return gain
