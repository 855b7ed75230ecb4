"""Keys derived from the server secret; AES-GCM sealing; keyed fingerprints
(docs/record.md#clear-and-sealed-parts)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
SEAL_ALGORITHM = "AES-256-GCM"


def _derive(secret: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"rationale/v1", info=purpose.encode()
    ).derive(secret)


@dataclass(frozen=True)
class ServerKeys:
    """Purpose-bound keys derived from ``RATIONALE_SECRET_KEY``; never stored."""

    subject_hmac: bytes
    master_wrap: bytes
    fingerprint: bytes
    cursor: bytes
    signing_seed: bytes
    page_mac: bytes
    """MACs of the person's page: its form tokens and hashed client addresses."""

    @classmethod
    def from_secret(cls, secret: str) -> ServerKeys:
        raw = secret.encode()
        return cls(
            subject_hmac=_derive(raw, "subject-id hmac"),
            master_wrap=_derive(raw, "data-key wrapping"),
            fingerprint=_derive(raw, "request fingerprint"),
            cursor=_derive(raw, "cursor mac"),
            signing_seed=_derive(raw, "checkpoint signing ed25519"),
            page_mac=_derive(raw, "person page mac"),
        )

    def with_subject_hmac(self, key: bytes) -> ServerKeys:
        """The same keys with the subject-id HMAC key kept from before a rotation."""
        return replace(self, subject_hmac=key)

    def subject_digest(self, namespace: str, value: str) -> str:
        """HMAC of a subject id (or, for anonymous requests, a decision id) in its namespace."""
        message = f"{namespace}\x00{value}".encode()
        return hmac.new(self.subject_hmac, message, hashlib.sha256).hexdigest()

    def page_digest(self, purpose: str, value: str) -> str:
        """HMAC for the person's page (a form token, a client address's rate bucket)."""
        message = f"{purpose}\x00{value}".encode()
        return hmac.new(self.page_mac, message, hashlib.sha256).hexdigest()

    def request_fingerprint(self, canonical_body: bytes) -> str:
        return hmac.new(self.fingerprint, canonical_body, hashlib.sha256).hexdigest()

    def wrap_data_key(self, data_key: bytes, subject_ref: str) -> bytes:
        """Encrypt a subject's data key under the master key (bound to its reference)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.master_wrap).encrypt(nonce, data_key, subject_ref.encode())

    def unwrap_data_key(self, wrapped: bytes, subject_ref: str) -> bytes:
        nonce, body = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
        return AESGCM(self.master_wrap).decrypt(nonce, body, subject_ref.encode())


def subject_fingerprint(data_key: bytes, canonical_body: bytes) -> str:
    """A request fingerprint keyed with the subject's data key (docs/privacy.md#subjects): the same
    subject and body give the same fingerprint (idempotency), and once the key is destroyed
    nobody can confirm a guessed input against it."""
    key = _derive(data_key, "request fingerprint")
    return hmac.new(key, canonical_body, hashlib.sha256).hexdigest()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(data_key: bytes, plaintext: bytes, associated: bytes) -> dict[str, str]:
    """AES-GCM encrypt; the associated data binds the ciphertext to its record."""
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, associated)
    return {
        "alg": SEAL_ALGORITHM,
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }


def unseal(data_key: bytes, sealed: dict[str, str], associated: bytes) -> bytes:
    nonce = base64.b64decode(sealed["nonce"])
    return AESGCM(data_key).decrypt(nonce, base64.b64decode(sealed["ciphertext"]), associated)
