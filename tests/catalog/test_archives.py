"""Zip archives checked before skops reads them (docs/models.md#safe-archives), over real
hostile zips: unsafe member names, links, duplicates, a bomb by its directory's word, and a
bomb whose directory lies, stopped while inflating in bounded memory."""

from __future__ import annotations

import io
import re
import shutil
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import pytest

from app.catalog.archive import ArchiveRefused, ZipLimits, check_zip
from app.catalog.loader import DEFAULT_LIMITS
from tests.catalog.conftest import SKOPS
from tests.catalog.zips import MIB, rename, symlink, understate, with_members
from tests.helpers import MODELS

LIMITS = ZipLimits(max_inflated_bytes=4_000_000, max_ratio=100)


def _bytes(data: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data))


@pytest.mark.parametrize("model", ["credit-risk", "income", "recidivism"])
def test_the_demo_artifacts_pass(model: str) -> None:
    path = MODELS / model / "1" / "model.skops"
    check_zip(path, DEFAULT_LIMITS)
    check_zip(path.read_bytes(), DEFAULT_LIMITS)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../../../tmp/x", "has a '..' part"),
        ("/tmp/x", "is an absolute path"),
        ("..\\..\\tmp\\x", "holds a backslash"),
        ("C:/Windows/x", "starts with a drive letter"),
        ("x.npy:stream", "holds a colon"),
        ("a/../../x", "has a '..' part"),
        ("a//x", "has an empty or '.' path part"),
        ("./x", "has an empty or '.' path part"),
        ("x\ny", "holds a control character"),
    ],
)
def test_unsafe_member_names_are_refused(name: str, why: str) -> None:
    data = with_members(SKOPS, [(name, b"payload")])
    assert name in _bytes(data).namelist()  # zipfile reads it as written
    with pytest.raises(ArchiveRefused, match=re.escape(why)):
        check_zip(data, LIMITS)


def test_a_nul_in_a_member_name_is_refused() -> None:
    data = rename(with_members(SKOPS, [("schemaXjson", b"{}")]), "schemaXjson", b"schema\0json")
    # zipfile shows the name cut at the NUL; the stored name is what unzip tools write.
    assert "schema" in _bytes(data).namelist()
    with pytest.raises(ArchiveRefused, match="holds a NUL character"):
        check_zip(data, LIMITS)


def test_links_and_duplicates_are_refused() -> None:
    with pytest.raises(ArchiveRefused, match="'evil' is a symbolic link"):
        check_zip(with_members(SKOPS, [(symlink("evil", "/etc/passwd"), b"/etc/passwd")]), LIMITS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate it writes
        twice = with_members(SKOPS, [("schema.json", b'{"__class__": "dict"}')])
    with pytest.raises(ArchiveRefused, match=re.escape("'schema.json' appears twice")):
        check_zip(twice, LIMITS)


def test_a_bomb_is_refused_by_its_directory(bomb_zip: Path) -> None:
    size = bomb_zip.stat().st_size
    declared = sum(i.file_size for i in zipfile.ZipFile(bomb_zip).infolist())
    assert 600_000 < size < 700_000 and declared > 200 * MIB  # a 655 KB zip of 200 MiB
    with pytest.raises(ArchiveRefused, match=f"declares {declared} bytes once inflated"):
        check_zip(bomb_zip, LIMITS)
    # Under the service's default limits (256 MiB), the ratio refuses it.
    with pytest.raises(ArchiveRefused, match=r"inflates to 3[0-9]{2} times its own"):
        check_zip(bomb_zip, DEFAULT_LIMITS)


def test_a_small_bomb_is_refused_by_its_ratio() -> None:
    data = with_members(SKOPS, [("padding.npy", bytes(2 * MIB))])
    assert sum(i.file_size for i in _bytes(data).infolist()) < LIMITS.max_inflated_bytes
    with pytest.raises(ArchiveRefused, match=r"times its own .* limit of 100"):
        check_zip(data, LIMITS)
    check_zip(data, ZipLimits(max_inflated_bytes=4_000_000, max_ratio=1000))


def test_a_lying_directory_is_caught_while_inflating_in_bounded_memory(
    bomb_zip: Path, tmp_path: Path
) -> None:
    liar = tmp_path / "model.skops"
    shutil.copy(bomb_zip, liar)
    understate(liar, "padding.npy", 1000)
    assert zipfile.ZipFile(liar).getinfo("padding.npy").file_size == 1000
    tracemalloc.start()
    try:
        with pytest.raises(
            ArchiveRefused, match=re.escape("'padding.npy' inflates past the 1000 bytes")
        ):
            check_zip(liar, DEFAULT_LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, peak  # stopped within a chunk, not after 200 MiB


def test_damaged_archives_are_refused_in_words() -> None:
    data = SKOPS.read_bytes()
    with pytest.raises(ArchiveRefused, match=r"^is not a zip archive$"):
        check_zip(b"not a zip archive at all", LIMITS)
    with pytest.raises(ArchiveRefused, match=r"^is not a zip archive$"):
        check_zip(data[: len(data) // 2], LIMITS)
    # A member's data changed after its checksum was written.
    first = _bytes(data).infolist()[0]
    at = first.header_offset + 30 + len(first.orig_filename) + len(first.extra) + 10
    flipped = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    with pytest.raises(ArchiveRefused, match=re.escape(f"member '{first.filename}' is damaged")):
        check_zip(flipped, LIMITS)
