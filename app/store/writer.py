"""Group commit: one writer thread appends whatever drafts are waiting in one transaction.

Requests (and, later, batch workers) hand in drafts and wait on a future; the writer
drains the queue, appends all of it under the chain lock, commits once, and only then
resolves each future, so every caller learns of its record after it is durable.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

import structlog

from app import metrics
from app.store.chain import Draft
from app.store.repository import AppendOutcome, NewSubject, Repository

log = structlog.get_logger(__name__)

Item = tuple[Draft, NewSubject | None]
_STOP = object()


class GroupWriter:
    """Appends drafts for many callers, one transaction per group."""

    def __init__(self, repository: Repository, max_group: int = 256) -> None:
        self.repository = repository
        self.max_group = max_group
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="record-writer", daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[Item]) -> Future[list[AppendOutcome]]:
        """Queue drafts to append together; the future resolves after their commit."""
        future: Future[list[AppendOutcome]] = Future()
        self._queue.put((list(items), future))
        return future

    def append(self, items: Sequence[Item]) -> list[AppendOutcome]:
        """Blocking form of ``submit`` for callers outside the event loop."""
        return self.submit(items).result()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            size = len(first[0])  # type: ignore[index]
            while size < self.max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)
                    break
                group.append(nxt)
                size += len(nxt[0])  # type: ignore[index]
            self._commit(group)

    def _commit(self, group: list[object]) -> None:
        jobs: list[tuple[list[Item], Future[list[AppendOutcome]]]] = group  # type: ignore[assignment]
        flat = [item for items, _ in jobs for item in items]
        try:
            started = time.perf_counter()
            outcomes = self.repository.append(flat)
            metrics.observe_append(outcomes, time.perf_counter() - started)
        except Exception as exc:
            if len(jobs) > 1:
                # One caller's bad draft must not fail the others: retry each alone.
                for job in jobs:
                    self._commit([job])
                return
            log.error("record append failed", error=str(exc))
            jobs[0][1].set_exception(exc)
            return
        start = 0
        for items, future in jobs:
            future.set_result(outcomes[start : start + len(items)])
            start += len(items)
