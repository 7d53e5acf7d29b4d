"""Reading tables and turning them into a feature matrix X and a label matrix Y.

A multi-label table names its labels in one of three ways, all handled by :class:`LabelSpec`:

* indicator columns, one 0/1 column per label (``columns=[...]``, ``prefix="tag_"``, ``regex=...``);
* one label-set column holding a list of label names (``set_column="tags"``);
* one label-set column holding a delimited string (``set_column="tags", separator="|"``).

Features are numeric, boolean, categorical (String / Categorical / Enum) or text. Categorical
values are mapped to integer codes that LightGBM treats as categories; the mapping is learnt on the
training table by :class:`FeatureEncoder`, stored with the model, and unseen values at predict time
become missing (counted, so they can be reported). Text columns become sparse tf-idf columns
(:mod:`labelwise.engine.text`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import scipy.sparse as sp

from labelwise.engine.errors import ConfigError, DataError, ModelFormatError
from labelwise.engine.text import (
    TextColumn,
    TextSettings,
    hstack,
    looks_like_id,
    looks_like_text,
)

SUPPORTED_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}


def scan_table(path: str | Path) -> pl.LazyFrame:
    """Lazily scan a parquet, CSV or NDJSON file; fail early, naming the file, if it is unusable."""
    p = Path(path)
    kind = SUPPORTED_SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise DataError(
            f"{p}: unsupported file type {p.suffix!r}; use one of {sorted(SUPPORTED_SUFFIXES)}"
        )
    if not p.exists():
        raise DataError(f"{p}: file not found; check the data path in your config or command")
    if not p.is_file():  # a directory, a FIFO (which would block the read), a device
        raise DataError(f"{p}: not a regular file; give the path of a table file")
    try:
        if kind == "parquet":
            lf = pl.scan_parquet(p)
        elif kind == "csv":
            lf = pl.scan_csv(p, infer_schema_length=10_000)
        else:
            lf = pl.scan_ndjson(p, infer_schema_length=10_000)
        names = lf.collect_schema().names()
    except Exception as exc:  # polars raises several types for corrupt files
        raise DataError(
            f"{p}: cannot read as {kind} ({type(exc).__name__}: {exc}); "
            "is the file complete and of the right type?"
        ) from exc
    # polars renames a repeated CSV header to <name>_duplicated_<k>: refuse it, naming the column
    dups = sorted(
        {
            m.group(1)
            for n in names
            if (m := re.fullmatch(r"(.+)_duplicated_\d+", n)) and m.group(1) in names
        }
    )
    if dups:
        raise DataError(f"{p}: duplicate column name(s) {dups}; every column needs a unique name")
    return lf


def require_columns(
    names: Sequence[str], needed: Sequence[str], source: str, what: str = "feature", why: str = ""
) -> None:
    """Raise DataError naming ``source`` and the ``needed`` columns absent from ``names``."""
    present = set(names)
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataError(
            f"{source}: {what} column(s) {missing} are missing"
            + (f"; {why}" if why else f" (columns: {_preview(names)})")
        )


def check_output(output: str | Path, inputs: Sequence[str | Path], overwrite: bool) -> Path:
    """Refuse an output path that would destroy data: anything but a regular file or a new
    path (a directory, a device, a FIFO), one of the ``inputs`` itself, or an existing file
    unless ``overwrite``. Nothing is written here."""
    out = Path(output)
    if out.exists() or out.is_symlink():
        if not out.is_file():
            raise DataError(f"{out}: exists and is not a regular file; choose a new file path")
        if any(Path(p).exists() and out.resolve() == Path(p).resolve() for p in inputs):
            raise DataError(f"{out}: is the input table itself; write the output elsewhere")
        if not overwrite:
            raise DataError(f"{out}: exists; choose a new path or pass --overwrite to replace it")
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise DataError(f"{out}: the output is parquet; give it a .parquet name")
    if out.parent.exists() and not out.parent.is_dir():
        raise DataError(f"{out.parent}: is not a directory")
    return out


def read_table(
    path: str | Path, columns: Sequence[str] | None = None, rows: int | None = None
) -> pl.DataFrame:
    """Read a table (optionally only some columns, or its first ``rows``) into memory, with
    errors that name the file."""
    lf = scan_table(path)
    if columns is not None:
        require_columns(lf.collect_schema().names(), columns, str(path), what="the")
        lf = lf.select(columns)
    if rows is not None:
        lf = lf.head(rows)
    try:
        df = lf.collect()
    except Exception as exc:
        hint = "; save the file as UTF-8 text" if "utf-8" in str(exc).lower() else ""
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc}){hint}") from exc
    return df


@dataclass(frozen=True)
class LabelSpec:
    """Which column(s) of a table hold the labels.

    Give exactly one of ``columns``, ``prefix``, ``regex`` (indicator columns) or ``set_column``
    (one column holding label sets, as lists or delimited strings split on ``separator``).
    """

    # read by the YAML loader (pydantic): an unknown key is an error, not a silent default
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    columns: tuple[str, ...] | None = None
    prefix: str | None = None
    regex: str | None = None
    set_column: str | None = None
    separator: str | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("columns", "prefix", "regex", "set_column") if getattr(self, n)]
        if len(given) != 1:
            raise ConfigError(
                f"give exactly one of columns, prefix, regex or set_column (got {given or 'none'})"
            )
        if self.columns is not None and not isinstance(self.columns, tuple):
            object.__setattr__(self, "columns", tuple(self.columns))
        twice = sorted({c for c in self.columns or () if list(self.columns or ()).count(c) > 1})
        if twice:
            raise ConfigError(f"label column(s) {twice} are listed more than once", "columns")

    def source_columns(self, names: Sequence[str]) -> list[str]:
        """The table columns that carry labels (indicators, or the one label-set column)."""
        if self.set_column:
            if self.set_column not in names:
                raise DataError(
                    f"label-set column {self.set_column!r} not in the table "
                    f"(columns: {_preview(names)})"
                )
            return [self.set_column]
        if self.columns:
            missing = [c for c in self.columns if c not in names]
            if missing:
                raise DataError(
                    f"label column(s) {missing} not in the table; fix the label list "
                    f"or the data (columns: {_preview(names)})"
                )
            return list(self.columns)
        if self.prefix:
            cols = [c for c in names if c.startswith(self.prefix)]
            what = f"prefix {self.prefix!r}"
        else:
            rx = re.compile(self.regex or "")
            cols = [c for c in names if rx.fullmatch(c)]
            what = f"regex {self.regex!r}"
        if not cols:
            raise DataError(f"no label column matches {what} (columns: {_preview(names)})")
        return cols


def _preview(names: Sequence[str], k: int = 12) -> str:
    shown = ", ".join(list(names)[:k])
    return shown + (f", … ({len(names)} in all)" if len(names) > k else "")


def encode_labels(
    df: pl.DataFrame,
    spec: LabelSpec,
    labels: Sequence[str] | None = None,
    source: str = "table",
    others: bool = False,
) -> tuple[Any, list[str]]:
    """Return ``Y`` (uint8, n x L: a scipy CSR matrix for a label-set column, whose labels may
    number 100,000; dense for indicator columns) and the label names.

    ``labels`` fixes the label order (e.g. the trained model's); otherwise indicator columns keep
    table order and label-set names are sorted. With ``labels``, a label of the table outside
    them is an error unless ``others`` (then it is left out: scoring on a subset of labels).
    """
    cols = spec.source_columns(df.columns)
    if spec.set_column:
        return _encode_label_sets(
            df.get_column(spec.set_column), spec.separator, labels, source, others
        )
    Y = np.empty((df.height, len(cols)), dtype=np.uint8)
    for j, c in enumerate(cols):
        Y[:, j] = _indicator(df.get_column(c), source)
    names = list(cols)
    if labels is not None:
        absent = [lab for lab in labels if lab not in names]
        if absent:
            raise DataError(
                f"{source}: label column(s) {absent[:10]} of the model are not in the table "
                f"({len(absent)} of {len(labels)}); the table's labels changed since it was "
                "trained: add the columns, or retrain"
            )
        order = [names.index(lab) for lab in labels]
        Y, names = Y[:, order], list(labels)
    return Y, names


def _indicator(s: pl.Series, source: str) -> np.ndarray:
    where = f"{source}: label column {s.name!r}"
    if s.null_count():
        raise DataError(
            f"{where} has {s.null_count()} null value(s); every row needs 0 or 1 — "
            "fill or drop those rows"
        )
    if s.dtype == pl.Boolean:
        return s.cast(pl.UInt8).to_numpy()
    if not s.dtype.is_numeric():
        raise DataError(
            f"{where} has type {s.dtype} (e.g. {s.head(3).to_list()}); "
            "labels must be 0/1 numbers or booleans"
        )
    bad = s.filter((s != 0) & (s != 1))
    if bad.len():
        raise DataError(
            f"{where} has {bad.len()} value(s) outside {{0, 1}} "
            f"(e.g. {bad.unique().head(3).to_list()}); labels must be 0 or 1"
        )
    return s.cast(pl.UInt8).to_numpy()


def _encode_label_sets(
    s: pl.Series,
    separator: str | None,
    labels: Sequence[str] | None,
    source: str,
    others: bool = False,
) -> tuple[np.ndarray, list[str]]:
    where = f"{source}: label-set column {s.name!r}"
    from_strings = s.dtype == pl.String
    if from_strings:
        if separator is None:
            raise DataError(f"{where} holds strings: set `separator` (e.g. '|') to split them")
        s = s.str.split(separator).list.eval(pl.element().str.strip_chars())
    elif not isinstance(s.dtype, pl.List):
        raise DataError(f"{where} has type {s.dtype}; expected list[str] or a delimited string")
    if s.null_count():
        raise DataError(
            f"{where} has {s.null_count()} null row(s); use an empty list / empty "
            "string for rows without labels"
        )
    s = s.cast(pl.List(pl.String))
    flat = s.explode().drop_nulls()
    flat = flat.filter(flat != "")
    odd = (
        flat.filter(flat.str.contains(r"^[\[\({]|[\]\)}]$|^['\"]|['\"]$")).unique()
        if from_strings
        else flat.clear()
    )
    if odd.len():
        raise DataError(
            f"{where} has label name(s) like {odd.head(3).to_list()}: the strings "
            f"look like serialized lists, not {separator!r}-separated names; store "
            "a list column, or plain names joined by the separator"
        )
    if labels is None:
        labels = sorted(flat.unique().to_list())
        if not labels:
            raise DataError(
                f"{where} holds no label at all (every row is empty); check the "
                "column and the separator"
            )
    _check_label_count(where, len(s), len(labels))
    index = {lab: j for j, lab in enumerate(labels)}
    unknown = sorted(set(flat.unique().to_list()) - set(index))
    if unknown and not others:
        raise DataError(f"{where} has label(s) {unknown[:10]} that the model does not know")
    if unknown:
        flat = flat.filter(flat.is_in(list(index)))
        s = s.list.eval(pl.element().filter(pl.element().is_in(list(index))))
    lengths = s.list.eval(pl.element().filter(pl.element() != "")).list.len().to_numpy()
    rows = np.repeat(np.arange(len(s)), lengths)
    cols = np.fromiter((index[v] for v in flat.to_list()), dtype=np.int64, count=len(flat))
    Y = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.uint8), (rows, cols)), shape=(len(s), len(labels))
    )
    Y.sum_duplicates()  # a label named twice in a row is one label
    Y.data[:] = 1
    return Y, list(labels)


# the most distinct labels a label-set column may hold: more is a separator that splits
# nothing (every row one label string) or ids, not labels
MAX_LABELS = 1_000_000


def _check_label_count(where: str, n_rows: int, n_labels: int) -> None:
    if n_labels > MAX_LABELS:
        raise DataError(
            f"{where} has {n_labels:,} distinct labels over {n_rows:,} rows (the limit is "
            f"{MAX_LABELS:,}); keep the labels that can be learned (e.g. those on at least 5 "
            "rows) or check the separator"
        )


TRAINED_WITH = "the model was trained with them — add them (nulls are allowed)"


class DataWarning(UserWarning):
    """Something in the table is suspicious but usable (constant or empty feature...)."""


@dataclass
class FeatureEncoder:
    """Learns how to turn feature columns into a float32 matrix LightGBM can bin.

    Numeric and boolean columns pass through as float32 (nulls -> NaN). Categorical columns
    (String / Categorical / Enum) become integer codes in a stored, sorted vocabulary; values not
    in the vocabulary become NaN and are counted in :attr:`unseen_counts` after ``transform``.
    """

    features: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    unseen_counts: dict[str, int] = field(default_factory=dict)
    warnings_: list[str] = field(default_factory=list)  # what fit warned about, for reports
    text: list[TextColumn] = field(default_factory=list)
    _text_matrices: list[Any] = field(default_factory=list, repr=False)

    @property
    def categorical_indices(self) -> list[int]:  # into the model matrix: tabular come first
        """Columns LightGBM should split as categories: three or more levels. A two-level
        column (YES/NO, a/b) is coded 0/1 and split as a number: the same partitions, without
        the cost of LightGBM's per-category histograms (9-30x slower on wide nominal tables)."""
        return [
            i for i, f in enumerate(self.tabular_features) if len(self.categories.get(f, ())) > 2
        ]

    def fit(
        self,
        df: pl.DataFrame,
        features: Sequence[str],
        source: str = "table",
        text_columns: Sequence[str] | str | None = "auto",
        text_settings: TextSettings | None = None,
    ) -> FeatureEncoder:
        """Learn the columns' kinds and vocabularies. ``text_columns``: the columns to vectorise
        as text, ``"auto"`` to find them (:func:`~labelwise.engine.text.looks_like_text`), or
        None / ``[]`` for none."""
        require_columns(df.columns, features, source)
        if not features:
            raise DataError(f"{source}: no feature columns")
        self.categories = {}
        self.warnings_ = []
        if text_columns not in (None, "auto"):
            not_features = [c for c in text_columns or () if c not in features]
            if not_features:
                raise DataError(
                    f"{source}: text column(s) {not_features} are not feature columns "
                    f"(features: {_preview(features)}); fix data.text or the feature list"
                )
        kinds = feature_kinds(df, features, text_columns)
        text = kinds["text"]
        if text and text_columns == "auto":
            self._warn(
                f"{source}: column(s) {text} hold free text (several words, mostly distinct "
                "values) and are vectorised as tf-idf; declare data.text (text_columns) to "
                "choose the text columns yourself, [] for none"
            )
        # tabular columns first: the matrix is [tabular | text terms], categories index into it
        self.features = [f for f in features if f not in text] + text
        settings = text_settings or TextSettings()
        self.text = [TextColumn(c, settings) for c in text]
        self._text_matrices = [t.fit_transform(df[t.name], source) for t in self.text]
        self._fit_tabular(df, source)
        if ids := kinds["id-like"]:
            self._warn(
                f"{source}: column(s) {ids} hold many distinct short strings (ids, hashes?): as "
                "categories their values are mostly unseen at predict time; exclude them "
                "(data.exclude) or, if they are text, declare them (data.text)"
            )
        return self

    def _fit_tabular(self, df: pl.DataFrame, source: str) -> None:
        """Vocabularies of the categorical columns; unusable columns refused, columns that
        carry no information warned about."""
        empty: list[str] = []
        constant: list[str] = []
        for f in self.tabular_features:
            s = df.get_column(f)
            if s.null_count() == len(s):
                empty.append(f)
            elif s.n_unique() == 1:
                constant.append(f)
            if _is_categorical(s.dtype):
                values = s.cast(pl.String).drop_nulls()
                as_num = values.cast(pl.Float64, strict=False)
                n_num = len(values) - as_num.null_count()
                if len(values) and n_num >= 0.5 * len(values) and n_num < len(values):
                    odd = values.filter(as_num.is_null()).unique().head(3).to_list()
                    raise DataError(
                        f"{source}: feature column {f!r} mixes numbers and text "
                        f"(e.g. {odd}); clean the values or make it all text"
                    )
                self.categories[f] = values.unique().sort().to_list()
            elif not (s.dtype.is_numeric() or s.dtype == pl.Boolean or s.dtype == pl.Null):
                raise DataError(
                    f"{source}: feature column {f!r} has unsupported type {s.dtype}; "
                    "use numbers, booleans or strings/categories"
                    + (
                        " (a date or time is no feature as it stands: leave it out with "
                        "data.exclude, or derive numbers from it)"
                        if s.dtype.is_temporal()
                        else ""
                    )
                )
        for what, cols in (("entirely null", empty), ("constant", constant)):
            if cols:
                self._warn(
                    f"{source}: {len(cols)} feature column(s) are {what} and carry no "
                    f"information: {_preview(cols, 10)}"
                )

    def _warn(self, msg: str) -> None:
        self.warnings_.append(msg)
        warnings.warn(msg, DataWarning, stacklevel=3)

    @property
    def text_columns(self) -> list[str]:
        return [t.name for t in self.text]

    @property
    def tabular_features(self) -> list[str]:
        """The feature columns that are not text (numeric, boolean, categorical), in matrix
        order."""
        text = set(self.text_columns)
        return [f for f in self.features if f not in text]

    @property
    def n_terms(self) -> int:
        return sum(t.n_terms for t in self.text)

    @property
    def n_columns(self) -> int:
        """Width of the model matrix: tabular columns, each text column's term counts, then
        each text column's tf-idf (see :meth:`encode`)."""
        return len(self.tabular_features) + 2 * self.n_terms

    def tree_block(self) -> np.ndarray:
        """Model-matrix columns the trees see: tabular columns and term counts."""
        return np.arange(len(self.tabular_features) + self.n_terms)

    def linear_block(self) -> np.ndarray:
        """Model-matrix columns the linear head sees: the tf-idf columns with text; every
        column without (a sparse matrix given as it is)."""
        if not self.text:
            return np.arange(self.n_columns)
        return np.arange(len(self.tabular_features) + self.n_terms, self.n_columns)

    def column_owners(self) -> np.ndarray:
        """For each model-matrix column, the index into :attr:`features` of its input column."""
        pos = {f: i for i, f in enumerate(self.features)}
        terms = [np.full(t.n_terms, pos[t.name], dtype=np.int64) for t in self.text]
        tabular = [np.array([pos[f] for f in self.tabular_features], dtype=np.int64)]
        return np.concatenate(tabular + terms + terms)

    def column_names(self) -> list[str]:
        """Model-matrix column names: tabular features, ``<text column>:<term>`` counts, then
        ``<text column>:<term>:tfidf``."""
        terms = [f"{t.name}:{w}" for t in self.text for w in t.terms()]
        return self.tabular_features + terms + [f"{name}:tfidf" for name in terms]

    def profile_columns(
        self, df: pl.DataFrame, source: str = "table", terms: Sequence[str] = ()
    ) -> tuple[list[str], Any]:
        """(names, dense matrix) of what the monitor profiles: the tabular features, then per
        text column ``<column>:words`` (document length) and ``<column>:oov_share`` (share of
        its words outside the training vocabulary), then the named ``terms``
        (:meth:`term_presence`)."""
        names, stats = self.text_profile(df, source)
        blocks = [self.transform(df, source), stats, self.term_presence(df, terms, source)]
        return [*self.tabular_features, *names, *terms], np.hstack(blocks)

    def term_names(self) -> list[str]:
        """Every term as the monitor names it, ``<column>:term:<term>``, in the order of the
        model matrix's count columns."""
        return [f"{t.name}:term:{w}" for t in self.text for w in t.terms()]

    def term_presence(
        self, df: pl.DataFrame, terms: Sequence[str], source: str = "table"
    ) -> np.ndarray:
        """Rows x ``terms`` (names of :meth:`term_names`): 1 where the row's document holds
        the term, else 0. A term the model does not have is an error naming it."""
        out = np.zeros((df.height, len(terms)), dtype=np.float32)
        if not terms:
            return out
        index = {name: i for i, name in enumerate(self.term_names())}
        unknown = [t for t in terms if t not in index]
        if unknown:
            raise DataError(f"{source}: the model has no term(s) {_preview(unknown)}")
        wanted = np.array([index[t] for t in terms])
        start = 0
        for column in self.text:
            mine = (wanted >= start) & (wanted < start + column.n_terms)
            if mine.any():
                counts = column.counts(df[column.name], source)
                held = counts[:, wanted[mine] - start] > 0
                out[:, mine] = held.toarray()
            start += column.n_terms
        return out

    def text_profile(self, df: pl.DataFrame, source: str = "table") -> tuple[list[str], Any]:
        """The text columns' part of :meth:`profile_columns`."""
        blocks, names = [np.empty((df.height, 0), dtype=np.float32)], []
        for t in self.text:
            words, oov = t.statistics(df[t.name], source)
            blocks.append(np.column_stack([words, oov]).astype(np.float32))
            names += [f"{t.name}:words", f"{t.name}:oov_share"]
        return names, np.hstack(blocks)

    def fit_encode(self, df: pl.DataFrame, source: str = "table") -> np.ndarray | Any:
        """:meth:`encode` of the table ``fit`` just saw (its text matrices are reused)."""
        X = self.transform(df, source)
        if not self.text:
            return X
        views, self._text_matrices = self._text_matrices, []
        return hstack([X, *(c for c, _ in views), *(w for _, w in views)])

    def encode(self, df: pl.DataFrame, source: str = "table") -> np.ndarray | Any:
        """The model matrix: dense float32 without text columns, else CSR ``[tabular | term
        counts of each text column | tf-idf of each text column]``: the trees read the first
        two blocks, the linear head the last."""
        X = self.transform(df, source)
        if not self.text:
            return X
        require_columns(df.columns, self.text_columns, source, why=TRAINED_WITH)
        views = [t.transform(df[t.name], source) for t in self.text]
        return hstack([X, *(c for c, _ in views), *(w for _, w in views)])

    def transform(self, df: pl.DataFrame, source: str = "table") -> np.ndarray:
        """The tabular features as a dense float32 matrix (text columns are :meth:`encode`'s)."""
        require_columns(df.columns, self.features, source, why=TRAINED_WITH)
        tabular = self.tabular_features
        X = np.empty((df.height, len(tabular)), dtype=np.float32)
        self.unseen_counts = {}
        numeric: list[int] = []
        for i, f in enumerate(tabular):
            s = df.get_column(f)
            if f in self.categories:
                vocab = self.categories[f]
                if not (_is_categorical(s.dtype) or s.dtype == pl.Null):
                    raise DataError(
                        f"{source}: feature column {f!r} has type {s.dtype}, but the "
                        "model learnt it as categorical (strings)"
                    )
                codes = s.cast(pl.String).replace_strict(
                    vocab, list(range(len(vocab))), default=None, return_dtype=pl.Float32
                )
                unseen = int(codes.null_count() - s.null_count())
                if unseen:
                    self.unseen_counts[f] = unseen
                X[:, i] = codes.fill_null(np.nan).to_numpy()
            else:
                if _is_categorical(s.dtype):
                    raise DataError(
                        f"{source}: feature column {f!r} holds strings, but the model "
                        "learnt it as numeric; fix its type"
                    )
                if not (s.dtype.is_numeric() or s.dtype in (pl.Boolean, pl.Null)):
                    raise DataError(
                        f"{source}: feature column {f!r} has unsupported type {s.dtype}"
                    )
                numeric.append(i)
        if numeric:  # one conversion for every numeric column, checked as one matrix
            names = [tabular[i] for i in numeric]
            wide = df.select(pl.col(names).cast(pl.Float64)).to_numpy()
            _check_float32_range(wide, names, source)
            X[:, numeric] = wide
        return X

    def to_dict(self, write: Callable[[str, str | bytes], str] | None = None) -> dict[str, Any]:
        """JSON-able description; each text column's vocabulary goes out through
        ``write(relative path, data) -> sha256``."""
        out: dict[str, Any] = {"features": self.features, "categories": self.categories}
        if self.text:
            assert write is not None, "text columns need a file writer"
            out["text"] = [
                {
                    "column": t.name,
                    "settings": asdict(t.settings),
                    "file": (rel := f"text/{i:03d}.json"),
                    "sha256": write(rel, t.to_json()),
                    "n_terms": t.n_terms,
                }
                for i, t in enumerate(self.text)
            ]
        return out

    @classmethod
    def from_dict(
        cls,
        d: dict[str, Any],
        read: Callable[[dict[str, Any]], bytes] | None = None,
        source: str = "manifest",
    ) -> FeatureEncoder:
        enc = cls(
            features=list(d["features"]),
            categories={k: list(v) for k, v in d["categories"].items()},
        )
        for e in d.get("text", []):
            if read is None:
                raise ModelFormatError(f"{source}: text columns but no model files to read")
            settings = TextSettings(**e["settings"])
            enc.text.append(TextColumn.from_json(e["column"], settings, read(e).decode(), source))
        return enc


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32_range(wide: np.ndarray, names: Sequence[str], source: str) -> None:
    """Infinite values, and finite ones too large for float32 (they would become infinite),
    are errors naming the first such column (NaN is missing, and allowed)."""
    inf = np.isinf(wide)
    for j in np.flatnonzero(inf.any(axis=0))[:1]:
        raise DataError(
            f"{source}: feature column {names[j]!r} holds {int(inf[:, j].sum())} infinite "
            "value(s); replace them with nulls or finite values"
        )
    with np.errstate(invalid="ignore"):
        big = np.abs(wide) > FLOAT32_MAX
    for j in np.flatnonzero(big.any(axis=0))[:1]:
        hits = wide[big[:, j], j]
        raise DataError(
            f"{source}: feature column {names[j]!r} holds {len(hits)} value(s) beyond "
            f"the float32 range of ±{FLOAT32_MAX:.3g} (e.g. {hits[0]:.3g}); scale "
            "or clip them"
        )


def _is_categorical(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical)


def feature_kinds(
    df: pl.DataFrame, features: Sequence[str], text_columns: Sequence[str] | str | None = "auto"
) -> dict[str, list[str]]:
    """How a fit would read each feature column: ``text`` (declared, or found with
    ``"auto"``), ``categorical``, ``numeric`` (numbers and booleans); ``id-like`` lists the
    categorical columns that look like identifiers (warned about at fit)."""
    kinds: dict[str, list[str]] = {"text": [], "categorical": [], "numeric": [], "id-like": []}
    for f in features:
        s = df.get_column(f)
        if isinstance(text_columns, Sequence) and not isinstance(text_columns, str):
            is_text = f in text_columns
        else:
            is_text = text_columns == "auto" and _is_categorical(s.dtype) and looks_like_text(s)
        if is_text:
            kinds["text"].append(f)
        elif _is_categorical(s.dtype):
            kinds["categorical"].append(f)
            if looks_like_id(s):
                kinds["id-like"].append(f)
        else:
            kinds["numeric"].append(f)
    return kinds


def infer_features(
    names: Sequence[str], label_columns: Sequence[str], exclude: Sequence[str] = ()
) -> list[str]:
    """Every column that is neither a label column nor excluded (ids, timestamps...)."""
    skip = set(label_columns) | set(exclude)
    return [c for c in names if c not in skip]


def table_xy(
    df: pl.DataFrame,
    spec: LabelSpec,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    source: str = "table",
    others: bool = False,
) -> tuple[pl.DataFrame, Any, list[str]]:
    """A labelled table as (feature columns, Y uint8 n x L -- CSR for a label-set column --,
    label names): what ``fit`` takes.

    ``features`` default to every column that is not a label column or in ``exclude``;
    ``labels`` fixes the label order (a trained model's); ``others``: labels outside them are
    left out instead of refused.
    """
    if df.height == 0:
        raise DataError(f"{source}: the table has no rows")
    label_cols = spec.source_columns(df.columns)
    feats = (
        list(features) if features is not None else infer_features(df.columns, label_cols, exclude)
    )
    overlap = sorted(set(feats) & set(label_cols))
    if overlap:
        raise DataError(f"{source}: column(s) {overlap} are both features and labels")
    require_columns(df.columns, feats, source)
    Y, names = encode_labels(df, spec, labels=labels, source=source, others=others)
    return df.select(feats), Y, names
