"""Signed checkpoints and Merkle proofs over HTTP, checked offline with only the public key
(docs/proofs.md): the note parses as C2SP signed note by an independent reading, proofs verify
through the CLI, and a history rewritten in the database is caught by a kept checkpoint."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from app.cli import app as cli
from app.ledger import merkle
from app.ledger.chain import canonical, digest
from app.ledger.tables import merkle_nodes, records
from app.main import create_app
from tests.helpers import auth, fresh_postgres_database, make_settings
from tests.ledger.support import BACKENDS, explanation_draft

ORIGIN = "proofs.test/log"


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('proofs') / 'rationale.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    settings = make_settings(
        database_url,
        log_origin=ORIGIN,
        checkpoint_every_records=5,
        checkpoint_every_seconds=0,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def append(client: TestClient, count: int) -> None:
    ctx = client.app.state.context  # type: ignore[attr-defined]
    ctx.repository.append([(explanation_draft(i), None) for i in range(count)])


def get_text(client: TestClient, path: str, role: str = "auditor", **params: Any) -> str:
    response = client.get(path, params=params, headers=auth(role))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def get_json(client: TestClient, path: str, role: str = "auditor", **params: Any) -> Any:
    response = client.get(path, params=params, headers=auth(role))
    assert response.status_code == 200, response.text
    return response.json()


def parse_signed_note(note: str, verifier_key: str) -> tuple[str, int, bytes]:
    """An independent reading of C2SP signed-note + tlog-checkpoint."""
    name, key_id_hex, material = verifier_key.strip().split("+")
    raw = base64.b64decode(material)
    assert raw[0] == 0x01 and len(raw) == 33  # Ed25519
    public = raw[1:]
    assert hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4].hex() == key_id_hex
    body, signatures = note.split("\n\n", 1)
    body += "\n"
    origin, size, root_b64 = body.rstrip("\n").split("\n")
    (line,) = signatures.rstrip("\n").split("\n")
    dash, signer, blob_b64 = line.split(" ")
    assert dash == "\u2014" and signer == name
    blob = base64.b64decode(blob_b64)
    assert blob[:4].hex() == key_id_hex and len(blob) == 68
    Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], body.encode())
    root = base64.b64decode(root_b64)
    assert len(root) == 32
    return origin, int(size), root


def test_checkpoint_is_a_c2sp_signed_note(client: TestClient) -> None:
    append(client, 7)
    verifier = get_text(client, "/v1/audit/public-key")
    note = get_text(client, "/v1/audit/checkpoint")
    origin, size, root = parse_signed_note(note, verifier)
    head = get_json(client, "/v1/audit/verify")["head"]
    assert origin == ORIGIN and size == head["seq"]
    ctx = client.app.state.context  # type: ignore[attr-defined]
    hashes = [row["hash"] for row in ctx.repository.iter_rows(through=size)]
    tree = merkle.MemoryTree()
    for record_hash in hashes:
        tree.append(hashlib.sha256(b"\x00" + bytes.fromhex(record_hash)).digest())
    assert root == tree.root()
    # The same key signs under its id; the note is kept in the checkpoint list.
    listed = get_json(client, "/v1/audit/checkpoints", limit=1000)["items"]
    assert note in [item["note"] for item in listed]
    key_id = verifier.split("+")[1]
    assert get_text(client, "/v1/audit/public-key", key_id=key_id) == verifier
    unknown = client.get(
        "/v1/audit/public-key", params={"key_id": "00000000"}, headers=auth("auditor")
    )
    assert unknown.status_code == 404
    for role, status in (("backend", 403), ("support", 403), ("admin", 200)):
        assert client.get("/v1/audit/checkpoint", headers=auth(role)).status_code == status
    assert client.get("/v1/audit/checkpoint").status_code == 401


def test_checkpoints_are_issued_every_n_records(client: TestClient) -> None:
    before = get_json(client, "/v1/audit/verify")["head"]["seq"]
    append(client, 6)  # checkpoint_every_records=5
    deadline = time.monotonic() + 30
    sizes: list[int] = []
    while time.monotonic() < deadline:
        sizes = [c["tree_size"] for c in get_json(client, "/v1/audit/checkpoints")["items"]]
        if any(size >= before + 5 for size in sizes):
            break
        time.sleep(0.2)
    assert any(size >= before + 5 for size in sizes), sizes


def test_proofs_verify_offline_with_the_public_key(client: TestClient, tmp_path: Path) -> None:
    runner = CliRunner()
    verifier = get_text(client, "/v1/audit/public-key")
    pk = tmp_path / "pk"
    pk.write_text(verifier)
    append(client, 3)
    old = tmp_path / "old.txt"
    old.write_text(get_text(client, "/v1/audit/checkpoint"))
    old_size = parse_signed_note(old.read_text(), verifier)[1]
    append(client, 9)
    new = tmp_path / "new.txt"
    new.write_text(get_text(client, "/v1/audit/checkpoint"))
    new_size = parse_signed_note(new.read_text(), verifier)[1]
    export = client.get(
        "/v1/explanations/export", params={"format": "chain"}, headers=auth("auditor")
    )
    chain = tmp_path / "log.jsonl"
    chain.write_bytes(export.content)

    verified = runner.invoke(
        cli,
        [
            "records",
            "verify",
            "--file",
            str(chain),
            "--checkpoint",
            str(new),
            "--public-key",
            str(pk),
        ],
    )
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["checkpoint"]["tree_size"] == new_size

    # Inclusion: a record of the older part, in the newer tree.
    record = json.loads(chain.read_bytes().splitlines()[old_size - 2])
    proof = get_json(
        client, "/v1/audit/proof/inclusion", record_id=record["id"], tree_size=new_size
    )
    assert proof["leaf_index"] == record["seq"] - 1
    proof_file = tmp_path / "inclusion.json"
    proof_file.write_text(json.dumps(proof))
    args = ["records", "inclusion", "--proof", str(proof_file), "--checkpoint", str(new)]
    included = runner.invoke(cli, [*args, "--public-key", verifier])
    assert included.exit_code == 0, included.output
    other_hash = hashlib.sha256(b"not that record").hexdigest()
    excluded = runner.invoke(cli, [*args, "--public-key", verifier, "--record-hash", other_hash])
    assert excluded.exit_code == 1 and not json.loads(excluded.stdout)["ok"]

    # Consistency: from the server's proof, and computed from the export.
    consistency = get_json(
        client, "/v1/audit/proof/consistency", **{"from": old_size, "to": new_size}
    )
    consistency_file = tmp_path / "consistency.json"
    consistency_file.write_text(json.dumps(consistency))
    for source in (["--proof", str(consistency_file)], ["--file", str(chain)]):
        extends = runner.invoke(
            cli, ["records", "consistency", str(old), str(new), "--public-key", str(pk), *source]
        )
        assert extends.exit_code == 0, extends.output
    # A checkpoint signed by another key is refused.
    forged = new.read_text().replace(ORIGIN, "other.log/x", 1)
    forged_file = tmp_path / "forged.txt"
    forged_file.write_text(forged)
    refused = runner.invoke(
        cli,
        [
            "records",
            "consistency",
            str(old),
            str(forged_file),
            "--public-key",
            str(pk),
            "--file",
            str(chain),
        ],
    )
    assert refused.exit_code == 1 and "signature" in refused.stdout


def test_bad_proof_requests_are_4xx(client: TestClient) -> None:
    size = get_json(client, "/v1/audit/verify")["head"]["seq"]
    cases: list[tuple[str, dict[str, Any], int, str | None]] = [
        ("/v1/audit/proof/inclusion", {"record_id": "nope"}, 404, None),
        ("/v1/audit/proof/inclusion", {}, 422, "record_id"),
        ("/v1/audit/proof/consistency", {"from": size + 100}, 422, "from"),
        ("/v1/audit/proof/consistency", {"from": 1, "to": size + 100}, 422, "to"),
        ("/v1/audit/proof/consistency", {"from": 0}, 422, "from"),
        ("/v1/audit/public-key", {"key_id": "xyz"}, 422, "key_id"),
        ("/v1/audit/checkpoints", {"since": "yesterday"}, 422, "since"),
    ]
    first = get_json(client, "/v1/explanations", limit=1)["items"][0]["id"]
    cases.append(
        ("/v1/audit/proof/inclusion", {"record_id": first, "tree_size": 0}, 422, "tree_size")
    )
    for path, params, status, field in cases:
        response = client.get(path, params=params, headers=auth("auditor"))
        assert response.status_code == status, (path, params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        if field is not None:
            assert field in response.text


def _rewrite_history(client: TestClient, seq: int) -> None:
    """What an operator with write access could do: change one record and recompute every
    later hash, and the whole Merkle tree."""
    ctx = client.app.state.context  # type: ignore[attr-defined]
    with ctx.engine.begin() as conn:
        rows = conn.execute(select(records).order_by(records.c.seq)).mappings().all()
        prev = rows[seq - 2]["hash"]
        for row in rows[seq - 1 :]:
            document = json.loads(bytes(row["document"]))
            changes: dict[str, Any] = {}
            if document["seq"] == seq:
                document["clear"]["prediction"]["label"] = "rewritten"
                changes["outcome"] = "rewritten"
            document["prev_hash"] = prev
            raw = canonical(document)
            prev = digest(raw)
            conn.execute(
                update(records)
                .where(records.c.seq == row["seq"])
                .values(document=raw, hash=prev, prev_hash=document["prev_hash"], **changes)
            )
        conn.execute(delete(merkle_nodes))
        merkle.extend(
            conn, 0, [r.hash for r in conn.execute(select(records.c.hash).order_by(records.c.seq))]
        )


def test_a_rewritten_history_is_caught_by_a_kept_checkpoint(
    client: TestClient, tmp_path: Path
) -> None:
    runner = CliRunner()
    pk = get_text(client, "/v1/audit/public-key")
    append(client, 4)
    kept = tmp_path / "kept.txt"
    kept.write_text(get_text(client, "/v1/audit/checkpoint"))
    size = parse_signed_note(kept.read_text(), pk)[1]
    _rewrite_history(client, size - 2)
    # The rewrite is self-consistent: the chain alone cannot tell.
    assert get_json(client, "/v1/audit/verify")["ok"] is True
    now = tmp_path / "now.txt"
    now.write_text(get_text(client, "/v1/audit/checkpoint"))
    assert parse_signed_note(now.read_text(), pk)[1] == size
    chain = tmp_path / "log.jsonl"
    chain.write_bytes(
        client.get(
            "/v1/explanations/export", params={"format": "chain"}, headers=auth("auditor")
        ).content
    )
    against_kept = runner.invoke(
        cli,
        ["records", "verify", "--file", str(chain), "--checkpoint", str(kept), "--public-key", pk],
    )
    assert against_kept.exit_code == 1
    assert "Merkle root differs" in json.loads(against_kept.stdout)["checkpoint"]["reason"]
    append(client, 2)
    later = tmp_path / "later.txt"
    later.write_text(get_text(client, "/v1/audit/checkpoint"))
    later_size = parse_signed_note(later.read_text(), pk)[1]
    proof = get_json(client, "/v1/audit/proof/consistency", **{"from": size, "to": later_size})
    proof_file = tmp_path / "consistency.json"
    proof_file.write_text(json.dumps(proof))
    caught = runner.invoke(
        cli,
        [
            "records",
            "consistency",
            str(kept),
            str(later),
            "--public-key",
            pk,
            "--proof",
            str(proof_file),
        ],
    )
    assert caught.exit_code == 1 and not json.loads(caught.stdout)["ok"]
