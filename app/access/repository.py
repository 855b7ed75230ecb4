"""API keys created from the command line: only the secret's SHA-256 is stored
(docs/access.md#keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from app.ledger.chain import now_iso
from app.ledger.repository import Repository
from app.ledger.tables import api_keys


@dataclass(frozen=True)
class StoredKey:
    """A created key: public id, name, role, when created, when revoked (None: active)."""

    key_id: str
    name: str
    role: str
    created_at: str
    revoked_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _key(row: Any) -> StoredKey:
    return StoredKey(row.key_id, row.name, row.role, row.created_at, row.revoked_at)


class KeyStore:
    """The ``api_keys`` table (state, not history: creation and revocation are also
    chained as ``admin_event`` records by the caller)."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository

    def add(self, key_id: str, secret_sha256: str, name: str, role: str) -> StoredKey:
        created = now_iso()
        with self.repository.engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    key_id=key_id,
                    secret_sha256=secret_sha256,
                    name=name,
                    role=role,
                    created_at=created,
                )
            )
        return StoredKey(key_id, name, role, created, None)

    def by_secret_hash(self, secret_sha256: str) -> StoredKey | None:
        with self.repository._reading() as conn:
            row = conn.execute(
                select(api_keys).where(api_keys.c.secret_sha256 == secret_sha256)
            ).first()
        return _key(row) if row else None

    def get(self, key_id: str) -> StoredKey | None:
        with self.repository._reading() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        return _key(row) if row else None

    def all(self) -> list[StoredKey]:
        with self.repository._reading() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).all()
        return [_key(row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """Mark a key revoked; False when no active key has that id."""
        with self.repository.engine.begin() as conn:
            done = conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now_iso())
            )
        return bool(done.rowcount)
