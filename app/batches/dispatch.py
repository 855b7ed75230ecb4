"""Who runs a batch's chunks: the in-process pool by default, Celery workers over a broker
when ``RATIONALE_BROKER_URL`` is set. Tasks stay thin: the work is
``app.batches.service.process_chunk``; the state is in the ``batches`` tables."""

from __future__ import annotations

from typing import Protocol

from app.runtime.context import Context


class Dispatcher(Protocol):
    """Hands a stored batch's chunks to whatever runs them."""

    def submit(self, batch_id: str, chunks: int) -> None: ...

    def close(self) -> None: ...


def dispatcher_for(ctx: Context) -> Dispatcher:
    """Celery when a broker is configured, else the in-process pool (which resumes the
    batches a previous run left unfinished)."""
    if ctx.settings.broker_url:
        from app.batches.celery_worker import CeleryDispatcher

        return CeleryDispatcher(ctx.settings)
    from app.batches.inprocess import InProcessRunner

    runner = InProcessRunner(ctx)
    runner.resume()
    return runner
