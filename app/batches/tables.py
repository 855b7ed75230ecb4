"""Tables of batches (SPEC §6, §11.12): mutable state, not history (§11.11).

A batch row says what was asked; one row per item holds the item's request until it is
processed (then the request is cleared: the person's data lives on only sealed in the
record) and its outcome. Counts are read from item states, never kept as increments, so
a redelivered item can neither be lost nor counted twice."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Table, Text

from app.ledger.tables import metadata

batches = Table(
    "batches",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("model_name", String(64), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("method", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("role", String(16), nullable=False),
    Column("items", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("problem", Text),
    Column("created_at", String(32), nullable=False),
    Column("started_at", String(32)),
    Column("finished_at", String(32)),
)
"""One row per batch; ``status`` is ``queued`` until an item is processed, ``failed`` only
when the batch itself could not run (``problem`` says why)."""

batch_items = Table(
    "batch_items",
    metadata,
    Column("batch_id", String(36), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("chunk", Integer, nullable=False),
    Column("decision_id", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("request", LargeBinary),
    Column("status", Integer),
    Column("record_id", String(36)),
    Column("problem", Text),
)
"""One row per item: ``state`` ``pending`` | ``succeeded`` | ``failed``; ``request`` the
equivalent single request's JSON (cleared once processed); ``status`` what the single
request would have answered (201, 200, 409, 422...); ``problem`` the failure's problem."""

Index(
    "ix_batch_items_batch_chunk_state",
    batch_items.c.batch_id,
    batch_items.c.chunk,
    batch_items.c.state,
)
Index("ix_batch_items_pending", batch_items.c.state, batch_items.c.batch_id)
