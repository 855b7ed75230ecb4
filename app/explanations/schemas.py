"""Request and response schemas of explanations: the OpenAPI document is built from these.

Requests are strict where a JSON type matters (a string is never a number, a bool never an
integer) and bound the work a body can cause; responses are typed all the way down, and
open (``additionalProperties``) only where a record may carry more than this version knows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from app.http.schemas import Identifier
from app.reviews.schemas import Review

EXAMPLES = Path(__file__).with_name("examples")


MAX_FEATURES = 256
"""Most keys an ``instance`` or ``attributes`` object may hold (bounds the work of a body)."""


def _bounded_object(value: Any) -> Any:
    """Refuse an oversized object before its keys are validated one by one."""
    if isinstance(value, dict) and len(value) > MAX_FEATURES:
        raise PydanticCustomError(
            "too_many_keys",
            "has {count} keys; at most {limit} are accepted",
            {"count": len(value), "limit": MAX_FEATURES},
        )
    return value


FeatureName = Annotated[str, Field(min_length=1, max_length=128)]


FeatureValues = Annotated[
    dict[FeatureName, Any],
    BeforeValidator(_bounded_object),
    Field(
        json_schema_extra={"maxProperties": MAX_FEATURES},
        description="Feature name → value: numbers for numeric features, strings for categorical",
    ),
]


class ExplainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    top_k: Annotated[int, Field(ge=1, le=1000)] | None = None
    explained_class: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    output: Literal["probability", "log_odds", "prediction"] | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    lang: Literal["en", "ja"] | None = None
    """Language of the reason texts (default en)."""
    counterfactual: bool | None = None
    """Also compute what would change the outcome (off by default: it calls the model)."""


class ExplainRequest(BaseModel):
    """Explain one decision and store its record."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [json.loads((EXAMPLES / "explain_request.json").read_text())]
        },
    )

    model: Annotated[str, Field(min_length=1, max_length=64)]
    version: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    decision_id: Identifier
    subject_id: Identifier | None = None
    instance: FeatureValues
    attributes: FeatureValues | None = None
    method: Annotated[str, Field(min_length=1, max_length=64)] = "auto"
    options: ExplainOptions | None = None


FeatureValue = float | str | None
"""A feature's value as the person's input held it (null when the input is withheld)."""


class Attribution(BaseModel):
    """One raw input feature's share of the explained output."""

    feature: str
    value: FeatureValue
    contribution: float
    standard_error: float | None = Field(
        default=None, description="For estimated values: the sampling standard error"
    )


class ModelRef(BaseModel):
    """The model version that made the decision, pinned by its hashes."""

    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    sha256: str
    manifest_sha256: str | None = None
    background_sha256: str | None = None


class Prediction(BaseModel):
    """A classifier's label and class probabilities, or a regressor's value."""

    label: str | None = None
    probabilities: dict[str, float] | None = None
    value: float | None = None


class ExplanationBody(BaseModel):
    """How the prediction is explained: method, output space, exactness, attributions."""

    model_config = ConfigDict(protected_namespaces=())

    method: str
    requested_method: str | None = None
    output: Literal["probability", "log_odds", "prediction"]
    explained_class: str | None
    model_output: float | None = None
    exactness: Literal["exact", "estimated", "approximate"] | None = None
    approximates: str | None = None
    base_value: float
    attributions: list[Attribution]
    fidelity: dict[str, float | None]
    seed: int
    parameters: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)


class Reason(BaseModel):
    """A principal reason in plain words (docs/reports.md#principal-reasons): a feature that weighed
    against the favourable outcome (or for it, when the outcome is the favourable one)."""

    feature: str
    direction: Literal["against", "for"]
    value: FeatureValue
    contribution: float
    text: str


class CounterfactualChange(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    feature: str
    from_: FeatureValue = Field(alias="from")
    to: FeatureValue


class Counterfactual(BaseModel):
    """What would change the outcome (docs/reports.md#what-would-change-the-outcome): the fewest
    changes to actionable inputs that make the model give the favourable outcome, checked on the
    model."""

    status: Literal["found", "none_within_bounds", "already_favourable", "not_applicable"]
    changes: list[CounterfactualChange]
    outcome: str | None = None
    probability: float | None = None


class RecordLink(BaseModel):
    """The record's place in the hash chain."""

    type: str
    v: int
    seq: int
    hash: str
    prev_hash: str


class ExplanationRecord(BaseModel):
    """An explanation record as a person sees it (sealed fields null when withheld)."""

    id: str
    decision_id: str
    created_at: str
    subject_ref: str
    model: ModelRef
    prediction: Prediction
    explanation: ExplanationBody
    reasons: list[Reason]
    counterfactual: Counterfactual | None
    input: dict[str, FeatureValue] | None
    attributes: dict[str, FeatureValue] | None
    sealed: Literal["open", "withheld"]
    reviews: list[Review]
    review_requests: list[Review] = []
    record: RecordLink
