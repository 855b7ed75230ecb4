"""The ``model.yaml`` manifest of a model version (docs/models.md#the-manifest), validated with
pydantic; its problems reported under their field paths, in words."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
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
SHA256 = r"^[0-9a-f]{64}$"

SKOPS_SUFFIXES = (".skops",)
"""A scikit-learn part saved safely (``skops.io.dump``)."""
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".joblib")
"""A scikit-learn part saved as a pickle: it can run code when loaded, so it is read only
where the server allows unsafe models."""
ESTIMATOR_SUFFIXES: dict[str, tuple[str, ...]] = {
    "skops": SKOPS_SUFFIXES + UNSAFE_SUFFIXES,
    "xgboost": (".ubj", ".json"),
    "lightgbm": (".txt",),
}
"""The file suffixes an estimator of each format may have (docs/models.md#framework-models)."""
_SAVED_AS = {
    "skops": "a skops file (skops.io.dump, .skops)",
    "xgboost": "the model file XGBoost's Booster.save_model writes (.ubj or .json)",
    "lightgbm": "the text model file LightGBM's Booster.save_model writes (.txt)",
}


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
    allow_missing: bool = False
    """Whether the value may be missing (``null`` in a request, an empty cell in the
    background): the model routes it as its library does (docs/models.md#missing-values)."""

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


def _file_name(value: str) -> str:
    """A plain file name inside the version folder, or ``ValueError`` saying why not."""
    if not safe_name(value):
        raise ValueError(f"must be a plain file name inside the version folder: {NAME_RULE}")
    if value in RESERVED_FILES:
        raise ValueError(f"cannot be {value}, the manifest's own file name")
    return value


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


class ArtifactParts(_Strict):
    """An artifact given as parts: an optional scikit-learn preprocessor and an estimator
    in its own format (docs/models.md#framework-models)."""

    format: Literal["skops", "xgboost", "lightgbm"]
    preprocessor: str | None = None
    """A scikit-learn transformer over the raw features (skops); none: the estimator reads
    the raw features itself (categories as their codes in the manifest's order)."""
    estimator: str

    @field_validator("preprocessor")
    @classmethod
    def _preprocessor_file(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _file_name(value)
        if _suffix(value) not in SKOPS_SUFFIXES + UNSAFE_SUFFIXES:
            raise ValueError(
                "must be a scikit-learn transformer saved with skops (.skops; .pkl, .pickle "
                "and .joblib only where the server allows unsafe models)"
            )
        return value

    @field_validator("estimator")
    @classmethod
    def _estimator_file(cls, value: str, info: ValidationInfo) -> str:
        _file_name(value)
        fmt = info.data.get("format")
        if fmt in ESTIMATOR_SUFFIXES and _suffix(value) not in ESTIMATOR_SUFFIXES[fmt]:
            never = (
                "; pickle and joblib files are never read as one"
                if fmt != "skops" and _suffix(value) in UNSAFE_SUFFIXES
                else ""
            )
            raise ValueError(f"an estimator of format {fmt} is {_SAVED_AS[fmt]}{never}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> ArtifactParts:
        if self.preprocessor is not None and self.preprocessor == self.estimator:
            raise ValueError("preprocessor and estimator must be two different files")
        return self


class PartHashes(_Strict):
    """The SHA-256 of each part of an artifact given as parts."""

    preprocessor: Annotated[str, Field(pattern=SHA256)] | None = None
    estimator: Annotated[str, Field(pattern=SHA256)]


def _one_file_or_parts(value: Any) -> str:
    """Which form a value of ``artifact`` or ``sha256`` takes: a mapping is the parts."""
    return "parts" if isinstance(value, dict) else "file"


UNION_TAGS = frozenset({"file", "parts"})
"""The names pydantic puts in an error's path for the form of ``artifact`` and ``sha256``
(dropped from the field paths reported)."""


class Manifest(_Strict):
    """A model version's manifest."""

    name: str
    version: str
    task: Literal["classification", "regression"]
    artifact: Annotated[
        Union[Annotated[str, Tag("file")], Annotated[ArtifactParts, Tag("parts")]],  # noqa: UP007
        Discriminator(_one_file_or_parts),
    ]
    """One skops file (a Pipeline or an estimator over the raw features), or parts."""
    sha256: Annotated[
        Union[  # noqa: UP007
            Annotated[str, Field(pattern=SHA256), Tag("file")],
            Annotated[PartHashes, Tag("parts")],
        ],
        Discriminator(_one_file_or_parts),
    ]
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

    @field_validator("artifact")
    @classmethod
    def _artifact_file(cls, value: str | ArtifactParts) -> str | ArtifactParts:
        if isinstance(value, ArtifactParts):
            return value
        _file_name(value)
        if _suffix(value) in ESTIMATOR_SUFFIXES["xgboost"] + ESTIMATOR_SUFFIXES["lightgbm"]:
            fmt = "lightgbm" if _suffix(value) == ".txt" else "xgboost"
            raise ValueError(
                "one artifact file is a scikit-learn model saved with skops; an XGBoost or "
                f"LightGBM model file is named as parts: artifact: {{estimator: {value}, "
                f"format: {fmt}}}"
            )
        return value

    @field_validator("sha256")
    @classmethod
    def _hashes_fit_artifact(
        cls, value: str | PartHashes, info: ValidationInfo
    ) -> str | PartHashes:
        artifact = info.data.get("artifact")
        if artifact is None:
            return value  # the artifact's own problem is reported
        if isinstance(artifact, str):
            if not isinstance(value, str):
                raise ValueError(
                    "with one artifact file, sha256 is that file's SHA-256, not a mapping"
                )
            return value
        if isinstance(value, str):
            raise ValueError(
                "with an artifact given as parts, sha256 maps each part to its SHA-256 "
                "(estimator: ..., preprocessor: ...)"
            )
        if artifact.preprocessor is not None and value.preprocessor is None:
            raise ValueError("names no SHA-256 for the preprocessor the artifact names")
        if artifact.preprocessor is None and value.preprocessor is not None:
            raise ValueError("names a preprocessor's SHA-256, but the artifact has no preprocessor")
        return value

    @field_validator("background")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        return _file_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.background in self.files.values():
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

    @property
    def format(self) -> str:
        """The estimator's format: ``skops`` for one artifact file."""
        return "skops" if isinstance(self.artifact, str) else self.artifact.format

    @property
    def files(self) -> dict[str, str]:
        """The artifact's files by part: ``artifact`` for one file, else ``preprocessor``
        (when there is one) and ``estimator``; as an upload names its fields."""
        if isinstance(self.artifact, str):
            return {"artifact": self.artifact}
        parts = {"preprocessor": self.artifact.preprocessor, "estimator": self.artifact.estimator}
        return {k: v for k, v in parts.items() if v is not None}

    @property
    def hashes(self) -> dict[str, str]:
        """The SHA-256 of each of ``files``, by the same parts."""
        if isinstance(self.sha256, str):
            return {"artifact": self.sha256}
        parts = {"preprocessor": self.sha256.preprocessor, "estimator": self.sha256.estimator}
        return {k: v for k, v in parts.items() if v is not None}

    @property
    def artifact_sha256(self) -> str:
        """One SHA-256 for the whole artifact, as registrations and records keep it: the
        file's own, or for parts the SHA-256 of the ``sha256`` mapping as compact JSON with
        sorted keys (docs/models.md#framework-models)."""
        if isinstance(self.sha256, str):
            return self.sha256
        canonical = json.dumps(self.hashes, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


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
_ARTIFACT_FORMS = (
    "must be a file name (model.skops) or a mapping of parts "
    "({estimator: model.ubj, format: xgboost}, with an optional preprocessor)"
)


def _path(error: Any) -> tuple[Any, ...]:
    """An error's location without the tag pydantic adds for the form of ``artifact`` or
    ``sha256`` (``sha256.parts.estimator`` is ``sha256.estimator``)."""
    loc = tuple(error.get("loc", ()))
    if len(loc) > 1 and loc[0] in ("artifact", "sha256") and loc[1] in UNION_TAGS:
        return (loc[0], *loc[2:])
    return loc


def _words(error: Any) -> str:
    """One pydantic error in words: no error type, no documentation link."""
    kind = str(error.get("type", ""))
    loc = _path(error)
    if kind == "string_pattern_mismatch" and loc and loc[0] == "sha256":
        part = str(loc[1]) if len(loc) > 1 else "artifact"
        return f"must be the {part}'s SHA-256 as 64 lowercase hexadecimal characters"
    if loc == ("artifact",) and kind == "string_type":
        return _ARTIFACT_FORMS
    if loc == ("sha256",) and kind == "string_type":
        return "must be the artifact's SHA-256, or a mapping of each part to its SHA-256"
    if kind in _BY_TYPE:
        return _BY_TYPE[kind]
    message = str(error.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return _MUST.sub("must ", message)[:300]


def manifest_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """A manifest's validation errors as (field path, words)."""
    return [(".".join(str(p) for p in _path(e)), _words(e)) for e in exc.errors()]


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
