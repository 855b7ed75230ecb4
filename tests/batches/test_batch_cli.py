"""``rationale batch submit`` and ``rationale batch results`` against a real server over HTTP."""

from __future__ import annotations

import csv
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from app.cli import app as cli
from app.main import create_app
from tests.helpers import KEYS, free_port, instances, make_settings, manifest, unique_id


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("cli")
    port = free_port()
    settings = make_settings(f"sqlite:///{folder / 'cli.db'}")
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        raise RuntimeError("server not ready")
    yield base
    server.should_exit = True
    thread.join(timeout=30)


def write_csv(path: Path, rows: list[dict[str, object]]) -> list[str]:
    names = [f["name"] for f in manifest("credit-risk")["features"]]
    ids = [unique_id("cli") for _ in rows]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["decision_id", "subject_id", *names])
        writer.writeheader()
        for i, (decision_id, row) in enumerate(zip(ids, rows, strict=True)):
            writer.writerow({"decision_id": decision_id, "subject_id": f"p-{i}", **row})
    return ids


def test_submit_a_csv_follow_it_and_download_the_results(url: str, tmp_path: Path) -> None:
    source = tmp_path / "decisions.csv"
    ids = write_csv(source, instances("credit-risk", 15))
    runner = CliRunner()
    common = ["--key", KEYS["backend"], "--url", url]
    submitted = runner.invoke(
        cli, ["batch", "submit", str(source), "--model", "credit-risk", *common]
    )
    assert submitted.exit_code == 0, submitted.output
    (batch_id,) = re.findall(r"^[0-9a-f-]{36}$", submitted.stdout, re.MULTILINE)
    assert "15 succeeded, 0 failed" in submitted.output

    out = tmp_path / "results.csv"
    fetched = runner.invoke(cli, ["batch", "results", batch_id, "--out", str(out), *common])
    assert fetched.exit_code == 0, fetched.output
    with out.open(newline="") as handle:
        assert [r["decision_id"] for r in csv.DictReader(handle)] == ids
    lines = tmp_path / "results.jsonl"
    fetched = runner.invoke(cli, ["batch", "results", batch_id, "--out", str(lines), *common])
    assert fetched.exit_code == 0, fetched.output
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r["decision_id"] for r in records] == ids
    assert records[0]["model"]["name"] == "credit-risk"


def test_cli_names_what_is_wrong(url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--key", KEYS["backend"], "--url", url]
    source = tmp_path / "bad.csv"
    rows = instances("credit-risk", 3)
    rows[1]["duration_in_month"] = "soon"
    write_csv(source, rows)
    result = runner.invoke(cli, ["batch", "submit", str(source), "--model", "credit-risk", *common])
    assert result.exit_code == 2
    assert "line 3, column duration_in_month" in result.output
    unknown = runner.invoke(cli, ["batch", "submit", str(source), "--model", "nope", *common])
    assert unknown.exit_code == 2 and "404" in unknown.output
    support = ["--key", KEYS["support"], "--url", url]
    write_csv(source, instances("credit-risk", 2))
    denied = runner.invoke(
        cli, ["batch", "submit", str(source), "--model", "credit-risk", *support]
    )
    assert denied.exit_code == 2 and "403" in denied.output
