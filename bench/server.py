"""Start and stop a ``rationale serve`` subprocess on a free port with its own temp database."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.data import MODELS_DIR, ROOT

RATIONALE = ROOT / ".venv" / "bin" / "rationale"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A served Rationale; use as a context manager (the process group is always killed)."""

    workers: int = 1
    models_dir: Path = MODELS_DIR
    ready_timeout: float = 180.0
    port: int = 0
    backend_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    support_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    proc: subprocess.Popen[bytes] | None = None
    folder: Path | None = None
    _tmp: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        assert self.folder is not None
        return self.folder / "db.sqlite"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "RATIONALE_DATABASE_URL": self.database_url,
                "RATIONALE_SECRET_KEY": secrets.token_urlsafe(48),
                "RATIONALE_API_KEYS": f"{self.backend_key}:backend,{self.support_key}:support",
                "RATIONALE_MODELS_DIR": str(self.models_dir),
            }
        )
        return env

    def start(self) -> Server:
        self._tmp = tempfile.TemporaryDirectory(prefix="rationale-bench-")
        self.folder = Path(self._tmp.name)
        self.port = free_port()
        log = (self.folder / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(RATIONALE),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=self.env(),
            cwd=str(ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() ends exactly this tree
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {self.ready_timeout}s:\n{self.log_tail()}")

    def request_json(
        self, path: str, body: dict[str, Any] | None = None, timeout: float = 60.0
    ) -> tuple[int, Any]:
        """One GET (or POST of ``body``) as the backend role: (status, parsed JSON body)."""
        import json

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method="GET" if body is None else "POST",
            headers={
                "Authorization": f"Bearer {self.backend_key}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        if self.folder is None or not (self.folder / "server.log").exists():
            return ""
        text = (self.folder / "server.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it if it lingers."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stored_explanations(self) -> int:
        """Explanation records in the database (read after stop)."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as con:
            (count,) = con.execute(
                "SELECT count(*) FROM records WHERE type = 'explanation'"
            ).fetchone()
        return int(count)

    def verify_chain(self) -> dict[str, Any]:
        """``rationale records verify`` on the run's database."""
        import json

        done = subprocess.run(
            [str(RATIONALE), "records", "verify", "--database-url", self.database_url],
            env=self.env(),
            capture_output=True,
            timeout=300,
            check=False,
        )
        try:
            result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        except (IndexError, ValueError):
            result = {"ok": False, "error": done.stderr.decode()[-500:]}
        return result

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Server:
        if self.proc is not None:  # ``with Server().start() as s``: already running
            return self
        try:
            return self.start()
        except BaseException:
            self.stop()
            self.cleanup()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.cleanup()
