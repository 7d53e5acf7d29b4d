"""Example data for the configs that read a growing source: ``configs/events-partitioned.yaml``
reads ``data/events/dt=YYYY-MM-DD/part-0.parquet``, one folder a day (hive partitions).

``python -m labelwise.pipeline.examples data/events`` writes the 30 days before today (UTC);
``--add-today`` then adds today's folder, as a day's new data would arrive. Existing days are
left as they are, so the command only ever adds partitions.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from labelwise.engine.synthetic import make_multilabel_table


def write_day(root: Path, day: date, rows: int = 300) -> Path | None:
    """One day's rows in ``root/dt=<day>/part-0.parquet`` (a seed per day: reruns write the
    same rows); None when that day exists."""
    folder = root / f"dt={day.isoformat()}"
    if folder.exists():
        return None
    df = make_multilabel_table(n_rows=rows, n_labels=6, seed=day.toordinal())
    folder.mkdir(parents=True)
    path = folder / "part-0.parquet"
    df.write_parquet(path)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("root", type=Path, help="the folder to write (data/events)")
    ap.add_argument("--days", type=int, default=30, help="days before today to write")
    ap.add_argument("--rows", type=int, default=300, help="rows a day")
    ap.add_argument("--add-today", action="store_true", help="write today's folder too")
    args = ap.parse_args(argv)
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=d) for d in range(args.days, 0, -1)]
    written = [
        p
        for d in [*days, *([today] if args.add_today else [])]
        if (p := write_day(args.root, d, args.rows))
    ]
    print(
        f"{args.root}: {len(written)} new day folder(s); {len(list(args.root.glob('dt=*')))} in all"
    )


if __name__ == "__main__":
    main()
