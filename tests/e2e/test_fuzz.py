"""Schema-driven fuzzing (schemathesis) of a real server: no input may cause a 5xx."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import KEYS, Server

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("fuzz")
    running = Server(f"sqlite:///{workdir / 'fuzz.db'}", workdir).start()
    try:
        yield running
    finally:
        running.stop()


def test_no_generated_request_gets_a_server_error(server: Server, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {KEYS['admin']}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "30",
        "--workers",
        "1",
        "--seed",
        "7",
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
    assert "5xx" not in server.log() and '"status": 500' not in server.log()
