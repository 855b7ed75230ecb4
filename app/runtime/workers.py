"""Worker processes for ``rationale serve``.

Each worker binds its own listening socket with ``SO_REUSEPORT``, so the kernel spreads
incoming connections across the workers. (With one shared socket, as uvicorn's own
``--workers`` does, the first worker to wake accepts every connection that is waiting:
a few keep-alive clients then all land on one process while the others idle.) The parent
starts the workers, restarts one that dies, and stops them all on SIGTERM or SIGINT.

A worker whose record writer stops (``app.runtime.lifecycle.fail``) shuts down gracefully and exits
with ``EXIT_FATAL``, so the parent (or, with one worker, compose or systemd) starts a fresh
one. Timeouts: an idle keep-alive connection is closed after ``KEEP_ALIVE_SECONDS``; a
request body must arrive within ``RATIONALE_BODY_TIMEOUT_SECONDS`` (``app.http.timeouts``,
a 408 otherwise); shutdown waits ``GRACEFUL_SHUTDOWN_SECONDS`` for requests in flight.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog
import uvicorn

from app.runtime import lifecycle
from app.runtime import multiprocess as metrics_folder

APP = "app.main:app_factory"
PRELOAD = ["app.main", "skops.io", "uvicorn"]
"""Imported once by the fork server that workers are forked from: the libraries take
seconds of CPU to import, which every worker would otherwise pay again (and on two cores,
at the same time). Nothing is loaded or connected there: each worker still opens its own
database engine and loads and warms its own models before /readyz answers 200."""
KEEP_ALIVE_SECONDS = 5
"""An idle keep-alive connection is closed after this long."""
GRACEFUL_SHUTDOWN_SECONDS = 10
"""On SIGTERM, requests in flight get this long to finish."""
log = structlog.get_logger(__name__)


def _config(**extra: object) -> uvicorn.Config:
    return uvicorn.Config(
        APP,
        factory=True,
        access_log=False,
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        **extra,  # type: ignore[arg-type]
    )


class _Server(uvicorn.Server):
    """uvicorn's server, which also shuts down once the process cannot serve."""

    async def on_tick(self, counter: int) -> bool:
        if lifecycle.failed() is not None:
            self.should_exit = True
        return await super().on_tick(counter)


def _serve(server: _Server, **kwargs: object) -> None:
    server.run(**kwargs)  # type: ignore[arg-type]
    if lifecycle.failed() is not None:
        sys.exit(lifecycle.EXIT_FATAL)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int) -> None:
    sock = _listening_socket(host, port)
    _serve(_Server(_config()), sockets=[sock])


def run(host: str, port: int, workers: int) -> None:
    """Serve on host:port with ``workers`` processes; returns when they have stopped."""
    # Metrics of every worker are summed from files in a fresh folder; the variable must be
    # set before prometheus_client is imported (app.runtime.metrics, by the app).
    metrics_dir = metrics_folder.create("serve")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # uvicorn re-raises the SIGTERM or SIGINT it stopped on once it has shut down; with the
    # default action that ended the process before the folder was removed. It is raised
    # here as an exception instead, and again as the signal once the folder is gone.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop_signal)
    stopped_by = None
    try:
        _run(host, port, workers, _worker_died)
    except _Stopped as stopped:
        stopped_by = stopped.signum
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if stopped_by is not None:
        signal.signal(stopped_by, signal.SIG_DFL)
        signal.raise_signal(stopped_by)


class _Stopped(BaseException):
    """A stop signal that uvicorn handed back after its shutdown."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_signal(signum: int, _frame: FrameType | None) -> None:
    raise _Stopped(signum)


def _worker_died(pid: int) -> None:
    from app.runtime.metrics import mark_worker_dead

    mark_worker_dead(pid)


def _run(host: str, port: int, workers: int, worker_died: Callable[[int], None]) -> None:
    if workers == 1:
        _serve(_Server(_config(host=host, port=port)))
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    stopping = False

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(host, port), name="rationale-worker")
        process.start()
        return process

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive() and process.pid is not None:
                process.terminate()

    processes = [start() for _ in range(workers)]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for i, process in enumerate(processes):
            if not process.is_alive() and not stopping:
                log.error("worker exited; starting another", exitcode=process.exitcode)
                if process.pid is not None:
                    worker_died(process.pid)
                processes[i] = start()
        time.sleep(0.5)
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
