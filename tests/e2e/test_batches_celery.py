"""Batches on real Celery workers over the machine's Redis, sharing a real PostgreSQL store.

A batch of 2,000 credit-risk decisions goes through two ``rationale worker`` processes;
one is killed with SIGKILL while it holds a chunk. The chunk it held is delivered again
after the visibility timeout, the other worker finishes the batch, and the store holds
exactly one record per decision, in a chain that verifies."""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.helpers import (
    API_KEYS,
    MODELS,
    ON_CI,
    SECRET,
    Server,
    auth,
    fresh_postgres_database,
    manifest,
)

pytestmark = [pytest.mark.postgres, pytest.mark.server, pytest.mark.timeout(600)]

REDIS_DB = 13
"""Redis database of these tests (each run also has a queue of its own)."""
VISIBILITY_TIMEOUT = 15
ITEMS = 2000


def require_redis() -> None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return
    except OSError:
        if ON_CI:
            pytest.fail("CI=true but Redis is not reachable on 127.0.0.1:6379")
        pytest.skip("Redis is not reachable on 127.0.0.1:6379 (tests run against it under CI)")


def credit_rows(count: int) -> list[dict[str, Any]]:
    """Real applicants (German credit data), typed as the manifest declares, repeated."""
    features = manifest("credit-risk")["features"]
    with (MODELS / "data" / "german_credit.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    typed = [
        {
            f["name"]: (float(r[f["name"]]) if f["type"] == "numeric" else r[f["name"]])
            for f in features
        }
        for r in rows
    ]
    return [typed[i % len(typed)] for i in range(count)]


class Worker:
    """A real ``rationale worker`` process (solo pool: one process does the work)."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str) -> None:
        self.log_path = workdir / f"worker-{name}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--concurrency", "1"],
            cwd=workdir,
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tasks(self, event: str) -> set[str]:
        return set(re.findall(r"rationale\.batch_chunk\[([0-9a-f-]{36})\] " + event, self.log()))

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log()[-4000:]}")
            if " ready." in self.log():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_redis()
    workdir = tmp_path_factory.mktemp("celery")
    queue = f"rationale-test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "RATIONALE_MODELS_DIR": str(MODELS),
        "RATIONALE_SECRET_KEY": SECRET,
        "RATIONALE_API_KEYS": API_KEYS,
        "RATIONALE_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "RATIONALE_BATCH_QUEUE": queue,
        "RATIONALE_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "RATIONALE_BATCH_CHUNK_ITEMS": "50",
        "RATIONALE_LOG_JSON": "false",
    }
    with fresh_postgres_database() as url:
        env["RATIONALE_DATABASE_URL"] = url
        server = Server(
            url, workdir, workers=1, **{k: v for k, v in env.items() if "RATIONALE" in k}
        )
        server.start(timeout=300)
        workers = [Worker(env, workdir, name) for name in ("a", "b")]
        try:
            for worker in workers:
                worker.wait_ready()
            yield {"server": server, "workers": workers, "url": url, "queue": queue}
        finally:
            for worker in workers:
                worker.stop()
            server.stop()
            import redis

            client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
            client.delete(queue)
            client.close()


def batch_status(server: Server, batch_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v1/batches/{batch_id}", headers=auth("backend"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_batch_survives_a_worker_killed_mid_batch(stack: dict[str, Any]) -> None:
    server: Server = stack["server"]
    victim, survivor = stack["workers"]
    items = [
        {"decision_id": f"celery-{i:05d}", "subject_id": f"applicant-{i % 700}", "instance": row}
        for i, row in enumerate(credit_rows(ITEMS))
    ]
    response = httpx.post(
        f"{server.url}/v1/batches",
        json={"model": "credit-risk", "items": items},
        headers=auth("backend"),
        timeout=120,
    )
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]

    # Kill one worker with SIGKILL while it holds a chunk it has not finished.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = batch_status(server, batch_id)
        in_flight = victim.tasks("received") - victim.tasks("succeeded")
        if status["succeeded"] >= 200 and in_flight:
            os.killpg(victim.process.pid, signal.SIGKILL)
            victim.process.wait(timeout=30)
            break
        assert status["status"] != "done", "the batch finished before the kill"
        time.sleep(0.05)
    else:
        raise AssertionError("no moment to kill the worker mid-chunk")
    killed_with = victim.tasks("received") - victim.tasks("succeeded")
    processed_at_kill = status["succeeded"] + status["failed"]
    assert killed_with and processed_at_kill < ITEMS

    # The survivor finishes the batch, including the chunk the victim held.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = batch_status(server, batch_id)
        if status["status"] == "done":
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"batch not done: {status}\n{survivor.log()[-3000:]}")
    assert (status["items"], status["succeeded"], status["failed"]) == (ITEMS, ITEMS, 0)
    assert killed_with <= survivor.tasks("succeeded"), "the held chunk was not redelivered"
    assert survivor.tasks("succeeded"), survivor.log()[-3000:]

    # Exactly one record per decision: no loss, no duplicate; the chain verifies.
    with psycopg.connect(stack["url"].replace("+psycopg", "")) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT decision_id) FROM records"
            " WHERE type = 'explanation' AND decision_id LIKE 'celery-%'"
        ).fetchone()  # type: ignore[misc]
        linked = conn.execute(
            "SELECT count(*) FROM batch_items i JOIN records r ON r.id = i.record_id"
            " WHERE i.batch_id = %s AND r.decision_id = i.decision_id",
            (batch_id,),
        ).fetchone()[0]  # type: ignore[index]
    assert (total, distinct, linked) == (ITEMS, ITEMS, ITEMS)
    verify = httpx.get(f"{server.url}/v1/audit/verify", headers=auth("auditor"), timeout=120)
    report = verify.json()
    assert report["ok"] is True and report["records_checked"] >= ITEMS, report

    # Results of the whole batch, in item order.
    exported = httpx.get(
        f"{server.url}/v1/batches/{batch_id}/results/export?format=csv",
        headers=auth("backend"),
        timeout=120,
    )
    rows = list(csv.DictReader(exported.text.splitlines()))
    assert [r["decision_id"] for r in rows] == [it["decision_id"] for it in items]
