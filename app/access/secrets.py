"""The server secret: derived keys at start, and rotation to a new secret
(docs/access.md#the-server-secret).

Rotation re-wraps every subject's data key under the new master key and keeps the
subject-id HMAC key (subject ids are never stored, so their digests cannot be recomputed)
wrapped under the new master key in ``server_keys``. Checkpoint signing moves to the new
key; the old key's public half stays in ``signing_keys``, so its checkpoints still verify
by key id. Servers must be restarted with the new secret."""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from app.integrity.repository import ProofStore
from app.integrity.signing import Signer
from app.ledger.chain import Draft, now_iso
from app.ledger.crypto import ServerKeys
from app.ledger.repository import Repository
from app.ledger.tables import server_keys, subjects

SUBJECT_HMAC = "subject-id hmac"
_AAD = "server-key/"


def load_keys(engine: Engine, secret: str) -> ServerKeys:
    """The keys of a secret, with the subject-id HMAC key kept across rotations."""
    keys = ServerKeys.from_secret(secret)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(server_keys.c.wrapped).where(server_keys.c.purpose == SUBJECT_HMAC)
            ).first()
    except DBAPIError:  # not migrated yet: nothing was rotated
        return keys
    if row is None:
        return keys
    return keys.with_subject_hmac(keys.unwrap_data_key(bytes(row.wrapped), _AAD + SUBJECT_HMAC))


class WrongSecret(ValueError):
    """The current secret does not unwrap the stored keys."""


def rotate(repository: Repository, old_secret: str, new_secret: str, origin: str) -> dict[str, Any]:
    """Move every stored key from the old secret to the new one, in one transaction with
    the ``admin_event`` record that says so."""
    old = load_keys(repository.engine, old_secret)
    new = ServerKeys.from_secret(new_secret)
    old_signer, new_signer = Signer(origin, old.signing_seed), Signer(origin, new.signing_seed)
    proofs = ProofStore(repository)
    for signer in (old_signer, new_signer):
        verifier = signer.verifier
        proofs.remember_key(verifier.key_id_hex, verifier.name, verifier.encode())
    count = 0
    with repository._writing() as conn:
        rows = conn.execute(select(subjects.c.digest, subjects.c.ref, subjects.c.wrapped_key)).all()
        for row in rows:
            try:
                data_key = old.unwrap_data_key(bytes(row.wrapped_key), row.ref)
            except InvalidTag:
                raise WrongSecret(
                    "RATIONALE_SECRET_KEY does not unwrap the stored subject keys: it is not "
                    "the current secret"
                ) from None
            conn.execute(
                update(subjects)
                .where(subjects.c.digest == row.digest)
                .values(wrapped_key=new.wrap_data_key(data_key, row.ref))
            )
            count += 1
        conn.execute(delete(server_keys).where(server_keys.c.purpose == SUBJECT_HMAC))
        conn.execute(
            insert(server_keys).values(
                purpose=SUBJECT_HMAC,
                wrapped=new.wrap_data_key(old.subject_hmac, _AAD + SUBJECT_HMAC),
                updated_at=now_iso(),
            )
        )
        details = {
            "event": "secret_rotated",
            "subjects_rewrapped": count,
            "old_signing_key": old_signer.verifier.key_id_hex,
            "new_signing_key": new_signer.verifier.key_id_hex,
            "operator": "cli",
        }
        draft = Draft(type="admin_event", key_id="cli", role="admin", clear=details).prepare()
        repository._append(conn, [(draft, None)])
    return details
