"""A person's data key for sealing: kept for returning subjects, claimed at append, re-claimed
when the claim was stale.

A request seals its record under the subject's data key before the chain lock; the append then
checks the claim (``NewSubject`` / ``KnownSubject``) under the lock. ``append_claimed`` does the
re-making when the claim lost (another writer created the subject, or it was erased), so a use
case reads as its own steps."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.ledger.chain import Draft
from app.ledger.crypto import ServerKeys, new_data_key
from app.ledger.repository import (
    AppendOutcome,
    KnownSubject,
    NewSubject,
    Repository,
    Subject,
    SubjectClaim,
)
from app.ledger.writer import GroupWriter

T = TypeVar("T")
ATTEMPTS = 3
"""Claims tried before giving up (each loss means another writer changed the subject)."""

DEFAULT_SIZE = 4096
"""Subjects kept: one key of 32 bytes each."""


class SubjectKeys:
    """A bounded LRU of subject digest → (reference, data key).

    Only ever used to seal new records, and never trusted on its own: a record sealed with
    a cached key is appended with a ``KnownSubject`` claim, which the append checks against
    the subjects table under the chain lock. A subject erased by another process is found
    gone there (the draft is dropped and re-made); this process evicts on its own erasures.
    The process already holds the server key that unwraps every data key, so keeping a few
    unwrapped ones widens nothing."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> tuple[str, bytes] | None:
        """The subject's (reference, data key), if kept."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                self._entries.move_to_end(digest)
            return entry

    def put(self, digest: str, ref: str, data_key: bytes) -> None:
        """Keep a subject's key (the least recently used goes when full)."""
        if self._size <= 0:
            return
        with self._lock:
            self._entries[digest] = (ref, data_key)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def evict(self, digest: str) -> None:
        """Forget a subject (erased, or found changed by the append)."""
        with self._lock:
            self._entries.pop(digest, None)


@dataclass(frozen=True)
class SubjectKey:
    """The subject a record is sealed for: its digest, reference, data key and the claim the
    append checks."""

    digest: str
    ref: str
    data_key: bytes
    claim: SubjectClaim


@dataclass(frozen=True)
class Appended(Generic[T]):
    """What became of a claimed append: the outcome, what ``make`` returned with the draft
    that was appended (or found existing), and the subject it was sealed for."""

    outcome: AppendOutcome
    made: T
    subject: SubjectKey


class Subjects:
    """Data keys of subjects for sealing: from the cache, from a subject row, or new."""

    def __init__(self, keys: ServerKeys, repository: Repository, cache: SubjectKeys) -> None:
        self.keys = keys
        self.repository = repository
        self.cache = cache

    def digest(self, subject_id: str | None, decision_id: str) -> str:
        """The HMAC'd digest of a request's subject (its decision when it names none)."""
        if subject_id is not None:
            return self.keys.subject_digest("subject", subject_id)
        return self.keys.subject_digest("decision", decision_id)

    def claim(self, digest: str) -> SubjectKey:
        """A kept key claimed as known, else a new subject proposed, with no read."""
        kept = self.cache.get(digest)
        if kept is not None:
            ref, data_key = kept
            return SubjectKey(digest, ref, data_key, KnownSubject(digest, ref))
        return self.new(digest)

    def new(self, digest: str) -> SubjectKey:
        """A new subject: a fresh reference and data key, wrapped under the server key."""
        ref = self.repository.new_subject_ref()
        data_key = new_data_key()
        wrapped = self.keys.wrap_data_key(data_key, ref)
        return SubjectKey(digest, ref, data_key, NewSubject(digest, ref, wrapped))

    def of(self, subject: Subject) -> SubjectKey:
        """The key of an existing subject row, claimed as known."""
        data_key = self.keys.unwrap_data_key(subject.wrapped_key, subject.ref)
        claim = KnownSubject(subject.digest, subject.ref)
        return SubjectKey(subject.digest, subject.ref, data_key, claim)

    async def append_claimed(
        self,
        writer: GroupWriter,
        subject: SubjectKey,
        make: Callable[[SubjectKey], tuple[Draft, T]],
        timeout: float,
    ) -> Appended[T]:
        """Append the draft ``make`` seals for the subject, re-making it while the claim was
        stale; the kept key is updated to the subject that held."""
        for _attempt in range(ATTEMPTS):
            draft, made = make(subject)
            (outcome,) = await writer.commit([(draft, subject.claim)], timeout)
            if outcome.subject_taken is not None:
                subject = self.of(outcome.subject_taken)
                continue
            if outcome.subject_gone:  # erased since its key was kept
                self.cache.evict(subject.digest)
                subject = self.new(subject.digest)
                continue
            if outcome.record is not None:
                self.cache.put(subject.digest, subject.ref, subject.data_key)
            return Appended(outcome, made, subject)
        raise RuntimeError(f"subject of {subject.digest[:8]} kept changing while appending")
