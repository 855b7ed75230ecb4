"""Integrity of the record log, and who read what."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.deps import ContextDep, require
from app.api.responses import FastJSON
from app.api.schemas import AccessLog, VerifyReport
from app.security.principals import Permission, Principal
from app.services import audit

router = APIRouter(prefix="/v1/audit", tags=["audit"])
VerifyDep = Annotated[Principal, Depends(require(Permission.VERIFY))]
AccessLogDep = Annotated[Principal, Depends(require(Permission.ACCESS_LOG))]


@router.get("/verify", name="verify", response_model=VerifyReport)
async def verify(
    ctx: ContextDep,
    _: VerifyDep,
    seq: Annotated[int | None, Query(ge=1, le=2**62, description="Seq of a kept head")] = None,
    hash: Annotated[
        str | None, Query(pattern=r"^[0-9a-fA-F]{64}$", description="Hash of a kept head")
    ] = None,
) -> FastJSON:
    """Recompute the chain; name the first bad record or gap; answer the head. With a kept
    head (seq and hash), prove the log still holds it, so removing newer records shows."""
    return FastJSON(await audit.verify(ctx, seq, hash))


@router.get("/access-log", name="access_log", response_model=AccessLog)
async def access_log(
    ctx: ContextDep,
    _: AccessLogDep,
    record_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    principal: Annotated[
        str | None, Query(min_length=1, max_length=32, description="A key id")
    ] = None,
    since: Annotated[str | None, Query(max_length=64, description="ISO 8601")] = None,
    until: Annotated[str | None, Query(max_length=64, description="ISO 8601")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> FastJSON:
    """Access records: the reader's key id and role, the records read (or a query's
    filters), the endpoint and the time."""
    return FastJSON(
        await audit.access_log(
            ctx,
            record_id=record_id,
            key_id=principal,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    )
