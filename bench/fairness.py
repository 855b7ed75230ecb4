"""Fair scheduling (issue 16): a fast client's latency with and without a slow neighbour.

One ``rationale serve`` worker. The fast client sends credit-risk requests (``auto``: TreeSHAP)
one at a time; the slow neighbour, keeps ``SLOW_IN_FLIGHT`` explicit
``shap.exact`` requests on the income model in flight (about 1.75 s a row on a quiet
machine). The fast client's p50/p95 are reported for both phases, with the bare library call
(pipeline.predict_proba + TreeExplainer on the same rows, in-process) as the yardstick."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from typing import Any

from bench.bare import time_calls, tree_calls
from bench.data import request_rows
from bench.server import Server
from bench.stats import summary

FAST_MODEL, SLOW_MODEL = "credit-risk", "income"
SLOW_IN_FLIGHT = 4


def _post(server: Server, key: str, body: dict[str, Any]) -> tuple[int, float]:
    request = urllib.request.Request(
        server.url + "/v1/explanations",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        response.read()
        return response.status, time.perf_counter() - started


def _fast_client(server: Server, rows: list[dict[str, Any]], tag: str, n: int) -> list[float]:
    durations = []
    for i in range(n):
        row = rows[i % len(rows)]
        body = {"model": FAST_MODEL, "decision_id": f"fast-{tag}-{i}", "instance": row}
        status, took = _post(server, server.backend_key, body)
        assert status == 201, status
        durations.append(took)
    return durations


def run(n: int = 200) -> dict[str, Any]:
    """Both phases against one server; figures in milliseconds."""
    fast_rows = request_rows(FAST_MODEL, 50)
    slow_rows = request_rows(SLOW_MODEL, 20)
    bare = time_calls(tree_calls(FAST_MODEL, 50)["spec"], n, 10, 60)
    os.environ["RATIONALE_COMPUTE_BUDGET_SECONDS"] = "100000"  # the slow method must run
    try:
        server = Server(workers=1).start()
    finally:
        del os.environ["RATIONALE_COMPUTE_BUDGET_SECONDS"]
    out: dict[str, Any] = {"bare": bare}
    try:
        _fast_client(server, fast_rows, "warm", 20)
        out["alone"] = summary(_fast_client(server, fast_rows, "alone", n))
        stop = threading.Event()
        slow_done: list[float] = []

        def neighbour(worker: int) -> None:
            i = 0
            while not stop.is_set():
                body = {
                    "model": SLOW_MODEL,
                    "decision_id": f"slow-{worker}-{i}",
                    "instance": slow_rows[(worker + i) % len(slow_rows)],
                    "method": "shap.exact",
                }
                i += 1
                status, took = _post(server, server.backend_key, body)
                assert status == 201, status
                slow_done.append(took)

        threads = [threading.Thread(target=neighbour, args=(w,)) for w in range(SLOW_IN_FLIGHT)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the slow requests are running
        out["with_slow_neighbour"] = summary(_fast_client(server, fast_rows, "shared", n))
        stop.set()
        for thread in threads:
            thread.join()
        out["slow"] = summary(slow_done)
    finally:
        server.stop()
    return out
