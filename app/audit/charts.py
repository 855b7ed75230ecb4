"""Charts of the audits (matplotlib's object API, headless; no global pyplot state)."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.figure import Figure

INK = "#1a1a1a"
GREY = "#8c8c8c"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def impact_png(figures: dict[str, Any]) -> bytes:
    """Decisions and favourable rate per bucket above; global importance below."""
    figure = Figure(figsize=(8, 7))
    top, bottom = figure.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.3]})
    buckets = figures["buckets"]
    starts = [b["start"] for b in buckets]
    top.bar(range(len(starts)), [b["decisions"] for b in buckets], color=GREY)
    top.set_xticks(range(len(starts)), starts, rotation=45, ha="right", fontsize=8)
    top.set_ylabel("decisions")
    top.set_title(f"{figures['model']} {figures['version']}: decisions per {figures['bucket']}")
    rates = [b["favourable_rate"] for b in buckets]
    if any(r is not None for r in rates):
        rate_axis = top.twinx()
        rate_axis.plot(
            range(len(starts)), [r if r is not None else float("nan") for r in rates],
            color=INK, marker="o", linestyle="-",
        )  # fmt: skip
        rate_axis.set_ylim(0, 1)
        rate_axis.set_ylabel(f"share '{figures['favourable']}'")
    importance = figures["importance"][:10][::-1]
    bottom.barh(
        [i["feature"] for i in importance],
        [i["mean_abs_contribution"] for i in importance],
        color=INK,
    )
    bottom.set_xlabel("mean |contribution| toward the favourable outcome")
    bottom.set_title("what weighs most in the decisions")
    figure.tight_layout()
    return _png(figure)


def fairness_png(figures: dict[str, Any]) -> bytes:
    """Favourable rate (or mean prediction) per reported group."""
    figure = Figure(figsize=(7, 3.5))
    axis = figure.subplots()
    groups = figures["groups"]
    regression = "mean_prediction_difference" in figures
    key = "mean_prediction" if regression else "favourable_rate"
    axis.bar([g["group"] for g in groups], [g[key] or 0.0 for g in groups], color=INK)
    for i, g in enumerate(groups):
        axis.annotate(f"n={g['count']}", (i, 0), xytext=(0, 3), textcoords="offset points",
                      ha="center", color="white", fontsize=8)  # fmt: skip
    axis.set_ylabel("mean prediction" if regression else f"share '{figures['favourable']}'")
    axis.set_title(f"{figures['model']} {figures['version']} by {figures['attribute']}")
    axis.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    return _png(figure)
