"""Process-wide fatal state: a part the process cannot serve without has stopped.

The part calls ``fail``; ``/readyz`` then answers 503 and the server (``app.runtime.workers``)
shuts down gracefully and exits with ``EXIT_FATAL`` so that its supervisor (the serving
parent, compose, systemd) starts a fresh process."""

from __future__ import annotations

import threading

import structlog

EXIT_FATAL = 70
"""Exit status of a process that stopped because a vital part failed (EX_SOFTWARE)."""

log = structlog.get_logger(__name__)
_fatal = threading.Event()
_reasons: list[str] = []


def fail(reason: str) -> None:
    """Mark the process as unable to serve; it will exit to be restarted."""
    _reasons.append(reason)
    _fatal.set()
    log.critical("process cannot serve; exiting to be restarted", reason=reason)


def failed() -> str | None:
    """Why the process cannot serve, or None while it can."""
    return "; ".join(_reasons) if _fatal.is_set() else None
