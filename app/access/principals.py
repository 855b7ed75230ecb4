"""API keys, roles and what each role may do (docs/access.md#roles)."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass


class Role(enum.StrEnum):
    BACKEND = "backend"
    SUPPORT = "support"
    AUDITOR = "auditor"
    ADMIN = "admin"
    SUBJECT = "subject"
    """The person a decision is about, reading through a link (docs/person.md): never a key's."""


KEY_ROLES: frozenset[Role] = frozenset({Role.BACKEND, Role.SUPPORT, Role.AUDITOR, Role.ADMIN})
"""The roles an API key may carry; ``subject`` is only ever a link's."""


class Permission(enum.StrEnum):
    EXPLAIN = "explain"
    READ_RECORD = "read_record"
    READ_MODELS = "read_models"
    READ_REPORT = "read_report"
    ISSUE_REPORT = "issue_report"
    REVIEW = "review"
    REQUEST_REVIEW = "request_review"
    READ_REVIEWS = "read_reviews"
    FIND_SUBJECT = "find_subject_decisions"
    QUERY = "query"
    EXPORT = "export"
    VERIFY = "verify"
    ACCESS_LOG = "read_access_log"
    REPLAY = "replay"
    FAIRNESS = "audit_fairness"
    IMPACT = "audit_impact"
    REPORT_OUTCOME = "report_outcomes"
    MANAGE_MODELS = "manage_models"
    MANAGE_KEYS = "manage_keys"
    ERASE = "erase"
    LINK = "link_decisions"


_AUDIT = frozenset(
    {
        Permission.READ_RECORD,
        Permission.READ_MODELS,
        Permission.READ_REPORT,
        Permission.QUERY,
        Permission.EXPORT,
        Permission.VERIFY,
        Permission.ACCESS_LOG,
        Permission.REPLAY,
        Permission.FAIRNESS,
        Permission.IMPACT,
        Permission.READ_REVIEWS,
        Permission.FIND_SUBJECT,
    }
)

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.BACKEND: frozenset(
        {
            Permission.EXPLAIN,
            Permission.READ_RECORD,
            Permission.READ_MODELS,
            Permission.REPORT_OUTCOME,
            Permission.REQUEST_REVIEW,
            Permission.READ_REVIEWS,
            Permission.ISSUE_REPORT,
            Permission.LINK,
        }
    ),
    Role.SUPPORT: frozenset(
        {
            Permission.READ_RECORD,
            Permission.READ_MODELS,
            Permission.READ_REPORT,
            Permission.ISSUE_REPORT,
            Permission.REVIEW,
            Permission.REQUEST_REVIEW,
            Permission.READ_REVIEWS,
            Permission.FIND_SUBJECT,
            Permission.LINK,
        }
    ),
    Role.AUDITOR: _AUDIT,
    Role.ADMIN: frozenset(Permission),
    Role.SUBJECT: frozenset(),
}
"""What each role may do (docs/access.md#roles): backend explains and reads records by id;
support reads records and reports and adds reviews; auditor reads, queries, exports,
verifies, replays and sees the access log and fairness figures; admin may do everything; the
subject role (a person's link) may do nothing through the API."""

UNSEALED_ROLES: frozenset[Role] = frozenset({Role.SUPPORT, Role.AUDITOR, Role.ADMIN})
"""Roles whose keys see sealed parts decrypted on reads."""

LOGGED_ROLES: frozenset[Role] = UNSEALED_ROLES | {Role.SUBJECT}
"""Roles whose reads of record content append an ``access`` record (docs/record.md): the
keys that see sealed parts, and a person reading their own decision through a link."""


@dataclass(frozen=True)
class Principal:
    """The caller behind a key: its public id and its role."""

    key_id: str
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]


def key_id(secret: str) -> str:
    """A key's public, stable id: the first 12 hex digits of the SHA-256 of its secret."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def parse_api_keys(spec: str) -> dict[str, Principal]:
    """``secret:role,secret:role`` into principals by the SHA-256 of the secret."""
    keys: dict[str, Principal] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        secret, sep, role = item.rpartition(":")
        if not sep or not secret:
            raise ValueError("RATIONALE_API_KEYS entries are secret:role")
        try:
            parsed = Role(role)
        except ValueError:
            raise ValueError(f"unknown role {role!r} in RATIONALE_API_KEYS") from None
        if parsed not in KEY_ROLES:
            raise ValueError(
                f"role {role!r} in RATIONALE_API_KEYS: it belongs to a person's link, no key "
                "may carry it"
            )
        if len(secret) < 16:
            raise ValueError("API key secrets must be at least 16 characters")
        keys[hashlib.sha256(secret.encode()).hexdigest()] = Principal(key_id(secret), parsed)
    return keys


class KeyRing:
    """Looks up the principal of a presented secret by the secret's SHA-256."""

    def __init__(self, keys: dict[str, Principal]) -> None:
        self._keys = keys

    def authenticate(self, secret: str) -> Principal | None:
        return self._keys.get(hashlib.sha256(secret.encode()).hexdigest())
