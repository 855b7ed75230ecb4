"""The person's tables: links (a token's hash → the decision it opens) and the rate counts
every worker process shares (docs/person.md#links)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.ledger.repository import Repository
from app.ledger.tables import links, rate_counts, subjects

SWEEP_ONE_IN = 64
"""About one rate hit in this many also deletes the counts of minutes that no longer count."""


@dataclass(frozen=True)
class Link:
    """A link row: never the token, only its SHA-256."""

    id: str
    token_hash: str
    record_id: str
    subject_ref: str
    key_id: str
    created_at: str
    expires_at: str
    revoked_at: str | None

    @classmethod
    def from_row(cls, row: Any) -> Link:
        """Build from a ``links`` row."""
        return cls(
            row.id,
            row.token_hash,
            row.record_id,
            row.subject_ref,
            row.key_id,
            row.created_at,
            row.expires_at,
            row.revoked_at,
        )


class AlreadyRevoked(Exception):
    """The link was revoked by someone else first (nothing is appended)."""


class LinkStore:
    """The ``links`` table. Inserts and revocations run inside the append of the record that
    says so (``Repository.append_with``), so the state and the chain never disagree."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository

    @staticmethod
    def insert_on(conn: Connection, link: Link) -> None:
        """Insert a new link in the caller's transaction."""
        conn.execute(
            insert(links).values(
                id=link.id,
                token_hash=link.token_hash,
                record_id=link.record_id,
                subject_ref=link.subject_ref,
                key_id=link.key_id,
                created_at=link.created_at,
                expires_at=link.expires_at,
                revoked_at=None,
            )
        )

    def lookup(self, token_hash: str) -> tuple[Link, bool] | None:
        """The link of a token's hash and whether its subject still exists, in one query
        (the same work whether the link is live, expired, revoked, erased or unknown)."""
        query = (
            select(links, subjects.c.ref.label("live_ref"))
            .select_from(links.outerjoin(subjects, subjects.c.ref == links.c.subject_ref))
            .where(links.c.token_hash == token_hash)
        )
        with self.repository._reading() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Link.from_row(row), row.live_ref is not None

    def get(self, link_id: str) -> Link | None:
        """A link by its id."""
        with self.repository._reading() as conn:
            row = conn.execute(select(links).where(links.c.id == link_id)).first()
        return Link.from_row(row) if row else None

    @staticmethod
    def revoke_on(conn: Connection, link_id: str, at: str) -> None:
        """Mark one live link revoked in the caller's transaction; ``AlreadyRevoked`` if it
        was not live."""
        done = conn.execute(
            update(links)
            .where(links.c.id == link_id, links.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        if not done.rowcount:
            raise AlreadyRevoked(link_id)

    def live_of_subject(self, subject_ref: str) -> list[str]:
        """Ids of a subject's links not yet revoked."""
        with self.repository._reading() as conn:
            rows = conn.execute(
                select(links.c.id)
                .where(links.c.subject_ref == subject_ref, links.c.revoked_at.is_(None))
                .order_by(links.c.created_at)
            ).all()
        return [row.id for row in rows]

    @staticmethod
    def revoke_many_on(conn: Connection, link_ids: Sequence[str], at: str) -> None:
        """Revoke those of the given links still live, in the caller's transaction."""
        conn.execute(
            update(links)
            .where(links.c.id.in_(list(link_ids)), links.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )


class RateCounts:
    """Requests per bucket per minute, in the store, so every worker process counts the
    same requests: one upsert per bucket, returning the count of this minute, with the
    previous minute's count beside it (a sliding window)."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository

    def _upsert(self, conn: Connection, bucket: str, minute: int) -> int:
        dialect = postgresql if self.repository.is_postgres else sqlite
        statement = dialect.insert(rate_counts).values(bucket=bucket, minute=minute, count=1)
        statement = statement.on_conflict_do_update(
            index_elements=[rate_counts.c.bucket, rate_counts.c.minute],
            set_={"count": rate_counts.c.count + 1},
        ).returning(rate_counts.c.count)
        return int(conn.execute(statement).scalar_one())

    def hit(self, buckets: Sequence[str], minute: int) -> dict[str, tuple[int, int]]:
        """Count one request in each bucket this minute: bucket → (this minute's count,
        the previous minute's)."""
        counts: dict[str, tuple[int, int]] = {}
        with self.repository.changing_state() as conn:
            for bucket in buckets:
                counts[bucket] = (self._upsert(conn, bucket, minute), 0)
            previous = conn.execute(
                select(rate_counts.c.bucket, rate_counts.c.count.label("n")).where(
                    rate_counts.c.bucket.in_(list(buckets)), rate_counts.c.minute == minute - 1
                )
            ).all()
            for row in previous:
                counts[row.bucket] = (counts[row.bucket][0], int(row.n))
            if random.randrange(SWEEP_ONE_IN) == 0:
                conn.execute(delete(rate_counts).where(rate_counts.c.minute < minute - 1))
        return counts
