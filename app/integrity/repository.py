"""Merkle proofs, checkpoints and signing keys over the stored tree (docs/proofs.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from app.ledger import merkle
from app.ledger.chain import now_iso
from app.ledger.repository import Repository
from app.ledger.tables import checkpoints, records, signing_keys


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as issued: size, root (hex), signing key id, note text, time."""

    id: int
    tree_size: int
    root_hash: str
    key_id: str
    note: str
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "key_id": self.key_id,
            "created_at": self.created_at,
            "note": self.note,
        }


class ProofStore:
    """Reads proofs from the stored complete subtrees (O(log² n) rows by primary key, one
    query), and keeps the append-only checkpoint table."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self._pinned: Connection | None = None

    @contextmanager
    def pinned(self) -> Iterator[ProofStore]:
        """Serve every read of the block from one pooled connection (a proof request reads
        the record's leaf, the tree size and the nodes: one checkout, not three)."""
        if self._pinned is not None:
            yield self
            return
        with self.repository._reading() as conn:
            self._pinned = conn
            try:
                yield self
            finally:
                self._pinned = None

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        if self._pinned is not None:
            yield self._pinned
            return
        with self.repository._reading() as conn:
            yield conn

    def tree_size(self) -> int:
        """How many records (leaves) the log holds."""
        with self._reading() as conn:
            row = conn.execute(
                select(records.c.seq).order_by(records.c.seq.desc()).limit(1)
            ).first()
        return int(row.seq) if row else 0

    def root(self, size: int) -> bytes:
        """The Merkle root of the first ``size`` records."""
        with self._reading() as conn:
            return merkle.root(conn, size)

    def record_leaf(self, record_id: str) -> tuple[int, str] | None:
        """(leaf index, record hash) of a record id."""
        with self._reading() as conn:
            row = conn.execute(
                select(records.c.seq, records.c.hash).where(records.c.id == record_id)
            ).first()
        return (int(row.seq) - 1, str(row.hash)) if row else None

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[size]); the caller checks the bounds."""
        with self._reading() as conn:
            return merkle.hashes_for(conn, merkle.inclusion_ranges(index, size))

    def consistency(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(old, D[new]); the caller checks the bounds."""
        with self._reading() as conn:
            return merkle.hashes_for(conn, merkle.consistency_ranges(old, new))

    # -- checkpoints --------------------------------------------------------------------

    def add_checkpoint(self, tree_size: int, root_hash: str, key_id: str, note: str) -> None:
        """Keep an issued checkpoint (once per size and key: notes are deterministic)."""
        try:
            with self.repository.engine.begin() as conn:
                conn.execute(
                    insert(checkpoints).values(
                        tree_size=tree_size,
                        root_hash=root_hash,
                        key_id=key_id,
                        note=note,
                        created_at=now_iso(),
                    )
                )
        except IntegrityError:
            pass  # the same checkpoint, kept by another worker a moment earlier

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The most recently kept checkpoint."""
        with self.repository._reading() as conn:
            row = conn.execute(
                select(checkpoints).order_by(checkpoints.c.id.desc()).limit(1)
            ).first()
        return _checkpoint(row) if row else None

    def checkpoints(self, *, since: str | None, after: int, limit: int) -> list[StoredCheckpoint]:
        """Kept checkpoints in issue order, with id > ``after`` (and created at ≥ since)."""
        query = select(checkpoints).where(checkpoints.c.id > after)
        if since is not None:
            query = query.where(checkpoints.c.created_at >= since)
        with self.repository._reading() as conn:
            rows = conn.execute(query.order_by(checkpoints.c.id).limit(limit)).all()
        return [_checkpoint(row) for row in rows]

    def checkpoint_count(self) -> int:
        with self.repository._reading() as conn:
            return int(conn.execute(select(func.count()).select_from(checkpoints)).scalar_one())

    # -- signing keys -------------------------------------------------------------------

    def remember_key(self, key_id: str, name: str, verifier_key: str) -> None:
        """Keep a signing key's public half (so its checkpoints verify after a rotation)."""
        with self.repository._reading() as conn:
            known = conn.execute(
                select(signing_keys.c.key_id).where(signing_keys.c.key_id == key_id)
            ).first()
        if known is not None:
            return
        try:
            with self.repository.engine.begin() as conn:
                conn.execute(
                    insert(signing_keys).values(
                        key_id=key_id, name=name, verifier_key=verifier_key, created_at=now_iso()
                    )
                )
        except IntegrityError:
            pass

    def verifier_key(self, key_id: str) -> str | None:
        """The verifier key of a signing key id, current or retired."""
        with self.repository._reading() as conn:
            row = conn.execute(
                select(signing_keys.c.verifier_key).where(signing_keys.c.key_id == key_id)
            ).first()
        return str(row.verifier_key) if row else None


def _checkpoint(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(
        id=int(row.id),
        tree_size=int(row.tree_size),
        root_hash=str(row.root_hash),
        key_id=str(row.key_id),
        note=str(row.note),
        created_at=str(row.created_at),
    )
