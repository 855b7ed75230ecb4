"""Reading records as a principal may see them: the one rule of who sees a record's sealed
part (``sight``, docs/privacy.md#who-sees-the-sealed-part), records resolved for a principal by
it, and every read that opens a seal logged as an ``access`` record before the content leaves."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidTag

from app.access.principals import LOGGED_ROLES, UNSEALED_ROLES, Principal, Role
from app.errors import NotFound
from app.ledger.chain import Draft, associated_data
from app.ledger.crypto import ServerKeys, unseal
from app.ledger.repository import Repository, StoredRecord, Subject
from app.runtime.context import Context


class Sight(enum.Enum):
    """How much of an explanation record a principal sees."""

    OPEN = "open"
    """The clear part and the sealed part decrypted: the person's inputs in clear."""
    WITHHELD = "withheld"
    """The clear part only (``"sealed": "withheld"``, ``input`` null)."""
    HIDDEN = "hidden"
    """Nothing: the answer is the 404 of a record that does not exist."""


Use = Literal["record", "report"]
"""What the record is read for: the record itself, or the person's report of it (issued,
previewed, read back, charted: each shows the person's inputs in clear)."""


def sight(principal: Principal, maker: str | None, use: Use) -> Sight:
    """The one rule of who sees what of an explanation record made by the key ``maker``
    (docs/privacy.md#who-sees-the-sealed-part): support, auditor and admin keys see every record
    opened; a backend key sees records with the sealed part withheld, and the report of a
    decision only when it made that decision (it holds the data and passes the report on to
    the person), any other decision's report being hidden as if it did not exist."""
    if principal.role in UNSEALED_ROLES:
        return Sight.OPEN
    if principal.role is Role.SUBJECT:
        # The person, through their private link: the page resolves only the link's own
        # record (docs/person.md), and no API key can carry this role.
        return Sight.OPEN
    if use == "report":
        return Sight.OPEN if maker is not None and maker == principal.key_id else Sight.HIDDEN
    return Sight.WITHHELD


def maker_of(stored: StoredRecord) -> str | None:
    """The key id that made a stored record (its document's ``key_id``)."""
    key = json.loads(stored.document).get("key_id")
    return key if isinstance(key, str) else None


def opener(principal: Principal) -> Callable[[dict[str, Any]], bool]:
    """Whether the principal may see a listed explanation document opened (by ``sight``)."""

    def may_open(document: dict[str, Any]) -> bool:
        return sight(principal, document.get("key_id"), "record") is Sight.OPEN

    return may_open


@dataclass(frozen=True)
class Resolved:
    """An explanation record found for a principal, and how much of it the principal sees."""

    stored: StoredRecord
    sight: Sight

    @property
    def opened(self) -> bool:
        return self.sight is Sight.OPEN


def resolve_explanation(
    ctx: Context,
    principal: Principal,
    use: Use,
    *,
    record_id: str | None = None,
    decision_id: str | None = None,
) -> Resolved:
    """An explanation record by id or decision id as the principal may see it for ``use``;
    404 alike when there is none and when the principal may not see it at all."""
    stored = find_explanation(ctx, record_id=record_id, decision_id=decision_id)
    seen = sight(principal, maker_of(stored), use)
    if seen is Sight.HIDDEN:
        raise _missing(record_id)
    return Resolved(stored, seen)


def resolve_report(ctx: Context, principal: Principal, report_id: str) -> StoredRecord:
    """An issued report record, if the principal may read the report of its decision (by
    ``sight``); 404 alike when there is none and when it may not."""
    stored = ctx.repository.by_id(report_id)
    if stored is None or stored.type != "report":
        raise NotFound("no report record with that id")
    if principal.role not in UNSEALED_ROLES:
        target = ctx.repository.by_id(stored.target_id) if stored.target_id else None
        maker = maker_of(target) if target is not None else None
        if sight(principal, maker, "report") is Sight.HIDDEN:
            raise NotFound("no report record with that id")
    return stored


def _missing(record_id: str | None) -> NotFound:
    return NotFound("no explanation record with that " + ("id" if record_id else "decision id"))


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
    return render_page(ctx.repository, ctx.keys, stored, opener(principal))


def render_page(
    repository: Repository,
    keys: ServerKeys | None,
    stored: Sequence[StoredRecord],
    may_open: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Views of one page of explanation records with their reviews; subjects and reviews
    are fetched in one query each, not per record. ``keys`` None: sealed parts withheld;
    ``may_open`` says which records' sealed parts (and their reviews' notes) are opened."""
    documents = [json.loads(s.document) for s in stored]
    shown = [keys is not None and (may_open is None or may_open(d)) for d in documents]
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
    if any(shown):
        refs = {_subject_ref(d) for d, show in zip(documents, shown, strict=True) if show}
        refs |= {
            _subject_ref(d)
            for linked in (review_docs, request_docs)
            for record, show in zip(stored, shown, strict=True)
            if show
            for d in linked.get(record.id, [])
        }
        subjects = repository.subjects_by_refs(r for r in refs if r is not None)

    def opened(document: dict[str, Any], show: bool) -> dict[str, Any] | None:
        if keys is None or not show:
            return None
        ref = _subject_ref(document)
        return _unseal_with(keys, document, subjects.get(ref) if ref else None)

    views = []
    for record, document, show in zip(stored, documents, shown, strict=True):
        view = explanation_view(document, opened(document, show), record)
        view["reviews"] = [review_view(d, opened(d, show)) for d in review_docs.get(record.id, [])]
        view["review_requests"] = [
            review_view(d, opened(d, show)) for d in request_docs.get(record.id, [])
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
    *,
    opened: bool = False,
) -> None:
    """Append the ``access`` record of a read, durably, before its content is sent.

    Reads by roles outside ``LOGGED_ROLES`` (backend) are logged only when they ``opened`` a
    seal (a backend key reading the report of its own decision)."""
    if principal.role not in LOGGED_ROLES and not opened:
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
        raise _missing(record_id)
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
    found = resolve_explanation(
        ctx, principal, "record", record_id=record_id, decision_id=decision_id
    )
    (view,) = render_page(ctx.repository, ctx.keys if found.opened else None, [found.stored])
    await log_access(ctx, principal, endpoint, [found.stored.id], opened=found.opened)
    return view


__all__ = [
    "Resolved",
    "Sight",
    "explanation_view",
    "find_explanation",
    "log_access",
    "open_sealed",
    "read_explanation",
    "render_explanations",
    "render_page",
    "resolve_explanation",
    "resolve_report",
    "sight",
]
