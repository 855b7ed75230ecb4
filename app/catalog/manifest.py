"""The ``model.yaml`` manifest of a model version (docs/models.md#the-manifest), validated with
pydantic."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feature(_Strict):
    """One raw input feature as the person's data holds it."""

    name: Annotated[str, Field(min_length=1, max_length=128)]
    type: Literal["numeric", "categorical"]
    description: str = ""
    unit: str | None = None
    categories: list[str] | None = None
    actionable: bool = False
    protected: bool = False
    bins: list[float] | None = None
    """Inner bin edges grouping a numeric protected value in fairness audits (bin [a, b))."""

    @model_validator(mode="after")
    def _categories_match_type(self) -> Feature:
        if self.type == "categorical" and not self.categories:
            raise ValueError(f"categorical feature {self.name!r} needs its categories")
        if self.type == "numeric" and self.categories:
            raise ValueError(f"numeric feature {self.name!r} cannot list categories")
        if self.categories and len(set(self.categories)) != len(self.categories):
            raise ValueError(f"feature {self.name!r} lists a category twice")
        if self.bins is not None:
            if self.type != "numeric":
                raise ValueError(f"only a numeric feature has bins ({self.name!r})")
            if not self.bins or any(b <= a for a, b in zip(self.bins, self.bins[1:], strict=False)):
                raise ValueError(f"bins of {self.name!r} must be strictly increasing")
        return self


class ExplainerSettings(_Strict):
    """Per-model explainer settings; they may tighten the service's bars, never loosen them."""

    additivity_tolerance_exact: float | None = Field(default=None, gt=0)
    additivity_tolerance_auto: float | None = Field(default=None, gt=0)
    lime_min_r2: float | None = Field(default=None, ge=0, le=1)
    sampling_standard_error: float | None = Field(default=None, gt=0)
    exact_max_features: int | None = Field(default=None, ge=1)


class Manifest(_Strict):
    """A model version's manifest."""

    name: str
    version: str
    task: Literal["classification", "regression"]
    artifact: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    classes: list[str] | None = None
    favorable: str
    background: str
    features: Annotated[list[Feature], Field(min_length=1)]
    attributes: list[Feature] = []
    trained_with: dict[str, str] = {}
    explainer: ExplainerSettings = ExplainerSettings()
    card: dict[str, Any] = {}

    @field_validator("name", "version")
    @classmethod
    def _safe_name(cls, value: str, info: ValidationInfo) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "must be 1-64 characters of A-Za-z0-9._- starting with a letter or digit"
            )
        if value == "reload" and info.field_name == "name":
            raise ValueError("'reload' is reserved (POST /v1/models/reload)")
        return value

    @field_validator("artifact", "background")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value.startswith("."):
            raise ValueError("must be a plain file name inside the version folder")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        names = [f.name for f in self.features] + [a.name for a in self.attributes]
        if len(set(names)) != len(names):
            raise ValueError("feature and attribute names must be unique")
        if self.task == "classification":
            if not self.classes or len(self.classes) < 2:
                raise ValueError("a classifier lists at least two classes")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes must be unique")
            if self.favorable not in self.classes:
                raise ValueError("favorable must be one of the classes")
        else:
            if self.classes:
                raise ValueError("a regression model lists no classes")
            if self.favorable not in ("higher", "lower"):
                raise ValueError("favorable of a regression model is 'higher' or 'lower'")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


def read_manifest(path: Path) -> tuple[Manifest, str]:
    """Parse and validate a ``model.yaml``; return it with the sha256 of its bytes."""
    raw = path.read_bytes()
    data = yaml.safe_load(raw)
    if not isinstance(data, dict):
        raise ValueError("model.yaml must be a mapping")
    return Manifest.model_validate(data), hashlib.sha256(raw).hexdigest()
