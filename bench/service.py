"""The service over HTTP: ``rationale serve`` with 1 and 2 workers, records durably stored."""

from __future__ import annotations

import time
from typing import Any

from bench.data import rows
from bench.http_load import Bodies, load
from bench.server import Server


def _warm(server: Server, bodies: Bodies, concurrency: int, sequential: int) -> int:
    """Sequential requests, then concurrent ones so every worker builds its explainers."""
    first = load(
        server.port, server.backend_key, bodies, concurrency=1, total=sequential, budget_s=120
    )
    spread = load(
        server.port,
        server.backend_key,
        bodies,
        concurrency=concurrency,
        total=concurrency * 8,
        budget_s=120,
    )
    failures = first.failures + spread.failures
    if failures:
        print(f"    warm-up failures: {len(failures)}; first: {failures[0]}")
    return first.ok + spread.ok


def run_workers(
    workers: int,
    models: list[str],
    *,
    n_latency: int,
    n_throughput: int,
    throughput_s: float,
    concurrency: int,
    warmup: int,
    cross_check: bool,
) -> dict[str, Any]:
    """Every model against one server with ``workers`` workers; checks the stored records."""
    result: dict[str, Any] = {"workers": workers, "models": {}}
    answered = 0
    tag = f"bench-{int(time.time())}-w{workers}"
    with Server(workers=workers) as server:
        for name in models:
            data = rows(name, max(n_latency, 300))
            bodies = Bodies(name, data, f"{tag}-{name}")
            answered += _warm(server, bodies, concurrency, warmup)
            latency = load(
                server.port,
                server.backend_key,
                bodies,
                concurrency=1,
                total=n_latency,
                budget_s=max(60.0, n_latency * 0.5),
            )
            throughput = load(
                server.port,
                server.backend_key,
                bodies,
                concurrency=concurrency,
                total=n_throughput,
                budget_s=throughput_s,
            )
            answered += latency.ok + throughput.ok
            entry = {"latency": latency.as_dict(), "throughput": throughput.as_dict()}
            if cross_check:
                other = load(
                    server.port,
                    server.backend_key,
                    bodies,
                    concurrency=concurrency,
                    total=n_throughput,
                    budget_s=throughput_s,
                    client="httpx",
                )
                answered += other.ok
                entry["throughput_httpx"] = other.as_dict()
            result["models"][name] = entry
            _print_model(workers, name, entry)
        server.stop()
        result["answered_201"] = answered
        result["stored"] = server.stored_explanations()
        result["verify"] = server.verify_chain()
    print(
        f"  {workers} worker(s): {answered} answered 201, {result['stored']} stored, "
        f"chain verifies: {result['verify'].get('ok')}"
    )
    return result


def _print_model(workers: int, name: str, entry: dict[str, Any]) -> None:
    lat, thr = entry["latency"], entry["throughput"]
    line = (
        f"  {workers}w {name:12s} p50 {lat['p50_ms']:7.2f} ms  p95 {lat['p95_ms']:7.2f} ms  "
        f"{thr['per_s']:7.1f}/s at {thr['ok']} ok in {thr['elapsed_s']:.1f}s "
        f"(client CPU {100 * thr['client_cpu_share']:.0f}% of a core)"
    )
    if "throughput_httpx" in entry:
        line += f"  | httpx threads: {entry['throughput_httpx']['per_s']:.1f}/s"
    print(line)
    for what in ("latency", "throughput", "throughput_httpx"):
        if what in entry and entry[what]["failed"]:
            print(
                f"    {what}: {entry[what]['failed']} failed; e.g. {entry[what]['failure_samples']}"
            )
