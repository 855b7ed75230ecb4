"""The record log as a Merkle tree (RFC 9162 §2.1), and its stored complete subtrees.

Leaf ``i`` is ``SHA-256(0x00 || raw hash of the record with seq i+1)``; an interior node is
``SHA-256(0x01 || left || right)``. Every *complete, aligned* subtree — level ``k``,
index ``i``, covering leaves ``[i·2^k, (i+1)·2^k)`` — is stored in ``merkle_nodes`` in the
transaction that appends its last leaf. Any ``MTH(D[a:b])`` that RFC 9162's proofs ask
for is then composed from at most ⌈log2 n⌉ stored nodes, so a proof reads O(log² n) rows
by primary key in one query, never the log.

The pure half (hashing, ranges, proof building over a node lookup, verification) has no
database and is what the offline CLI uses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import Connection

Node = tuple[int, int]
"""(level, index) of a complete aligned subtree."""
Lookup = Callable[[int, int], bytes]


def leaf_hash(record_hash: str | bytes) -> bytes:
    """The leaf of a record: SHA-256(0x00 || its 32 raw hash bytes)."""
    raw = bytes.fromhex(record_hash) if isinstance(record_hash, str) else record_hash
    return hashlib.sha256(b"\x00" + raw).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH of the empty tree (RFC 9162 §2.1.1)."""


def _split(n: int) -> int:
    """The largest power of two smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# -- composing ranges from stored nodes -------------------------------------------------


def range_nodes(lo: int, hi: int) -> list[Node]:
    """The stored nodes whose hashes compose ``MTH(D[lo:hi])``, left to right.

    Valid for the ranges RFC 9162's recursions produce: ``lo`` is a multiple of the
    largest power of two not above ``hi - lo``."""
    nodes: list[Node] = []
    while lo < hi:
        size = hi - lo
        level = size.bit_length() - 1
        while lo % (1 << level):
            level -= 1
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def range_hash(lo: int, hi: int, lookup: Lookup) -> bytes:
    """``MTH(D[lo:hi])`` from stored complete subtrees: RFC 9162 splits at the largest
    power of two, which for such a range is exactly its left-to-right decomposition,
    combined right-associatively."""
    if hi <= lo:
        return EMPTY_ROOT
    hashes = [lookup(level, index) for level, index in range_nodes(lo, hi)]
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


def _inclusion(m: int, lo: int, hi: int, out: list[tuple[int, int]]) -> None:
    """RFC 9162 §2.1.3.1 PATH(m, D[lo:hi]) as a list of ranges (leaf first)."""
    n = hi - lo
    if n <= 1:
        return
    k = _split(n)
    if m < k:
        _inclusion(m, lo, lo + k, out)
        out.append((lo + k, hi))
    else:
        _inclusion(m - k, lo + k, hi, out)
        out.append((lo, lo + k))


def _consistency(m: int, lo: int, hi: int, complete: bool, out: list[tuple[int, int]]) -> None:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[lo:hi], b) as a list of ranges."""
    n = hi - lo
    if m == n:
        if not complete:
            out.append((lo, hi))
        return
    k = _split(n)
    if m <= k:
        _consistency(m, lo, lo + k, complete, out)
        out.append((lo + k, hi))
    else:
        _consistency(m - k, lo + k, hi, False, out)
        out.append((lo, lo + k))


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs make the inclusion proof of leaf ``index`` in ``size``."""
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")
    out: list[tuple[int, int]] = []
    _inclusion(index, 0, size, out)
    return out


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs make the consistency proof from ``old`` to ``new`` leaves."""
    if not 0 < old <= new:
        raise ValueError("consistency needs 0 < old ≤ new")
    out: list[tuple[int, int]] = []
    if old < new:
        _consistency(old, 0, new, True, out)
    return out


def needed_nodes(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    """Every stored node the ranges' hashes are composed from."""
    return {node for lo, hi in ranges for node in range_nodes(lo, hi)}


# -- verification (RFC 9162 §2.1.3.2, §2.1.4.2) -----------------------------------------


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2); ValueError if malformed."""
    if index >= size:
        raise ValueError("leaf index is not below the tree size")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf ``index`` in the tree of ``size`` with this root."""
    try:
        return root_from_inclusion(index, size, leaf, proof) == root
    except ValueError:
        return False


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree of ``new`` leaves extends that of ``old``
    (RFC 9162 §2.1.4.2)."""
    if old < 1 or old > new:
        return False
    if old == new:
        return not proof and old_root == new_root
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# -- the in-memory tree (offline, from an export) ----------------------------------------


class MemoryTree:
    """Complete subtrees of a list of leaves, kept as appended (what an export gives)."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            row = self.levels[level]
            parent = node_hash(row[-2], row[-1])
            if len(self.levels) == level + 1:
                self.levels.append([])
            self.levels[level + 1].append(parent)
            level += 1

    def lookup(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return range_hash(0, self.size if size is None else size, self.lookup)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return [range_hash(lo, hi, self.lookup) for lo, hi in inclusion_ranges(index, size)]

    def consistency(self, old: int, new: int) -> list[bytes]:
        return [range_hash(lo, hi, self.lookup) for lo, hi in consistency_ranges(old, new)]


# -- the stored tree ----------------------------------------------------------------------


def frontier_nodes(size: int) -> list[Node]:
    """The complete subtrees of ``D[0:size]`` the next append may combine with."""
    return [(level, (size >> level) - 1) for level in range(size.bit_length()) if size >> level & 1]


def extend(conn: Connection, size: int, record_hashes: Sequence[str]) -> None:
    """Store the nodes completed by appending records to a tree of ``size`` leaves, in
    the caller's transaction (the one appending the records)."""
    if not record_hashes:
        return
    frontier = fetch(conn, frontier_nodes(size))
    carry = {level: frontier[(level, index)] for level, index in frontier_nodes(size)}
    rows: list[tuple[int, int, bytes]] = []
    position = size
    for record_hash in record_hashes:
        current = leaf_hash(record_hash)
        level, index = 0, position
        rows.append((0, index, current))
        while index & 1:
            current = node_hash(carry.pop(level), current)
            level += 1
            index >>= 1
            rows.append((level, index, current))
        carry[level] = current
        position += 1
    # Straight to the driver's executemany: SQLAlchemy's per-row parameter processing
    # cost ~100 µs a row here, more than the insert itself.
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(
        f"INSERT INTO merkle_nodes (level, idx, hash) VALUES ({mark}, {mark}, {mark})", rows
    )


def fetch(conn: Connection, nodes: Iterable[Node]) -> dict[Node, bytes]:
    """Stored node hashes by (level, index), in one query per 500; KeyError if missing."""
    wanted = sorted(set(nodes))
    found: dict[Node, bytes] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        by_level: dict[int, list[int]] = {}
        for level, index in chunk:
            by_level.setdefault(level, []).append(index)
        # One primary-key probe per (level, index): a row-value IN is a table scan in
        # SQLite. The SQL is built from integers only (no user text), and directly:
        # composing SQLAlchemy expressions of varying shape costs more than the query.
        where = " OR ".join(
            f"(level = {int(level)} AND idx IN ({', '.join(str(int(i)) for i in indexes)}))"
            for level, indexes in by_level.items()
        )
        query = f"SELECT level, idx, hash FROM merkle_nodes WHERE {where}"
        for row in conn.exec_driver_sql(query):
            found[(int(row.level), int(row.idx))] = bytes(row.hash)
    missing = set(wanted) - found.keys()
    if missing:
        raise KeyError(f"merkle nodes missing from the store: {sorted(missing)[:4]}")
    return found


def hashes_for(conn: Connection, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """MTH of each range, read from the stored nodes in one round."""
    stored = fetch(conn, needed_nodes(ranges))
    return [range_hash(lo, hi, lambda level, index: stored[(level, index)]) for lo, hi in ranges]


def root(conn: Connection, size: int) -> bytes:
    """The root of the tree of the first ``size`` records."""
    if size == 0:
        return EMPTY_ROOT
    return hashes_for(conn, [(0, size)])[0]
