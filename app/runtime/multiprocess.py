"""The multiprocess metrics folder of ``rationale serve`` and ``rationale worker``.

Each is a fresh folder under the temporary directory whose name carries the pid of the
process that made it, and is removed when that process ends. A process killed with SIGKILL
cannot remove its own, so every new one first removes the folders of this user whose
owner is gone. Kept free of ``prometheus_client``: the folder must exist before it is
imported."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "rationale-metrics-"
_NAME = re.compile(rf"^{PREFIX}(?:serve|worker)-(\d+)-")


def create(kind: str) -> str:
    """A fresh folder for this process (``kind``: serve or worker), after sweeping stale ones."""
    sweep()
    return tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-")


def sweep(root: str | None = None) -> list[str]:
    """Remove this user's metrics folders whose owning process no longer runs; their paths."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        match = _NAME.match(path.name)
        if match is None or not path.is_dir() or path.stat().st_uid != os.getuid():
            continue
        if not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process holds the pid
    return True
