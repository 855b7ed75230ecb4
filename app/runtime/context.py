"""Everything a use case needs, owned by the app's lifespan (or a batch worker)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine
from threadpoolctl import threadpool_limits

from app.access.principals import KeyRing, parse_api_keys
from app.access.secrets import load_keys
from app.catalog import ModelCatalog
from app.compute.batcher import ExplainBatcher
from app.config import Settings
from app.ledger.crypto import ServerKeys
from app.ledger.db import make_engine
from app.ledger.repository import Repository
from app.ledger.subject_keys import SubjectKeys, Subjects
from app.ledger.writer import GroupWriter
from app.runtime import lifecycle


@dataclass
class Context:
    """The service's long-lived parts: engine, store, models, keys, worker threads."""

    settings: Settings
    engine: Engine
    repository: Repository
    writer: GroupWriter
    catalog: ModelCatalog
    keys: ServerKeys
    keyring: KeyRing
    executor: ThreadPoolExecutor
    batcher: ExplainBatcher
    slow_executor: ThreadPoolExecutor | None = None
    subject_keys: SubjectKeys = field(default_factory=SubjectKeys)
    ready: bool = False
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings) -> Context:
        """Open the store and derive keys; models are loaded by ``services.models``."""
        # One BLAS/OpenMP thread: explanations run in parallel across requests and
        # processes, and a thread pool per call would only fight over the same cores.
        threadpool_limits(1)
        engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        repository = Repository(engine)
        executor = ThreadPoolExecutor(settings.explain_threads, thread_name_prefix="explain")
        slow = ThreadPoolExecutor(settings.slow_explain_threads, thread_name_prefix="explain-slow")
        return cls(
            settings=settings,
            engine=engine,
            repository=repository,
            writer=GroupWriter(
                repository, on_stop=lambda: lifecycle.fail("the record writer stopped")
            ),
            catalog=ModelCatalog(),
            keys=load_keys(engine, settings.secret_key.get_secret_value()),
            keyring=KeyRing(parse_api_keys(settings.api_keys.get_secret_value())),
            executor=executor,
            batcher=ExplainBatcher(
                executor, slow_executor=slow, fast_lane_seconds=settings.fast_lane_seconds
            ),
            slow_executor=slow,
        )

    @property
    def subjects(self) -> Subjects:
        """Data keys of subjects for sealing, on the server keys in force now."""
        return Subjects(self.keys, self.repository, self.subject_keys)

    def close(self) -> None:
        self.writer.close()
        self.executor.shutdown(wait=True)
        if self.slow_executor is not None:
            self.slow_executor.shutdown(wait=True, cancel_futures=True)
        self.engine.dispose()
