"""A synthetic text table shaped like what users bring: tickets, news, abstracts.

Columns: ``doc_id`` (an identifier), ``published`` (a date), ``title`` (a few words), ``body``
(a document) and ``topics`` (the label set, ``|``-separated). Each label has topic words; a
document mixes Zipf-distributed background words with the topic words of its labels (and of
related labels, so labels are confusable), labels follow a Zipf-like prevalence, and some
documents carry no label. Deterministic for a seed; pure numpy + polars.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]


def _words(rng: np.random.Generator, n: int) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        k = int(rng.integers(2, 5))
        out.add("".join(rng.choice(SYLLABLES, size=k)))
    return sorted(out)


def make_text_table(
    n_rows: int = 2000,
    n_labels: int = 20,
    vocabulary: int = 5000,
    body_words: int = 80,
    seed: int = 0,
) -> pl.DataFrame:
    """A table of ``n_rows`` documents over ``n_labels`` topics (see the module docstring)."""
    rng = np.random.default_rng(seed)
    words = np.array(_words(rng, vocabulary + 40 * n_labels))
    background = words[:vocabulary]
    zipf = 1.0 / np.arange(1, vocabulary + 1) ** 1.1
    zipf /= zipf.sum()
    topic_words = words[vocabulary:].reshape(n_labels, 40)
    labels = [f"topic_{j:03d}" for j in range(n_labels)]
    prevalence = 0.35 / np.arange(1, n_labels + 1) ** 0.8
    related = rng.integers(0, n_labels, size=n_labels)  # each label borrows words of another

    titles, bodies, sets = [], [], []
    for _ in range(n_rows):
        on = np.flatnonzero(rng.random(n_labels) < prevalence)
        length = max(5, int(rng.lognormal(np.log(body_words), 0.5)))
        n_topic = int(rng.binomial(length, 0.12 if len(on) else 0.0))
        body = list(rng.choice(background, size=length - n_topic, p=zipf))
        for _ in range(n_topic):
            j = int(rng.choice(on))
            j = int(related[j]) if rng.random() < 0.25 else j
            body.append(str(rng.choice(topic_words[j][: 10 + int(rng.integers(0, 30))])))
        rng.shuffle(body)
        head = list(rng.choice(background, size=int(rng.integers(4, 9)), p=zipf))
        if len(on) and rng.random() < 0.6:
            head.append(str(rng.choice(topic_words[int(rng.choice(on))][:10])))
        titles.append(" ".join(head).capitalize())
        bodies.append(" ".join(body).capitalize() + ".")
        sets.append("|".join(labels[j] for j in on))
    start = dt.date(2025, 1, 1)
    return pl.DataFrame(
        {
            "doc_id": [f"DOC-{seed:02d}-{i:07d}" for i in range(n_rows)],
            "published": [start + dt.timedelta(days=int(d)) for d in rng.integers(0, 365, n_rows)],
            "title": titles,
            "body": bodies,
            "topics": sets,
        }
    )
