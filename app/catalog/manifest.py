"""The ``model.yaml`` manifest of a model version (docs/models.md#the-manifest), validated with
pydantic; its problems reported under their field paths, in words."""

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
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$"
"""A model name, a version or a file name of a version folder, safe as one path part: letters,
digits and ``. _ -``, starting with a letter or digit, no ``..`` and no trailing dot (the
same as ``^[A-Za-z0-9][A-Za-z0-9._-]*$`` without those two); at most ``NAME_MAX`` characters."""
NAME_MAX = 64
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = (
    f"must be 1-{NAME_MAX} letters, digits, '.', '_' or '-', starting with a letter or digit, "
    "with no '..' and not ending with '.'"
)
RESERVED_FILES = ("model.yaml",)


def safe_name(value: str) -> bool:
    """Whether ``value`` is safe as a model name, version or file name (``NAME_PATTERN``)."""
    return len(value) <= NAME_MAX and _NAME_RE.fullmatch(value) is not None


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
        if not safe_name(value):
            raise ValueError(NAME_RULE)
        if value == "reload" and info.field_name == "name":
            raise ValueError("'reload' is reserved (POST /v1/models/reload)")
        return value

    @field_validator("artifact", "background")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if not safe_name(value):
            raise ValueError(f"must be a plain file name inside the version folder: {NAME_RULE}")
        if value in RESERVED_FILES:
            raise ValueError(f"cannot be {value}, the manifest's own file name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.artifact == self.background:
            raise ValueError("artifact and background must be two different files")
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


class ManifestInvalid(ValueError):
    """A ``model.yaml`` that cannot be used: each problem as (field path, words), the path
    dotted from the manifest's top (``features.2.type``; empty for the whole file)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(f"{path}: {words}" if path else words for path, words in problems)
        )


_MUST = re.compile(r"^(Input|String|List|Value|Dictionary|Tuple|Set|Object|Decimal) should ")
_BY_TYPE = {
    "missing": "is required",
    "extra_forbidden": "is not a field of model.yaml",
    "model_type": "must be a mapping of fields",
    "model_attributes_type": "must be a mapping of fields",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "string_type": "must be a string (quote it, e.g. version: '1')",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
}
_BY_FIELD = {"sha256": "must be the artifact's SHA-256 as 64 lowercase hexadecimal characters"}


def _words(error: Any) -> str:
    """One pydantic error in words: no error type, no documentation link."""
    kind = str(error.get("type", ""))
    loc = error.get("loc", ())
    if kind == "string_pattern_mismatch" and loc and loc[-1] in _BY_FIELD:
        return _BY_FIELD[str(loc[-1])]
    if kind in _BY_TYPE:
        return _BY_TYPE[kind]
    message = str(error.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return _MUST.sub("must ", message)[:300]


def manifest_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """A manifest's validation errors as (field path, words)."""
    return [(".".join(str(p) for p in e["loc"]), _words(e)) for e in exc.errors()]


class _NoAliases(yaml.SafeLoader):
    """YAML without aliases: an alias repeats a value wherever it is used, so a few hundred
    bytes of nested aliases would expand to gigabytes in every card served."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ManifestInvalid(
                [
                    (
                        "",
                        f"uses a YAML alias (*{event.anchor}, line {event.start_mark.line + 1}), "
                        "which a manifest may not: write the value out",
                    )
                ]
            )
        return super().compose_node(parent, index)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML syntax error in words, with where it is."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return (
            f"is not valid YAML (line {mark.line + 1}, column {mark.column + 1}: "
            f"{exc.problem or 'unexpected content'})"
        )
    if isinstance(exc, yaml.reader.ReaderError):
        return f"is not readable text (a character that is not allowed, at byte {exc.position})"
    return "is not valid YAML"


def parse_manifest(raw: bytes) -> Manifest:
    """Parse and validate a ``model.yaml``'s bytes; ``ManifestInvalid`` with every problem."""
    try:
        data = yaml.load(raw, Loader=_NoAliases)  # a SafeLoader without aliases
    except yaml.YAMLError as exc:
        raise ManifestInvalid([("", _yaml_problem(exc))]) from None
    if not isinstance(data, dict):
        raise ManifestInvalid([("", "must be a mapping of fields (name: ..., version: ...)")])
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestInvalid(manifest_problems(exc)) from None


def read_manifest(path: Path) -> tuple[Manifest, str]:
    """Parse and validate a ``model.yaml``; return it with the sha256 of its bytes."""
    raw = path.read_bytes()
    return parse_manifest(raw), hashlib.sha256(raw).hexdigest()
