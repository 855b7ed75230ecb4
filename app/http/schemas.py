"""Schemas every domain shares: identifiers and the problem+json error shape."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

Identifier = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=128)]


class FieldProblem(BaseModel):
    """One problem with one request field (dotted path, e.g. ``instance.age``)."""

    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem; the members after ``detail`` appear where they apply."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="Input errors, each naming its field (the first ones)"
    )
    errors_omitted: int | None = Field(
        default=None, description="How many more input errors there were than listed"
    )
    request_id: str | None = Field(default=None, description="Quote it when reporting a fault")
    record_id: str | None = Field(default=None, description="The record a conflict is about")
    reason: str | None = Field(default=None, description="Why a replay was impossible")
    figure: str | None = Field(default=None, description="The fidelity figure that failed")
    value: float | None = Field(default=None, description="Its value")
    threshold: float | None = Field(default=None, description="The bound it missed")
