"""Engine set-up: SQLite in WAL with synchronous=FULL, or PostgreSQL over psycopg 3."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

CONNECT_TIMEOUT_SECONDS = 3
"""Longest wait for a new PostgreSQL connection."""
WRITE = {"rationale_write": True}
"""Execution option of a connection that appends: SQLite takes the write lock at BEGIN."""


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 8) -> Engine:
    """An engine for the record store; creates the SQLite file's folder when needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        timeout = busy_timeout_ms / 1000
        options: dict[str, Any] = {}
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(database).close()  # created here, on first start only
            uri = f"file:{urllib.parse.quote(os.path.abspath(database))}?mode=rw"

            def creator() -> sqlite3.Connection:
                # Read-write, never create: a store gone from its path is unavailable
                # (503), not silently replaced by an empty database.
                return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=timeout)

            options["creator"] = creator
        else:
            options["poolclass"] = NullPool
            options["connect_args"] = {"check_same_thread": False, "timeout": timeout}
        engine = create_engine(parsed, **options)
        _sqlite_events(engine, busy_timeout_ms, database)
        return engine
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # An unreachable server fails fast (a 503) instead of hanging a request.
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


def _inode(database: str) -> int | None:
    try:
        return os.stat(database).st_ino
    except OSError:
        return None


def _sqlite_events(engine: Engine, busy_timeout_ms: int, database: str) -> None:
    on_disk = database not in ("", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        if on_disk:
            record.info["inode"] = _inode(database)
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
        # A pooled connection keeps the file it opened; if that file is no longer at its path
        # (moved, deleted, replaced), writing there would be answered 201 and then be lost
        # from the database everyone reads: the store is unavailable (503) until it is back.
        if on_disk and connection.info.get("inode") != _inode(database):
            connection.invalidate()  # the next checkout opens whatever is at the path then
            raise OperationalError(
                "BEGIN",
                None,
                sqlite3.OperationalError(f"the database file is not at {database}"),
            )
        write = connection.get_execution_options().get("rationale_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class WriterGate:
    """Queues the writers of one SQLite file, across threads and processes.

    ``flock`` hands the file to the next waiting writer the moment the last one commits;
    SQLite's own busy handler instead polls with growing sleeps, which starves throughput
    when several server processes write at once. BEGIN IMMEDIATE still holds the
    database's real write lock inside the gate."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._threads = threading.Lock()
        self._fd: int | None = None

    @classmethod
    def for_engine(cls, engine: Engine) -> WriterGate:
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:":
            return cls(None)
        return cls(Path(f"{database}.writer-lock"))

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Be the only writer of the database while the block runs."""
        if self._path is None:
            yield
            return
        with self._threads:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
