"""The service over HTTP: ``rationale serve`` with 1 and 2 workers, records durably stored."""

from __future__ import annotations

import time
from typing import Any

from bench.data import AGNOSTIC_MODELS, MODELS_DIR, request_rows
from bench.http_load import Bodies, Outcome, load
from bench.server import Server

PROBES = 5
"""Requests per model whose response bodies are read (method, parameters, fidelity)."""


def _catalog(server: Server) -> dict[str, Any]:
    """What the server loaded: /readyz counts and the names in GET /v1/models."""
    ready_status, ready = server.request_json("/readyz")
    models_status, listed = server.request_json("/v1/models")
    names = (
        [item.get("name") for item in listed.get("items", [])] if isinstance(listed, dict) else []
    )
    return {
        "readyz_status": ready_status,
        "readyz": ready,
        "models_status": models_status,
        "names": names,
    }


def _probe(server: Server, name: str, data: list[dict[str, Any]], tag: str) -> dict[str, Any]:
    """A few sequential requests whose bodies are read: which method ``auto`` picked."""
    methods: dict[str, int] = {}
    statuses: dict[str, int] = {}
    details: list[str] = []
    rounds: list[Any] = []
    errors: list[float] = []
    residuals: list[float] = []
    for i in range(min(PROBES, len(data))):
        status, body = server.request_json(
            "/v1/explanations",
            {
                "model": name,
                "decision_id": f"{tag}-{i}",
                "subject_id": f"probe-{i}",
                "instance": data[i],
            },
        )
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        explanation = body.get("explanation") if isinstance(body, dict) else None
        if status == 201 and isinstance(explanation, dict):
            method = str(explanation.get("method"))
            methods[method] = methods.get(method, 0) + 1
            parameters = explanation.get("parameters") or {}
            fidelity = explanation.get("fidelity") or {}
            if "rounds" in parameters:
                rounds.append(parameters["rounds"])
            if fidelity.get("standard_error") is not None:
                errors.append(float(fidelity["standard_error"]))
            if fidelity.get("additivity_residual") is not None:
                residuals.append(abs(float(fidelity["additivity_residual"])))
        else:
            detail = body.get("detail") if isinstance(body, dict) else body
            details.append(f"{status}: {str(detail)[:300]}")
    return {
        "statuses": statuses,
        "ok": statuses.get("201", 0),
        "methods": methods,
        "rounds": rounds,
        "max_standard_error": max(errors) if errors else None,
        "max_additivity_residual": max(residuals) if residuals else None,
        "refusals": details,
    }


def _warm(
    server: Server, bodies: Bodies, concurrency: int, sequential: int
) -> tuple[int, dict[str, Any]]:
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
    both = Outcome(failures=failures)
    return first.ok + spread.ok, both.as_dict()


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
    models_dir = MODELS_DIR
    if any(name in AGNOSTIC_MODELS for name in models):
        from bench import breast_cancer

        models_dir = breast_cancer.models_dir()
    with Server(workers=workers, models_dir=models_dir) as server:
        result["catalog"] = _catalog(server)
        print(
            f"  /readyz {result['catalog']['readyz']}; GET /v1/models: {result['catalog']['names']}"
        )
        missing = [n for n in models if n not in result["catalog"]["names"]]
        if missing:
            print(f"  NOT SERVED: {missing}; server log:\n{server.log_tail()}")
        for name in models:
            data = request_rows(name, max(n_latency, 300))
            bodies = Bodies(name, data, f"{tag}-{name}")
            warm_ok, warm = _warm(server, bodies, concurrency, warmup)
            answered += warm_ok
            probe = _probe(server, name, data, f"{tag}-{name}-probe")
            answered += probe["ok"]
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
            entry = {
                "probe": probe,
                "warmup": {k: warm[k] for k in ("failed", "failed_by_status")},
                "latency": latency.as_dict(),
                "throughput": throughput.as_dict(),
            }
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
    probe = entry["probe"]
    line = (
        f"  {workers}w {name:13s} {'/'.join(probe['methods']) or '-':18s} "
        f"p50 {lat['p50_ms']:7.2f} ms  p95 {lat['p95_ms']:7.2f} ms  "
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
