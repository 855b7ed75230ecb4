"""A request body must arrive in time: a client trickling it in gets 408, not a held slot.

uvicorn bounds idle keep-alive connections but not a body arriving a byte at a time; this
middleware gives the whole body ``seconds`` from the first read. Once the body is complete,
``receive`` is passed through untouched (it then only reports a disconnect)."""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTimedOut(Exception):
    pass


class BodyTimeout:
    """Answers 408 when the request body is not complete within ``seconds``."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        complete = False
        started = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise _BodyTimedOut from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, watched_send)
        except _BodyTimedOut:
            if not started:
                await self._timed_out(send)

    async def _timed_out(self, send: Send) -> None:
        body = orjson.dumps(
            {
                "type": "/problems/request-timeout",
                "title": "Request timeout",
                "status": 408,
                "detail": f"the request body did not arrive within {self.seconds:g} s",
                "errors": [{"field": "body", "message": "arrived too slowly"}],
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 408,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
