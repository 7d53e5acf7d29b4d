"""The label tree: one probabilistic label tree over all labels instead of a model per label.

With thousands of labels a model per label costs time linear in the label count. A
probabilistic label tree (napkinXC's ``PLT``: labels clustered by balanced hierarchical k-means
on their feature centroids, a logistic regression at each node, a label's probability the
product of the node probabilities on its path) trains each row only on the nodes of its own
labels' paths, and predicts by searching the tree, so both grow with the log of the label count.
Why napkinXC and not Omikuji or trees of LightGBM nodes: benchmarks/RESULTS.md, "Label trees".

The tree reads the linear head's columns (the tf-idf block with text, else every column). A
sparse matrix (text, counts) is read as it is (napkinXC normalises each row); a dense one has
each column divided by its largest absolute training value, so that one node's regression sees
tabular columns of any range on one scale. A missing value reads as 0. Probabilities below
``min_proba`` are not searched for and read as 0, and no label's threshold is below it. The
fitted tree is napkinXC's own files (no pickle), kept in memory and written into the model
directory.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from labelwise.engine.errors import ConfigError, DataError, ModelFormatError
from labelwise.engine.params import Constraint, Interval, check_params

# the files napkinXC writes for a PLT (the model directory's label_tree/ holds them)
TREE_FILES = ("args.bin", "tree.bin", "tree.txt", "weights.bin")
SCALE_FILE = "scale.npy"


@dataclass(frozen=True)
class LabelTreeSettings:
    """How the label tree is built.

    arity : int in [2, 1024]
        Children of each inner node (k of the k-means that splits a node's labels).
    max_leaves : int >= 2
        Labels in a leaf cluster: more means a shallower tree, slower and a little stronger.
    C : float > 0
        Inverse L2 strength of each node's logistic regression.
    ensemble : int in [1, 32]
        Trees built on differently seeded clusterings, probabilities averaged.
    min_proba : float in (0, 1)
        Probabilities below it are not searched for (they read as 0): the search cost falls
        with it, and no threshold is ever set below it.
    deterministic : bool
        The same rows fit the same tree: the node regressions train on one thread from a
        seeded C ``rand()``. napkinXC's solver draws from that one process-wide stream, so on
        several threads (False: ``n_jobs`` of them, 1.6x faster on two cores) two fits of the
        same rows differ by up to .01 in probability.
    """

    # read by the YAML loader (pydantic): an unknown key is an error, not a silent default
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    arity: int = 2
    max_leaves: int = 100
    C: float = 10.0
    ensemble: int = 1
    min_proba: float = 0.01
    deterministic: bool = True

    _constraints: ClassVar[dict[str, list[Constraint]]] = {
        "arity": [Interval(int, 2, 1024)],
        "max_leaves": [Interval(int, 2, 1_000_000)],
        "C": [Interval(float, 0, None, closed="neither")],
        "ensemble": [Interval(int, 1, 32)],
        "min_proba": [Interval(float, 0, 1, closed="neither")],
        "deterministic": [bool],
    }

    def __post_init__(self) -> None:
        check_params(asdict(self), self._constraints)


class LabelTree:
    """A fitted label tree over ``n_labels`` labels and the column scale it reads with."""

    def __init__(
        self,
        model: Any,
        folder: tempfile.TemporaryDirectory[str],
        scale: np.ndarray,
        n_labels: int,
        min_proba: float,
    ) -> None:
        self._model = model
        self._folder = folder  # napkinXC reads its files from a folder: kept while the model is
        self.scale = scale
        self.n_labels = n_labels
        self.min_proba = min_proba

    def _scaled(self, X: Any) -> Any:
        if X.shape[1] != len(self.scale):
            raise DataError(f"X has {X.shape[1]} columns, the label tree reads {len(self.scale)}")
        return _scale(X, self.scale)

    def candidates(self, X: Any, top_k: int = 0) -> list[list[tuple[int, float]]]:
        """Each row's (label, probability) pairs: the ``top_k`` best, or (``top_k=0``) every
        label with a probability of at least ``min_proba``."""
        Xs = self._scaled(X)
        if top_k:
            out: list[list[tuple[int, float]]] = self._model.predict_proba(Xs, top_k=top_k)
        else:
            out = self._model.predict_proba(Xs, threshold=self.min_proba)
        return out

    def predict_proba(self, X: Any, sparse: bool = False) -> Any:
        """n x L probabilities (0 where below ``min_proba``); ``sparse``: a CSR matrix of the
        searched labels alone."""
        rows = self.candidates(X)
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=indptr[1:])
        pairs = np.array([lp for r in rows for lp in r], dtype=np.float64).reshape(-1, 2)
        P = sp.csr_matrix(
            (pairs[:, 1], pairs[:, 0].astype(np.int64), indptr), shape=(len(rows), self.n_labels)
        )
        P.sort_indices()
        return P if sparse else P.toarray()

    def top_k(self, X: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable labels of each row, best first (label indices, n x k, -1
        where the tree returns fewer), and their probabilities: found by the tree's own search,
        no n x L matrix."""
        k = min(k, self.n_labels)
        idx = np.full((X.shape[0], k), -1, dtype=np.int64)
        score = np.zeros((X.shape[0], k))
        for i, row in enumerate(self.candidates(X, top_k=k)):
            for r, (label, p) in enumerate(sorted(row, key=lambda lp: (-lp[1], lp[0]))[:k]):
                idx[i, r], score[i, r] = label, p
        return idx, score

    def files(self) -> dict[str, bytes]:
        out = {name: _read(self._folder.name, name) for name in TREE_FILES}
        buf = io.BytesIO()
        np.save(buf, self.scale, allow_pickle=False)
        return out | {SCALE_FILE: buf.getvalue()}

    @classmethod
    def from_files(
        cls,
        read: Callable[[str], bytes],
        n_labels: int,
        settings: LabelTreeSettings,
        threads: int,
        source: str,
    ) -> LabelTree:
        folder = tempfile.TemporaryDirectory(prefix="labelwise-tree-")
        try:
            for name in TREE_FILES:
                with open(os.path.join(folder.name, name), "wb") as fh:
                    fh.write(read(name))
            scale = np.load(io.BytesIO(read(SCALE_FILE)), allow_pickle=False)
            model = _napkinxc_plt()(folder.name, threads=threads)  # settings: args.bin
            model.load()
        except (OSError, ValueError, RuntimeError) as exc:
            folder.cleanup()
            raise ModelFormatError(f"{source}: label tree unreadable ({exc})") from None
        return cls(model, folder, scale.astype(np.float32), n_labels, settings.min_proba)


def fit_label_tree(
    X: Any, Y: np.ndarray, rows: np.ndarray, settings: LabelTreeSettings, seed: int, threads: int
) -> LabelTree:
    """A label tree fitted on ``X[rows]`` and ``Y[rows]`` (0/1, n x L, dense or scipy sparse);
    a missing value reads as 0, as an absent entry of a sparse matrix (:func:`missing_columns`
    names them)."""
    Xr = X[rows]
    Yr = sp.csr_matrix(Y)[rows]  # the rows' label lists, without a dense copy of their rows
    Yr.eliminate_zeros()
    if not Yr.nnz:  # napkinXC crashes (SIGSEGV) on rows that hold no label at all
        raise DataError(
            f"the {len(rows)} training rows hold no label at all: a label tree needs positive "
            "rows; check the label columns"
        )
    # counts and tf-idf are read as they are (scaling each column by its peak cost .012 of
    # precision@5 on a generated tag set); tabular columns of any range are brought to [-1, 1]
    scale = np.ones(X.shape[1], dtype=np.float32) if hasattr(Xr, "tocsr") else _column_scale(Xr)
    folder = tempfile.TemporaryDirectory(prefix="labelwise-tree-")
    if settings.deterministic:
        threads = 1
        _seed_c_rand(seed)
    model = _plt(folder.name, settings, seed=seed, threads=threads)
    Yr.sort_indices()
    lists = np.split(Yr.indices.astype(np.int64), Yr.indptr[1:-1])
    model.fit(_scale(Xr, scale), [a.tolist() for a in lists])
    return LabelTree(model, folder, scale, Y.shape[1], settings.min_proba)


def _napkinxc_plt() -> Any:
    try:
        from napkinxc.models import PLT
    except ImportError:
        raise ConfigError(
            "strategy 'label_tree' needs napkinXC: pip install 'labelwise[label-tree]'",
            param="strategy",
        ) from None
    return PLT


def _seed_c_rand(seed: int) -> None:
    """Seed the C library's ``rand()``, which liblinear's dual solver shuffles with (napkinXC's
    own ``seed`` does not reach it)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c") or ctypes.util.find_library("msvcrt")
    if name is not None:
        ctypes.CDLL(name).srand(ctypes.c_uint(seed))


def missing_columns(X: Any) -> list[int]:
    """The columns of ``X`` holding a missing value (the label tree reads it as 0)."""
    if hasattr(X, "tocsr"):
        return sorted(set(np.unique(X.indices[np.isnan(X.data)]).tolist()))
    return np.flatnonzero(np.isnan(X).any(axis=0)).tolist()


def _plt(folder: str, settings: LabelTreeSettings, seed: int, threads: int) -> Any:
    return _napkinxc_plt()(
        folder,
        arity=settings.arity,
        max_leaves=settings.max_leaves,
        liblinear_c=settings.C,
        ensemble=settings.ensemble,
        seed=seed,
        threads=threads,
    )


def _column_scale(X: Any) -> np.ndarray:
    """1 / the largest absolute value of each column (1 for an all-zero or all-missing one)."""
    if hasattr(X, "tocsc"):
        A = X.copy()
        A.data = np.nan_to_num(A.data, nan=0.0)
        peak = np.asarray(abs(A).max(axis=0).todense()).ravel() if X.shape[0] else None
    else:
        peak = np.nanmax(np.abs(X), axis=0, initial=0.0) if X.shape[0] else None
    if peak is None:
        return np.ones(X.shape[1], dtype=np.float32)
    peak = np.asarray(peak, dtype=np.float64)
    return np.where(peak > 0, 1.0 / np.where(peak > 0, peak, 1.0), 1.0).astype(np.float32)


def _scale(X: Any, scale: np.ndarray) -> Any:
    """``X`` times the column scale, float32, missing values as 0."""
    if hasattr(X, "multiply"):
        A = sp.csr_matrix(X.multiply(scale.reshape(1, -1)), dtype=np.float32)
        A.data = np.nan_to_num(A.data, nan=0.0)
        return A
    return np.ascontiguousarray(np.nan_to_num(np.asarray(X, dtype=np.float32) * scale, nan=0.0))


def _read(folder: str, name: str) -> bytes:
    with open(os.path.join(folder, name), "rb") as fh:
        return fh.read()
