"""MLflow models-from-code entry point: the labelwise pyfunc.

MLflow loads this file as code (``python_model=<this file>``), never unpickles anything: the model
is the artifact ``model_dir`` (JSON manifest + LightGBM text boosters) read by
:meth:`LabelwiseClassifier.load`. ``predict`` takes a table of feature columns and returns one
probability column per label (``p:<label>``) and the predicted label set (``labels``, a list);
with the param ``top_k`` > 0, the ``top_labels`` and ``top_scores`` of the k most probable
labels instead of the probability columns.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc.model import PythonModel


class LabelwisePyfunc(PythonModel):
    # the logged signature is the input contract; MLflow's predict()-type-hint validation
    # (and its warning on every load that there are no hints) is not used
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        from labelwise.engine.classifier import LabelwiseClassifier

        # the merged forests now, so the first request is as fast as the next
        self.model = LabelwiseClassifier.load(context.artifacts["model_dir"]).warm_up()

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd
        import polars as pl

        from labelwise.engine.data import TRAINED_WITH, require_columns
        from labelwise.engine.scored import (
            LABELS_COLUMN,
            TOP_LABELS,
            TOP_SCORES,
            label_sets,
            proba_columns,
            top_k,
        )

        # a pandas frame goes to the engine as it is: it reads numeric features in one
        # conversion (a per-column one cost most of a served row's time)
        frame = (
            model_input
            if isinstance(model_input, pd.DataFrame | pl.DataFrame)
            else pl.DataFrame(model_input)
        )
        clf = self.model
        require_columns(list(frame.columns), clf.encoder_.features, "input", why=TRAINED_WITH)
        proba = clf.predict_proba(frame)
        k = int((params or {}).get("top_k") or 0)
        if k > 0:  # the k most probable labels, not a column per label
            names, scores = top_k(proba, clf.labels_, k)
            out = pd.DataFrame({TOP_LABELS: names, TOP_SCORES: scores})
        else:
            out = pd.DataFrame(proba, columns=proba_columns(clf.labels_))
        out[LABELS_COLUMN] = label_sets(clf.predict_from_proba(proba), clf.labels_)
        return out


mlflow.models.set_model(LabelwisePyfunc())
