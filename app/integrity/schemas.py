"""Schemas of the log's integrity: chain verification, the access log, checkpoints, proofs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

HEX = r"^[0-9a-f]{64}$"


class InclusionProof(BaseModel):
    """RFC 9162 §2.1.3 inclusion proof of one record (leaf ``seq - 1``)."""

    tree_size: int
    leaf_index: int
    record_id: str
    record_hash: str = Field(pattern=HEX)
    hashes: list[str]


class ConsistencyProof(BaseModel):
    """RFC 9162 §2.1.4 consistency proof between two tree sizes."""

    model_config = ConfigDict(populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    hashes: list[str]


class CheckpointEntry(BaseModel):
    """A signed checkpoint as kept: size, root, signing key id, the note text, time."""

    tree_size: int
    root_hash: str = Field(pattern=HEX)
    key_id: str
    created_at: str
    note: str


class CheckpointList(BaseModel):
    items: list[CheckpointEntry]
    next_cursor: str | None


class ChainHead(BaseModel):
    seq: int
    hash: str


class BadRecord(BaseModel):
    id: str | None
    seq: int | None
    reason: str


class VerifyReport(BaseModel):
    """The outcome of recomputing the record chain."""

    ok: bool
    records_checked: int
    first_bad: BadRecord | None
    head: ChainHead | None


class AccessEntry(BaseModel):
    """One read of record content: who (key id, role), what, through which endpoint, when."""

    id: str
    seq: int
    created_at: str
    key_id: str
    role: str
    endpoint: str | None
    records: list[str]
    filters: dict[str, str | int | float | bool | None] | None = None
    format: str | None = None
    through_seq: int | None = None


class AccessLog(BaseModel):
    items: list[AccessEntry]
    next_cursor: str | None
