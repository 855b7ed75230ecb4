"""merkle nodes, checkpoints, signing keys, api keys, server keys

The record log's Merkle tree (complete subtrees, filled in for records already stored),
signed checkpoints (append-only), the public halves of signing keys, API keys created
from the command line, and keys that outlive a secret rotation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "merkle_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", BIG, autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_merkle_nodes")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tree_size", BIG, nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
        sa.UniqueConstraint("tree_size", "key_id", name=op.f("uq_checkpoints_tree_size")),
    )
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("verifier_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_signing_keys")),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("revoked_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_api_keys_secret_sha256")),
    )
    op.create_table(
        "server_keys",
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("purpose", name=op.f("pk_server_keys")),
    )
    _fill_merkle_nodes()


def _fill_merkle_nodes() -> None:
    """Build the tree of the records already stored, streaming them in seq order."""
    from app.ledger import merkle

    conn = op.get_bind()
    size = 0
    last = 0
    while True:
        page = conn.execute(
            sa.text("SELECT seq, hash FROM records WHERE seq > :last ORDER BY seq LIMIT 5000"),
            {"last": last},
        ).all()
        if not page:
            return
        merkle.extend(conn, size, [row.hash for row in page])
        size += len(page)
        last = page[-1].seq


def downgrade() -> None:
    op.drop_table("server_keys")
    op.drop_table("api_keys")
    op.drop_table("signing_keys")
    op.drop_table("checkpoints")
    op.drop_table("merkle_nodes")
