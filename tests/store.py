"""Reading a test's MLflow store (the real one the flows wrote)."""

from __future__ import annotations

from tests.helpers import client


def runs(uri: str, name: str) -> list:
    """The runs of experiment ``name`` (none when it does not exist)."""
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    return [] if exp is None else c.search_runs([exp.experiment_id])
