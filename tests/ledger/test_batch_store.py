"""Batch item outcomes on SQLite and PostgreSQL: the first outcome stands, and each call
says how many items it moved out of ``pending`` (what the batch-items metric counts)."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from app.batches.repository import FAILED, PENDING, SUCCEEDED, BatchStore, ItemOutcome


def new_batch(batches: BatchStore, items: int) -> str:
    batch_id = str(uuid.uuid4())
    row = {
        "id": batch_id,
        "model_name": "credit-risk",
        "model_version": "1",
        "method": "auto",
        "key_id": "0123456789ab",
        "role": "backend",
        "items": items,
        "chunks": 1,
        "status": "queued",
        "problem": None,
        "created_at": "2026-12-04T00:00:00Z",
        "started_at": None,
        "finished_at": None,
    }
    rows = [
        {
            "batch_id": batch_id,
            "position": i,
            "chunk": 0,
            "decision_id": f"d-{i}",
            "state": PENDING,
            "request": b"{}",
            "status": None,
            "record_id": None,
            "problem": None,
        }
        for i in range(items)
    ]
    batches.create(row, rows)
    return batch_id


def test_finishing_items_twice_moves_and_counts_them_once(engine: Engine) -> None:
    batches = BatchStore(engine)
    batch_id = new_batch(batches, 4)
    first = [
        ItemOutcome(0, SUCCEEDED, 201, str(uuid.uuid4())),
        ItemOutcome(1, SUCCEEDED, 200, str(uuid.uuid4())),
        ItemOutcome(2, FAILED, 422, problem='{"status": 422}'),
    ]
    assert batches.finish_items(batch_id, first) == {SUCCEEDED: 2, FAILED: 1}
    # The same chunk again (another worker ran it too), plus the item still pending.
    again = [*first, ItemOutcome(3, FAILED, 409, problem='{"status": 409}')]
    assert batches.finish_items(batch_id, again) == {SUCCEEDED: 0, FAILED: 1}
    assert batches.counts(batch_id) == {PENDING: 0, SUCCEEDED: 2, FAILED: 2}
    assert batches.finish_items(batch_id, []) == {SUCCEEDED: 0, FAILED: 0}
