"""The application factory: ``create_app(settings)`` with a lifespan owning the context."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import app as package
from app.batches import endpoints as batches
from app.batches.dispatch import dispatcher_for
from app.catalog import endpoints as catalog
from app.catalog.service import load_models
from app.catalog.upload import watch_registrations
from app.config import Settings
from app.explanations import endpoints as explanations
from app.fairness import endpoints as fairness
from app.health import endpoints as health
from app.http import openapi, problems
from app.http.middleware import AccessLog, BodyLimit
from app.http.timeouts import BodyTimeout
from app.integrity import endpoints as integrity
from app.integrity.proofs import run_checkpointer
from app.ledger import migrate
from app.person import endpoints as person
from app.person import pages as person_pages
from app.records import endpoints as records
from app.reports import endpoints as reports
from app.reviews import endpoints as reviews
from app.runtime.context import Context
from app.runtime.logging import configure
from app.runtime.metrics import RequestMetrics
from app.subjects import endpoints as subjects
from app.web import audit_pages
from app.web import routes as web


def create_app(settings: Settings, *, run_migrations: bool = True) -> FastAPI:
    """Build the API; the lifespan migrates (unless the parent did), loads models, serves."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = Context.create(settings)
        app.state.context = ctx
        try:
            if run_migrations:
                migrate.upgrade(ctx.engine)
            elif not migrate.is_current(ctx.engine):
                raise RuntimeError("the database schema is not migrated; run `rationale migrate`")
            load_models(ctx)
            app.state.batch_dispatcher = dispatcher_for(ctx)
            ctx.ready = True
            tasks = [
                asyncio.create_task(run_checkpointer(ctx)),
                asyncio.create_task(watch_registrations(ctx)),
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
        finally:
            ctx.ready = False
            if getattr(app.state, "batch_dispatcher", None) is not None:
                app.state.batch_dispatcher.close()
            ctx.close()

    app = FastAPI(
        title="Rationale",
        version=package.__version__,
        summary="Explains automated decisions about people and keeps the proof.",
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
    )
    problems.install(app)
    openapi.install(app)
    app.include_router(health.router)
    app.include_router(catalog.router)
    app.include_router(explanations.router)
    app.include_router(records.router)
    app.include_router(integrity.router)
    app.include_router(fairness.router)
    app.include_router(reviews.router)
    app.include_router(reports.router)
    app.include_router(subjects.router)
    app.include_router(batches.router)
    app.include_router(person.router)
    app.include_router(web.router)
    app.include_router(audit_pages.router)
    app.include_router(person_pages.router)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        paths={
            ("POST", "/v1/models"): settings.max_upload_bytes,
            ("POST", "/v1/batches"): settings.max_batch_bytes,
        },
    )
    app.add_middleware(BodyTimeout, seconds=settings.body_timeout_seconds)
    app.add_middleware(AccessLog)
    app.add_middleware(RequestMetrics)
    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory`` worker processes: settings from the environment;
    the serving parent has already migrated."""
    settings = Settings()
    configure(settings.log_json)
    return create_app(settings, run_migrations=False)
