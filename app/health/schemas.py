"""Schemas of the health endpoints: liveness and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.catalog.schemas import RefusedVersionOut, _Open


class Health(_Open):
    status: Literal["ok"]


class Readiness(_Open):
    """Whether the process serves: schema migrated and models loaded."""

    ready: bool
    models: int
    refused: int
    refused_versions: list[RefusedVersionOut] = Field(default_factory=list)
    problems: list[str] | None = Field(
        default=None, description="Why the process does not serve (with a 503)."
    )
