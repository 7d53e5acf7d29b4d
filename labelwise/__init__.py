"""labelwise: multi-label classification with per-label LightGBM models, per-label thresholds,
and a tracked, validated, promoted production path (MLflow + Prefect + great-expectations).

The engine (this package) imports no orchestration or tracking library; see ``tasks``/``flows``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from labelwise.errors import (
    ConfigError,
    DataError,
    LabelwiseError,
    ModelFormatError,
    NotFittedError,
)

__all__ = ["ConfigError", "DataError", "LabelwiseClassifier", "LabelwiseError",
           "ModelFormatError", "NotFittedError", "__version__"]


def __getattr__(name: str):  # lazy: `import labelwise` stays cheap for the CLI
    if name == "LabelwiseClassifier":
        from labelwise.model import LabelwiseClassifier

        return LabelwiseClassifier
    raise AttributeError(name)
