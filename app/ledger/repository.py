"""Reads and appends. The only writes to ``records`` are inserts, under the chain lock."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, insert, select, text, true
from sqlalchemy.exc import IntegrityError

from app.ledger import merkle
from app.ledger.chain import GENESIS_HASH, Draft, digest, now_iso, verify_rows
from app.ledger.db import WRITE, WriterGate
from app.ledger.tables import model_versions, records, subjects

CHAIN_LOCK_KEY = 0x5241_5449  # "RATI": PostgreSQL advisory lock id of the chain
PAGE = 500
"""Rows fetched per round trip when streaming (exports, verify)."""
EXPLANATION_ONLY = text("records.type = 'explanation'")
"""Matches the partial unique index on decision_id (``WHERE type = 'explanation'``)."""
_BY_DECISION_SQLITE = (
    f"SELECT {', '.join(c.name for c in records.c)} FROM records "
    "INDEXED BY uq_records_explanation_decision_id "
    "WHERE type = 'explanation' AND decision_id IN"
)
"""SQLite: explanation records by decision id, through that index (an error if it is gone)."""
_BY_TARGET_SQLITE = (
    f"SELECT {', '.join(c.name for c in records.c)} FROM records "
    "INDEXED BY ix_records_target_id WHERE type = ? AND target_id IN"
)
"""SQLite: records of a type pointing at given records, through the target index."""


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
    target_id: str | None = None
    created_at: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> StoredRecord:
        """Build from a ``records`` row."""
        return cls(
            seq=row.seq,
            id=row.id,
            type=row.type,
            hash=row.hash,
            prev_hash=row.prev_hash,
            document=bytes(row.document),
            fingerprint=row.fingerprint,
            subject_ref=row.subject_ref,
            target_id=row.target_id,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class NewSubject:
    """A subject row to create in the same transaction as its first record."""

    digest: str
    ref: str
    wrapped_key: bytes


@dataclass(frozen=True)
class KnownSubject:
    """A subject the caller believes exists under ``ref`` (its key came from a cache): the
    append checks it under the chain lock, so no record is sealed with an erased key."""

    digest: str
    ref: str


SubjectClaim = NewSubject | KnownSubject


@dataclass(frozen=True)
class Subject:
    """A subject row: HMAC'd id, random reference, wrapped data key."""

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
    subject_gone: bool = False
    """A ``KnownSubject`` no longer exists (erased): re-make the draft for a new subject."""


@dataclass(frozen=True)
class RecordFilter:
    """Filters of an explanation query; ``since``/``until`` bound ``created_at`` inclusively
    (fixed-width UTC strings, as stored)."""

    model_name: str | None = None
    model_version: str | None = None
    subject_ref: str | None = None
    outcome: str | None = None
    since: str | None = None
    until: str | None = None


T = TypeVar("T")

_COPY_COLUMNS = tuple(column.name for column in records.columns)
_COPY_TYPES = tuple(
    "int8" if column.name == "seq" else "bytea" if column.name == "document" else "text"
    for column in records.columns
)


def _copy_records(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert ``records`` rows by binary COPY on the connection's own (psycopg 3)
    transaction: the rows are the ones ``_append`` built, so the chain is unchanged."""
    names = ", ".join(_COPY_COLUMNS)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(f"COPY records ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(tuple(row[name] for name in _COPY_COLUMNS))


def _refusal(
    draft: Draft,
    subject: SubjectClaim | None,
    taken: dict[str, StoredRecord],
    pending: dict[str, Subject],
    known: dict[str, Subject],
) -> AppendOutcome | None:
    """Why a draft is not appended (its decision has a record, or its subject claim lost),
    or None when it takes its place."""
    if draft.type == "explanation" and draft.decision_id is not None:
        existing = taken.get(draft.decision_id)
        if existing is not None:
            return AppendOutcome(existing=existing)
    if subject is None:
        return None
    current = pending.get(subject.digest) or known.get(subject.digest)
    if current is not None and current.ref != subject.ref:
        return AppendOutcome(subject_taken=current)
    if current is None and isinstance(subject, KnownSubject):
        return AppendOutcome(subject_gone=True)
    return None


def _placed(
    draft: Draft, seq: int, prev: str, created_at: str
) -> tuple[dict[str, Any], StoredRecord]:
    """The draft's row at ``seq`` after ``prev``, and the record it becomes."""
    document = draft.canonical_document(seq, prev, created_at)
    record_hash = digest(document)
    row = draft.columns() | {
        "seq": seq,
        "created_at": created_at,
        "prev_hash": prev,
        "hash": record_hash,
        "document": document,
    }
    stored = StoredRecord(
        seq=seq,
        id=draft.id,
        type=draft.type,
        hash=record_hash,
        prev_hash=prev,
        document=document,
        fingerprint=draft.fingerprint,
        subject_ref=draft.subject_ref,
        target_id=draft.target_id,
        created_at=created_at,
    )
    return row, stored


def _insert_subjects(conn: Connection, new: list[Subject]) -> None:
    """Create the subject rows first claimed by this append."""
    if not new:
        return
    created = now_iso()
    conn.execute(
        insert(subjects),
        [
            {"digest": p.digest, "ref": p.ref, "wrapped_key": p.wrapped_key, "created_at": created}
            for p in new
        ],
    )


class Repository:
    """The record store's only door.

    Production: every call takes a pooled connection; appends run in their own
    transaction under the chain lock and commit. Tests may ``bind`` one connection that
    holds an outer transaction: then appends run in a savepoint (still under the chain
    lock) and the test rolls everything back at the end."""

    def __init__(self, engine: Engine, *, bind: Connection | None = None) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        self._bind = bind
        self._bind_lock = threading.RLock()
        self._gate = WriterGate.for_engine(engine)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        if self._bind is not None:
            with self._bind_lock:
                yield self._bind
            return
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction holding the chain lock, committed (durably) when the block ends."""
        if self._bind is not None:
            with self._bind_lock, self._bind.begin_nested():
                self._lock_chain(self._bind)
                yield self._bind
            return
        with (
            self._gate.hold(),
            self.engine.connect().execution_options(**WRITE) as conn,
            conn.begin(),
        ):
            self._lock_chain(conn)
            yield conn

    @contextmanager
    def changing_state(self) -> Iterator[Connection]:
        """A transaction over state tables only (no record is appended, so no chain lock):
        on SQLite it queues with the appends' writers and takes the write lock at BEGIN."""
        if self._bind is not None:
            with self._bind_lock, self._bind.begin_nested():
                yield self._bind
            return
        if self.is_postgres:
            with self.engine.begin() as conn:
                yield conn
            return
        with (
            self._gate.hold(),
            self.engine.connect().execution_options(**WRITE) as conn,
            conn.begin(),
        ):
            yield conn

    def _lock_chain(self, conn: Connection) -> None:
        if self.is_postgres:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({CHAIN_LOCK_KEY})")
        # SQLite: BEGIN IMMEDIATE already holds the database's single write lock.

    # -- appends ------------------------------------------------------------------------

    def append(self, items: Sequence[tuple[Draft, SubjectClaim | None]]) -> list[AppendOutcome]:
        """Append drafts in order in one transaction (group commit), under the chain lock.

        A draft whose decision id already has an explanation record is not appended; its
        outcome names the existing record. Returns after the commit is durable."""
        if not items:
            return []
        for draft, _ in items:
            draft.prepare()  # canonicalise the fixed parts before taking the lock
        with self._writing() as conn:
            return self._append(conn, items)

    def append_with(
        self, draft: Draft, change: Callable[[Connection], T]
    ) -> tuple[StoredRecord, T]:
        """Append one draft together with a change of state, in one transaction under the
        chain lock: ``change(conn)`` runs first (it may write state tables, or raise to
        append nothing), then the draft takes its place. Returns the record and what
        ``change`` returned."""
        draft.prepare()
        with self._writing() as conn:
            result = change(conn)
            (outcome,) = self._append(conn, [(draft, None)])
        assert outcome.record is not None
        return outcome.record, result

    def append_bulk(
        self, items: Iterable[tuple[Draft, SubjectClaim | None]], batch: int = 2000
    ) -> int:
        """Append many drafts, one transaction per batch (bulk loads); returns how many.

        Each batch is placed in the chain exactly as ``append`` places it (same lock, same
        decision-id and subject checks, same seq/prev_hash/hash). On PostgreSQL the rows
        go in by COPY, and the table is re-ANALYZEd whenever it has doubled since the last
        time: without fresh statistics the decision-id check of each batch is planned as a
        scan of every explanation record, and the load turns quadratic."""
        iterator = iter(items)
        count = 0
        analyzed_at = 0
        while chunk := list(islice(iterator, batch)):
            for draft, _ in chunk:
                draft.prepare()
            with self._writing() as conn:
                outcomes = self._append(conn, chunk, copy=self.is_postgres)
                count += sum(o.record is not None for o in outcomes)
                if self.is_postgres and count >= max(2 * analyzed_at, 1):
                    conn.exec_driver_sql("ANALYZE records")
                    analyzed_at = count
        return count

    def _append(
        self,
        conn: Connection,
        items: Sequence[tuple[Draft, SubjectClaim | None]],
        *,
        copy: bool = False,
    ) -> list[AppendOutcome]:
        """Place drafts after the chain head and insert them (``copy``: by PostgreSQL COPY,
        for bulk loads; otherwise one executemany INSERT)."""
        head = conn.execute(
            select(records.c.seq, records.c.hash, records.c.created_at)
            .order_by(records.c.seq.desc())
            .limit(1)
        ).first()
        seq, prev, last_created = (
            (head.seq, head.hash, head.created_at) if head else (0, GENESIS_HASH, "")
        )
        tree_size = seq
        decision_ids = [
            d.decision_id for d, _ in items if d.type == "explanation" and d.decision_id
        ]
        taken = self._by_decisions(conn, decision_ids)
        known = self._subjects(conn, [s.digest for _, s in items if s is not None])
        outcomes: list[AppendOutcome] = []
        rows: list[dict[str, Any]] = []
        pending: dict[str, Subject] = {}
        for draft, subject in items:
            refused = _refusal(draft, subject, taken, pending, known)
            if refused is not None:
                outcomes.append(refused)
                continue
            if isinstance(subject, NewSubject) and not (
                subject.digest in pending or subject.digest in known
            ):
                pending[subject.digest] = Subject(subject.digest, subject.ref, subject.wrapped_key)
            seq += 1
            # Never earlier than the previous record: time filters map onto seq ranges.
            created_at = max(now_iso(), last_created)
            row, stored = _placed(draft, seq, prev, created_at)
            rows.append(row)
            if draft.type == "explanation" and draft.decision_id is not None:
                taken[draft.decision_id] = stored
            outcomes.append(AppendOutcome(record=stored))
            prev, last_created = stored.hash, created_at
        _insert_subjects(conn, list(pending.values()))
        if rows and copy:
            _copy_records(conn, rows)
        elif rows:
            conn.execute(insert(records), rows)
        # The Merkle tree's new complete subtrees, in the same transaction
        # (docs/proofs.md#the-merkle-tree).
        merkle.extend(conn, tree_size, [row["hash"] for row in rows])
        return outcomes

    # -- subjects -----------------------------------------------------------------------

    def _subjects(self, conn: Connection, digests: list[str]) -> dict[str, Subject]:
        found: dict[str, Subject] = {}
        for start in range(0, len(digests), PAGE):
            chunk = sorted(set(digests[start : start + PAGE]))
            for row in conn.execute(select(subjects).where(subjects.c.digest.in_(chunk))):
                found[row.digest] = Subject(row.digest, row.ref, bytes(row.wrapped_key))
        return found

    def subject(self, subject_digest: str) -> Subject | None:
        """The subject row of an HMAC'd subject id, if the person is known."""
        with self._reading() as conn:
            return self._subjects(conn, [subject_digest]).get(subject_digest)

    def subject_by_ref(self, ref: str) -> Subject | None:
        """The subject row of a reference, if it still exists (not erased)."""
        return self.subjects_by_refs([ref]).get(ref)

    def subjects_by_refs(self, refs: Iterable[str]) -> dict[str, Subject]:
        """Subject rows by reference (erased subjects are absent)."""
        wanted = sorted(set(refs))
        found: dict[str, Subject] = {}
        with self._reading() as conn:
            for start in range(0, len(wanted), PAGE):
                chunk = wanted[start : start + PAGE]
                for row in conn.execute(select(subjects).where(subjects.c.ref.in_(chunk))):
                    found[row.ref] = Subject(row.digest, row.ref, bytes(row.wrapped_key))
        return found

    def erase_subject(
        self, subject_digest: str, draft_for: Callable[[Subject, int], Draft]
    ) -> tuple[Subject, int, StoredRecord] | None:
        """Crypto-shred a subject (docs/privacy.md#erasure): delete its row — the wrapped data key —
        and append the ``erasure`` record ``draft_for(subject, records)`` in the same
        transaction, then scrub the key's bytes from the live files. None: no such subject.
        The only destructive operation in the code."""
        with self._writing() as conn:
            subject = self._subjects(conn, [subject_digest]).get(subject_digest)
            if subject is None:
                return None
            count = conn.execute(
                select(func.count())
                .select_from(records)
                .where(records.c.subject_ref == subject.ref)
            ).scalar_one()
            conn.execute(delete(subjects).where(subjects.c.digest == subject_digest))
            draft = draft_for(subject, int(count)).prepare()
            (outcome,) = self._append(conn, [(draft, None)])
        assert outcome.record is not None
        if self._bind is None:
            self._scrub_subjects()
        return subject, int(count), outcome.record

    def _scrub_subjects(self) -> None:
        """Remove deleted subject rows' bytes from the live database files: SQLite
        (``secure_delete`` is on) folds the WAL back and truncates it; PostgreSQL rewrites
        the table. Backups and WAL archives age out on their own schedule
        (docs/privacy.md#limits-to-know)."""
        if self.is_postgres:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM FULL subjects")
            return
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            for _ in range(100):
                busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                if not busy:
                    break
                time.sleep(0.05)
            cursor.close()
        finally:
            raw.close()

    @staticmethod
    def new_subject_ref() -> str:
        """A random subject reference (UUID 4 from the OS's random source)."""
        return str(uuid.UUID(bytes=os.urandom(16), version=4))

    # -- reads --------------------------------------------------------------------------

    def _by_decisions(self, conn: Connection, decision_ids: list[str]) -> dict[str, StoredRecord]:
        found: dict[str, StoredRecord] = {}
        for start in range(0, len(decision_ids), PAGE):
            chunk = sorted(set(decision_ids[start : start + PAGE]))
            # The predicate is written as the partial unique index's own text, so
            # PostgreSQL's planner can use that index. SQLite's planner, given bound
            # values, prefers ix_records_type_seq and scans every explanation record
            # (measured: 5 ms at 5,000 records, growing with the log), so it is told
            # which index to use: one probe per decision id.
            if self.is_postgres:
                rows = conn.execute(
                    select(records).where(records.c.decision_id.in_(chunk), EXPLANATION_ONLY)
                )
            else:
                rows = conn.exec_driver_sql(
                    f"{_BY_DECISION_SQLITE} ({', '.join('?' * len(chunk))})", tuple(chunk)
                )
            for row in rows:
                found[row.decision_id] = StoredRecord.from_row(row)
        return found

    def by_decision(self, decision_id: str) -> StoredRecord | None:
        """The explanation record of a product's decision id."""
        with self._reading() as conn:
            return self._by_decisions(conn, [decision_id]).get(decision_id)

    def by_id(self, record_id: str) -> StoredRecord | None:
        """A record by its id."""
        with self._reading() as conn:
            row = conn.execute(select(records).where(records.c.id == record_id)).first()
            return StoredRecord.from_row(row) if row else None

    def by_ids(self, record_ids: Iterable[str]) -> dict[str, StoredRecord]:
        """Records by id (those that exist)."""
        wanted = sorted(set(record_ids))
        found: dict[str, StoredRecord] = {}
        with self._reading() as conn:
            for start in range(0, len(wanted), PAGE):
                chunk = wanted[start : start + PAGE]
                for row in conn.execute(select(records).where(records.c.id.in_(chunk))):
                    found[row.id] = StoredRecord.from_row(row)
        return found

    def children(self, target_id: str, record_type: str) -> list[StoredRecord]:
        """Records of a type that point at a record (e.g. its reviews), in chain order."""
        return self.children_of([target_id], record_type).get(target_id, [])

    def children_of(
        self, target_ids: Sequence[str], record_type: str
    ) -> dict[str, list[StoredRecord]]:
        """Records of a type pointing at any of the given records, grouped by target."""
        found: dict[str, list[StoredRecord]] = {}
        with self._reading() as conn:
            for start in range(0, len(target_ids), PAGE):
                chunk = list(target_ids[start : start + PAGE])
                # No ORDER BY: it would tempt the planner into a scan in seq order. SQLite,
                # given bound values, preferred ix_records_type_seq here too and scanned
                # every record of the type for each page (an audit over 1M decisions went
                # quadratic): it is told to probe the target index.
                if self.is_postgres:
                    rows = conn.execute(
                        select(records).where(
                            records.c.target_id.in_(chunk), records.c.type == record_type
                        )
                    )
                else:
                    rows = conn.exec_driver_sql(
                        f"{_BY_TARGET_SQLITE} ({', '.join('?' * len(chunk))})",
                        (record_type, *chunk),
                    )
                for row in rows:
                    found.setdefault(row.target_id, []).append(StoredRecord.from_row(row))
        for items in found.values():
            items.sort(key=lambda r: r.seq)
        return found

    def head(self) -> tuple[int, str] | None:
        """The chain head (seq, hash), or None for an empty log."""
        with self._reading() as conn:
            row = conn.execute(
                select(records.c.seq, records.c.hash).order_by(records.c.seq.desc()).limit(1)
            ).first()
            return (int(row.seq), str(row.hash)) if row else None

    def _time_bounds(
        self, conn: Connection, since: str | None, until: str | None
    ) -> tuple[int, int | None] | None:
        """Seq bounds of a created_at range (created_at never decreases along the chain,
        which verify checks); None when nothing can match."""
        low, high = 0, None
        if since is not None:
            row = conn.execute(
                select(records.c.seq)
                .where(records.c.created_at >= since)
                .order_by(records.c.created_at, records.c.seq)
                .limit(1)
            ).first()
            if row is None:
                return None
            low = int(row.seq) - 1
        if until is not None:
            row = conn.execute(
                select(records.c.seq)
                .where(records.c.created_at <= until)
                .order_by(records.c.created_at.desc(), records.c.seq.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            high = int(row.seq)
        return low, high

    def _explanation_where(
        self, conn: Connection, flt: RecordFilter, after: int, through: int | None
    ) -> list[ColumnElement[bool]] | None:
        bounds = self._time_bounds(conn, flt.since, flt.until)
        if bounds is None:
            return None
        low, high = bounds
        if through is not None:
            high = through if high is None else min(high, through)
        where: list[ColumnElement[bool]] = [
            records.c.type == "explanation",
            records.c.seq > max(after, low),
        ]
        if high is not None:
            where.append(records.c.seq <= high)
        if flt.model_name is not None:
            where.append(records.c.model_name == flt.model_name)
        if flt.model_version is not None:
            where.append(records.c.model_version == flt.model_version)
        if flt.subject_ref is not None:
            where.append(records.c.subject_ref == flt.subject_ref)
        if flt.outcome is not None:
            where.append(records.c.outcome == flt.outcome)
        if flt.since is not None:
            where.append(records.c.created_at >= flt.since)
        if flt.until is not None:
            where.append(records.c.created_at <= flt.until)
        return where

    def explanations(
        self, flt: RecordFilter, *, after: int = 0, limit: int = 100, through: int | None = None
    ) -> list[StoredRecord]:
        """Explanation records matching the filter with seq > ``after`` (and ≤ ``through``),
        in seq order, at most ``limit``."""
        with self._reading() as conn:
            where = self._explanation_where(conn, flt, after, through)
            if where is None:
                return []
            rows = conn.execute(select(records).where(*where).order_by(records.c.seq).limit(limit))
            return [StoredRecord.from_row(r) for r in rows]

    def iter_explanations(
        self, flt: RecordFilter, *, through: int | None = None, batch: int = PAGE
    ) -> Iterator[list[StoredRecord]]:
        """Pages of matching explanation records in seq order (flat memory: one page at a
        time, each fetched by seq, never by OFFSET)."""
        after = 0
        while page := self.explanations(flt, after=after, limit=batch, through=through):
            yield page
            after = page[-1].seq

    def iter_rows(
        self, *, after: int = 0, through: int | None = None, batch: int = PAGE
    ) -> Iterator[dict[str, Any]]:
        """Every record in seq order as column dicts, fetched in pages (flat memory)."""
        last = after
        while True:
            with self._reading() as conn:
                query = select(records).where(records.c.seq > last)
                if through is not None:
                    query = query.where(records.c.seq <= through)
                page = conn.execute(query.order_by(records.c.seq).limit(batch)).mappings().all()
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

    def records_of_type(
        self,
        record_type: str | Sequence[str],
        *,
        after: int = 0,
        limit: int = 100,
        since: str | None = None,
    ) -> list[StoredRecord]:
        """Records of one type (or of any of several) with seq > ``after`` (created at or
        after ``since``), in seq order, at most ``limit``."""
        types = [record_type] if isinstance(record_type, str) else list(record_type)
        with self._reading() as conn:
            low = 0
            if since is not None:
                bounds = self._time_bounds(conn, since, None)
                if bounds is None:
                    return []
                low = bounds[0]
            query = (
                select(records)
                .where(records.c.type.in_(types), records.c.seq > max(after, low))
                .order_by(records.c.seq)
                .limit(limit)
            )
            return [StoredRecord.from_row(r) for r in conn.execute(query)]

    def iter_access(
        self,
        *,
        key_id: str | None = None,
        record_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        after: int = 0,
        batch: int = PAGE,
    ) -> Iterator[StoredRecord]:
        """Access records in seq order; with ``record_id``, those naming it directly plus
        every multi-record read (queries, exports), which the caller checks."""
        with self._reading() as conn:
            bounds = self._time_bounds(conn, since, until)
        if bounds is None:
            return
        low, high = bounds
        last = max(after, low)
        while True:
            where: list[ColumnElement[bool]] = [records.c.type == "access", records.c.seq > last]
            if high is not None:
                where.append(records.c.seq <= high)
            if key_id is not None:
                where.append(records.c.key_id == key_id)
            if record_id is not None:
                where.append((records.c.target_id == record_id) | (records.c.target_id.is_(None)))
            with self._reading() as conn:
                rows = conn.execute(
                    select(records).where(*where).order_by(records.c.seq).limit(batch)
                ).all()
            if not rows:
                return
            for row in rows:
                yield StoredRecord.from_row(row)
            last = rows[-1].seq

    def count(self, where: ColumnElement[bool] | None = None) -> int:
        """How many records (matching a condition)."""
        with self._reading() as conn:
            query = (
                select(func.count())
                .select_from(records)
                .where(where if where is not None else true())
            )
            return int(conn.execute(query).scalar_one())

    # -- model registrations ------------------------------------------------------------

    def registration(self, name: str, version: str) -> tuple[int, str, str] | None:
        """(order, artifact hash, manifest hash) of a registered version, if any."""
        with self._reading() as conn:
            row = conn.execute(
                select(model_versions).where(
                    model_versions.c.name == name, model_versions.c.version == version
                )
            ).first()
        return (row.id, row.artifact_sha256, row.manifest_sha256) if row else None

    def register_model(
        self,
        name: str,
        version: str,
        artifact_sha256: str,
        manifest_sha256: str,
        event: Draft | None = None,
    ) -> tuple[int, str, str]:
        """Record a registration once; returns (order, artifact hash, manifest hash) as
        registered first, which the caller compares with what it holds. ``event`` is
        appended to the chain in the same transaction, only by the call that registers."""
        if event is not None:
            event.prepare()
        with self._writing() as conn:
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
                    if event is not None:
                        self._append(conn, [(event, None)])
                except IntegrityError:
                    pass  # registered by another process at the same moment
                row = conn.execute(
                    select(model_versions).where(
                        model_versions.c.name == name, model_versions.c.version == version
                    )
                ).one()
            return row.id, row.artifact_sha256, row.manifest_sha256
