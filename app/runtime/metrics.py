"""Prometheus metrics (``GET /metrics``), summed across ``rationale serve`` worker processes,
and the metrics port of ``rationale worker`` (Celery), summed across its pool's processes.

``rationale serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before its workers
start (``app.runtime.workers``); each worker then writes its samples to files there and
a scrape of any worker reads them all. ``rationale worker --metrics-port`` does the same
with a folder of its own: its prefork children write there, and its main process serves
their sums. Without the variable (tests, a library caller) the process's own registry is
served."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

log = structlog.get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "rationale_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "rationale_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
EXPLAIN_SECONDS = Histogram(
    "rationale_explanation_seconds",
    "Time to compute one row's prediction and explanation, by model and method used "
    "(rows computed together share the call's time equally).",
    ["model", "method"],
    buckets=LATENCY_BUCKETS,
)
FALLBACKS = Counter(
    "rationale_explanation_fallbacks",
    "Explanations made by a later method than the first one tried (the earlier failed its "
    "fidelity check or could not run).",
    ["model", "requested", "used"],
)
RECORDS_WRITTEN = Counter(
    "rationale_records_written",
    "Records appended to the chain, by record type.",
    ["type"],
)
APPEND_SECONDS = Histogram(
    "rationale_chain_append_seconds",
    "Time of one group append under the chain lock, commit included.",
    buckets=LATENCY_BUCKETS,
)
BATCH_ITEMS = Counter(
    "rationale_batch_items",
    "Batch items processed, by model and outcome (succeeded, failed).",
    ["model", "state"],
)


def mark_worker_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (its counters stay in the sums)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class _Exposition(Collector):
    """Every process's samples (the multiprocess folder's, else this process's registry),
    then the figures read when scraped: the batch queue depth, the same from every process
    (left out, with a warning, while the store cannot be read: the counters still scrape)."""

    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.queue_depth = queue_depth

    def collect(self) -> Iterable[Metric]:
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            yield from multiprocess.MultiProcessCollector(None).collect()
        else:
            yield from REGISTRY.collect()
        try:
            depth = self.queue_depth()
        except Exception as exc:
            log.warning("metrics: the batch queue depth cannot be read", error=str(exc))
            return
        yield GaugeMetricFamily(
            "rationale_batch_queue_depth",
            "Batch items waiting to be processed, over every batch (the same figure from "
            "every process that reports it: aggregate it with max, not sum).",
            value=depth,
        )


def render(queue_depth: Callable[[], int]) -> tuple[bytes, str]:
    """The exposition text of every metric (all workers' when multiprocess) and its type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Exposition(queue_depth))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_worker_metrics(host: str, port: int, queue_depth: Callable[[], int]) -> WSGIServer:
    """Serve ``render``'s exposition on host:port from a daemon thread of this process
    (``/metrics``, or any path); the server, whose socket forked children should close."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Exposition(queue_depth))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def observe_explanations(
    model: Any, methods: Sequence[str], computed: Sequence[Any], seconds: float
) -> None:
    """Explanation time per row and fallbacks of one ``compute_many`` call's outcomes."""
    from app.compute.batcher import Computed

    done = [(m, c) for m, c in zip(methods, computed, strict=True) if isinstance(c, Computed)]
    if not done:
        return
    share = seconds / len(computed)
    first: dict[tuple[str, Any], str | None] = {}
    for requested, outcome in done:
        used = outcome.explanation.method
        EXPLAIN_SECONDS.labels(model.name, used).observe(share)
        key = (requested, outcome.target)
        if key not in first:
            try:
                first[key] = model.explainers.candidates(requested, outcome.target)[0]
            except Exception:
                first[key] = None
        if first[key] is not None and first[key] != used:
            FALLBACKS.labels(model.name, requested, used).inc()


def observe_append(outcomes: Sequence[Any], seconds: float) -> None:
    """One group append: its latency and the records it wrote."""
    APPEND_SECONDS.observe(seconds)
    written: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.record is not None:
            written[outcome.record.type] = written.get(outcome.record.type, 0) + 1
    for kind, count in written.items():
        RECORDS_WRITTEN.labels(kind).inc(count)


class RequestMetrics:
    """ASGI middleware: requests by method, route template and status, with latency."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(unmatched)"
            method = str(scope.get("method"))
            REQUESTS.labels(method, route, str(status["code"])).inc()
            REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
