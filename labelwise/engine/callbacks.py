"""Callbacks of a fit, in the manner of LightGBM's: what a caller adds to ``fit`` without a new
keyword argument per feature.

``fit(X, Y, callbacks=[Progress(fn), Checkpoint(directory)])``. A callback hears of each finished
per-label model (``model_done``) and may hand back one finished before a crash (``restore``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.engine.label_model import LabelModel


class FitCallback:
    """Base class: every hook does nothing."""

    def begin(self, planned: int, labels: list[str]) -> None:
        """Called once before training, with the number of per-label models planned."""

    def restore(
        self, step: str, index: int, n_valid: int
    ) -> tuple[LabelModel, np.ndarray | None] | None:
        """A model of label ``index`` of ``step`` finished earlier (and its ``n_valid`` held-out
        probabilities), or None to train it."""
        return None

    def model_done(
        self, step: str, index: int, model: LabelModel, p_valid: np.ndarray | None, restored: bool
    ) -> None:
        """Called (from worker threads) as each per-label model is ready."""

    def held_out(self, Y: np.ndarray, P: Any, folds: list[np.ndarray], floor: float = 0.0) -> None:
        """Called once, before calibration and thresholds are fitted, with the labels ``Y`` and
        uncalibrated probabilities ``P`` of the held-out rows (out-of-fold with cross-fitting;
        a scipy CSR matrix for a label tree, see ``predict_proba(sparse=True)``), ``folds``:
        positions into them of the rows each member held out, and ``floor``: the lowest
        threshold the model sets (a label tree's ``min_proba``: below it nothing is
        searched)."""


class Progress(FitCallback):
    """Calls ``fn(done, planned, label)`` as each per-label model finishes."""

    def __init__(self, fn: Callable[[int, int, str], None]) -> None:
        self.fn, self.planned, self.done, self.labels = fn, 0, 0, [""]
        self._lock = threading.Lock()

    def begin(self, planned: int, labels: list[str]) -> None:
        self.planned, self.done, self.labels = planned, 0, labels

    def model_done(
        self, step: str, index: int, model: LabelModel, p_valid: np.ndarray | None, restored: bool
    ) -> None:
        with self._lock:
            self.done += 1
            done = self.done
        self.fn(done, self.planned, self.labels[index])


class Checkpoint(FitCallback):
    """Per-label models on disk, so a killed fit resumes where it died.

    ``root/<step>/<label index>.txt`` is the booster (LightGBM text) or ``.json`` a constant
    model, ``<label index>.valid.npy`` its held-out probabilities, and ``<label index>.sha256``
    the digests of both, written last: a model counts as finished only when its digest file
    exists and matches. Every file goes to a temporary name unique to its writer and is renamed,
    so neither a killed writer nor two writers at once leave a half-written file under the final
    name; a checkpoint that does not verify is discarded with a warning and retrained. The
    caller keys ``root`` by data and parameters (the flow's work directory is).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.restored = 0
        self.discarded: list[str] = []  # what was damaged and retrained, for reports

    def _dir(self, step: str) -> Path:
        d = self.root / step
        d.mkdir(parents=True, exist_ok=True)
        return d

    def model_done(
        self, step: str, index: int, model: LabelModel, p_valid: np.ndarray | None, restored: bool
    ) -> None:
        if restored:
            return
        d = self._dir(step)
        files: dict[str, bytes] = {}
        if p_valid is not None:
            files[f"{index}.valid.npy"] = _npy(p_valid)
        if model.booster is None:
            files[f"{index}.json"] = json.dumps({"constant": model.constant}).encode()
        else:
            files[f"{index}.txt"] = model.to_text().encode()
        for name, data in files.items():
            _atomic_write(d / name, data)
        digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        _atomic_write(d / f"{index}.sha256", json.dumps(digests).encode())

    def restore(
        self, step: str, index: int, n_valid: int
    ) -> tuple[LabelModel, np.ndarray | None] | None:
        d = self.root / step
        if not (d / f"{index}.sha256").exists():
            return None
        try:
            found = self._read(d, index, n_valid)
        except Exception as exc:  # truncated, edited, or written by another version
            msg = f"checkpoint {d / str(index)}.* is damaged ({exc}); retraining that label"
            self.discarded.append(msg)
            warnings.warn(msg, UserWarning, stacklevel=2)
            for p in d.glob(f"{index}.*"):
                p.unlink(missing_ok=True)
            return None
        self.restored += 1
        return found

    @staticmethod
    def _read(d: Path, index: int, n_valid: int) -> tuple[LabelModel, np.ndarray | None]:
        import lightgbm as lgb

        digests = json.loads((d / f"{index}.sha256").read_text())
        blobs = {name: (d / name).read_bytes() for name in digests}
        for name, data in blobs.items():
            if hashlib.sha256(data).hexdigest() != digests[name]:
                raise ValueError(f"{name} does not match its digest")
        p_valid = None
        if n_valid:
            p_valid = np.load(_io(blobs[f"{index}.valid.npy"]))
            if p_valid.shape != (n_valid,):
                raise ValueError("held-out probabilities of another split")
        if f"{index}.json" in blobs:
            return LabelModel(
                None, float(json.loads(blobs[f"{index}.json"])["constant"]), 0
            ), p_valid
        booster = lgb.Booster(model_str=blobs[f"{index}.txt"].decode())
        return LabelModel(booster, None, booster.current_iteration()), p_valid


def _io(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def _npy(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(values, dtype=np.float64))
    return buf.getvalue()


def _atomic_write(target: Path, data: bytes) -> None:
    """Write to a name unique to this writer, then rename over the target."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
