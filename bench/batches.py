"""Batch throughput: in-process and on 1 and 2 Celery workers, and the chain's append ceiling.

- In process: ``create_batch`` + ``process_batch`` (validate, ``compute_many``, seal, group
  append, item states) against the bare library call on the same rows in the same run:
  ``compute_many`` alone (encode, predict, explain; no record).
- Celery: the same batch on PostgreSQL through N real ``rationale worker`` processes over
  Redis, timed from submission to ``done`` (workers started and warmed before).
- Chain appends on PostgreSQL: W writer threads, each with its own connection, appending
  single records (each its own transaction under the chain lock), then groups of 100."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench import data
from bench.store import _database, _draft

REDIS_URL = os.environ.get("RATIONALE_BENCH_REDIS", "redis://127.0.0.1:6379/14")
SECRET = "bench-server-secret-0123456789abcdef-XYZ"


def _settings(url: str, **extra: Any) -> Any:
    from app.config import Settings

    return Settings(
        database_url=url,
        models_dir=data.MODELS_DIR,
        secret_key=SECRET,
        api_keys="bench-backend-key-0123456789:backend",
        **extra,
    )


def _context(url: str, **extra: Any) -> Any:
    from app.catalog.service import load_models
    from app.ledger import migrate
    from app.runtime.context import Context

    ctx = Context.create(_settings(url, **extra))
    migrate.upgrade(ctx.engine)
    load_models(ctx)
    return ctx


def _items(model: str, count: int, tag: str) -> list[dict[str, Any]]:
    rows = data.request_rows(model, min(count, 1000))
    return [
        {"decision_id": f"{tag}-{i}", "subject_id": f"p-{i % 997}", "instance": rows[i % len(rows)]}
        for i in range(count)
    ]


def _bare(ctx: Any, model: str, items: list[dict[str, Any]]) -> float:
    """Rows/s of ``compute_many`` alone, in the batch path's groups."""
    from app.batches.service import COMPUTE_ROWS
    from app.compute.batcher import Options, compute_many

    loaded = ctx.catalog.get(model, None)
    jobs = [(it["instance"], Options()) for it in items]
    started = time.perf_counter()
    for start in range(0, len(jobs), COMPUTE_ROWS):
        compute_many(loaded, jobs[start : start + COMPUTE_ROWS])
    return len(jobs) / (time.perf_counter() - started)


def in_process(url: str, model: str, count: int) -> dict[str, Any]:
    """One batch processed in this process (no broker) against the bare call."""
    from app.access.principals import Principal, Role
    from app.batches import service as batches

    ctx = _context(url)
    try:
        items = _items(model, count, f"inproc-{uuid.uuid4().hex[:8]}")
        bare = _bare(ctx, model, items)
        principal = Principal("bench", Role.BACKEND)
        started = time.perf_counter()
        batch = batches.create_batch(ctx, principal, {"model": model, "items": items})
        batches.process_batch(ctx, batch.id)
        seconds = time.perf_counter() - started
        view = batches.batch_view(ctx, principal, batch.id)
        assert view["status"] == "done", view
        return {
            "model": model,
            "items": count,
            "succeeded": view["succeeded"],
            "seconds": seconds,
            "per_s": count / seconds,
            "bare_per_s": bare,
            "ratio": (count / seconds) / bare,
        }
    finally:
        ctx.close()


def _worker(url: str, queue: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RATIONALE_DATABASE_URL": url,
        "RATIONALE_MODELS_DIR": str(data.MODELS_DIR),
        "RATIONALE_SECRET_KEY": SECRET,
        "RATIONALE_BROKER_URL": REDIS_URL,
        "RATIONALE_BATCH_QUEUE": queue,
        "RATIONALE_LOG_JSON": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--concurrency", "1"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def celery(url: str, model: str, count: int, workers: int, folder: Path) -> dict[str, Any]:
    """One batch through ``workers`` Celery worker processes, submission to done."""
    from app.access.principals import Principal, Role
    from app.batches import service as batches
    from app.batches.celery_worker import CeleryDispatcher

    queue = f"rationale-bench-{uuid.uuid4().hex[:8]}"
    ctx = _context(url, broker_url=REDIS_URL, batch_queue=queue)
    logs = [folder / f"worker-{queue}-{i}.log" for i in range(workers)]
    processes = [_worker(url, queue, log) for log in logs]
    try:
        deadline = time.monotonic() + 600
        while not all(" ready." in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError("workers did not start")
            time.sleep(0.2)
        items = _items(model, count, f"celery{workers}-{uuid.uuid4().hex[:8]}")
        dispatcher = CeleryDispatcher(ctx.settings)
        principal = Principal("bench", Role.BACKEND)
        started = time.perf_counter()
        batch = batches.create_batch(ctx, principal, {"model": model, "items": items})
        dispatcher.submit(batch.id, batch.chunks)
        while batches.batch_view(ctx, principal, batch.id)["status"] not in ("done", "failed"):
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        dispatcher.close()
        view = batches.batch_view(ctx, principal, batch.id)
        return {
            "model": model,
            "workers": workers,
            "items": count,
            "succeeded": view["succeeded"],
            "seconds": seconds,
            "per_s": count / seconds,
        }
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        ctx.close()


def appends(engine: Any, writers: int, seconds: float, group: int) -> dict[str, Any]:
    """Records/s appended by ``writers`` threads, ``group`` drafts per transaction."""
    from app.ledger.repository import Repository

    counter = iter(range(10**9))
    lock = threading.Lock()
    done = [0] * writers
    stop = time.monotonic() + seconds

    def write(k: int) -> None:
        repository = Repository(engine)
        rng = random.Random(k)
        while time.monotonic() < stop:
            with lock:
                numbers = [next(counter) for _ in range(group)]
            repository.append([(_draft(n + group * 10**6, rng), None) for n in numbers])
            done[k] += group

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"writers": writers, "group": group, "records": sum(done), "per_s": sum(done) / elapsed}


def run_batch_bench(
    counts: dict[str, int], celery_items: int, writers: int, append_seconds: float
) -> dict[str, Any]:
    """Every figure of the batches section."""
    out: dict[str, Any] = {"in_process": [], "celery": [], "appends": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for model, count in counts.items():
            url = f"sqlite:///{folder / f'batch-{model}.db'}"
            print(f"batches in-process {model} sqlite ({count}) ...", flush=True)
            out["in_process"].append(in_process(url, model, count) | {"store": "sqlite"})
        with _database("postgresql", folder) as engine:
            url = engine.url.render_as_string(hide_password=False)
            print(f"batches in-process credit-risk postgresql ({celery_items}) ...", flush=True)
            out["in_process"].append(
                in_process(url, "credit-risk", celery_items) | {"store": "postgresql"}
            )
            for workers in (1, 2):
                print(f"batches celery {workers} worker(s) ({celery_items}) ...", flush=True)
                out["celery"].append(celery(url, "credit-risk", celery_items, workers, folder))
            for group in (1, 100):
                print(f"chain appends, {writers} writers, groups of {group} ...", flush=True)
                out["appends"].append(appends(engine, writers, append_seconds, group))
    return out
