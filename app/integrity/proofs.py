"""Signed checkpoints and Merkle proofs of the record log (docs/proofs.md)."""

from __future__ import annotations

import asyncio
import time
from functools import lru_cache
from typing import Any

import structlog

from app.errors import FieldError, InvalidInput, NotFound
from app.integrity.repository import ProofStore
from app.integrity.signing import Signer, checkpoint_body
from app.records.query import decode_cursor, encode_cursor, parse_time
from app.runtime.context import Context

log = structlog.get_logger(__name__)


@lru_cache(maxsize=8)
def _signer(name: str, seed: bytes) -> Signer:
    return Signer(name, seed)


def signer(ctx: Context) -> Signer:
    """The checkpoint signing key of the current server secret."""
    return _signer(ctx.settings.log_origin, ctx.keys.signing_seed)


def proof_store(ctx: Context) -> ProofStore:
    """The proof and checkpoint store over the context's repository."""
    return ProofStore(ctx.repository)


def issue_checkpoint_sync(ctx: Context) -> str:
    """Sign a checkpoint of the log as it stands, keep it, and answer its note text."""
    store = proof_store(ctx)
    key = signer(ctx)
    store.remember_key(key.verifier.key_id_hex, key.verifier.name, key.verifier.encode())
    with store.pinned():
        size = store.tree_size()
        root = store.root(size)
    note = key.sign(checkpoint_body(ctx.settings.log_origin, size, root))
    store.add_checkpoint(size, root.hex(), key.verifier.key_id_hex, note)
    return note


async def issue_checkpoint(ctx: Context) -> str:
    """A signed checkpoint of the current tree (kept in the checkpoint table)."""
    return await asyncio.to_thread(issue_checkpoint_sync, ctx)


async def public_key(ctx: Context, key_id: str | None) -> str:
    """The note verifier key of the current signing key, or of an earlier one by id."""
    current = signer(ctx).verifier
    if key_id is None or key_id.lower() == current.key_id_hex:
        return current.encode()
    found = await asyncio.to_thread(proof_store(ctx).verifier_key, key_id.lower())
    if found is None:
        raise NotFound("no checkpoint signing key with that key id")
    return found


async def list_checkpoints(
    ctx: Context, since: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    """Kept checkpoints in issue order, cursor-paginated."""
    bound = parse_time(since, "since") if since is not None else None
    scope = {"endpoint": "checkpoints", "since": bound}
    after = decode_cursor(ctx, cursor, scope) if cursor else 0
    found = await asyncio.to_thread(
        proof_store(ctx).checkpoints, since=bound, after=after, limit=limit + 1
    )
    page = found[:limit]
    more = len(found) > limit
    return {
        "items": [c.as_dict() for c in page],
        "next_cursor": encode_cursor(ctx, page[-1].id, scope) if more and page else None,
    }


def _tree_size(store: ProofStore, given: int | None, field: str, at_least: int = 1) -> int:
    size = store.tree_size()
    if given is None:
        if size < at_least:
            raise InvalidInput("the log is empty", errors=[FieldError(field, "no records yet")])
        return size
    if given > size:
        raise InvalidInput(
            f"{field} is beyond the log",
            errors=[FieldError(field, f"the log holds {size} records")],
        )
    return given


def _inclusion(ctx: Context, record_id: str, tree_size: int | None) -> dict[str, Any]:
    with proof_store(ctx).pinned() as store:
        return _inclusion_in(store, record_id, tree_size)


def _inclusion_in(store: ProofStore, record_id: str, tree_size: int | None) -> dict[str, Any]:
    leaf = store.record_leaf(record_id)
    if leaf is None:
        raise NotFound("no record with that id")
    index, record_hash = leaf
    size = _tree_size(store, tree_size, "tree_size")
    if index >= size:
        raise InvalidInput(
            "the record is not in a tree of that size",
            errors=[FieldError("tree_size", f"must be at least {index + 1} (the record's seq)")],
        )
    return {
        "tree_size": size,
        "leaf_index": index,
        "record_id": record_id,
        "record_hash": record_hash,
        "hashes": [h.hex() for h in store.inclusion(index, size)],
    }


async def inclusion(ctx: Context, record_id: str, tree_size: int | None) -> dict[str, Any]:
    """RFC 9162 inclusion proof of a record in the tree of ``tree_size`` (default: now)."""
    return await asyncio.to_thread(_inclusion, ctx, record_id, tree_size)


def _consistency(ctx: Context, old: int, new: int | None) -> dict[str, Any]:
    with proof_store(ctx).pinned() as store:
        return _consistency_in(store, old, new)


def _consistency_in(store: ProofStore, old: int, new: int | None) -> dict[str, Any]:
    size = _tree_size(store, new, "to")
    if old > size:
        raise InvalidInput(
            "from is beyond to", errors=[FieldError("from", f"must be at most {size}")]
        )
    return {"from": old, "to": size, "hashes": [h.hex() for h in store.consistency(old, size)]}


async def consistency(ctx: Context, old: int, new: int | None) -> dict[str, Any]:
    """RFC 9162 consistency proof that the tree of ``new`` leaves extends that of ``old``."""
    return await asyncio.to_thread(_consistency, ctx, old, new)


def _due(ctx: Context, store: ProofStore, state: dict[str, float]) -> bool:
    settings = ctx.settings
    size = store.tree_size()
    latest = store.latest_checkpoint()
    last_size = latest.tree_size if latest else 0
    if size <= last_size:
        state["since"] = time.monotonic()
        return False
    every_n, every_t = settings.checkpoint_every_records, settings.checkpoint_every_seconds
    if every_n and size - last_size >= every_n:
        return True
    return bool(every_t) and time.monotonic() - state["since"] >= every_t


async def run_checkpointer(ctx: Context, poll_seconds: float = 1.0) -> None:
    """Issue a checkpoint whenever N records or T seconds have passed since the last one
    while the log grows (every worker runs this; a checkpoint is kept once per size)."""
    if not (ctx.settings.checkpoint_every_records or ctx.settings.checkpoint_every_seconds):
        return
    store = proof_store(ctx)
    state = {"since": time.monotonic()}
    while True:
        await asyncio.sleep(poll_seconds)
        try:
            if await asyncio.to_thread(_due, ctx, store, state):
                await issue_checkpoint(ctx)
                state["since"] = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a database hiccup must not end the loop
            log.warning("periodic checkpoint failed", error=str(exc))
