"""What a user should hear about a model's test predictions before trusting it: labels it
never gets right, and predictions that hardly depend on the row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

# the share of test rows given one and the same label set above which a model is said to
# tell rows apart hardly at all
SAME_SET_SHARE = 0.9


def prediction_warnings(Y: Any, P: Any, labels: Sequence[str]) -> list[str]:
    """Warnings about 0/1 test predictions ``P`` against the truth ``Y`` (n x L, each dense
    or scipy sparse): labels with test positives but F1 0 (never predicted right), and one
    label set given to most rows."""
    out = []
    Yb, Pb = sp.csr_matrix(Y, dtype=bool), sp.csr_matrix(P, dtype=bool)
    tp = np.asarray(Yb.multiply(Pb).sum(axis=0)).ravel()
    support = np.asarray(Yb.sum(axis=0)).ravel()
    dead = [labels[int(j)] for j in np.flatnonzero((support > 0) & (tp == 0))]
    if dead:
        more = f" and {len(dead) - 10} more" if len(dead) > 10 else ""
        out.append(
            f"{len(dead)} of {len(labels)} label(s) score F1 0.00 on the test part (never "
            f"predicted right): {', '.join(dead[:10])}{more}; they have too few positives to "
            "learn from, or features that do not tell them: more rows, or leave them out"
        )
    if P.shape[0] >= 20:
        # each row's label set as a tuple of its label indices
        Pb.eliminate_zeros()
        Pb.sort_indices()
        sets = Counter(tuple(a.tolist()) for a in np.split(Pb.indices, Pb.indptr[1:-1]))
        chosen_set, count = max(sets.items(), key=lambda kv: kv[1])
        share = count / P.shape[0]
        if share >= SAME_SET_SHARE:
            chosen = [labels[j] for j in chosen_set]
            out.append(
                f"{share:.0%} of test rows get the same prediction ({chosen or 'no label'}): the "
                "model hardly tells rows apart; check the features and the thresholds"
            )
    return out
