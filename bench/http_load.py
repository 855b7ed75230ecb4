"""Load over HTTP/1.1 keep-alive: one client for latency, N in flight for throughput.

The default client is a minimal asyncio one (prebuilt request bytes, one keep-alive
connection per in-flight request) so that the load generator, which shares the machine's
cores with the server, takes as little CPU as possible; its CPU use is measured and
reported. ``client="httpx"`` runs N threads with ``httpx.Client`` instead, as a
cross-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.stats import summary

TIMEOUT_S = 60.0


@dataclass
class Outcome:
    durations: list[float] = field(default_factory=list)
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    client_cpu_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = summary(self.durations)
        out["ok"] = self.ok
        out["failed"] = len(self.failures)
        out["failure_samples"] = self.failures[:5]
        statuses: dict[str, int] = {}
        first: dict[str, str] = {}
        for failure in self.failures:
            key = failure.split(":", 1)[0]
            statuses[key] = statuses.get(key, 0) + 1
            first.setdefault(key, failure)
        # Failures by HTTP status (or exception name): a 422 is a refused explanation.
        out["failed_by_status"] = statuses
        out["failure_sample_by_status"] = first
        out["elapsed_s"] = self.elapsed
        out["per_s"] = self.ok / self.elapsed if self.elapsed > 0 else 0.0
        out["client_cpu_share"] = self.client_cpu_s / self.elapsed if self.elapsed > 0 else 0.0
        return out


class Bodies:
    """Request bodies with unique decision ids, cycling over the given rows."""

    def __init__(self, model: str, rows: list[dict[str, Any]], run_tag: str) -> None:
        self.model = model
        self.rows = rows
        self.tag = run_tag
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> bytes:
        with self._lock:
            i = next(self._counter)
        body = {
            "model": self.model,
            "decision_id": f"{self.tag}-{i}",
            "subject_id": f"subject-{i % 997}",
            "instance": self.rows[i % len(self.rows)],
        }
        return json.dumps(body, separators=(",", ":")).encode()


class RawConnection:
    """One HTTP/1.1 keep-alive connection speaking just enough of the protocol."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"POST /v1/explanations HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            "Content-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            payload = b"".join(parts)
        else:
            payload = b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, payload


async def _raw_run(
    port: int, key: str, bodies: Bodies, concurrency: int, total: int, budget_s: float
) -> Outcome:
    outcome = Outcome()
    issued = itertools.count()
    started = time.perf_counter()
    deadline = started + budget_s

    async def client() -> None:
        conn = RawConnection("127.0.0.1", port, key)
        try:
            while next(issued) < total and time.perf_counter() < deadline:
                body = bodies.next()
                t0 = time.perf_counter()
                try:
                    status, payload = await asyncio.wait_for(conn.post(body), TIMEOUT_S)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                    outcome.failures.append(f"{type(exc).__name__}: {exc}")
                    await conn.close()
                    continue
                dt = time.perf_counter() - t0
                if status == 201:
                    outcome.ok += 1
                    outcome.durations.append(dt)
                else:
                    outcome.failures.append(f"{status}: {payload[:300].decode(errors='replace')}")
        finally:
            await conn.close()

    cpu0 = time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    outcome.elapsed = time.perf_counter() - started
    outcome.client_cpu_s = time.process_time() - cpu0
    return outcome


def _httpx_run(
    port: int, key: str, bodies: Bodies, concurrency: int, total: int, budget_s: float
) -> Outcome:
    import httpx

    outcome = Outcome()
    issued = itertools.count()
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + budget_s
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT_S) as http:
            while True:
                with lock:
                    if next(issued) >= total:
                        return
                if time.perf_counter() >= deadline:
                    return
                body = bodies.next()
                t0 = time.perf_counter()
                try:
                    response = http.post("/v1/explanations", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    with lock:
                        outcome.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                dt = time.perf_counter() - t0
                with lock:
                    if response.status_code == 201:
                        outcome.ok += 1
                        outcome.durations.append(dt)
                    else:
                        outcome.failures.append(f"{response.status_code}: {response.text[:300]}")

    cpu0 = time.process_time()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=budget_s + TIMEOUT_S + 10)
    outcome.elapsed = time.perf_counter() - started
    outcome.client_cpu_s = time.process_time() - cpu0
    return outcome


Runner = Callable[[int, str, Bodies, int, int, float], Outcome]


def load(
    port: int,
    key: str,
    bodies: Bodies,
    *,
    concurrency: int,
    total: int,
    budget_s: float,
    client: str = "raw",
) -> Outcome:
    """Send up to ``total`` requests (or for ``budget_s``) with ``concurrency`` in flight."""
    if client == "httpx":
        return _httpx_run(port, key, bodies, concurrency, total, budget_s)
    return asyncio.run(_raw_run(port, key, bodies, concurrency, total, budget_s))
