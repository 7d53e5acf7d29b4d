"""Reading fresh data: a 1,000,000-row partitioned dataset and a 1,000,000-row PostgreSQL table.

    python -m benchmarks.sources [--rows 1000000] [--days 100] [--json OUT]

Generates (at run time, in a temporary folder; nothing is committed) ``--days`` hive partitions
``events/dt=YYYY-MM-DD/part-0.parquet`` of synthetic labelled rows (labelwise.synthetic, 24
labels) and loads the same rows into a fresh PostgreSQL database on 127.0.0.1:5432
(LABELWISE_TEST_POSTGRES overrides). Each case runs in its own process, so its peak RSS is its
own; the table gives wall time and peak RSS of:

- labelwise's snapshot of the whole folder (scan, write parquet, digest), and of a 30-day
  window of it (the window filter pushed into the scan);
- the SQL query read by the two Arrow-native drivers polars supports, ADBC and connectorx,
  side by side (the table that chose ADBC), and labelwise's windowed SQL snapshot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ADMIN = os.environ.get("LABELWISE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def generate(root: Path, rows: int, days: int) -> Path:
    """``days`` partitions ending the day before AS_OF, each with a ``ts`` column too."""
    import polars as pl

    from labelwise.engine.synthetic import make_multilabel_table

    df = make_multilabel_table(n_rows=rows, n_labels=24, seed=0)
    per_day = rows // days
    first = AS_OF - timedelta(days=days)
    for d in range(days):
        day = first + timedelta(days=d)
        part = df.slice(d * per_day, per_day).with_columns(
            ts=pl.lit(day) + pl.duration(seconds=pl.int_range(0, pl.len()) * 86_000 // per_day)
        )
        folder = root / "events" / f"dt={day.date()}"
        folder.mkdir(parents=True)
        part.write_parquet(folder / "part-0.parquet")
    return root / "events"


def load_postgres(events: Path) -> str:
    """A fresh database holding the folder's rows as table ``events``; its URI."""
    import polars as pl
    import psycopg

    name = "labelwise_bench_sources"
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    uri = ADMIN.rsplit("/", 1)[0] + "/" + name
    pl.scan_parquet(events, hive_partitioning=True).collect().write_database(
        "events", uri, engine="adbc"
    )
    return uri


def case(kind: str, source: str, out: str) -> dict[str, float]:
    """One measurement, in this (fresh) process."""
    import polars as pl

    from labelwise.pipeline.snapshot import materialise
    from labelwise.pipeline.sources import Window

    class Sql:
        uri_env = "LABELWISE_BENCH_DB"
        query = "SELECT * FROM events"

    t0 = time.perf_counter()
    month = Window("ts", AS_OF, timedelta(days=30))
    if kind == "folder":
        rows = materialise(source, Path(out), "data.train").rows
    elif kind == "folder-window":
        rows = materialise(source, Path(out), "data.train", month, "ts").rows
    elif kind in ("adbc", "connectorx"):
        rows = pl.read_database_uri("SELECT * FROM events", source, engine=kind).height
    else:  # sql-window: labelwise's SQL snapshot of the last 30 days
        os.environ["LABELWISE_BENCH_DB"] = source
        rows = materialise(Sql(), Path(out), "data.sql", month, "ts").rows
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_rss_mib": peak_rss_mib(), "rows": rows}


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would include the parent's
    peak, inherited through fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def measure(kind: str, source: str, tmp: Path) -> dict[str, float]:
    out = tmp / f"snap-{kind}.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.sources", "--case", kind, source, str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument("--json")
    ap.add_argument("--case", nargs=3)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(case(*args.case)))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        events = generate(tmp, args.rows, args.days)
        uri = load_postgres(events)
        plan = [
            ("folder", str(events)),
            ("folder-window", str(events)),
            ("adbc", uri),
            ("connectorx", uri),
            ("sql-window", uri),
        ]
        for kind, source in plan:
            results[kind] = measure(kind, source, tmp)
            r = results[kind]
            print(
                f"{kind:14s} {r['rows']:>9,} rows  {r['seconds']:6.2f} s  "
                f"peak RSS {r['peak_rss_mib']:6.0f} MiB",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
