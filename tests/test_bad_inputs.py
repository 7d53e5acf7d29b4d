"""Bad inputs through the CLI: a clear message naming the file / column / label / key, a non-zero
exit code, no registered model version and no MLflow run left RUNNING."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from labelwise.cli import app
from labelwise.engine.synthetic import make_multilabel_table
from tests.helpers import write_job

pytestmark = pytest.mark.slow
runner = CliRunner()
LABELS = [f"label_{j:02d}" for j in range(6)]


@pytest.fixture(scope="module")
def base_table() -> pl.DataFrame:
    return make_multilabel_table(n_rows=400, n_labels=6, seed=11)


def _job(
    tmp: Path,
    df: pl.DataFrame | None,
    cfg_edit: Callable[[dict], None] | None = None,
    name: str = "bad",
    suffix: str = ".parquet",
) -> tuple[Path, str]:
    data = tmp / f"train{suffix}"
    if df is not None:
        if suffix == ".csv":
            df.write_csv(data)
        else:
            df.write_parquet(data)
    edits = {"data.train": data.name, "data.labels": {"columns": LABELS}}
    path, uri = write_job(tmp, name, edits=edits | {"contract.min_positives_per_label": 1})
    if cfg_edit:
        cfg = yaml.safe_load(path.read_text())
        cfg_edit(cfg)
        path.write_text(yaml.safe_dump(cfg))
    return path, uri


def _assert_nothing_half_written(uri: str, name: str) -> None:
    from mlflow import MlflowClient

    c = MlflowClient(uri, registry_uri=uri)
    assert not c.search_model_versions(f"name='{name}'")
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        assert all(r.info.status != "RUNNING" for r in c.search_runs([exp.experiment_id]))


def _col(df: pl.DataFrame, name: str, values: list) -> pl.DataFrame:
    return df.with_columns(pl.Series(name, values))


def _cycle(values: list, n: int) -> list:
    return [values[i % len(values)] for i in range(n)]


# (case id, table edit, config edit, expected words in the message)
TRAIN_CASES: list[tuple[str, Callable | None, Callable | None, list[str]]] = [
    ("missing file", None, None, ["train.parquet", "not found"]),
    ("empty table", lambda d: d.head(0), None, ["row"]),
    ("missing label column", lambda d: d.drop("label_02"), None, ["label_02"]),
    (
        "missing feature column",
        None,
        lambda c: c["data"].update(features=["x00", "nope_feature"]),
        ["nope_feature"],
    ),
    (
        "label value 2",
        lambda d: _col(d, "label_01", _cycle([0, 1, 2, 0], d.height)),
        None,
        ["label_01"],
    ),
    (
        "label value -1",
        lambda d: _col(d, "label_01", _cycle([0, 1, -1, 0], d.height)),
        None,
        ["label_01"],
    ),
    (
        "label value 0.5",
        lambda d: _col(d, "label_01", _cycle([0.0, 1.0, 0.5], d.height)),
        None,
        ["label_01"],
    ),
    (
        "label value yes",
        lambda d: _col(d, "label_01", _cycle(["yes", "no"], d.height)),
        None,
        ["label_01"],
    ),
    (
        "null labels",
        lambda d: _col(d, "label_03", _cycle([0, 1, None], d.height)),
        None,
        ["label_03"],
    ),
    (
        "label without positives",
        lambda d: _col(d, "label_04", [0] * d.height),
        None,
        ["label_04", "sum"],
    ),
    (
        "label with only positives",
        lambda d: _col(d, "label_04", [1] * d.height),
        None,
        ["label_04", "min"],
    ),
    (
        "infinite feature",
        lambda d: _col(d, "x00", _cycle([1.0, float("inf")], d.height)),
        None,
        ["x00", "infinite"],
    ),
    (
        "mixed-type feature",
        lambda d: _col(d, "city", _cycle(["1", "2", "three"], d.height)),
        None,
        ["city", "mixes numbers and text"],
    ),
    (
        "label set column null",
        lambda d: d.with_columns(pl.Series("tags", _cycle(["a|b", None, "b"], d.height))).drop(
            LABELS
        ),
        lambda c: c["data"].update(labels={"set_column": "tags", "separator": "|"}),
        ["tags"],
    ),
    (
        "label set column of numbers",
        lambda d: d.with_columns(pl.Series("tags", _cycle([1, 2], d.height))).drop(LABELS),
        lambda c: c["data"].update(labels={"set_column": "tags", "separator": "|"}),
        ["tags", "expected list[str] or a delimited string"],
    ),
    (
        "label set column all empty",
        lambda d: d.with_columns(pl.Series("tags", [""] * d.height)).drop(LABELS),
        lambda c: c["data"].update(labels={"set_column": "tags", "separator": "|"}),
        ["tags", "no label at all"],
    ),
    (
        "label set column malformed",
        lambda d: d.with_columns(pl.Series("tags", _cycle(['["a", "b"]', "['b']"], d.height))).drop(
            LABELS
        ),
        lambda c: c["data"].update(labels={"set_column": "tags", "separator": "|"}),
        ["tags", "serialized lists"],
    ),
    (
        "label regex matches nothing",
        None,
        lambda c: c["data"].update(labels={"regex": "tag_.*"}),
        ["tag_.*"],
    ),
    ("too few rows", lambda d: d.head(10), None, ["row_count", "10"]),
]


@pytest.mark.parametrize(
    "case, edit, cfg_edit, words", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES]
)
def test_bad_training_input(tmp_path, base_table, prefect_api, case, edit, cfg_edit, words):
    df = None if case == "missing file" else (edit(base_table) if edit else base_table)
    cfg, uri = _job(tmp_path, df, cfg_edit)
    res = runner.invoke(app, ["train", "-c", str(cfg)])
    assert res.exit_code == 2, res.output
    for w in words:
        assert w in res.output, (w, res.output)
    _assert_nothing_half_written(uri, "bad")


def test_corrupt_parquet_and_duplicate_csv_columns(tmp_path, prefect_api):
    cfg, uri = _job(tmp_path, None)
    (tmp_path / "train.parquet").write_bytes(b"PAR1\x00garbage")
    res = runner.invoke(app, ["train", "-c", str(cfg)])
    assert res.exit_code == 2 and "train.parquet" in res.output
    _assert_nothing_half_written(uri, "bad")

    d2 = tmp_path / "dup"
    d2.mkdir()
    (d2 / "train.csv").write_text("x00,x00,label_00\n1,2,0\n3,4,1\n")
    cfg2, _ = _job(
        d2,
        None,
        suffix=".csv",
        cfg_edit=lambda c: c["data"].update(train="train.csv", labels={"columns": ["label_00"]}),
    )
    res = runner.invoke(app, ["train", "-c", str(cfg2)])
    assert res.exit_code == 2 and "duplicate column" in res.output and "x00" in res.output


# usable but suspicious: training goes on (exit 0) and the user is told, naming the column
WARN_CASES: list[tuple[str, Callable | None, Callable | None, list[str]]] = [
    ("constant feature", lambda d: _col(d, "x00", [3.0] * d.height), None, ["x00", "constant"]),
    (
        "all-null feature",
        lambda d: _col(d, "x01", pl.Series([None] * d.height, dtype=pl.Float64)),
        None,
        ["x01", "entirely null"],
    ),
    (
        "mutually exclusive labels",
        lambda d: d.with_columns(
            [
                pl.Series(lab, [int(i % len(LABELS) == j) for i in range(d.height)])
                for j, lab in enumerate(LABELS)
            ]
        ),
        None,
        ["mutually exclusive"],
    ),
    (
        "single label",
        None,
        lambda c: c["data"].update(labels={"columns": ["label_00"]}),
        ["one label"],
    ),
]


@pytest.mark.parametrize("case, edit, cfg_edit, words", WARN_CASES, ids=[c[0] for c in WARN_CASES])
def test_suspicious_input_warns_and_trains(
    tmp_path, base_table, prefect_api, case, edit, cfg_edit, words
):
    df = edit(base_table) if edit else base_table
    cfg, uri = _job(tmp_path, df, cfg_edit, name="warn")
    res = runner.invoke(app, ["train", "-c", str(cfg)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # rich wraps long lines
    for w in words:
        assert w in text, (w, res.output)
    from mlflow import MlflowClient

    c = MlflowClient(uri, registry_uri=uri)
    assert [str(v.version) for v in c.search_model_versions("name='warn'")] == ["1"]


@pytest.mark.parametrize(
    "text, words",
    [
        ("name: [unclosed", ["invalid YAML"]),
        (
            "name: t\ndata: {train: x.parquet, labels: {prefix: y_}}\nmodle: {}\n",
            ["modle", "unknown key"],
        ),
        (
            "name: t\ndata: {train: x.parquet, labels: {prefix: y_}}\nsplit: {seed: abc}\n",
            ["split.seed"],
        ),
        (
            "name: t\ndata: {train: x.parquet, labels: {prefix: y_}}\nthresholds: {fixed: 1.2}\n",
            ["thresholds.fixed"],
        ),
        (
            "name: t\ndata: {train: x.parquet, labels: {prefix: y_}}\n"
            "thresholds: {objective: recall, target: -0.1}\n",
            ["thresholds.target"],
        ),
    ],
)
def test_bad_config(tmp_path, text, words):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    res = runner.invoke(app, ["train", "-c", str(p)])
    assert res.exit_code == 2
    for w in words:
        assert w in res.output, (w, res.output)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, base_table) -> Path:
    from labelwise.engine.classifier import LabelwiseClassifier

    d = tmp_path_factory.mktemp("model") / "m"
    X = base_table.drop(["id", *LABELS])
    LabelwiseClassifier.from_preset("fast").fit(X, base_table.select(LABELS)).save(d)
    return d


def _predict(tmp_path: Path, model: str, df: pl.DataFrame):
    inp = tmp_path / "in.parquet"
    df.write_parquet(inp)
    out = str(tmp_path / "out.parquet")
    return runner.invoke(app, ["predict", "-m", model, "-i", str(inp), "-o", out, "--overwrite"])


def test_predict_time_inputs(tmp_path, base_table, model_dir, prefect_api):
    X = base_table.drop(LABELS)
    # unseen category: scored, and reported
    res = _predict(
        tmp_path,
        str(model_dir),
        X.with_columns(pl.Series("city", _cycle(["atlantis", "paris"], X.height))),
    )
    assert res.exit_code == 0 and "city" in res.output and "unseen" in res.output
    # extra columns pass through to the output
    res = _predict(tmp_path, str(model_dir), X.with_columns(pl.lit(7).alias("extra")))
    assert res.exit_code == 0
    assert "extra" in pl.read_parquet(tmp_path / "out.parquet").columns
    # a missing feature column and a wrong dtype are errors naming the column
    res = _predict(tmp_path, str(model_dir), X.drop("x03"))
    assert res.exit_code == 2 and "x03" in res.output
    res = _predict(tmp_path, str(model_dir), X.with_columns(pl.col("x02").cast(pl.String)))
    assert res.exit_code == 2 and "x02" in res.output
    assert not list(tmp_path.glob("*.partial"))


def test_predict_refuses_outputs_that_destroy_data(tmp_path, base_table, model_dir, prefect_api):
    """`-o` the input itself, a directory, a FIFO, or an existing file without --overwrite:
    exit 2, nothing written, the input intact. A FIFO as input fails at once (no hang), and
    input columns named like the outputs are refused instead of silently replaced."""
    import os

    X = base_table.drop(LABELS)
    inp = tmp_path / "in.parquet"
    X.write_parquet(inp)
    before = inp.read_bytes()
    (tmp_path / "adir").mkdir()
    fifo = tmp_path / "pipe.parquet"
    os.mkfifo(fifo)
    taken = tmp_path / "taken.parquet"
    taken.write_bytes(b"keep me")

    def run(out, *extra, source=inp):
        args = ["predict", "-m", str(model_dir), "-i", str(source), "-o", str(out), *extra]
        return runner.invoke(app, args)

    for out, words in [
        (inp, ["input table itself"]),
        (tmp_path / "adir", ["not a regular file"]),
        (fifo, ["not a regular file"]),
        (taken, ["exists", "--overwrite"]),
    ]:
        res = run(out)
        assert res.exit_code == 2, res.output
        assert all(w in res.output for w in words), res.output
        res = run(out, "--overwrite")
        if out != taken:  # --overwrite never makes these writable
            assert res.exit_code == 2, res.output
    assert inp.read_bytes() == before and taken.read_bytes() != b"keep me"
    assert not list(tmp_path.glob("*.partial")) and not list((tmp_path / "adir").iterdir())
    res = run(tmp_path / "new.parquet", source=fifo)
    assert res.exit_code == 2 and "not a regular file" in res.output
    clash = tmp_path / "clash.parquet"
    X.with_columns(pl.lit(0.5).alias(f"p:{LABELS[0]}")).write_parquet(clash)
    res = run(tmp_path / "new.parquet", source=clash)
    assert res.exit_code == 2 and f"p:{LABELS[0]}" in res.output
    assert not (tmp_path / "new.parquet").exists()


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda d, m: m.update(format_version=7), ["format version 7"]),
        (lambda d, m: m["level1"][0][1].update(sha256="0" * 64), ["digest"]),
        (lambda d, m: (d / m["level1"][0][0]["file"]).unlink(), ["missing"]),
        (lambda d, m: m["level1"][0][0].update(file="../../../etc/hostname"), ["outside"]),
    ],
)
def test_broken_model_directory(tmp_path, base_table, model_dir, prefect_api, edit, words):
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    m = json.loads((d / "manifest.json").read_text())
    edit(d, m)
    (d / "manifest.json").write_text(json.dumps(m))
    res = _predict(tmp_path, str(d), base_table.drop(LABELS))
    assert res.exit_code == 2
    for w in words:
        assert w in res.output


def test_cli_errors_have_no_traceback_in_a_real_process(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "LABELWISE_HOME": str(tmp_path)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "labelwise.cli",
            "predict",
            "-m",
            str(tmp_path / "no-model"),
            "-i",
            str(tmp_path / "in.parquet"),
            "-o",
            str(tmp_path / "o.parquet"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "no-model" in proc.stderr and "manifest.json" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_registry_names(tmp_path, base_table):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri, registry_uri=uri).create_registered_model("known")
    for model, words in (
        ("models:/ghost@champion", ["ghost", "does not exist"]),
        ("models:/known@nope", ["known", "no alias 'nope'"]),
        ("models:/known/7", ["known", "no version '7'"]),
    ):
        inp = tmp_path / "in.parquet"
        base_table.write_parquet(inp)
        res = runner.invoke(
            app,
            [
                "predict",
                "-m",
                model,
                "-i",
                str(inp),
                "-o",
                str(tmp_path / "o.parquet"),
                "--tracking-uri",
                uri,
            ],
        )
        assert res.exit_code == 2
        for w in words:
            assert w in res.output


def test_evaluate_command_prints_metrics(tmp_path, base_table, model_dir):
    cfg, _ = _job(tmp_path, base_table)
    res = runner.invoke(
        app,
        [
            "evaluate",
            "-m",
            str(model_dir),
            "-c",
            str(cfg),
            "-d",
            str(tmp_path / "train.parquet"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    table = runner.invoke(
        app,
        ["evaluate", "-m", str(model_dir), "-c", str(cfg), "-d", str(tmp_path / "train.parquet")],
    )
    assert table.exit_code == 0 and "weakest labels" in table.stdout and "f1_macro" in table.stdout
    assert "metrics of" in table.stdout  # which model was scored, on which table
    assert 0 < metrics["f1_macro"] <= 1 and "lrap" in metrics
    res = runner.invoke(app, ["evaluate", "-m", str(model_dir), "-c", str(cfg)])
    assert res.exit_code == 2 and "--data" in res.output
