"""Generated extreme multi-label data: thousands of labels with Zipf-like frequencies.

A tag vocabulary's labels are few frequent and many rare. Each label here owns a few signature
words; a row draws its labels by frequency and emits each label's words with some chance, plus
noise words, so the bag of words is informative of the labels without giving them away. For
tests and the label-tree and serving benchmarks (nothing is written to disk).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp


def make_extreme_multilabel(
    n_rows: int = 5000,
    n_labels: int = 2000,
    n_features: int = 5000,
    *,
    mean_labels: float = 4.0,
    words_per_label: int = 6,
    word_chance: float = 0.5,
    noise_words: float = 20.0,
    zipf: float = 1.0,
    seed: int = 0,
    sparse_labels: bool = False,
) -> tuple[sp.csr_matrix, Any]:
    """(X: n_rows x n_features word counts, float32 CSR; Y: n_rows x n_labels 0/1 uint8, CSR
    with ``sparse_labels``: the same data, for label counts whose dense matrix is too big).

    Label ``j``'s frequency falls as ``1 / (j + 1) ** zipf``; a row holds ``1 + Poisson(
    mean_labels - 1)`` labels (without repeats)."""
    if n_labels < 2 or n_rows < 1 or n_features < words_per_label:
        raise ValueError("need n_labels >= 2, n_rows >= 1, n_features >= words_per_label")
    rng = np.random.default_rng(seed)
    weight = 1.0 / np.arange(1, n_labels + 1) ** zipf
    cdf = np.cumsum(weight / weight.sum())
    counts = np.minimum(1 + rng.poisson(max(mean_labels - 1.0, 0.0), size=n_rows), n_labels)
    # draws with repeats, deduplicated: a row keeps between 1 and ``counts`` distinct labels
    draw_rows = np.repeat(np.arange(n_rows), counts)
    draw_labels = np.minimum(np.searchsorted(cdf, rng.random(len(draw_rows))), n_labels - 1)
    Y = sp.csr_matrix(
        (np.ones(len(draw_rows), dtype=np.uint8), (draw_rows, draw_labels)),
        shape=(n_rows, n_labels),
    )
    Y.sum_duplicates()  # rows and labels in order, as np.nonzero of the dense matrix
    Y.data[:] = 1
    signature = np.stack(
        [rng.choice(n_features, words_per_label, replace=False) for _ in range(n_labels)]
    )
    rows, labels = Y.nonzero()
    word_rows = np.repeat(rows, words_per_label)
    words = signature[labels].ravel()
    kept = rng.random(len(words)) < word_chance
    n_noise = rng.poisson(noise_words, size=n_rows)
    noise_rows = np.repeat(np.arange(n_rows), n_noise)
    noise = rng.integers(0, n_features, size=len(noise_rows))
    all_rows = np.concatenate([word_rows[kept], noise_rows])
    all_words = np.concatenate([words[kept], noise])
    X = sp.csr_matrix(
        (np.ones(len(all_rows), dtype=np.float32), (all_rows, all_words)),
        shape=(n_rows, n_features),
    )
    X.sum_duplicates()
    return X, (Y if sparse_labels else Y.toarray())


def make_tag_table(n_rows: int, n_labels: int, seed: int = 0) -> pl.DataFrame:
    """The same data as a user's table: a ``doc`` text column (word ids ``w<j>``) and a
    ``tags`` label-set column (``tag<j>`` joined by ``|``)."""
    X, Y = make_extreme_multilabel(
        n_rows=n_rows, n_labels=n_labels, n_features=max(5000, n_labels), seed=seed
    )
    words = [X.indices[X.indptr[i] : X.indptr[i + 1]] for i in range(n_rows)]
    return pl.DataFrame(
        {
            "doc": [" ".join(f"w{j}" for j in w) for w in words],
            "tags": ["|".join(f"tag{j}" for j in np.flatnonzero(y)) for y in Y],
        }
    )
