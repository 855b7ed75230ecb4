"""Reads and appends. The only writes to ``records`` are inserts, under the chain lock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from app.store.chain import GENESIS_HASH, Draft, canonical, digest, now_iso, verify_rows
from app.store.db import WRITE
from app.store.tables import model_versions, records, subjects

CHAIN_LOCK_KEY = 0x5241_5449  # "RATI": PostgreSQL advisory lock id of the chain


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored: its columns and canonical document bytes."""

    seq: int
    id: str
    type: str
    hash: str
    prev_hash: str
    document: bytes
    fingerprint: str | None = None
    subject_ref: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> StoredRecord:
        return cls(
            seq=row.seq,
            id=row.id,
            type=row.type,
            hash=row.hash,
            prev_hash=row.prev_hash,
            document=bytes(row.document),
            fingerprint=row.fingerprint,
            subject_ref=row.subject_ref,
        )


@dataclass(frozen=True)
class NewSubject:
    """A subject row to create in the same transaction as its first record."""

    digest: str
    ref: str
    wrapped_key: bytes


@dataclass(frozen=True)
class Subject:
    digest: str
    ref: str
    wrapped_key: bytes


@dataclass
class AppendOutcome:
    """What became of one draft: appended, or an earlier record with its decision id, or
    a subject that already exists under another reference (re-seal and retry)."""

    record: StoredRecord | None = None
    existing: StoredRecord | None = None
    subject_taken: Subject | None = None


class Repository:
    """The record store's only door."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    # -- appends ------------------------------------------------------------------------

    def append(self, items: Sequence[tuple[Draft, NewSubject | None]]) -> list[AppendOutcome]:
        """Append drafts in order in one transaction (group commit), under the chain lock.

        A draft whose decision id already has an explanation record is not appended; its
        outcome names the existing record. Returns after the commit is durable."""
        outcomes: list[AppendOutcome] = []
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            self._lock_chain(conn)
            head = conn.execute(
                select(records.c.seq, records.c.hash).order_by(records.c.seq.desc()).limit(1)
            ).first()
            seq, prev = (head.seq, head.hash) if head else (0, GENESIS_HASH)
            taken_ids: dict[str, StoredRecord] = {}
            rows: list[dict[str, Any]] = []
            pending: dict[str, Subject] = {}
            for draft, subject in items:
                if draft.type == "explanation" and draft.decision_id is not None:
                    existing = taken_ids.get(draft.decision_id) or self._by_decision(
                        conn, draft.decision_id
                    )
                    if existing is not None:
                        outcomes.append(AppendOutcome(existing=existing))
                        continue
                if subject is not None:
                    current = pending.get(subject.digest) or self._subject(conn, subject.digest)
                    if current is not None and current.ref != subject.ref:
                        outcomes.append(AppendOutcome(subject_taken=current))
                        continue
                    if current is None:
                        pending[subject.digest] = Subject(
                            subject.digest, subject.ref, subject.wrapped_key
                        )
                seq += 1
                created_at = now_iso()
                document = canonical(draft.document(seq, prev, created_at))
                record_hash = digest(document)
                row = draft.columns() | {
                    "seq": seq,
                    "created_at": created_at,
                    "prev_hash": prev,
                    "hash": record_hash,
                    "document": document,
                }
                rows.append(row)
                stored = StoredRecord(
                    seq=seq,
                    id=draft.id,
                    type=draft.type,
                    hash=record_hash,
                    prev_hash=prev,
                    document=document,
                    fingerprint=draft.fingerprint,
                    subject_ref=draft.subject_ref,
                )
                if draft.type == "explanation" and draft.decision_id is not None:
                    taken_ids[draft.decision_id] = stored
                outcomes.append(AppendOutcome(record=stored))
                prev = record_hash
            if pending:
                created = now_iso()
                conn.execute(
                    insert(subjects),
                    [
                        {
                            "digest": p.digest,
                            "ref": p.ref,
                            "wrapped_key": p.wrapped_key,
                            "created_at": created,
                        }
                        for p in pending.values()
                    ],
                )
            if rows:
                conn.execute(insert(records), rows)
        return outcomes

    def _lock_chain(self, conn: Connection) -> None:
        if self.is_postgres:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({CHAIN_LOCK_KEY})")
        # SQLite: BEGIN IMMEDIATE already holds the database's single write lock.

    # -- subjects -----------------------------------------------------------------------

    def _subject(self, conn: Connection, subject_digest: str) -> Subject | None:
        row = conn.execute(select(subjects).where(subjects.c.digest == subject_digest)).first()
        return Subject(row.digest, row.ref, bytes(row.wrapped_key)) if row else None

    def subject(self, subject_digest: str) -> Subject | None:
        """The subject row of an HMAC'd subject id, if the person is known."""
        with self.engine.connect() as conn:
            return self._subject(conn, subject_digest)

    def subject_by_ref(self, ref: str) -> Subject | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(subjects).where(subjects.c.ref == ref)).first()
            return Subject(row.digest, row.ref, bytes(row.wrapped_key)) if row else None

    @staticmethod
    def new_subject_ref() -> str:
        return str(uuid.UUID(bytes=os.urandom(16), version=4))

    # -- reads --------------------------------------------------------------------------

    def _by_decision(self, conn: Connection, decision_id: str) -> StoredRecord | None:
        row = conn.execute(
            select(records).where(
                records.c.decision_id == decision_id, records.c.type == "explanation"
            )
        ).first()
        return StoredRecord.from_row(row) if row else None

    def by_decision(self, decision_id: str) -> StoredRecord | None:
        """The explanation record of a product's decision id."""
        with self.engine.connect() as conn:
            return self._by_decision(conn, decision_id)

    def by_id(self, record_id: str) -> StoredRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(records).where(records.c.id == record_id)).first()
            return StoredRecord.from_row(row) if row else None

    def children(self, target_id: str, record_type: str) -> list[StoredRecord]:
        """Records of a type that point at a record (e.g. its reviews), in chain order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(records)
                .where(records.c.target_id == target_id, records.c.type == record_type)
                .order_by(records.c.seq)
            )
            return [StoredRecord.from_row(r) for r in rows]

    def iter_rows(self, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every record in seq order as column dicts, fetched in pages (flat memory)."""
        last = 0
        while True:
            with self.engine.connect() as conn:
                page = (
                    conn.execute(
                        select(records)
                        .where(records.c.seq > last)
                        .order_by(records.c.seq)
                        .limit(batch)
                    )
                    .mappings()
                    .all()
                )
            if not page:
                return
            for row in page:
                item = dict(row)
                item["document"] = bytes(item["document"])
                yield item
            last = page[-1]["seq"]

    def verify(self, kept_head: tuple[int, str] | None = None) -> dict[str, Any]:
        """Recompute the whole chain; see ``verify_rows``."""
        return verify_rows(self.iter_rows(), kept_head).as_dict()

    # -- model registrations ------------------------------------------------------------

    def register_model(
        self, name: str, version: str, artifact_sha256: str, manifest_sha256: str
    ) -> tuple[int, str, str]:
        """Record a registration once; returns (order, artifact hash, manifest hash) as
        registered first, which the caller compares with what it holds."""
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            row = conn.execute(
                select(model_versions).where(
                    model_versions.c.name == name, model_versions.c.version == version
                )
            ).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(model_versions).values(
                                name=name,
                                version=version,
                                artifact_sha256=artifact_sha256,
                                manifest_sha256=manifest_sha256,
                                registered_at=now_iso(),
                            )
                        )
                except IntegrityError:
                    pass  # registered by another process at the same moment
                row = conn.execute(
                    select(model_versions).where(
                        model_versions.c.name == name, model_versions.c.version == version
                    )
                ).one()
            return row.id, row.artifact_sha256, row.manifest_sha256
