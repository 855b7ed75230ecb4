"""Integrity of the record log, and who read what."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse

from app.access.principals import Permission, Principal
from app.http.deps import ContextDep, require
from app.http.openapi import CURSOR, RANGE, TIMES, refused
from app.http.responses import FastJSON
from app.http.schemas import DECIMAL, CursorQuery, Problem, TimeQuery
from app.integrity import proofs
from app.integrity import service as audit
from app.integrity.schemas import (
    AccessLog,
    CheckpointList,
    ConsistencyProof,
    InclusionProof,
    VerifyReport,
)

router = APIRouter(prefix="/v1/audit", tags=["audit"])
VerifyDep = Annotated[Principal, Depends(require(Permission.VERIFY))]
AccessLogDep = Annotated[Principal, Depends(require(Permission.ACCESS_LOG))]


@router.get(
    "/verify",
    name="verify",
    response_model=VerifyReport,
    responses=refused(("seq", "given without hash"), ("hash", "given without seq")),
)
async def verify(
    ctx: ContextDep,
    _: VerifyDep,
    seq: Annotated[
        int | None, Query(ge=1, le=2**62, description="Seq of a kept head"), DECIMAL
    ] = None,
    hash: Annotated[
        str | None, Query(pattern=r"^[0-9a-fA-F]{64}$", description="Hash of a kept head")
    ] = None,
) -> FastJSON:
    """Recompute the chain; name the first bad record or gap; answer the head. With a kept
    head (seq and hash), prove the log still holds it, so removing newer records shows."""
    return FastJSON(await audit.verify(ctx, seq, hash))


@router.get(
    "/access-log",
    name="access_log",
    response_model=AccessLog,
    responses=refused(CURSOR, RANGE, *TIMES),
)
async def access_log(
    ctx: ContextDep,
    _: AccessLogDep,
    record_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    principal: Annotated[
        str | None, Query(min_length=1, max_length=32, description="A key id")
    ] = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000), DECIMAL] = 100,
    cursor: CursorQuery = None,
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


TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
SIZE = Annotated[int | None, Query(ge=1, le=2**62), DECIMAL]


@router.get("/checkpoint", response_class=PlainTextResponse, responses={200: TEXT})
async def checkpoint(ctx: ContextDep, _: VerifyDep) -> PlainTextResponse:
    """A signed checkpoint of the log as it stands: a C2SP tlog-checkpoint in a signed note
    (origin, tree size, base64 Merkle root, an Ed25519 signature line). Kept as issued."""
    return PlainTextResponse(await proofs.issue_checkpoint(ctx))


@router.get(
    "/public-key",
    response_class=PlainTextResponse,
    responses={200: TEXT, 404: {"model": Problem}},
)
async def public_key(
    ctx: ContextDep,
    _: VerifyDep,
    key_id: Annotated[
        str | None,
        Query(pattern=r"^[0-9a-fA-F]{8}$", description="An earlier signing key's id"),
    ] = None,
) -> PlainTextResponse:
    """The C2SP note verifier key that checks checkpoints: ``<name>+<key id>+<key>``."""
    return PlainTextResponse(await proofs.public_key(ctx, key_id) + "\n")


@router.get("/checkpoints", response_model=CheckpointList, responses=refused(CURSOR, TIMES[0]))
async def checkpoints(
    ctx: ContextDep,
    _: VerifyDep,
    since: TimeQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000), DECIMAL] = 100,
    cursor: CursorQuery = None,
) -> FastJSON:
    """Checkpoints issued (on request, and every N records or T seconds), oldest first."""
    return FastJSON(await proofs.list_checkpoints(ctx, since, limit, cursor))


@router.get(
    "/proof/inclusion",
    response_model=InclusionProof,
    responses={
        404: {"model": Problem},
        **refused(("tree_size", "beyond the log, or smaller than the record's seq")),
    },
)
async def inclusion_proof(
    ctx: ContextDep,
    _: VerifyDep,
    record_id: Annotated[str, Query(min_length=1, max_length=64)],
    tree_size: SIZE = None,
) -> FastJSON:
    """RFC 9162 §2.1.3 inclusion proof of a record (leaf seq − 1) in the tree of
    ``tree_size`` records (default: the whole log)."""
    return FastJSON(await proofs.inclusion(ctx, record_id, tree_size))


@router.get(
    "/proof/consistency",
    response_model=ConsistencyProof,
    responses=refused(("from", "greater than to"), ("to", "beyond the log (or the log is empty)")),
)
async def consistency_proof(
    ctx: ContextDep,
    _: VerifyDep,
    from_: Annotated[int, Query(alias="from", ge=1, le=2**62), DECIMAL],
    to: SIZE = None,
) -> FastJSON:
    """RFC 9162 §2.1.4 consistency proof that the tree of ``to`` records (default: the
    whole log) extends the tree of ``from`` records."""
    return FastJSON(await proofs.consistency(ctx, from_, to))
