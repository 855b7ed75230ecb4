"""Audit use cases: verify the chain, list the access log, replay an explanation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from app.access.principals import Principal
from app.compute.batcher import Options, compute_one
from app.errors import Conflict, FieldError, InvalidInput, RationaleError
from app.explanations.service import LIBRARY_VERSIONS
from app.ledger.repository import StoredRecord
from app.records.query import decode_cursor, encode_cursor, parse_time
from app.records.service import log_access, open_sealed, resolve_explanation
from app.runtime.context import Context

REPLAY_TOLERANCE = 1e-9
"""Largest |recorded − replayed| contribution for a replay to match (docs/record.md#replay)."""


async def verify(ctx: Context, seq: int | None, hash_: str | None) -> dict[str, Any]:
    """Recompute the whole chain (streamed); with a kept head, prove it still holds."""
    if (seq is None) != (hash_ is None):
        missing, given = ("hash", "seq") if hash_ is None else ("seq", "hash")
        raise InvalidInput(
            "a kept head is given as both seq and hash",
            errors=[FieldError(missing, f"is required together with {given}")],
        )
    kept = (seq, hash_.lower()) if seq is not None and hash_ is not None else None
    return await asyncio.to_thread(ctx.repository.verify, kept)


def _access_item(stored: StoredRecord) -> dict[str, Any]:
    document = json.loads(stored.document)
    clear = document.get("clear") or {}
    item: dict[str, Any] = {
        "id": document["id"],
        "seq": document["seq"],
        "created_at": document["created_at"],
        "key_id": document["key_id"],
        "role": document["role"],
        "endpoint": clear.get("endpoint"),
        "records": clear.get("records", []),
    }
    for key in ("filters", "format", "through_seq"):
        if key in clear:
            item[key] = clear[key]
    return item


def _export_covers(clear: dict[str, Any], target: dict[str, Any]) -> bool:
    """Whether an export (filters + through_seq) held the target explanation record."""
    if clear.get("format") is None or target.get("seq") is None:
        return False
    if target["seq"] > int(clear.get("through_seq") or 0):
        return False
    if clear.get("format") == "chain":
        return True
    if target.get("type") != "explanation":
        return False
    filters = clear.get("filters") or {}
    if filters.get("subject_unknown"):
        return False
    pairs = (
        ("model", target.get("model_name")),
        ("version", target.get("model_version")),
        ("outcome", target.get("outcome")),
        ("subject_ref", target.get("subject_ref")),
    )
    if any(key in filters and filters[key] != value for key, value in pairs):
        return False
    created = target.get("created_at") or ""
    if "since" in filters and created < filters["since"]:
        return False
    return not ("until" in filters and created > filters["until"])


def _access_page(
    ctx: Context,
    record_id: str | None,
    key_id: str | None,
    since: str | None,
    until: str | None,
    after: int,
    limit: int,
) -> list[StoredRecord]:
    target: dict[str, Any] = {}
    if record_id is not None:
        stored = ctx.repository.by_id(record_id)
        if stored is not None:
            target = json.loads(stored.document)
            clear = target.get("clear") or {}
            target = {
                "seq": stored.seq,
                "created_at": stored.created_at,
                "model_name": (clear.get("model") or {}).get("name"),
                "model_version": (clear.get("model") or {}).get("version"),
                "outcome": (clear.get("prediction") or {}).get("label"),
                "subject_ref": clear.get("subject_ref"),
                "type": stored.type,
            }
    found: list[StoredRecord] = []
    for stored in ctx.repository.iter_access(
        key_id=key_id, record_id=record_id, since=since, until=until, after=after
    ):
        if record_id is not None and stored.target_id != record_id:
            clear = json.loads(stored.document).get("clear") or {}
            named = record_id in (clear.get("records") or [])
            if not (named or (target and _export_covers(clear, target))):
                continue
        found.append(stored)
        if len(found) > limit:
            break
    return found


async def access_log(
    ctx: Context,
    *,
    record_id: str | None,
    key_id: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Who read which record, when: access records in seq order, cursor-paginated. A
    ``record_id`` matches reads naming it and exports whose filters held it."""
    errors: list[FieldError] = []
    bounds: dict[str, str | None] = {"since": None, "until": None}
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            try:
                bounds[name] = parse_time(value, name)
            except InvalidInput as exc:
                errors.extend(exc.errors)
    if errors:
        raise InvalidInput("invalid access-log filters", errors=errors)
    scope = {
        "endpoint": "access-log",
        **{
            k: v
            for k, v in {"record_id": record_id, "principal": key_id, **bounds}.items()
            if v is not None
        },
    }
    after = decode_cursor(ctx, cursor, scope) if cursor else 0
    found = await asyncio.to_thread(
        _access_page, ctx, record_id, key_id, bounds["since"], bounds["until"], after, limit
    )
    page = found[:limit]
    more = len(found) > limit
    return {
        "items": [_access_item(s) for s in page],
        "next_cursor": encode_cursor(ctx, page[-1].seq, scope) if more and page else None,
    }


def _replay(ctx: Context, stored: StoredRecord) -> dict[str, Any]:
    document = json.loads(stored.document)
    clear = document["clear"]
    recorded = clear["explanation"]
    model_ref = clear["model"]
    sealed = open_sealed(ctx, document)
    if sealed is None or sealed.get("input") is None:
        raise Conflict(
            "cannot replay: the input was erased (the subject's data key is destroyed)",
            extra={"reason": "input_erased"},
        )
    model = ctx.catalog.get(model_ref["name"], model_ref["version"])
    if model is None:
        raise Conflict(
            f"cannot replay: model {model_ref['name']!r} version {model_ref['version']!r} "
            "is not loadable with the installed libraries",
            extra={"reason": "model_unavailable"},
        )
    if model.artifact_sha256 != model_ref.get("sha256"):
        raise Conflict(
            "cannot replay: the served artifact differs from the recorded one",
            extra={"reason": "artifact_changed"},
        )
    options = Options(
        method=recorded["method"],
        explained_class=recorded.get("explained_class"),
        output=recorded.get("output"),
        seed=int(recorded.get("seed") or 0),
    )
    try:
        explanation = compute_one(model, sealed["input"], options).explanation
    except RationaleError as exc:
        raise Conflict(
            f"cannot replay: recomputing with {recorded['method']} failed: {exc.detail}",
            extra={"reason": "recompute_failed"},
        ) from exc
    names = model.model.feature_names
    replayed = {n: float(explanation.contributions[i]) for i, n in enumerate(names)}
    differences = []
    for attribution in recorded["attributions"]:
        feature = attribution["feature"]
        now = replayed.get(feature)
        delta = None if now is None else abs(now - float(attribution["contribution"]))
        if delta is None or delta > REPLAY_TOLERANCE:
            differences.append(
                {
                    "feature": feature,
                    "recorded": attribution["contribution"],
                    "replayed": now,
                    "difference": delta,
                }
            )
    recorded_versions: dict[str, Any] = recorded.get("versions") or {}
    versions_changed = {
        name: {"recorded": recorded_versions.get(name), "current": current}
        for name, current in LIBRARY_VERSIONS.items()
        if recorded_versions.get(name) != current
    }
    same_method = explanation.method == recorded["method"]
    return {
        "id": stored.id,
        "decision_id": clear["decision_id"],
        "model": {"name": model.name, "version": model.version, "sha256": model.artifact_sha256},
        "match": same_method and not differences,
        "tolerance": REPLAY_TOLERANCE,
        "method": {"recorded": recorded["method"], "replayed": explanation.method},
        "seed": options.seed,
        "base_value": {"recorded": recorded.get("base_value"), "replayed": explanation.base_value},
        "differences": differences,
        "versions_changed": versions_changed,
    }


async def replay(ctx: Context, principal: Principal, record_id: str) -> dict[str, Any]:
    """Recompute a stored explanation with its recorded model version, method and seed,
    and say whether every contribution matches within 1e-9 (docs/record.md#replay)."""
    found = await asyncio.to_thread(
        resolve_explanation, ctx, principal, "record", record_id=record_id
    )
    stored = found.stored
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(ctx.executor, _replay, ctx, stored)
    await log_access(ctx, principal, "POST /v1/explanations/{id}/replay", [stored.id])
    return result
