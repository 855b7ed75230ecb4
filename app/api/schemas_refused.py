"""Refused model versions in responses: readiness and the model list (typed)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RefusedVersionOut(BaseModel):
    """A model version folder that is not served, and why (in words its owner understands)."""

    name: str = Field(description="Model name (the folder's parent name).")
    version: str = Field(description="Version (the folder's name).")
    folder: str = Field(description="`<name>/<version>` under the models folder.")
    reason: str = Field(description="Why the version was refused at load.")


class Readiness(BaseModel):
    """``GET /readyz``: 200 once the schema is migrated and the models are loaded."""

    ready: bool
    models: int = Field(description="Model versions served.")
    refused: int = Field(description="Model versions refused at load.")
    refused_versions: list[RefusedVersionOut]


class ModelList(BaseModel):
    """``GET /v1/models``: served model names with their versions, and refused versions."""

    items: list[dict[str, Any]] = Field(description="Served names, each with its versions.")
    next_cursor: str | None = None
    refused: list[RefusedVersionOut] = Field(
        default_factory=list, description="Version folders refused at load, and why."
    )
