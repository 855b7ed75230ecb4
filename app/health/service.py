"""Readiness: the schema migrated, models loaded, the record writer running, the store up."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.runtime import lifecycle
from app.runtime.context import Context

PROBE_SECONDS = 3.0
"""Longest a readiness probe waits for the database."""
PROBE_CACHE_SECONDS = 1.0
"""A probe's answer is reused this long, so frequent polling costs the store little."""

_last: dict[int, tuple[float, str | None]] = {}


def _ping(ctx: Context) -> None:
    with ctx.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


async def database_problem(ctx: Context) -> str | None:
    """Why the record store cannot be reached, or None (probed at most once a second)."""
    now = time.monotonic()
    known = _last.get(id(ctx))
    if known is not None and now - known[0] < PROBE_CACHE_SECONDS:
        return known[1]
    problem: str | None = None
    try:
        await asyncio.wait_for(asyncio.to_thread(_ping, ctx), PROBE_SECONDS)
    except TimeoutError:
        problem = f"the record store did not answer within {PROBE_SECONDS:g} s"
    except SQLAlchemyError as exc:
        problem = (
            f"the record store is unavailable ({type(getattr(exc, 'orig', None) or exc).__name__})"
        )
    _last[id(ctx)] = (time.monotonic(), problem)
    return problem


async def readiness(ctx: Context) -> tuple[bool, dict[str, Any]]:
    """Whether the process can serve, and the figures ``/readyz`` shows."""
    problems: list[str] = []
    if not ctx.ready:
        problems.append("starting or stopping")
    if (fatal := lifecycle.failed()) is not None:
        problems.append(fatal)
    if not ctx.writer.alive:
        problems.append("the record writer is not running")
    if ctx.ready and (down := await database_problem(ctx)) is not None:
        problems.append(down)
    body: dict[str, Any] = {
        "ready": not problems,
        "models": len(ctx.catalog),
        "refused": len(ctx.catalog.refused),
        "refused_versions": [r.as_dict() for r in ctx.catalog.refused_versions()],
    }
    if problems:
        body["problems"] = problems
    return not problems, body
