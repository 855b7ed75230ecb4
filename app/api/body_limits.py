"""Body limits per path: batches have their own (``RATIONALE_MAX_BATCH_BYTES``), every
other route the global one (``RATIONALE_MAX_BODY_BYTES``)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.middleware import BodyLimit


class RouteBodyLimits:
    """``BodyLimit`` with the limit chosen by the exact request path."""

    def __init__(self, app: ASGIApp, default: int, paths: dict[str, int]) -> None:
        self.default = BodyLimit(app, max_bytes=default)
        self.paths = {path: BodyLimit(app, max_bytes=limit) for path, limit in paths.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.paths.get(scope.get("path", "")) if scope["type"] == "http" else None
        await (limit or self.default)(scope, receive, send)
