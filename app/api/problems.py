"""Every error leaves as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import RationaleError, Unavailable

log = structlog.get_logger(__name__)
PROBLEM = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    type_: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Register the handlers that turn errors into problem+json."""

    @app.exception_handler(RationaleError)
    async def _rationale(_request: Request, exc: RationaleError) -> JSONResponse:
        return problem(
            exc.status_code,
            exc.title,
            exc.detail,
            exc.type_,
            [e.as_dict() for e in exc.errors],
            exc.headers,
            exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            message = str(error.get("msg", "is invalid"))
            if error.get("type") == "json_invalid":
                message = "the body is not valid JSON: " + str(
                    error.get("ctx", {}).get("error", "")
                )
            errors.append({"field": _field(tuple(error.get("loc", ()))), "message": message})
        return problem(
            422,
            "Invalid input",
            "the request does not match the schema",
            "/problems/invalid-input",
            errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(
            exc.status_code,
            str(exc.detail),
            str(exc.detail),
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(OperationalError)
    async def _database(_request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable", error=str(exc.orig))
        down = Unavailable("the record store is unavailable; retry shortly", retry_after=2)
        return problem(down.status_code, down.title, down.detail, down.type_, headers=down.headers)
