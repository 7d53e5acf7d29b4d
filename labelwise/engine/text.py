"""Text columns: found or declared, turned into sparse tf-idf columns inside the model.

A text column is a feature kind beside numeric and categorical. Each one gets its own
vocabulary and idf (scikit-learn's ``CountVectorizer`` and ``TfidfTransformer``: word n-grams,
sublinear tf), fitted on the training rows only; or, with ``hashing``, its terms hashed into
buckets (``HashingVectorizer``: no vocabulary in memory however large the corpus) of which the
ones the training rows use are kept. The fitted vocabulary (or kept buckets) and idf are part
of the model, saved as JSON (no pickle) and rebuilt at load, so serving takes raw text. The
matrix stays sparse (scipy CSR) all the way into LightGBM and the linear head: a dense copy of
a 100k-term matrix is the bug this module exists to avoid.

Which string columns are text (``text_columns="auto"``): values long and mostly distinct
(:func:`looks_like_text`). A string column with many distinct short values (an id, a hash) is
neither text nor a useful category: the encoder warns, naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import polars as pl

from labelwise.engine.errors import ConfigError, DataError, ModelFormatError
from labelwise.engine.params import Constraint, Interval, Options, check_params

if TYPE_CHECKING:
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import (
        CountVectorizer,
        HashingVectorizer,
        TfidfTransformer,
    )

# a column is text when its typical value has several words and few values repeat
TEXT_MIN_WORDS = 3.0
TEXT_MIN_DISTINCT = 0.5
# ... and a category is suspect (an id, a hash) when most of its many values are distinct
ID_MIN_VALUES = 50
TOKEN_PATTERN = r"(?u)\b\w+\b"  # one-character words count ("c", "r", "3"): they carry topics
_WORDS = re.compile(TOKEN_PATTERN)  # a document's words, whatever the terms are
# training documents read to name hashed buckets: bounded, as hashing is meant to be
NAMED_FROM_DOCS = 2000


@dataclass(frozen=True)
class TextSettings:
    """How each text column becomes tf-idf columns.

    analyzer : "word" or "char_wb"
        What a term is: words, or the character n-grams inside each word (padded with a
        space at both ends, scikit-learn's ``char_wb``): misspellings, inflections and
        identifiers (``ERR_42``, ``v2.1``) share terms.
    ngram_min, ngram_max : int in [1, 5]
        Terms are n-grams of ``ngram_min``..``ngram_max`` words (or characters).
    min_df : int >= 1
        A term (with ``hashing``, a bucket) needs at least this many training documents.
    max_features : int >= 1 or None
        Keep at most this many terms (buckets) per column, the most frequent: the vocabulary,
        the model and the linear head's weights stay bounded whatever the corpus.
    hashing : bool
        Hash terms into ``hash_buckets`` buckets (scikit-learn's ``HashingVectorizer``, no
        sign flipping) instead of learning a vocabulary: fitting never holds the corpus's
        terms, so memory stays bounded on vocabularies of millions of terms; the price is
        that terms sharing a bucket are one column, named in explanations by its most frequent
        term in the first ``NAMED_FROM_DOCS`` training documents.
    hash_buckets : int in [2**10, 2**26]
        How many buckets (``n_features`` of ``HashingVectorizer``).
    sublinear_tf : bool
        ``1 + log(tf)`` instead of raw counts (a word repeated ten times is not ten times the
        evidence).
    lowercase : bool
    """

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    analyzer: str = "word"
    ngram_min: int = 1
    ngram_max: int = 1
    min_df: int = 1
    max_features: int | None = 200_000
    sublinear_tf: bool = True
    lowercase: bool = True
    hashing: bool = False
    hash_buckets: int = 2**20

    _constraints: ClassVar[dict[str, list[Constraint]]] = {
        "analyzer": [Options(("word", "char_wb"))],
        "ngram_min": [Interval(int, 1, 5)],
        "ngram_max": [Interval(int, 1, 5)],
        "min_df": [Interval(int, 1, None)],
        "max_features": [None, Interval(int, 1, None)],
        "sublinear_tf": [bool],
        "lowercase": [bool],
        "hashing": [bool],
        "hash_buckets": [Interval(int, 2**10, 2**26)],
    }

    def __post_init__(self) -> None:
        check_params(asdict(self), self._constraints)
        if self.ngram_min > self.ngram_max:
            raise ConfigError(
                f"text.ngram_min ({self.ngram_min}) is above text.ngram_max "
                f"({self.ngram_max}): terms are n-grams of ngram_min..ngram_max",
                param="ngram_min",
            )

    @classmethod
    def coerce(cls, value: TextSettings | dict[str, Any] | None) -> TextSettings:
        if value is None:
            return cls()
        if isinstance(value, dict):
            try:
                return cls(**value)
            except TypeError as exc:
                raise ConfigError(f"text: {exc}", param="text") from None
        return value

    def counter(self) -> CountVectorizer:
        """Term counts (what ``TfidfVectorizer`` counts before weighting)."""
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(
            analyzer=self.analyzer,
            ngram_range=(self.ngram_min, self.ngram_max),
            min_df=self.min_df,
            max_features=self.max_features,
            lowercase=self.lowercase,
            token_pattern=TOKEN_PATTERN if self.analyzer == "word" else None,
            dtype=np.float32,
        )

    def hasher(self) -> HashingVectorizer:
        """Term counts by bucket (``hash_buckets`` columns, non-negative)."""
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(
            analyzer=self.analyzer,
            ngram_range=(self.ngram_min, self.ngram_max),
            lowercase=self.lowercase,
            token_pattern=TOKEN_PATTERN if self.analyzer == "word" else None,
            n_features=self.hash_buckets,
            alternate_sign=False,
            norm=None,
            dtype=np.float32,
        )

    def weighting(self) -> TfidfTransformer:
        """Counts to tf-idf (l2-normalised rows)."""
        from sklearn.feature_extraction.text import TfidfTransformer

        return TfidfTransformer(sublinear_tf=self.sublinear_tf)


def looks_like_text(s: pl.Series) -> bool:
    """A string column whose values average ``TEXT_MIN_WORDS`` words or more and are mostly
    distinct: documents, not categories."""
    values = s.cast(pl.String).drop_nulls()
    if values.len() == 0:
        return False
    words = values.str.count_matches(r"\S+").cast(pl.Float64).to_numpy().mean()
    distinct = values.n_unique() / values.len()
    return bool(words >= TEXT_MIN_WORDS) and (
        distinct >= TEXT_MIN_DISTINCT or values.n_unique() >= 1000
    )


def looks_like_id(s: pl.Series) -> bool:
    """Many values, most of them distinct: an identifier, not a category (nor text)."""
    values = s.cast(pl.String).drop_nulls()
    n_unique = values.n_unique()
    return n_unique >= ID_MIN_VALUES and n_unique >= 0.5 * values.len()


def documents(s: pl.Series, source: str) -> list[str]:
    """A text column's values as documents: null is the empty document; anything but strings is
    an error naming the column."""
    if not (s.dtype in (pl.String, pl.Categorical, pl.Null) or isinstance(s.dtype, pl.Enum)):
        raise DataError(
            f"{source}: text column {s.name!r} has type {s.dtype}; text columns hold strings "
            "(declare only string columns as text, or cast the column)"
        )
    return s.cast(pl.String).fill_null("").to_list()


@dataclass
class TextColumn:
    """One text column's fitted vocabulary (or kept hash buckets) and idf, saved as JSON.

    It gives two views of a document: term counts, for the trees (a split on a count means
    "the word occurs at least k times", whatever the document's length: tf-idf's per-document
    normalisation only blurs that), and tf-idf, for the linear head (scikit-learn's
    ``TfidfVectorizer`` output, to the bit, without hashing)."""

    name: str
    settings: TextSettings = field(default_factory=TextSettings)
    counter: CountVectorizer | None = None
    weighting: TfidfTransformer | None = None
    buckets: np.ndarray | None = None  # with hashing: the kept buckets, ascending
    bucket_names: list[str] | None = None  # ... and a term of each ("" when none was seen)

    @property
    def n_terms(self) -> int:
        if self.buckets is not None:
            return len(self.buckets)
        return 0 if self.counter is None else len(self.counter.vocabulary_)

    @property
    def idf(self) -> np.ndarray:
        """Each term's idf, in column order (a fitted column)."""
        assert self.weighting is not None
        return np.asarray(self.weighting.idf_, dtype=np.float64)

    def terms(self) -> list[str]:
        """The vocabulary in column order (with hashing: ``<term> (#<bucket>)``, the bucket's
        most frequent term in the first training documents; ``#<bucket>`` without one)."""
        if self.buckets is not None:
            names = self.bucket_names or [""] * len(self.buckets)
            return [
                f"{n} (#{b})" if n else f"#{b}"
                for n, b in zip(names, self.buckets.tolist(), strict=True)
            ]
        assert self.counter is not None
        return [str(t) for t in self.counter.get_feature_names_out()]

    def fit_transform(self, s: pl.Series, source: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(counts, tf-idf) of the training documents, the vocabulary and idf learnt."""
        docs = documents(s, source)
        if self.settings.hashing:
            counts = self._fit_buckets(self.settings.hasher().transform(docs).tocsr())
            if counts is not None:
                self.bucket_names = self._name_buckets(docs[:NAMED_FROM_DOCS])
        else:
            self.counter = self.settings.counter()
            try:
                counts = self.counter.fit_transform(docs).tocsr()
            except ValueError:  # "empty vocabulary": no document has a word
                counts = None
        if counts is None:
            raise DataError(
                f"{source}: text column {s.name!r} has no word in any training row (after "
                f"min_df={self.settings.min_df}); drop it or lower text.min_df"
            )
        self.weighting = self.settings.weighting().fit(counts)
        return counts, self._tfidf(counts)

    def _fit_buckets(self, hashed: sp.csr_matrix) -> sp.csr_matrix | None:
        """Keep the buckets of ``min_df`` documents or more, at most ``max_features`` of them
        (the largest total counts, as ``CountVectorizer`` keeps terms); their counts."""
        df = np.bincount(hashed.indices, minlength=hashed.shape[1])
        keep = np.flatnonzero(df >= self.settings.min_df)
        limit = self.settings.max_features
        if limit is not None and len(keep) > limit:
            totals = np.asarray(hashed.sum(axis=0)).ravel()[keep]
            keep = np.sort(keep[np.argsort(-totals, kind="stable")[:limit]])
        if len(keep) == 0:
            return None
        self.buckets = keep.astype(np.int64)
        return hashed[:, self.buckets].tocsr()

    def _name_buckets(self, docs: list[str]) -> list[str]:
        """Each kept bucket's most frequent term in ``docs`` ("" when none falls in it): what
        an explanation shows instead of a bare bucket number."""
        from collections import Counter

        from sklearn.feature_extraction import FeatureHasher

        assert self.buckets is not None
        analyze = self.settings.hasher().build_analyzer()
        seen = Counter(t for d in docs for t in analyze(d))
        terms = sorted(seen, key=lambda t: (-seen[t], t))  # most frequent first, then by text
        # the hash HashingVectorizer itself applies to a term (its FeatureHasher)
        hasher = FeatureHasher(
            self.settings.hash_buckets, input_type="string", alternate_sign=False
        )
        where = hasher.transform([t] for t in terms).indices if terms else []
        first: dict[int, str] = {}
        for t, b in zip(terms, where, strict=True):
            first.setdefault(int(b), t)
        return [first.get(b, "") for b in self.buckets.tolist()]

    def transform(self, s: pl.Series, source: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(counts, tf-idf) of documents."""
        counts = self.counts(s, source)
        return counts, self._tfidf(counts)

    def counts(self, s: pl.Series, source: str) -> sp.csr_matrix:
        """Term counts of documents (what the trees and the drift monitor read)."""
        docs = documents(s, source)
        if self.buckets is not None:
            return self.settings.hasher().transform(docs)[:, self.buckets].tocsr()
        assert self.counter is not None
        return self.counter.transform(docs).tocsr()

    def statistics(self, s: pl.Series, source: str) -> tuple[np.ndarray, np.ndarray]:
        """Per document: its length in words and the share of its words (terms, for
        character n-grams or hashing) outside the vocabulary (NaN for an empty document):
        what text drift is watched on."""
        docs = documents(s, source)
        if self.buckets is not None:
            return self._bucket_statistics(docs)
        assert self.counter is not None
        preprocess, tokenize = self.counter.build_preprocessor(), _WORDS.findall
        # a character vocabulary is checked on the document's own terms, a word one on words
        terms = self.counter.build_analyzer() if self.settings.analyzer != "word" else None
        vocab = self.counter.vocabulary_
        words = np.zeros(s.len())
        oov = np.full(s.len(), np.nan)
        for i, doc in enumerate(docs):
            tokens = tokenize(preprocess(doc))
            words[i] = len(tokens)
            seen = tokens if terms is None else terms(doc)
            if seen:
                oov[i] = sum(t not in vocab for t in seen) / len(seen)
        return words, oov

    def _bucket_statistics(self, docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`statistics` with hashing: a term is out of the vocabulary when its bucket
        is not kept."""
        assert self.buckets is not None
        hasher = self.settings.hasher()
        preprocess = hasher.build_preprocessor()
        words = np.array([len(_WORDS.findall(preprocess(d))) for d in docs], dtype=np.float64)
        hashed = hasher.transform(docs).tocsr()
        total = np.asarray(hashed.sum(axis=1)).ravel().astype(np.float64)
        kept = np.asarray(hashed[:, self.buckets].sum(axis=1)).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            oov = np.where(total > 0, 1.0 - kept / total, np.nan)
        return words, oov

    def _tfidf(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        assert self.weighting is not None
        return self.weighting.transform(counts, copy=True).astype(np.float32).tocsr()

    def to_json(self) -> str:
        """Vocabulary (term -> column) or kept buckets, and idf, exact: JSON floats round-trip
        float64."""
        idf = [float(x) for x in self.idf]
        if self.buckets is not None:
            names = self.bucket_names
            return json.dumps({"buckets": self.buckets.tolist(), "idf": idf, "names": names})
        assert self.counter is not None
        vocab = {str(t): int(i) for t, i in self.counter.vocabulary_.items()}
        return json.dumps({"vocabulary": vocab, "idf": idf})

    @classmethod
    def from_json(cls, name: str, settings: TextSettings, text: str, source: str) -> TextColumn:
        try:
            data = json.loads(text)
            idf = np.asarray(data["idf"], dtype=np.float64)
            if settings.hashing:
                buckets = np.asarray(data["buckets"], dtype=np.int64)
                names = data.get("names") or None
                n, ok = len(buckets), _ascending_within(buckets, settings.hash_buckets)
                if names is not None:
                    names = [str(x) for x in names]
                    ok = ok and len(names) == n
            else:
                vocab = {str(t): int(i) for t, i in data["vocabulary"].items()}
                n, ok = len(vocab), sorted(vocab.values()) == list(range(len(vocab)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(
                f"{source}: text column {name!r}: bad vocabulary ({exc})"
            ) from None
        if len(idf) != n or not ok:
            raise ModelFormatError(f"{source}: text column {name!r}: vocabulary and idf disagree")
        weighting = settings.weighting()
        weighting.idf_ = idf
        if settings.hashing:
            return cls(name, settings, None, weighting, buckets, names)
        counter = settings.counter()
        counter.vocabulary_ = vocab
        return cls(name, settings, counter, weighting)


def _ascending_within(buckets: np.ndarray, n_buckets: int) -> bool:
    """Strictly ascending bucket numbers in ``[0, n_buckets)``."""
    inside = bool(((buckets >= 0) & (buckets < n_buckets)).all())
    return buckets.ndim == 1 and inside and bool((np.diff(buckets) > 0).all())


def hstack(blocks: Sequence[Any]) -> sp.csr_matrix:
    """Side by side as one CSR matrix (dense blocks converted)."""
    import scipy.sparse as sp

    return sp.hstack([sp.csr_matrix(b) for b in blocks], format="csr", dtype=np.float32)
