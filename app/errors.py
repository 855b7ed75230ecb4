"""One error base class; the API turns every one into RFC 9457 problem+json."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One problem with one request field (dotted path, e.g. ``instance.age``)."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class RationaleError(Exception):
    """Base of every error the service answers deliberately."""

    status_code: int = 500
    title: str = "Internal error"
    type_: str = "about:blank"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}


class InvalidInput(RationaleError):
    status_code = 422
    title = "Invalid input"
    type_ = "/problems/invalid-input"


class BadRequest(RationaleError):
    status_code = 400
    title = "Bad request"
    type_ = "/problems/bad-request"


class NotFound(RationaleError):
    status_code = 404
    title = "Not found"
    type_ = "/problems/not-found"


class Conflict(RationaleError):
    status_code = 409
    title = "Conflict"
    type_ = "/problems/conflict"


class Unauthorized(RationaleError):
    status_code = 401
    title = "Unauthorized"
    type_ = "/problems/unauthorized"

    def __init__(self, detail: str = "a valid API key is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(RationaleError):
    status_code = 403
    title = "Forbidden"
    type_ = "/problems/forbidden"


class PayloadTooLarge(RationaleError):
    status_code = 413
    title = "Payload too large"
    type_ = "/problems/payload-too-large"


class FidelityError(RationaleError):
    """An explanation failed its fidelity bar and no acceptable method remained."""

    status_code = 422
    title = "Explanation failed its fidelity check"
    type_ = "/problems/fidelity"


class ExplanationFailed(RationaleError):
    """The model or a library failed on this instance; the request is refused, the
    service goes on."""

    status_code = 422
    title = "The model could not explain this instance"
    type_ = "/problems/explanation-failed"


class InternalError(RationaleError):
    """Something unforeseen failed while serving one request or row: that request's own 500
    (a bug, logged with its traceback), never its neighbours'."""

    status_code = 500
    title = "Internal error"
    type_ = "/problems/internal"


class Unavailable(RationaleError):
    status_code = 503
    title = "Service unavailable"
    type_ = "/problems/unavailable"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class ModelLoadError(RationaleError):
    """A model version could not be loaded or registered (bad manifest, hash, format)."""

    status_code = 409
    title = "Model version refused"
    type_ = "/problems/model-refused"


class RateLimited(RationaleError):
    """A key made more requests than ``RATIONALE_RATE_LIMIT_PER_MINUTE`` allows."""

    status_code = 429
    title = "Too many requests"
    type_ = "/problems/rate-limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
