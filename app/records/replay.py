"""Replay: recompute a stored explanation with its recorded model version, method and seed, and
say whether it reproduces (docs/record.md#replay)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from app.access.principals import Principal
from app.catalog import LoadedModel
from app.compute.batcher import Options, compute_one
from app.errors import Conflict, RationaleError
from app.explain import Explanation
from app.explanations.service import LIBRARY_VERSIONS
from app.ledger.repository import StoredRecord
from app.records.service import log_access, open_sealed, resolve_explanation
from app.runtime.context import Context

REPLAY_TOLERANCE = 1e-9
"""Largest |recorded − replayed| contribution for a replay to match (docs/record.md#replay)."""


def _replayable(ctx: Context, document: dict[str, Any]) -> tuple[LoadedModel, dict[str, Any]]:
    """The recorded model version and the person's input, or a 409 saying why not."""
    model_ref = document["clear"]["model"]
    sealed = open_sealed(ctx, document)
    if sealed is None or sealed.get("input") is None:
        raise Conflict(
            "cannot replay: the input was erased (the subject's data key is destroyed)",
            extra={"reason": "input_erased"},
        )
    model = ctx.catalog.get(model_ref["name"], model_ref["version"])
    if model is None:
        raise Conflict(
            f"cannot replay: model {model_ref['name']!r} version {model_ref['version']!r} "
            "is not loadable with the installed libraries",
            extra={"reason": "model_unavailable"},
        )
    if model.artifact_sha256 != model_ref.get("sha256"):
        raise Conflict(
            "cannot replay: the served artifact differs from the recorded one",
            extra={"reason": "artifact_changed"},
        )
    return model, sealed["input"]


def _differences(
    model: LoadedModel, recorded: dict[str, Any], explanation: Explanation
) -> list[dict[str, Any]]:
    """The recorded contributions the replay does not reproduce within the tolerance."""
    names = model.model.feature_names
    replayed = {n: float(explanation.contributions[i]) for i, n in enumerate(names)}
    differences = []
    for attribution in recorded["attributions"]:
        feature = attribution["feature"]
        now = replayed.get(feature)
        delta = None if now is None else abs(now - float(attribution["contribution"]))
        if delta is None or delta > REPLAY_TOLERANCE:
            differences.append(
                {
                    "feature": feature,
                    "recorded": attribution["contribution"],
                    "replayed": now,
                    "difference": delta,
                }
            )
    return differences


def _replay(ctx: Context, stored: StoredRecord) -> dict[str, Any]:
    document = json.loads(stored.document)
    clear = document["clear"]
    recorded = clear["explanation"]
    model, row = _replayable(ctx, document)
    options = Options(
        method=recorded["method"],
        explained_class=recorded.get("explained_class"),
        output=recorded.get("output"),
        seed=int(recorded.get("seed") or 0),
    )
    try:
        explanation = compute_one(model, row, options).explanation
    except RationaleError as exc:
        raise Conflict(
            f"cannot replay: recomputing with {recorded['method']} failed: {exc.detail}",
            extra={"reason": "recompute_failed"},
        ) from exc
    differences = _differences(model, recorded, explanation)
    recorded_versions: dict[str, Any] = recorded.get("versions") or {}
    versions_changed = {
        name: {"recorded": recorded_versions.get(name), "current": current}
        for name, current in (LIBRARY_VERSIONS | model.library_versions).items()
        if recorded_versions.get(name) != current
    }
    same_method = explanation.method == recorded["method"]
    return {
        "id": stored.id,
        "decision_id": clear["decision_id"],
        "model": {"name": model.name, "version": model.version, "sha256": model.artifact_sha256},
        "match": same_method and not differences,
        "tolerance": REPLAY_TOLERANCE,
        "method": {"recorded": recorded["method"], "replayed": explanation.method},
        "seed": options.seed,
        "base_value": {"recorded": recorded.get("base_value"), "replayed": explanation.base_value},
        "differences": differences,
        "versions_changed": versions_changed,
    }


async def replay(ctx: Context, principal: Principal, record_id: str) -> dict[str, Any]:
    """Recompute a stored explanation with its recorded model version, method and seed,
    and say whether every contribution matches within 1e-9 (docs/record.md#replay)."""
    found = await asyncio.to_thread(
        resolve_explanation, ctx, principal, "record", record_id=record_id
    )
    stored = found.stored
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(ctx.executor, _replay, ctx, stored)
    await log_access(ctx, principal, "POST /v1/explanations/{id}/replay", [stored.id])
    return result
