"""Model directories on disk: a JSON manifest plus native LightGBM text files, and their digests.

Layout of a model directory::

    manifest.json            format, versions, labels, features, thresholds, ... (the model's
                             own description: LabelwiseClassifier.to_manifest)
    boosters/L1_m0_0000.txt  first-level booster of label 0, member 0 (LightGBM text format)
    boosters/L2_m1_0003.txt  second-level booster of label 3, member 1 (dependency strategies)

This module only reads and writes files: it checks the format version, that every booster file
stays inside the directory and matches the SHA-256 the manifest lists for it. No pickle anywhere:
a manifest that does not match its files (edited, truncated, swapped) fails to load.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labelwise.engine.errors import ModelFormatError

FORMAT = "labelwise-model"
# 2: threshold_policy and weighting are one object each in the params; 3: text columns
# (encoder.text: vocabulary files) and the linear head (linear: .npy files); 4: the label tree
# (label_tree: napkinXC's files and a column scale); 5: hashed text columns (text settings
# ``hashing``, ``hash_buckets``; their file holds kept buckets, not a vocabulary)
FORMAT_VERSION = 5
READABLE_VERSIONS = (1, 2, 3, 4, 5)
MANIFEST = "manifest.json"

ToManifest = Callable[[Callable[[str, str | bytes], str]], dict[str, Any]]


def write_model_dir(path: str | os.PathLike[str], to_manifest: ToManifest) -> Path:
    """Write the manifest ``to_manifest(write)`` builds (``write`` stores each booster text and
    returns its digest) into directory ``path``; returns the path."""
    import lightgbm as lgb

    from labelwise import __version__

    root = Path(path)
    (root / "boosters").mkdir(parents=True, exist_ok=True)

    def write(rel: str, content: str | bytes) -> str:
        data = content.encode() if isinstance(content, str) else content
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "labelwise_version": __version__,
        "lightgbm_version": lgb.__version__,
        **to_manifest(write),
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return root


def read_model_dir(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], Callable[[dict[str, Any]], bytes], str]:
    """(manifest, ``read(file entry) -> verified bytes``, manifest path for messages)."""
    root = Path(path)
    manifest = read_manifest(root)
    mf = str(root / MANIFEST)

    def read(entry: dict[str, Any]) -> bytes:
        rel = entry.get("file")
        if not isinstance(rel, str):
            raise ModelFormatError(f"{mf}: a model entry has no file")
        target = (root / rel).resolve()
        if not target.is_relative_to(root.resolve()):
            raise ModelFormatError(
                f"{mf}: booster path {rel!r} points outside the model "
                "directory; refusing to read it"
            )
        if not target.is_file():
            raise ModelFormatError(
                f"{root}: booster file {rel} is missing; the model "
                "directory is incomplete — copy it again from its source"
            )
        data = target.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise ModelFormatError(
                f"{root}: booster file {rel} does not match the digest in "
                "the manifest (changed or corrupted)"
            )
        return data

    return manifest, read, mf


def verify_model_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds a complete model directory whose files match their digests
    (what a cache of a finished fit must check before it is trusted)."""
    try:
        manifest, read, _ = read_model_dir(path)
        for entry in file_entries(manifest):
            read(entry)
    except ModelFormatError:
        return False
    return True


def file_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entry of the manifest that names a file: boosters, vocabularies, linear weights."""
    boosters = [e for ms in manifest["level1"] + manifest["level2"] for e in ms]
    text = manifest["encoder"].get("text", [])
    linear = list((manifest.get("linear") or {}).values())
    return [e for e in [*boosters, *text, *linear] if "constant" not in e]


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked manifest of a model directory (older format versions migrated)."""
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
    if version not in READABLE_VERSIONS:
        raise ModelFormatError(
            f"{mf}: format version {version!r} is not supported by this "
            f"labelwise (reads versions {READABLE_VERSIONS}); upgrade "
            "labelwise or re-export the model"
        )
    try:
        _check_shape(manifest, mf)
    except (TypeError, KeyError, AttributeError) as exc:
        raise ModelFormatError(f"{mf}: malformed manifest ({exc}); re-export the model") from None
    return _migrate_v1(manifest) if version == 1 else manifest


def _check_shape(manifest: dict[str, Any], mf: Path) -> None:
    required = ("labels", "encoder", "thresholds", "level1", "level2", "strategy", "params")
    missing = [k for k in required if k not in manifest]
    if missing:
        raise ModelFormatError(f"{mf}: missing field(s) {missing}")
    n_labels = len(manifest["labels"])
    if len(manifest["thresholds"]) != n_labels:
        raise ModelFormatError(
            f"{mf}: {n_labels} labels but {len(manifest['thresholds'])} thresholds"
        )
    members = manifest["level1"] + manifest["level2"]
    if not (manifest["level1"] or manifest.get("linear") or manifest.get("label_tree")) or any(
        not isinstance(ms, list) or len(ms) != n_labels for ms in members
    ):
        raise ModelFormatError(f"{mf}: every model member must hold {n_labels} per-label models")
    if any(not (isinstance(t, int | float) and 0 <= t <= 1) for t in manifest["thresholds"]):
        raise ModelFormatError(f"{mf}: thresholds must be numbers in [0, 1]")
    constants = [e.get("constant") for ms in members for e in ms if "constant" in e]
    if any(not (isinstance(c, int | float) and 0 <= c <= 1) for c in constants):
        raise ModelFormatError(f"{mf}: constant models must be numbers in [0, 1]")


def _migrate_v1(manifest: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the threshold and weighting settings as flat parameters."""
    params = dict(manifest["params"])
    policy = {
        k.removeprefix("threshold_"): params.pop(k)
        for k in list(params)
        if k.startswith("threshold_")
    }
    policy["at_least_one"] = params.pop("at_least_one", manifest.get("at_least_one", False))
    params["threshold_policy"] = policy
    scheme = params.pop("weighting", "none")
    params["weighting"] = {"scheme": scheme, "cap": params.pop("weighting_cap", 50.0)}
    return {**manifest, "params": params, "format_version": FORMAT_VERSION}
