"""Recently used subjects' data keys, so a returning subject's request reads nothing first."""

from __future__ import annotations

import threading
from collections import OrderedDict

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
