"""labelwise: multi-label classification with per-label LightGBM models, per-label thresholds,
and a tracked, validated, promoted production path (MLflow + Prefect + great-expectations).

Layers, each importing only those below it (checked by import-linter in CI)::

    labelwise.cli           the command line (imports flows lazily, inside its commands)
    labelwise.flows         Prefect flows (the project's flows/ folder)
    labelwise.tasks         Prefect tasks: effects around the engine (the project's tasks/ folder)
    labelwise.pipeline      adapters: YAML config, environment, a config's tables
    labelwise.mlflow_model  the MLflow models-from-code file (loaded by MLflow; engine only)
    labelwise.engine        the pure engine: no prefect, mlflow or great_expectations
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labelwise.engine.errors import (
    ConfigError,
    DataError,
    LabelwiseError,
    ModelFormatError,
    NotFittedError,
)

if TYPE_CHECKING:
    from labelwise.engine.classifier import LabelwiseClassifier

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "DataError",
    "LabelwiseClassifier",
    "LabelwiseError",
    "ModelFormatError",
    "NotFittedError",
    "__version__",
]


def __getattr__(name: str) -> Any:  # lazy: `import labelwise` stays cheap for the CLI
    if name == "LabelwiseClassifier":
        from labelwise.engine.classifier import LabelwiseClassifier

        return LabelwiseClassifier
    raise AttributeError(name)
