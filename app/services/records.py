"""Reading records as a person sees them: sealed parts opened for the roles that may,
and every such read logged as an ``access`` record before the content leaves."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from cryptography.exceptions import InvalidTag

from app.errors import NotFound
from app.security.crypto import unseal
from app.security.principals import LOGGED_ROLES, UNSEALED_ROLES, Principal
from app.services.context import Context
from app.store.chain import FORMAT_VERSION, Draft, associated_data
from app.store.repository import StoredRecord


def open_sealed(ctx: Context, document: dict[str, Any]) -> dict[str, Any] | None:
    """Decrypt a record's sealed part; None when there is none or its key was destroyed."""
    sealed = document.get("sealed")
    ref = (document.get("clear") or {}).get("subject_ref")
    if not sealed or not ref:
        return None
    subject = ctx.repository.subject_by_ref(ref)
    if subject is None:
        return None
    data_key = ctx.keys.unwrap_data_key(subject.wrapped_key, subject.ref)
    aad = associated_data(document["id"], document["type"], document["v"])
    try:
        plaintext: dict[str, Any] = json.loads(unseal(data_key, sealed, aad))
    except InvalidTag:
        return None
    return plaintext


def explanation_view(
    document: dict[str, Any], sealed: dict[str, Any] | None, stored: StoredRecord
) -> dict[str, Any]:
    """The explanation record in the API's shape (SPEC §6); sealed fields null when withheld."""
    clear = document["clear"]
    explanation = dict(clear["explanation"])
    values = (sealed or {}).get("attribution_values") or {}
    explanation["attributions"] = [
        {
            "feature": a["feature"],
            "value": values.get(a["feature"]),
            "contribution": a["contribution"],
        }
        for a in explanation["attributions"]
    ]
    return {
        "id": document["id"],
        "decision_id": clear["decision_id"],
        "created_at": document["created_at"],
        "subject_ref": clear["subject_ref"],
        "model": clear["model"],
        "prediction": clear["prediction"],
        "explanation": explanation,
        "reasons": (sealed or {}).get("reasons", []),
        "counterfactual": (sealed or {}).get("counterfactual"),
        "input": (sealed or {}).get("input"),
        "attributes": (sealed or {}).get("attributes"),
        "sealed": "open" if sealed is not None else "withheld",
        "record": {
            "type": document["type"],
            "v": document["v"],
            "seq": stored.seq,
            "hash": stored.hash,
            "prev_hash": stored.prev_hash,
        },
    }


async def log_access(
    ctx: Context,
    principal: Principal,
    endpoint: str,
    record_ids: list[str],
    filters: dict[str, Any] | None = None,
) -> None:
    """Append the ``access`` record of a read, durably, before its content is sent."""
    if principal.role not in LOGGED_ROLES:
        return
    clear: dict[str, Any] = {"endpoint": endpoint, "records": record_ids}
    if filters is not None:
        clear["filters"] = filters
    draft = Draft(
        type="access",
        key_id=principal.key_id,
        role=principal.role.value,
        clear=clear,
        target_id=record_ids[0] if len(record_ids) == 1 else None,
    )
    await asyncio.wrap_future(ctx.writer.submit([(draft, None)]))


def _render(ctx: Context, stored: StoredRecord, principal: Principal) -> dict[str, Any]:
    document = json.loads(stored.document)
    sealed = open_sealed(ctx, document) if principal.role in UNSEALED_ROLES else None
    view = explanation_view(document, sealed, stored)
    view["reviews"] = []
    return view


async def read_explanation(
    ctx: Context,
    principal: Principal,
    *,
    record_id: str | None = None,
    decision_id: str | None = None,
    endpoint: str,
) -> dict[str, Any]:
    """An explanation record by id or decision id, as the principal may see it."""
    if record_id is not None:
        stored = ctx.repository.by_id(record_id)
        if stored is not None and stored.type != "explanation":
            stored = None
    else:
        assert decision_id is not None
        stored = ctx.repository.by_decision(decision_id)
    if stored is None:
        raise NotFound("no explanation record with that " + ("id" if record_id else "decision id"))
    view = _render(ctx, stored, principal)
    await log_access(ctx, principal, endpoint, [stored.id])
    return view


__all__ = ["FORMAT_VERSION", "explanation_view", "log_access", "open_sealed", "read_explanation"]
