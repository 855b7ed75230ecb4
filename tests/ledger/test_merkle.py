"""Merkle proofs of the record log against an independent RFC 9162 implementation.

The reference below is written from RFC 9162 §2.1's definitions (MTH, PATH, SUBPROOF) and
its verification pseudocode (§2.1.3.2, §2.1.4.2), sharing no code with ``app.ledger.merkle``.
The proofs under test are read from the stored subtree table of a real database, on both
backends."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select

from app.integrity.repository import ProofStore
from app.ledger import merkle
from app.ledger.repository import Repository
from app.ledger.tables import merkle_nodes, records
from tests.ledger.support import BACKENDS, explanation_draft, migrated_engine

# -- the reference (RFC 9162 §2.1) -----------------------------------------------------


def ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Reference:
    """MTH / PATH / PROOF over a list of entries, by the RFC's recursive definitions."""

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = entries
        self.mth = lru_cache(maxsize=None)(self._mth)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return ref_leaf(self.entries[lo])
        k = largest_power_of_two_below(n)
        return ref_node(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = largest_power_of_two_below(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        return self.subproof(m, 0, n, True)


def ref_verify_inclusion(
    leaf_index: int, tree_size: int, entry_hash: bytes, path: list[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    if leaf_index >= tree_size:
        return False
    fn, sn, r = leaf_index, tree_size - 1, entry_hash
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = ref_node(p, r)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        else:
            r = ref_node(r, p)
        fn //= 2
        sn //= 2
    return sn == 0 and r == root


def ref_verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, step by step (first < second)."""
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_hash, *path]
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn //= 2
        sn //= 2
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = ref_node(c, fr)
            sr = ref_node(c, sr)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        else:
            sr = ref_node(sr, c)
        fn //= 2
        sn //= 2
    return sn == 0 and fr == first_hash and sr == second_hash


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path_factory.mktemp("merkle")) as built:
        yield built


def _stored_tree(engine: Engine, hashes: list[str]) -> None:
    """Store the subtrees of these leaves as appends would, in uneven batches."""
    with engine.begin() as conn:
        conn.execute(delete(merkle_nodes))
    rng = random.Random(7)
    size = 0
    while size < len(hashes):
        step = rng.choice((1, 2, 3, 7, 64, 500))
        with engine.begin() as conn:
            merkle.extend(conn, size, hashes[size : size + step])
        size = min(size + step, len(hashes))


# -- tests -----------------------------------------------------------------------------


def test_every_proof_of_trees_up_to_64_records(engine: Engine) -> None:
    """Real records appended through the repository (group commits of uneven sizes): the
    stored tree's root is MTH of the records' hashes at every size, and every inclusion
    and consistency proof equals the RFC's and verifies with the RFC's pseudocode."""
    repository = Repository(engine)
    with engine.begin() as conn:
        conn.execute(delete(merkle_nodes))
        conn.execute(delete(records))
    appended = 0
    for group in (1, 1, 2, 5, 8, 3, 16, 1, 27):
        repository.append([(explanation_draft(appended + i), None) for i in range(group)])
        appended += group
    assert appended == 64
    rows = list(repository.iter_rows())
    entries = [bytes.fromhex(row["hash"]) for row in rows]
    ref = Reference(entries)
    store = ProofStore(repository)
    for n in range(1, 65):
        root = store.root(n)
        assert root == ref.mth(0, n)
        for m in range(n):
            proof = store.inclusion(m, n)
            assert proof == ref.path(m, 0, n)
            assert ref_verify_inclusion(m, n, ref_leaf(entries[m]), proof, root)
            assert merkle.verify_inclusion(m, n, merkle.leaf_hash(rows[m]["hash"]), proof, root)
        for m in range(1, n):
            proof = store.consistency(m, n)
            assert proof == ref.proof(m, n)
            assert ref_verify_consistency(m, n, ref.mth(0, m), root, proof)
            assert merkle.verify_consistency(m, n, ref.mth(0, m), root, proof)
    assert store.consistency(64, 64) == []


def test_random_proofs_up_to_10000_leaves(engine: Engine) -> None:
    """A few thousand random proofs over a stored tree of 10,000 leaves (computed in
    process, stored by ``extend`` in uneven batches)."""
    count = 10_000
    entries = [os.urandom(32) for _ in range(count)]
    _stored_tree(engine, [e.hex() for e in entries])
    ref = Reference(entries)
    rng = random.Random(2026)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(merkle_nodes)).scalar_one()
        assert stored == 2 * count - bin(count).count("1")  # every complete subtree, once
        for _ in range(1000):
            n = rng.randint(1, count)
            m = rng.randrange(n)
            proof = merkle.hashes_for(conn, merkle.inclusion_ranges(m, n))
            root = merkle.root(conn, n)
            assert proof == ref.path(m, 0, n)
            assert ref_verify_inclusion(m, n, ref_leaf(entries[m]), proof, root)
            # A proof for a neighbouring leaf does not verify this one.
            if n > 1:
                other = (m + 1) % n
                assert not ref_verify_inclusion(other, n, ref_leaf(entries[m]), proof, root)
        for _ in range(1000):
            n = rng.randint(2, count)
            m = rng.randint(1, n - 1)
            proof = merkle.hashes_for(conn, merkle.consistency_ranges(m, n))
            assert proof == ref.proof(m, n)
            new_root = merkle.root(conn, n)
            assert ref_verify_consistency(m, n, ref.mth(0, m), new_root, proof)
            assert merkle.verify_consistency(m, n, ref.mth(0, m), new_root, proof)
            # Another old root (one leaf different) is not extended by the new tree.
            forged = ref_node(ref.mth(0, m), b"\x00" * 32)
            assert not merkle.verify_consistency(m, n, forged, new_root, proof)


def test_proof_reads_a_logarithmic_number_of_nodes() -> None:
    """Serving a proof touches O(log² n) stored subtrees, never the log."""
    for n in (1_000, 1_000_000, 1_000_003, 2**40 - 1):
        worst_inclusion = max(
            len(merkle.needed_nodes(merkle.inclusion_ranges(m, n))) for m in (0, n // 3, n - 1)
        )
        worst_consistency = max(
            len(merkle.needed_nodes(merkle.consistency_ranges(m, n))) for m in (1, n // 3, n - 1)
        )
        bound = n.bit_length() ** 2
        assert worst_inclusion <= bound and worst_consistency <= bound


def test_memory_tree_matches_the_reference(tmp_path: Path) -> None:
    """The offline tree (built from an export) agrees with the reference too."""
    entries = [os.urandom(32) for _ in range(300)]
    ref = Reference(entries)
    tree = merkle.MemoryTree()
    for entry in entries:
        tree.append(merkle.leaf_hash(entry))
    for n in (1, 2, 3, 64, 255, 256, 257, 300):
        assert tree.root(n) == ref.mth(0, n)
        assert tree.inclusion(n - 1, n) == ref.path(n - 1, 0, n)
        if n > 1:
            assert tree.consistency(n // 2, n) == ref.proof(n // 2, n)


def test_the_migration_builds_the_tree_of_records_stored_before_it(engine: Engine) -> None:
    """Records stored before revision 0003 get their tree when it runs."""
    from alembic import command

    from app.ledger.migrate import alembic_config

    repository = Repository(engine)
    with engine.begin() as conn:
        conn.execute(delete(merkle_nodes))
        conn.execute(delete(records))
    repository.append([(explanation_draft(i), None) for i in range(37)])
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    entries = [bytes.fromhex(row["hash"]) for row in repository.iter_rows()]
    assert len(entries) == 37
    assert ProofStore(repository).root(37) == Reference(entries).mth(0, 37)
