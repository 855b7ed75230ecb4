"""Schemas of reported outcomes and of the fairness and impact audits (docs/audits.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr


class ActualOutcomeRequest(BaseModel):
    """What actually happened after the decision: a class (classifier) or a number."""

    model_config = ConfigDict(extra="forbid")

    actual: Annotated[StrictStr, Field(min_length=1, max_length=128)] | StrictInt | StrictFloat


class RecordHead(BaseModel):
    seq: int
    hash: str


class ActualOutcome(BaseModel):
    """The ``actual_outcome`` record appended for a decision."""

    id: str
    decision_id: str
    explanation_id: str
    actual: str | float
    created_at: str
    record: RecordHead


class Grouping(BaseModel):
    kind: Literal["categories", "bins"]
    source: str
    edges: list[float] | None = None
    note: str | None = None


class GroupFigures(BaseModel):
    """One reported group's figures (classifier fields or regression fields)."""

    group: str
    count: int
    favourable_rate: float | None = None
    mean_probability_favourable: float | None = None
    outcomes_reported: int | None = None
    true_positive_rate: float | None = None
    false_positive_rate: float | None = None
    mean_prediction: float | None = None


class WithheldGroup(BaseModel):
    group: str
    count: int


class Proxy(BaseModel):
    """How strongly a model input is associated with the protected attribute (0..1)."""

    feature: str
    association: float
    measure: Literal["cramers_v", "correlation_ratio"]


class FairnessReport(BaseModel):
    """Group figures of one model version's stored decisions."""

    model: str
    version: str
    attribute: str
    favourable: str
    since: str | None
    until: str | None
    grouping: Grouping
    min_group: int
    decisions: int
    groups: list[GroupFigures]
    withheld: list[WithheldGroup]
    erased_excluded: int
    missing_attribute: int
    demographic_parity_difference: float | None = None
    demographic_parity_ratio: float | None = None
    equalized_odds_difference: float | None = None
    outcomes_reported: int | None = None
    mean_prediction_difference: float | None = None
    proxies: list[Proxy]


class BucketFigures(BaseModel):
    start: str
    decisions: int
    favourable_rate: float | None


class Importance(BaseModel):
    feature: str
    mean_abs_contribution: float


class Moved(BaseModel):
    feature: str
    first_half_mean: float
    second_half_mean: float
    change: float


class Halves(BaseModel):
    first: list[str] | None
    second: list[str] | None


class ImpactReport(BaseModel):
    """Decisions and favourable rate over time, global importance, and what moved."""

    model: str
    version: str
    favourable: str
    since: str | None
    until: str | None
    bucket: Literal["day", "week"]
    decisions: int
    not_comparable: int
    buckets: list[BucketFigures]
    importance: list[Importance]
    halves: Halves
    moved: list[Moved]
