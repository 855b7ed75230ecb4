"""Checking a person's instance against the manifest; every problem names its field."""

from __future__ import annotations

import math
from typing import Any

from app.errors import FieldError
from app.registry.manifest import Feature

SAFE_INTEGER = 2**53 - 1
"""Largest integer with a canonical JSON (RFC 8785) form."""


def check_value(feature: Feature, value: Any, field: str) -> tuple[Any, FieldError | None]:
    """A clean value for the feature, or the error naming ``field``."""
    if value is None:
        return None, FieldError(field, "is required (null counts as missing)")
    if feature.type == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, FieldError(field, f"must be a number, not {type(value).__name__}")
        if isinstance(value, int) and abs(value) > SAFE_INTEGER:
            return None, FieldError(
                field, "integer is beyond ±(2^53−1): it has no canonical JSON form"
            )
        if isinstance(value, float) and not math.isfinite(value):
            return None, FieldError(field, "must be a finite number (NaN and Infinity are not)")
        return value, None
    if not isinstance(value, str):
        return None, FieldError(
            field, f"must be one of the listed categories (a string), not {type(value).__name__}"
        )
    if value not in (feature.categories or []):
        shown = ", ".join(repr(c) for c in (feature.categories or [])[:12])
        return None, FieldError(field, f"unknown category {value!r}; expected one of {shown}")
    return value, None


def check_row(
    features: list[Feature], data: Any, field: str, *, required: bool = True
) -> tuple[dict[str, Any], list[FieldError]]:
    """Check an object of feature values: every declared feature present, nothing else."""
    if not isinstance(data, dict):
        return {}, [FieldError(field, "must be an object of feature values")]
    errors: list[FieldError] = []
    clean: dict[str, Any] = {}
    known = {f.name: f for f in features}
    for name in data:
        if name not in known:
            errors.append(FieldError(f"{field}.{name}", "unknown feature for this model"))
    for feature in features:
        path = f"{field}.{feature.name}"
        if feature.name not in data:
            if required:
                errors.append(FieldError(path, "is required"))
            continue
        value, error = check_value(feature, data[feature.name], path)
        if error:
            errors.append(error)
        else:
            clean[feature.name] = value
    return clean, errors
