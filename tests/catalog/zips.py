"""Hostile zip archives built for real with ``zipfile``: a real skops artifact's members plus
members a hostile client adds (unsafe names, links, bombs), or a directory that lies."""

from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path

import numpy as np

MIB = 1 << 20


def with_members(skops: Path, extra: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    """A real skops artifact's members, deflated, then ``extra`` members."""
    target = Path(f"{skops}.rebuilt")
    with (
        zipfile.ZipFile(skops) as source,
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for info in source.infolist():
            out.writestr(info, source.read(info))
        for member, data in extra:
            out.writestr(member, data)
    data = target.read_bytes()
    target.unlink()
    return data


def symlink(name: str, points_to: str) -> zipfile.ZipInfo:
    """A member that unzip would create as a symbolic link (Unix mode in the external
    attributes)."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def rename(data: bytes, old: str, new: bytes) -> bytes:
    """Rewrite a member's stored name (same length) in its local header and the central
    directory, for names ``zipfile`` will not write (it cuts them at a NUL)."""
    assert len(old.encode()) == len(new)
    patched = bytearray(data)
    for signature, name_at in ((b"PK\x03\x04", 30), (b"PK\x01\x02", 46)):
        start = 0
        while (at := patched.find(signature, start)) >= 0:
            if patched[at + name_at : at + name_at + len(new)] == old.encode():
                patched[at + name_at : at + name_at + len(new)] = new
            start = at + 4
    return bytes(patched)


def understate(path: Path, name: str, declared: int) -> None:
    """Make the archive's central directory (and local header) declare ``declared`` bytes
    for member ``name`` once inflated, whatever it really inflates to."""
    patched = bytearray(path.read_bytes())
    for signature, size_at, length_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        start = 0
        while (at := patched.find(signature, start)) >= 0:
            (length,) = struct.unpack_from("<H", patched, at + length_at)
            if bytes(patched[at + name_at : at + name_at + length]) == name.encode():
                struct.pack_into("<I", patched, at + size_at, declared)
            start = at + 4
    path.write_bytes(bytes(patched))


def bomb(skops: Path, target: Path, inflated_mib: int = 200, noise: int = 2000) -> Path:
    """A real skops artifact plus one member inflating to ``inflated_mib`` MiB: zeros with
    ``noise`` random bytes per MiB, so the archive stays a few hundred KB (655 KB for 200
    MiB)."""
    rng = np.random.default_rng(32)
    with (
        zipfile.ZipFile(skops) as source,
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for info in source.infolist():
            out.writestr(info, source.read(info))
        with out.open("padding.npy", "w") as member:
            for _ in range(inflated_mib):
                block = bytearray(MIB)
                block[:noise] = rng.bytes(noise)
                member.write(block)
    return target
