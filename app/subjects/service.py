"""Erasure of a person's data by crypto-shredding (docs/privacy.md#erasure)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.access.principals import Principal
from app.errors import Conflict, NotFound
from app.ledger.chain import Draft
from app.ledger.repository import Subject
from app.person.service import revoke_subject_links
from app.runtime.context import Context


def _erase(ctx: Context, principal: Principal, digest: str, scope: str) -> dict[str, Any] | None:
    def draft_for(subject: Subject, count: int) -> Draft:
        return Draft(
            type="erasure",
            key_id=principal.key_id,
            role=principal.role.value,
            clear={"erased_subject_ref": subject.ref, "records": count, "scope": scope},
        )

    ctx.subject_keys.evict(digest)  # other processes learn it from their next append
    erased = ctx.repository.erase_subject(digest, draft_for)
    if erased is None:
        return None
    subject, count, record = erased
    # Their links open nothing from now on (the page needs the data key just destroyed);
    # revoking them says so in the state and the chain (docs/person.md#links).
    revoke_subject_links(ctx, principal, subject.ref, record.id)
    return {"subject_ref": subject.ref, "records": count, "erasure_record": record.id}


async def erase_subject(ctx: Context, principal: Principal, subject_id: str) -> dict[str, Any]:
    """Destroy a subject's data key and append an ``erasure`` record; 404 for a subject
    never seen or already erased."""
    digest = ctx.keys.subject_digest("subject", subject_id)
    result = await asyncio.to_thread(_erase, ctx, principal, digest, "subject")
    if result is None:
        raise NotFound("no subject with that id (never seen, or already erased)")
    return result


def _erase_decision(ctx: Context, principal: Principal, decision_id: str) -> dict[str, Any]:
    stored = ctx.repository.by_decision(decision_id)
    if stored is None:
        raise NotFound("no explanation record with that decision id")
    result = _erase(ctx, principal, ctx.keys.subject_digest("decision", decision_id), "decision")
    if result is not None:
        return result
    if stored.subject_ref and ctx.repository.subject_by_ref(stored.subject_ref) is not None:
        raise Conflict(
            "this decision was sent with a subject id: erase the subject with "
            "DELETE /v1/subjects/{subject_id}",
            extra={"reason": "has_subject"},
        )
    raise NotFound("this decision's personal data is already erased")


async def erase_decision(ctx: Context, principal: Principal, decision_id: str) -> dict[str, Any]:
    """Erase the personal data of a decision sent without a subject id."""
    return await asyncio.to_thread(_erase_decision, ctx, principal, decision_id)
