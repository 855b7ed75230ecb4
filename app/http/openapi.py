"""The OpenAPI document as the contract: clean operation ids, and every error response
documented as ``application/problem+json`` with the ``Problem`` schema.

Routes declare what they answer on success and the errors particular to them; the errors
every route can give are added here from what the route is: any route may answer 500; a
route under ``/v1`` may answer 503 (the record store down); a route behind a key 401 and
403; a route with parameters or a body 422; a route with a body 400 (unreadable) and 413."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from app.http.problems import PROBLEM
from app.http.schemas import Problem

METHODS = ("get", "put", "post", "delete", "patch")
DESCRIPTIONS = {
    400: "The body cannot be read (e.g. not UTF-8)",
    401: "A valid API key is required",
    403: "The key's role may not use this endpoint",
    404: "Not found",
    409: "Conflict",
    413: "The body is over the size limit",
    422: "Invalid input: the errors name each field",
    500: "An unexpected fault (a bug): quote the request id",
    503: "A dependency is down: retry after the Retry-After seconds",
}
REF = {"$ref": "#/components/schemas/Problem"}
REFUSED = "x-refused-when"
Reason = tuple[str, str]
"""A field (errors naming it or a field under it) and when it is refused."""
CURSOR: Reason = (
    "cursor",
    "a cursor this query did not return (cursors are MACed with their query's filters)",
)
RANGE: Reason = ("until", "earlier than since")
OFF_CALENDAR = "a time not on the calendar (February 30th, a leap second) or beyond it in UTC"
TIMES: tuple[Reason, ...] = (("since", OFF_CALENDAR), ("until", OFF_CALENDAR))
WHOLE = "written with a fraction part, as 3.0 (requests are strict: an integer is written 3)"
INTEGERS: tuple[Reason, ...] = (("options.top_k", WHOLE), ("options.seed", WHOLE))
"""The explanation options' integers, which JSON Schema cannot tell from 3.0."""


def refused(*reasons: Reason) -> dict[int | str, dict[str, Any]]:
    """A route's 422 for schema-valid input refused for ``reasons`` the schema cannot state."""
    listed = [{"field": field, "when": when} for field, when in reasons]
    return {422: {"model": Problem, REFUSED: listed}}


def operation_id(route: APIRoute) -> str:
    """A route's operation id is its name (unique across the API; a test checks), so a
    generated client reads ``explanations.create(...)``: the tag is the module."""
    return route.name


def _error_codes(path: str, operation: dict[str, Any]) -> set[int]:
    codes = {500}
    if path.startswith("/v1/"):
        codes.add(503)
    if operation.get("security"):
        codes |= {401, 403}
    if operation.get("parameters") or operation.get("requestBody"):
        codes.add(422)
    if operation.get("requestBody"):
        codes |= {400, 413}
    return codes


def _is_problem(response: dict[str, Any]) -> bool:
    """An error response without a body schema of its own (readyz's 503 has one)."""
    for media in (response.get("content") or {}).values():
        ref = (media.get("schema") or {}).get("$ref", "")
        if ref and not ref.endswith(("/HTTPValidationError", "/Problem")):
            return False
    return True


def _problem_schemas() -> dict[str, Any]:
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "Problem": schema}


def contract(app: FastAPI) -> dict[str, Any]:
    """Build (once) the app's OpenAPI document with problem responses filled in."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(_problem_schemas())
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for code in _error_codes(path, operation):
                responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400 and _is_problem(response):
                    status = int(code)
                    response["description"] = DESCRIPTIONS.get(status, response["description"])
                    if response.get(REFUSED):
                        response["description"] += "; also, though the schema allows it: " + (
                            "; ".join(f"{r['field']}: {r['when']}" for r in response[REFUSED])
                        )
                    response["content"] = {PROBLEM: {"schema": REF}}
                    if status == 503:
                        response["headers"] = {
                            "Retry-After": {
                                "description": "Seconds to wait before retrying",
                                "schema": {"type": "integer"},
                            }
                        }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = document
    return document


def install(app: FastAPI) -> None:
    """Serve ``contract(app)`` as ``/openapi.json``."""
    app.openapi = lambda: contract(app)  # type: ignore[method-assign]
