"""The install artefacts agree: two locks that never disagree, a Dockerfile that could build.

No Docker engine runs here, so the image is not built; what can be checked without one is.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(lock: Path) -> dict[str, str]:
    """Package name → pinned version of a `uv pip compile` lock."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^ \\]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_locks_record_versions_and_hashes_only() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text()
        assert "://" not in text, f"{lock} records an address"
        for line in text.splitlines():
            if re.match(r"^[A-Za-z0-9]", line):
                assert "==" in line and line.rstrip().endswith("\\"), line  # pinned, hashed


def test_the_runtime_lock_holds_no_development_package_and_the_locks_agree() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _pins(ROOT / "requirements.lock")
    development = _pins(ROOT / "requirements-dev.lock")
    dev_only = {_name(r) for r in project["optional-dependencies"]["dev"]} - {
        _name(r) for r in project["dependencies"]
    }
    assert dev_only, "the dev extra lists nothing"
    assert not dev_only & set(runtime), dev_only & set(runtime)
    assert {_name(r) for r in project["dependencies"]} <= set(runtime)
    disagree = {n: (v, development[n]) for n, v in runtime.items() if development.get(n) != v}
    assert not disagree, f"the development lock pins these differently or not at all: {disagree}"


def test_every_file_the_dockerfile_copies_exists_and_it_installs_the_runtime_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, flags=re.M)
    assert copies
    for line in copies:
        *sources, _destination = [p for p in line.split() if not p.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    assert "requirements.lock" in dockerfile
    assert "requirements-dev.lock" not in dockerfile
    assert "--require-hashes" in dockerfile
