"""Running batches: in-process (a bounded pool) by default, on Celery workers over a broker
when ``RATIONALE_BROKER_URL`` is set. Tasks stay thin: the work is
``app.services.batches.process_chunk``; the state is in the ``batches`` tables."""

from __future__ import annotations

from typing import Protocol

from app.services.context import Context


class Dispatcher(Protocol):
    """Hands a stored batch's chunks to whatever runs them."""

    def submit(self, batch_id: str, chunks: int) -> None: ...

    def close(self) -> None: ...


def dispatcher_for(ctx: Context) -> Dispatcher:
    """Celery when a broker is configured, else the in-process pool (which resumes the
    batches a previous run left unfinished)."""
    if ctx.settings.broker_url:
        from app.jobs.celery_app import CeleryDispatcher

        return CeleryDispatcher(ctx.settings)
    from app.jobs.inprocess import InProcessRunner

    runner = InProcessRunner(ctx)
    runner.resume()
    return runner
