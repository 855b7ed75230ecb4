"""Reading records as a person sees them: sealed parts opened for the roles that may,
and every such read logged as an ``access`` record before the content leaves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag

from app.access.principals import LOGGED_ROLES, UNSEALED_ROLES, Principal
from app.errors import NotFound
from app.ledger.chain import Draft, associated_data
from app.ledger.crypto import ServerKeys, unseal
from app.ledger.repository import Repository, StoredRecord, Subject
from app.runtime.context import Context


def _unseal_with(
    keys: ServerKeys, document: dict[str, Any], subject: Subject | None
) -> dict[str, Any] | None:
    sealed = document.get("sealed")
    if not sealed or subject is None:
        return None
    data_key = keys.unwrap_data_key(subject.wrapped_key, subject.ref)
    aad = associated_data(document["id"], document["type"], document["v"])
    try:
        plaintext: dict[str, Any] = json.loads(unseal(data_key, sealed, aad))
    except InvalidTag:
        return None
    return plaintext


def _subject_ref(document: dict[str, Any]) -> str | None:
    ref = (document.get("clear") or {}).get("subject_ref")
    return ref if isinstance(ref, str) else None


def open_sealed(ctx: Context, document: dict[str, Any]) -> dict[str, Any] | None:
    """Decrypt a record's sealed part; None when there is none or its key was destroyed."""
    ref = _subject_ref(document)
    if not document.get("sealed") or ref is None:
        return None
    return _unseal_with(ctx.keys, document, ctx.repository.subject_by_ref(ref))


def explanation_view(
    document: dict[str, Any], sealed: dict[str, Any] | None, stored: StoredRecord
) -> dict[str, Any]:
    """The explanation record in the API's shape (docs/api.md#explaining-a-decision); sealed fields
    null when withheld."""
    clear = document["clear"]
    explanation = dict(clear["explanation"])
    values = (sealed or {}).get("attribution_values") or {}
    explanation["attributions"] = [
        {
            "feature": a["feature"],
            "value": values.get(a["feature"]),
            "contribution": a["contribution"],
            **({"standard_error": a["standard_error"]} if "standard_error" in a else {}),
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


def review_view(document: dict[str, Any], sealed: dict[str, Any] | None) -> dict[str, Any]:
    """A review record as listed under its explanation: clear fields, the note if readable."""
    hidden = ("target_id", "subject_ref", "decision_id")
    clear = {k: v for k, v in (document.get("clear") or {}).items() if k not in hidden}
    view: dict[str, Any] = {
        "id": document["id"],
        "created_at": document["created_at"],
        "key_id": document["key_id"],
        "role": document["role"],
        **clear,
    }
    if document.get("sealed"):
        view["note"] = (sealed or {}).get("note")
        if document.get("type") == "review":
            view["public_note"] = (sealed or {}).get("public_note")
        view["sealed"] = "open" if sealed is not None else "withheld"
    return view


def render_explanations(
    ctx: Context, stored: Sequence[StoredRecord], principal: Principal
) -> list[dict[str, Any]]:
    """Views of explanation records with their reviews, as the principal may see them."""
    unsealed = principal.role in UNSEALED_ROLES
    return render_page(ctx.repository, ctx.keys if unsealed else None, stored)


def render_page(
    repository: Repository, keys: ServerKeys | None, stored: Sequence[StoredRecord]
) -> list[dict[str, Any]]:
    """Views of one page of explanation records with their reviews; subjects and reviews
    are fetched in one query each, not per record. ``keys`` None: sealed parts withheld."""
    documents = [json.loads(s.document) for s in stored]
    ids = [s.id for s in stored]
    review_docs = {
        target: [json.loads(r.document) for r in items]
        for target, items in repository.children_of(ids, "review").items()
    }
    request_docs = {
        target: [json.loads(r.document) for r in items]
        for target, items in repository.children_of(ids, "review_request").items()
    }
    subjects: dict[str, Subject] = {}
    if keys is not None:
        refs = {_subject_ref(d) for d in documents}
        refs |= {
            _subject_ref(d)
            for linked in (review_docs, request_docs)
            for items in linked.values()
            for d in items
        }
        subjects = repository.subjects_by_refs(r for r in refs if r is not None)

    def opened(document: dict[str, Any]) -> dict[str, Any] | None:
        if keys is None:
            return None
        ref = _subject_ref(document)
        return _unseal_with(keys, document, subjects.get(ref) if ref else None)

    views = []
    for record, document in zip(stored, documents, strict=True):
        view = explanation_view(document, opened(document), record)
        view["reviews"] = [review_view(d, opened(d)) for d in review_docs.get(record.id, [])]
        view["review_requests"] = [
            review_view(d, opened(d)) for d in request_docs.get(record.id, [])
        ]
        views.append(view)
    return views


async def log_access(
    ctx: Context,
    principal: Principal,
    endpoint: str,
    record_ids: list[str],
    filters: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Append the ``access`` record of a read, durably, before its content is sent.

    Roles outside ``LOGGED_ROLES`` (backend) are not logged."""
    if principal.role not in LOGGED_ROLES:
        return
    target_id = record_ids[0] if len(record_ids) == 1 and filters is None else None
    clear: dict[str, Any] = {"endpoint": endpoint, "records": record_ids}
    if target_id is not None:
        clear["target_id"] = target_id
    if filters is not None:
        clear["filters"] = filters
    if extra:
        clear.update(extra)
    draft = Draft(
        type="access",
        key_id=principal.key_id,
        role=principal.role.value,
        clear=clear,
        target_id=target_id,
    )
    await ctx.writer.commit([(draft, None)], ctx.settings.write_timeout_seconds)


def find_explanation(
    ctx: Context, *, record_id: str | None = None, decision_id: str | None = None
) -> StoredRecord:
    """An explanation record by id or decision id, or 404."""
    if record_id is not None:
        stored = ctx.repository.by_id(record_id)
        if stored is not None and stored.type != "explanation":
            stored = None
    else:
        assert decision_id is not None
        stored = ctx.repository.by_decision(decision_id)
    if stored is None:
        raise NotFound("no explanation record with that " + ("id" if record_id else "decision id"))
    return stored


async def read_explanation(
    ctx: Context,
    principal: Principal,
    *,
    record_id: str | None = None,
    decision_id: str | None = None,
    endpoint: str,
) -> dict[str, Any]:
    """An explanation record by id or decision id, as the principal may see it; the access
    record is committed before this returns."""
    stored = find_explanation(ctx, record_id=record_id, decision_id=decision_id)
    (view,) = render_explanations(ctx, [stored], principal)
    await log_access(ctx, principal, endpoint, [stored.id])
    return view


__all__ = [
    "explanation_view",
    "find_explanation",
    "log_access",
    "open_sealed",
    "read_explanation",
    "render_explanations",
    "render_page",
]
