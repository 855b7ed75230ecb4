"""Zip archives checked before anything reads them (docs/models.md#safe-archives): safe member
names, plain files only, and a bounded inflated size and ratio, measured from the central
directory and again by inflating every member with a hard stop.

A skops artifact is a zip archive; so is any other part a manifest may name that is one. The
check takes a file's path or bytes and raises ``ArchiveRefused`` with the reason in words."""

from __future__ import annotations

import copy
import io
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CHUNK_BYTES = 1 << 20
"""Inflated bytes read at a time: the most the check holds in memory per member."""

_DRIVE = re.compile(r"^[A-Za-z]:")
_READABLE_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}


class ArchiveRefused(Exception):
    """A zip archive that must not be read, with the reason in words."""


@dataclass(frozen=True)
class ZipLimits:
    """How far an archive may inflate: in total bytes, and as a multiple of its own size."""

    max_inflated_bytes: int
    max_ratio: float


def unsafe_name(raw: str) -> str | None:
    """Why a member name could not be written safely under a folder (None when it can):
    absolute, a drive letter, a backslash, a NUL or other control character, a ``..``, ``.``
    or empty path part."""
    if not raw:
        return "is empty"
    if "\x00" in raw:
        return "holds a NUL character"
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        return "holds a control character"
    if "\\" in raw:
        return "holds a backslash"
    if raw.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(raw):
        return "starts with a drive letter"
    if ":" in raw:
        return "holds a colon (a Windows drive or stream separator)"
    parts = raw[:-1].split("/") if raw.endswith("/") else raw.split("/")
    if ".." in parts:
        return "has a '..' part that climbs out of the folder"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' path part"
    return None


def _kind(info: zipfile.ZipInfo) -> str | None:
    """Why a member is not a plain file or folder (None when it is)."""
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind in (0, stat.S_IFREG, stat.S_IFDIR):
        return None
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    return "is a special file (a device, pipe or socket)"


def _open(source: Path | bytes) -> tuple[zipfile.ZipFile, int]:
    """The archive, and its size in bytes."""
    handle: IO[bytes] | Path = io.BytesIO(source) if isinstance(source, bytes) else source
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    try:
        return zipfile.ZipFile(handle), size
    except zipfile.BadZipFile:
        raise ArchiveRefused("is not a zip archive") from None
    except (OSError, ValueError, EOFError, NotImplementedError, OverflowError):
        raise ArchiveRefused("is a damaged zip archive (its directory cannot be read)") from None


def _check_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Every member's name and kind, from the central directory; the file members."""
    seen: set[str] = set()
    files = []
    for info in archive.infolist():
        # ``orig_filename`` is the name as stored; ``filename`` is cut at a NUL.
        shown = info.orig_filename.encode("unicode_escape").decode("ascii")[:120]
        why = unsafe_name(info.orig_filename) or _kind(info)
        if why is None and info.filename in seen:
            why = "appears twice"
        if why is None and info.flag_bits & 0x1:
            why = "is encrypted"
        if why is None and info.compress_type not in _READABLE_METHODS:
            why = f"uses compression method {info.compress_type}, which is not read here"
        if why is not None:
            raise ArchiveRefused(f"member {shown!r} {why}")
        seen.add(info.filename)
        if not info.is_dir():
            files.append(info)
    return files


def _check_declared(files: list[zipfile.ZipInfo], size: int, limits: ZipLimits) -> None:
    """The sizes the central directory declares, against the limits."""
    declared = sum(i.file_size for i in files)
    if declared > limits.max_inflated_bytes:
        raise ArchiveRefused(
            f"declares {declared} bytes once inflated, more than the limit of "
            f"{limits.max_inflated_bytes} (RATIONALE_MAX_ARTIFACT_INFLATED_BYTES)"
        )
    if declared > limits.max_ratio * max(size, 1):
        raise ArchiveRefused(
            f"inflates to {declared / max(size, 1):.0f} times its own {size} bytes, more than "
            f"the limit of {limits.max_ratio:g} (RATIONALE_MAX_ARTIFACT_COMPRESSION_RATIO)"
        )


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Inflate one member in chunks, stopping as soon as it passes its declared size."""
    shown = info.filename[:120]
    # Read as if the member were two chunks longer than declared: zipfile then inflates the
    # stream as it really is instead of cutting it at the declared size, and the chunk that
    # passes the declared size is seen here before zipfile would stop on its own.
    probe = copy.copy(info)
    probe.file_size = info.file_size + 2 * CHUNK_BYTES
    inflated = 0
    try:
        with archive.open(probe) as member:
            while chunk := member.read(CHUNK_BYTES):
                inflated += len(chunk)
                if inflated > info.file_size:
                    raise ArchiveRefused(
                        f"member {shown!r} inflates past the {info.file_size} bytes the "
                        "archive's directory declares for it"
                    )
    except ArchiveRefused:
        raise
    except zipfile.BadZipFile as exc:
        what = "its checksum does not match" if "CRC" in str(exc) else "its entry is inconsistent"
        raise ArchiveRefused(f"member {shown!r} is damaged ({what})") from None
    except Exception:  # zlib, bz2 and lzma errors, a stream cut short
        raise ArchiveRefused(f"member {shown!r} is damaged (it cannot be inflated)") from None
    if inflated != info.file_size:
        raise ArchiveRefused(
            f"member {shown!r} inflates to {inflated} bytes, not the {info.file_size} the "
            "archive's directory declares"
        )


def check_zip(source: Path | bytes, limits: ZipLimits) -> None:
    """Refuse (``ArchiveRefused``) a zip archive that is unsafe to read: an unsafe member
    name, a link or special file, a duplicate or encrypted member, or more inflated bytes or
    a higher ratio than ``limits`` allow, by its directory's word or by inflating it."""
    archive, size = _open(source)
    with archive:
        files = _check_members(archive)
        _check_declared(files, size, limits)
        # Every member's true size is now known not to exceed its declared one, so the
        # declared total (checked above) bounds what was inflated.
        for info in files:
            _inflate(archive, info)
