"""A server or worker killed with SIGKILL cannot remove its metrics folder: the next one to
start removes the folders whose owning process is gone, and only those."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.runtime import multiprocess as metrics_folder
from tests.helpers import Server


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_sweep_removes_only_folders_of_processes_that_are_gone(tmp_path: Path) -> None:
    dead = tmp_path / f"{metrics_folder.PREFIX}worker-{_dead_pid()}-abc"
    mine = tmp_path / f"{metrics_folder.PREFIX}serve-{os.getpid()}-def"
    foreign = tmp_path / f"{metrics_folder.PREFIX}other-{_dead_pid()}-ghi"
    for folder in (dead, mine, foreign):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")
    assert metrics_folder.sweep(str(tmp_path)) == [str(dead)]
    assert not dead.exists() and mine.exists() and foreign.exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_servers_folder_is_removed_by_the_next_start(tmp_path: Path, workers: int) -> None:
    root = tmp_path / "tmp"
    root.mkdir()
    url = f"sqlite:///{tmp_path / 'rationale.db'}"
    first = Server(url, tmp_path, workers, TMPDIR=str(root)).start()
    try:
        leaked = sorted(root.glob(f"{metrics_folder.PREFIX}serve-*"))
        assert len(leaked) == 1, leaked
    finally:
        first.kill()
    assert leaked[0].exists()  # SIGKILL: nothing removed it

    second = Server(url, tmp_path, workers, TMPDIR=str(root)).start()
    try:
        now = sorted(root.glob(f"{metrics_folder.PREFIX}serve-*"))
        assert len(now) == 1 and now != leaked, (leaked, now)
    finally:
        second.stop()
    assert list(root.glob(f"{metrics_folder.PREFIX}*")) == []  # a clean stop removes its own
