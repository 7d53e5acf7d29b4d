"""Multi-label iterative stratification (Sechidis, Tsoumakas & Vlahavas, ECML PKDD 2011).

Random splits leave rare labels with no positive in a fold. Iterative stratification assigns the
rows of the rarest label first, each to the fold that still wants most of that label (ties: the
fold that wants most rows, then chance), so every label's positives are spread as the fractions
ask. This implementation keeps the algorithm's exact choices but does the bookkeeping with numpy:
per label one pass over its (shuffled) rows in plain Python over small lists, then one vectorised
update of every other label's wanted counts. The labels are read as sparse rows and columns
(a dense copy of a 80,000 x 18,607 label matrix is 1.5 GB; its positives are 320,000).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from labelwise.engine.errors import DataError


def iterative_stratification(
    Y: np.ndarray, fractions: Sequence[float], seed: int | None = 0
) -> np.ndarray:
    """Assign each row of ``Y`` (n x L, 0/1, dense or scipy sparse) to a fold; return the fold
    index per row (int16).

    ``fractions`` are the wanted fold sizes (normalised to sum to one).
    """
    Y = Y if sp.issparse(Y) else np.asarray(Y)
    if Y.ndim != 2:
        raise DataError(f"Y must be 2-D (rows x labels), got shape {Y.shape}")
    r = np.asarray(fractions, dtype=np.float64)
    if r.ndim != 1 or len(r) < 2 or (r <= 0).any():
        raise DataError(f"fractions must be two or more positive numbers, got {list(fractions)}")
    r = r / r.sum()
    n, k = Y.shape[0], len(r)
    rng = np.random.default_rng(seed)
    by_label = sp.csc_matrix(Y, dtype=np.int8)  # the rows of label l: a slice of indices
    by_label.eliminate_zeros()
    by_label.sort_indices()
    by_row = by_label.tocsr()
    n_labels = Y.shape[1]

    def positives(rows: np.ndarray) -> np.ndarray:
        """How many of ``rows`` carry each label."""
        return np.bincount(by_row[rows].indices, minlength=n_labels)

    want_rows = (r * n).tolist()  # c_j
    remaining = np.diff(by_label.indptr).astype(np.int64)
    want = np.outer(remaining, r)  # c_j^l, shape L x k
    fold = np.full(n, -1, dtype=np.int16)
    assigned = np.zeros(n, dtype=bool)
    while (active := np.flatnonzero(remaining > 0)).size:
        # rarest label among unassigned rows; random among ties
        counts = remaining[active]
        cand = active[counts == counts.min()]
        lab = int(cand[rng.integers(len(cand))]) if len(cand) > 1 else int(cand[0])
        rows = by_label.indices[by_label.indptr[lab] : by_label.indptr[lab + 1]]
        rows = rows[~assigned[rows]]
        rows = rows[rng.permutation(len(rows))]
        choice = _choose_folds(want[lab].tolist(), want_rows, rng.random((len(rows), k)))
        fold[rows] = choice
        assigned[rows] = True
        # every label carried by these rows is now wanted less in the chosen folds
        for j in range(k):
            sel = rows[choice == j]
            if sel.size:
                want[:, j] -= positives(sel)
        remaining -= positives(rows)
    # rows without any label: fill folds by how many rows each still wants
    rest = np.flatnonzero(~assigned)
    if rest.size:
        rest = rest[rng.permutation(rest.size)]
        quota = _largest_remainder(np.clip(np.asarray(want_rows), 0, None), rest.size, rng)
        fold[rest] = np.repeat(np.arange(k), quota).astype(np.int16)
    return fold


def _choose_folds(wl: list[float], want_rows: list[float], noise: np.ndarray) -> np.ndarray:
    """For each row in turn, the fold that most wants the label (then rows, then noise);
    ``wl`` and ``want_rows`` are decremented in place."""
    k = len(wl)
    noise_rows = noise.tolist()
    choice = np.empty(len(noise_rows), dtype=np.int16)
    for i, nz in enumerate(noise_rows):
        best, bkey = 0, (wl[0], want_rows[0], nz[0])
        for j in range(1, k):
            key = (wl[j], want_rows[j], nz[j])
            if key > bkey:
                best, bkey = j, key
        choice[i] = best
        wl[best] -= 1.0
        want_rows[best] -= 1.0
    return choice


def _largest_remainder(weights: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integer counts summing to ``total``, proportional to ``weights``."""
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    exact = weights / weights.sum() * total
    base = np.floor(exact).astype(np.int64)
    short = total - base.sum()
    if short:
        frac = exact - base + rng.random(len(exact)) * 1e-9
        base[np.argsort(-frac)[:short]] += 1
    return base


def stratified_kfold(
    Y: np.ndarray, n_splits: int = 5, seed: int | None = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, test_idx) pairs like scikit-learn's KFold, stratified over all labels."""
    if n_splits < 2:
        raise DataError(f"n_splits must be >= 2, got {n_splits}")
    fold = iterative_stratification(Y, [1.0] * n_splits, seed)
    return [(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(n_splits)]


def label_share_spread(Y: np.ndarray, fold: np.ndarray) -> float:
    """Mean over labels of the std. deviation of each fold's share of the label's positives.

    Lower is more even; the quality measure the stratification benchmark reports.
    """
    folds = np.unique(fold)
    pos = np.asarray(Y, dtype=np.float64).sum(axis=0)
    keep = pos > 0
    shares = np.stack(
        [np.asarray(Y[fold == f], dtype=np.float64).sum(axis=0)[keep] / pos[keep] for f in folds]
    )
    sizes = np.array([(fold == f).mean() for f in folds])[:, None]
    return float(np.mean(np.std(shares - sizes, axis=0)))
