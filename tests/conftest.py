from __future__ import annotations

import os
import tempfile

# Embedded state of the flow tests lives in a throwaway folder, set before prefect is imported.
_STATE = tempfile.mkdtemp(prefix="labelwise-tests-")
os.environ["LABELWISE_HOME"] = _STATE
os.environ["PREFECT_HOME"] = os.path.join(_STATE, "prefect")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("PREFECT_API_URL", None)
# no warm process outlives a test's command (tests/test_warm.py turns it on where it tests it)
os.environ["LABELWISE_WARM"] = "0"

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402

from labelwise.engine.synthetic import make_multilabel_table  # noqa: E402


@pytest.fixture(scope="session")
def table() -> pl.DataFrame:
    return make_multilabel_table(n_rows=3000, n_labels=24, seed=1)


@pytest.fixture(scope="session")
def split_table(table: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return table.head(2400), table.tail(600)


@pytest.fixture(scope="session")
def xy(table: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, list[str]]:
    labels = [c for c in table.columns if c.startswith("label_")]
    X = table.drop(["id", *labels])
    return X, table.select(labels).to_numpy(), labels


@pytest.fixture(scope="session")
def prefect_api():
    """One ephemeral Prefect API for every flow test of the session."""
    from labelwise.pipeline.environment import configure_environment

    configure_environment()
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """MLflow + Prefect servers on PostgreSQL (tests/servers.py); fails loudly without it."""
    from tests.servers import Stack, require_postgres

    require_postgres()
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        yield s.start()
    finally:
        s.stop()
