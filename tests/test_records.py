"""The records that cross the layers survive what Prefect does with task inputs and results:
hashed into a cache key (the same key in another process, so a re-run finds its cache) and
pickled into a persisted result (read back equal)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from labelwise.pipeline.records import (
    BatchPrediction,
    Database,
    FitSummary,
    PromotionRecord,
    RegisteredVersion,
    Skipped,
    Snapshot,
    SplitPaths,
    TablePart,
    TrainResult,
    TrialResult,
    TuneResult,
)

PART = TablePart(
    path="/runs/x/snapshot/train.parquet",
    rows=1200,
    digest="ab" * 32,
    columns=("id", "f0", "label_00"),
    source="select * from events (database db:5432/x from $DB)",
    kind="sql",
    database=Database(server="db:5432/x", uri_env="DB"),
    window="ts in (2026-01-01, 2026-02-01]",
    as_of="2026-02-01T00:00:00+00:00",
    max_time="2026-01-31T23:00:00+00:00",
)
SNAPSHOT = Snapshot(train=PART, test=PART.moved("/runs/x/snapshot/test.parquet"))
FIT = FitSummary(
    model_dir="/runs/x/model",
    fit_seconds=1.5,
    labels=("a", "b"),
    n_train=100,
    validation_metrics={"f1_micro": 0.5},
    validation_per_label=[{"label": "a", "f1": 0.5, "support": 3}],
    label_weights={"a": 1.0, "b": 2.0},
    best_iterations={"a": 10.0, "b": 12.0},
    text_vocabulary={"body": 900},
    warnings=("w",),
)
RECORDS = [
    PART,
    SNAPSHOT,
    SplitPaths(train="/a.parquet", test="/b.parquet"),
    FIT,
    TrainResult(
        run_id="r",
        metrics={"f1_micro": 0.5},
        version=RegisteredVersion("m", "3", champion=False),
        notes=("n",),
    ),
    TrainResult(skipped=Skipped("identical", "m", "2", "r", "why")),
    PromotionRecord(promote=True, champion="3", reasons=("gain",), verdict="v", run_id="r"),
    TrialResult({"f1_micro": 0.5}, {"thresholds.beta": 1.0}, (0.1, 0.2), 2, 3.0, 40.0),
    TuneResult("r", "study", 3, 0.5, 8, "/c.tuned.yaml", {"f1_micro": 0.5}),
    BatchPrediction(rows=10, output="/o.parquet", model="m v3", unseen_categories={"c": 1}),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_persisted_result_reads_back_equal(record):
    from prefect.serializers import PickleSerializer

    serializer = PickleSerializer()
    assert serializer.loads(serializer.dumps(record)) == record


def test_a_cache_key_of_a_snapshot_is_the_same_in_another_process():
    """``split_data`` is cached on its inputs, a Snapshot among them: a re-run (another
    process) must compute the same key to reuse the split; another snapshot, another key."""
    from prefect.utilities.hashing import hash_objects

    code = (
        "from prefect.utilities.hashing import hash_objects;"
        "from tests.test_records import SNAPSHOT;"
        "print(hash_objects(SNAPSHOT))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    here = hash_objects(SNAPSHOT)
    assert here is not None and here == there
    other = Snapshot(train=PART.moved("/elsewhere.parquet"))
    assert hash_objects(other) != here


def test_records_are_frozen():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        PART.rows = 3  # type: ignore[misc]
    assert PART.moved("/p").path == "/p" and PART.path != "/p"
    assert FIT.warned("x").warnings == ("w", "x") and FIT.warnings == ("w",)
