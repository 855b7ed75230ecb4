"""Signed checkpoints: the C2SP ``tlog-checkpoint`` body in a C2SP ``signed-note``, Ed25519.

A checkpoint body is three lines — origin, tree size in decimal, base64 root hash — each
ending in a newline. The note adds a blank line and one signature line per signer,
``— <key name> <base64(4-byte key id || 64-byte signature)>``. The key id is the first four
bytes of SHA-256(key name || 0x0A || 0x01 || public key); the verifier key is
``<name>+<key id hex>+<base64(0x01 || public key)>``. Nothing here needs the service:
the offline CLI verifies with the verifier key alone."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
"""The signature-type byte of Ed25519 in C2SP signed notes."""
DASH = "\u2014"
_NAME = re.compile(r"^[^\s+]+$")


class NoteError(ValueError):
    """A note, checkpoint or verifier key that does not parse or does not verify."""


def key_hash(name: str, public: bytes) -> bytes:
    """The 4-byte key id of an Ed25519 key in a signed note."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """A note verifier key: name, key id, Ed25519 public key."""

    name: str
    key_id: bytes
    public: bytes

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    def encode(self) -> str:
        """``<name>+<key id hex>+<base64(0x01 || public key)>``."""
        material = base64.b64encode(bytes([ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id_hex}+{material}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Parse a verifier key; NoteError when malformed or its id does not match."""
        parts = text.strip().split("+")
        if len(parts) != 3 or not _NAME.match(parts[0]):
            raise NoteError("a verifier key is <name>+<key id hex>+<base64 key>")
        name, hex_id, material = parts
        try:
            key_id = bytes.fromhex(hex_id)
            raw = base64.b64decode(material, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError("the verifier key's id or key material is not hex/base64") from None
        if len(key_id) != 4 or len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("the verifier key is not an Ed25519 note key")
        if key_hash(name, raw[1:]) != key_id:
            raise NoteError("the verifier key's id does not match its name and key")
        return cls(name, key_id, raw[1:])

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    """The checkpoint signing key, derived from the server secret (never stored)."""

    def __init__(self, name: str, seed: bytes) -> None:
        if not _NAME.match(name):
            raise ValueError("a note key name has no spaces or '+'")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(name, key_hash(name, public), public)

    def sign(self, body: str) -> str:
        """The signed note of a body (which must end in a newline)."""
        if not body.endswith("\n") or "\n\n" in body:
            raise ValueError("a note body ends in one newline and has no blank line")
        signature = self._key.sign(body.encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{body}\n{DASH} {self.verifier.name} {blob}\n"


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint: origin, tree size, root hash (raw bytes), extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The C2SP tlog-checkpoint body text."""
    return Checkpoint(origin, size, root).body()


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """A note's body and its signature lines as (name, key id, signature)."""
    body, sep, signatures = note.partition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("a signed note is a body, a blank line and signature lines")
    parsed = []
    for line in signatures[:-1].split("\n"):
        fields = line.split(" ")
        if len(fields) != 3 or fields[0] != DASH:
            raise NoteError(f"malformed signature line {line!r}")
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except binascii.Error:
            raise NoteError("a signature is not base64") from None
        if len(blob) < 5:
            raise NoteError("a signature is too short")
        parsed.append((fields[1], blob[:4], blob[4:]))
    return body + "\n", parsed


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint body (origin, size, base64 root, optional extension lines)."""
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint body has origin, size and root hash lines")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin or not re.fullmatch(r"0|[1-9][0-9]{0,18}", size_text):
        raise NoteError("the checkpoint's origin is empty or its size is not a decimal")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise NoteError("the checkpoint's root hash is not base64") from None
    if len(root) != 32:
        raise NoteError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """Verify a signed checkpoint with a verifier key and parse it; NoteError otherwise."""
    body, signatures = split_note(note)
    for name, key_id, signature in signatures:
        if name == verifier.name and key_id == verifier.key_id:
            if not verifier.verify(body.encode(), signature):
                raise NoteError("the checkpoint's signature does not verify")
            return parse_checkpoint(body)
    raise NoteError(f"the checkpoint carries no signature by key {verifier.key_id_hex}")
