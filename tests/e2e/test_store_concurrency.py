"""Real ``rationale serve`` processes on a fresh database per module: the chain stays
linear and gapless under 200 concurrent creates through several worker processes
(PostgreSQL with 4 workers, SQLite with 2), and concurrent duplicates of a decision id
give exactly one 201."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.ledger.db import make_engine
from app.ledger.repository import Repository
from tests.helpers import Server, auth, fresh_postgres_database, instances, unique_id
from tests.ledger.support import MODEL, one_model

pytestmark = pytest.mark.server

CREATES = 200
CLIENT_THREADS = 24


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    models = one_model(workdir)
    if request.param == "postgresql":
        with fresh_postgres_database() as url:
            running = Server(url, workdir, workers=4, RATIONALE_MODELS_DIR=models).start(
                timeout=180
            )
            running.database_url = url  # type: ignore[attr-defined]
            try:
                yield running
            finally:
                running.stop()
        return
    url = f"sqlite:///{workdir / 'rationale.db'}"
    running = Server(url, workdir, workers=2, RATIONALE_MODELS_DIR=models).start(timeout=180)
    running.database_url = url  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.stop()


ROWS = instances(MODEL, 20)


def post(server: Server, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(timeout=60) as client:  # a new connection: any worker may answer
        return client.post(f"{server.url}/v1/explanations", json=body, headers=auth("backend"))


def body_for(n: int, decision_id: str | None = None) -> dict[str, Any]:
    return {
        "model": MODEL,
        "decision_id": decision_id or unique_id("c"),
        "subject_id": f"subject-{n % 17}",
        "instance": ROWS[n % 20],
    }


def test_chain_stays_linear_under_concurrent_creates(server: Server) -> None:
    bodies = [body_for(n) for n in range(CREATES)]
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        responses = list(pool.map(lambda b: post(server, b), bodies))
    assert [r.status_code for r in responses] == [201] * CREATES, [
        r.text for r in responses if r.status_code != 201
    ][:3]
    seqs = [r.json()["record"]["seq"] for r in responses]
    assert len(set(seqs)) == CREATES
    verified = httpx.get(f"{server.url}/v1/audit/verify", headers=auth("auditor"), timeout=60)
    result = verified.json()
    assert result["ok"], result
    repository = Repository(make_engine(server.database_url))  # type: ignore[attr-defined]
    rows = list(repository.iter_rows())
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert result["head"]["seq"] == len(rows) >= CREATES
    by_hash = {r["hash"]: r for r in rows}
    for response in responses:
        link = response.json()["record"]
        assert by_hash[link["hash"]]["seq"] == link["seq"]
        assert by_hash[link["hash"]]["prev_hash"] == link["prev_hash"]
    repository.engine.dispose()


def race(server: Server, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: post(server, b), bodies))


def test_concurrent_identical_duplicates_give_one_201_and_the_same_body(server: Server) -> None:
    for round_ in range(3):
        body = body_for(round_, decision_id=unique_id("dup"))
        responses = race(server, [body] * 16)
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] * 15 + [201], codes
        bodies = [r.json() for r in responses]
        assert all(b == bodies[0] for b in bodies)


def test_concurrent_different_duplicates_give_one_201_and_409s(server: Server) -> None:
    for round_ in range(3):
        decision = unique_id("dup")
        bodies = [
            body_for(round_, decision_id=decision) | {"options": {"seed": n % 4}} for n in range(16)
        ]
        responses = race(server, bodies)
        created = [(b, r) for b, r in zip(bodies, responses, strict=True) if r.status_code == 201]
        assert len(created) == 1, [r.status_code for r in responses]
        winner_body, winner = created[0]
        for body, response in zip(bodies, responses, strict=True):
            if response is winner:
                continue
            if body == winner_body:
                assert response.status_code == 200 and response.json() == winner.json()
            else:
                assert response.status_code == 409, response.text
                assert response.json()["record_id"] == winner.json()["id"]
    result = httpx.get(f"{server.url}/v1/audit/verify", headers=auth("auditor"), timeout=60)
    assert result.json()["ok"]


def test_paths_and_logs_hold_no_subject_ids(server: Server, tmp_path: Path) -> None:
    assert "subject-1" not in server.log()
