"""Response schemas of proofs, checkpoints, erasure and keys (SPEC §11.5, §11.7, §11.11)."""

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


class ErasureResult(BaseModel):
    """What an erasure did: the subject's reference, how many records it had, and the id
    of the ``erasure`` record appended."""

    subject_ref: str
    records: int
    erasure_record: str
