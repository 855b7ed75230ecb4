"""Batches on real Celery workers over the machine's Redis, sharing a real PostgreSQL store.

A batch of 2,000 credit-risk decisions goes through two ``rationale worker`` processes;
one is killed with SIGKILL while it holds a chunk. The chunk it held is delivered again
after the visibility timeout, the other worker finishes the batch, and the store holds
exactly one record per decision, in a chain that verifies.

Before that, the same two workers (one solo, one prefork with two children) serve their
metrics on ports of their own; a batch moves the counters of both, and the sums over the
two scrapes are the batch's items."""

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
import psutil
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import (
    API_KEYS,
    MODELS,
    ON_CI,
    SECRET,
    Server,
    auth,
    free_port,
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
    """A real ``rationale worker`` process (solo pool for one process, else prefork),
    serving its metrics on a port of its own."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str, concurrency: int) -> None:
        self.log_path = workdir / f"worker-{name}.log"
        self.metrics_port = free_port()
        command = ["worker", "--concurrency", str(concurrency)]
        command += ["--metrics-port", str(self.metrics_port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *command],
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
        workers = [Worker(env, workdir, "a", 1), Worker(env, workdir, "b", 2)]
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


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(worker: Worker) -> Samples:
    """Every sample a worker's metrics port serves."""
    response = httpx.get(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def deltas(before: list[Samples], after: list[Samples], name: str, **labels: str) -> list[float]:
    """How far a metric moved on each worker between two rounds of scrapes."""
    return [
        total(a, name, **labels) - total(b, name, **labels)
        for b, a in zip(before, after, strict=True)
    ]


def test_worker_metrics_move_and_sum_across_both_workers(stack: dict[str, Any]) -> None:
    # Runs before the kill below, on the same pair of workers.
    server: Server = stack["server"]
    workers: list[Worker] = stack["workers"]
    assert all(w.process.poll() is None for w in workers)
    before = [scrape(w) for w in workers]
    count = 400  # 8 chunks of 50
    items = [
        {"decision_id": f"metrics-{i:05d}", "instance": row}
        for i, row in enumerate(credit_rows(count))
    ]
    response = httpx.post(
        f"{server.url}/v1/batches",
        json={"model": "credit-risk", "items": items},
        headers=auth("backend"),
        timeout=120,
    )
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]
    deadline = time.monotonic() + 300
    while (status := batch_status(server, batch_id))["status"] != "done":
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert (status["succeeded"], status["failed"]) == (count, 0)

    # A chunk's counters move just after its items are marked processed: wait for them.
    deadline = time.monotonic() + 30
    while True:
        after = [scrape(w) for w in workers]
        done = deltas(
            before, after, "rationale_batch_items_total", model="credit-risk", state="succeeded"
        )
        if sum(done) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    # Each worker's counters moved, and the two scrapes sum to the batch exactly.
    assert sum(done) == count and all(d > 0 for d in done), done
    assert deltas(before, after, "rationale_records_written_total", type="explanation") == done
    assert deltas(before, after, "rationale_explanation_seconds_count", model="credit-risk") == done
    methods = {
        dict(labels)["method"]
        for samples in after
        for (name, labels) in samples
        if name == "rationale_explanation_seconds_count"
    }
    assert methods and methods <= {"shap.tree", "shap.linear", "shap.exact", "shap.permutation"}
    appends = deltas(before, after, "rationale_chain_append_seconds_count")
    assert all(n >= 1 for n in appends) and sum(appends) >= 8, appends
    for samples in after:
        assert samples[("rationale_batch_queue_depth", ())] == 0

    # The prefork worker's scrape is the sum of its children's files (its main process
    # explains nothing itself): the counters' files are the children's alone.
    children = psutil.Process(workers[1].process.pid).children()
    held = [
        Path(f.path)
        for child in children
        for f in child.open_files()
        if Path(f.path).name.startswith("counter_")
    ]
    assert held, children
    folder = held[0].parent
    writers = {int(p.stem.rsplit("_", 1)[-1]) for p in folder.glob("counter_*.db")}
    assert writers and writers <= {c.pid for c in children}, (writers, children)


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
