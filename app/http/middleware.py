"""ASGI middleware: body-size limit, and an access log that never carries ids or queries."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("rationale.access")


class BodyLimit:
    """Answers 413 for bodies over the limit, by header or by what actually arrives."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, paths: dict[tuple[str, str], int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths or {}
        """Other limits by (method, exact path), e.g. model uploads."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get((scope.get("method", ""), scope.get("path", "")), self.max_bytes)
        if limit != self.max_bytes:
            await BodyLimit(self.app, limit)(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(scope, send)
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        problem: dict[str, Any] = {
            "type": "/problems/payload-too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"the request body is over the limit of {self.max_bytes} bytes",
            "errors": [{"field": "body", "message": f"larger than {self.max_bytes} bytes"}],
        }
        rid = (scope.get("state") or {}).get("request_id")
        if rid is not None:
            problem["request_id"] = rid
        body = orjson.dumps(problem)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class AccessLog:
    """One log line per request: request id, method, route template (never the concrete
    path, which may carry a decision or subject id), status and duration. Query strings are
    never logged. Each request gets an id (``request.state.request_id``, the ``X-Request-Id``
    response header, and ``request_id`` in any problem body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            log.info(
                "request",
                request_id=rid,
                method=scope.get("method"),
                route=template,
                status=status["code"],
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
