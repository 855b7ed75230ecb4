"""Every table, in the one metadata migrations see. ``records`` is append-only; the others hold
state (subjects, keys, desk sessions, batches) or grow only (Merkle nodes, checkpoints)."""

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
role, the form token, the chosen language, the expiry. State, not history
(docs/decisions.md#state-tables)."""

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

# -- batches: mutable state, not history ----------------------------------------------------
# Tables of batches (docs/operations/scale.md#batches): mutable state, not history
# (docs/decisions.md#state-tables).
#
# A batch row says what was asked; one row per item holds the item's request until it is
# processed (then the request is cleared: the person's data lives on only sealed in the
# record) and its outcome. Counts are read from item states, never kept as increments, so
# a redelivered item can neither be lost nor counted twice.

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

# -- the person's page: links and shared rate counts -----------------------------------------

links = Table(
    "links",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("record_id", String(36), nullable=False),
    Column("subject_ref", String(36), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("revoked_at", String(32)),
)
"""Links to a person's own decision page (docs/person.md#links): the SHA-256 of the URL's
token (never the token), the explanation record, the subject it belongs to (so an erasure
revokes it), the issuing key, the expiry and the revocation. State, not history: each link
is also a chained ``link`` record, each revocation an ``admin_event``."""

Index("ix_links_subject_ref", links.c.subject_ref)
Index("ix_links_record_id", links.c.record_id)

rate_counts = Table(
    "rate_counts",
    metadata,
    Column("bucket", String(80), primary_key=True),
    Column("minute", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("count", Integer, nullable=False),
)
"""Requests per bucket (a hashed token or client address) per minute, shared by every worker
process (docs/person.md#rate-limits); rows older than the previous minute are swept."""

Index("ix_rate_counts_minute", rate_counts.c.minute)
