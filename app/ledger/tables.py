"""SQLAlchemy tables. ``records`` is append-only; ``subjects`` is the one mutable table."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

records = Table(
    "records",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("id", String(36), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("role", String(16), nullable=False),
    Column("decision_id", String(128)),
    Column("subject_ref", String(36)),
    Column("model_name", String(64)),
    Column("model_version", String(64)),
    Column("outcome", String(128)),
    Column("target_id", String(36)),
    Column("fingerprint", String(64)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("document", LargeBinary, nullable=False),
)
"""Every record, in chain order. ``document`` holds the JCS bytes that ``hash`` covers;
the other columns are query copies that verify checks against the document."""

Index(
    "uq_records_explanation_decision_id",
    records.c.decision_id,
    unique=True,
    sqlite_where=text("type = 'explanation'"),
    postgresql_where=text("type = 'explanation'"),
)
Index("ix_records_model_seq", records.c.model_name, records.c.model_version, records.c.seq)
Index("ix_records_subject_seq", records.c.subject_ref, records.c.seq)
Index("ix_records_type_seq", records.c.type, records.c.seq)
Index(
    "ix_records_target_id",
    records.c.target_id,
    sqlite_where=text("target_id IS NOT NULL"),
    postgresql_where=text("target_id IS NOT NULL"),
)
Index("ix_records_key_seq", records.c.key_id, records.c.seq)
Index("ix_records_model_name_seq", records.c.model_name, records.c.seq)
Index("ix_records_model_outcome_seq", records.c.model_name, records.c.outcome, records.c.seq)
Index("ix_records_outcome_seq", records.c.outcome, records.c.seq)
Index("ix_records_created_at_seq", records.c.created_at, records.c.seq)

subjects = Table(
    "subjects",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("ref", String(36), nullable=False, unique=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at", String(32), nullable=False),
)
"""HMAC of a subject id → random reference and wrapped data key. Deleting a row
crypto-shreds that person's sealed data."""

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("registered_at", String(32), nullable=False),
    UniqueConstraint("name", "version"),
)
"""Registered model versions; the id orders registrations ("latest" is the highest)."""

desk_sessions = Table(
    "desk_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
)
"""Support-desk sign-ins: the SHA-256 of the session cookie's secret → the key's id and
role, the form token, the chosen language, the expiry. State, not history (SPEC §11.11)."""

merkle_nodes = Table(
    "merkle_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("hash", LargeBinary, nullable=False),
)
"""Every complete aligned subtree of the record log's Merkle tree (level k, index i covers
leaves [i·2^k, (i+1)·2^k)), written in the transaction that appends its last leaf."""

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tree_size", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("root_hash", String(64), nullable=False),
    Column("key_id", String(8), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("tree_size", "key_id"),
)
"""Signed checkpoints issued (append-only): the signed-note text as served."""

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("key_id", String(8), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("verifier_key", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
)
"""Public halves of every checkpoint signing key used (kept across secret rotations)."""

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("revoked_at", String(32)),
)
"""API keys created with ``rationale keys create`` (only the secret's SHA-256 is kept)."""

server_keys = Table(
    "server_keys",
    metadata,
    Column("purpose", String(64), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("updated_at", String(32), nullable=False),
)
"""Keys that must outlive a secret rotation (the subject-id HMAC key), wrapped under the
current master key."""
