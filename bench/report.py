"""Environment facts, markdown tables, and bench/results.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.data import ROOT

LIBRARIES = (
    "shap",
    "scikit-learn",
    "skops",
    "scipy",
    "numpy",
    "pandas",
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "orjson",
    "httpx",
)


@dataclass
class Section:
    name: str
    title: str
    markdown: str
    data: dict[str, Any] = field(default_factory=dict)


def table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in body]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment() -> dict[str, Any]:
    versions = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = "-"
    dirty = [line[3:] for line in _git("status", "--porcelain", "--", "app", "models").splitlines()]
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "ram": _ram_gib(),
        "kernel": platform.release(),
        "versions": versions,
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "dirty": dirty,
        "blas_env": {
            k: os.environ.get(k, "")
            for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE")
        },
    }


def render(env: dict[str, Any], sections: Sequence[Section], argv: str) -> str:
    v = env["versions"]
    lines = [
        "# Rationale benchmark results",
        "",
        f"Written by `python -m bench{(' ' + argv) if argv else ''}` "
        "(docs/operations/benchmarks.md). "
        "Re-run with `make bench`; every figure below comes from one run on one machine.",
        "",
        f"- date: {env['date']}",
        f"- machine: {env['nproc']} CPUs ({env['cpu']}), {env['ram']} RAM, Linux {env['kernel']}",
        f"- commit: `{env['commit']}`"
        + (
            f" plus uncommitted changes in {len(env['dirty'])} file(s) under app/ or models/ "
            "(the service was run from the working tree)"
            if env["dirty"]
            else ""
        ),
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "- threads: " + ", ".join(f"{k}={val or '(unset)'}" for k, val in env["blas_env"].items()),
        "",
    ]
    for section in sections:
        lines += [f"## {section.title}", "", section.markdown.rstrip(), ""]
    return "\n".join(lines)


def machine_sample() -> dict[str, float]:
    """CPU time of the whole machine (busy, total), of this bench and its reaped children."""
    busy = total = 0.0
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        total = sum(fields[:8]) / tick
        busy = total - (fields[3] + fields[4]) / tick  # idle + iowait
    except (OSError, ValueError, IndexError):
        pass
    own = sum(
        r.ru_utime + r.ru_stime
        for r in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"wall": time.monotonic(), "busy": busy, "total": total, "own": own, "load": load}


def contention_note(before: dict[str, float], after: dict[str, float]) -> str:
    """How busy the machine was with other work while the section ran."""
    wall = after["wall"] - before["wall"]
    if wall <= 0 or after["total"] <= before["total"]:
        return ""
    busy = (after["busy"] - before["busy"]) / wall
    own = (after["own"] - before["own"]) / wall
    other = max(0.0, busy - own)
    return (
        f"_Machine during this section ({wall:.0f} s): {busy:.2f} of {os.cpu_count()} cores "
        f"busy on average, about {other:.2f} cores of it by processes outside the bench; "
        f"load average {before['load']:.2f} → {after['load']:.2f}._"
    )
