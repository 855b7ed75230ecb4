"""Reported outcomes, fairness and impact audits over the stored decisions (docs/audits.md).

Audits stream the records a page at a time (flat memory), open sealed parts only where a
protected value lives there, and append an ``access`` record naming their filters before the
figures leave, as every read of record content does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.access.principals import Principal
from app.catalog import LoadedModel
from app.catalog.manifest import Feature
from app.errors import FieldError, InvalidInput, NotFound
from app.fairness.groups import FairnessAccumulator, Grouping, quartile_edges
from app.fairness.impact import Bucket, ImpactAccumulator
from app.ledger.chain import Draft
from app.ledger.repository import RecordFilter
from app.records.query import parse_time
from app.records.service import _subject_ref, _unseal_with, log_access, resolve_explanation
from app.runtime.context import Context

Progress = Callable[[int], None]
"""Called with the number of decisions read so far (the CLI's progress bar)."""


@dataclass(frozen=True)
class AuditScope:
    """Which decisions an audit reads: one model version, optionally a time range."""

    model: str
    version: str | None = None
    since: str | None = None
    until: str | None = None


def _model(ctx: Context, name: str, version: str | None, field: str = "model") -> LoadedModel:
    """The served model version; an unknown model named in the path (``field`` "name") is a
    404, as for any path naming nothing, one named in the query a 422 naming the field."""
    model = ctx.catalog.get(name, version)
    if model is not None:
        return model
    if not ctx.catalog.versions(name):
        if field == "name":
            raise NotFound(f"no model named {name!r}")
        raise InvalidInput("unknown model", errors=[FieldError(field, f"no model named {name!r}")])
    raise InvalidInput(
        "unknown model version",
        errors=[FieldError("version", f"{name!r} has no version {version!r}")],
    )


def audited_model(ctx: Context, name: str, version: str | None) -> LoadedModel:
    """The model version an audit of ``name`` reads (the latest when no version is given)."""
    return _model(ctx, name, version, field="name")


def _filter(model: LoadedModel, scope: AuditScope) -> RecordFilter:
    since = parse_time(scope.since, "since") if scope.since else None
    until = parse_time(scope.until, "until") if scope.until else None
    return RecordFilter(
        model_name=model.name, model_version=model.version, since=since, until=until
    )


def _logged_filters(model: LoadedModel, scope: AuditScope, **extra: Any) -> dict[str, Any]:
    filters = {"model": model.name, "version": model.version, "since": scope.since}
    filters |= {"until": scope.until, **extra}
    return {k: v for k, v in filters.items() if v is not None}


# -- reported outcomes ------------------------------------------------------------------


def _actual_value(model: LoadedModel, actual: Any) -> str | float:
    manifest = model.manifest
    if manifest.task == "classification":
        if not isinstance(actual, str) or actual not in (manifest.classes or []):
            raise InvalidInput(
                "the actual outcome is not one of the model's classes",
                errors=[FieldError("actual", f"expected one of {manifest.classes}")],
            )
        return actual
    if isinstance(actual, bool) or not isinstance(actual, int | float) or not np.isfinite(actual):
        raise InvalidInput(
            "the actual outcome of a regression is a finite number",
            errors=[FieldError("actual", "expected a finite number")],
        )
    return float(actual)


async def record_actual_outcome(
    ctx: Context, principal: Principal, decision_id: str, actual: Any
) -> dict[str, Any]:
    """Append an ``actual_outcome`` record for a decision (the latest one counts in audits)."""
    found = await asyncio.to_thread(
        resolve_explanation, ctx, principal, "record", decision_id=decision_id
    )
    stored = found.stored
    document = json.loads(stored.document)
    clear = document["clear"]
    model = ctx.catalog.get(clear["model"]["name"], clear["model"]["version"])
    if model is None:
        raise NotFound("the model version of this decision is not loaded")
    value = _actual_value(model, actual)
    draft = Draft(
        type="actual_outcome",
        key_id=principal.key_id,
        role=principal.role.value,
        clear={
            "decision_id": decision_id,
            "target_id": stored.id,
            "model": {"name": model.name, "version": model.version},
            "actual": value,
        },
        decision_id=decision_id,
        target_id=stored.id,
        model_name=model.name,
        model_version=model.version,
    )
    (outcome,) = await asyncio.wrap_future(ctx.writer.submit([(draft, None)]))
    assert outcome.record is not None
    return {
        "id": draft.id,
        "decision_id": decision_id,
        "explanation_id": stored.id,
        "actual": value,
        "created_at": outcome.record.created_at,
        "record": {"seq": outcome.record.seq, "hash": outcome.record.hash},
    }


# -- fairness -----------------------------------------------------------------------------


def _protected(model: LoadedModel, attribute: str) -> tuple[Feature, bool]:
    """The protected feature or declared attribute, and whether it is a model input."""
    manifest = model.manifest
    for feature in manifest.features:
        if feature.name == attribute and feature.protected:
            return feature, True
    for declared in manifest.attributes:
        if declared.name == attribute:
            return declared, False
    offered = [f.name for f in manifest.features if f.protected] + [
        a.name for a in manifest.attributes
    ]
    raise InvalidInput(
        "not a protected attribute of this model",
        errors=[FieldError("attribute", f"expected one of {offered}")],
    )


def protected_attributes(model: LoadedModel) -> list[Feature]:
    """The model's protected inputs, then its declared attributes, in manifest order."""
    manifest = model.manifest
    return [f for f in manifest.features if f.protected] + list(manifest.attributes)


def grouping_for(model: LoadedModel, attribute: str) -> Grouping:
    """How the attribute's values become groups (docs/audits.md#fairness: bins, else background
    quartiles)."""
    feature, is_input = _protected(model, attribute)
    if feature.type == "categorical":
        return Grouping(attribute, numeric=False)
    if feature.bins:
        return Grouping(attribute, numeric=True, edges=tuple(feature.bins), source="manifest bins")
    if not is_input:
        raise InvalidInput(
            "a numeric attribute needs bins in the manifest",
            errors=[FieldError("attribute", "declare bins for it in model.yaml")],
        )
    column = model.model.background_frame[attribute].to_numpy(dtype=np.float64)
    return Grouping(
        attribute, numeric=True, edges=quartile_edges(column), source="background quartiles"
    )


def _favourable_of(model: LoadedModel, clear: dict[str, Any]) -> tuple[bool, float]:
    manifest = model.manifest
    prediction = clear["prediction"]
    if manifest.task == "regression":
        return False, float(prediction["value"])
    favourable = manifest.favorable
    return prediction["label"] == favourable, float(prediction["probabilities"][favourable])


def _latest_actual(children: list[Any]) -> Any:
    if not children:
        return None
    return json.loads(children[-1].document)["clear"]["actual"]


def compute_fairness(
    ctx: Context, scope: AuditScope, attribute: str, progress: Progress | None = None
) -> dict[str, Any]:
    """docs/audits.md#fairness's figures over one model version's stored decisions (one pass, flat
    memory)."""
    model = _model(ctx, scope.model, scope.version)
    grouping = grouping_for(model, attribute)
    _, is_input = _protected(model, attribute)
    manifest = model.manifest
    accumulator = FairnessAccumulator(
        grouping,
        task=manifest.task,
        favourable=manifest.favorable,
        min_group=ctx.settings.fairness_min_group,
        inputs={f.name: f.type == "categorical" for f in manifest.features},
    )
    seen = 0
    for page in ctx.repository.iter_explanations(_filter(model, scope)):
        documents = [json.loads(record.document) for record in page]
        refs = {ref for d in documents if (ref := _subject_ref(d)) is not None}
        subjects = ctx.repository.subjects_by_refs(refs)
        actuals = ctx.repository.children_of([r.id for r in page], "actual_outcome")
        for record, document in zip(page, documents, strict=True):
            ref = _subject_ref(document)
            sealed = _unseal_with(ctx.keys, document, subjects.get(ref) if ref else None)
            if sealed is None:
                accumulator.erased()
                continue
            row = sealed.get("input") or {}
            source = row if is_input else (sealed.get("attributes") or {})
            favourable, score = _favourable_of(model, document["clear"])
            actual = _latest_actual(actuals.get(record.id, []))
            accumulator.add(
                protected_value=source.get(attribute),
                score=score,
                favourable=favourable,
                actual_favourable=None if actual is None else actual == manifest.favorable,
                inputs=row,
            )
        seen += len(page)
        if progress is not None:
            progress(seen)
    result = accumulator.result()
    result = {"model": model.name, "version": model.version} | result
    result["favourable"] = manifest.favorable
    result["since"], result["until"] = scope.since, scope.until
    return result


async def fairness(
    ctx: Context,
    principal: Principal,
    scope: AuditScope,
    attribute: str,
    endpoint: str = "GET /v1/audit/fairness",
) -> dict[str, Any]:
    """Fairness figures, the access record naming the filters committed first."""
    result = await asyncio.to_thread(compute_fairness, ctx, scope, attribute)
    model = _model(ctx, scope.model, scope.version)
    filters = _logged_filters(model, scope, attribute=attribute)
    await log_access(ctx, principal, endpoint, [], filters=filters)
    return result


# -- impact -------------------------------------------------------------------------------


def compute_impact(
    ctx: Context, scope: AuditScope, bucket: Bucket, progress: Progress | None = None
) -> dict[str, Any]:
    """docs/audits.md#impact's figures from the clear parts of one model version's decisions."""
    model = _model(ctx, scope.model, scope.version, field="name")
    manifest = model.manifest
    accumulator = ImpactAccumulator(
        features=manifest.feature_names,
        task=manifest.task,
        classes=manifest.classes,
        favourable=manifest.favorable,
        bucket=bucket,
    )
    seen = 0
    for page in ctx.repository.iter_explanations(_filter(model, scope)):
        for record in page:
            document = json.loads(record.document)
            accumulator.add(document["created_at"], document["clear"])
        seen += len(page)
        if progress is not None:
            progress(seen)
    result = {"model": model.name, "version": model.version, "favourable": manifest.favorable}
    return result | accumulator.result() | {"since": scope.since, "until": scope.until}


async def impact(
    ctx: Context, principal: Principal, scope: AuditScope, bucket: Bucket, endpoint: str
) -> dict[str, Any]:
    """Impact figures, the access record naming the filters committed first."""
    result = await asyncio.to_thread(compute_impact, ctx, scope, bucket)
    model = _model(ctx, scope.model, scope.version, field="name")
    filters = _logged_filters(model, scope, bucket=bucket)
    await log_access(ctx, principal, endpoint, [], filters=filters)
    return result


__all__ = [
    "AuditScope",
    "audited_model",
    "compute_fairness",
    "compute_impact",
    "fairness",
    "grouping_for",
    "impact",
    "protected_attributes",
    "record_actual_outcome",
]
