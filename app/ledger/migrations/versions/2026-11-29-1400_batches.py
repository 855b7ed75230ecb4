"""batches

The ``batches`` and ``batch_items`` tables (state of asynchronous batches,
docs/operations/scale.md#batches). Mutable state, not history: the records the items become
are in ``records``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.String(length=32), nullable=True),
        sa.Column("finished_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_table(
        "batch_items",
        sa.Column("batch_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("request", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("record_id", sa.String(length=36), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("batch_id", "position", name=op.f("pk_batch_items")),
    )
    op.create_index(
        "ix_batch_items_batch_chunk_state",
        "batch_items",
        ["batch_id", "chunk", "state"],
        unique=False,
    )
    op.create_index("ix_batch_items_pending", "batch_items", ["state", "batch_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_batch_items_pending", table_name="batch_items")
    op.drop_index("ix_batch_items_batch_chunk_state", table_name="batch_items")
    op.drop_table("batch_items")
    op.drop_table("batches")
