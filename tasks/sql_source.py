"""An MLflow dataset source for rows read by a SQL query: the run's Datasets panel shows the
query and the database server (host, port, database; never the user or password) instead of a
meaningless local path."""

from __future__ import annotations

from typing import Any

from mlflow.data.dataset_source import DatasetSource


class SqlDatasetSource(DatasetSource):
    def __init__(self, query: str, server: str, uri_env: str) -> None:
        self.query, self.server, self.uri_env = query, server, uri_env

    @staticmethod
    def _get_source_type() -> str:
        return "sql"

    def load(self) -> Any:
        """Re-running the query would not give the run's rows back (the table has moved on):
        the rows are the run's ``snapshot/`` artifacts."""
        raise NotImplementedError("load the run's snapshot/ artifacts instead")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> SqlDatasetSource:
        raise NotImplementedError

    def to_dict(self) -> dict[str, str]:
        return {"query": self.query, "server": self.server, "uri_env": self.uri_env}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> SqlDatasetSource:
        return cls(**source_dict)
