"""labelwise's own error types: every failure a user can cause ends in one of these."""

from __future__ import annotations


class LabelwiseError(Exception):
    """Base class: a problem the user can fix (bad data, bad config, bad model directory)."""


class DataError(LabelwiseError, ValueError):
    """The table is unreadable or does not fit the label / feature specification."""


class ConfigError(LabelwiseError, ValueError):
    """A configuration file or value is invalid."""


class ModelFormatError(LabelwiseError, ValueError):
    """A saved model directory is incomplete, tampered with, or of an unknown format."""


class NotFittedError(LabelwiseError, AttributeError):
    """The estimator is used before `fit`."""


class ContractError(DataError):
    """The table breaks its data contract; ``report`` holds the failed expectations."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class RegistryError(LabelwiseError, LookupError):
    """A registered model, version or alias does not exist (or cannot be moved)."""


class DriftError(LabelwiseError):
    """A monitored batch crossed the drift limits; ``report`` holds the full drift report."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class TrackingServerError(LabelwiseError, ConnectionError):
    """The MLflow tracking server could not be reached, even after the bounded retries."""
