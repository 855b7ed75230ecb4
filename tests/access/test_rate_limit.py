"""The per-key rate limit (off by default): over it, 429 with Retry-After, per key."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from tests.helpers import auth, make_settings


def test_a_key_over_its_rate_is_told_when_to_come_back(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'rationale.db'}",
        models_dir=tmp_path / "no-models",
        rate_limit_per_minute=5,
        checkpoint_every_records=0,
        checkpoint_every_seconds=0,
    )
    with TestClient(create_app(settings)) as client:
        answers = [client.get("/v1/models", headers=auth("backend")) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        limited = answers[-1]
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(limited.headers["Retry-After"]) <= 12
        # Another key has its own allowance; open endpoints are not limited.
        assert client.get("/v1/models", headers=auth("auditor")).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_no_limit_by_default(client: TestClient) -> None:
    statuses = {client.get("/v1/models", headers=auth("backend")).status_code for _ in range(30)}
    assert statuses == {200}
