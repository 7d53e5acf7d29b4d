"""Saving and loading a fitted model: a JSON manifest plus native LightGBM text files.

Layout of a model directory::

    manifest.json          format, versions, labels, features, categories, thresholds, ...
    boosters/L1_m0_0000.txt  first-level booster of label 0, member 0 (LightGBM text format)
    boosters/L2_m1_0003.txt  second-level booster of label 3, member 1 (dependency strategies)

A member is one complete set of per-label models (one per cross-fitting fold or chain);
predictions average the members of a level.

No pickle anywhere: the manifest is data, boosters are LightGBM's own text format. Each booster
file is listed with its SHA-256, so a manifest that does not match its files (edited, truncated,
swapped) fails to load, and every path must stay inside the model directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.boosting import LabelModel
from labelwise.calibration import LabelCalibrator
from labelwise.data import FeatureEncoder
from labelwise.errors import ModelFormatError

FORMAT = "labelwise-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def save_model(clf: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``clf`` (a fitted LabelwiseClassifier) to directory ``path``; returns the path."""
    import lightgbm as lgb

    from labelwise import __version__

    root = Path(path)
    (root / "boosters").mkdir(parents=True, exist_ok=True)

    def dump(model: LabelModel, name: str) -> dict[str, Any]:
        if model.booster is None:
            return {"constant": model.constant}
        rel = f"boosters/{name}.txt"
        model.booster.save_model(str(root / rel), num_iteration=model.best_iteration or None)
        return {"file": rel, "sha256": _sha256(root / rel),
                "best_iteration": int(model.best_iteration)}

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "labelwise_version": __version__,
        "lightgbm_version": lgb.__version__,
        "strategy": clf.strategy,
        "labels": list(clf.labels_),
        "encoder": clf.encoder_.to_dict(),
        "categorical_features": list(clf.categorical_features_),
        "thresholds": [float(t) for t in clf.thresholds_],
        "at_least_one": bool(clf.at_least_one),
        "label_weights": [float(w) for w in clf.label_weights_],
        "calibrators": ([c.to_dict() for c in clf.calibrators_] if clf.calibrators_ else None),
        "params": _jsonable(clf.get_params()),
        "orders": clf.orders_,
        # members: one list of per-label models per fold / chain; predictions average them
        "level1": [[dump(m, f"L1_m{i}_{j:04d}") for j, m in enumerate(ms)]
                   for i, ms in enumerate(clf.level1_)],
        "level2": [[dump(m, f"L2_m{i}_{j:04d}") for j, m in enumerate(ms)]
                   for i, ms in enumerate(clf.level2_)],
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return root


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    root = Path(path)
    mf = root / MANIFEST
    if not mf.is_file():
        raise ModelFormatError(f"{root}: no {MANIFEST}; is this a labelwise model directory?")
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{mf}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFormatError(f"{mf}: not a labelwise model manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(f"{mf}: format version {version!r} is not supported by this "
                               f"labelwise (reads version {FORMAT_VERSION}); upgrade labelwise or "
                               "re-export the model")
    required = ("labels", "encoder", "thresholds", "level1", "level2", "strategy", "params")
    missing = [k for k in required if k not in manifest]
    if missing:
        raise ModelFormatError(f"{mf}: missing field(s) {missing}")
    n_labels = len(manifest["labels"])
    if len(manifest["thresholds"]) != n_labels:
        raise ModelFormatError(f"{mf}: {n_labels} labels but {len(manifest['thresholds'])} "
                               "thresholds")
    members = manifest["level1"] + manifest["level2"]
    if not manifest["level1"] or any(not isinstance(ms, list) or len(ms) != n_labels
                                     for ms in members):
        raise ModelFormatError(f"{mf}: every model member must hold {n_labels} per-label models")
    if any(not (isinstance(t, int | float) and 0 <= t <= 1) for t in manifest["thresholds"]):
        raise ModelFormatError(f"{mf}: thresholds must be numbers in [0, 1]")
    return manifest


def _load_one(root: Path, entry: dict[str, Any]) -> LabelModel:
    import lightgbm as lgb

    if "constant" in entry:
        c = entry["constant"]
        if not isinstance(c, int | float) or not 0 <= c <= 1:
            raise ModelFormatError(f"{root / MANIFEST}: constant model {c!r} is not in [0, 1]")
        return LabelModel(None, float(c), 0)
    rel = entry.get("file")
    if not isinstance(rel, str):
        raise ModelFormatError(f"{root / MANIFEST}: a model entry has no file")
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ModelFormatError(f"{root / MANIFEST}: booster path {rel!r} points outside the "
                               "model directory; refusing to read it")
    if not target.is_file():
        raise ModelFormatError(f"{root}: booster file {rel} is missing; the model directory is "
                               "incomplete — copy it again from its source")
    if _sha256(target) != entry.get("sha256"):
        raise ModelFormatError(f"{root}: booster file {rel} does not match the digest in the "
                               "manifest (changed or corrupted)")
    booster = lgb.Booster(model_file=str(target))
    return LabelModel(booster, None, int(entry.get("best_iteration", 0)))


def load_model(path: str | os.PathLike[str]) -> Any:
    """Rebuild a fitted LabelwiseClassifier from a directory written by :func:`save_model`."""
    from labelwise.model import LabelwiseClassifier

    root = Path(path)
    m = read_manifest(root)
    try:
        clf = LabelwiseClassifier(**m["params"])
    except TypeError as exc:
        raise ModelFormatError(f"{root / MANIFEST}: unknown parameter ({exc})") from exc
    clf.labels_ = list(m["labels"])
    clf.encoder_ = FeatureEncoder.from_dict(m["encoder"])
    clf.categorical_features_ = list(m.get("categorical_features", []))
    clf.thresholds_ = np.asarray(m["thresholds"], dtype=np.float64)
    clf.label_weights_ = np.asarray(m.get("label_weights", [1.0] * len(clf.labels_)))
    clf.calibrators_ = ([LabelCalibrator.from_dict(c) for c in m["calibrators"]]
                        if m.get("calibrators") else None)
    clf.orders_ = [list(o) for o in m.get("orders", [])]
    clf.level1_ = [[_load_one(root, e) for e in ms] for ms in m["level1"]]
    clf.level2_ = [[_load_one(root, e) for e in ms] for ms in m["level2"]]
    clf.best_iterations_ = np.mean([[x.best_iteration for x in ms] for ms in clf.level1_], axis=0)
    clf.n_features_in_ = len(clf.encoder_.features)
    return clf
