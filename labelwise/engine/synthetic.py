"""A realistic synthetic multi-label table, for the demo and the tests.

What makes it realistic (and hard in the right ways):

* features: numeric (some informative, some noise), a skewed count, a boolean, two categorical
  columns (one with a long tail of rare values), and nulls in several columns;
* labels: a few latent "topics" drive groups of labels, so labels co-occur (correlated); label
  prevalence runs from ~40% down to well under 1% (frequent and rare labels); a few labels are
  logical combinations of others (a chain or stacking model can exploit that);
* a free-text-like ``id`` column that is not a feature.

The generator is pure numpy + polars and deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np
import polars as pl

CITIES = ["berlin", "paris", "madrid", "rome", "vienna", "oslo", "lisbon", "prague"]


def make_multilabel_table(
    n_rows: int = 5000,
    n_labels: int = 24,
    n_numeric: int = 16,
    seed: int = 0,
    label_prefix: str = "label_",
) -> pl.DataFrame:
    """Return a table with ``id``, feature columns and ``n_labels`` 0/1 label columns."""
    if n_labels < 4:
        raise ValueError("n_labels must be >= 4 (some labels are built from others)")
    rng = np.random.default_rng(seed)
    n_topics = max(3, n_labels // 6)
    Z = rng.normal(size=(n_rows, n_topics))  # latent topics
    numeric, count, flag, city, device = _features(rng, Z, n_numeric)
    Y = _labels(rng, Z, city, flag, device, n_labels)
    # nulls: missing at random in a few columns
    num = numeric.copy()
    num[rng.random(n_rows) < 0.05, 0] = np.nan
    num[rng.random(n_rows) < 0.20, n_numeric - 1] = np.nan
    city_col = np.where(rng.random(n_rows) < 0.03, np.array(None, dtype=object), city)

    cols: dict[str, object] = {"id": [f"row-{seed}-{i:07d}" for i in range(n_rows)]}
    for i in range(n_numeric):
        cols[f"x{i:02d}"] = pl.Series(num[:, i]).fill_nan(None)
    cols["count"] = count.astype(np.int64)
    cols["flag"] = flag
    cols["city"] = pl.Series(city_col.tolist(), dtype=pl.String)
    cols["device"] = device.tolist()
    for j in range(n_labels):
        cols[f"{label_prefix}{j:02d}"] = Y[:, j]
    return pl.DataFrame(cols)


def _features(rng: np.random.Generator, Z: np.ndarray, n_numeric: int) -> tuple[np.ndarray, ...]:
    """Numeric (half of them noisy views of the topics), count, flag, city and device."""
    n_rows, n_topics = Z.shape
    numeric = np.empty((n_rows, n_numeric))
    for i in range(n_numeric):
        if i < n_numeric // 2:  # informative: noisy views of the topics
            numeric[:, i] = Z[:, i % n_topics] * rng.uniform(0.5, 1.5) + rng.normal(
                scale=1.0, size=n_rows
            )
        else:
            numeric[:, i] = rng.normal(size=n_rows)
    count = rng.poisson(np.exp(0.5 * Z[:, 0].clip(-3, 3) + 1.0))
    flag = (Z[:, 1] + rng.normal(scale=0.8, size=n_rows)) > 0.3
    city_p = np.exp(np.outer(Z[:, 2], np.linspace(-1.5, 1.5, len(CITIES))))
    city_p /= city_p.sum(axis=1, keepdims=True)
    city = np.array(CITIES)[(city_p.cumsum(axis=1) > rng.random((n_rows, 1))).argmax(axis=1)]
    # a long-tailed categorical: many rare values, one of them informative
    tail = np.asarray(rng.zipf(1.6, size=n_rows)).clip(max=400)
    device = np.where(tail == 3, "dev_hot", np.char.add("dev_", tail.astype(str)))
    return numeric, count, flag, city, device


def _labels(
    rng: np.random.Generator,
    Z: np.ndarray,
    city: np.ndarray,
    flag: np.ndarray,
    device: np.ndarray,
    n_labels: int,
) -> np.ndarray:
    """0/1 labels, prevalence from ~40% down to ~0.5%, driven by topics and features; the
    last two are defined by others (an AND and an XOR-ish combination: label dependencies)."""
    n_rows, n_topics = Z.shape
    base = np.linspace(-0.3, -7.0, n_labels - 2)
    logits = np.empty((n_rows, n_labels - 2))
    for j in range(n_labels - 2):
        t1, t2 = j % n_topics, (j * 7 + 1) % n_topics
        w = rng.uniform(1.0, 2.5)
        logits[:, j] = base[j] + w * Z[:, t1] + 0.7 * Z[:, t2] * (j % 3 == 0)
        if j % 5 == 0:
            logits[:, j] += 1.2 * (city == CITIES[j % len(CITIES)])
        if j % 4 == 1:
            logits[:, j] += 1.5 * flag
        if j % 7 == 2:
            logits[:, j] += 2.0 * (device == "dev_hot")
    Y = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(np.uint8)
    both = (Y[:, 0] & Y[:, 1]) | (rng.random(n_rows) < 0.01)
    k = Y.shape[1]
    either = (Y[:, 2 % k] ^ Y[:, 3 % k]) & (rng.random(n_rows) < 0.8)
    return np.column_stack([Y, both, either]).astype(np.uint8)
