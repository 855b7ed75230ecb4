"""An install reads the locks and nothing else: no config, override or constraint can move a pin.

What `make lock` needs to resolve besides pyproject.toml (lock-build.txt) is applied when the locks
are compiled, never when they are installed. The install commands checked are the ones the
Makefile and the Dockerfile really run: `make -n` prints the Makefile's, the Dockerfile's are
read from its RUN lines (no Docker engine runs here). Each is then run as a dry run with a
package cache of its own, so a newer release on the registry shows here first.

`RATIONALE_INSTALL_ROOT` points the checks at another checkout (for instance an older commit's
files in a `git worktree`), to show what they catch there.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from tests.helpers import report

ROOT = Path(os.environ.get("RATIONALE_INSTALL_ROOT") or Path(__file__).resolve().parents[1])
UV = Path(sys.executable).parent / "uv"
LOCKS = ("requirements.lock", "requirements-dev.lock")
MOVES_A_PIN = re.compile(r"(^|\s)(--override|--constraints?|-c|--build-constraints?)(\s|=|$)")
"""Install flags that would make the resolver read something besides the lock."""


def _pins(lock: Path) -> dict[str, str]:
    """Package name → pinned version of a `uv pip compile` lock."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^ \\]+)", line)
        if match:
            pins[_normal(match.group(1))] = match.group(2)
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _makefile_installs(python: Path) -> list[list[str]]:
    """The uv install commands `make setup-dev` runs, variables expanded, for this python."""
    printed = subprocess.run(
        ["make", "-n", "-B", "setup-dev", f"PY={python}", f"UV={UV}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    commands = [shlex.split(line) for line in printed.splitlines() if " pip install" in line]
    return [c for c in commands if any(Path(part).name == "uv" for part in c)]


def _dockerfile_installs() -> list[list[str]]:
    """The `uv pip install` commands of the Dockerfile's RUN lines."""
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    runs = [i["value"] for i in parser.structure if i["instruction"] == "RUN"]
    commands = []
    for run in runs:
        for part in re.split(r"&&|;", run):
            words = shlex.split(part)
            if words[:3] == ["uv", "pip", "install"]:
                commands.append(words)
    assert commands, "the Dockerfile installs nothing with uv"
    return commands


def _lock_of(command: list[str]) -> str | None:
    for flag, value in itertools.pairwise(command):
        if flag in ("-r", "--requirement"):
            return value
    return None


def test_every_install_step_reads_the_locks_and_nothing_else(tmp_path: Path) -> None:
    commands = _makefile_installs(tmp_path / "venv/bin/python") + _dockerfile_installs()
    locks = {_lock_of(c) for c in commands} - {None}
    assert locks == set(LOCKS), f"install steps read {locks}"
    for command in commands:
        line = shlex.join(command)
        assert "--no-config" in command, f"reads uv's config ([tool.uv], uv.toml): {line}"
        assert not MOVES_A_PIN.search(line), f"an install reads more than the lock: {line}"
        assert "--no-deps" in command, f"resolves again at install: {line}"
        if _lock_of(command):
            assert "--require-hashes" in command, line
        else:  # the project itself: built with the locked setuptools, not the registry's newest
            assert "--no-build-isolation" in command, line


def test_the_makefile_drops_override_and_constraint_variables() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for variable in ("UV_OVERRIDE", "UV_CONSTRAINT", "UV_BUILD_CONSTRAINT"):
        assert f"-u {variable}" in makefile, f"an install would read ${variable}"


def test_any_override_or_constraint_in_the_project_equals_the_lock_pin() -> None:
    """Even config that no install reads must not disagree with the lock it would move."""
    runtime = _pins(ROOT / "requirements.lock") | _pins(ROOT / "requirements-dev.lock")
    sources: dict[str, list[str]] = {}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    uv = pyproject.get("tool", {}).get("uv", {})
    if (ROOT / "uv.toml").exists():
        uv = uv | tomllib.loads((ROOT / "uv.toml").read_text())
    for key in (
        "override-dependencies",
        "constraint-dependencies",
        "build-constraint-dependencies",
    ):
        sources[f"[tool.uv] {key}"] = list(uv.get(key, []))
    for key, entries in sources.items():
        for entry in entries:
            name = _normal(re.split(r"[\[=<>!~; ]", entry, maxsplit=1)[0])
            pin = runtime.get(name)
            assert entry.replace(" ", "") == f"{name}=={pin}", (
                f"{key} has {entry!r} where the lock pins {name}=={pin}: an install that read it"
                " would leave the lock"
            )


def _dry_run(command: list[str], python: Path, cache: Path, hostile: Path | None) -> set[str]:
    """What `command` would install into an empty venv, with its own empty package cache.

    `hostile`, where given, is set as UV_OVERRIDE and UV_CONSTRAINT, as a user's environment
    might have them (a Docker build has neither).
    """
    run = list(command)
    if "--python" in run:
        run[run.index("--python") + 1] = str(python)
    else:
        run[3:3] = ["--python", str(python)]
    if Path(run[0]).name == "uv":
        run[0] = str(UV)
    elif run[0] == "env":
        run[run.index(next(p for p in run if Path(p).name == "uv"))] = str(UV)
    run = [p for p in run if p not in ("--compile-bytecode", "--no-cache")] + ["--dry-run"]
    env = dict(os.environ, UV_CACHE_DIR=str(cache))
    if hostile is not None:
        env |= {"UV_OVERRIDE": str(hostile), "UV_CONSTRAINT": str(hostile)}
    result = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{shlex.join(run)}\n{output}"
    return {f"{_normal(n)}=={v}" for n, v in re.findall(r"^ \+ (\S+)==(\S+)$", output, flags=re.M)}


@pytest.mark.timeout(300)
def test_a_dry_run_install_of_each_lock_resolves_to_exactly_the_locked_set(tmp_path: Path) -> None:
    """The real install commands, an empty venv, an empty cache, and a hostile UV_OVERRIDE."""
    newest = tmp_path / "newest.txt"  # what a machine's environment might carry
    newest.write_text("typer>=0.27.4\nsetuptools>=84.2.2\n")
    commands = [(c, "Makefile") for c in _makefile_installs(Path("PY"))]
    commands += [(c, "Dockerfile") for c in _dockerfile_installs()]
    for command, where in commands:
        lock = _lock_of(command)
        if lock is None:
            continue
        locked = {f"{n}=={v}" for n, v in _pins(ROOT / lock).items()}
        for hostile in (None, newest) if where == "Makefile" else (None,):
            label = f"{where} {lock}" + (", UV_OVERRIDE/UV_CONSTRAINT set" if hostile else "")
            venv = tmp_path / f"venv-{len(list(tmp_path.iterdir()))}"
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            start = time.monotonic()
            would = _dry_run(command, venv / "bin/python", venv / "cache", hostile)
            took = time.monotonic() - start
            assert would == locked, (
                f"{label}: the install leaves the lock: would add {sorted(would - locked)},"
                f" would miss {sorted(locked - would)}"
            )
            assert took < 60, f"{label}: the dry run took {took:.1f} s"
            report(f"install: {label}: {len(would)} packages, empty cache, {took:.1f} s")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_is_a_consistent_set_that_resolves_to_itself(lock: str, tmp_path: Path) -> None:
    """Resolved again (no ``--no-deps``), from an empty cache, a lock asks for nothing else and
    nothing conflicts: an install that left out ``--no-deps`` would get the same set."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    command = [str(UV), "pip", "install", "--no-config", "--python", str(venv / "bin/python")]
    command += ["--require-hashes", "--dry-run", "-r", lock]
    env = {k: v for k, v in os.environ.items() if k not in ("UV_OVERRIDE", "UV_CONSTRAINT")}
    env["UV_CACHE_DIR"] = str(tmp_path / "cache")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{lock} does not resolve as a whole:\n{output}"
    would = {f"{_normal(n)}=={v}" for n, v in re.findall(r"^ \+ (\S+)==(\S+)$", output, flags=re.M)}
    assert would == {f"{n}=={v}" for n, v in _pins(ROOT / lock).items()}
