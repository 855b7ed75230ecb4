"""Principal reasons (docs/reports.md#principal-reasons): up to four features that weighed most
against the favourable outcome (for any other outcome) or helped it most (for the favourable one).

Contributions are read toward the favourable outcome:

* binary classifier: the explained class's contributions, sign flipped when the explained
  class is not the favourable one (P(good) = 1 − P(bad), so that is exact);
* multiclass classifier: the explained class's contributions (the predicted class unless
  the request named another). When it is the favourable class they are read as they are;
  otherwise a push toward the explained class is read as a push against the favourable
  outcome — for the predicted class that is exactly what Regulation B asks for, the
  largest contributions toward the outcome given;
* regression: toward ``favorable: higher`` as they are, toward ``lower`` flipped; the
  outcome is adverse when the prediction lies on the unfavourable side of the base value.

Cheap by design (no model call): it runs on every explanation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.catalog.manifest import Manifest
from app.reports.wording import Phrases

MAX_REASONS = 4


def toward_favourable(manifest: Manifest, explained_class: str | None) -> float:
    """+1 or −1: the sign that turns a contribution into one toward the favourable outcome."""
    if manifest.task == "regression":
        return 1.0 if manifest.favorable == "higher" else -1.0
    return 1.0 if explained_class == manifest.favorable else -1.0


def is_adverse(
    manifest: Manifest, predicted_label: str | None, base_value: float, output: float
) -> bool:
    """Whether the outcome given is other than the favourable one."""
    if manifest.task == "regression":
        return toward_favourable(manifest, None) * (output - base_value) < 0
    return predicted_label != manifest.favorable


def select(
    manifest: Manifest,
    contributions: Sequence[tuple[str, float]],
    explained_class: str | None,
    adverse: bool,
    top_k: int | None = None,
) -> list[tuple[str, float, str]]:
    """(feature, contribution, direction) of the principal reasons, most important first;
    ties in feature order."""
    sign = toward_favourable(manifest, explained_class)
    order = {f.name: i for i, f in enumerate(manifest.features)}
    limit = min(top_k or MAX_REASONS, MAX_REASONS)
    if adverse:
        picked = [(n, c) for n, c in contributions if sign * c < 0]
        picked.sort(key=lambda item: (sign * item[1], order[item[0]]))
        return [(n, c, "against") for n, c in picked[:limit]]
    picked = [(n, c) for n, c in contributions if sign * c > 0]
    picked.sort(key=lambda item: (-sign * item[1], order[item[0]]))
    return [(n, c, "for") for n, c in picked[:limit]]


def sentence(phrases: Phrases, reason: dict[str, Any], rank: int) -> str:
    """One reason in words, from the language's templates and the model's phrases."""
    feature = next(f for f in phrases.manifest.features if f.name == reason["feature"])
    which = "first" if rank == 0 else "next"
    values = {
        "label": phrases.label(feature),
        "value": phrases.value(feature, reason["value"]),
        "goal": phrases.goal(),
    }
    if phrases.manifest.task == "regression":
        way = "up" if reason["contribution"] > 0 else "down"
        return phrases.lang.text(f"reasons.{way}_{which}", **values)
    return phrases.lang.text(f"reasons.{reason['direction']}_{which}", **values)


def principal_reasons(
    phrases: Phrases,
    contributions: Sequence[tuple[str, float]],
    row: dict[str, Any],
    *,
    explained_class: str | None,
    predicted_label: str | None,
    base_value: float,
    output: float,
    top_k: int | None = None,
) -> list[dict[str, Any]]:
    """The structured reasons with their text in the phrases' language."""
    manifest = phrases.manifest
    adverse = is_adverse(manifest, predicted_label, base_value, output)
    reasons: list[dict[str, Any]] = []
    for rank, (name, contribution, direction) in enumerate(
        select(manifest, contributions, explained_class, adverse, top_k)
    ):
        reason = {
            "feature": name,
            "direction": direction,
            "value": row[name],
            "contribution": float(contribution),
        }
        reason["text"] = sentence(phrases, reason, rank)
        reasons.append(reason)
    return reasons


def retell(phrases: Phrases, reasons: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same structured reasons with their text in another language."""
    return [dict(r, text=sentence(phrases, r, rank)) for rank, r in enumerate(reasons)]


def wording_stamp(phrases: Phrases) -> dict[str, Any]:
    """What the texts were made from: language, the model's wording file hash (null when it
    has none) and the sentence templates' hash."""
    return {
        "lang": phrases.lang.code,
        "wording_sha256": phrases.wording.sha256,
        "templates_sha256": phrases.lang.sha256,
    }
