"""Clients that hang up mid-request harm nobody (issue 16): 100 requests cancelled in flight
under load against a real ``rationale serve``; afterwards the service still appends (201),
the chain verifies, and no answer was a 5xx."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.runtime.workers import KEEP_ALIVE_SECONDS
from tests.helpers import KEYS, Server, auth, instances, unique_id
from tests.ledger.support import MODEL, one_model

pytestmark = pytest.mark.server

CANCELLED = 100
LOAD_THREADS = 4


def test_cancelled_requests_under_load_leave_the_service_appending(tmp_path: Path) -> None:
    models = one_model(tmp_path)
    url = f"sqlite:///{tmp_path / 'rationale.db'}"
    server = Server(
        url, tmp_path, workers=1, RATIONALE_MODELS_DIR=models, RATIONALE_BODY_TIMEOUT_SECONDS="2"
    ).start(timeout=180)
    rows = instances(MODEL, 20)
    stop = threading.Event()
    statuses: list[int] = []

    def load(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            n = 0
            while not stop.is_set():
                body = {
                    "model": MODEL,
                    "decision_id": unique_id(f"l{worker}"),
                    "instance": rows[n % 20],
                }
                n += 1
                statuses.append(
                    client.post("/v1/explanations", json=body, headers=auth("backend")).status_code
                )

    async def hang_up(client: httpx.AsyncClient, i: int) -> bool:
        """One request, abandoned (its connection closed) after a random moment."""
        body = {"model": MODEL, "decision_id": unique_id("gone"), "instance": rows[i % 20]}
        try:
            await asyncio.wait_for(
                client.post("/v1/explanations", json=body, headers=auth("backend")),
                timeout=random.uniform(0.001, 0.03),
            )
        except TimeoutError:
            return True
        return False

    async def abandon() -> int:
        limits = httpx.Limits(max_connections=CANCELLED)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
            outcomes = await asyncio.gather(*(hang_up(client, i) for i in range(CANCELLED)))
        return sum(outcomes)

    random.seed(16)
    try:
        with ThreadPoolExecutor(LOAD_THREADS) as pool:
            futures = [pool.submit(load, w) for w in range(LOAD_THREADS)]
            abandoned = asyncio.run(abandon())
            stop.set()
            for future in futures:
                future.result()
        assert abandoned >= CANCELLED // 2, f"only {abandoned} requests were still in flight"
        assert statuses and all(s == 201 for s in statuses), sorted(set(statuses))
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert client.get("/readyz").status_code == 200
            for row in rows[:5]:
                body = {"model": MODEL, "decision_id": unique_id("after"), "instance": row}
                created = client.post("/v1/explanations", json=body, headers=auth("backend"))
                assert created.status_code == 201, created.text
            verified = client.get("/v1/audit/verify", headers=auth("auditor")).json()
        assert verified["ok"], verified
        assert verified["records_checked"] >= len(statuses) + 5
        assert_slow_bodies_and_idle_connections_are_cut(server)
        log = server.log()
        assert "record writer stopped" not in log and "InvalidStateError" not in log
        assert "status=500" not in log and '"status": 500' not in log
    finally:
        stop.set()
        server.stop()


def assert_slow_bodies_and_idle_connections_are_cut(server: Server) -> None:
    """A body trickling in gets 408 after the body timeout; an idle keep-alive connection
    is closed after uvicorn's keep-alive timeout."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = (
            "POST /v1/explanations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {KEYS['backend']}\r\nContent-Length: 400\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": ')
        started = time.monotonic()
        answer = sock.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert 1.5 < time.monotonic() - started < 15
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        response = sock.recv(65536)
        while b"\r\n\r\n" not in response or not response.endswith(b"}"):
            response += sock.recv(65536)  # the head and the body may come in two reads
        assert response.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server, not by us
        assert time.monotonic() - started < KEEP_ALIVE_SECONDS + 10
