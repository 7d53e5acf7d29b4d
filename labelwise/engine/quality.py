"""What a user should hear about a model's test predictions before trusting it: labels it
never gets right, and predictions that hardly depend on the row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# the share of test rows given one and the same label set above which a model is said to
# tell rows apart hardly at all
SAME_SET_SHARE = 0.9


def prediction_warnings(Y: np.ndarray, P: np.ndarray, labels: Sequence[str]) -> list[str]:
    """Warnings about 0/1 test predictions ``P`` against the truth ``Y`` (n x L): labels with
    test positives but F1 0 (never predicted right), and one label set given to most rows."""
    out = []
    tp = (Y.astype(bool) & P.astype(bool)).sum(axis=0)
    dead = [labels[int(j)] for j in np.flatnonzero((Y.sum(axis=0) > 0) & (tp == 0))]
    if dead:
        more = f" and {len(dead) - 10} more" if len(dead) > 10 else ""
        out.append(
            f"{len(dead)} of {len(labels)} label(s) score F1 0.00 on the test part (never "
            f"predicted right): {', '.join(dead[:10])}{more}; they have too few positives to "
            "learn from, or features that do not tell them: more rows, or leave them out"
        )
    if P.shape[0] >= 20:
        sets, counts = np.unique(P.astype(np.uint8), axis=0, return_counts=True)
        top = int(np.argmax(counts))
        share = counts[top] / P.shape[0]
        if share >= SAME_SET_SHARE:
            chosen = [labels[int(j)] for j in np.flatnonzero(sets[top])]
            out.append(
                f"{share:.0%} of test rows get the same prediction ({chosen or 'no label'}): the "
                "model hardly tells rows apart; check the features and the thresholds"
            )
    return out
