"""Shared pieces of the record-store tests: databases on both backends, synthetic drafts,
an app over a module's own database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.ledger import migrate
from app.ledger.chain import Draft
from app.ledger.db import make_engine
from app.ledger.repository import NewSubject
from app.main import create_app
from tests.contract import ContractClient
from tests.helpers import MODELS, fresh_postgres_database, make_settings

BACKENDS = ("sqlite", "postgresql")
MODEL = "recidivism"
"""The small model served by server-process tests of the store."""


def one_model(workdir: Path) -> str:
    """A models folder serving one small model, so each worker starts quicker: the store,
    not the explainer, is under test there."""
    folder = workdir / "models"
    (folder / MODEL).mkdir(parents=True)
    (folder / MODEL / "1").symlink_to(MODELS / MODEL / "1", target_is_directory=True)
    return str(folder)


@contextmanager
def migrated_engine(backend: str, folder: Path) -> Iterator[Engine]:
    """A fresh database of the backend, built by Alembic, for one test module."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{folder / 'store.db'}")
        migrate.upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    with fresh_postgres_database() as url:
        engine = make_engine(url)
        migrate.upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()


def explanation_draft(
    n: int,
    *,
    model: str = "credit-risk",
    version: str = "1",
    outcome: str = "good",
    subject_ref: str | None = None,
    decision_id: str | None = None,
) -> Draft:
    """A synthetic explanation record (clear part only) shaped like the real ones."""
    decision = decision_id or f"dec-{n}-{uuid.uuid4().hex[:8]}"
    ref = subject_ref or str(uuid.uuid4())
    fingerprint = uuid.uuid4().hex * 2
    clear: dict[str, Any] = {
        "decision_id": decision,
        "subject_ref": ref,
        "request_fingerprint": fingerprint,
        "model": {"name": model, "version": version, "sha256": "ab" * 32},
        "prediction": {"label": outcome, "probabilities": {"bad": 0.25, "good": 0.75}},
        "explanation": {
            "method": "shap.tree",
            "output": "probability",
            "explained_class": outcome,
            "base_value": 0.5,
            "model_output": 0.75,
            "attributions": [
                {"feature": "age", "contribution": 0.2},
                {"feature": "duration", "contribution": 0.05},
            ],
            "fidelity": {"additivity_residual": 0.0},
            "seed": 0,
            "versions": {},
        },
    }
    return Draft(
        type="explanation",
        key_id="0123456789ab",
        role="backend",
        clear=clear,
        sealed={"alg": "AES-256-GCM", "nonce": "AAAA", "ciphertext": "QUJD"},
        decision_id=decision,
        subject_ref=ref,
        model_name=model,
        model_version=version,
        outcome=outcome,
        fingerprint=fingerprint,
    )


def with_subject(draft: Draft) -> tuple[Draft, NewSubject | None]:
    return draft, None


@contextmanager
def app_client(folder: Path, database_url: str | None = None) -> Iterator[TestClient]:
    """The real app over its own database (SQLite file in ``folder`` by default)."""
    url = database_url or f"sqlite:///{folder / 'rationale.db'}"
    with ContractClient(create_app(make_settings(url))) as client:
        yield client
