"""Dense pieces of a matrix that may be scipy sparse.

At thousands of labels a label tree's probabilities and predictions are kept sparse (rows x
labels dense would be gigabytes); what needs dense numbers (a ranking, a curve, a histogram)
takes them a block of rows or one column at a time, so a dense copy of the whole never exists.
scipy is imported only for a sparse matrix: the CLI imports this module through the drift
report's records, and a command should not pay for scipy to start.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_sparse(A: Any) -> bool:
    """Whether ``A`` is a scipy sparse matrix or array (without importing scipy)."""
    return hasattr(A, "tocsr") and hasattr(A, "nnz")


def dense_rows(A: Any, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``A``, dense."""
    block = A[start:stop]
    return np.asarray(block.toarray() if is_sparse(block) else block)


def by_columns(A: Any) -> Any:
    """``A`` in the form whose columns are cheap to take (CSC when sparse, else as it is)."""
    return A.tocsc() if is_sparse(A) else A


def dense_column(A: Any, j: int) -> np.ndarray:
    """Column ``j`` of ``A`` (see :func:`by_columns`), dense."""
    if not is_sparse(A):
        return np.asarray(A[:, j])
    A = A if A.format == "csc" else A.tocsc()
    out = np.zeros(A.shape[0], dtype=A.dtype)
    s = slice(A.indptr[j], A.indptr[j + 1])
    out[A.indices[s]] = A.data[s]
    return out


def column_means(A: Any) -> np.ndarray:
    """The mean of each column of ``A`` (float64, length = columns)."""
    return np.asarray(A.mean(axis=0), dtype=np.float64).ravel()
