"""``rationale explain --report text``: a model owner's one-off check, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.helpers import MODELS, instances

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "credit-risk-applicant.json"


def test_explain_prints_the_report_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default database would be ./var/rationale.db
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "explain",
            "--model",
            "credit-risk",
            "--instance",
            str(EXAMPLE),
            "--report",
            "text",
            "--models-dir",
            str(MODELS),
        ],
        env={"RATIONALE_REVIEW_CONTACT": "desk@example.org"},
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Your decision explained" in out and "desk@example.org" in out
    assert "What would change the outcome" in out
    assert out.count("your chance of approval") >= 1
    assert not list(tmp_path.iterdir())  # no database, no record

    bad = tmp_path / "bad.json"
    row = instances("credit-risk", 1)[0] | {"duration_in_month": "long"}
    bad.write_text(json.dumps(row))
    result = runner.invoke(
        app,
        ["explain", "--model", "credit-risk", "--instance", str(bad), "--models-dir", str(MODELS)],
    )
    assert result.exit_code == 1
    assert "instance.duration_in_month" in result.output
