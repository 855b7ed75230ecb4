"""ASGI middleware: body-size limit, and an access log that never carries ids or queries."""

from __future__ import annotations

import time
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
                await self._too_large(send)
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
                await self._too_large(send)
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

    async def _too_large(self, send: Send) -> None:
        body = orjson.dumps(
            {
                "type": "/problems/payload-too-large",
                "title": "Payload too large",
                "status": 413,
                "detail": f"the request body is over the limit of {self.max_bytes} bytes",
                "errors": [{"field": "body", "message": f"larger than {self.max_bytes} bytes"}],
            }
        )
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
    """One log line per request: method, route template (never the concrete path, which may
    carry a decision or subject id), status and duration. Query strings are never logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            log.info(
                "request",
                method=scope.get("method"),
                route=template,
                status=status["code"],
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
