"""Fonts installed from the package registry: DejaVu Sans (ships with matplotlib) for Latin
text, IPAex Gothic (ships with matplotlib-fontja) for Japanese. Used by charts and PDFs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib_fontja import get_font_ttf_path

_lock = threading.Lock()
_registered = False
_drawing = threading.Lock()
"""matplotlib's rc settings are process-wide: one chart at a time draws under its fonts."""

JAPANESE_FAMILY = "IPAexGothic"
LATIN_FAMILY = "DejaVu Sans"


def japanese_ttf() -> Path:
    """The IPAex Gothic TrueType file."""
    return Path(get_font_ttf_path())


def latin_ttf(bold: bool = False) -> Path:
    """DejaVu Sans (regular or bold) from matplotlib's own data."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


def families(lang: str) -> list[str]:
    """Font families for matplotlib, first choice first (glyphs fall back along the list)."""
    register()
    if lang == "ja":
        return [JAPANESE_FAMILY, LATIN_FAMILY]
    return [LATIN_FAMILY, JAPANESE_FAMILY]


@contextmanager
def drawing(lang: str) -> Iterator[None]:
    """Draw one chart under ``lang``'s fonts; every chart of the process takes turns here
    (texts take the rc fonts when made, so two charts must not set them at once)."""
    with _drawing, matplotlib.rc_context({"font.family": families(lang)}):
        yield


def register() -> None:
    """Make IPAex Gothic known to matplotlib (once per process)."""
    global _registered
    if _registered:
        return
    with _lock:
        if not _registered:
            font_manager.fontManager.addfont(str(japanese_ttf()))
            _registered = True
