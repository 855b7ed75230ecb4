"""links and rate counts

The ``links`` table (a person's links to their own decision page: the token's SHA-256, the
record, the subject, the issuer, expiry and revocation) and ``rate_counts`` (requests per
bucket per minute, shared across worker processes). State, not history
(docs/person.md#links).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("subject_ref", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.String(length=32), nullable=False),
        sa.Column("revoked_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_links_token_hash")),
    )
    op.create_index("ix_links_subject_ref", "links", ["subject_ref"])
    op.create_index("ix_links_record_id", "links", ["record_id"])
    op.create_table(
        "rate_counts",
        sa.Column("bucket", sa.String(length=80), nullable=False),
        sa.Column("minute", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "minute", name=op.f("pk_rate_counts")),
    )
    op.create_index("ix_rate_counts_minute", "rate_counts", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_rate_counts_minute", table_name="rate_counts")
    op.drop_table("rate_counts")
    op.drop_index("ix_links_record_id", table_name="links")
    op.drop_index("ix_links_subject_ref", table_name="links")
    op.drop_table("links")
