"""records subjects model versions

Revision ID: 0001
Revises:
Create Date: 2026-11-25 15:01:54.564902
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name")),
    )
    op.create_table(
        "records",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("decision_id", sa.String(length=128), nullable=True),
        sa.Column("subject_ref", sa.String(length=36), nullable=True),
        sa.Column("model_name", sa.String(length=64), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=128), nullable=True),
        sa.Column("target_id", sa.String(length=36), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_records")),
        sa.UniqueConstraint("id", name=op.f("uq_records_id")),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index("ix_records_key_seq", ["key_id", "seq"], unique=False)
        batch_op.create_index(
            "ix_records_model_seq", ["model_name", "model_version", "seq"], unique=False
        )
        batch_op.create_index("ix_records_subject_seq", ["subject_ref", "seq"], unique=False)
        batch_op.create_index("ix_records_target_id", ["target_id"], unique=False)
        batch_op.create_index("ix_records_type_seq", ["type", "seq"], unique=False)
        batch_op.create_index(
            "uq_records_explanation_decision_id",
            ["decision_id"],
            unique=True,
            sqlite_where=sa.text("type = 'explanation'"),
            postgresql_where=sa.text("type = 'explanation'"),
        )

    op.create_table(
        "subjects",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=36), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_subjects")),
        sa.UniqueConstraint("ref", name=op.f("uq_subjects_ref")),
    )


def downgrade() -> None:
    op.drop_table("subjects")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_records_explanation_decision_id",
            sqlite_where=sa.text("type = 'explanation'"),
            postgresql_where=sa.text("type = 'explanation'"),
        )
        batch_op.drop_index("ix_records_type_seq")
        batch_op.drop_index("ix_records_target_id")
        batch_op.drop_index("ix_records_subject_seq")
        batch_op.drop_index("ix_records_model_seq")
        batch_op.drop_index("ix_records_key_seq")

    op.drop_table("records")
    op.drop_table("model_versions")
