"""The ``labelwise`` command line. Heavy libraries (prefect, mlflow, great_expectations) are
imported inside the commands, so ``labelwise --help`` answers at once."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from labelwise.engine.promotion import Evaluation
from labelwise.pipeline.records import (
    BatchPrediction,
    ContractReport,
    Deployments,
    MonitorResult,
    PromotionRecord,
    Rollback,
    TrainResult,
    TriggeredRun,
    TuneResult,
)

# plain click help: it wraps long option names and values at any width, where rich's tables
# cut them with an ellipsis at 80 columns
app = typer.Typer(
    rich_markup_mode=None,
    name="labelwise",
    no_args_is_help=True,
    add_completion=False,
    help="Multi-label classification: train, validate, promote and serve "
    "per-label LightGBM models tracked in MLflow, orchestrated by Prefect.",
)
config_app = typer.Typer(rich_markup_mode=None, help="Inspect configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
server_app = typer.Typer(
    rich_markup_mode=None,
    help="A local Prefect server that later commands share (saves ~7 s per command).",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")
worker_app = typer.Typer(
    rich_markup_mode=None,
    help="A Prefect worker that runs the deployments' flow runs (`labelwise deploy`).",
    no_args_is_help=True,
)
app.add_typer(worker_app, name="worker")
# soft wrap: a line in a log file or a pipe is never cut at 80 columns
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML config file")]
Preset = StrEnum("Preset", ["default", "fast"])  # the engine's PRESETS
Strategy = StrEnum(  # the engine's STRATEGIES
    "Strategy", ["binary_relevance", "stacking", "chain", "chain_ensemble", "label_tree", "auto"]
)
DebugOpt = Annotated[bool, typer.Option("--debug", help="show tracebacks")]


def _flag(help: str) -> Any:
    """A yes/no option with its help text."""
    return typer.Option(help=help)


AsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="end of the data window (ISO date/time, UTC unless it says otherwise); default: "
        "the flow run's scheduled start (now, from the command line)",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for machines, not tables")]


def _drift_report(report: Mapping[str, Any], as_json: bool) -> None:
    """A monitor result: JSON, or tables of the alerts and the labels whose scores moved most."""
    if as_json:
        out.print_json(json.dumps(report, default=str))
        return
    alerts = report.get("alerts", []) + report.get("feature_alerts", [])
    if alerts:
        _table(
            "drift alerts",
            [
                {"label or feature": a.get("label", a.get("feature")), "why": a["why"]}
                for a in alerts[:30]
            ],
        )
    moved = sorted(report.get("labels", []), key=lambda r: -r["score_psi"])[:5]
    # what the alerts compare: predicted prevalence against the reference's, and with the
    # batch's true labels, F1 against the held-out F1
    keys = ["label", "score_psi", "predicted_prevalence", "reference_predicted_prevalence"]
    keys += ["f1", "reference_f1"] if moved and "f1" in moved[0] else []
    _table("labels whose scores moved most", [{k: r[k] for k in keys} for r in moved])


def _table(title: str, rows: Sequence[Mapping[str, object]]) -> None:
    """Rows as a rich table on stdout (numbers to 4 digits)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for key in rows[0] if rows else []:
        table.add_column(key, justify="right" if isinstance(rows[0][key], float | int) else "left")
    for r in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()))
    out.print(table)


DataOpt = Annotated[
    Path | None,
    typer.Option("--data", "-d", help="labelled table (default: the config's test table)"),
]


def _run(fn: Any, debug: bool) -> Any:
    """Run a command body: labelwise's own errors (and a full disk) become one message and
    exit code 2 (a drift alert of the monitor: 3; anything unexpected: 1). Credentials in a
    message are never printed."""
    import errno

    from labelwise.engine.errors import DriftError, LabelwiseError

    try:
        return fn()
    except typer.Exit:  # a nested command (the demo's) already said what went wrong
        raise
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        raise typer.Exit(130) from None
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, DriftError):
            _say("[bold yellow]drift:[/]", str(exc), 3)
        if isinstance(exc, LabelwiseError):
            _say("[bold red]error:[/]", str(exc), 2)
        root = (exc.name or "").split(".")[0] if isinstance(exc, ModuleNotFoundError) else ""
        if root in PIPELINE or root == "optuna":
            extra = "tune" if root == "optuna" else "pipeline"
            _say(
                "[bold red]error:[/]",
                f"{root} is not installed: this command needs the "
                f"{extra} extra (pip install 'labelwise[{extra}]')",
                2,
            )
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            _say("[bold red]error:[/]", _disk_full(exc), 2)
        _say(
            "[bold red]error:[/]",
            f"{type(exc).__name__}: {exc}\n(run again with --debug for the traceback)",
            1,
        )


PIPELINE = {
    "prefect",
    "mlflow",
    "great_expectations",
    "matplotlib",
    "pandas",
    "pyarrow",
    "prefect_dask",
    "dask",
}


def _say(kind: str, message: str, code: int) -> None:
    from labelwise.pipeline.environment import redact

    console.print(f"{kind} {escape(redact(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code) from None


def _disk_full(exc: OSError) -> str:
    """Which path could not be written, and how much room is left where it lives."""
    import shutil

    from labelwise.pipeline.environment import state_dir

    where = Path(exc.filename or state_dir())
    probe = next((p for p in (where, *where.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free / 2**20
    return (
        f"no space left on the device writing {where} ({free:.0f} MiB free in {probe}); "
        "free some space (or set LABELWISE_HOME to a larger disk) and run again: finished "
        "per-label models are reused"
    )


def _env(debug: bool = False) -> None:
    from labelwise.pipeline.environment import configure_environment, reap_children_on_exit

    # our own error message is the user's answer; Prefect's task tracebacks only with --debug
    os.environ["PREFECT_LOGGING_LEVEL"] = "INFO" if debug else "CRITICAL"
    if not debug:  # MLflow sets its loggers' level from this when it is imported
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    configure_environment()
    from labelwise.pipeline.prefect_server import use_running_server

    use_running_server()  # `labelwise server start` ran: no ephemeral API to start
    reap_children_on_exit()
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow.*")
    # labelwise's pyfunc is validated by its signature, not by predict() type hints
    warnings.filterwarnings("ignore", message=r".*[Tt]ype hint", category=UserWarning)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    # Python warnings that Prefect routes to logging (MLflow's type-hint nag): not a job's news
    logging.getLogger("py.warnings").setLevel(logging.ERROR if not debug else logging.WARNING)
    if not debug:  # also when prefect configured its logging before (tests, notebooks)
        for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


@contextmanager
def _stages() -> Iterator[None]:
    """A progress line on the terminal that names each stage of a run (contract, split, fit
    with its count of per-label models, thresholds, evaluate, log, register)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from labelwise.tasks import progress

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[n]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tid = bar.add_task("starting (Prefect, MLflow)", total=None, n="")

        def on_stage(name: str) -> None:
            bar.update(tid, description=name, total=None, completed=0, n="")

        def on_model(done: int, planned: int, _label: str) -> None:
            what = "thresholds, saving the model" if done >= planned else "fit per-label models"
            bar.update(
                tid, description=what, total=planned, completed=done, n=f"{done}/{planned} models"
            )

        def on_say(line: str) -> None:
            bar.console.print(escape(line), highlight=False, soft_wrap=True)

        progress.STAGE_LISTENERS.append(on_stage)
        progress.LISTENERS.append(on_model)
        progress.SAY_LISTENERS.append(on_say)
        try:
            yield
        finally:
            progress.STAGE_LISTENERS.remove(on_stage)
            progress.LISTENERS.remove(on_model)
            progress.SAY_LISTENERS.remove(on_say)


def _checked_config(config: Path, overrides: dict[str, Any] | None = None) -> Any:
    """The validated config, its local tables and suite checked to exist (before Prefect)."""
    from labelwise.engine.errors import ConfigError
    from labelwise.pipeline.config import load_config

    cfg = load_config(config, overrides)
    missing = cfg.missing_files()
    if missing:
        raise ConfigError(
            f"{config}: not found (relative paths are read from "
            f"{config.resolve().parent}): " + "; ".join(missing)
        )
    return cfg


def _as_of(text: str | None, parse: Any) -> str | None:
    """--as-of checked before anything starts, as an ISO time in UTC."""
    from labelwise.engine.errors import ConfigError

    if text is None:
        return None
    try:
        return str(parse(text).isoformat())
    except ValueError:
        raise ConfigError(
            f"--as-of {text!r}: not an ISO date or time (2026-11-23 or 2026-11-23T04:00:00Z)"
        ) from None


def _overrides(preset: str | None, strategy: str | None) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if preset:
        o["model.preset"] = str(preset)
    if strategy:
        o["model.strategy"] = str(strategy)
    return o


@app.command()
def train(
    config: ConfigOpt,
    preset: Annotated[Preset | None, typer.Option(help="override model.preset")] = None,
    strategy: Annotated[Strategy | None, typer.Option(help="override model.strategy")] = None,
    no_register: Annotated[
        bool, typer.Option("--no-register", help="track the run but register no version")
    ] = False,
    as_of: AsOfOpt = None,
    snapshot: Annotated[
        str | None,
        typer.Option("--snapshot", help="MLflow run id: train on exactly the rows it read"),
    ] = None,
    debug: DebugOpt = False,
) -> TrainResult:
    """Read the source into a snapshot, validate, split, train, evaluate, track in MLflow and
    register (alias challenger)."""
    _env(debug)

    def body() -> TrainResult:
        from labelwise.pipeline.sources import parse_as_of

        _checked_config(config, _overrides(preset, strategy))  # fail fast, before Prefect
        when = _as_of(as_of, parse_as_of)
        from labelwise.flows.train import train_flow

        with _stages():
            return train_flow(
                str(config),
                overrides=_overrides(preset, strategy),
                register_version=not no_register,
                as_of=when,
                snapshot=snapshot,
            )

    res: TrainResult = _run(body, debug)
    _train_summary(res)
    return res


def _train_summary(res: TrainResult) -> None:
    """What a train run did: notes, then nothing new / identical / trained and registered."""
    for note in res.notes:
        console.print(f"[cyan]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    skipped = res.skipped
    if skipped is not None and skipped.reason == "nothing_new":
        out.print(f"[yellow]nothing new[/]: {escape(skipped.why)}", soft_wrap=True)
        return
    if skipped is not None:
        out.print(
            f"[yellow]identical[/] to {skipped.name} v{skipped.version} (run {skipped.run_id}): "
            "same config and data, nothing trained or registered",
            soft_wrap=True,
        )
        return
    m = res.metrics
    for msg in res.warnings:
        console.print(f"[yellow]warning:[/] {escape(msg)}", highlight=False)
    out.print(
        f"[green]trained[/] run {res.run_id}  test micro-F1 {m['f1_micro']:.4f}  "
        f"macro-F1 {m['f1_macro']:.4f}  samples-F1 {m['f1_samples']:.4f}  "
        f"Hamming {m['hamming_loss']:.4f}"
    )
    v = res.version
    if v is not None:
        out.print(
            f"registered [bold]{v.name}[/] v{v.version} as challenger"
            + (" and champion (first version)" if v.champion else "")
        )


@app.command()
def tune(
    config: ConfigOpt,
    budget: Annotated[
        str, typer.Option(help="wall-clock time for the search: 30s, 10m, 2h (± one trial)")
    ] = "10m",
    trials: Annotated[
        int | None, typer.Option(min=1, help="stop once the study has this many finished trials")
    ] = None,
    metric: Annotated[
        str, typer.Option(help="what trials are judged by: f1_micro_macro, f1_macro, f1_micro…")
    ] = "f1_micro_macro",
    parallel: Annotated[int, typer.Option(min=1, help="trials at once (they share the cores)")] = 1,
    register: Annotated[
        bool, typer.Option("--register", help="train the best config through `train`")
    ] = False,
    output: Annotated[
        Path | None, typer.Option(help="write the best config here (default: <config>.tuned.yaml)")
    ] = None,
    as_of: AsOfOpt = None,
    debug: DebugOpt = False,
) -> TuneResult:
    """Search the config's settings (an Optuna study, trials as MLflow child runs, judged on
    held-out rows of the training part only); write <config>.tuned.yaml next to the config and
    score the test table once, for the best config. A killed tune resumes its study."""
    _env(debug)

    def body() -> TuneResult:
        from labelwise.engine.errors import ConfigError
        from labelwise.pipeline.search_space import check_metric
        from labelwise.pipeline.sources import parse_as_of, parse_duration

        _checked_config(config)
        check_metric(metric)
        try:
            seconds = parse_duration(budget).total_seconds()
        except ValueError as exc:
            raise ConfigError(f"--budget: {str(exc).replace('e.g. 90d', 'e.g. 10m')}") from None
        when = _as_of(as_of, parse_as_of)
        from labelwise.flows.tune import tune_flow

        with _stages():
            return tune_flow(
                str(config),
                budget_seconds=seconds,
                trials=trials,
                metric=metric,
                parallel=parallel,
                register_best=register,
                as_of=when,
                output=None if output is None else str(output),
            )

    res: TuneResult = _run(body, debug)
    out.print(
        f"[green]tuned[/] {res.trials} trials (run {res.run_id}): best trial "
        f"{res.best_trial}; best config written to {res.best_config}",
        soft_wrap=True,
    )
    return res


@app.command()
def validate(config: ConfigOpt, as_of: AsOfOpt = None, debug: DebugOpt = False) -> None:
    """Check the config's tables against their data contract (no training, no tracking)."""
    _env(debug)

    def body() -> list[ContractReport]:
        import tempfile

        from labelwise.pipeline.config import load_config
        from labelwise.pipeline.parts import read_part
        from labelwise.pipeline.sources import parse_as_of
        from labelwise.tasks.contract_check import check_table, raise_for

        cfg = load_config(config)
        when = _as_of(as_of, parse_as_of)
        reports = []
        # the rows train would read (file, folder, object store or query; its window)
        with tempfile.TemporaryDirectory(prefix="labelwise-validate-") as tmp:
            for part in ("train", "test"):
                entry = read_part(cfg, part, Path(tmp) / f"{part}.parquet", when)
                if entry is not None:
                    reports.append(check_table(cfg, entry.path, part, entry.source))
                    raise_for(reports[-1])
        return reports

    reports: list[ContractReport] = _run(body, debug)
    for r in reports:
        table = r.get("table", r["suite"])
        out.print(f"[green]ok[/] {table}: {r['successful']}/{r['evaluated']} expectations")


@app.command()
def evaluate(
    model: Annotated[
        str, typer.Option("--model", "-m", help="models:/name@alias or a model directory")
    ],
    config: ConfigOpt,
    data: DataOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Score a labelled table with a model and print the multi-label metrics."""
    _env(debug)

    def body() -> tuple[Evaluation, str, str]:
        from labelwise.engine.errors import ConfigError
        from labelwise.engine.metrics import evaluate as ev
        from labelwise.engine.metrics import per_label_table
        from labelwise.pipeline.config import load_config
        from labelwise.pipeline.tables import score_table
        from labelwise.tasks.registry import load_model
        from labelwise.tasks.tracking import tracking_uri

        cfg = load_config(config)
        path = data or cfg.data.test
        if path is None:
            raise ConfigError("no evaluation table: pass --data or set data.test in the config")
        clf, what = load_model(model, tracking_uri(cfg))
        Y, S, P = score_table(cfg, clf, str(path))
        scored = Evaluation(ev(Y, P, S), per_label_table(Y, P, S, clf.labels_), tuple(clf.labels_))
        return scored, what, str(path)

    scored, what, path = _run(body, debug)
    metrics = dict(scored.metrics)
    if as_json:
        out.print_json(json.dumps(metrics))
        return
    _table(f"metrics of {what} on {path}", [{"metric": k, "value": v} for k, v in metrics.items()])
    worst = sorted((r for r in scored.per_label if r["support"]), key=lambda r: float(r["f1"]))[:5]
    _table(
        "weakest labels (F1, with support)",
        [{k: r[k] for k in ("label", "f1", "precision", "recall", "support")} for r in worst],
    )


@app.command()
def promote(
    config: ConfigOpt,
    data: DataOpt = None,
    include_rejected: Annotated[bool, _flag("also a challenger a rollback rejected")] = False,
    fail_if_refused: Annotated[bool, _flag("exit 4 when the champion stays (CI jobs)")] = False,
    debug: DebugOpt = False,
) -> None:
    """Challenger vs champion on the same data; move champion only if the gate passes."""
    _env(debug)

    def body() -> PromotionRecord:
        from labelwise.flows.promote import promote_flow
        from labelwise.pipeline.config import load_config

        load_config(config)
        return promote_flow(str(config), str(data) if data else None, include_rejected)

    res: PromotionRecord = _run(body, debug)
    colour = "green" if res.promote else "yellow"
    out.print(f"[{colour}]{res.verdict or res.reasons[0]}[/]", soft_wrap=True)
    for r in res.reasons if res.verdict else ():
        out.print(f"  - {r}", soft_wrap=True)
    if fail_if_refused and not res.promote:
        raise typer.Exit(4)


@app.command()
def rollback(config: ConfigOpt, debug: DebugOpt = False) -> None:
    """Restore the previous champion."""
    _env(debug)

    def body() -> Rollback:
        from labelwise.flows.promote import rollback_flow
        from labelwise.pipeline.config import load_config

        load_config(config)
        return rollback_flow(str(config))

    res: Rollback = _run(body, debug)
    out.print(f"champion is v{res.champion} again (was v{res.previous})")


@app.command()
def predict(
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="models:/name@alias, models:/name/<version> or a model directory"
        ),
    ],
    input: Annotated[Path, typer.Option("--input", "-i", help="table to score")],
    output: Annotated[Path, typer.Option("--output", "-o", help="parquet to write")],
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="rows scored per chunk (memory)")
    ] = 100_000,
    tracking_uri: Annotated[
        str | None,
        typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow server (default: embedded)"),
    ] = None,
    overwrite: Annotated[bool, _flag("replace an existing output (never the input)")] = False,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k", min=1, help="the k most probable labels per row, not a column per label"
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Batch-score a table: one probability column per label (or the --top-k most probable
    labels with their probabilities) plus the predicted label set."""
    _env(debug)

    def body() -> BatchPrediction:
        from labelwise.engine.data import check_output

        check_output(output, [input], overwrite)  # fail fast, before Prefect starts
        if model.startswith("models:/"):
            from labelwise.pipeline.environment import default_tracking_uri
            from labelwise.tasks.registry import resolve_version

            resolve_version(tracking_uri or default_tracking_uri(), model)
        args = (model, str(input), str(output), chunk_rows, tracking_uri, overwrite, top_k)
        if not os.environ.get("PREFECT_API_URL"):
            # no server to record a flow run on: score here, without starting Prefect's
            # ephemeral API for it (~6 s); with one (`server start`), a tracked flow run
            from labelwise.tasks.scoring import score_file

            return score_file(*args)
        from labelwise.flows.predict import predict_flow

        return predict_flow(*args)

    res: BatchPrediction = _run(body, debug)
    out.print(
        f"[green]scored[/] {res.rows} rows with {res.model} -> {res.output} "
        f"({res.seconds:.1f} s, {res.rows_per_second:,.0f} rows/s)"
    )
    if res.unseen_categories:
        out.print(f"[yellow]unseen categories (scored as missing):[/] {res.unseen_categories}")


@app.command()
def monitor(
    config: ConfigOpt,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            "-b",
            help="what to check: a file, folder, glob or object-store URI (default: "
            "monitoring.batch or monitoring.sql)",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="default: models:/<name>@champion")
    ] = None,
    retrain: Annotated[
        bool | None,
        typer.Option(
            "--retrain/--no-retrain",
            help="start the retrain deployment on drift (default: monitoring.retrain_on_drift)",
        ),
    ] = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Label-wise drift of a batch against the model's training data; exit code 3 on drift."""
    _env(debug)

    def body() -> MonitorResult:
        from labelwise.engine.errors import DriftError
        from labelwise.flows.monitor import monitor_flow
        from labelwise.pipeline.sources import parse_as_of

        when = _as_of(as_of, parse_as_of)
        try:
            return monitor_flow(str(config), batch, model, retrain, when)
        except DriftError as exc:  # the drifted labels, then the exit code 3 of a drift alert
            _drift_report(exc.report, as_json)
            raise

    res: MonitorResult = _run(body, debug)
    _drift_report(res, as_json)
    if not as_json:
        out.print(
            f"[green]no drift[/] in {res['rows']} rows against {res['model']} "
            f"(MLflow run {res['run_id']})"
        )


@app.command()
def deploy(
    config: ConfigOpt,
    work_pool: Annotated[
        str, typer.Option(help="Prefect process work pool (created if missing)")
    ] = "labelwise",
    debug: DebugOpt = False,
) -> None:
    """Create the retrain (scheduled), promote and monitor deployments on a Prefect server."""
    _env(debug)

    def body() -> Deployments:
        from labelwise.pipeline.config import load_config

        load_config(config)
        _require_server("deploy", "a Prefect server (the ephemeral API keeps no schedules)")
        from labelwise.tasks.deployments import deploy as make

        return make(str(config), work_pool)

    res: Deployments = _run(body, debug)
    pool = res.work_pool
    option = "" if pool == "labelwise" else f" --pool {pool}"
    out.print(
        f"[green]deployed[/] retrain ({res.cron or 'no schedule'}), promote and monitor "
        f"({res.monitor_cron or 'no schedule'}) to work pool {pool!r}; run them with a "
        f"worker:\n  labelwise worker start{option}",
        soft_wrap=True,
    )


def _require_server(command: str, what: str) -> None:
    """A ConfigError unless a Prefect server is set (``server start`` or PREFECT_API_URL)."""
    from labelwise.engine.errors import ConfigError

    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError(
            f"{command} needs {what}: `labelwise server start`, or set PREFECT_API_URL"
        )
    from labelwise.pipeline import prefect_server

    info = prefect_server.running()
    if info is not None and info.get("on_demand") and info["url"] == os.environ["PREFECT_API_URL"]:
        prefect_server.start()  # keep it: schedules must outlive the warm process's idle stop
        out.print(
            f"note: the local Prefect server {info['ui']} now runs until `labelwise server "
            "stop` (it had been started for the warm process, which would stop it)",
            soft_wrap=True,
        )


@app.command()
def trigger(
    config: ConfigOpt,
    kind: Annotated[
        str, typer.Option("--deployment", help="retrain, promote or monitor")
    ] = "retrain",
    debug: DebugOpt = False,
) -> None:
    """Ask for a run of one of the config's deployments now; a worker runs it."""
    _env(debug)

    def body() -> TriggeredRun:
        from labelwise.engine.errors import ConfigError
        from labelwise.tasks.deployments import FLOWS, trigger

        if kind not in FLOWS:
            raise ConfigError(f"--deployment {kind!r}: choose one of {', '.join(FLOWS)}")
        _require_server("trigger", "the Prefect server the deployments are on")
        return trigger(str(config), kind)

    res: TriggeredRun = _run(body, debug)
    ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
    out.print(
        f"[green]triggered[/] {res.deployment}: flow run {res.flow_run} "
        f"({ui}/runs/flow-run/{res.flow_run_id}); a worker (`labelwise worker start`) "
        "runs it",
        soft_wrap=True,
    )


@worker_app.command("start")
def worker_start(
    pool: Annotated[str, typer.Option(help="the work pool `labelwise deploy` used")] = "labelwise",
    run_once: Annotated[
        bool, typer.Option("--run-once", help="run the flow runs due now, then exit")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Run the scheduled and triggered flow runs of the deployments in this terminal, on the
    local server (`labelwise server start`) or PREFECT_API_URL, each in its own process with
    this state directory; Ctrl-C stops it."""
    _env(debug)
    os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"  # a worker reports what it picks up

    def body() -> None:
        from labelwise.pipeline.prefect_server import ServerError

        url = os.environ.get("PREFECT_API_URL")
        if not url:
            raise ServerError(
                "no Prefect server to take flow runs from: run `labelwise server start` "
                "first (or set PREFECT_API_URL to your server)"
            )
        from labelwise.pipeline.environment import redact, state_dir
        from labelwise.tasks.deployments import run_worker

        # a flow run works in the deployment's folder: it must find this state directory
        # (MLflow store, Prefect results) however the user's working directory differs
        os.environ["LABELWISE_HOME"] = str(state_dir())
        out.print(f"worker on work pool {pool!r} of {redact(url)}; Ctrl-C stops it")
        run_worker(pool, run_once)

    _run(body, debug)


@server_app.command("start")
def server_start(debug: DebugOpt = False) -> None:
    """Start the state directory's local Prefect server in the background (or show the one
    that runs); every later command of this state directory uses it."""
    from labelwise.pipeline.environment import redact
    from labelwise.pipeline.prefect_server import ServerError, start

    def body() -> dict[str, Any]:
        if os.environ.get("PREFECT_API_URL"):
            raise ServerError(
                f"PREFECT_API_URL is set ({redact(os.environ['PREFECT_API_URL'])}): commands "
                "use that server; unset it to run a local one"
            )
        return start()

    info = _run(body, debug)
    what = "already running" if info.get("already") else "started"
    out.print(
        f"Prefect server {what}: {info['ui']} (pid {info['pid']}, log {info['log']}); "
        "`labelwise server stop` stops it. Next: `labelwise deploy -c <config>` schedules a "
        "job, `labelwise worker start` runs its flow runs",
        soft_wrap=True,
    )


@server_app.command("status")
def server_status() -> None:
    """Is the local Prefect server running (and warm processes)? Exit 0 if so, 1 if not."""
    from labelwise.pipeline import warm_process
    from labelwise.pipeline.prefect_server import running

    for w in warm_process.running():
        out.print(f"warm process: pid {w['pid']} waits for the next command", soft_wrap=True)
    info = running()
    if info is None:
        out.print("no local Prefect server: each command starts an ephemeral one")
        raise typer.Exit(1)
    how = ", started for the warm process: it stops with it" if info.get("on_demand") else ""
    out.print(f"running: {info['ui']} (pid {info['pid']}, log {info['log']}{how})", soft_wrap=True)


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local Prefect server and the warm processes (commands go back to an ephemeral
    API each, until a command leaves a warm process again)."""
    from labelwise.pipeline import warm_process
    from labelwise.pipeline.prefect_server import stop

    for pid in warm_process.stop_all():
        out.print(f"stopped the warm process {pid}")
    info = stop()
    if info is None:
        out.print("no local server was running")
    elif info["gone"]:
        out.print(
            f"the server at {info['ui']} (pid {info['pid']}) had already ended; its record is "
            "removed (a process that now has that pid is not ours and was left alone)",
            soft_wrap=True,
        )
    else:
        out.print(f"stopped the server at {info['ui']}")


@config_app.command("check")
def config_check(
    config: Annotated[Path, typer.Argument(help="YAML config file")], debug: DebugOpt = False
) -> None:
    """Validate a config file and print it resolved."""

    cfg = _run(lambda: _checked_config(config), debug)
    out.print(
        f"[green]ok[/] {config}: job {cfg.name!r}, registered model "
        f"{cfg.registered_model!r}, experiment {cfg.experiment!r}"
    )
    out.print_json(cfg.model_dump_json())
    from labelwise.engine.errors import DataError

    try:
        kinds = _column_kinds(cfg)
    except DataError as exc:  # the config is fine; its table is train's and validate's concern
        out.print(f"note: the columns were not read ({exc})", highlight=False)
        kinds = None
    if kinds:
        out.print(f"columns of {cfg.data.train} (as train reads them):")
        for kind, cols in kinds.items():
            if cols:
                out.print(f"  {kind:<12} {', '.join(cols)}", highlight=False)


def _column_kinds(cfg: Any) -> dict[str, list[str]] | None:
    """Each feature column's kind in the local training table, when there is one to read."""
    from labelwise.engine.data import feature_kinds
    from labelwise.pipeline.tables import read_xy

    path = cfg.data.train
    if path is None or not Path(path).is_file():
        return None
    X, _, _ = read_xy(cfg, str(path))
    text = "auto" if cfg.data.text is None else list(cfg.data.text)
    return feature_kinds(X, X.columns, text)


@app.command()
def demo(
    rows: Annotated[int, typer.Option(min=200, help="labelled rows to generate")] = 4000,
    config: Annotated[Path, typer.Option("--config", "-c", help="the demo job's config")] = Path(
        "configs/demo.yaml"
    ),
    debug: DebugOpt = False,
) -> None:
    """The whole cycle on a generated table: train (twice), promote, predict."""
    _env(debug)

    def body() -> None:
        from labelwise.pipeline.config import load_config

        cfg = load_config(config)
        fresh = _demo_tables(cfg, rows)
        out.print("[bold]2/4[/] train v1 with the fast preset, then v2 with the defaults")
        runs = [
            train(config, preset=p, strategy=None, no_register=False, debug=debug)
            for p in (Preset("fast"), None)
        ]
        out.print("[bold]3/4[/] promote: challenger vs champion on the same test table")
        promote(config, data=None, debug=debug)
        out.print("[bold]4/4[/] batch-score fresh rows with the champion")
        predict(
            f"models:/{cfg.registered_model}@champion",
            fresh,
            Path(str(cfg.data.train)).parent / "scored.parquet",
            chunk_rows=100_000,
            tracking_uri=cfg.tracking.tracking_uri,
            overwrite=True,  # the demo's own output of an earlier run
            debug=debug,
        )
        _demo_summary(cfg, runs)

    _run(body, debug)


def _demo_tables(cfg: Any, rows: int) -> Path:
    """The demo's generated train, test and fresh (unlabelled) tables; the fresh one's path."""
    from labelwise.engine.synthetic import make_multilabel_table

    df = make_multilabel_table(n_rows=rows + rows // 4, seed=0)
    n_train = int(rows * 0.8)
    folder = Path(cfg.data.train).parent
    folder.mkdir(parents=True, exist_ok=True)
    df.head(n_train).write_parquet(cfg.data.train)
    df.slice(n_train, rows - n_train).write_parquet(cfg.data.test)
    fresh = folder / "fresh.parquet"
    labels = [c for c in df.columns if c.startswith("label_")]
    df.tail(rows // 4).drop(labels).write_parquet(fresh)
    out.print(f"[bold]1/4[/] generated {rows} labelled rows + {rows // 4} fresh rows in {folder}")
    return Path(fresh)


def _demo_summary(cfg: Any, runs: list[TrainResult]) -> None:
    """The versions the demo registered, and the exact command and link to see them."""
    from labelwise.pipeline.environment import default_tracking_uri, state_dir
    from labelwise.tasks.run_views import runs_view_url
    from labelwise.tasks.tracking import experiment_id

    uri = cfg.tracking.tracking_uri or default_tracking_uri()
    link = runs_view_url("http://127.0.0.1:5000", experiment_id(cfg))
    new = [f"v{r.version.version}" for r in runs if r.version is not None]
    same = [f"v{r.skipped.version}" for r in runs if r.skipped and r.skipped.reason == "identical"]
    out.print(
        f"\nRegistered {cfg.registered_model!r} "
        + (", ".join(new) if new else "no new version")
        + (f" (unchanged: {', '.join(same)})" if same else "")
        + f"; state in {state_dir()}. Open the MLflow UI on it with:\n"
        f"  [bold]{Path(sys.executable).parent / 'mlflow'} ui --backend-store-uri {uri}[/]\n"
        f"then open {link}\n(the runs of experiment {cfg.experiment!r}, headline metrics "
        f"first; model {cfg.registered_model!r} under Models).\n"
        f"`source {Path(sys.executable).parent / 'activate'}` puts `labelwise` on your PATH; "
        "the README walks a scheduled retraining job from there.",
        soft_wrap=True,
    )


if __name__ == "__main__":  # `python -m labelwise.cli ...`, as the console script does
    app()
