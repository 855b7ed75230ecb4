"""Self-contained HTML reports of the audits (Jinja2 templates in ``templates/``)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from app.fairness.charts import fairness_png, impact_png

_ENV = Environment(
    loader=PackageLoader("app.fairness", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)


def _render(template: str, title: str, figures: dict[str, Any], chart: bytes) -> str:
    return _ENV.get_template(template).render(
        title=title,
        figures=figures,
        regression="mean_prediction_difference" in figures,
        chart=base64.b64encode(chart).decode("ascii"),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def fairness_html(figures: dict[str, Any]) -> str:
    """A fairness audit as one HTML file, its chart embedded."""
    title = f"Fairness of {figures['model']} by {figures['attribute']}"
    return _render("fairness.html.j2", title, figures, fairness_png(figures))


def impact_html(figures: dict[str, Any]) -> str:
    """An impact audit as one HTML file, its chart embedded."""
    return _render("impact.html.j2", f"Impact of {figures['model']}", figures, impact_png(figures))
