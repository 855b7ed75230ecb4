"""The audits in plain words, for people who are not engineers (the model card page).

Every sentence comes from a language's templates (the desk's ``app/web/lang/<lang>.yaml``,
passed in as ``t``) and the model owner's phrases (``app/reports/wording``: outcome and
category labels); this module only picks and fills them. No web framework, no SQL.
"""

from __future__ import annotations

from typing import Any

from app.catalog.manifest import Feature, Manifest
from app.fairness.groups import Grouping
from app.reports.wording import Phrases


def _percent(t: dict[str, str], share: float) -> str:
    return t["plain_percent"].format(value=round(100 * share))


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0")


def feature_name(t: dict[str, str], phrases: Phrases, feature: Feature) -> str:
    """A feature's name on the card: the manifest's description where the language reads it
    (the manifest is written in English), else the owner's wording label."""
    if t.get("plain_feature_names") == "description" and feature.description:
        return feature.description
    return phrases.label(feature)


def _join(t: dict[str, str], names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return t["plain_list_sep"].join(names[:-1]) + t["plain_list_and"] + names[-1]


def group_name(t: dict[str, str], phrases: Phrases, feature: Feature, figures: dict[str, Any],
               group: str) -> str:  # fmt: skip
    """A group as a person reads it: a category's label, or a bin as "25 to under 35"."""
    grouping = figures.get("grouping") or {}
    if grouping.get("kind") != "bins":
        return phrases.value(feature, group)
    edges = tuple(float(e) for e in grouping.get("edges") or ())
    shape = Grouping(figures["attribute"], numeric=True, edges=edges)
    for position in range(len(edges) + 1):
        if shape.bin_label(position) != group:
            continue
        low = _number(edges[position - 1]) if position > 0 else None
        high = _number(edges[position]) if position < len(edges) else None
        if low is None:
            return t["plain_bin_below"].format(high=high)
        if high is None:
            return t["plain_bin_above"].format(low=low)
        return t["plain_bin_between"].format(low=low, high=high)
    return group


def impact_summary(t: dict[str, str], phrases: Phrases, impact: dict[str, Any],
                   top: int = 3) -> dict[str, Any]:  # fmt: skip
    """Sentences on how many decisions, how often favourable, what weighs most, what moved."""
    manifest = phrases.manifest
    by_name = {f.name: f for f in manifest.features}
    buckets = impact.get("buckets") or []
    if not buckets:
        return {"sentences": [t["plain_no_decisions"]], "rows": [], "top": []}
    key = "plain_total" if len(buckets) > 1 else "plain_total_one"
    sentences = [
        t[key].format(
            first=buckets[0]["start"], last=buckets[-1]["start"],
            decisions=f"{impact['decisions']:,}",
        )
    ]  # fmt: skip
    classification = manifest.task == "classification"
    outcome = phrases.outcome(manifest.favorable) if classification else ""
    if classification:
        favourable = sum(b["decisions"] * (b["favourable_rate"] or 0.0) for b in buckets)
        share = favourable / impact["decisions"]
        sentences.append(t["plain_rate"].format(percent=_percent(t, share), outcome=outcome))
    names = [
        feature_name(t, phrases, by_name[i["feature"]])
        for i in (impact.get("importance") or [])[:top]
        if i["feature"] in by_name and i["mean_abs_contribution"] > 0
    ]
    if names:
        sentences.append(t["plain_top"].format(names=_join(t, names)))
    moved = impact.get("moved") or []
    if moved and moved[0]["feature"] in by_name and abs(moved[0]["change"]) > 0:
        name = feature_name(t, phrases, by_name[moved[0]["feature"]])
        key = "plain_moved_up" if moved[0]["change"] > 0 else "plain_moved_down"
        sentences.append(t[key].format(name=name))
    rows = [
        {
            "start": b["start"],
            "decisions": b["decisions"],
            "share": _percent(t, b["favourable_rate"]) if classification else None,
        }
        for b in buckets
    ]
    return {"sentences": sentences, "rows": rows, "top": names, "outcome": outcome}


def fairness_summary(t: dict[str, str], phrases: Phrases, feature: Feature,
                     figures: dict[str, Any] | None, problem: str | None = None
                     ) -> dict[str, Any]:  # fmt: skip
    """Sentences on how often each group of a protected attribute got the favourable outcome."""
    manifest: Manifest = phrases.manifest
    name = feature_name(t, phrases, feature)
    if figures is None:
        return {"name": name, "sentences": [t["plain_unavailable"]], "rows": [],
                "problem": problem}  # fmt: skip
    classification = manifest.task == "classification"
    outcome = phrases.outcome(manifest.favorable) if classification else ""
    rows = []
    for g in figures["groups"]:
        label = group_name(t, phrases, feature, figures, g["group"])
        if classification:
            text = t["plain_group"].format(
                group=label, percent=_percent(t, g["favourable_rate"]), outcome=outcome,
                count=f"{g['count']:,}",
            )  # fmt: skip
        else:
            text = t["plain_group_mean"].format(
                group=label, value=_number(round(g["mean_prediction"], 2)), count=f"{g['count']:,}"
            )
        rows.append({"group": label, "count": g["count"], "text": text})
    intro = classification and bool(rows)
    sentences = [t["plain_fairness_intro"].format(outcome=outcome)] if intro else []
    difference = figures.get("demographic_parity_difference")
    ratio = figures.get("demographic_parity_ratio")
    if len(figures["groups"]) < 2:
        sentences.append(t["plain_too_few_groups"])
    elif classification and difference is not None and ratio is not None:
        sentences.append(t["plain_gap"].format(points=round(100 * difference)))
        sentences.append(t["plain_ratio"].format(percent=_percent(t, ratio)))
        sentences.append(t["plain_gap_large"] if ratio < 0.8 else t["plain_gap_small"])
        odds = figures.get("equalized_odds_difference")
        if odds is not None:
            sentences.append(t["plain_errors"].format(points=round(100 * odds)))
    elif figures.get("mean_prediction_difference") is not None:
        value = _number(round(figures["mean_prediction_difference"], 2))
        sentences.append(t["plain_mean_gap"].format(value=value))
    if figures["withheld"]:
        key = "plain_withheld_one" if len(figures["withheld"]) == 1 else "plain_withheld"
        sentences.append(t[key].format(count=len(figures["withheld"]), min=figures["min_group"]))
    if figures["erased_excluded"]:
        sentences.append(t["plain_erased"].format(count=f"{figures['erased_excluded']:,}"))
    return {"name": name, "sentences": sentences, "rows": rows, "problem": None}


def card_fields(card: dict[str, Any]) -> list[tuple[str, Any]]:
    """The card's entries in reading order: known keys first, then the rest as given."""
    order = ["intended_use", "owner", "limitations", "training_data", "metrics"]
    known = [(k, card[k]) for k in order if card.get(k) not in (None, "", {})]
    return known + [(k, v) for k, v in card.items() if k not in order and v not in (None, "")]
