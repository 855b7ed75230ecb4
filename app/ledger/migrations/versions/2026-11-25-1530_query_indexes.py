"""query indexes

Indexes for the query paths of GET /v1/explanations: by model name alone, by model and
outcome, by outcome, and by time (created_at → seq bounds). The target_id index becomes
partial (most records have no target; with all those NULLs, SQLite's statistics made
the planner scan the table instead).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index("ix_records_model_name_seq", ["model_name", "seq"], unique=False)
        batch_op.create_index(
            "ix_records_model_outcome_seq", ["model_name", "outcome", "seq"], unique=False
        )
        batch_op.create_index("ix_records_outcome_seq", ["outcome", "seq"], unique=False)
        batch_op.create_index("ix_records_created_at_seq", ["created_at", "seq"], unique=False)
        batch_op.drop_index("ix_records_target_id")
        batch_op.create_index(
            "ix_records_target_id",
            ["target_id"],
            unique=False,
            sqlite_where=sa.text("target_id IS NOT NULL"),
            postgresql_where=sa.text("target_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index("ix_records_target_id")
        batch_op.create_index("ix_records_target_id", ["target_id"], unique=False)
        batch_op.drop_index("ix_records_created_at_seq")
        batch_op.drop_index("ix_records_outcome_seq")
        batch_op.drop_index("ix_records_model_outcome_seq")
        batch_op.drop_index("ix_records_model_name_seq")
