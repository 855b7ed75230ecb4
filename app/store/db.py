"""Engine set-up: SQLite in WAL with synchronous=FULL, or PostgreSQL over psycopg 3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

WRITE = {"rationale_write": True}
"""Execution option of a connection that appends: SQLite takes the write lock at BEGIN."""


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 8) -> Engine:
    """An engine for the record store; creates the SQLite file's folder when needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            poolclass=NullPool if database in ("", ":memory:") else None,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        )
        _sqlite_events(engine, busy_timeout_ms)
        return engine
    return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_events(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling is off; BEGIN is emitted below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("rationale_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
