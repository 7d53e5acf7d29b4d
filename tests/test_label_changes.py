"""A label set that changes between versions, through the CLI: named at train time (a warning
and a run tag), compared on the shared labels at promote time, refused unless the rule allows
it; never a raw exception."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from labelwise.cli import app
from labelwise.engine.synthetic import make_multilabel_table
from tests.store import client as _client

pytestmark = pytest.mark.slow
runner = CliRunner()


def _write(tmp: Path, df, allow: bool = False) -> Path:
    df.write_parquet(tmp / "train.parquet")
    cfg = {
        "name": "drifting",
        "data": {"train": "train.parquet", "labels": {"prefix": "label_"}, "exclude": ["id"]},
        "model": {"preset": "fast"},
        "contract": {"min_rows": 20},
        "promotion": {"allow_label_changes": allow},
        "tracking": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
    }
    path = tmp / "drifting.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_lost_label_is_named_and_refused_then_allowed(tmp_path: Path, prefect_api):
    df = make_multilabel_table(n_rows=600, n_labels=6, seed=31)
    config = _write(tmp_path, df)
    first = runner.invoke(app, ["train", "-c", str(config)])
    assert first.exit_code == 0, first.output

    fewer = df.drop("label_03")  # fresh data in which one label column is gone
    config = _write(tmp_path, fewer)
    second = runner.invoke(app, ["train", "-c", str(config)])
    assert second.exit_code == 0, second.output
    assert "label set differs" in second.output and "label_03" in second.output
    c = _client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    v2 = c.get_model_version_by_alias("drifting", "challenger")
    assert "label_03" in c.get_run(v2.run_id).data.tags["labelwise.label_changes"]

    refused = runner.invoke(app, ["promote", "-c", str(config), "--fail-if-refused"])
    assert refused.exit_code == 4, refused.output  # refused, with the reason; no traceback
    assert "lost ['label_03']" in refused.output and "allow_label_changes" in refused.output
    assert "Traceback" not in refused.output
    assert str(c.get_model_version_by_alias("drifting", "champion").version) == "1"

    config = _write(tmp_path, fewer, allow=True)
    allowed = runner.invoke(app, ["promote", "-c", str(config)])
    assert allowed.exit_code == 0, allowed.output
    assert "compared on the 5 shared label(s)" in allowed.output
    assert "refused (set promotion" not in allowed.output
