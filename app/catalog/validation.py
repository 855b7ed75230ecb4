"""Checking a person's instance against the manifest; every problem names its field."""

from __future__ import annotations

import math
import warnings
import weakref
from typing import Any

import numpy as np

from app.catalog.manifest import Feature
from app.errors import FieldError
from app.explain.model import TabularModel
from app.http.problems import clean

SAFE_INTEGER = 2**53 - 1
"""Largest integer with a canonical JSON (RFC 8785) form."""


def check_value(feature: Feature, value: Any, field: str) -> tuple[Any, FieldError | None]:
    """A clean value for the feature, or the error naming ``field``. ``null`` is a missing
    value: valid only where the manifest allows the feature to be missing."""
    if value is None:
        if feature.allow_missing:
            return None, None
        return None, FieldError(field, "is required (null counts as missing)")
    if feature.type == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, FieldError(field, f"must be a number, not {type(value).__name__}")
        if isinstance(value, int) and abs(value) > SAFE_INTEGER:
            return None, FieldError(
                field, "integer is beyond ±(2^53−1): it has no canonical JSON form"
            )
        if isinstance(value, float) and not math.isfinite(value):
            missing = " (send null for a missing value)" if feature.allow_missing else ""
            return None, FieldError(
                field, f"must be a finite number (NaN and Infinity are not){missing}"
            )
        return value, None
    if not isinstance(value, str):
        return None, FieldError(
            field, f"must be one of the listed categories (a string), not {type(value).__name__}"
        )
    if value not in (feature.categories or []):
        shown = ", ".join(repr(c) for c in (feature.categories or [])[:12])
        return None, FieldError(
            field, f"unknown category {clean(repr(value))}; expected one of {shown}"
        )
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


FLOAT32_MAX = float(np.finfo(np.float32).max)
_limits: weakref.WeakKeyDictionary[TabularModel, float] = weakref.WeakKeyDictionary()
_columns: weakref.WeakKeyDictionary[TabularModel, np.ndarray] = weakref.WeakKeyDictionary()


def value_limit(model: TabularModel) -> float:
    """Largest magnitude the estimator takes in its input: scikit-learn trees read float32
    and refuse anything beyond it; others take any finite float64. Found once by asking the
    artifact itself (a background row with values just beyond float32)."""
    known = _limits.get(model)
    if known is not None:
        return known
    probe = np.array(model.background[:1], copy=True)
    columns = (
        list(range(probe.shape[1]))
        if model.decomposed
        else [i for i, f in enumerate(model.features) if not f.categorical]
    )
    probe[:, columns] = FLOAT32_MAX * 4
    limit = float(np.finfo(np.float64).max)
    if columns:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                model.raw_output(probe)
        except ValueError:
            limit = FLOAT32_MAX
    _limits[model] = limit
    return limit


def check_model_range(model: TabularModel, row: dict[str, Any], field: str) -> list[FieldError]:
    """Errors naming each numeric feature whose value the model cannot take: non-finite after
    the model's own preprocessing, or beyond what its estimator reads (float32 for trees)."""
    limit = value_limit(model)
    try:
        encoded = _encode(model, row)
    except Exception:
        return _unencodable(model, row, field)
    numeric = [i for i, f in enumerate(model.features) if not f.categorical]
    if not numeric:
        return []
    columns_all = _numeric_columns(model)
    values_all = np.asarray(encoded[0, columns_all], dtype=np.float64)
    if np.isfinite(values_all).all() and float(np.abs(values_all).max(initial=0.0)) <= limit:
        return []  # the common case: one check over every numeric column
    errors: list[FieldError] = []
    for i in numeric:
        columns = model.groups[i] if model.decomposed else np.array([i])
        values = np.asarray(encoded[0, columns], dtype=np.float64)
        if row.get(model.features[i].name) is None:
            values = values[~np.isnan(values)]  # missing, allowed: the model routes it
            if not len(values):
                continue
        if not np.isfinite(values).all() or float(np.abs(values).max()) > limit:
            where = "after the model's preprocessing" if model.decomposed else "for the model"
            errors.append(
                FieldError(
                    f"{field}.{model.features[i].name}",
                    f"is out of range {where}: the model takes values up to "
                    f"±{limit:.4g} ({'float32' if limit == FLOAT32_MAX else 'float64'})",
                )
            )
    return errors


def _numeric_columns(model: TabularModel) -> np.ndarray:
    """The encoded columns of every numeric raw feature (every column once decomposed)."""
    known = _columns.get(model)
    if known is None:
        numeric = [i for i, f in enumerate(model.features) if not f.categorical]
        parts = [model.groups[i] if model.decomposed else np.array([i]) for i in numeric]
        known = np.concatenate(parts).astype(np.intp) if parts else np.array([], dtype=np.intp)
        _columns[model] = known
    return known


def _encode(model: TabularModel, row: dict[str, Any]) -> np.ndarray:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return model.encode([row])


def _unencodable(model: TabularModel, row: dict[str, Any], field: str) -> list[FieldError]:
    """The model's own preprocessing refuses the row (say, a category the manifest lists but
    the encoder never saw): name each value that it refuses on its own."""
    reference = {str(k): v for k, v in model.background_frame.iloc[0].to_dict().items()}
    errors = []
    for feature in model.features:
        try:
            _encode(model, reference | {feature.name: row[feature.name]})
        except Exception:
            errors.append(
                FieldError(
                    f"{field}.{feature.name}",
                    "the model's own preprocessing cannot take this value (it was not seen "
                    "in training)",
                )
            )
    return errors or [FieldError(field, "the model's own preprocessing cannot take this row")]
