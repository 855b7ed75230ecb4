"""Shared test helpers: settings, keys, demo instances, real PostgreSQL, real server processes."""

from __future__ import annotations

import csv
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.config import Settings

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
ON_CI = os.environ.get("CI", "").lower() == "true"
SECRET = "test-server-secret-0123456789abcdef-XYZ"
KEYS = {
    "backend": "backend-key-0123456789abcdef",
    "support": "support-key-0123456789abcdef",
    "auditor": "auditor-key-0123456789abcdef",
    "admin": "admin-key-0123456789abcdef00",
}
API_KEYS = ",".join(f"{secret}:{role}" for role, secret in KEYS.items())
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "models_dir": MODELS,
        "secret_key": SECRET,
        "api_keys": API_KEYS,
        "log_json": True,
    }
    values.update(overrides)
    return Settings(**values)


def manifest(model: str, version: str = "1") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((MODELS / model / version / "model.yaml").read_text())
    return data


def instances(model: str, count: int = 5, version: str = "1") -> list[dict[str, Any]]:
    """Raw rows of the model's background, typed as a product backend would send them."""
    features = manifest(model, version)["features"]
    with (MODELS / model / version / "background.csv").open() as handle:
        rows = list(csv.DictReader(handle))[:count]
    return [
        {
            f["name"]: (float(row[f["name"]]) if f["type"] == "numeric" else row[f["name"]])
            for f in features
        }
        for row in rows
    ]


REPORT_LINES: list[str] = []
"""Figures a test wants in the CI log (printed in pytest's terminal summary)."""


def report(line: str) -> None:
    """Keep a line for the end-of-run summary, so CI logs show it even when the test passes."""
    REPORT_LINES.append(line)


def unique_id(prefix: str = "d") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


# -- PostgreSQL ------------------------------------------------------------------------


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """Skip off CI when no server listens; under CI=true the server must be there."""
    if postgres_available():
        return
    if ON_CI:
        pytest.fail("CI=true but PostgreSQL is not reachable on 127.0.0.1:5432")
    pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (tests run against it under CI)")


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create a database for a test module, yield its SQLAlchemy URL, drop it afterwards."""
    import psycopg

    require_postgres()
    name = f"rationale_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- real server processes -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real ``rationale serve`` process."""

    def __init__(self, database_url: str, workdir: Path, workers: int = 1, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "RATIONALE_DATABASE_URL": database_url,
            "RATIONALE_MODELS_DIR": str(MODELS),
            "RATIONALE_SECRET_KEY": SECRET,
            "RATIONALE_API_KEYS": API_KEYS,
            **env,
        }
        self.workers = workers
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> Server:
        command = [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log_path.read_text()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group (parent and workers)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def random_secret() -> str:
    return secrets.token_urlsafe(32)
