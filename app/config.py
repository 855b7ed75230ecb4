"""Service settings, read from the environment with the ``RATIONALE_`` prefix (SPEC §4)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RATIONALE_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///./var/rationale.db"
    """SQLAlchemy URL of the record store; SQLite file under ./var/ by default,
    e.g. ``postgresql+psycopg://user@host/db`` at scale."""

    models_dir: Path = Path("./models")
    """Folder of registered model versions, laid out ``<name>/<version>/model.yaml``."""

    api_keys: SecretStr = SecretStr("")
    """Bootstrap API keys: comma-separated ``secret:role`` pairs (roles: backend, support,
    auditor, admin)."""

    secret_key: SecretStr
    """Server secret (32+ characters) from which subject-reference, data-key-wrapping and
    request-fingerprint keys are derived. Required."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest accepted request body in bytes; larger bodies get 413."""

    allow_unsafe_models: bool = False
    """Allow pickle/joblib model artifacts. Off: only skops archives with trusted types load."""

    broker_url: str | None = None
    """Celery broker URL (e.g. ``redis://127.0.0.1:6379/0``); unset, batches run in-process."""

    max_batch_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest accepted ``POST /v1/batches`` body in bytes (its own limit; 413 beyond)."""

    max_batch_items: int = Field(default=10_000, ge=1, le=1_000_000)
    """Most items in one batch (422 beyond)."""

    batch_chunk_items: int = Field(default=100, ge=1, le=10_000)
    """Items per unit of batch work (one task on a Celery worker): explained together,
    appended together, redelivered together if a worker dies."""

    batch_threads: int = Field(default=1, ge=1, le=16)
    """Threads per process that run batches in-process (no broker)."""

    batch_queue: str = Field(default="rationale-batches", min_length=1, max_length=128)
    """Celery queue of batch tasks (give tests and tenants their own)."""

    broker_visibility_timeout: int = Field(default=30, ge=5, le=3600)
    """Seconds before a task taken by a worker that died (unacknowledged) is delivered
    again; longer than any one chunk takes."""

    explain_threads: int = Field(default=1, ge=1, le=64)
    """Threads per process that compute explanations off the event loop."""

    additivity_tolerance_exact: float = Field(default=1e-6, gt=0, le=1e-6)
    """Largest |base_value + Σ contributions − model output| accepted from an exact method."""

    additivity_tolerance_auto: float = Field(default=1e-4, gt=0, le=1e-4)
    """Largest residual, relative to max(1, |output|), accepted from any method under ``auto``."""

    sampling_standard_error: float = Field(default=0.02, gt=0, le=0.02)
    """Largest per-feature standard error of a sampling method, relative to max(1, |output|);
    the permutation estimator samples until it meets it."""

    lime_min_r2: float = Field(default=0.5, ge=0, le=1)
    """Smallest local R² of LIME's surrogate for a LIME explanation to be returned."""

    exact_max_features: int = Field(default=12, ge=1, le=16)
    """Largest raw feature count for which exact Shapley values are computed."""

    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    """How long a SQLite writer waits for the file lock before failing."""

    log_json: bool = True
    """Write logs as JSON lines (false: human-readable console lines)."""

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("RATIONALE_SECRET_KEY must be at least 32 characters")
        return value

    @property
    def is_sqlite(self) -> bool:
        """Whether the record store is an SQLite database."""
        return self.database_url.startswith("sqlite")
