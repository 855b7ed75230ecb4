"""Charts of the audits (matplotlib's object API, headless; no global pyplot state). Their
labels are in ``lang/<code>.yaml``, drawn with that language's fonts."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from app.reports.fonts import drawing

LANG_DIR = Path(__file__).resolve().parent / "lang"

INK = "#1a1a1a"
GREY = "#8c8c8c"


@cache
def labels(lang: str) -> dict[str, Any]:
    """The charts' labels in ``lang`` (English when there is no file for it)."""
    path = LANG_DIR / f"{lang}.yaml"
    loaded: dict[str, Any] = yaml.safe_load(
        (path if path.exists() else LANG_DIR / "en.yaml").read_text(encoding="utf-8")
    )
    return loaded


Draw = Callable[[dict[str, Any], str], Figure]


def _png(draw: Draw, figures: dict[str, Any], lang: str) -> bytes:
    """A chart drawn and saved under its language's fonts (texts take them when made)."""
    buffer = io.BytesIO()
    with drawing(lang):
        figure = draw(figures, lang)
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def impact_png(figures: dict[str, Any], lang: str = "en") -> bytes:
    """The impact chart as PNG bytes."""
    return _png(impact_figure, figures, lang)


def fairness_png(figures: dict[str, Any], lang: str = "en") -> bytes:
    """The fairness chart as PNG bytes."""
    return _png(fairness_figure, figures, lang)


def impact_figure(figures: dict[str, Any], lang: str = "en") -> Figure:
    """Decisions and favourable rate per bucket above; global importance below."""
    t = labels(lang)
    figure = Figure(figsize=(8, 7))
    top, bottom = figure.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.3]})
    buckets = figures["buckets"]
    starts = [b["start"] for b in buckets]
    top.bar(range(len(starts)), [b["decisions"] for b in buckets], color=GREY)
    top.set_xticks(range(len(starts)), starts, rotation=45, ha="right", fontsize=8)
    top.set_ylabel(t["decisions"])
    bucket = t["bucket"].get(figures["bucket"], figures["bucket"])
    top.set_title(
        t["decisions_per"].format(model=figures["model"], version=figures["version"], bucket=bucket)
    )
    rates = [b["favourable_rate"] for b in buckets]
    if any(r is not None for r in rates):
        rate_axis = top.twinx()
        rate_axis.plot(
            range(len(starts)), [r if r is not None else float("nan") for r in rates],
            color=INK, marker="o", linestyle="-",
        )  # fmt: skip
        rate_axis.set_ylim(0, 1)
        rate_axis.set_ylabel(t["share"].format(favourable=figures["favourable"]))
    importance = figures["importance"][:10][::-1]
    bottom.barh(
        [i["feature"] for i in importance],
        [i["mean_abs_contribution"] for i in importance],
        color=INK,
    )
    bottom.set_xlabel(t["importance_axis"])
    bottom.set_title(t["importance_title"])
    return figure


def fairness_figure(figures: dict[str, Any], lang: str = "en") -> Figure:
    """Favourable rate (or mean prediction) per reported group."""
    t = labels(lang)
    figure = Figure(figsize=(7, 3.5))
    axis = figure.subplots()
    groups = figures["groups"]
    regression = "mean_prediction_difference" in figures
    key = "mean_prediction" if regression else "favourable_rate"
    axis.bar([g["group"] for g in groups], [g[key] or 0.0 for g in groups], color=INK)
    for i, g in enumerate(groups):
        axis.annotate(f"n={g['count']}", (i, 0), xytext=(0, 3), textcoords="offset points",
                      ha="center", color="white", fontsize=8)  # fmt: skip
    axis.set_ylabel(
        t["mean_prediction"] if regression else t["share"].format(favourable=figures["favourable"])
    )
    axis.set_title(
        t["by_attribute"].format(
            model=figures["model"], version=figures["version"], attribute=figures["attribute"]
        )
    )
    axis.tick_params(axis="x", labelrotation=30)
    return figure
