"""What a table's columns lack and hold in excess, against every column list known (the
suite's, the config's, the champion's training table): what a failed check of a table's
shape says, since a column count alone gives the user nothing to act on."""

from __future__ import annotations

import json
from pathlib import Path

from labelwise.pipeline.config import Config
from labelwise.pipeline.records import Expectation

# expectations on the table's set of columns: a failure names the missing and unexpected ones
TABLE_SHAPE = (
    "expect_table_column_count_to_equal",
    "expect_table_column_count_to_be_between",
    "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list",
)


def column_changes(
    cfg: Config, columns: list[str], expectations: list[Expectation], labels: list[str]
) -> str:
    """Which columns a table lacks and which it has in excess, against every column list
    known: the columns the suite and the config name, and the champion's training table (a
    count alone says nothing a user can act on)."""
    named: list[str] = []
    for e in expectations:
        kwargs = e.get("kwargs", {})
        named += [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
        named += list(kwargs.get("column_set") or kwargs.get("column_list") or [])
    named += [*(cfg.data.features or []), *(cfg.data.text or []), *labels]
    champion = champion_columns(cfg)
    known = list(dict.fromkeys([*(champion[1] if champion else []), *named]))
    have = set(columns)
    missing = [c for c in known if c not in have]
    # excess is only known against a complete list: the champion's, or the suite's own
    complete = set(champion[1]) if champion else None
    for e in expectations:
        whole = e.get("kwargs", {}).get("column_set") or e.get("kwargs", {}).get("column_list")
        if e["type"] in TABLE_SHAPE and whole:
            complete = (complete or set()) | set(whole)
    unexpected = [c for c in columns if complete is not None and c not in complete]
    against = f"the columns of {champion[0]}'s training table and " if champion else ""
    if not (missing or unexpected):
        return (
            f"no column is missing against {against}the columns the suite and config name; "
            "list the columns in an expect_table_columns_to_match_set expectation to have "
            "them named"
        )
    return (
        f"missing: {_listed(missing)}; unexpected: {_listed(unexpected)}; against {against}"
        "the columns the suite and config name"
    )


def _listed(names: list[str], most: int = 10) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(repr(n) for n in names[:most]) + more


def champion_columns(cfg: Config) -> tuple[str, list[str]] | None:
    """(``name vN``, the columns of the training table the config's champion was fitted on),
    from the schema of the dataset its run logged; None without a champion or a reachable
    tracking store (a check of a table never fails for want of one)."""
    try:
        from labelwise.tasks.registry import CHAMPION, mlflow_client, tracking_uri_of

        uri = tracking_uri_of(cfg)
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
            return None  # no store yet, so no champion: none is created for asking
        c = mlflow_client(uri)
        mv = c.get_model_version_by_alias(cfg.registered_model, CHAMPION)
        inputs = c.get_run(mv.run_id).inputs if mv.run_id is not None else None
        for d in inputs.dataset_inputs if inputs is not None else []:
            trained_on = {(t.key, t.value) for t in d.tags} >= {("mlflow.data.context", "train")}
            if trained_on and d.dataset.schema:
                spec = json.loads(d.dataset.schema)["mlflow_colspec"]
                return f"{mv.name} v{mv.version}", [str(col["name"]) for col in spec]
    except Exception:
        return None
    return None
