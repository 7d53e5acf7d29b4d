"""Data contract: a great-expectations 1.x suite (JSON in data_contracts/) plus expectations the
config implies (columns present, labels non-null and in {0, 1}, enough positives, enough rows).

Plain functions, no Prefect import: `labelwise validate` checks tables without it (0.8 s);
:mod:`labelwise.tasks.contract` wraps :func:`check_table` as the flows' task."""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path
from typing import Any

import polars as pl

from labelwise.engine.errors import ConfigError, ContractError, DataError
from labelwise.pipeline.config import Config, read_document
from labelwise.pipeline.records import ContractFailure, ContractReport, Expectation
from labelwise.tasks.column_changes import TABLE_SHAPE, column_changes


def config_expectations(cfg: Config, columns: list[str]) -> list[Expectation]:
    """The table-level expectations a config implies, as suite-JSON entries (type + kwargs):
    the row count, the feature and time columns, and each declared text column's filled share
    and longest document. The per-label checks run on the label
    summary (:func:`label_summary`), a few expectations shared by every label."""
    exp: list[Expectation] = [
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": cfg.contract.min_rows},
        }
    ]
    time = [cfg.data.time_column] if cfg.data.time_column else []
    for c in [*(cfg.data.features or []), *time]:
        exp.append({"type": "expect_column_to_exist", "kwargs": {"column": c}})
    filled = 1 - cfg.contract.text_max_empty
    for c in cfg.data.text or []:
        exp += [
            {"type": "expect_column_to_exist", "kwargs": {"column": c}},
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": c, "mostly": filled},
            },
            {
                "type": "expect_column_values_to_not_match_regex",
                "kwargs": {"column": c, "regex": r"^\s*$", "mostly": filled},
            },
            {
                "type": "expect_column_value_lengths_to_be_between",
                "kwargs": {"column": c, "max_value": cfg.contract.text_max_chars},
            },
        ]
    return exp


def label_columns(cfg: Config, columns: list[str]) -> list[str]:
    """The label columns of a table, or the declared ones when absent (so the report names
    what is missing); a prefix / regex that matches nothing raises its own message."""
    try:
        return list(cfg.data.labels.source_columns(columns))
    except DataError:
        lab = cfg.data.labels
        found = list(lab.columns or []) or ([lab.set_column] if lab.set_column else [])
        if not found:
            raise
        return found


# per-label checks: summary column -> (the per-column expectation it stands for, what it counts)
LABEL_CHECKS = {
    "present": ("expect_column_to_exist", "column missing"),
    "nulls": ("expect_column_values_to_not_be_null", "null values"),
    "outside_01": ("expect_column_values_to_be_in_set", "values outside {0, 1}"),
    "positives": ("expect_column_sum_to_be_between", "positive rows"),
    "negatives": ("expect_column_min_to_be_between", "negative rows"),
}


def label_summary(df: Any, labels: list[str]) -> Any:
    """One row per label: present (0/1), nulls, values outside {0, 1}, positives and
    negatives, computed in one polars pass over the table."""
    present = [c for c in labels if c in df.columns]
    binary = {c for c in present if df.schema[c].is_numeric() or df.schema[c] == pl.Boolean}
    stats = (
        df.select(
            [pl.col(c).null_count().alias(f"{c}\0nulls") for c in present]
            + [
                (~pl.col(c).cast(pl.Float64).is_in([0.0, 1.0])).sum().alias(f"{c}\0outside_01")
                for c in binary
            ]
            + [(pl.col(c).cast(pl.Float64) == 1).sum().alias(f"{c}\0positives") for c in binary]
            + [(pl.col(c).cast(pl.Float64) == 0).sum().alias(f"{c}\0negatives") for c in binary]
        ).row(0, named=True)
        if present
        else {}
    )
    rows = []
    for c in labels:
        row = {"label": c, "present": int(c in df.columns)}
        for k in ("nulls", "outside_01", "positives", "negatives"):
            v = stats.get(f"{c}\0{k}")
            row[k] = int(v) if v is not None else (df.height if k == "outside_01" else 0)
        rows.append(row)
    return pl.DataFrame(rows, schema={"label": pl.String, **dict.fromkeys(LABEL_CHECKS, pl.Int64)})


def label_expectations(cfg: Config, part: str) -> list[Expectation]:
    """The expectations every label shares, on its summary row; a test part is not held to
    the training minimums of positives and negatives."""
    c = cfg.contract
    bounds: dict[str, dict[str, int]] = {
        "present": {"min_value": 1},
        "nulls": {"max_value": 0},
    }
    if not cfg.data.labels.set_column:
        bounds["outside_01"] = {"max_value": 0}
        if part == "train":
            bounds["positives"] = {"min_value": c.min_positives_per_label}
            bounds["negatives"] = {"min_value": c.min_negatives_per_label}
    return [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": k, **b}}
        for k, b in bounds.items()
        if b.get("min_value", 1) > 0 or "max_value" in b
    ]


def load_suite(path: Path) -> list[Expectation]:
    """The expectations of a suite file (``{"expectations": [{type, kwargs}, ...]}``)."""
    suite = read_document(path, json.loads, "JSON", "contract.suite file")
    exps = suite.get("expectations") if isinstance(suite, dict) else None
    if not isinstance(exps, list) or any(not isinstance(e, dict) or "type" not in e for e in exps):
        raise ConfigError(f"{path}: a suite needs an 'expectations' list of {{type, kwargs}}")
    return [
        Expectation(type=str(e["type"]), kwargs=dict(e.get("kwargs") or {}), meta=e.get("meta"))
        for e in exps
    ]


def run_contract(df: Any, expectations: list[Expectation], name: str) -> ContractReport:
    """Validate a polars frame with great-expectations; return a JSON-able report."""
    suite = _Suite(df, name)
    # pass / fail alone is about half of GE's cost on a wide table (benchmarks/RESULTS.md); only
    # a failing table pays for the details, and only for its failed expectations
    result = suite.validate(name, expectations, "BOOLEAN_ONLY")
    stats = result.statistics
    details = []
    if not result.success:
        again = [_as_entry(r.expectation_config) for r in result.results if not r.success]
        details = suite.validate(f"{name}-failed", again, "SUMMARY").results
    return {
        "suite": name,
        "success": bool(result.success),
        "failures": [_failure(r, df.columns) for r in details if not r.success],
        "evaluated": int(stats["evaluated_expectations"]),
        "successful": int(stats["successful_expectations"]),
    }


@functools.lru_cache(maxsize=1)
def _context() -> Any:
    """One ephemeral great-expectations context per process (making one costs ~0.5 s; a
    train validates four frames), shared under unique datasource and suite names."""
    import logging

    import great_expectations as gx

    # GE sets this logger to INFO on import and announces a temporary docs folder
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    with contextlib.suppress(Exception):  # progress bars are cosmetic
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


class _Suite:
    """An ephemeral great-expectations context holding one frame, validated suite by suite."""

    def __init__(self, df: Any, name: str) -> None:
        import uuid

        self.ctx = _context()
        self.key = f"{name}-{uuid.uuid4().hex[:8]}"  # one context serves every validation
        asset = self.ctx.data_sources.add_pandas(self.key).add_dataframe_asset(name)
        self.batch_def = asset.add_batch_definition_whole_dataframe("all")
        self.df, self.name = df, name

    def validate(self, suite_name: str, exps: list[Expectation], result_format: str) -> Any:
        import great_expectations as gx
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        try:
            confs = [
                ExpectationConfiguration(
                    type=e["type"], kwargs=e.get("kwargs", {}), meta=e.get("meta")
                ).to_domain_obj()
                for e in exps
            ]
        except Exception as exc:
            raise ConfigError(f"contract {self.name}: invalid expectation ({exc})") from None
        unique = f"{suite_name}-{self.key}"
        suite = self.ctx.suites.add(gx.ExpectationSuite(name=unique, expectations=confs))
        vd = self.ctx.validation_definitions.add(
            gx.ValidationDefinition(name=unique, data=self.batch_def, suite=suite)
        )
        # only the columns the expectations name go to pandas (GE checks every named column
        # against the frame's columns), unless one looks at the whole table
        frame = self.df.select(columns_needed(exps, self.df.schema)).to_pandas()
        return vd.run(batch_parameters={"dataframe": frame}, result_format=result_format)


def columns_needed(exps: list[Expectation], schema: pl.Schema) -> list[str]:
    """The columns of a table (its ``schema``) that expectations ``exps`` look at: all of
    them for a table-level check of the columns, else the ones they name, else one cheap
    column for the row count."""
    names = schema.names()
    if any("table_column" in e["type"] for e in exps):
        return names
    named: set[str] = set()
    for e in exps:
        kwargs = e.get("kwargs", {})
        named.update(kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs)
        named.update(kwargs.get("column_list") or [])
    picked = [c for c in names if c in named]
    if picked or not names:
        return picked
    numeric = [c for c in names if schema[c].is_numeric() or schema[c] == pl.Boolean]
    return (numeric or names)[:1]  # a number column converts to pandas at 8 bytes a row


def _as_entry(conf: Any) -> Expectation:
    """An expectation configuration back as a suite-JSON entry."""
    kwargs = {k: v for k, v in conf.kwargs.items() if k != "batch_id"}
    return Expectation(type=conf.type, kwargs=kwargs, meta=conf.meta)


def _failure(r: Any, columns: list[str]) -> ContractFailure:
    """One failed expectation, as the report and the error message show it."""
    conf, res = r.expectation_config, r.result or {}
    observed = res.get("observed_value")
    if observed is None and "unexpected_count" in res:
        examples = res.get("partial_unexpected_list", [])[:3]
        observed = f"{res['unexpected_count']} unexpected, e.g. {examples}"
    if observed is None and r.exception_info and r.exception_info.get("raised_exception"):
        missing = conf.kwargs.get("column") not in columns
        observed = (
            "column missing" if missing else str(r.exception_info.get("exception_message"))[:200]
        )
    expected = {k: _plain(v) for k, v in conf.kwargs.items() if k not in ("column", "batch_id")}
    return {
        "expectation": conf.type,
        "column": conf.kwargs.get("column"),
        "observed": _plain(observed),
        "expected": expected,
    }


def _plain(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


def format_report(report: ContractReport, source: str) -> str:
    lines = [
        f"{source}: data contract '{report['suite']}' failed "
        f"({len(report['failures'])} of {report['evaluated']} expectations)"
    ]
    for f in report["failures"][:25]:
        col = f" column {f['column']!r}" if f["column"] else ""
        lines.append(
            f"  - {f['expectation']}{col}: observed {f['observed']}; expected {f['expected']}"
        )
    if len(report["failures"]) > 25:
        lines.append(f"  … and {len(report['failures']) - 25} more")
    lines.append("Fix the data (or the contract in data_contracts/) and run again.")
    return "\n".join(lines)


def run_label_checks(summary: Any, expectations: list[Expectation], name: str) -> ContractReport:
    """Validate the label summary (one row per label) and report each failing label as its
    own failure: ``expect_column_sum_to_be_between column 'label_07': observed 0 positive
    rows``. Counts are per label and check, as if each label had its own expectations."""
    suite = _Suite(summary, name)
    result = suite.validate(name, expectations, "COMPLETE")
    failures: list[ContractFailure] = []
    for r in result.results:
        if r.success:
            continue
        check = r.expectation_config.kwargs["column"]
        what, noun = LABEL_CHECKS[check]
        bound = {k: v for k, v in r.expectation_config.kwargs.items() if k.endswith("_value")}
        for i in (r.result or {}).get("unexpected_index_list") or []:
            row = summary.row(int(i), named=True)
            if check != "present" and not row["present"]:
                continue  # a missing column is reported once, as missing
            failures.append(
                {
                    "expectation": what,
                    "column": row["label"],
                    "observed": noun if check == "present" else f"{row[check]} {noun}",
                    "expected": {k: int(v) for k, v in bound.items()},
                }
            )
    evaluated = len(expectations) * summary.height
    return ContractReport(
        suite=name,
        success=not failures,
        failures=failures,
        evaluated=evaluated,
        successful=evaluated - len(failures),
    )


def check_table(
    cfg: Config, path: str, label: str = "train", source: str | None = None
) -> ContractReport:
    """Check one table against its contract: the config's table-level expectations and the
    suite on the table, the checks every label shares on the label summary. The report says
    whether it passed and names the table as ``source`` (what the user configured; a run
    checks its snapshot at ``path``); :func:`raise_for` turns a failed one into an error."""
    from labelwise.engine.data import read_table, scan_table

    schema = scan_table(path).collect_schema()
    expectations = config_expectations(cfg, schema.names())
    if cfg.contract.suite is not None:
        expectations += load_suite(cfg.contract.suite)
    labels = label_columns(cfg, schema.names())
    # only what the checks look at is read (a wide or long table costs its checked part)
    wanted = set(columns_needed(expectations, schema)) | set(labels)
    df = read_table(path, [c for c in schema.names() if c in wanted])
    report = run_contract(df, expectations, f"{cfg.name}-{label}")
    checks = label_expectations(cfg, label)
    if labels and checks:
        per_label = run_label_checks(
            label_summary(df, labels), checks, f"{cfg.name}-{label}-labels"
        )
        report["failures"] = per_label["failures"] + report["failures"]
        report["success"] = report["success"] and not per_label["failures"]
        report["evaluated"] += per_label["evaluated"]
        report["successful"] += per_label["successful"]
    if any(f["expectation"] in TABLE_SHAPE for f in report["failures"]):
        changes = column_changes(cfg, schema.names(), expectations, labels)
        for f in report["failures"]:
            if f["expectation"] in TABLE_SHAPE:
                f["observed"] = f"{f['observed']} ({changes})"
    report["table"] = source or path
    return report


def raise_for(report: ContractReport) -> None:
    """ContractError with a readable summary when the report's table failed its contract."""
    if not report["success"]:
        table = report.get("table", report["suite"])
        raise ContractError(format_report(report, table), dict(report))
