from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from labelwise.cli import app
from labelwise.engine.errors import ConfigError
from labelwise.pipeline.config import load_config

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _write(tmp_path: Path, data) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


BASE = {"name": "t", "data": {"train": "x.parquet", "labels": {"prefix": "y_"}}}


def test_every_shipped_config_is_valid():
    for p in sorted((ROOT / "configs").glob("*.yaml")):
        cfg = load_config(p)
        assert cfg.name == p.stem
        cfg.estimator()  # builds


@pytest.mark.parametrize(
    "edit, path",
    [
        (lambda c: c["data"].update(lables=1), "data.lables: unknown key"),
        (lambda c: c.update(model={"params": {"n_estimators": "many"}}), "model"),
        (lambda c: c.update(model={"params": {"learnig_rate": 0.1}}), "learnig_rate"),
        (lambda c: c.update(thresholds={"fixed": 1.5}), "thresholds.fixed"),
        (
            lambda c: c.update(thresholds={"objective": "precision", "target": 2}),
            "thresholds.target",
        ),
        (lambda c: c["data"].pop("train"), "data: give exactly one source kind"),
        (lambda c: c["data"].update(labels={}), "data.labels"),
        (lambda c: c.update(split={"test_fraction": 0}), "split.test_fraction"),
    ],
)
def test_config_errors_name_the_yaml_path(tmp_path, edit, path):
    import copy

    cfg = copy.deepcopy(BASE)
    edit(cfg)
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, cfg))
    assert path in str(info.value)


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(_write(tmp_path, "name: [unclosed"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_flat_params_and_digest(tmp_path):
    cfg = load_config(_write(tmp_path, BASE))
    flat = cfg.flat()
    assert flat["data.labels.prefix"] == "y_" and flat["model.strategy"] == "binary_relevance"
    assert cfg.digest() == load_config(_write(tmp_path, BASE)).digest()
    assert Path(flat["data.train"]).is_absolute()  # resolved against the config's folder
    other = load_config(_write(tmp_path, BASE), {"model.preset": "fast"})
    assert other.digest() != cfg.digest() and other.model.preset == "fast"


def test_cli_config_check_and_exit_codes(tmp_path):
    # a config whose table does not exist yet: exit 2 naming the key and the base folder
    absent = runner.invoke(app, ["config", "check", str(_write(tmp_path, BASE))])
    assert absent.exit_code == 2, absent.output
    assert "data.train" in absent.output and str(tmp_path) in absent.output
    (tmp_path / "x.parquet").write_bytes(b"")
    ok = runner.invoke(app, ["config", "check", str(_write(tmp_path, BASE))])
    assert ok.exit_code == 0 and "'t'" in ok.stdout, ok.output
    bad = runner.invoke(app, ["config", "check", str(_write(tmp_path, "name: [x"))])
    assert bad.exit_code == 2
    assert "invalid YAML" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(app, ["train", "-c", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_help_is_instant_and_lazy():
    """`labelwise --help` must not import prefect, mlflow or great_expectations."""
    code = (
        "import sys; from labelwise.cli import app; "
        "from typer.testing import CliRunner; r = CliRunner().invoke(app, ['--help']); "
        "assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('prefect', 'mlflow', 'great_expectations', 'lightgbm') "
        "if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_predict_without_a_server_needs_no_prefect():
    """`labelwise predict` with no Prefect server scores in process: the registry reads and
    the scoring it uses import no prefect (importing it cost about a second)."""
    code = (
        "import sys; import labelwise.tasks.registry, labelwise.tasks.scoring; "
        "assert 'prefect' not in sys.modules, 'prefect imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_weighting_beta_reaches_the_fitted_weights(tmp_path):
    """`weighting.beta` was once accepted and then dropped (effective weights always used
    0.999); the config's weighting section now reaches the estimator as one object."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    Y = np.zeros((300, 2), dtype=np.uint8)
    Y[:15, 0], Y[:90, 1] = 1, 1
    fitted = []
    for beta in (0.9, 0.999):
        over = {
            "weighting.scheme": "effective",
            "weighting.beta": beta,
            "model.params": {"n_estimators": 2, "cv_folds": None},
        }
        est = load_config(_write(tmp_path, BASE), over).estimator()
        assert est.weighting.beta == beta
        fitted.append(est.fit(X, Y).label_weights_)
    assert not np.allclose(fitted[0], fitted[1])


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    bomb = "name: t\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n"
    with pytest.raises(ConfigError, match="aliases"):
        load_config(_write(tmp_path, bomb))


def test_overlapping_settings_name_both_places(tmp_path):
    over = {"model.params": {"learning_rate": 0.1}, "model.lgb_params": {"learning_rate": 0.2}}
    with pytest.raises(ConfigError, match=r"model\.lgb_params.*learning_rate"):
        load_config(_write(tmp_path, BASE), over)
    with pytest.raises(ConfigError, match=r"model\.params.*thresholds"):
        load_config(_write(tmp_path, BASE), {"model.params": {"threshold_policy": {}}})


def test_every_option_has_help_and_choices_are_listed():
    from typer.main import get_command

    cmd = get_command(app)
    missing = []

    def walk(c, path=""):
        for name, sub in getattr(c, "commands", {}).items():
            walk(sub, f"{path} {name}")
        missing.extend(
            f"{path} --{p.name}"
            for p in getattr(c, "params", [])
            if p.param_type_name == "option" and not p.help
        )

    walk(cmd)
    assert not missing
    res = runner.invoke(app, ["train", "--help"])
    assert "fast" in res.output and "chain_ensemble" in res.output


def test_help_at_80_columns_cuts_no_option_or_value():
    """Every command's --help in an 80-column terminal wraps, never cuts a name with '…'."""
    commands = [[c] for c in ("train", "tune", "predict", "evaluate", "monitor", "promote")]
    commands += [["server", "start"], ["worker", "start"], ["trigger"]]
    for command in commands:
        res = runner.invoke(app, [*command, "--help"], terminal_width=80)
        assert res.exit_code == 0 and "--debug" in res.output, res.output
        cut = [line for line in res.output.splitlines() if "…" in line and "--" in line]
        assert not cut and "MLFLOW_TRACKING_URI" in runner.invoke(app, ["predict", "--help"]).output


def test_union_errors_are_one_sentence(tmp_path):
    """`weighting.scheme` is a name or a {label: weight} mapping: a wrong value gets one line
    naming the YAML path, the allowed forms and the value, not one line per union branch."""
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, {**BASE, "weighting": {"scheme": [1, 2]}}))
    lines = [ln for ln in str(info.value).splitlines() if "weighting" in ln]
    assert len(lines) == 1 and "got [1, 2]" in lines[0] and "or" in lines[0]


def test_core_only_install_names_the_extra(tmp_path):
    """Without the pipeline extra (prefect missing), `labelwise train` says what to install
    and exits 2, instead of a ModuleNotFoundError traceback."""
    (tmp_path / "x.parquet").write_bytes(b"")
    cfg = _write(tmp_path, BASE)
    code = (
        "import sys; sys.modules['prefect'] = None; "
        "from labelwise.cli import app; app(['train', '-c', sys.argv[1]])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "labelwise[pipeline]" in proc.stderr and "Traceback" not in proc.stderr


def test_per_feature_lightgbm_settings_pass_the_early_check(tmp_path):
    """The dry run of lgb_params cannot try settings shaped like the real features (one entry
    per feature): they are accepted, not refused for not fitting two made-up columns."""
    over = {"model.lgb_params": {"monotone_constraints": [1, 0, -1, 0, 1]}}
    cfg = load_config(_write(tmp_path, BASE), over)
    assert cfg.model.lgb_params["monotone_constraints"] == [1, 0, -1, 0, 1]
