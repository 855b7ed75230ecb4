"""Refused model versions in responses: readiness and the model list (typed)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RefusedVersionOut(BaseModel):
    """A model version folder that is not served, and why (in words its owner understands)."""

    name: str = Field(description="Model name (the folder's parent name).")
    version: str = Field(description="Version (the folder's name).")
    folder: str = Field(description="`<name>/<version>` under the models folder.")
    reason: str = Field(description="Why the version was refused at load.")
