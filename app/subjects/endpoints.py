"""Erasure of a person's personal data (admin; docs/privacy.md#erasure)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from app.access.principals import Permission, Principal
from app.http.deps import ContextDep, require
from app.http.responses import FastJSON
from app.http.schemas import ID_PATTERN, Problem
from app.subjects import service as erasure
from app.subjects.schemas import ErasureResult

router = APIRouter(prefix="/v1", tags=["privacy"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 404, 409, 422)
}
EraseDep = Annotated[Principal, Depends(require(Permission.ERASE))]
Identifier = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]


@router.delete("/subjects/{subject_id}", response_model=ErasureResult, responses=ERRORS)
async def erase_subject(subject_id: Identifier, ctx: ContextDep, principal: EraseDep) -> FastJSON:
    """Crypto-shred a person: their data key is destroyed and an ``erasure`` record
    appended. Their sealed data is unreadable everywhere afterwards; hashes, decisions and
    contributions remain. 404 for a subject never seen or already erased."""
    return FastJSON(await erasure.erase_subject(ctx, principal, subject_id))


@router.delete(
    "/decisions/{decision_id}/personal-data", response_model=ErasureResult, responses=ERRORS
)
async def erase_decision(decision_id: Identifier, ctx: ContextDep, principal: EraseDep) -> FastJSON:
    """Erase the personal data of a decision sent without a subject id (409 if it has one:
    erase the subject instead)."""
    return FastJSON(await erasure.erase_decision(ctx, principal, decision_id))
