"""Batch state: the ``batches`` and ``batch_items`` tables (mutable state, not history).

Item outcomes are written with ``WHERE state = 'pending'``: when an item is processed twice
(a redelivered task, two workers on one chunk) the first outcome stands, and counts, read
from item states, never move twice."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from app.ledger.chain import now_iso
from app.ledger.db import WRITE, WriterGate
from app.ledger.repository import PAGE, StoredRecord, Subject
from app.ledger.tables import batch_items, batches, records, subjects

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


@dataclass(frozen=True)
class BatchRow:
    """A batch as stored."""

    id: str
    model_name: str
    model_version: str
    method: str
    key_id: str
    role: str
    items: int
    chunks: int
    status: str
    problem: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


@dataclass(frozen=True)
class PendingItem:
    """An item still to process: its place and the equivalent single request's JSON."""

    position: int
    decision_id: str
    request: bytes


@dataclass(frozen=True)
class ItemOutcome:
    """What became of an item: ``succeeded`` (status 201 or 200) or ``failed`` (the status
    and problem the single request would have got)."""

    position: int
    state: str
    status: int
    record_id: str | None = None
    problem: str | None = None


class BatchStore:
    """Reads and writes of batch state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._gate = WriterGate.for_engine(engine)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with (
            self._gate.hold(),
            self.engine.connect().execution_options(**WRITE) as conn,
            conn.begin(),
        ):
            yield conn

    # -- writes -------------------------------------------------------------------------

    def create(self, row: dict[str, Any], items: Sequence[dict[str, Any]]) -> None:
        """Store a new batch and its items in one transaction."""
        with self._writing() as conn:
            conn.execute(insert(batches).values(**row))
            for start in range(0, len(items), 1000):
                conn.execute(insert(batch_items), list(items[start : start + 1000]))

    def mark_started(self, batch_id: str) -> None:
        """``queued`` → ``running`` (once)."""
        with self._writing() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status == "queued")
                .values(status="running", started_at=now_iso())
            )

    def mark_failed(self, batch_id: str, problem: str) -> None:
        """The batch itself could not run: ``failed`` with the problem."""
        with self._writing() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status.in_(("queued", "running")))
                .values(status="failed", problem=problem, finished_at=now_iso())
            )

    def finish_items(self, batch_id: str, outcomes: Sequence[ItemOutcome]) -> dict[str, int]:
        """Record item outcomes (first outcome wins) and clear their requests; how many
        items this call moved out of ``pending``, by state (an item another process
        finished first is not counted again)."""
        moved = {SUCCEEDED: 0, FAILED: 0}
        if not outcomes:
            return moved
        statement = (
            update(batch_items)
            .where(
                batch_items.c.batch_id == bindparam("b_batch"),
                batch_items.c.position == bindparam("b_position"),
                batch_items.c.state == PENDING,
            )
            .values(
                state=bindparam("b_state"),
                status=bindparam("b_status"),
                record_id=bindparam("b_record"),
                problem=bindparam("b_problem"),
                request=None,
            )
        )
        with self._writing() as conn:
            for state in moved:
                params = [
                    {
                        "b_batch": batch_id,
                        "b_position": o.position,
                        "b_state": o.state,
                        "b_status": o.status,
                        "b_record": o.record_id,
                        "b_problem": o.problem,
                    }
                    for o in outcomes
                    if o.state == state
                ]
                if params:
                    moved[state] = conn.execute(statement, params).rowcount
        return moved

    def complete_if_done(self, batch_id: str) -> bool:
        """Mark the batch ``done`` once no item is pending; whether it is done."""
        with self._writing() as conn:
            pending = conn.execute(
                select(func.count())
                .select_from(batch_items)
                .where(batch_items.c.batch_id == batch_id, batch_items.c.state == PENDING)
            ).scalar_one()
            if pending:
                return False
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status.in_(("queued", "running")))
                .values(status="done", finished_at=now_iso())
            )
            return True

    # -- reads --------------------------------------------------------------------------

    def get(self, batch_id: str) -> BatchRow | None:
        """A batch by id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).first()
        return BatchRow(**row._mapping) if row else None

    def counts(self, batch_id: str) -> dict[str, int]:
        """Items by state (``pending``, ``succeeded``, ``failed``)."""
        found = {PENDING: 0, SUCCEEDED: 0, FAILED: 0}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(batch_items.c.state, func.count())
                .where(batch_items.c.batch_id == batch_id)
                .group_by(batch_items.c.state)
            )
            for state, count in rows:
                found[state] = int(count)
        return found

    def failures(self, batch_id: str) -> list[Any]:
        """Failed items in order: position, decision id, status, problem."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(
                        batch_items.c.position,
                        batch_items.c.decision_id,
                        batch_items.c.status,
                        batch_items.c.problem,
                    )
                    .where(batch_items.c.batch_id == batch_id, batch_items.c.state == FAILED)
                    .order_by(batch_items.c.position)
                )
            )

    def pending_items(self, batch_id: str, chunk: int) -> list[PendingItem]:
        """A chunk's items still to process, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(batch_items.c.position, batch_items.c.decision_id, batch_items.c.request)
                .where(
                    batch_items.c.batch_id == batch_id,
                    batch_items.c.chunk == chunk,
                    batch_items.c.state == PENDING,
                )
                .order_by(batch_items.c.position)
            )
            return [PendingItem(r.position, r.decision_id, bytes(r.request)) for r in rows]

    def pending_total(self) -> int:
        """Items waiting in every batch (the queue depth)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(batch_items)
                    .where(batch_items.c.state == PENDING)
                ).scalar_one()
            )

    def unfinished(self) -> list[BatchRow]:
        """Batches still ``queued`` or ``running``, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(batches)
                .where(batches.c.status.in_(("queued", "running")))
                .order_by(batches.c.created_at)
            )
            return [BatchRow(**r._mapping) for r in rows]

    def result_records(
        self, batch_id: str, *, after: int = -1, limit: int = PAGE
    ) -> list[tuple[int, StoredRecord]]:
        """(position, record) of succeeded items after a position, in item order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(batch_items.c.position, records)
                .join(records, records.c.id == batch_items.c.record_id)
                .where(
                    batch_items.c.batch_id == batch_id,
                    batch_items.c.state == SUCCEEDED,
                    batch_items.c.position > after,
                )
                .order_by(batch_items.c.position)
                .limit(limit)
            )
            return [(r.position, StoredRecord.from_row(r)) for r in rows]

    def subjects(self, digests: Sequence[str]) -> dict[str, Subject]:
        """Subject rows by HMAC'd subject id (unknown subjects are absent)."""
        found: dict[str, Subject] = {}
        wanted = sorted(set(digests))
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), PAGE):
                chunk = wanted[start : start + PAGE]
                for row in conn.execute(select(subjects).where(subjects.c.digest.in_(chunk))):
                    found[row.digest] = Subject(row.digest, row.ref, bytes(row.wrapped_key))
        return found
