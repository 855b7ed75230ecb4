"""Record-store bench (docs/operations/benchmarks.md, issue 12): bulk-load records through the
repository, then measure filtered-query latency (p50/p95) and export peak memory at two log sizes.

Not part of ``make test``. Entry point: ``run_store_bench()`` (returns a dict of figures);
``python -m bench.store --records 1000000`` runs it alone."""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from app.ledger import migrate
from app.ledger.chain import Draft
from app.ledger.db import make_engine
from app.ledger.repository import RecordFilter, Repository
from app.records.query import chain_lines, jsonl_lines
from app.records.service import render_page

PG_ADMIN_URL = os.environ.get(
    "RATIONALE_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MODELS = [
    ("credit-risk", ("bad", "good")),
    ("income", ("<=50K", ">50K")),
    ("recidivism", ("no", "yes")),
]
FEATURES = [f"feature_{i}" for i in range(12)]
SUBJECTS = 50_000


def _draft(n: int, rng: random.Random) -> Draft:
    """A synthetic explanation record the size and shape of a real one."""
    name, classes = MODELS[n % len(MODELS)]
    version = str(1 + (n // 7) % 3)
    outcome = classes[rng.random() < 0.3]
    ref = str(uuid.UUID(int=rng.randrange(SUBJECTS) + 1))
    decision = f"bench-{n}"
    fingerprint = f"{rng.getrandbits(256):064x}"
    contributions = sorted((rng.uniform(-0.2, 0.2) for _ in FEATURES), key=abs, reverse=True)
    clear = {
        "decision_id": decision,
        "subject_ref": ref,
        "request_fingerprint": fingerprint,
        "model": {
            "name": name,
            "version": version,
            "sha256": "ab" * 32,
            "manifest_sha256": "cd" * 32,
            "background_sha256": "ef" * 32,
        },
        "prediction": {"label": outcome, "probabilities": {classes[0]: 0.6, classes[1]: 0.4}},
        "explanation": {
            "method": "shap.tree",
            "requested_method": "auto",
            "output": "probability",
            "explained_class": outcome,
            "model_output": 0.6,
            "base_value": 0.5,
            "attributions": [
                {"feature": f, "contribution": c}
                for f, c in zip(FEATURES, contributions, strict=True)
            ],
            "fidelity": {"additivity_residual": 0.0},
            "seed": 0,
            "parameters": {"top_k": None},
            "versions": {"rationale": "0.1.0", "shap": "0.51.0", "scikit-learn": "1.9.1"},
        },
    }
    sealed = {
        "alg": "AES-256-GCM",
        "nonce": base64.b64encode(rng.randbytes(12)).decode(),
        "ciphertext": base64.b64encode(rng.randbytes(600)).decode(),
    }
    return Draft(
        type="explanation",
        key_id="0123456789ab",
        role="backend",
        clear=clear,
        sealed=sealed,
        decision_id=decision,
        subject_ref=ref,
        model_name=name,
        model_version=version,
        outcome=outcome,
        fingerprint=fingerprint,
    )


@contextmanager
def _database(backend: str, folder: Path) -> Iterator[Engine]:
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{folder / 'bench-store.db'}")
        migrate.upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    import psycopg

    name = f"rationale_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    engine = make_engine(f"{base}/{name}")
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _load(repository: Repository, start: int, stop: int, rng: random.Random) -> float:
    began = time.perf_counter()
    repository.append_bulk(((_draft(n, rng), None) for n in range(start, stop)), batch=5000)
    return time.perf_counter() - began


def _analyze(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def _queries(repository: Repository, rng: random.Random, size: int) -> list[Callable[[], Any]]:
    """A mix of the filters auditors use, each one page of 100 rendered records."""
    sample = repository.explanations(RecordFilter(), after=rng.randrange(size - 200), limit=1)[0]
    moment = sample.created_at
    calls: list[Callable[[], Any]] = []
    for i in range(10):
        name, classes = MODELS[i % len(MODELS)]
        ref = str(uuid.UUID(int=rng.randrange(SUBJECTS) + 1))
        deep = rng.randrange(size - 1000)
        calls += [
            lambda n=name: RecordFilter(model_name=n),
            lambda n=name: RecordFilter(model_name=n, model_version="2"),
            lambda n=name, c=classes: RecordFilter(model_name=n, outcome=c[1]),
            lambda r=ref: RecordFilter(subject_ref=r),
            lambda n=name, m=moment: RecordFilter(model_name=n, since=m),
            lambda m=moment: RecordFilter(until=m),
            lambda n=name, d=deep: (RecordFilter(model_name=n), d),
        ]
    return calls


def _query_latency(
    repository: Repository, rng: random.Random, size: int, rounds: int
) -> dict[str, float]:
    calls = _queries(repository, rng, size)
    timings: list[float] = []
    for i in range(rounds):
        spec = calls[i % len(calls)]()
        flt, after = spec if isinstance(spec, tuple) else (spec, 0)
        began = time.perf_counter()
        page = repository.explanations(flt, after=after, limit=100)
        render_page(repository, None, page)
        timings.append((time.perf_counter() - began) * 1000)
    timings.sort()
    return {
        "queries": len(timings),
        "p50_ms": round(statistics.median(timings), 2),
        "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 2),
        "max_ms": round(timings[-1], 2),
    }


def _export_peak(lines: Iterator[bytes], cap_seconds: float | None = None) -> dict[str, Any]:
    """Peak traced memory while consuming an export; with ``cap_seconds``, stop after that
    long (``complete`` says whether the whole export was read)."""
    tracemalloc.start()
    began = time.perf_counter()
    total = 0
    complete = True
    for chunk in lines:
        total += len(chunk)
        if cap_seconds is not None and time.perf_counter() - began > cap_seconds:
            complete = False
            break
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    close = getattr(lines, "close", None)
    if close is not None:
        close()
    return {
        "bytes": total,
        "seconds": round(time.perf_counter() - began, 1),
        "peak_mib": round(peak / 2**20, 2),
        "complete": complete,
    }


def bench_backend(
    backend: str,
    checkpoints: list[int],
    rounds: int,
    seed: int = 0,
    export_cap_seconds: float | None = None,
) -> dict[str, Any]:
    """Load up to each checkpoint, then measure queries and exports at that size."""
    rng = random.Random(seed)
    results: dict[str, Any] = {"backend": backend, "checkpoints": []}
    with tempfile.TemporaryDirectory() as folder, _database(backend, Path(folder)) as engine:
        repository = Repository(engine)
        loaded = 0
        for size in checkpoints:
            seconds = _load(repository, loaded, size, rng)
            rate = (size - loaded) / seconds
            loaded = size
            _analyze(engine)
            figures: dict[str, Any] = {
                "records": size,
                "load_records_per_s": round(rate),
                "query": _query_latency(repository, rng, size, rounds),
                "export_jsonl": _export_peak(
                    jsonl_lines(repository, None, RecordFilter(), size), export_cap_seconds
                ),
                "export_chain": _export_peak(chain_lines(repository, size), export_cap_seconds),
            }
            results["checkpoints"].append(figures)
            print(json.dumps({"backend": backend, **figures}), flush=True)
    return results


def run_store_bench(
    records: int = 1_000_000,
    small: int = 100_000,
    rounds: int = 300,
    backends: tuple[str, ...] = ("sqlite", "postgresql"),
    export_cap_seconds: float | None = None,
) -> dict[str, Any]:
    """The store section: per backend, query p95 and export peak memory at ``small`` and
    ``records`` records (the bars: p95 ≤ 50 ms at 1M; export peak independent of size)."""
    out: dict[str, Any] = {}
    for backend in backends:
        out[backend] = bench_backend(
            backend, [small, records], rounds, export_cap_seconds=export_cap_seconds
        )
        first, last = out[backend]["checkpoints"][0], out[backend]["checkpoints"][-1]
        out[backend]["p95_ok"] = last["query"]["p95_ms"] <= 50
        out[backend]["export_peak_ratio"] = round(
            last["export_jsonl"]["peak_mib"] / max(first["export_jsonl"]["peak_mib"], 1e-9), 2
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--export-cap-seconds",
        type=float,
        default=None,
        help="stop reading each export after this long (peak memory of what was read)",
    )
    args = parser.parse_args()
    result = run_store_bench(
        args.records,
        args.small,
        args.rounds,
        tuple(args.backends.split(",")),
        args.export_cap_seconds,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
