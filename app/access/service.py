"""API keys beyond the environment's bootstrap keys: create, list, revoke, authenticate
(docs/access.md#keys). A revoked key is refused by every worker within ``KEY_CACHE_SECONDS``."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import secrets
import threading
import time
from typing import Any

from app.access.principals import KEY_ROLES, Principal, Role, key_id
from app.access.repository import KeyStore, StoredKey
from app.ledger.chain import Draft
from app.ledger.repository import Repository

KEY_CACHE_SECONDS = 2.0
"""How long a worker trusts what it read of a stored key (revocation reaches every worker
within this)."""

_cache: dict[tuple[int, str], tuple[float, Principal | None]] = {}
_cache_lock = threading.Lock()


def _lookup(repository: Repository, digest: str) -> Principal | None:
    stored = KeyStore(repository).by_secret_hash(digest)
    if stored is None or stored.revoked_at is not None or stored.role not in KEY_ROLES:
        return None
    return Principal(stored.key_id, Role(stored.role))


async def authenticate(repository: Repository, secret: str) -> Principal | None:
    """The principal of a key created with ``rationale keys create``, if active (cached
    for a couple of seconds per worker)."""
    digest = hashlib.sha256(secret.encode()).hexdigest()
    slot = (id(repository), digest)
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(slot)
    if cached is not None and cached[0] > now:
        return cached[1]
    principal = await asyncio.to_thread(_lookup, repository, digest)
    with _cache_lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[slot] = (now + KEY_CACHE_SECONDS, principal)
    return principal


def admin_draft(
    event: str, details: dict[str, Any], actor: Principal | None = None, **columns: Any
) -> Draft:
    """An ``admin_event`` draft (who, what; the chain adds when): the command line's
    operator when no principal acts; ``columns`` are the record's query columns."""
    who = actor or Principal("cli", Role.ADMIN)
    clear: dict[str, Any] = {"event": event, **details}
    if actor is None:
        clear["operator"] = f"cli:{getpass.getuser()}"
    return Draft(type="admin_event", key_id=who.key_id, role=who.role.value, clear=clear, **columns)


def admin_event(
    repository: Repository, event: str, details: dict[str, Any], actor: Principal | None = None
) -> str:
    """Append an ``admin_event`` record (who, what, when; nothing secret); its id."""
    draft = admin_draft(event, details, actor)
    (outcome,) = repository.append([(draft, None)])
    assert outcome.record is not None
    return outcome.record.id


def create_key(repository: Repository, name: str, role: Role) -> tuple[str, StoredKey]:
    """A new random key: (the secret, shown once; what is stored)."""
    if role not in KEY_ROLES:
        raise ValueError(f"no key may carry the {role.value} role")
    secret = secrets.token_urlsafe(32)
    stored = KeyStore(repository).add(
        key_id(secret), hashlib.sha256(secret.encode()).hexdigest(), name, role.value
    )
    admin_event(
        repository, "key_created", {"key": stored.key_id, "name": name, "key_role": role.value}
    )
    return secret, stored


def revoke_key(repository: Repository, key: str) -> bool:
    """Revoke a created key by id; False when no active key has that id."""
    if not KeyStore(repository).revoke(key):
        return False
    admin_event(repository, "key_revoked", {"key": key})
    return True


def list_keys(repository: Repository) -> list[StoredKey]:
    """Every created key, revoked ones included."""
    return KeyStore(repository).all()
