"""Structured logging (structlog), JSON lines by default."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(json_lines: bool = True, level: int = logging.INFO) -> None:
    """Set up structlog and route the standard library's loggers through it."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # uvicorn's own access log prints raw paths and query strings: ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True
