"""Computing explanations off the event loop, rows that arrive together in one call.

Requests for the same model version that arrive while the explain thread is busy are
taken together (on the fast lane; slow requests have a lane of their own): encoded in one
pass, predicted in one call where the model's prediction of a row does not depend on its
neighbours, and explained together where the explainer is batchable. Every row gets
exactly the bits it would get alone, and a row that fails fails alone. A batch worker
calls ``compute_many`` directly with its items.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import structlog

from app.catalog import LoadedModel
from app.compute import cost
from app.errors import FidelityError, FieldError, InternalError, InvalidInput, RationaleError
from app.explain import ExplainerUnavailable, Explanation, FidelityFailure, Target
from app.explain.engine import explain_each

MAX_BATCH = 64
"""Most rows explained in one call; the rest wait for the next one."""
FAST_LANE_SECONDS = 0.25
"""Default estimated compute above which a request runs on the slow lane."""
log = structlog.get_logger(__name__)


class Explainable(Protocol):
    """What ``compute_many`` needs of a request."""

    @property
    def method(self) -> str: ...

    @property
    def explained_class(self) -> str | None: ...

    @property
    def output(self) -> str | None: ...

    @property
    def seed(self) -> int: ...


@dataclass(frozen=True)
class Options:
    """Explanation options of a row: by default ``auto``, the predicted class, its
    probability, seed 0."""

    method: str = "auto"
    explained_class: str | None = None
    output: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class Computed:
    """A row's prediction (predict_proba or predict output) and its explanation."""

    raw: np.ndarray
    explanation: Explanation
    target: Target


def _refusal(
    model: LoadedModel, exc: Exception, job: Explainable, target: Target | None
) -> RationaleError:
    """The 422 refusing a row: a fidelity figure, the output space, or the method."""
    if isinstance(exc, FidelityFailure):
        return FidelityError(
            str(exc),
            extra={"figure": exc.figure, "value": exc.value, "threshold": exc.threshold},
        )
    field_name = "method"
    if target is None:
        field_name = "options.output"  # the output space does not exist for this model
    elif target.output == "log_odds":
        # The method explains this model, only not in log-odds: the output is at fault.
        try:
            probability = Target("probability", target.class_index, target.seed)
            model.explainers.candidates(job.method, probability)
            field_name = "options.output"
        except ExplainerUnavailable:
            pass
    return InvalidInput(str(exc), errors=[FieldError(field_name, str(exc))])


def _model_refused(exc: ValueError) -> RationaleError:
    """The artifact's own input check refused the row (validation did not foresee it)."""
    message = str(exc)[:200]
    return InvalidInput(
        "the model cannot take this instance",
        errors=[FieldError("instance", f"the model refused it: {message}")],
    )


def compute_many(
    model: LoadedModel, jobs: Sequence[tuple[dict[str, Any], Explainable]]
) -> list[Computed | RationaleError]:
    """Encode, predict and explain rows; each answer is what the row would get alone.

    A row that makes the batch fail (the model refusing its values, say) fails alone: the
    rows are then computed one by one, so its neighbours get exactly their own answers."""
    try:
        return _together(model, jobs)
    except Exception:
        if len(jobs) > 1:
            log.warning("micro-batch failed; computing its rows one by one", rows=len(jobs))
    results: list[Computed | RationaleError] = []
    for job in jobs:
        try:
            results.extend(_together(model, [job]))
        except ValueError as exc:
            log.warning("model refused a row", model=model.name, error=str(exc)[:200])
            results.append(_model_refused(exc))
        except Exception as exc:
            log.exception("explanation failed", model=model.name)
            results.append(InternalError(f"the explanation failed: {type(exc).__name__}"))
    return results


def _together(
    model: LoadedModel, jobs: Sequence[tuple[dict[str, Any], Explainable]]
) -> list[Computed | RationaleError]:
    tabular = model.model
    encoded = tabular.encode([row for row, _ in jobs])
    if model.batch_predict_safe:
        raw = tabular.raw_output(encoded)
    else:
        # concatenate, not vstack: a regressor's predictions are 1-D, (n,), not (n, 1)
        raw = np.concatenate([tabular.raw_output(encoded[i : i + 1]) for i in range(len(jobs))])
    results: list[Computed | RationaleError] = []
    targets: list[Target] = []
    ready: list[int] = []
    for i, (_row, job) in enumerate(jobs):
        class_name = job.explained_class
        if tabular.task == "classification" and class_name is None:
            assert tabular.classes is not None
            class_name = tabular.classes[int(np.argmax(raw[i]))]
        try:
            targets.append(tabular.target(job.output, class_name, job.seed))
            ready.append(i)
        except ExplainerUnavailable as exc:
            targets.append(Target("probability", None, job.seed))
            results.append(_refusal(model, exc, job, None))
            continue
        results.append(InvalidInput("not explained"))
    if ready:
        rows = encoded[ready]
        with tabular.known_output(rows, raw[ready]):
            outcomes = explain_each(
                model.explainers,
                rows,
                [targets[i] for i in ready],
                [jobs[i][1].method for i in ready],
            )
        for i, outcome in zip(ready, outcomes, strict=True):
            if isinstance(outcome, Explanation):
                results[i] = Computed(raw[i], outcome, targets[i])
            elif isinstance(outcome, FidelityFailure | ExplainerUnavailable):
                results[i] = _refusal(model, outcome, jobs[i][1], targets[i])
            else:
                raise outcome
    return results


def compute_one(model: LoadedModel, row: dict[str, Any], job: Explainable) -> Computed:
    """One row, alone; raises the refusal as a ``RationaleError``."""
    (outcome,) = compute_many(model, [(row, job)])
    if isinstance(outcome, RationaleError):
        raise outcome
    return outcome


@dataclass
class _Pending:
    jobs: list[tuple[dict[str, Any], Explainable, asyncio.Future[Computed]]] = field(
        default_factory=list
    )
    running: bool = False
    task: asyncio.Task[None] | None = None


class ExplainBatcher:
    """Hands rows to the explain threads, together when they arrive together.

    Two lanes: a request whose estimated compute (``cost.request_cost``) is over
    ``fast_lane_seconds`` runs on the slow lane's own threads, one row per call, so a slow
    explanation never holds up another client's fast one; fast rows of one model version
    that arrive together are micro-batched on the fast lane."""

    def __init__(
        self,
        executor: Executor,
        max_batch: int = MAX_BATCH,
        *,
        slow_executor: Executor | None = None,
        fast_lane_seconds: float = FAST_LANE_SECONDS,
    ) -> None:
        self.executor = executor
        self.slow_executor = slow_executor
        self.max_batch = max_batch
        self.fast_lane_seconds = fast_lane_seconds
        self.batch_sizes: deque[tuple[str, int]] = deque(maxlen=4096)
        """(lane, rows) of recent calls, newest last: how rows were taken together."""
        self._pending: dict[tuple[str, str, str], _Pending] = {}

    def lane(self, model: LoadedModel, job: Explainable) -> str:
        """``slow`` for a request estimated over ``fast_lane_seconds`` (when there is a slow
        lane), else ``fast``."""
        if self.slow_executor is None:
            return "fast"
        slow = cost.request_cost(model, job.method) > self.fast_lane_seconds
        return "slow" if slow else "fast"

    async def compute(self, model: LoadedModel, row: dict[str, Any], job: Explainable) -> Computed:
        """The row's prediction and explanation; raises its refusal."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Computed] = loop.create_future()
        lane = self.lane(model, job)
        slot = self._pending.setdefault((lane, model.name, model.version), _Pending())
        slot.jobs.append((row, job, future))
        if not slot.running:
            slot.running = True
            slot.task = loop.create_task(self._drain(model, slot, lane))
        return await future

    async def _drain(self, model: LoadedModel, slot: _Pending, lane: str) -> None:
        loop = asyncio.get_running_loop()
        executor = self.executor
        limit = self.max_batch
        if lane == "slow" and self.slow_executor is not None:
            executor, limit = self.slow_executor, 1
        try:
            while slot.jobs:
                batch, slot.jobs = slot.jobs[:limit], slot.jobs[limit:]
                # A client gone (its future cancelled) costs no compute.
                batch = [job for job in batch if not job[2].done()]
                if not batch:
                    continue
                self.batch_sizes.append((lane, len(batch)))
                try:
                    outcomes = await loop.run_in_executor(
                        executor, compute_many, model, [(r, j) for r, j, _ in batch]
                    )
                except Exception as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            slot.running = False
