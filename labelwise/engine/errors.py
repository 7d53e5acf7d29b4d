"""labelwise's own error types: every failure a user can cause ends in one of these."""

from __future__ import annotations

from typing import Any


class LabelwiseError(Exception):
    """Base class: a problem the user can fix (bad data, bad config, bad model directory)."""


class DataError(LabelwiseError, ValueError):
    """The table is unreadable or does not fit the label / feature specification."""


class ConfigError(LabelwiseError, ValueError):
    """A configuration file or parameter value is invalid; ``param`` names the parameter when
    one is to blame (the config loader turns it into a YAML path)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelFormatError(LabelwiseError, ValueError):
    """A saved model directory is incomplete, tampered with, or of an unknown format."""


class NotFittedError(LabelwiseError, AttributeError):
    """The estimator is used before `fit`."""


class RegistryError(LabelwiseError, LookupError):
    """A registered model, version or alias does not exist (or cannot be moved)."""


class JobBusyError(LabelwiseError):
    """Another run of the same job (config and data) holds its work directory."""


class TrackingServerError(LabelwiseError, ConnectionError):
    """The MLflow tracking server could not be reached, even after the bounded retries."""


class _Reported(LabelwiseError):
    """An error that carries a JSON-able report of what failed (``report``)."""

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class ContractError(_Reported, DataError):
    """The table breaks its data contract; ``report`` holds the failed expectations."""


class DriftError(_Reported, LabelwiseError):
    """A monitored batch crossed the drift limits; ``report`` holds the full drift report."""
