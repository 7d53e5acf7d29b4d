"""What a finished fit leaves in MLflow: metrics, per-label tables and plots on the run, the
models-from-code pyfunc, and the registry version (alias challenger; champion when first)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task

from labelwise.pipeline.config import Config
from labelwise.pipeline.records import FitSummary, RegisteredVersion, Snapshot

if TYPE_CHECKING:
    from mlflow import MlflowClient
from labelwise.tasks.descriptions import (
    champion_metrics,
    headline_metrics,
    run_description,
    version_description,
)
from labelwise.tasks.registry import (
    CHALLENGER,
    CHAMPION,
    lineage_tags,
    source_tags,
)
from labelwise.tasks.tracking import client, log_metrics, tracking_uri


@task(name="log-results", retries=2, retry_delay_seconds=2)
def log_results(
    cfg: Config,
    run_id: str,
    fit: FitSummary,
    test_metrics: dict[str, float],
    report_dir: str,
    info: Snapshot,
) -> None:
    """Batched metrics (valid/…, test/…, per label), the report folder and training facts."""
    import polars as pl

    c = client(cfg)
    # the run page lists metrics in the order they were logged: the headline ones first
    values: dict[str, float] = {f"test/{k}": v for k, v in headline_metrics(cfg, test_metrics)}
    values |= {f"test/{k}": v for k, v in test_metrics.items()}
    values |= {f"valid/{k}": v for k, v in fit.validation_metrics.items()}
    values["fit_seconds"] = fit.fit_seconds
    values["models_resumed"] = fit.models_resumed
    for column, n_terms in fit.text_vocabulary.items():
        values[f"text/{column}/vocabulary_size"] = n_terms
    log_metrics(c, run_id, values)
    # per-label results: one sortable table per split (MLflow's table artifacts, comparable
    # across runs), not hundreds of loose metrics under mangled label names
    table = Path(report_dir) / "test_per_label.csv"
    if table.exists():
        c.log_table(run_id, pl.read_csv(table).to_pandas(), "evaluation/test_per_label.json")
    if fit.validation_per_label:
        c.log_table(
            run_id,
            pl.DataFrame(fit.validation_per_label).to_pandas(),
            "evaluation/valid_per_label.json",
        )
    c.log_artifacts(run_id, report_dir, "evaluation")
    _log_images(c, run_id, Path(report_dir))
    c.log_dict(
        run_id,
        {
            "label_weights": fit.label_weights,
            "best_iterations": fit.best_iterations,
        },
        "training/labels.json",
    )
    c.set_tag(
        run_id,
        "mlflow.note.content",
        run_description(cfg, info, test_metrics, champion_metrics(cfg)),
    )
    if fit.text_vocabulary:  # which columns were read as text, found or declared
        c.set_tag(run_id, "labelwise.text_columns", ", ".join(fit.text_vocabulary))
    if fit.label_changes:
        c.set_tag(run_id, "labelwise.label_changes", fit.label_changes[:5000])
    if fit.warnings:  # shown in the run's tags, the MLflow UI's first screen
        c.set_tag(run_id, "labelwise.warnings", " | ".join(fit.warnings)[:5000])


def _log_images(c: MlflowClient, run_id: str, report_dir: Path) -> None:
    """The plots again as MLflow *images* (by key): the compare view's charts show images of
    the same key side by side for the selected runs; plain artifacts it never compares."""
    from PIL import Image

    for png in sorted(report_dir.glob("*.png")):
        with Image.open(png) as image:
            c.log_image(run_id, image.convert("RGB"), key=png.stem, step=0)


@task(name="log-model", retries=1, retry_delay_seconds=2)
def log_model(cfg: Config, run_id: str, model_dir: str, example_path: str) -> str:
    """Log the models-from-code pyfunc (native boosters + JSON, no pickle); return its URI."""
    import warnings

    import mlflow
    from mlflow.models import infer_signature

    import labelwise
    from labelwise.engine.data import read_table
    from labelwise.pipeline.tables import load_classifier

    clf = load_classifier(model_dir)
    # the signature keeps the table's own types: MLflow refuses int64 -> float64 on input
    example = read_table(example_path, columns=clf.encoder_.features).head(5)
    from labelwise import mlflow_model

    out = mlflow_model.LabelwisePyfunc()
    out.model = clf
    example_pd = example.to_pandas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # params: top_k (0 = a probability column per label) switches the output to the k
        # most probable labels and their probabilities, for models with thousands of labels
        signature = infer_signature(example_pd, out.predict(None, example), params={"top_k": 0})
    pkg = Path(labelwise.__file__).parent
    mlflow.set_tracking_uri(tracking_uri(cfg))
    with warnings.catch_warnings(), mlflow.start_run(run_id=run_id):
        # MLflow nags about type hints on predict; the signature below is the contract
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(pkg / "mlflow_model.py"),
            artifacts={"model_dir": model_dir},
            code_paths=[str(pkg)],
            pip_requirements=_requirements(),
            signature=signature,
            input_example=example_pd,
        )
    return info.model_uri


def _requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = [
        "numpy",
        "polars",
        "lightgbm",
        "scikit-learn",
        "scipy",
        "pandas",
        "pyarrow",
        "pydantic",
        "mlflow",
    ]
    out = []
    for p in pkgs:
        try:
            out.append(f"{p}=={version(p)}")
        except Exception:
            out.append(p)
    return out


@task(name="register-model", retries=2, retry_delay_seconds=2)
def register_model(
    cfg: Config,
    run_id: str,
    model_uri: str,
    test_metrics: dict[str, float],
    info: Snapshot,
) -> RegisteredVersion:
    """New version tagged with its metrics; alias ``challenger``; ``champion`` if first."""
    c = client(cfg)
    name = cfg.registered_model
    from mlflow.exceptions import MlflowException

    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description=f"labelwise multi-label model ({cfg.name})")
    headline = cfg.promotion.metric
    tags = lineage_tags(cfg, info) | source_tags(info, run=False) | {"labelwise.run_id": run_id}
    tags[f"metric.{headline}"] = f"{test_metrics.get(headline, float('nan')):.4f}"
    # a logged model's URI is models:/<model id>; a tracking server wants the id named too
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    # idempotent: a retry after a lost answer must not register the run twice
    mine = c.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    mv = (
        mine[0]
        if mine
        else c.create_model_version(
            name,
            model_uri,
            run_id=run_id,
            tags=tags,
            model_id=model_id,
            description=version_description(cfg, info, test_metrics, run_id),
        )
    )
    c.set_registered_model_alias(name, CHALLENGER, mv.version)
    first = False
    try:
        c.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        c.set_registered_model_alias(name, CHAMPION, mv.version)
        c.set_model_version_tag(
            name, mv.version, "promotion.decision", "champion: first version of this model"
        )
        first = True
    return RegisteredVersion(name=name, version=str(mv.version), champion=first)
