"""Response schemas of the model catalog and the health endpoints.

Open to more members (``extra="allow"``): a card may carry what a newer manifest declares."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.catalog.manifest import NAME_MAX, NAME_PATTERN


class RefusedVersionOut(BaseModel):
    """A model version folder that is not served, and why (in words its owner understands)."""

    name: str = Field(description="Model name (the folder's parent name).")
    version: str = Field(description="Version (the folder's name).")
    folder: str = Field(description="`<name>/<version>` under the models folder.")
    reason: str = Field(description="Why the version was refused at load.")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class FeatureSpec(_Open):
    """One input feature as the manifest declares it."""

    name: str
    type: Literal["numeric", "categorical"]
    description: str | None = None
    unit: str | None = None
    categories: list[str] | None = None
    actionable: bool | None = None
    protected: bool | None = None
    allow_missing: bool | None = None


class ExplainerDefaults(_Open):
    """The methods a version offers and the fidelity bars its explanations must meet."""

    default_method: str
    methods: list[str]
    additivity_tolerance_exact: float
    additivity_tolerance_auto: float
    sampling_standard_error: float
    lime_min_r2: float
    exact_max_features: int


class ModelSummary(_Open):
    """A model version in a listing."""

    name: str = Field(pattern=NAME_PATTERN, max_length=NAME_MAX)
    version: str = Field(pattern=NAME_PATTERN, max_length=NAME_MAX)
    task: Literal["classification", "regression"]
    classes: list[str] | None
    favorable: str | None = None
    sha256: str = Field(
        description="The artifact's SHA-256: its file's, or for an artifact given as parts "
        "the SHA-256 of the manifest's `sha256` mapping as compact JSON with sorted keys."
    )
    manifest_sha256: str


class ArtifactOut(_Open):
    """What the version's artifact is made of (docs/models.md#framework-models)."""

    format: Literal["skops", "xgboost", "lightgbm"] = Field(
        description="The estimator's format: `skops` for one scikit-learn file, or the "
        "framework whose own model file holds it."
    )
    files: dict[str, str] = Field(
        description="The file of each part: `artifact` for one file, else `estimator` and "
        "(when there is one) `preprocessor`."
    )
    sha256: dict[str, str] = Field(description="The SHA-256 of each part's file.")
    libraries: dict[str, str] = Field(
        default_factory=dict,
        description="The framework library that reads the estimator, and its version.",
    )


class ModelCard(ModelSummary):
    """A model version's card: feature schema, artifact hashes, explainer defaults."""

    artifact: ArtifactOut | None = None
    background_sha256: str
    background_rows: int
    features: list[FeatureSpec]
    attributes: list[FeatureSpec]
    trained_with: dict[str, Any] | None = None
    card: dict[str, Any] | None = None
    explainer: ExplainerDefaults


class UploadedModelCard(ModelCard):
    """An uploaded version's card, saying whether it is now the latest."""

    latest: bool = Field(
        description="Whether this version is now the one requests naming no `version` get "
        "(the most recently registered version of the name): true for every new upload."
    )


class LatestModelCard(ModelCard):
    """The latest version's card, with every version of the name."""

    versions: list[str]


class ModelEntry(_Open):
    name: str
    latest: str
    versions: list[ModelSummary]


class ModelList(_Open):
    items: list[ModelEntry]
    next_cursor: str | None
    refused: list[RefusedVersionOut] = Field(
        default_factory=list, description="Version folders refused at load, and why."
    )
