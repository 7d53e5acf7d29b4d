"""A real prose table built at run time from this machine's Debian package lists: each package's
one-line description (``title``) and long description (``body``), its debtags as the label set
(``tags``), and its name and version as an id and a version column a newcomer would exclude.

    python -m benchmarks.debtags [--rows N] [--out table.parquet]

Needs the lists ``apt-get update -o Acquire::Languages=en`` leaves in ``/var/lib/apt/lists``
(``*_Packages*`` for the tags, ``*_Translation-en*`` for the long descriptions); read through
``apt-helper cat-file``, which undoes any compression apt used. Nothing is stored in the repo.
A plain ``apt-get update`` (``.ci/run`` makes one) drops the ``Translation-en`` lists again on
a machine configured without languages.

Tags of the facets that describe how a package is built rather than what it is for
(``role::``, ``implemented-in::``, ``special::``, ``*::TODO``) are dropped, and the labels are the
tags on at least 1% of the sampled packages: a corpus the size and shape of a news collection
(thousands of documents, dozens of topics), written by thousands of people.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

LISTS = Path("/var/lib/apt/lists")
HELPER = "/usr/lib/apt/apt-helper"
DROPPED = ("role::", "implemented-in::", "special::")


def _stanzas(path: Path) -> Iterator[dict[str, str]]:
    text = subprocess.run(
        [HELPER, "cat-file", str(path)], capture_output=True, check=True
    ).stdout.decode("utf-8", errors="replace")
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith(" ") and key:
                fields[key] += "\n" + line[1:]
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def _lists(kind: str) -> list[Path]:
    found = sorted(p for p in LISTS.glob(f"*_{kind}*") if not p.name.endswith(".diff_Index"))
    if not found:
        raise SystemExit(
            f"no {kind} list in {LISTS}: run `apt-get update -o Acquire::Languages=en` first"
        )
    return found


def debtags_table(rows: int = 10_000, seed: int = 7, min_share: float = 0.01) -> pl.DataFrame:
    """``rows`` packages with a long description and debtags, sampled with ``seed``, less those
    holding none of the kept tags; columns ``package``, ``version``, ``title``, ``body``,
    ``tags`` (a list of the kept tags)."""
    descriptions: dict[str, str] = {}
    for path in _lists("Translation-en"):
        for s in _stanzas(path):
            descriptions[s.get("Description-md5", "")] = s.get("Description-en", "")
    texts: dict[str, tuple[str, str, str]] = {}  # package -> version, title, body
    tagged: dict[str, list[str]] = {}
    for path in _lists("binary-amd64_Packages"):
        for s in _stanzas(path):
            text = descriptions.get(s.get("Description-md5", ""))
            if "Tag" not in s or not text or "\n" not in text:
                continue
            title, _, body = text.partition("\n")
            tags = [t.strip() for t in s["Tag"].replace("\n", " ").split(",")]
            body = re.sub(r"\n\.(\n|$)", "\n\n", body).replace("\n", " ").strip()
            texts[s["Package"]] = (s.get("Version", ""), title.strip(), body)
            tagged[s["Package"]] = [
                t for t in tags if t and not t.startswith(DROPPED) and "::TODO" not in t
            ]
    names = sorted(texts)
    chosen = [names[i] for i in np.random.default_rng(seed).permutation(len(names))[:rows]]
    counts = Counter(t for name in chosen for t in tagged[name])
    kept = {t for t, n in counts.items() if n >= min_share * len(chosen)}
    chosen = [name for name in chosen if kept & set(tagged[name])]
    return pl.DataFrame(
        {
            "package": chosen,
            "version": [texts[n][0] for n in chosen],
            "title": [texts[n][1] for n in chosen],
            "body": [texts[n][2] for n in chosen],
            "tags": [sorted(kept & set(tagged[n])) for n in chosen],
        }
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=Path("debtags.parquet"))
    args = ap.parse_args(argv)
    df = debtags_table(args.rows)
    df.write_parquet(args.out)
    n_labels = df["tags"].explode().n_unique()
    print(f"{args.out}: {df.height} packages, {n_labels} tags")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
