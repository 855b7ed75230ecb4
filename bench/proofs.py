"""Proof bench (docs/proofs.md, issue 19): inclusion and consistency proof latency and checkpoint
cost over a stored Merkle tree of 1M leaves, against the same proofs computed in memory (the
bare library call) in the same run.

The tree is stored by ``merkle.extend`` — the code that runs inside every append — in
batches of 5,000 leaves (record hashes made up in process: the tree never reads the records,
and loading 1M full records is bench/store.py's job). Then each proof is served from the
stored nodes as the API serves it (one primary-key query), and checked.

Not part of ``make test``. ``python -m bench.proofs --leaves 1000000`` runs it alone;
``python -m bench --only proofs`` runs it as a section."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from app.integrity.repository import ProofStore
from app.integrity.signing import Signer, checkpoint_body
from app.ledger import merkle
from app.ledger.repository import Repository
from bench.store import _database


def _percentiles(timings: list[float]) -> dict[str, float]:
    timings = sorted(timings)
    return {
        "p50_ms": round(statistics.median(timings), 3),
        "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 3),
        "max_ms": round(timings[-1], 3),
    }


def _timed(calls: list[Callable[[], Any]]) -> dict[str, float]:
    timings = []
    for call in calls:
        began = time.perf_counter()
        call()
        timings.append((time.perf_counter() - began) * 1000)
    return _percentiles(timings)


def bench_backend(backend: str, leaves: int, rounds: int, seed: int = 0) -> dict[str, Any]:
    """Store a tree of ``leaves`` leaves, then time proofs, roots and checkpoints."""
    rng = random.Random(seed)
    hashes = [os.urandom(32).hex() for _ in range(leaves)]
    memory = merkle.MemoryTree()
    for record_hash in hashes:
        memory.append(merkle.leaf_hash(record_hash))
    with tempfile.TemporaryDirectory() as folder, _database(backend, Path(folder)) as engine:
        began = time.perf_counter()
        for start in range(0, leaves, 5000):
            with engine.begin() as conn:
                merkle.extend(conn, start, hashes[start : start + 5000])
        store_seconds = time.perf_counter() - began
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        proofs = ProofStore(Repository(engine))
        inclusion_args = [
            (rng.randrange(leaves), leaves - rng.randrange(1000)) for _ in range(rounds)
        ]
        inclusion_args = [(min(i, n - 1), n) for i, n in inclusion_args]
        consistency_args = [(rng.randint(1, leaves - 1), leaves) for _ in range(rounds)]
        for index, size in inclusion_args[:20]:  # the served proofs verify
            root = memory.root(size)
            path = proofs.inclusion(index, size)
            assert merkle.verify_inclusion(index, size, memory.levels[0][index], path, root)
        stored_inclusion = _timed([partial(proofs.inclusion, *a) for a in inclusion_args])
        stored_consistency = _timed([partial(proofs.consistency, *a) for a in consistency_args])
        bare_inclusion = _timed([partial(memory.inclusion, *a) for a in inclusion_args])
        bare_consistency = _timed([partial(memory.consistency, *a) for a in consistency_args])
        signer = Signer("bench.local/log", os.urandom(32))
        sizes = [leaves - rng.randrange(1000) for _ in range(min(rounds, 200))]

        def checkpoint(size: int) -> None:
            root = proofs.root(size)
            note = signer.sign(checkpoint_body("bench.local/log", size, root))
            proofs.add_checkpoint(size, root.hex(), signer.verifier.key_id_hex, note)

        def bare(size: int) -> None:
            signer.sign(checkpoint_body("bench.local/log", size, memory.root(size)))

        checkpoint_cost = _timed([partial(checkpoint, size) for size in sizes])
        bare_checkpoint = _timed([partial(bare, size) for size in sizes])
    result: dict[str, Any] = {
        "backend": backend,
        "leaves": leaves,
        "rounds": rounds,
        "store_tree_seconds": round(store_seconds, 1),
        "store_tree_leaves_per_s": round(leaves / store_seconds),
        "inclusion": stored_inclusion,
        "consistency": stored_consistency,
        "checkpoint": checkpoint_cost,
        "bare_inclusion": bare_inclusion,
        "bare_consistency": bare_consistency,
        "bare_checkpoint": bare_checkpoint,
    }
    result["p95_ok"] = max(stored_inclusion["p95_ms"], stored_consistency["p95_ms"]) <= 20
    for name in ("inclusion", "consistency", "checkpoint"):
        result[f"{name}_ratio_p50"] = round(
            result[name]["p50_ms"] / max(result[f"bare_{name}"]["p50_ms"], 1e-6), 1
        )
    print(json.dumps(result), flush=True)
    return result


def run_proofs_bench(
    leaves: int = 1_000_000,
    rounds: int = 500,
    backends: tuple[str, ...] = ("sqlite", "postgresql"),
) -> dict[str, Any]:
    """Per backend: proof p50/p95 at ``leaves`` (bar: p95 ≤ 20 ms at 1M) and checkpoint cost."""
    return {backend: bench_backend(backend, leaves, rounds) for backend in backends}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    result = run_proofs_bench(args.leaves, args.rounds, tuple(args.backends.split(",")))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
