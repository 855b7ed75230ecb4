"""Durability (docs/record.md#the-chain): a real server killed with SIGKILL under concurrent load
loses no record it answered 201 for, and the chain verifies after a restart."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server, auth, instances, unique_id
from tests.ledger.support import MODEL, one_model

pytestmark = pytest.mark.server

CLIENT_THREADS = 12
KILL_AFTER = 150  # 201s seen before the kill


def test_sigkill_under_load_loses_no_acknowledged_record(tmp_path: Path) -> None:
    models = one_model(tmp_path)
    url = f"sqlite:///{tmp_path / 'rationale.db'}"
    server = Server(url, tmp_path, workers=1, RATIONALE_MODELS_DIR=models).start(timeout=180)
    rows = instances(MODEL, 20)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        n = 0
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                decision = unique_id(f"k{worker}")
                body = {"model": MODEL, "decision_id": decision, "instance": rows[n % 20]}
                n += 1
                try:
                    response = client.post(
                        f"{server.url}/v1/explanations", json=body, headers=auth("backend")
                    )
                except httpx.HTTPError:
                    continue  # the server is gone: no answer, no promise
                if response.status_code == 201:
                    with lock:
                        acknowledged.append(decision)

    try:
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            futures = [pool.submit(load, w) for w in range(CLIENT_THREADS)]
            deadline = time.monotonic() + 120
            while len(acknowledged) < KILL_AFTER and time.monotonic() < deadline:
                time.sleep(0.01)
            server.kill()  # SIGKILL to the whole process group, mid-load
            time.sleep(0.5)
            stop.set()
            for future in futures:
                future.result()
    finally:
        server.kill()
    assert len(acknowledged) >= KILL_AFTER
    restarted = Server(url, tmp_path, workers=1, RATIONALE_MODELS_DIR=models).start(timeout=180)
    try:
        with httpx.Client(base_url=restarted.url, timeout=30) as client:
            missing = [
                d
                for d in acknowledged
                if client.get(f"/v1/decisions/{d}", headers=auth("backend")).status_code != 200
            ]
            assert missing == []
            result = client.get("/v1/audit/verify", headers=auth("auditor")).json()
        assert result["ok"], result
        assert result["records_checked"] >= len(acknowledged)
    finally:
        restarted.stop()
