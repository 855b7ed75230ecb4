"""One client's bad row or slow method never harms another's request (issue 16), over HTTP
through the real app: real models, a real SQLite store, concurrent clients on two keys."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.runtime.context import Context
from tests.helpers import API_KEYS, MODELS, auth, instances, make_settings, unique_id

OTHER = "other-backend-key-0123456789abcdef"
"""A second backend client (another product) with its own key."""


def other() -> dict[str, str]:
    return {"Authorization": f"Bearer {OTHER}"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'rationale.db'}",
        api_keys=f"{API_KEYS},{OTHER}:backend",
        compute_budget_seconds=1e6,  # the slow methods below are meant to run
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def context(client: TestClient) -> Context:
    ctx: Context = client.app.state.context  # type: ignore[attr-defined]
    return ctx


def post(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post(
        "/v1/explanations", json={"decision_id": unique_id()} | body, headers=headers
    )


def wait_for(condition: Any, message: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.01)


def numbers(view: dict[str, Any]) -> tuple[Any, ...]:
    explanation = view["explanation"]
    return (
        view["prediction"],
        explanation["method"],
        explanation["base_value"],
        [(a["feature"], a["contribution"]) for a in explanation["attributions"]],
    )


def test_a_poisoned_row_fails_alone_and_its_neighbours_get_their_own_answers(
    client: TestClient,
) -> None:
    ctx = context(client)
    rows = instances("credit-risk", 4)
    poisoned = rows[0] | {"credit_amount": 1e308}
    # Hold the explain thread (an opener request waits on it) so that the concurrent
    # requests queue up behind it and share the next micro-batch.
    gate = threading.Event()
    ctx.executor.submit(gate.wait, 60)
    with ThreadPoolExecutor(6) as pool:
        opener = pool.submit(post, client, auth("backend"), model="credit-risk", instance=rows[1])
        wait_for(lambda: len(ctx.batcher.batch_sizes) == 1, "the opener never started")
        valid = [
            pool.submit(post, client, other(), model="credit-risk", instance=row) for row in rows
        ]
        bad = pool.submit(post, client, auth("backend"), model="credit-risk", instance=poisoned)
        # Refused before any batching: it is answered while the explain thread is held.
        refused = bad.result(timeout=60)
        assert not any(f.done() for f in valid)
        wait_for(
            lambda: sum(len(s.jobs) for s in ctx.batcher._pending.values()) == 4,
            "the valid requests never queued",
        )
        gate.set()
        answers = [f.result(timeout=60) for f in valid]
        assert opener.result(timeout=60).status_code == 201
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in problem["errors"]] == ["instance.credit_amount"]
    assert [a.status_code for a in answers] == [201] * 4
    assert list(ctx.batcher.batch_sizes) == [("fast", 1), ("fast", 4)]  # the four shared one
    for row, answer in zip(rows, answers, strict=True):
        alone = post(client, other(), model="credit-risk", instance=row)
        assert alone.status_code == 201
        assert numbers(answer.json()) == numbers(alone.json())  # bit-identical floats


def test_a_slow_client_does_not_hold_up_a_fast_one(client: TestClient) -> None:
    ctx = context(client)
    finished: list[str] = []
    lock = threading.Lock()

    def timed(name: str, headers: dict[str, str], **body: Any) -> int:
        response = post(client, headers, **body)
        with lock:
            finished.append(name)
        return int(response.status_code)

    slow_rows = instances("income", 2)
    with ThreadPoolExecutor(3) as pool:
        slow = [
            pool.submit(
                timed,
                f"slow-{i}",
                auth("backend"),
                model="income",
                instance=row,
                method="shap.exact",
            )
            for i, row in enumerate(slow_rows)
        ]
        wait_for(
            lambda: any(lane == "slow" for lane, _ in ctx.batcher.batch_sizes),
            "the slow requests never started",
        )
        fast = pool.submit(
            timed, "fast", other(), model="credit-risk", instance=instances("credit-risk", 1)[0]
        )
        assert fast.result(timeout=120) == 201
        assert [f.result(timeout=600) for f in slow] == [201, 201]
    # The fast request, sent after the slow ones had started, finished before either.
    assert finished[0] == "fast", finished
    assert sorted(lane for lane, _ in ctx.batcher.batch_sizes) == ["fast", "slow", "slow"]


def test_a_stopped_writer_makes_the_process_unready_and_writes_answer_503_at_once(
    client: TestClient,
) -> None:
    assert client.get("/readyz").status_code == 200
    context(client).writer.close()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"].isdigit()
    assert "the record writer is not running" in ready.json()["problems"]
    started = time.monotonic()
    answer = post(client, auth("backend"), model="recidivism", instance=instances("recidivism")[0])
    assert time.monotonic() - started < 10
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"].isdigit()
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_an_explicit_method_over_the_compute_budget_is_refused_and_auto_fits(
    tmp_path: Path,
) -> None:
    models = tmp_path / "models" / "income"
    models.mkdir(parents=True)
    (models / "1").symlink_to(MODELS / "income" / "1", target_is_directory=True)
    settings = make_settings(
        f"sqlite:///{tmp_path / 'rationale.db'}",
        models_dir=tmp_path / "models",
        compute_budget_seconds=0.5,  # TreeSHAP fits, 2^12 coalitions × 100 rows do not
    )
    row = instances("income", 1)[0]
    with TestClient(create_app(settings)) as small:
        refused = post(small, auth("backend"), model="income", instance=row, method="shap.exact")
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["errors"]
        assert error["field"] == "method" and "compute budget of 0.5 s" in error["message"]
        fits = post(small, auth("backend"), model="income", instance=row)
        assert fits.status_code == 201, fits.text
        assert fits.json()["explanation"]["method"] == "shap.tree"


def test_a_sqlite_file_gone_from_its_path_is_503_until_it_is_back(tmp_path: Path) -> None:
    models = tmp_path / "models" / "recidivism"
    models.mkdir(parents=True)
    (models / "1").symlink_to(MODELS / "recidivism" / "1", target_is_directory=True)
    database = tmp_path / "rationale.db"
    settings = make_settings(f"sqlite:///{database}", models_dir=tmp_path / "models")
    row = instances("recidivism", 1)[0]
    with TestClient(create_app(settings)) as app:
        created = [post(app, auth("backend"), model="recidivism", instance=row) for _ in range(3)]
        assert [r.status_code for r in created] == [201] * 3
        database.rename(tmp_path / "elsewhere.db")  # moved away under the running service
        down = post(app, auth("backend"), model="recidivism", instance=row)
        assert down.status_code == 503 and down.headers["Retry-After"].isdigit(), down.text
        read = app.get(f"/v1/decisions/{created[0].json()['decision_id']}", headers=auth("backend"))
        assert read.status_code == 503
        time.sleep(1.1)  # past the readiness probe's cache
        assert app.get("/readyz").status_code == 503
        assert not database.exists()  # no empty database was made in its place
        (tmp_path / "elsewhere.db").rename(database)
        again = post(app, auth("backend"), model="recidivism", instance=row)
        assert again.status_code == 201, again.text
        time.sleep(1.1)
        assert app.get("/readyz").status_code == 200
        for answer in [*created, again]:
            decision = answer.json()["decision_id"]
            assert app.get(f"/v1/decisions/{decision}", headers=auth("backend")).status_code == 200
        verified = app.get("/v1/audit/verify", headers=auth("auditor")).json()
        # four explanations and the admin_event of the model's registration at start
        assert verified["ok"] and verified["records_checked"] == 5, verified
