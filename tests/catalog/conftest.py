"""Fixtures of the catalog tests: a real zip bomb built once (200 MiB inflated, ~655 KB)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.catalog.zips import bomb
from tests.helpers import MODELS

SKOPS = MODELS / "recidivism" / "1" / "model.skops"


@pytest.fixture(scope="session")
def bomb_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recidivism model's real skops members plus a member inflating to 200 MiB."""
    return bomb(SKOPS, tmp_path_factory.mktemp("bomb") / "model.skops")
