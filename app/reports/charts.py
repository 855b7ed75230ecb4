"""The waterfall chart of one explanation: from the usual level (the base value) through
the largest contributions to the person's result, each bar labelled with the detail's name
and the person's value. Black-and-white safe: bars against the favourable outcome are
hatched, bars for it plain grey, and every bar carries its signed size."""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from app.reports.fonts import drawing
from app.reports.reasons import toward_favourable
from app.reports.wording import Phrases

TOP = 8
"""Details drawn one by one; the rest are summed into one bar."""


@dataclass(frozen=True)
class Step:
    label: str
    start: float
    size: float
    against: bool


def _scale(view: dict[str, Any], phrases: Phrases) -> tuple[float, float, str, float]:
    """(sign, scale, axis title, offset): contributions are drawn toward the favourable
    outcome where the output space allows (probability of a binary classifier), in %."""
    manifest = phrases.manifest
    explanation = view["explanation"]
    classes = manifest.classes or []
    explained = explanation.get("explained_class")
    if manifest.task == "classification" and explanation.get("output") == "probability":
        if len(classes) == 2 and explained != manifest.favorable:
            title = phrases.lang.text("chart.axis_probability", outcome=phrases.goal())
            return -1.0, 100.0, title, 100.0
        goal = phrases.goal() if explained == manifest.favorable else phrases.outcome(explained)
        title = phrases.lang.text("chart.axis_probability", outcome=goal)
        return 1.0, 100.0, title, 0.0
    return 1.0, 1.0, phrases.lang.text("chart.axis_value"), 0.0


def steps(view: dict[str, Any], phrases: Phrases, top: int = TOP) -> tuple[list[Step], str]:
    """The bars of the waterfall, top to bottom, and the axis title."""
    manifest = phrases.manifest
    explanation = view["explanation"]
    sign, scale, title, offset = _scale(view, phrases)
    favourable_sign = toward_favourable(manifest, explanation.get("explained_class"))
    features = {f.name: f for f in manifest.features}
    items = sorted(
        explanation["attributions"],
        key=lambda a: (-abs(a["contribution"]), list(features).index(a["feature"])),
    )
    level = offset + sign * scale * float(explanation["base_value"])
    bars = [Step(phrases.lang.text("chart.start"), 0.0, level, False)]
    for item in items[:top]:
        feature = features[item["feature"]]
        label = phrases.label(feature)
        if item.get("value") is not None:
            colon = phrases.lang.text("report.colon")
            label = f"{label}{colon}{phrases.value(feature, item['value'])}"
        size = sign * scale * float(item["contribution"])
        against = favourable_sign * float(item["contribution"]) < 0
        bars.append(Step(label, level, size, against))
        level += size
    rest = items[top:]
    if rest:
        size = sign * scale * sum(float(a["contribution"]) for a in rest)
        against = favourable_sign * sum(float(a["contribution"]) for a in rest) < 0
        others = phrases.lang.text("chart.others", count=len(rest))
        bars.append(Step(others, level, size, against))
        level += size
    bars.append(Step(phrases.lang.text("chart.end"), 0.0, level, False))
    return bars, title


def waterfall_png(view: dict[str, Any], phrases: Phrases, top: int = TOP) -> bytes:
    """The chart as PNG bytes."""
    bars, title = steps(view, phrases, top)
    with drawing(phrases.lang.code):
        figure = Figure(figsize=(8.0, 0.5 * len(bars) + 1.4), dpi=110)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        positions = list(range(len(bars)))[::-1]
        for i, (y, bar) in enumerate(zip(positions, bars, strict=True)):
            total = i in (0, len(bars) - 1)
            axes.barh(
                y,
                bar.size,
                left=bar.start,
                height=0.6,
                color="black" if total else ("white" if bar.against else "0.7"),
                edgecolor="black",
                hatch="///" if bar.against and not total else None,
                linewidth=0.8,
            )
            text = f"{bar.size:.0f}" if total else f"{bar.size:+.1f}"
            end = bar.start + bar.size
            axes.annotate(
                text,
                (max(bar.start, end), y),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        axes.set_yticks(positions)
        axes.set_yticklabels([textwrap.fill(b.label, 48) for b in bars], fontsize=8)
        axes.set_xlabel(title, fontsize=9)
        axes.spines[["top", "right"]].set_visible(False)
        axes.margins(x=0.12)
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
