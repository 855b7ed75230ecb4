"""Batches run inside the serving process on a bounded pool of threads (no broker)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import structlog
from sqlalchemy.exc import OperationalError

from app.batches import service as batches
from app.errors import RationaleError
from app.runtime.context import Context

log = structlog.get_logger(__name__)


class InProcessRunner:
    """Processes submitted batches chunk by chunk on ``RATIONALE_BATCH_THREADS`` threads."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pool = ThreadPoolExecutor(ctx.settings.batch_threads, thread_name_prefix="batch")
        self._stopping = threading.Event()

    def submit(self, batch_id: str, chunks: int) -> None:
        """Queue a batch; its chunks run one after another on one pool thread."""
        self.pool.submit(self._run, batch_id, chunks)

    def resume(self) -> None:
        """Queue the batches a previous process left queued or running."""
        for batch in batches.store(self.ctx).unfinished():
            self.submit(batch.id, batch.chunks)

    def close(self) -> None:
        """Stop after the chunks in progress (unfinished batches resume at the next start)."""
        self._stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, batch_id: str, chunks: int) -> None:
        for chunk in range(chunks):
            for attempt in range(10):
                if self._stopping.is_set():
                    return
                try:
                    batches.process_chunk(self.ctx, batch_id, chunk)
                    break
                except OperationalError as exc:
                    # The database is down: the chunk is retried (idempotently) a while.
                    log.warning("batch chunk failed; retrying", error=str(exc), attempt=attempt)
                    time.sleep(min(2**attempt, 30))
                except Exception as exc:
                    # A bug, not a bad item (those fail alone): the batch could not run.
                    log.exception("batch chunk failed", batch_id=batch_id, chunk=chunk)
                    problem = batches.problem_of(RationaleError(f"the batch could not run: {exc}"))
                    batches.store(self.ctx).mark_failed(batch_id, json.dumps(problem))
                    return
