"""Fixtures: a real app over a real database file, driven over HTTP by TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.contract import ContractClient
from tests.helpers import REPORT_LINES, make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(f"sqlite:///{tmp_path / 'rationale.db'}")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with ContractClient(create_app(settings)) as test_client:
        yield test_client


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures tests reported (see ``tests.helpers.report``)."""
    if REPORT_LINES:
        terminalreporter.section("figures reported by tests")
        for line in REPORT_LINES:
            terminalreporter.write_line(line)
