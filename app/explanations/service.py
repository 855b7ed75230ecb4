"""Explain-and-record: validate, explain, seal, append — the 201 leaves after the commit.

Runs from a request today; a batch worker calls ``explain_and_record`` the same way."""

from __future__ import annotations

import asyncio
import json
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

import app
from app.access.principals import Principal
from app.catalog import LoadedModel
from app.catalog.validation import check_model_range, check_row
from app.compute import cost
from app.compute.batcher import Computed
from app.errors import Conflict, ExplanationFailed, FieldError, InvalidInput, RationaleError
from app.explain import Explanation
from app.explain.engine import library_versions
from app.ledger.chain import Draft, canonical_body
from app.ledger.crypto import subject_fingerprint
from app.ledger.repository import StoredRecord
from app.ledger.subject_keys import SubjectKey
from app.records.service import explanation_view, render_page
from app.reports.counterfactual import counterfactual
from app.reports.reasons import principal_reasons, wording_stamp
from app.reports.wording import phrases
from app.runtime import metrics
from app.runtime.context import Context

log = structlog.get_logger(__name__)

LIBRARY_VERSIONS = library_versions() | {
    "rationale": app.__version__,
    "python": platform.python_version(),
}
"""Versions recorded with every explanation (replay reports any that changed)."""


@dataclass(frozen=True)
class ExplainCommand:
    """A validated request to explain one decision."""

    model: str
    version: str | None
    decision_id: str
    subject_id: str | None
    instance: dict[str, Any]
    attributes: dict[str, Any] | None
    method: str
    top_k: int | None
    explained_class: str | None
    output: str | None
    seed: int
    body: dict[str, Any]
    lang: str = "en"
    counterfactual: bool = False


@dataclass
class ExplainResult:
    created: bool
    view: dict[str, Any]


def _resolve(ctx: Context, command: ExplainCommand) -> LoadedModel:
    model = ctx.catalog.get(command.model, command.version)
    if model is not None:
        return model
    if not ctx.catalog.versions(command.model):
        raise InvalidInput(
            "unknown model", errors=[FieldError("model", f"no model named {command.model!r}")]
        )
    raise InvalidInput(
        "unknown model version",
        errors=[FieldError("version", f"{command.model!r} has no version {command.version!r}")],
    )


def validate(ctx: Context, command: ExplainCommand) -> tuple[LoadedModel, dict[str, Any]]:
    """The model version and a clean instance, or a 422 naming every bad field."""
    model = _resolve(ctx, command)
    manifest = model.manifest
    row, errors = check_row(manifest.features, command.instance, "instance")
    if not errors:
        errors.extend(check_model_range(model.model, row, "instance"))
    if command.attributes is not None:
        if not manifest.attributes:
            errors.append(FieldError("attributes", "this model declares no attributes"))
        else:
            _, attr_errors = check_row(
                manifest.attributes, command.attributes, "attributes", required=False
            )
            errors.extend(attr_errors)
    if command.method != "auto" and command.method not in model.explainers.known():
        errors.append(
            FieldError(
                "method", f"unknown method; offered: auto, {', '.join(model.explainers.known())}"
            )
        )
    elif budget := cost.over_budget(model, command.method, ctx.settings.compute_budget_seconds):
        errors.append(budget)
    if command.explained_class is not None and command.explained_class not in (
        manifest.classes or []
    ):
        errors.append(FieldError("options.explained_class", "is not one of the model's classes"))
    if manifest.task == "regression" and command.output not in (None, "prediction"):
        errors.append(
            FieldError("options.output", "a regression model is explained as 'prediction'")
        )
    if manifest.task == "classification" and command.output not in (
        None,
        "probability",
        "log_odds",
    ):
        errors.append(
            FieldError("options.output", "a classifier is explained as 'probability' or 'log_odds'")
        )
    if command.top_k is not None and command.top_k > len(manifest.features):
        errors.append(
            FieldError("options.top_k", f"at most {len(manifest.features)} (the feature count)")
        )
    if errors:
        raise InvalidInput("the request does not fit the model", errors=errors)
    return model, row


def _prediction(model: LoadedModel, raw: Any) -> dict[str, Any]:
    manifest = model.manifest
    if manifest.task == "regression":
        return {"value": float(raw)}
    classes = manifest.classes or []
    probabilities = {c: float(p) for c, p in zip(classes, raw, strict=True)}
    return {"label": classes[int(np.argmax(raw))], "probabilities": probabilities}


def _attribution(explanation: Explanation, names: list[str], i: int) -> dict[str, Any]:
    """A feature's clear attribution: its contribution, and its standard error if sampled."""
    item: dict[str, Any] = {
        "feature": names[i],
        "contribution": float(explanation.contributions[i]),
    }
    if explanation.standard_errors is not None:
        item["standard_error"] = float(explanation.standard_errors[i])
    return item


def reasons_for(
    model: LoadedModel,
    command: ExplainCommand,
    row: dict[str, Any],
    explanation: Explanation,
    explained_class: str | None,
    predicted_label: str | None,
) -> dict[str, Any]:
    """The sealed ``reasons`` (docs/reports.md#principal-reasons) in the request's language, and
    what their texts were made from (``reasons_wording``: language, wording file and template
    hashes)."""
    words = phrases(model.manifest, model.folder, command.lang)
    names = model.model.feature_names
    reasons = principal_reasons(
        words,
        [(n, float(c)) for n, c in zip(names, explanation.contributions, strict=True)],
        row,
        explained_class=explained_class,
        predicted_label=predicted_label,
        base_value=float(explanation.base_value),
        output=float(explanation.model_output),
        top_k=command.top_k,
    )
    return {"reasons": reasons, "reasons_wording": wording_stamp(words)}


def build_draft(
    model: LoadedModel,
    command: ExplainCommand,
    principal: Principal,
    row: dict[str, Any],
    computed: Computed,
    subject_ref: str,
    fingerprint: str,
) -> tuple[Draft, dict[str, Any]]:
    """The explanation record's clear part, and the plaintext of its sealed part."""
    raw, explanation, target = computed.raw, computed.explanation, computed.target
    names = model.model.feature_names
    order = sorted(range(len(names)), key=lambda i: (-abs(float(explanation.contributions[i])), i))
    prediction = _prediction(model, raw)
    explained_class = (
        model.manifest.classes[target.class_index]  # type: ignore[index]
        if target.class_index is not None
        else None
    )
    clear = {
        "decision_id": command.decision_id,
        "subject_ref": subject_ref,
        "request_fingerprint": fingerprint,
        "model": {
            "name": model.name,
            "version": model.version,
            "sha256": model.artifact_sha256,
            "manifest_sha256": model.manifest_sha256,
            "background_sha256": model.background_sha256,
        },
        "prediction": prediction,
        "explanation": {
            "method": explanation.method,
            "requested_method": command.method,
            "output": target.output,
            "explained_class": explained_class,
            "model_output": explanation.model_output,
            "exactness": explanation.exactness,
            "approximates": explanation.approximates,
            "base_value": explanation.base_value,
            "attributions": [_attribution(explanation, names, i) for i in order],
            "fidelity": explanation.fidelity,
            "seed": command.seed,
            "parameters": explanation.parameters | {"top_k": command.top_k},
            "versions": LIBRARY_VERSIONS | model.library_versions,
        },
    }
    sealed_plain: dict[str, Any] = {
        "input": row,
        "attributes": command.attributes,
        "attribution_values": {name: row[name] for name in names},
        "reasons": [],
        "counterfactual": None,
    }
    sealed_plain.update(
        reasons_for(model, command, row, explanation, explained_class, prediction.get("label"))
    )
    draft = Draft(
        type="explanation",
        key_id=principal.key_id,
        role=principal.role.value,
        clear=clear,
        decision_id=command.decision_id,
        subject_ref=subject_ref,
        model_name=model.name,
        model_version=model.version,
        outcome=prediction.get("label"),
        fingerprint=fingerprint,
    )
    return draft, sealed_plain


def _existing(ctx: Context, stored: StoredRecord, body: bytes) -> ExplainResult:
    subject = ctx.repository.subject_by_ref(stored.subject_ref) if stored.subject_ref else None
    if stored.subject_ref and subject is None:
        # Erased: the body cannot be compared any more; the erased record is the answer.
        (erased,) = render_page(ctx.repository, None, [stored])
        return ExplainResult(created=False, view=erased)
    # Keyed with the stored subject's own data key: the retry's draft may have been made for
    # a subject proposed as new (this process did not keep the person's key).
    data_key = (
        ctx.keys.unwrap_data_key(subject.wrapped_key, subject.ref) if subject is not None else b""
    )
    if subject is None or stored.fingerprint != subject_fingerprint(data_key, body):
        raise Conflict(
            "decision_id already has an explanation record made from a different request body",
            extra={"record_id": stored.id},
        )
    # The caller has just sent the same data: the record is returned with it opened.
    (view,) = render_page(ctx.repository, ctx.keys, [stored])
    return ExplainResult(created=False, view=view)


async def explain_and_record(
    ctx: Context, principal: Principal, command: ExplainCommand
) -> ExplainResult:
    """Explain one decision and store its record; an identical retry returns the record."""
    model, row = validate(ctx, command)
    body = canonical_body(command.body)
    # A retry is recognised under the chain lock when its record is appended, so the
    # common path (a new decision) costs no extra read.
    started = time.perf_counter()
    computed = await _compute(ctx, model, row, command)
    metrics.observe_explanations(model, [command.method], [computed], time.perf_counter() - started)
    what_would_change = (
        await asyncio.to_thread(counterfactual, model, row) if command.counterfactual else None
    )

    def make(subject: SubjectKey) -> tuple[Draft, dict[str, Any]]:
        fingerprint = subject_fingerprint(subject.data_key, body)
        draft, sealed_plain = build_draft(
            model, command, principal, row, computed, subject.ref, fingerprint
        )
        if command.counterfactual:
            sealed_plain["counterfactual"] = what_would_change
        return draft.seal_with(subject.data_key, sealed_plain), sealed_plain

    subjects = ctx.subjects
    subject = subjects.claim(subjects.digest(command.subject_id, command.decision_id))
    appended = await subjects.append_claimed(
        ctx.writer, subject, make, ctx.settings.write_timeout_seconds
    )
    if appended.outcome.existing is not None:
        return await asyncio.to_thread(_existing, ctx, appended.outcome.existing, body)
    record = appended.outcome.record
    assert record is not None
    view = explanation_view(json.loads(record.document), appended.made, record)
    view["reviews"] = []
    view["review_requests"] = []
    return ExplainResult(created=True, view=view)


async def _compute(
    ctx: Context, model: LoadedModel, row: dict[str, Any], command: ExplainCommand
) -> Computed:
    """The row's prediction and explanation; a fault of the model or a library is this
    request's problem+json answer, never a crashed request."""
    try:
        return await ctx.batcher.compute(model, row, command)
    except RationaleError:
        raise
    except Exception as exc:
        # only the exception's type: its message may hold the person's values (docs/privacy.md#logs)
        log.error(
            "explanation failed", model=model.name, version=model.version, error=type(exc).__name__
        )
        raise ExplanationFailed(
            f"model {model.name!r} version {model.version!r} failed on this instance: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def command_from_body(body: dict[str, Any]) -> ExplainCommand:
    """Turn a strictly validated request body (the fields as sent, e.g. the API's
    ``ExplainRequest.model_dump(exclude_unset=True)``) into a command; the same dict is the
    body that is canonicalised for the request fingerprint."""
    options = body.get("options") or {}
    return ExplainCommand(
        model=body["model"],
        version=body.get("version"),
        decision_id=body["decision_id"],
        subject_id=body.get("subject_id"),
        instance=body["instance"],
        attributes=body.get("attributes"),
        method=body.get("method") or "auto",
        top_k=options.get("top_k"),
        explained_class=options.get("explained_class"),
        output=options.get("output"),
        seed=int(options.get("seed") or 0),
        body=body,
        lang=options.get("lang") or "en",
        counterfactual=bool(options.get("counterfactual")),
    )


__all__ = [
    "ExplainCommand",
    "ExplainResult",
    "command_from_body",
    "explain_and_record",
]
