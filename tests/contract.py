"""A TestClient that holds every answer to the app's own OpenAPI document.

Routes on the hot path render with orjson and skip FastAPI's response validation; this
client makes the suite check every response it receives instead (status code documented,
content type, body against the response schema), using schemathesis's validator."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import httpx
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"


@cache
def _schema(document: str) -> Any:
    """The loaded document; apps built from the same code share one (loading is slow)."""
    return schemathesis.openapi.from_dict(json.loads(document))


def check_response(app: FastAPI, response: httpx.Response) -> None:
    """Raise when the response does not match the operation the request reached."""
    schema = getattr(app.state, "contract_schema", None)
    if schema is None:
        schema = _schema(json.dumps(app.openapi(), sort_keys=True))
        app.state.contract_schema = schema
    request = response.request
    operation = schema.find_operation_by_path(request.method, request.url.path)
    if operation is None:
        # Not an operation of the document (an unknown path, a method no route serves,
        # /docs): only problems may answer there, apart from the documentation pages.
        if response.status_code >= 400:
            assert response.headers.get("content-type") == PROBLEM, response.text
        return
    documented = operation.definition.raw.get("responses", {})
    assert str(response.status_code) in documented or "default" in documented, (
        f"{request.method} {request.url.path} answered {response.status_code}, "
        f"undocumented (documented: {sorted(documented)}): {response.text[:500]}"
    )
    operation.validate_response(response)


class ContractClient(TestClient):
    """``TestClient`` whose non-streamed responses are checked by ``check_response``."""

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)
        check_response(self.app, response)  # type: ignore[arg-type]
        return response
