"""Group commit: one writer thread appends whatever drafts are waiting in one transaction.

Requests (and batch workers) hand in drafts and wait on a future; the writer drains the
queue, appends all of it under the chain lock, commits once, and only then resolves each
future, so every caller learns of its record after it is durable.

Faults are contained: a caller that has gone away (its future cancelled before the writer
took it) is skipped — its record was never acknowledged; a taken future can no longer be
cancelled, so resolving it never raises. A failing append fails only its own callers. If the
thread ever stops, every waiting and later caller gets ``WriterStopped`` at once (never a
wait without end), ``alive`` turns false (``/readyz`` answers 503) and ``on_stop`` is called
so the process can exit and be restarted by its supervisor. ``commit`` bounds the wait.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import structlog
from sqlalchemy.exc import OperationalError

from app.errors import Unavailable
from app.ledger.chain import Draft
from app.ledger.repository import AppendOutcome, Repository, SubjectClaim
from app.runtime import metrics

log = structlog.get_logger(__name__)

Item = tuple[Draft, SubjectClaim | None]
Job = tuple[list[Item], "Future[list[AppendOutcome]]"]
_STOP = object()


class WriterStopped(Unavailable):
    """The record writer is not running: nothing can be appended by this process."""

    def __init__(self) -> None:
        super().__init__("the record writer has stopped; this process is restarting", 5)


class GroupWriter:
    """Appends drafts for many callers, one transaction per group."""

    def __init__(
        self,
        repository: Repository,
        max_group: int = 256,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.repository = repository
        self.max_group = max_group
        self.on_stop = on_stop
        self._queue: queue.Queue[object] = queue.Queue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="record-writer", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the writer thread is running and taking drafts."""
        return self._thread.is_alive() and not self._stopped.is_set()

    def submit(self, items: Sequence[Item]) -> Future[list[AppendOutcome]]:
        """Queue drafts to append together; the future resolves after their commit."""
        future: Future[list[AppendOutcome]] = Future()
        if self._stopped.is_set():
            future.set_exception(WriterStopped())
            return future
        self._queue.put((list(items), future))
        if self._stopped.is_set():  # stopped while queueing: nobody will take it
            self._fail_waiting()
        return future

    def append(self, items: Sequence[Item], timeout: float | None = None) -> list[AppendOutcome]:
        """Blocking form of ``submit`` for callers outside the event loop."""
        return self.submit(items).result(timeout=timeout)

    async def commit(self, items: Sequence[Item], timeout: float) -> list[AppendOutcome]:
        """Append from the event loop, waiting at most ``timeout`` seconds: past it, a 503
        with Retry-After (the drafts are dropped if the writer has not taken them yet; if it
        has, they may still be committed, and a retry with the same body finds them)."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self.submit(items)), timeout)
        except TimeoutError as exc:
            log.error("record commit timed out", seconds=timeout)
            raise Unavailable(
                f"the record store did not commit within {timeout:g} s; retry shortly", 2
            ) from exc

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self._stopped.set()
        self._fail_waiting()

    def _fail_waiting(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP:
                future = job[1]  # type: ignore[index]
                if future.set_running_or_notify_cancel():
                    future.set_exception(WriterStopped())

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            log.critical("record writer stopped", error=repr(exc))
            raise
        finally:
            stopping = self._stopped.is_set()
            self._stopped.set()
            self._fail_waiting()
            if not stopping and self.on_stop is not None:
                self.on_stop()

    def _take(self, job: object) -> Job | None:
        """The job, marked running (it can no longer be cancelled), or None if its caller
        has gone."""
        items: list[Item] = job[0]  # type: ignore[index]
        future: Future[list[AppendOutcome]] = job[1]  # type: ignore[index]
        if not future.set_running_or_notify_cancel():
            return None
        return items, future

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._stopped.set()
                return
            group: list[Job] = []
            taken = self._take(first)
            if taken is not None:
                group.append(taken)
            size = len(taken[0]) if taken else 0
            while size < self.max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)
                    break
                job = self._take(nxt)
                if job is not None:
                    group.append(job)
                    size += len(job[0])
            if not group:
                continue
            try:
                self._commit(group)
            except Exception as exc:  # never let one group end the thread
                log.exception("record group failed")
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)

    def _commit(self, jobs: list[Job]) -> None:
        flat = [item for items, _ in jobs for item in items]
        started = time.perf_counter()
        try:
            outcomes = self.repository.append(flat)
        except OperationalError as exc:
            # The database is unreachable: every caller gets it now (a 503), no retries.
            log.error("record store unavailable", error=str(exc.orig))
            for _, future in jobs:
                future.set_exception(exc)
            return
        except Exception as exc:
            if len(jobs) > 1:
                # One caller's bad draft must not fail the others: retry each alone.
                for job in jobs:
                    self._commit([job])
                return
            log.error("record append failed", error=str(exc))
            jobs[0][1].set_exception(exc)
            return
        metrics.observe_append(outcomes, time.perf_counter() - started)
        start = 0
        for items, future in jobs:
            future.set_result(outcomes[start : start + len(items)])
            start += len(items)
