"""The record document, its canonical bytes and hash, and verification of the chain."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785

from app.errors import FieldError, InvalidInput
from app.ledger.crypto import seal

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
RECORD_TYPES = (
    "explanation",
    "report",
    "review",
    "access",
    "erasure",
    "review_request",
    "actual_outcome",
    "admin_event",
    "link",
)
"""Every record type of docs/record.md; verify refuses any other."""


_SAFE_INT = 2**53 - 1
"""JCS numbers are IEEE doubles: integers beyond this are refused (rfc8785 raises)."""
_UTF16_SAFE = "\ud800"
"""Keys made only of code points below this sort alike by UTF-16 units (JCS) and by code
point (orjson): the two orders differ only between U+E000..U+FFFF and the astral planes."""


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical bytes.

    The bytes are rfc8785's; orjson writes them about 20x faster where its output provably
    agrees. ``_jcs_ready`` walks the value and hands every part where orjson's output could
    differ to rfc8785 as a pre-rendered fragment (JCS renders each member independently of
    its context): non-integral floats outside [1e-5, 1e15) (ES6 and orjson switch
    to exponent notation at different magnitudes), integral floats (ES6 writes ``1``, orjson
    ``1.0``), integers beyond 2^53, objects with keys at or above U+D800 and every type
    other than dict, list, tuple, str, bool, int, float and None. Strings escape alike
    (tested over every code point); a lone surrogate makes orjson refuse and rfc8785 decide.
    ``tests/ledger/test_canonical.py`` compares both on generated documents.
    """
    try:
        return orjson.dumps(_jcs_ready(value), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return rfc8785.dumps(value)


def _jcs_ready(value: Any) -> Any:
    """``value`` with every part orjson might render unlike JCS replaced by rfc8785's bytes."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is float:
        if value.is_integer():
            if -_SAFE_INT <= value <= _SAFE_INT:
                return int(value)
        elif 1e-5 <= abs(value) < 1e15:
            return value
        return orjson.Fragment(rfc8785.dumps(value))
    if kind is int:
        return value if -_SAFE_INT <= value <= _SAFE_INT else orjson.Fragment(rfc8785.dumps(value))
    if kind is dict:
        if all(type(k) is str and (k.isascii() or max(k) < _UTF16_SAFE) for k in value):
            return {k: v if type(v) is str else _jcs_ready(v) for k, v in value.items()}
        return orjson.Fragment(rfc8785.dumps(value))
    if kind is list or kind is tuple:
        return [v if type(v) is str else _jcs_ready(v) for v in value]
    return orjson.Fragment(rfc8785.dumps(value))


def canonical_body(body: Any) -> bytes:
    """A request body's canonical bytes (RFC 8785), or a 422 naming ``body``."""
    try:
        return canonical(body)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(
            "the body has no canonical JSON form",
            errors=[FieldError("body", f"cannot be canonicalised (RFC 8785): {exc}")],
        ) from exc


def digest(data: bytes) -> str:
    """SHA-256 hex digest."""
    return hashlib.sha256(data).hexdigest()


def now_iso() -> str:
    """UTC time as a fixed-width ISO 8601 string (sorts as it reads)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_record_id() -> str:
    """A random record id (UUID 4)."""
    return str(uuid.uuid4())


def associated_data(record_id: str, record_type: str, v: int = FORMAT_VERSION) -> bytes:
    """What a sealed part is bound to: its record's id, type and format version."""
    return canonical({"id": record_id, "type": record_type, "v": v})


@dataclass
class Draft:
    """A record before it takes its place in the chain (seq, time and hashes come then)."""

    type: str
    key_id: str
    role: str
    clear: dict[str, Any]
    id: str = field(default_factory=new_record_id)
    sealed: dict[str, str] | None = None
    decision_id: str | None = None
    subject_ref: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    outcome: str | None = None
    target_id: str | None = None
    fingerprint: str | None = None
    _parts: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def seal_with(self, data_key: bytes, plain: dict[str, Any]) -> Draft:
        """Seal ``plain`` under the subject's data key, bound to this record's id and type."""
        self.sealed = seal(data_key, canonical(plain), associated_data(self.id, self.type))
        return self

    def prepare(self) -> Draft:
        """Canonicalise the parts fixed before the chain lock (clear and sealed), so that
        only seq, time and prev_hash are rendered while the lock is held."""
        if self._parts is None:
            self._parts = (canonical(self.clear), canonical(self.sealed))
        return self

    def canonical_document(self, seq: int, prev_hash: str, created_at: str) -> bytes:
        """The JCS bytes of ``document(...)``, composed from the prepared parts: JCS orders
        an object's members by key, each value in its own canonical form."""
        parts = self.prepare()._parts
        assert parts is not None
        clear, sealed = parts
        return b"".join(
            (
                b'{"clear":', clear,
                b',"created_at":', canonical(created_at),
                b',"id":', canonical(self.id),
                b',"key_id":', canonical(self.key_id),
                b',"prev_hash":', canonical(prev_hash),
                b',"role":', canonical(self.role),
                b',"sealed":', sealed,
                b',"seq":', canonical(seq),
                b',"type":', canonical(self.type),
                b',"v":', canonical(FORMAT_VERSION),
                b"}",
            )
        )  # fmt: skip

    def document(self, seq: int, prev_hash: str, created_at: str) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "type": self.type,
            "id": self.id,
            "seq": seq,
            "created_at": created_at,
            "key_id": self.key_id,
            "role": self.role,
            "prev_hash": prev_hash,
            "clear": self.clear,
            "sealed": self.sealed,
        }

    def columns(self) -> dict[str, Any]:
        """The query columns copied from the document."""
        return {
            "id": self.id,
            "type": self.type,
            "key_id": self.key_id,
            "role": self.role,
            "decision_id": self.decision_id,
            "subject_ref": self.subject_ref,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "outcome": self.outcome,
            "target_id": self.target_id,
            "fingerprint": self.fingerprint,
        }


def columns_of(document: dict[str, Any]) -> dict[str, Any]:
    """What the query columns of a stored document must hold."""
    clear = document.get("clear") or {}
    model = clear.get("model") or {}
    prediction = clear.get("prediction") or {}
    # Admin events of model uploads once named the model by a bare string: no columns.
    model = model if isinstance(model, dict) else {}
    prediction = prediction if isinstance(prediction, dict) else {}
    return {
        "id": document.get("id"),
        "type": document.get("type"),
        "seq": document.get("seq"),
        "created_at": document.get("created_at"),
        "key_id": document.get("key_id"),
        "role": document.get("role"),
        "prev_hash": document.get("prev_hash"),
        "decision_id": clear.get("decision_id"),
        "subject_ref": clear.get("subject_ref"),
        "model_name": model.get("name"),
        "model_version": model.get("version"),
        "outcome": prediction.get("label"),
        "target_id": clear.get("target_id"),
        "fingerprint": clear.get("request_fingerprint"),
    }


@dataclass
class VerifyResult:
    """The outcome of recomputing the chain."""

    ok: bool
    records_checked: int
    first_bad: dict[str, Any] | None
    head: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records_checked": self.records_checked,
            "first_bad": self.first_bad,
            "head": self.head,
        }


def verify_rows(
    rows: Iterable[dict[str, Any]], kept_head: tuple[int, str] | None = None
) -> VerifyResult:
    """Recompute the chain over rows in seq order (each a dict of the table's columns, or
    just ``document`` and ``hash`` for an offline file). Names the first record that fails."""
    expected_seq = 1
    prev = GENESIS_HASH
    prev_created = ""
    checked = 0
    head: dict[str, Any] | None = None
    kept_seen = kept_head is None

    def bad(row: dict[str, Any], reason: str) -> VerifyResult:
        record_id, seq = row.get("id"), row.get("seq")
        if record_id is None and "document" in row:
            record_id, seq = _identify(row["document"])
        return VerifyResult(False, checked, {"id": record_id, "seq": seq, "reason": reason}, head)

    for row in rows:
        raw: bytes = row["document"]
        if digest(raw) != row["hash"]:
            return bad(row, "hash does not match the stored document")
        try:
            document = json.loads(raw)
        except ValueError:
            return bad(row, "document is not JSON")
        if canonical(document) != raw:
            return bad(row, "document is not in canonical (JCS) form")
        seq = document.get("seq")
        if seq != expected_seq:
            return bad(
                {"id": document.get("id"), "seq": seq},
                f"gap in seq: expected {expected_seq}, found {seq}",
            )
        if document.get("prev_hash") != prev:
            return bad(row, "prev_hash does not match the previous record's hash")
        if document.get("v") != FORMAT_VERSION or document.get("type") not in RECORD_TYPES:
            return bad(row, "unknown record format or type")
        created_at = document.get("created_at")
        if not isinstance(created_at, str) or created_at < prev_created:
            return bad(row, "created_at is earlier than the previous record's")
        if "seq" in row:
            expected_columns = columns_of(document)
            for column, value in expected_columns.items():
                if row.get(column) != value:
                    return bad(row, f"column {column} differs from the document")
        if kept_head is not None and seq == kept_head[0]:
            if row["hash"] != kept_head[1]:
                return bad(row, "the kept head's hash no longer matches this record")
            kept_seen = True
        prev = row["hash"]
        prev_created = created_at
        checked += 1
        expected_seq += 1
        head = {"seq": seq, "hash": prev}
    if not kept_seen:
        assert kept_head is not None
        return VerifyResult(
            False,
            checked,
            {"id": None, "seq": kept_head[0], "reason": "the kept head's record is missing"},
            head,
        )
    return VerifyResult(True, checked, None, head)


def _identify(raw: bytes) -> tuple[Any, Any]:
    """Best-effort id and seq of a (possibly damaged) document, to name it in a report."""
    try:
        document = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    return document.get("id"), document.get("seq")
