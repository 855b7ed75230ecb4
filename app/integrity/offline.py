"""Offline checks of the log with only the public key
(docs/proofs.md#offline-with-only-the-verifier-key): a chain export against a signed checkpoint, an
inclusion proof, a consistency proof between checkpoints. No database, no service; what ``rationale
records …`` runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.integrity.signing import Checkpoint, NoteError, Verifier, open_checkpoint
from app.ledger import merkle
from app.ledger.chain import digest


def read_verifier(value: str) -> Verifier:
    """A verifier key given as a file holding it, or as the key text itself."""
    path = Path(value)
    text = path.read_text() if path.is_file() else value
    return Verifier.parse(text)


def read_checkpoint(path: Path, verifier: Verifier) -> Checkpoint:
    """A signed checkpoint file, verified with the key; NoteError when it does not verify."""
    return open_checkpoint(path.read_text(), verifier)


def chain_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a chain export: each line is a stored document, hashed as it stands."""
    with path.open("rb") as handle:
        for line in handle:
            document = line.rstrip(b"\n")
            if document:
                yield {"document": document, "hash": digest(document)}


def tree_of(rows: Iterator[dict[str, Any]]) -> tuple[list[dict[str, Any]], merkle.MemoryTree]:
    """The rows (kept) and the Merkle tree of their hashes."""
    kept = []
    tree = merkle.MemoryTree()
    for row in rows:
        kept.append(row)
        tree.append(merkle.leaf_hash(row["hash"]))
    return kept, tree


def check_export(tree: merkle.MemoryTree, checkpoint: Checkpoint) -> dict[str, Any]:
    """Whether the export's first ``tree_size`` records have the checkpoint's root."""
    result: dict[str, Any] = {"tree_size": checkpoint.size, "records_in_file": tree.size}
    if checkpoint.size > tree.size:
        return result | {
            "ok": False,
            "reason": "the export holds fewer records than the checkpoint",
        }
    matches = tree.root(checkpoint.size) == checkpoint.root
    reason = None if matches else "the export's Merkle root differs from the checkpoint's"
    return result | {"ok": matches, "reason": reason}


def _hashes(items: Any, field: str) -> list[bytes]:
    if not isinstance(items, list) or not all(isinstance(h, str) for h in items):
        raise ValueError(f"{field} is a list of hex hashes")
    try:
        out = [bytes.fromhex(h) for h in items]
    except ValueError:
        raise ValueError(f"{field} holds a hash that is not hex") from None
    if any(len(h) != 32 for h in out):
        raise ValueError(f"{field} holds a hash that is not 32 bytes")
    return out


def check_inclusion(
    proof: dict[str, Any], checkpoint: Checkpoint, record_hash: str | None
) -> dict[str, Any]:
    """Verify an inclusion proof (as ``GET /v1/audit/proof/inclusion`` answers it) against a
    checkpoint of the same tree size, for the record hash the auditor holds."""
    index, size = proof.get("leaf_index"), proof.get("tree_size")
    if not isinstance(index, int) or not isinstance(size, int):
        raise ValueError("the proof has no integer leaf_index and tree_size")
    wanted = record_hash or proof.get("record_hash")
    if not isinstance(wanted, str) or len(wanted) != 64:
        raise ValueError("no record hash: pass --record-hash")
    result: dict[str, Any] = {"leaf_index": index, "tree_size": size, "record_hash": wanted}
    if size != checkpoint.size:
        return result | {"ok": False, "reason": "the proof's tree size is not the checkpoint's"}
    ok = merkle.verify_inclusion(
        index,
        size,
        merkle.leaf_hash(wanted),
        _hashes(proof.get("hashes"), "hashes"),
        checkpoint.root,
    )
    return result | {"ok": ok, "reason": None if ok else "the proof does not lead to the root"}


def check_consistency(old: Checkpoint, new: Checkpoint, hashes: list[bytes]) -> dict[str, Any]:
    """Whether the newer checkpoint's tree extends the older one's."""
    result: dict[str, Any] = {"from": old.size, "to": new.size}
    if old.origin != new.origin:
        return result | {"ok": False, "reason": "the checkpoints are of different logs"}
    if old.size == 0:
        return result | {"ok": True, "reason": None}
    ok = merkle.verify_consistency(old.size, new.size, old.root, new.root, hashes)
    return result | {"ok": ok, "reason": None if ok else "the newer tree does not extend the older"}


def consistency_hashes(proof_file: Path, old: Checkpoint, new: Checkpoint) -> list[bytes]:
    """The hashes of a consistency proof file (as ``GET /v1/audit/proof/consistency``
    answers it) for exactly these two sizes."""
    proof = json.loads(proof_file.read_text())
    if proof.get("from") != old.size or proof.get("to") != new.size:
        raise ValueError("the proof is not between the two checkpoints' sizes")
    return _hashes(proof.get("hashes"), "hashes")


__all__ = [
    "NoteError",
    "chain_rows",
    "check_consistency",
    "check_export",
    "check_inclusion",
    "consistency_hashes",
    "read_checkpoint",
    "read_verifier",
    "tree_of",
]
