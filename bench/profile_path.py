"""Where a request's time goes: the app in-process (ASGI, no sockets), under cProfile.

The app is built with ``create_app`` and its lifespan run here; its explain executor and
group writer are replaced by inline ones so that the whole request path (FastAPI,
validation, encoding, TreeSHAP, sealing, the SQLite commit, the response) runs in this one
thread where cProfile sees it. Records are still committed (synchronous=FULL) to a temp
database. Uses app internals, so a change there may make this section report "skipped".
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import pstats
import secrets
import tempfile
import time
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import structlog

from bench.data import MODELS_DIR, rows
from bench.http_load import Bodies
from bench.stats import summary

CATEGORIES = [
    ("shap (TreeSHAP / exact)", ("/shap/",)),
    ("scikit-learn", ("/sklearn/",)),
    ("pandas", ("/pandas/",)),
    ("numpy", ("/numpy/",)),
    ("SQLite + SQLAlchemy", ("/sqlalchemy/", "sqlite3")),
    ("crypto (seal, HMAC, hashes)", ("/cryptography/", "hmac", "_hashlib", "hashlib")),
    ("app.ledger", ("/app/ledger/",)),
    ("app.explain", ("/app/explain/",)),
    ("app (other)", ("/app/",)),
    ("FastAPI / Starlette / pydantic", ("/fastapi/", "/starlette/", "/pydantic", "anyio")),
    ("httpx test client", ("/httpx/", "/httpcore/")),
    ("asyncio", ("/asyncio/",)),
    ("json / orjson", ("/json/", "orjson")),
]


class InlineExecutor(Executor):
    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class InlineWriter:
    """The group writer's interface, appending in the caller's thread."""

    def __init__(self, repository: Any) -> None:
        self.repository = repository

    def submit(self, items: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(self.repository.append(list(items)))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    @property
    def alive(self) -> bool:
        return True

    def append(self, items: Any, timeout: float | None = None) -> Any:
        return self.submit(items).result()

    async def commit(self, items: Any, timeout: float) -> Any:
        return self.submit(items).result()

    def close(self) -> None:
        pass


def _category(filename: str, funcname: str) -> str:
    key = f"{filename} {funcname}"
    for label, needles in CATEGORIES:
        if any(n in key for n in needles):
            return label
    return "other (builtins, interpreter)"


async def _drive(
    app: Any, key: str, bodies: Bodies, n: int, profile: cProfile.Profile | None
) -> list[float]:
    import httpx

    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    durations = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(n):
            body = bodies.next()
            t0 = time.perf_counter()
            if profile is not None:
                profile.enable()
            response = await client.post("/v1/explanations", content=body, headers=headers)
            if profile is not None:
                profile.disable()
            durations.append(time.perf_counter() - t0)
            if response.status_code != 201:
                raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    return durations


async def _profile_model(name: str, n: int) -> dict[str, Any]:
    from app.config import Settings
    from app.main import create_app

    # The app's access log would print every request; keep warnings only while profiling.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="rationale-bench-prof-") as folder:
        settings = Settings(
            database_url=f"sqlite:///{Path(folder) / 'db.sqlite'}",
            secret_key=secrets.token_urlsafe(48),
            api_keys=f"{key}:backend",
            models_dir=MODELS_DIR,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            ctx = app.state.context
            ctx.writer.close()
            ctx.writer = InlineWriter(ctx.repository)
            ctx.executor.shutdown(wait=True)
            ctx.executor = InlineExecutor()
            batcher = getattr(ctx, "batcher", None)
            if batcher is not None:  # the micro-batcher holds its own reference
                batcher.executor = ctx.executor
            bodies = Bodies(name, rows(name, 300), f"prof-{int(time.time())}-{name}")
            await _drive(app, key, bodies, 30, None)
            plain = await _drive(app, key, bodies, n, None)
            profile = cProfile.Profile()
            await _drive(app, key, bodies, n, profile)
    stats = pstats.Stats(profile)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    by_cat: dict[str, float] = {}
    app_funcs, self_top = [], []
    for (filename, line, func), (_cc, _nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        label = _category(filename, func)
        by_cat[label] = by_cat.get(label, 0.0) + tt
        where = f"{Path(filename).name}:{line}({func})"
        if "/app/" in filename:
            app_funcs.append((ct, tt, f"app/{filename.split('/app/', 1)[1]}:{line}({func})"))
        self_top.append((tt, ct, where))
    app_funcs.sort(reverse=True)
    self_top.sort(reverse=True)
    return {
        "model": name,
        "plain": summary(plain),
        "profiled_ms_per_request": 1000 * total / n,
        "categories": sorted(
            ((k, 1000 * v / n, v / total) for k, v in by_cat.items()), key=lambda t: -t[1]
        ),
        "app_cumulative": [(1000 * ct / n, 1000 * tt / n, w) for ct, tt, w in app_funcs[:25]],
        "top_self": [(1000 * tt / n, 1000 * ct / n, w) for tt, ct, w in self_top[:25]],
    }


def run_model(name: str, n: int) -> dict[str, Any]:
    return asyncio.run(_profile_model(name, n))
