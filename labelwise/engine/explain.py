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
    W, source = _term_weights(clf)
    rows = []
    for j, label in enumerate(clf.labels_):
        w = W[j]
        best = np.argsort(-w, kind="stable")[:k]
        for r, i in enumerate(b for b in best if w[b] > 0):
            rows.append((label, r + 1, names[i][0], names[i][1], float(w[i]), source))
    return pl.DataFrame(
        rows, schema=["label", "rank", "column", "term", "weight", "source"], orient="row"
    )


def important_terms(clf: LabelwiseClassifier, k: int = 20) -> dict[str, float]:
    """The ``k`` terms that push labels up most over the training documents, named as the
    monitor profiles them (``<column>:term:<term>``), each with an importance on the scale of
    :meth:`~labelwise.engine.classifier.LabelwiseClassifier.feature_importance`: its text
    column's importance, split over its terms by their push. Empty without text columns, for
    a label tree (as :func:`top_terms`), or for ``k`` 0.

    A term's push is its largest positive weight over the labels (a topic's word pushes its
    own label; a sum would favour common words with small weights everywhere). A linear
    weight is multiplied by the standard deviation of the term's presence, sqrt(p (1 - p))
    for the share p of training documents holding it (from its idf): how much it moves scores
    from one document to the next (a rare term's large coefficient moves few, a term in every
    document none). Split gain already counts the documents a split sends on."""
    enc = clf.encoder_
    if not enc.text or clf.tree_ is not None or k == 0:
        return {}
    W, source = _term_weights(clf)
    push = np.maximum(W, 0.0).max(axis=0)
    if source == "linear":  # smooth idf = ln((1 + n) / (1 + df)) + 1
        idf = np.concatenate([t.idf for t in enc.text])
        p = np.clip(np.exp(1.0 - idf), 0.0, 1.0)
        push *= np.sqrt(p * (1.0 - p))
    owner = np.concatenate([np.full(t.n_terms, i) for i, t in enumerate(enc.text)])
    column = clf.feature_importance()
    importance = np.zeros_like(push)
    for i, t in enumerate(enc.text):  # a column's importance, split over its terms
        total = push[owner == i].sum()
        if total > 0:
            importance[owner == i] = column.get(t.name, 0.0) * push[owner == i] / total
    names = enc.term_names()
    best = [i for i in np.argsort(-push, kind="stable")[:k] if push[i] > 0]
    return {names[i]: float(importance[i]) for i in best}


def _term_weights(clf: LabelwiseClassifier) -> tuple[np.ndarray, str]:
    """Labels x terms: the linear head's coefficients (per unit of tf-idf), or without one the
    trees' split gain; and which of the two it is."""
    if clf.linear_ is not None:
        return clf.linear_.coef.astype(np.float64), "linear"  # over the tf-idf block
    return _tree_gain(clf, clf.encoder_.n_terms), "trees"


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
