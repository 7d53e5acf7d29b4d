"""MLflow models-from-code entry point: the labelwise pyfunc.

MLflow loads this file as code (``python_model=<this file>``), never unpickles anything: the model
is the artifact ``model_dir`` (JSON manifest + LightGBM text boosters) read by
:meth:`LabelwiseClassifier.load`. ``predict`` takes a table of feature columns and returns one
probability column per label (``p:<label>``) and the predicted label set (``labels``, a list).
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class LabelwisePyfunc(PythonModel):
    # the logged signature is the input contract; MLflow's predict()-type-hint validation
    # (and its warning on every load that there are no hints) is not used
    _skip_type_hint_validation = True

    def load_context(self, context):
        from labelwise.model import LabelwiseClassifier

        self.model = LabelwiseClassifier.load(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        import pandas as pd
        import polars as pl

        from labelwise.errors import DataError

        if isinstance(model_input, pd.DataFrame):
            frame = pl.from_pandas(model_input)
        elif isinstance(model_input, pl.DataFrame):
            frame = model_input
        else:
            frame = pl.DataFrame(model_input)
        missing = [f for f in self.model.encoder_.features if f not in frame.columns]
        if missing:
            raise DataError(f"input is missing feature column(s) {missing}")
        proba = self.model.predict_proba(frame.select(self.model.encoder_.features))
        from labelwise.thresholds import (
            LABELS_COLUMN,
            PROBA_PREFIX,
            apply_thresholds,
            label_sets,
        )

        pred = apply_thresholds(proba, self.model.thresholds_, self.model.at_least_one)
        out = pd.DataFrame(proba, columns=[PROBA_PREFIX + lab for lab in self.model.labels_])
        out[LABELS_COLUMN] = label_sets(pred, self.model.labels_)
        return out


mlflow.models.set_model(LabelwisePyfunc())
