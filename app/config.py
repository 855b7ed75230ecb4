"""Service settings, read from the environment with the ``RATIONALE_`` prefix
(docs/configuration.md)."""

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

    body_timeout_seconds: float = Field(default=30.0, gt=0)
    """Longest a request body may take to arrive (from its first read); slower gets 408."""

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

    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Port on which ``rationale worker`` serves its processes' Prometheus metrics (unset:
    none); ``--metrics-port`` overrides it."""

    worker_metrics_host: str = "127.0.0.1"
    """Interface of the worker's metrics port (``0.0.0.0`` for a Prometheus on another host)."""

    explain_threads: int = Field(default=1, ge=1, le=64)
    """Threads per process that compute explanations off the event loop (the fast lane)."""

    slow_explain_threads: int = Field(default=1, ge=1, le=64)
    """Threads per process of the slow lane: requests estimated over ``fast_lane_seconds``
    run there, one row at a time, so they never hold up the fast lane."""

    fast_lane_seconds: float = Field(default=0.25, gt=0)
    """Estimated compute (seconds per row) above which a request takes the slow lane."""

    compute_budget_seconds: float = Field(default=30.0, gt=0)
    """Largest estimated compute of one explanation (model evaluations × the predict cost
    measured at load). An explicit method over it is a 422 naming the budget; ``auto``
    skips to the next method that fits."""

    write_timeout_seconds: float = Field(default=15.0, gt=0)
    """Longest a request waits for its record to be committed before answering 503 with
    Retry-After (a retry with the same body is idempotent)."""

    additivity_tolerance_exact: float = Field(default=1e-6, gt=0, le=1e-6)
    """Largest |base_value + Σ contributions − model output| accepted from an exact method."""

    additivity_tolerance_auto: float = Field(default=1e-4, gt=0, le=1e-4)
    """Largest residual, relative to max(1, |output|), accepted from any method under ``auto``."""

    sampling_standard_error: float = Field(default=0.15, gt=0, le=0.15)
    """Largest per-feature standard error of a sampling method, relative to the explanation's
    own scale (mean |contribution| over its features); the permutation estimator samples
    until every feature meets it (about 4 % mean |error| / mean |φ| on 30-feature MLPs)."""

    sampling_standard_error_floor: float = Field(default=1e-4, gt=0, le=1e-4)
    """Floor of that bar, relative to max(1, |output|), for near-zero explanations."""

    lime_min_r2: float = Field(default=0.5, ge=0, le=1)
    """Smallest local R² of LIME's surrogate for a LIME explanation to be returned."""

    exact_max_features: int = Field(default=12, ge=1, le=16)
    """Largest raw feature count for which exact Shapley values are computed."""

    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    """How long a SQLite writer waits for the file lock before failing."""

    fairness_min_group: int = Field(default=20, ge=1)
    """Smallest group reported by a fairness audit; smaller groups are listed as withheld."""

    desk_session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    """How long a support-desk sign-in lasts."""

    desk_secure_cookie: bool | None = None
    """Mark the desk's session cookie ``Secure``: None (default) when the request came over
    HTTPS (directly or as ``X-Forwarded-Proto: https`` from a proxy), or always / never."""

    log_origin: str = Field(
        default="rationale.local/log", min_length=1, max_length=255, pattern=r"^[^\s+]+$"
    )
    """Origin line of signed checkpoints, and the name of their signing key (docs/proofs.md)."""

    checkpoint_every_records: int = Field(default=1000, ge=0)
    """Issue a signed checkpoint once the log has grown this many records (0: off)."""

    checkpoint_every_seconds: float = Field(default=300.0, ge=0)
    """Issue a signed checkpoint this often while the log grows (0: off)."""

    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest model upload (``POST /v1/models``, all three files together) in bytes."""

    max_artifact_inflated_bytes: int | None = Field(default=None, ge=1024)
    """Largest total size of a zip artifact's members once inflated (a skops file is a zip),
    on upload and in the models folder alike; unset: 4 × ``RATIONALE_MAX_UPLOAD_BYTES``
    (256 MiB by default). Checked from the archive's directory and again while inflating it."""

    max_artifact_compression_ratio: float = Field(default=100.0, ge=1)
    """Largest ratio of a zip artifact's inflated size to its size on disk (the demo models'
    are 4 to 16); a zip bomb inflates hundreds of times its size."""

    model_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often each worker looks for model versions registered by another worker."""

    rate_limit_per_minute: int = Field(default=0, ge=0)
    """Requests a minute each API key may make, per worker process (0: no limit); over it,
    429 with Retry-After."""

    log_json: bool = True
    """Write logs as JSON lines (false: human-readable console lines)."""

    review_contact: str | None = Field(default=None, min_length=1, max_length=500)
    """How a person asks for a human review of a decision, printed in every report and on the
    desk: in each language that has no contact of its own (``RATIONALE_REVIEW_CONTACT_JA``,
    ``…_EN``). Unset, each language's own words are used ("the team that made this decision",
    「この判定を行った担当窓口」)."""

    review_contact_en: str | None = Field(default=None, min_length=1, max_length=500)
    """The review contact in English reports and pages (default: ``RATIONALE_REVIEW_CONTACT``)."""

    review_contact_ja: str | None = Field(default=None, min_length=1, max_length=500)
    """The review contact in Japanese reports and pages (default: ``RATIONALE_REVIEW_CONTACT``),
    written in Japanese."""

    public_base_url: str | None = Field(
        default=None, max_length=500, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
    )
    """Base of the links given to people for their own decision page (``<base>/p/<token>``),
    e.g. ``https://decisions.example.com``; unset, the base of the request that asked for the
    link. Set it when the service sits behind a proxy (docs/person.md#links)."""

    person_rate_per_token: int = Field(default=30, ge=1, le=100_000)
    """Requests a minute one link's token may make on the person's page, across every worker
    process (kept in the store); over it, 429 with Retry-After."""

    person_rate_per_address: int = Field(default=120, ge=1, le=1_000_000)
    """Requests a minute one client address may make on the person's pages, across every
    worker process, whatever the token (so guessing tokens is slow); over it, 429."""

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("RATIONALE_SECRET_KEY must be at least 32 characters")
        return value

    def review_contact_for(self, lang: str) -> str | None:
        """The review contact set for a language (None: the language's own default words)."""
        own = getattr(self, f"review_contact_{lang}", None)
        return own if isinstance(own, str) else self.review_contact

    @property
    def is_sqlite(self) -> bool:
        """Whether the record store is an SQLite database."""
        return self.database_url.startswith("sqlite")

    @property
    def artifact_inflated_limit(self) -> int:
        """The largest inflated size of a zip artifact (4 × the upload limit when unset)."""
        if self.max_artifact_inflated_bytes is not None:
            return self.max_artifact_inflated_bytes
        return 4 * self.max_upload_bytes
