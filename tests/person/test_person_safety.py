"""The person's page against real ``rationale serve`` processes over HTTP
(docs/person.md#safety): a token that opens nothing cannot be told apart (status, body, time),
the rate limits hold across processes, and no token reaches a log line or a metric label."""

from __future__ import annotations

import random
import secrets
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from app.ledger.tables import links
from tests.helpers import MODELS, Server, auth, report, unique_id
from tests.person.support import declined_rows

pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]

MODEL = "credit-risk"
ROUNDS = 200


def _models(workdir: Path) -> str:
    folder = workdir / "models"
    (folder / MODEL).mkdir(parents=True)
    (folder / MODEL / "1").symlink_to(MODELS / MODEL / "1", target_is_directory=True)
    shutil.copytree(MODELS / MODEL / "wording", folder / MODEL / "wording")
    return str(folder)


def _decide(url: str, subject: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "decision_id": unique_id("loan"),
        "subject_id": subject or unique_id("applicant"),
        "instance": declined_rows()[0],
    }
    response = httpx.post(f"{url}/v1/explanations", json=body, headers=auth("backend"), timeout=60)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made | {"subject_id": body["subject_id"]}


def _link(url: str, decision: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/v1/decisions/{decision['decision_id']}/links", json={}, headers=auth("backend")
    )
    assert response.status_code == 201, response.text
    issued: dict[str, Any] = response.json()
    issued["token"] = issued["url"].rsplit("/p/", 1)[1]
    return issued


@pytest.fixture(scope="module")
def timing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with limits high enough for the timing rounds (every request is counted
    all the same: the limiter's work is part of what is timed)."""
    workdir = tmp_path_factory.mktemp("person-timing")
    server = Server(
        f"sqlite:///{workdir / 'rationale.db'}",
        workdir,
        RATIONALE_MODELS_DIR=_models(workdir),
        RATIONALE_PERSON_RATE_PER_TOKEN="100000",
        RATIONALE_PERSON_RATE_PER_ADDRESS="1000000",
        RATIONALE_CHECKPOINT_EVERY_RECORDS="0",
    ).start(timeout=180)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two servers (separate processes) over one database, with the default limits."""
    workdir = tmp_path_factory.mktemp("person-pair")
    url = f"sqlite:///{workdir / 'rationale.db'}"
    models = _models(workdir)
    first = Server(url, workdir, RATIONALE_MODELS_DIR=models).start(timeout=180)
    try:
        second = Server(url, workdir, RATIONALE_MODELS_DIR=models).start(timeout=180)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def _spread(times: list[float]) -> str:
    q = statistics.quantiles(times, n=4)
    return f"median {statistics.median(times):.2f} ms, IQR {q[0]:.2f}-{q[2]:.2f} ms"


def test_tokens_that_open_nothing_cannot_be_told_apart(timing: Server) -> None:
    url = timing.url
    expired, revoked = _link(url, _decide(url)), _link(url, _decide(url))
    erased_person = _decide(url)
    erased = _link(url, erased_person)
    engine = create_engine(timing.env["RATIONALE_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(
            update(links)
            .where(links.c.id == expired["link_id"])
            .values(expires_at="2000-01-01T00:00:00.000000Z")
        )
    engine.dispose()
    assert httpx.delete(f"{url}/v1/links/{revoked['link_id']}", headers=auth("admin")).is_success
    assert httpx.delete(
        f"{url}/v1/subjects/{erased_person['subject_id']}", headers=auth("admin")
    ).is_success
    valid = [_link(url, _decide(url)) for _ in range(10)]
    classes: dict[str, Any] = {
        "unknown": lambda: secrets.token_urlsafe(32),
        "expired": lambda: expired["token"],
        "revoked": lambda: revoked["token"],
        "erased": lambda: erased["token"],
    }
    with httpx.Client(base_url=url, timeout=30, headers={"Accept-Language": "en"}) as client:
        for issued in valid:  # the first view issues the report; later views are timed
            assert client.get(f"/p/{issued['token']}").status_code == 200
        for _ in range(20):  # warm-up
            for make in classes.values():
                client.get(f"/p/{make()}")
        times: dict[str, list[float]] = {name: [] for name in [*classes, "valid"]}
        answers: set[tuple[int, bytes]] = set()
        rng = random.Random(31)
        for round_ in range(ROUNDS):
            order = [*classes, "valid"]
            rng.shuffle(order)
            for name in order:
                token = valid[round_ % len(valid)]["token"] if name == "valid" else classes[name]()
                started = time.perf_counter()
                response = client.get(f"/p/{token}")
                times[name].append((time.perf_counter() - started) * 1000)
                if name == "valid":
                    assert response.status_code == 200
                else:
                    answers.add((response.status_code, response.content))
    assert len(answers) == 1, "the answers differ"
    ((status, body),) = answers
    assert status == 404 and b"This link does not work" in body
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        report(f"person page {name} token, {ROUNDS} interleaved requests: {_spread(values)}")
    gone = [medians[name] for name in classes]
    assert max(gone) - min(gone) <= 5.0, medians
    valid_q = statistics.quantiles(times["valid"], n=4)
    report(
        f"person page: the 404 medians span {max(gone) - min(gone):.2f} ms; a valid token's "
        f"interquartile range is {valid_q[2] - valid_q[0]:.2f} ms"
    )

    # Nothing of any token reached the server's log or its metrics.
    log = timing.log()
    assert "/p/{token}" in log
    metrics = httpx.get(f"{url}/metrics").text
    assert 'route="/p/{token}"' in metrics
    for token in [expired["token"], revoked["token"], erased["token"]] + [
        v["token"] for v in valid
    ]:
        assert token not in log and token not in metrics
        assert token[:16] not in log


def _wait_for_a_fresh_minute() -> None:
    """Start well inside a minute, so a run never straddles two windows."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def test_the_limit_per_token_holds_across_processes(pair: tuple[Server, Server]) -> None:
    first, second = pair
    issued = _link(first.url, _decide(first.url))
    _wait_for_a_fresh_minute()
    statuses, waits = [], []
    for n in range(40):
        server = (first, second)[n % 2]
        response = httpx.get(f"{server.url}/p/{issued['token']}", timeout=30)
        statuses.append(response.status_code)
        if response.status_code == 429:
            waits.append(int(response.headers["retry-after"]))
    # Per process, each of the two would have let 30 through.
    assert statuses.count(200) == 30, statuses
    assert statuses.count(429) == 10 and statuses[:30] == [200] * 30
    assert all(1 <= w <= 120 for w in waits)


def test_the_limit_per_address_holds_across_processes(pair: tuple[Server, Server]) -> None:
    first, second = pair
    _wait_for_a_fresh_minute()
    address = {"X-Forwarded-For": "203.0.113.7"}  # as a trusted proxy in front would say
    statuses = []
    for n in range(130):
        server = (first, second)[n % 2]
        token = secrets.token_urlsafe(32)  # a new token every time: only the address repeats
        statuses.append(httpx.get(f"{server.url}/p/{token}", headers=address).status_code)
    assert statuses.count(404) == 120 and statuses.count(429) == 10, statuses
    elsewhere = httpx.get(
        f"{first.url}/p/{secrets.token_urlsafe(32)}", headers={"X-Forwarded-For": "203.0.113.8"}
    )
    assert elsewhere.status_code == 404  # another address is not held up
