"""The newcomer path: a fresh clone, a bare environment, `make run`, the README's own curl lines.

The clone is of the committed HEAD. The environment is what a new user on a stock Linux has:
`env -i` with a PATH of the system's directories (so `python3` is the system's, which Debian
marks externally managed), HOME for the package caches and pip's settings, and the machine's
certificate and package-index variables. Set-up must never write into that system Python.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ON_CI, free_port, report

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEPT = re.compile(r"^(PIP_|UV_|LANG$|LC_ALL$)|CERT|CA_BUNDLE|_PROXY$|_proxy$")
"""Environment variables a user's machine would have that say how to reach the registry."""

pytestmark = [pytest.mark.server, pytest.mark.timeout(600)]


def _system_python() -> Path:
    """The python3 a newcomer's `make run` finds first on the system PATH."""
    found = shutil.which("python3.11", path=SYSTEM_PATH) or shutil.which(
        "python3", path=SYSTEM_PATH
    )
    if found is None:
        if ON_CI:
            pytest.fail(f"CI=true but no python3 on the system PATH {SYSTEM_PATH}")
        pytest.skip(f"no python3 on the system PATH {SYSTEM_PATH}")
    return Path(found).resolve()


def _newcomer_env(cache: Path) -> dict[str, str]:
    """A new user's environment, with package caches of its own that start empty.

    An empty cache is what a new machine has: a warm one keeps index pages from before the
    registry's newest releases, and so can hide an install that a newer release breaks.
    """
    env = {"PATH": SYSTEM_PATH, "HOME": os.environ.get("HOME", "/root")}
    env.update({k: v for k, v in os.environ.items() if KEPT.search(k)})
    env.update(UV_CACHE_DIR=str(cache / "uv"), PIP_CACHE_DIR=str(cache / "pip"))
    return env


def _readme_blocks(readme: str) -> list[str]:
    """The README's shell blocks that call the API with curl, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    return [b for b in blocks if "curl" in b]


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if process.poll() is not None:
            pytest.fail(f"make run exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"/readyz not 200 after {limit} s:\n{log.read_text()[-4000:]}")


def test_fresh_clone_make_run_and_the_readme_curl_lines(tmp_path: Path) -> None:
    python = _system_python()
    stdlib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    managed = (Path(stdlib) / "EXTERNALLY-MANAGED").exists()
    report(f"newcomer: system python {python}, externally managed (PEP 668): {managed}")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    port = free_port()
    env = _newcomer_env(tmp_path / "cache")
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        took = _wait_ready(f"http://127.0.0.1:{port}", process, log, limit=480)
        report(f"newcomer: fresh clone, empty package cache, to /readyz in {took:.1f} s")
        assert (clone / ".venv/bin/python").resolve() == python  # the venv rests on it
        size = subprocess.run(
            ["du", "-sm", str(clone / ".venv")], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        report(f"newcomer: runtime install (.venv) {size} MB")
        installed = subprocess.run(
            [str(clone / ".venv/bin/python"), "-m", "pip", "list", "--format=freeze"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.lower()
        for tool in ("pytest", "ruff", "mypy", "schemathesis", "hypothesis"):
            assert f"\n{tool}==" not in f"\n{installed}", f"{tool} in the runtime install"

        blocks = _readme_blocks((clone / "README.md").read_text())
        assert len(blocks) >= 2, "README lost its curl lines"
        statuses = []
        for block in blocks[:2]:
            script = (
                "set -euo pipefail\n"
                "curl() { command curl -w '\\nHTTP %{http_code}\\n' \"$@\"; }\n"
                + block.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            )
            result = subprocess.run(
                ["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True
            )
            assert result.returncode == 0, result.stderr
            found = re.findall(r"^HTTP (\d{3})$", result.stdout, flags=re.M)
            assert found, result.stdout
            statuses.append(int(found[-1]))
        assert statuses == [201, 200], statuses
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"the server did not stop within 60 s of SIGTERM:\n{log.read_text()}")
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
    shutil.rmtree(clone / ".venv", ignore_errors=True)
