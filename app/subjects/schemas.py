"""Schemas of erasure: what a subject's erasure did."""

from __future__ import annotations

from pydantic import BaseModel


class ErasureResult(BaseModel):
    """What an erasure did: the subject's reference, how many records it had, and the id
    of the ``erasure`` record appended."""

    subject_ref: str
    records: int
    erasure_record: str
