"""Batches on Celery workers over a broker (Redis), sharing the record store.

Delivery is at least once: tasks are acknowledged late (after the chunk's records and item
states are committed), a worker that dies leaves its task unacknowledged, and the broker
hands it to another worker once the visibility timeout has passed. Processing a chunk
again is harmless (``process_chunk`` is idempotent), so nothing acknowledged is lost and
nothing is written twice."""

from __future__ import annotations

import os
import threading
from typing import Any

import structlog
from celery import Celery, Task
from sqlalchemy.exc import OperationalError

from app.config import Settings

TASK = "rationale.batch_chunk"
log = structlog.get_logger(__name__)

_lock = threading.Lock()
_context: Any = None
_context_pid: int | None = None
_preloaded_catalog: Any = None
"""Models a prefork parent loaded before forking its pool (children share them)."""


def make_celery(settings: Settings) -> Celery:
    """The Celery app of these settings, with the batch task registered."""
    app = Celery("rationale", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=settings.batch_queue,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    app.task(name=TASK, bind=True, max_retries=None)(_batch_chunk)
    return app


def worker_context() -> Any:
    """This worker process's context (store, writer, models), made once per process."""
    global _context, _context_pid
    with _lock:
        if _context is None or _context_pid != os.getpid():
            from app.catalog.service import load_models
            from app.ledger import migrate
            from app.runtime.context import Context

            ctx = Context.create(Settings())
            if not migrate.is_current(ctx.engine):
                raise RuntimeError("the database schema is not migrated; run `rationale migrate`")
            if _preloaded_catalog is not None:
                ctx.catalog = _preloaded_catalog
            else:
                load_models(ctx)
            ctx.ready = True
            _context, _context_pid = ctx, os.getpid()
        return _context


def preload_models() -> None:
    """Load and warm the models once in a prefork parent, before its pool forks: each child
    then opens its own store and writer but shares these models, instead of importing and
    loading them while it holds its first task (which could outlast the visibility timeout
    and have the task delivered twice)."""
    global _preloaded_catalog
    from app.catalog.service import load_models
    from app.ledger import migrate
    from app.runtime.context import Context

    ctx = Context.create(Settings())
    try:
        if not migrate.is_current(ctx.engine):
            raise RuntimeError("the database schema is not migrated; run `rationale migrate`")
        load_models(ctx)
        _preloaded_catalog = ctx.catalog
    finally:
        ctx.close()


def _batch_chunk(task: Task, batch_id: str, chunk: int) -> int:
    from app.batches.service import process_chunk

    try:
        return process_chunk(worker_context(), batch_id, chunk)
    except OperationalError as exc:
        log.warning("batch chunk: database unavailable; retrying", error=str(exc))
        raise task.retry(exc=exc, countdown=2) from exc


class CeleryDispatcher:
    """Sends one task per chunk to the batch queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = make_celery(settings)

    def submit(self, batch_id: str, chunks: int) -> None:
        """Queue every chunk of a stored batch."""
        for chunk in range(chunks):
            self.app.send_task(TASK, args=[batch_id, chunk], queue=self.settings.batch_queue)

    def close(self) -> None:
        self.app.close()


def serve_metrics(settings: Settings, host: str, port: int) -> None:
    """Serve this worker's metrics on host:port from its main process: the sums over every
    process of its pool (``PROMETHEUS_MULTIPROC_DIR`` must name the worker's own folder
    before ``prometheus_client`` is imported) and the batch queue depth read from the store.
    Pool children forked later close the inherited listening socket and drop the parent's
    database connections."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise RuntimeError("PROMETHEUS_MULTIPROC_DIR must be set before the worker starts")
    from celery.signals import worker_process_init
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:
        raise RuntimeError("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set")
    from app.batches.repository import BatchStore
    from app.ledger.db import make_engine
    from app.runtime import metrics

    engine = make_engine(settings.database_url, pool_size=1)
    server = metrics.serve_worker_metrics(host, port, BatchStore(engine).pending_total)

    parent = os.getpid()

    def in_child(**_: Any) -> None:
        # The solo pool sends this signal in the main process itself: nothing to drop there.
        if os.getpid() != parent:
            server.socket.close()
            engine.dispose(close=False)

    worker_process_init.connect(in_child, weak=False)
    log.info("worker metrics", url=f"http://{host}:{port}/metrics")


def run_worker(
    settings: Settings,
    concurrency: int,
    loglevel: str = "INFO",
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Run a worker on the batch queue (``solo`` pool for one process, else ``prefork``),
    serving its metrics on ``metrics_port`` when given."""
    app = make_celery(settings)
    if metrics_port is not None:
        serve_metrics(settings, metrics_host, metrics_port)
    # Load the models before taking the first task (in the parent of a prefork pool).
    if concurrency == 1:
        worker_context()
    else:
        preload_models()
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={concurrency}",
        f"--pool={'solo' if concurrency == 1 else 'prefork'}",
        f"--queues={settings.batch_queue}",
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv=argv)


def __getattr__(name: str) -> Any:
    # ``celery -A app.batches.celery_worker:celery inspect ping`` (container health checks).
    if name == "celery":
        return make_celery(Settings())
    raise AttributeError(name)
