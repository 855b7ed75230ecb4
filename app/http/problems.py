"""Every error leaves as RFC 9457 ``application/problem+json``: the service's own errors,
request validation, the router's 404/405, a database outage, and any unexpected fault
(a 500 naming its request id, never internals).

What a problem echoes is bounded: strings are cut to ``MAX_ECHO`` characters, lone
surrogates are escaped (so the body always encodes), and at most ``MAX_ERRORS`` field
errors are listed, then how many more there were."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.errors import FieldError, InvalidInput, RationaleError, Unavailable

log = structlog.get_logger(__name__)
PROBLEM = "application/problem+json"
MAX_ERRORS = 20
MAX_ECHO = 120
MAX_DETAIL = 400
TYPES = {
    400: "/problems/bad-request",
    404: "/problems/not-found",
    405: "/problems/method-not-allowed",
    500: "/problems/internal",
}


def clean(text: str, limit: int = MAX_ECHO) -> str:
    """A string safe to echo: lone surrogates escaped, cut to ``limit`` characters."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        return f"{text[:limit]}… ({len(text) - limit} more characters)"
    return text


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): _clean_value(v) for k, v in list(value.items())[:MAX_ERRORS]}
    if isinstance(value, (list, tuple)):
        return [_clean_value(v) for v in value[:MAX_ERRORS]]
    return value


def request_id(request: Request) -> str | None:
    """The id the access-log middleware gave this request (None outside it)."""
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def bounded(
    status: int,
    title: str,
    detail: str,
    type_: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A problem document with bounded, always-encodable content: every answer's and every
    stored batch failure's (docs/api.md#errors)."""
    body: dict[str, Any] = {
        "type": type_,
        "title": clean(title, MAX_ECHO),
        "status": status,
        "detail": clean(detail, MAX_DETAIL),
    }
    if errors:
        body["errors"] = [
            {"field": clean(e["field"]), "message": clean(e["message"], MAX_DETAIL)}
            for e in errors[:MAX_ERRORS]
        ]
        if len(errors) > MAX_ERRORS:
            body["errors_omitted"] = len(errors) - MAX_ERRORS
    if extra:
        body.update({clean(k): _clean_value(v) for k, v in extra.items() if k not in body})
    return body


def document(exc: RationaleError) -> dict[str, Any]:
    """The bounded problem document of one of the service's errors."""
    return bounded(
        exc.status_code,
        exc.title,
        exc.detail,
        exc.type_,
        [e.as_dict() for e in exc.errors],
        exc.extra,
    )


def problem(
    status: int,
    title: str,
    detail: str,
    type_: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    request: Request | None = None,
) -> Response:
    """A problem+json response with bounded, always-encodable content."""
    body = bounded(status, title, detail, type_, errors, extra)
    rid = request_id(request) if request is not None else None
    if rid is not None:
        body["request_id"] = rid
    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, status_code=status, media_type=PROBLEM, headers=headers)


def _allowed(request: Request) -> str:
    """Every method some route serves at the request's path (several routes, even from
    several routers, may share a path), found by asking each route as the router does."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return "the body is not valid JSON: " + str(error.get("ctx", {}).get("error", ""))
    return str(error.get("msg", "is invalid"))


def schema_error(errors: Sequence[Any]) -> InvalidInput:
    """The 422 of a body that does not match its schema, from pydantic's errors (a request's,
    or a batch item's checked as its single request)."""
    return InvalidInput(
        "the request does not match the schema",
        errors=[
            FieldError(
                "body"
                if error.get("type") == "json_invalid"
                else _field(tuple(error.get("loc", ()))),
                _message(error),
            )
            for error in errors
        ],
    )


def install(app: FastAPI) -> None:
    """Register the handlers that turn errors into problem+json."""

    @app.exception_handler(RationaleError)
    async def _rationale(request: Request, exc: RationaleError) -> Response:
        return problem(
            exc.status_code,
            exc.title,
            exc.detail,
            exc.type_,
            [e.as_dict() for e in exc.errors],
            exc.headers,
            exc.extra,
            request,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return await _rationale(request, schema_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        phrase = HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = _allowed(request)
        return problem(
            exc.status_code,
            phrase,
            str(exc.detail),
            TYPES.get(exc.status_code, "about:blank"),
            headers=headers or None,
            request=request,
        )

    @app.exception_handler(OperationalError)
    async def _database(request: Request, exc: OperationalError) -> Response:
        log.error("database unavailable", error=str(exc.orig), request_id=request_id(request))
        down = Unavailable("the record store is unavailable; retry shortly", retry_after=2)
        return problem(
            down.status_code,
            down.title,
            down.detail,
            down.type_,
            headers=down.headers,
            request=request,
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        # Starlette's outermost middleware calls this, then re-raises for the server log.
        rid = request_id(request)
        log.error("unhandled error", request_id=rid, error_type=type(exc).__name__)
        return problem(
            500,
            "Internal error",
            "the service failed to answer this request; report it with the request id",
            TYPES[500],
            request=request,
        )
