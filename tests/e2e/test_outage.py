"""Database outage (docs/operations/faults.md#database-outage): a private PostgreSQL cluster is
stopped under load and started again. During the outage requests answer 503 with Retry-After within
seconds and /readyz is 503; afterwards the same server process serves again, every 201 is stored,
the chain verifies. (The machine's shared PostgreSQL is never touched: the test runs its own.)"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.helpers import ON_CI, Server, auth, free_port, instances, unique_id
from tests.ledger.support import MODEL, one_model

pytestmark = [pytest.mark.server, pytest.mark.postgres]

PG_BIN = Path(os.environ.get("RATIONALE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
CLIENT_THREADS = 6


class PrivateCluster:
    """A throw-away PostgreSQL cluster on a free port, run by Debian's binaries (as the
    ``postgres`` user when the tests run as root: PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="rationale-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.folder, "postgres", "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        log = str(self.folder / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    if not (PG_BIN / "pg_ctl").exists():
        if ON_CI:
            pytest.fail(f"CI=true but PostgreSQL binaries are absent from {PG_BIN}")
        pytest.skip(f"PostgreSQL binaries are absent from {PG_BIN} (the test runs under CI)")
    built = PrivateCluster()
    try:
        built.init()
        built.start()
        yield built
    finally:
        built.remove()


@dataclass
class Load:
    """What the clients saw: decision ids answered 201, 503s, anything else, slowest answer."""

    acknowledged: list[str] = field(default_factory=list)
    unavailable: int = 0
    without_retry_after: int = 0
    other: list[int] = field(default_factory=list)
    slowest: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def test_a_database_outage_is_503_and_the_same_process_recovers(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    models = one_model(tmp_path)
    server = Server(cluster.url, tmp_path, workers=1, RATIONALE_MODELS_DIR=models)
    server.start(timeout=180)
    pid = server.process.pid if server.process else None
    rows = instances(MODEL, 20)
    load = Load()
    stop = threading.Event()

    def client_loop(worker: int) -> None:
        n = 0
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                decision = unique_id(f"o{worker}")
                body = {"model": MODEL, "decision_id": decision, "instance": rows[n % 20]}
                n += 1
                started = time.monotonic()
                response = client.post("/v1/explanations", json=body, headers=auth("backend"))
                took = time.monotonic() - started
                with load.lock:
                    load.slowest = max(load.slowest, took)
                    if response.status_code == 201:
                        load.acknowledged.append(decision)
                    elif response.status_code == 503:
                        load.unavailable += 1
                        if not response.headers.get("Retry-After", "").isdigit():
                            load.without_retry_after += 1
                        time.sleep(0.05)
                    else:
                        load.other.append(response.status_code)

    def ready() -> int:
        return httpx.get(f"{server.url}/readyz", timeout=10).status_code

    def wait_until(condition: object, seconds: float, message: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, message
            time.sleep(0.05)

    try:
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            futures = [pool.submit(client_loop, w) for w in range(CLIENT_THREADS)]
            wait_until(lambda: len(load.acknowledged) >= 50, 120, "no load before the outage")
            cluster.stop()
            before = len(load.acknowledged)
            wait_until(lambda: load.unavailable >= 20, 30, "no 503 during the outage")
            wait_until(lambda: ready() == 503, 15, "/readyz stayed 200 during the outage")
            cluster.start()
            wait_until(lambda: ready() == 200, 30, "/readyz did not recover")
            wait_until(
                lambda: len(load.acknowledged) >= before + 50, 120, "no 201 after the outage"
            )
            stop.set()
            for future in futures:
                future.result()
        assert load.other == [], f"answers other than 201/503: {sorted(set(load.other))}"
        assert load.without_retry_after == 0
        assert load.slowest < 10, f"a request waited {load.slowest:.1f} s"
        assert server.process is not None and server.process.poll() is None
        assert server.process.pid == pid  # the same process: no restart
        with httpx.Client(base_url=server.url, timeout=60) as client:
            missing = [
                d
                for d in load.acknowledged
                if client.get(f"/v1/decisions/{d}", headers=auth("backend")).status_code != 200
            ]
            assert missing == []
            verified = client.get("/v1/audit/verify", headers=auth("auditor")).json()
        assert verified["ok"], verified
        assert verified["records_checked"] >= len(load.acknowledged)
    finally:
        stop.set()
        server.stop()
