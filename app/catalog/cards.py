"""A model's card for people who are not engineers: its card (prose in the page's language,
from the wording files), the impact of its decisions, and the latest fairness figures for
each protected attribute, in plain words.

The figures come from the audit services, so each read appends its access record naming
its filters, as every audit read does."""

from __future__ import annotations

from typing import Any

from app.access.principals import Principal
from app.errors import InvalidInput
from app.fairness import plain
from app.fairness import service as audits
from app.reports.wording import phrases
from app.runtime.context import Context


async def model_card(
    ctx: Context,
    principal: Principal,
    name: str,
    version: str | None,
    texts: dict[str, str],
    lang: str,
    endpoint: str,
) -> dict[str, Any]:
    """The card, the impact summary and each protected attribute's fairness, in plain words."""
    model = audits.audited_model(ctx, name, version)
    words = phrases(model.manifest, model.folder, lang)
    scope = audits.AuditScope(model.name, model.version)
    impact = await audits.impact(ctx, principal, scope, "week", endpoint)
    fairness = []
    for feature in audits.protected_attributes(model):
        try:
            figures = await audits.fairness(ctx, principal, scope, feature.name, endpoint)
        except InvalidInput as exc:
            fairness.append(plain.fairness_summary(texts, words, feature, None, exc.detail))
            continue
        fairness.append(plain.fairness_summary(texts, words, feature, figures))
    return {
        "model": model.name,
        "version": model.version,
        "task": model.manifest.task,
        "card": plain.card_fields(words.card()),
        "impact": plain.impact_summary(texts, words, impact),
        "fairness": fairness,
    }


__all__ = ["model_card"]
