"""Repository tests roll back per test (docs/decisions.md#tests): one connection per test holding an
outer transaction; the repository appends in savepoints on it, still under the chain
lock, and everything is rolled back at the end. Each backend's database is built once per
module by Alembic; PostgreSQL is a database created and dropped for the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine

from app.ledger.db import WRITE
from app.ledger.repository import Repository
from tests.ledger.support import BACKENDS, migrated_engine


@pytest.fixture(scope="module", params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path_factory.mktemp("store")) as built:
        yield built


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect().execution_options(**WRITE) as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            outer.rollback()


@pytest.fixture
def repo(engine: Engine, connection: Connection) -> Repository:
    return Repository(engine, bind=connection)
