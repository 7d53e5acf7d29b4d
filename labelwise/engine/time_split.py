"""Out-of-time split: the latest rows are the test part.

A model retrained on a schedule will score rows that come after everything it saw; a random
test part (even a stratified one) mixes past and future and flatters it. Here the test part is
every row after a cut-off time: either the last ``test_last`` of the data, or the time below
which ``1 - test_fraction`` of the rows fall. Rows sharing the cut-off time stay together in
training, so no moment is split across the two parts.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from labelwise.engine.errors import DataError


def time_split(
    times: np.ndarray, test_fraction: float = 0.2, test_last: timedelta | None = None
) -> np.ndarray:
    """Fold of each row: 0 (train) or 1 (test), by time.

    Parameters
    ----------
    times : array of datetime64, one per row (no missing values).
    test_fraction : share of the rows, the latest ones, to test on (ignored with ``test_last``).
    test_last : test on the rows of this last span of time before the newest row instead.
    """
    t = np.asarray(times)
    if not np.issubdtype(t.dtype, np.datetime64):
        raise DataError(f"time_split needs datetime64 times, got {t.dtype}")
    if np.isnat(t).any():
        raise DataError(
            f"the time column has {int(np.isnat(t).sum())} missing value(s); a row without a "
            "time cannot be placed before or after the cut-off: fill or drop them"
        )
    if t.size == 0:
        return np.zeros(0, dtype=np.int8)
    if test_last is not None:
        cut = t.max() - np.timedelta64(int(test_last.total_seconds() * 1e6), "us")
    else:
        if not 0 < test_fraction < 1:
            raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
        ordered = np.sort(t)
        cut = ordered[max(int(np.ceil(t.size * (1 - test_fraction))) - 1, 0)]
    return (t > cut).astype(np.int8)
