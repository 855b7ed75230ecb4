"""Schemas every domain shares: identifiers, query parameters whose syntax the document states
exactly (integers, times, cursors), and the problem+json error shape."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

Identifier = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=128)]

CURSOR_PATTERN = r"^[A-Za-z0-9_-]{32}$"
"""A page cursor as the service writes it: 24 bytes (a seq and its MAC) in unpadded base64url."""

_DECIMAL = re.compile(r"-?[0-9]{1,19}")


def _decimal(value: Any) -> Any:
    """A query integer is written in decimal digits: ``1.0``, ``+1`` or ``1_0`` is refused."""
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise PydanticCustomError("int_decimal", "must be an integer written in decimal digits")
    return value


DECIMAL = BeforeValidator(_decimal)
"""Put after the ``Query(ge=…, le=…)`` of an integer query parameter (before it, pydantic
would drop the bounds from the schema): ``Annotated[int, Query(ge=1), DECIMAL]``."""


TIME_MAX_LENGTH = 40
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?"
)
TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date-time", "maxLength": TIME_MAX_LENGTH},
        {"type": "string", "format": "date"},
    ],
    "description": "An RFC 3339 time (2026-11-25T15:00:00Z) or a date (2026-11-25, midnight UTC)",
}


TIME_SYNTAX = "expected an RFC 3339 time such as 2026-11-25T15:00:00Z, or a date"


def is_time(value: str) -> bool:
    """Whether a text is written as an RFC 3339 time or a date (its calendar is checked after)."""
    return len(value) <= TIME_MAX_LENGTH and _TIME.fullmatch(value) is not None


def _time_syntax(value: Any) -> Any:
    if isinstance(value, str) and not is_time(value):
        raise PydanticCustomError("time_syntax", TIME_SYNTAX)
    return value


Time = Annotated[str, BeforeValidator(_time_syntax), WithJsonSchema(TIME_SCHEMA)]
"""A time query parameter (``since``, ``until``), read by ``records.query.parse_time``."""

TimeQuery = Annotated[Time | None, Query()]
CursorQuery = Annotated[
    str | None,
    Query(pattern=CURSOR_PATTERN, description="The previous page's next_cursor"),
]


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
