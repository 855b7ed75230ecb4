"""Every table is in the one metadata the migrations see (`env.py` hands it to Alembic),
and the migrations build exactly it:
an autogenerate against a freshly migrated database finds nothing to do, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.ledger.tables import metadata
from tests.ledger.support import BACKENDS, migrated_engine


@pytest.mark.parametrize("backend", BACKENDS)
def test_autogenerate_against_a_migrated_database_finds_no_difference(
    backend: str, tmp_path: Path
) -> None:
    with migrated_engine(backend, tmp_path) as engine, engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, metadata)
    assert differences == [], differences


def test_the_tables_of_every_domain_are_in_the_one_metadata() -> None:
    assert {
        "batches",
        "batch_items",
        "records",
        "subjects",
        "desk_sessions",
        "links",
        "rate_counts",
    } <= set(metadata.tables)
