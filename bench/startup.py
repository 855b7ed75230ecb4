"""Time from ``rationale serve`` to ready: the first /readyz 200, and every worker's
"models loaded" log line. ``python -m bench.startup [workers ...]`` (default 1 and 2)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def session_cpu(sid: int) -> dict[int, tuple[float, int, str]]:
    """CPU seconds (user + system, reaped children included), parent pid and command line of
    every process in a session: unlike wall time, CPU hardly depends on what else runs."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[float, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after the name: state ppid pgrp session ...
            utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
            cpu = (utime + stime + cutime + cstime) / tick
            out[int(entry.name)] = (cpu, int(fields[1]), cmdline)
    return out


def roles(sid: int, processes: dict[int, tuple[float, int, str]]) -> dict[str, list[float]]:
    """CPU seconds by role: the serving parent, the fork server, the workers, the rest."""
    out: dict[str, list[float]] = {"parent": [], "fork server": [], "workers": [], "other": []}
    servers = {
        pid for pid, (_, ppid, cmd) in processes.items() if "forkserver" in cmd and ppid == sid
    }
    for pid, (cpu, ppid, cmd) in processes.items():
        if pid == sid:
            role = "parent"
        elif pid in servers:
            role = "fork server"
        elif ppid in servers or (ppid == sid and "spawn_main" in cmd):
            role = "workers"
        else:
            role = "other"
        out[role].append(round(cpu, 2))
    return out


def measure(workers: int, models_dir: Path = REPO / "models", timeout: float = 300) -> dict:
    """Start a server on a fresh SQLite file; seconds to the first 200 and to each worker."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        log_path = Path(tmp) / "server.log"
        env = {
            **os.environ,
            "RATIONALE_DATABASE_URL": f"sqlite:///{tmp}/r.db",
            "RATIONALE_MODELS_DIR": str(models_dir),
            "RATIONALE_SECRET_KEY": secrets.token_urlsafe(32),
            "RATIONALE_API_KEYS": f"{secrets.token_urlsafe(16)}:admin",
            "RATIONALE_LOG_JSON": "true",
        }
        command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", str(workers)]
        start = time.monotonic()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=tmp,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        first: float | None = None
        cpu: dict[int, tuple[float, int, str]] = {}
        loaded: list[float] = []
        try:
            while time.monotonic() - start < timeout:
                if process.poll() is not None:
                    raise RuntimeError(log_path.read_text()[-3000:])
                if first is None:
                    try:
                        ok = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                        if ok.status_code == 200:
                            first = time.monotonic() - start
                    except httpx.HTTPError:
                        pass
                count = log_path.read_text(errors="replace").count('"models loaded"')
                while len(loaded) < count:
                    loaded.append(time.monotonic() - start)
                if first is not None and len(loaded) >= workers:
                    cpu = session_cpu(process.pid)
                    break
                time.sleep(0.05)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        return {
            "workers": workers,
            "first_ready_s": first,
            "workers_loaded_s": [round(t, 2) for t in loaded],
            "cpu_s_total": round(sum(c for c, _, _ in cpu.values()), 2),
            "cpu_s_by_role": roles(process.pid, cpu),
        }


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [1, 2]
    print(f"load average before: {os.getloadavg()}")
    for workers in counts:
        print(json.dumps(measure(workers)))


if __name__ == "__main__":
    main()


def section(run: Any) -> Any:
    """``make bench`` section: start to /readyz per worker count, wall and CPU seconds."""
    from bench.report import Section, table

    rows, data = [], {}
    for workers in run.settings.workers:
        print(f"startup: {workers} worker(s) ...", flush=True)
        result = measure(workers)
        data[str(workers)] = result
        by_role = result["cpu_s_by_role"]
        rows.append(
            [
                workers,
                result["first_ready_s"],
                max(result["workers_loaded_s"], default=None),
                result["cpu_s_total"],
                ", ".join(f"{v:.2f}" for v in by_role["parent"]),
                ", ".join(f"{v:.2f}" for v in by_role["fork server"]) or "-",
                ", ".join(f"{v:.2f}" for v in by_role["workers"]) or "(in the parent)",
            ]
        )
    md = (
        "`python -m bench.startup`: `rationale serve` on a fresh SQLite file with the demo "
        "models, until /readyz answers 200 and every worker has logged `models loaded` (loaded "
        "and warmed). CPU seconds (user + system of every process of the server) hardly depend "
        "on what else the machine runs; wall seconds do. With several workers, the fork server "
        "imports the service once and workers fork from it; one worker serves in the parent.\n\n"
        + table(
            [
                "workers",
                "first /readyz 200 (s)",
                "every worker ready (s)",
                "CPU s, all processes",
                "CPU s: parent",
                "fork server",
                "each worker",
            ],
            rows,
        )
    )
    return Section("startup", "Startup to /readyz", md, data)
