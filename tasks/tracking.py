"""MLflow tracking and registry effects. Everything goes through ``MlflowClient`` with explicit run
ids (the fluent active run is thread-local and Prefect runs tasks on worker threads); only the
pyfunc logging needs the fluent API, inside one task's own thread."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import task

from labelwise.pipeline.config import Config
from labelwise.pipeline.environment import pid_alive, redact

if TYPE_CHECKING:
    from mlflow import MlflowClient
from labelwise.tasks.registry import (
    CHALLENGER,
    CHAMPION,
    lineage_tags,
    mlflow_client,
    source_tags,
    tracking_uri_of,
)


def tracking_uri(cfg: Config) -> str:
    return tracking_uri_of(cfg)


def client(cfg: Config) -> MlflowClient:
    return mlflow_client(tracking_uri(cfg))


def log_metrics(
    c: Any,
    run_id: str,
    values: dict[str, float | int | None],
    step: int = 0,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Batched metrics (1,000 a call; a single call each would cost ~20 ms) under MLflow-safe
    keys, at this time and ``step``; NaN, inf and None are left out. ``params`` and ``tags``
    travel with the first batch."""
    import math
    import time

    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metrics = [
        Metric(metric_key(k), float(v), now, step)
        for k, v in values.items()
        if v is not None and math.isfinite(float(v))
    ]
    extra = {
        "params": [Param(k, v) for k, v in (params or {}).items()],
        "tags": [RunTag(k, v) for k, v in (tags or {}).items()],
    }
    for i in range(0, max(len(metrics), 1), 1000):
        c.log_batch(run_id, metrics=metrics[i : i + 1000], **(extra if i == 0 else {}))


def experiment_id(cfg: Config, name: str | None = None, view: str | None = None) -> str:
    """The experiment ``name`` (default: the config's), created when missing, opened by the
    UI in the model-training mode with ``view`` (default: ``runs_view``) as its run table."""
    from labelwise.pipeline.environment import artifact_root

    c = client(cfg)
    name = name or cfg.experiment
    exp = c.get_experiment_by_name(name)
    if exp is None:
        # embedded store: artifacts next to the SQLite file, not in the caller's directory
        location = f"{artifact_root()}/{name}" if tracking_uri(cfg).startswith("sqlite") else None
        exp_id = c.create_experiment(name, artifact_location=location)
        exp = c.get_experiment(exp_id)
    wanted = {EXPERIMENT_KIND: MODEL_TRAINING, f"{SHARED_VIEW}{VIEW_KEY}": view or runs_view(cfg)}
    for key, value in wanted.items():
        if exp.tags.get(key) != value:
            c.set_experiment_tag(exp.experiment_id, key, value)
    return str(exp.experiment_id)


# the MLflow 3 UI opens an experiment in its model-training view (not the GenAI one) by this tag
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# a run-table view the UI loads from the experiment's tags, for the link `runs_view_url` gives
SHARED_VIEW, VIEW_KEY = "mlflow.sharedViewState.", "labelwise"


def table_view(columns: list[str], order_by: str, ascending: bool = False) -> str:
    """A run-table view (the UI's shared view state): these columns, sorted by ``order_by``."""
    import json

    return json.dumps({"selectedColumns": columns, "orderByKey": order_by, "orderByAsc": ascending})


def runs_view(cfg: Config) -> str:
    """The run table as a person comparing runs wants it first: the headline test metrics as
    columns (the promotion metric first), sorted best first."""
    metrics = [cfg.promotion.metric, *(m for m in HEADLINE if m != cfg.promotion.metric)]
    columns = [f"metrics.`test/{m}`" for m in metrics] + [
        f"metrics.`{TUNE_OBJECTIVE}`",  # a tune's trials (held-out) and its parent (best)
        "metrics.`fit_seconds`",
        "attributes.`Models`",
    ]
    order = f"metrics.`test/{cfg.promotion.metric}`"
    return table_view(columns, order, not cfg.promotion.higher_is_better)


TUNE_OBJECTIVE = "tune/objective"


def monitoring_view() -> str:
    """The monitoring experiment's run table: alert counts and the worst drift of each batch
    as columns, the newest batch first."""
    metrics = ("label_alerts", "feature_alerts", "max_score_psi", "max_feature_psi", "rows")
    columns = [f"metrics.`{m}`" for m in metrics] + ["tags.`labelwise.drift`"]
    return table_view(columns, "attributes.start_time")


def promotion_view(cfg: Config) -> str:
    """The promotion experiment's run table: both versions' promotion metric and the
    decision, the newest first."""
    m = cfg.promotion.metric
    columns = [f"metrics.`challenger/{m}`", f"metrics.`champion/{m}`", "tags.`promotion.decision`"]
    return table_view(columns, "attributes.start_time")


def runs_view_url(ui: str, experiment_id: str) -> str:
    """The MLflow UI link that opens an experiment's runs in labelwise's view."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"


# settings that change where and when a job runs, never its model: tags, not params
RUNTIME_SECTIONS = (
    "schedule",
    "monitoring",
    "task_runner",
    "dask_address",
    "dask_workers",
    "n_jobs",
    "tracking",
)


# the sections whose settings make one model differ from another (a run's name shows them)
MODEL_SECTIONS = ("model", "weighting", "thresholds", "split", "text")
RUN_NAME_CHARS = 48


def run_name(cfg: Config) -> str:
    """What a run is, at a glance in the run table: the model settings it changes from the
    defaults (``strategy=chain scheme=inverse_sqrt``; ``defaults`` for none), short enough
    for the column, then the first characters of the config digest (runs of one config
    share it). Two runs of a job that differ in a setting differ in name."""
    changed = " ".join(f"{k}={v}" for k, v in changed_settings(cfg).items()) or "defaults"
    if len(changed) > RUN_NAME_CHARS:
        changed = changed[: RUN_NAME_CHARS - 1] + "…"
    return f"{changed} {cfg.digest()[:6]}"


def changed_settings(cfg: Config) -> dict[str, str]:
    """The model settings of ``cfg`` that differ from the defaults, by their last key
    (``params.n_estimators`` as ``n_estimators``), values as short text."""
    from labelwise.pipeline.config import Config as _Config

    base = _Config.model_validate({"name": cfg.name, "data": cfg.data.model_dump(mode="json")})
    ours, theirs = cfg.model_dump(mode="json"), base.model_dump(mode="json")
    out: dict[str, str] = {}
    first = ("strategy", "preset", "scheme")  # the choices a user compares runs by
    for section in MODEL_SECTIONS:
        a, b = _flat(ours[section]), _flat(theirs[section])
        for key in sorted(set(a) | set(b), key=lambda k: (k not in first, k)):
            if a.get(key, _UNSET) != b.get(key, _UNSET):  # set to None differs from unset
                value = a.get(key)
                text = f"{value:.4g}" if isinstance(value, float) else str(value)
                out[key.rsplit(".", 1)[-1]] = text[:20]
    return out


_UNSET = object()


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        out |= _flat(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or "unknown"
        )
    except Exception:
        return "unknown"


def label_key(name: str) -> str:
    """A label's (or feature's) part of a metric key, one-to-one: MLflow allows only
    alphanumerics, ``_ - . /`` and spaces, so a name that must change (``a:b``, ``a?b``, a
    ``..``, a ``/``, one too long) gets a digest of the original and never shares its key with
    another label (``a_b`` stays ``a_b``; ``a:b`` becomes ``a_b--<digest>``)."""
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9_\-. ]", "_", name).replace("..", "__")
    if safe == name and 0 < len(name) <= MAX_NAME:
        return name
    return f"{safe[: MAX_NAME - 10]}--{hashlib.sha1(name.encode()).hexdigest()[:8]}"


MAX_NAME = 120  # of 250 characters MLflow allows a whole metric key


def metric_key(key: str) -> str:
    """A whole metric key made safe for MLflow (its label parts come from :func:`label_key`)."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", key)[:250]


@task(name="start-run", retries=2, retry_delay_seconds=2)
def start_run(cfg: Config, info: dict[str, Any], name: str | None = None) -> str:
    """Create the MLflow run (RUNNING), named for what it trains: the settings that change the
    model as params, where and when it runs as tags, lineage as tags."""
    import lightgbm
    import mlflow
    from mlflow.entities import Param

    from labelwise import __version__

    c = client(cfg)
    tags = {
        "labelwise.version": __version__,
        "lightgbm.version": lightgbm.__version__,
        "mlflow.version": mlflow.__version__,
        "git.commit": git_commit(),
        "config.digest": cfg.digest(),
        "config.name": cfg.name,
        "mlflow.source.name": "labelwise train",
    }
    tags |= lineage_tags(cfg, info) | source_tags(info)
    # who owns the run while it is RUNNING: a later run can tell it was abandoned
    tags.update({"labelwise.host": socket.gethostname(), "labelwise.pid": str(os.getpid())})
    flat = cfg.flat()
    runtime = {k for k in flat if k.split(".")[0] in RUNTIME_SECTIONS}
    tags |= {f"labelwise.runtime.{k}": flat[k][:5000] for k in runtime if flat[k] != "None"}
    exp = experiment_id(cfg)
    run = c.create_run(exp, run_name=name or run_name(cfg), tags=tags)
    params = [Param(k[:250], v[:6000]) for k, v in flat.items() if k not in runtime]
    try:
        for i in range(0, len(params), 100):
            c.log_batch(run.info.run_id, params=params[i : i + 100])
    except BaseException as exc:  # a retry makes a new run: this one must not stay RUNNING
        finish_run(cfg, run.info.run_id, "FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    return run.info.run_id


def repair_abandoned_runs(cfg: Config) -> list[str]:
    """Mark FAILED the RUNNING runs of this config whose process (on this host) is gone — a
    run killed with -9, or one that could not reach the server to say it failed — and delete
    any version they registered before they died; returns what was repaired, in words."""
    c = client(cfg)
    exp = c.get_experiment_by_name(cfg.experiment)
    if exp is None:
        return []
    host = socket.gethostname()
    runs = c.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`config.name` = '{cfg.name}'",
        max_results=200,
    )
    repaired = []
    for r in runs:
        tags = r.data.tags
        pid = tags.get("labelwise.pid", "")
        if tags.get("labelwise.host") != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        run_id = r.info.run_id
        orphans = c.search_model_versions(f"name='{cfg.registered_model}' and run_id='{run_id}'")
        for mv in orphans:
            c.delete_model_version(mv.name, mv.version)
        why = f"abandoned: process {pid} on {host} ended without finishing the run"
        c.set_tag(run_id, "labelwise.error", why)
        c.set_terminated(run_id, "FAILED")
        gone = f"; deleted its version(s) {[mv.version for mv in orphans]}" if orphans else ""
        repaired.append(f"repaired run {run_id} ({why}): marked FAILED{gone}")
    return repaired


def finish_run(
    cfg: Config,
    run_id: str,
    status: str,
    error: str | None = None,
    report: dict[str, Any] | None = None,
    patience_s: float = 60.0,
) -> bool:
    """End the run (with the error and a failed contract's report when it failed). A flow that
    failed because the server went away keeps trying for ``patience_s`` so the run does not
    stay RUNNING; returns False when the server never came back (the next run of this config
    on this host marks it FAILED, see :func:`repair_abandoned_runs`)."""
    import time

    delay, deadline = 1.0, time.monotonic() + patience_s
    while True:
        try:
            c = client(cfg)
            if error:
                c.set_tag(run_id, "labelwise.error", redact(error)[:5000])
            if report:
                c.log_dict(run_id, report, "contract/failed.json")
            if status == "FAILED":  # the registry never keeps a failed run's model
                for mv in c.search_model_versions(
                    f"name='{cfg.registered_model}' and run_id='{run_id}'"
                ):
                    c.delete_model_version(mv.name, mv.version)
            c.set_terminated(run_id, status)
            return True
        except Exception:
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def fail_run(cfg: Config, run_id: str | None, exc: BaseException) -> Exception | None:
    """Mark the run FAILED after ``exc`` (its error and a failed contract's report kept on it);
    when ``exc`` says the tracking server stopped answering, the TrackingServerError to raise
    instead (naming the server without its credentials), else None."""
    marked = run_id is not None and finish_run(
        cfg,
        run_id,
        "FAILED",
        error=f"{type(exc).__name__}: {exc}",
        report=getattr(exc, "report", None),
    )
    text = f"{type(exc).__name__}: {exc}"
    lost = (
        r"Max retries exceeded|Connection refused|ConnectionError|"
        r"Failed to establish a new connection|Read timed out"
    )
    if not re.search(lost, text):
        return None
    from labelwise.engine.errors import TrackingServerError

    server = re.sub(r"//[^/@]*@", "//", tracking_uri(cfg))
    state = (
        "the run is marked FAILED and registered nothing"
        if marked
        else "the next run of this config marks a run left RUNNING as FAILED"
    )
    return TrackingServerError(
        f"the MLflow tracking server {server} stopped answering (run {run_id}), after the "
        f"bounded retries; {state}. Check the server, then run the same command again: the "
        "finished per-label models are reused"
    )


@task(name="log-contract", retries=2, retry_delay_seconds=2)
def log_contract(cfg: Config, run_id: str, report: dict[str, Any], label: str) -> None:
    client(cfg).log_dict(run_id, report, f"contract/{label}.json")


@task(name="log-dataset", retries=2, retry_delay_seconds=2)
def log_datasets(cfg: Config, run_id: str, paths: dict[str, str], info: dict[str, Any]) -> None:
    """``mlflow.log_input`` lineage: one dataset per part, named by its real source (path, URI
    or query) and the snapshot's digest, tagged with the window and as-of time; the snapshot
    files themselves are logged as artifacts (``snapshot/``), so ``labelwise train --snapshot
    <run id>`` can retrain on exactly these rows after the source has changed."""
    from mlflow.entities import DatasetInput, InputTag

    c = client(cfg)
    inputs = []
    for part, path in paths.items():
        entry = info.get(part) or info["train"]
        tags = [InputTag("mlflow.data.context", part)]
        tags += [
            InputTag(f"labelwise.{k}", str(entry[k]))
            for k in ("kind", "window", "as_of", "rows")
            if entry.get(k)
        ]
        ds = _dataset(cfg, part, path, entry)
        inputs.append(DatasetInput(ds._to_mlflow_entity(), tags=tags))
    c.log_inputs(run_id, datasets=inputs)
    for entry in info.values():
        c.log_artifact(run_id, entry["path"], "snapshot")


def _dataset(cfg: Config, part: str, path: str, entry: dict[str, Any]) -> Any:
    """An MLflow dataset of a table's first 1,000 rows (lineage needs the schema and a
    profile, not the whole table), its source the one the rows were read from."""
    import mlflow
    import polars as pl

    from labelwise.engine.data import scan_table

    df = scan_table(path).head(1000).collect()
    sample = df.with_columns(
        [pl.col(c).cast(pl.Int64) for c, t in df.schema.items() if t.is_integer()]
        + [pl.col(c).cast(pl.String) for c, t in df.schema.items() if t.is_temporal()]
    )
    source: Any = entry["source"]
    if entry["kind"] == "sql":
        from labelwise.tasks.sql_source import SqlDatasetSource

        source = SqlDatasetSource(query=cfg.data.sql.query if cfg.data.sql else "", **entry["db"])
    # a split part is the source's rows too, named by the part it is
    return mlflow.data.from_polars(
        sample, source=source, name=f"{cfg.name}-{part}", digest=entry["digest"][:16]
    )


@task(name="log-results", retries=2, retry_delay_seconds=2)
def log_results(
    cfg: Config,
    run_id: str,
    train_info: dict[str, Any],
    test_metrics: dict[str, float],
    report_dir: str,
    info: dict[str, Any],
) -> None:
    """Batched metrics (valid/…, test/…, per label), the report folder and training facts."""
    import polars as pl

    c = client(cfg)
    # the run page lists metrics in the order they were logged: the headline ones first
    values: dict[str, float] = {f"test/{k}": v for k, v in headline_metrics(cfg, test_metrics)}
    values |= {f"test/{k}": v for k, v in test_metrics.items()}
    values |= {f"valid/{k}": v for k, v in train_info["validation_metrics"].items()}
    values["fit_seconds"] = train_info["fit_seconds"]
    values["models_resumed"] = train_info.get("models_resumed", 0)
    for column, n_terms in train_info.get("text_vocabulary", {}).items():
        values[f"text/{column}/vocabulary_size"] = n_terms
    log_metrics(c, run_id, values)
    # per-label results: one sortable table per split (MLflow's table artifacts, comparable
    # across runs), not hundreds of loose metrics under mangled label names
    table = Path(report_dir) / "test_per_label.csv"
    if table.exists():
        c.log_table(run_id, pl.read_csv(table).to_pandas(), "evaluation/test_per_label.json")
    if train_info.get("validation_per_label"):
        c.log_table(
            run_id,
            pl.DataFrame(train_info["validation_per_label"]).to_pandas(),
            "evaluation/valid_per_label.json",
        )
    c.log_artifacts(run_id, report_dir, "evaluation")
    _log_images(c, run_id, Path(report_dir))
    c.log_dict(
        run_id,
        {
            "label_weights": train_info["label_weights"],
            "best_iterations": train_info["best_iterations"],
        },
        "training/labels.json",
    )
    c.set_tag(
        run_id,
        "mlflow.note.content",
        run_description(cfg, info, test_metrics, champion_metrics(cfg)),
    )
    if train_info.get("text_vocabulary"):  # which columns were read as text, found or declared
        c.set_tag(run_id, "labelwise.text_columns", ", ".join(train_info["text_vocabulary"]))
    if train_info.get("label_changes"):
        c.set_tag(run_id, "labelwise.label_changes", train_info["label_changes"][:5000])
    if train_info.get("warnings"):  # shown in the run's tags, the MLflow UI's first screen
        c.set_tag(run_id, "labelwise.warnings", " | ".join(train_info["warnings"])[:5000])


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


HEADLINE = ("f1_macro", "f1_micro", "f1_samples", "hamming_loss", "subset_accuracy")


def headline_metrics(cfg: Config, metrics: dict[str, float]) -> list[tuple[str, float]]:
    """The metrics a person compares first: the promotion metric, then the usual ones."""
    names = [cfg.promotion.metric, *(m for m in HEADLINE if m != cfg.promotion.metric)]
    return [(m, metrics[m]) for m in names if m in metrics]


def champion_metrics(cfg: Config) -> tuple[str, dict[str, float]] | None:
    """(version, test metrics) of the current champion, to compare a new run with."""
    from mlflow.exceptions import MlflowException

    c = client(cfg)
    try:
        mv = c.get_model_version_by_alias(cfg.registered_model, CHAMPION)
        run = c.get_run(mv.run_id)
    except MlflowException:
        return None
    prefix = "test/"
    metrics = {k[len(prefix) :]: v for k, v in run.data.metrics.items() if k.startswith(prefix)}
    return str(mv.version), metrics


def label_change_note(cfg: Config, labels: list[str]) -> str | None:
    """Which labels a new model gained and lost against the current champion (read from the
    champion run's ``training/labels.json``), as a warning; None when they are the same or
    there is no champion to compare with."""
    import json
    import tempfile

    from mlflow.exceptions import MlflowException

    from labelwise.engine.promotion import label_changes

    c = client(cfg)
    try:
        mv = c.get_model_version_by_alias(cfg.registered_model, CHAMPION)
        with tempfile.TemporaryDirectory() as tmp:
            path = c.download_artifacts(mv.run_id, "training/labels.json", tmp)
            champion = list(json.loads(Path(path).read_text())["label_weights"])
    except (MlflowException, OSError, KeyError, ValueError):
        return None
    lost, gained = label_changes(champion, labels)
    if not (lost or gained):
        return None
    return (
        f"the label set differs from the champion's ({cfg.registered_model} v{mv.version}): "
        f"lost {lost[:20] or 'none'}, gained {gained[:20] or 'none'}; promote compares the "
        "shared labels and refuses the change unless promotion.allow_label_changes is true"
    )


def run_description(
    cfg: Config,
    info: dict[str, Any],
    metrics: dict[str, float],
    champion: tuple[str, dict[str, float]] | None,
) -> str:
    """The run page's description (markdown): data, rows and labels, headline test metrics and
    their change against the current champion."""
    data = f"`{_short(info['train']['source'])}` ({info['train']['rows']} rows"
    if info["train"].get("window"):
        data += f", {info['train']['window']}"
    data += (
        f"; test `{_short(info['test']['source'])}`, {info['test']['rows']} rows)"
        if "test" in info
        else f"; test: a {cfg.split.by} split of it)"
    )
    head = "| test metric | this run |" + (
        f" champion v{champion[0]} | change |" if champion else ""
    )
    rule = "|---|---|" + ("---|---|" if champion else "")
    lines = [
        f"**{cfg.name}**: `{cfg.model.preset}` preset, `{cfg.model.strategy}`, weighting "
        f"`{cfg.weighting.scheme}`, config `{cfg.digest()[:6]}`.",
        "",
        f"Data: {data}.",
        "",
        head,
        rule,
    ]
    for m, v in headline_metrics(cfg, metrics):
        row = f"| {m} | {v:.4f} |"
        if champion and m in champion[1]:
            row += f" {champion[1][m]:.4f} | {v - champion[1][m]:+.4f} |"
        elif champion:
            row += " | |"
        lines.append(row)
    return "\n".join(lines)


def _short(source: str) -> str:
    """A source as a description shows it: a path's last two parts, a query's first line."""
    first = source.strip().splitlines()[0] if source.strip() else source
    if "://" in first or " " in first:
        return first[:120]
    return "/".join(Path(first).parts[-2:])


def version_description(
    cfg: Config, info: dict[str, Any], metrics: dict[str, float], run_id: str
) -> str:
    """What a registry version is, in markdown: what was trained on what, headline metrics."""
    rows = f"{info['train']['rows']} rows" + (
        f", tested on {info['test']['rows']}" if "test" in info else " (split for testing)"
    )
    lines = [
        f"**{cfg.name}** `{cfg.model.preset}` / `{cfg.model.strategy}`, trained on "
        f"`{_short(info['train']['source'])}` ({rows}); run `{run_id}`.",
        "",
        "| test metric | value |",
        "|---|---|",
    ]
    lines += [f"| {m} | {v:.4f} |" for m, v in headline_metrics(cfg, metrics)]
    return "\n".join(lines)


@task(name="register-model", retries=2, retry_delay_seconds=2)
def register_model(
    cfg: Config,
    run_id: str,
    model_uri: str,
    test_metrics: dict[str, float],
    info: dict[str, Any],
) -> dict[str, Any]:
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
    return {"name": name, "version": str(mv.version), "champion": first}


def fetch_snapshot(cfg: Config, run_id: str) -> dict[str, str]:
    """The snapshot files of an earlier run of this job (its ``snapshot/`` artifacts), checked
    against the digests the run recorded: ``{"train": path, "test": path}``."""
    from mlflow.exceptions import MlflowException

    from labelwise.engine.errors import ConfigError, DataError
    from labelwise.pipeline.environment import state_dir
    from labelwise.pipeline.sources import file_digest

    c = client(cfg)
    try:
        run = c.get_run(run_id)
    except MlflowException as exc:
        raise ConfigError(
            f"--snapshot {run_id}: no such run at {redact(tracking_uri(cfg))} ({exc})"
        ) from None
    experiment = c.get_experiment(run.info.experiment_id).name
    if experiment != cfg.experiment:
        raise ConfigError(
            f"--snapshot {run_id}: that run belongs to experiment {experiment!r}, not to this "
            f"job's {cfg.experiment!r}; replay a run of this job (its runs are in the MLflow "
            f"UI under {cfg.experiment!r}), or train the config of {experiment!r}"
        )
    tags = run.data.tags
    dst = state_dir() / "snapshots" / f"run-{run_id}"
    try:
        local = Path(c.download_artifacts(run_id, "snapshot", str(dst)))
    except (MlflowException, OSError) as exc:
        raise DataError(
            f"--snapshot {run_id}: the run has no snapshot/ artifacts to train on ({exc}); "
            "only runs of labelwise with data snapshots can be replayed"
        ) from None
    found: dict[str, str] = {}
    for part in ("train", "test"):
        f = local / f"{part}.parquet"
        want = tags.get(f"data.{part}.digest")
        if not f.is_file() or want is None:
            continue
        if file_digest(f) != want:
            raise DataError(f"--snapshot {run_id}: {f} does not match the run's digest {want}")
        found[part] = str(f)
    if "train" not in found:
        raise DataError(f"--snapshot {run_id}: the run's snapshot/ holds no train.parquet")
    return found
