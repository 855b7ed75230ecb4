"""Computing explanations off the event loop, rows that arrive together in one call.

Requests for the same model version that arrive while the explain thread is busy are
taken together: encoded in one pass, predicted in one call where the model's prediction of
a row does not depend on its neighbours, and explained together where the explainer is
batchable. Every row gets exactly the bits it would get alone. A batch worker calls
``compute_many`` directly with its items.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from app.errors import FidelityError, FieldError, InvalidInput, RationaleError
from app.explain import ExplainerUnavailable, Explanation, FidelityFailure, Target
from app.explain.engine import explain_each
from app.registry import LoadedModel

MAX_BATCH = 64
"""Most rows explained in one call; the rest wait for the next one."""


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


def _refusal(exc: Exception) -> RationaleError:
    if isinstance(exc, FidelityFailure):
        return FidelityError(
            str(exc),
            extra={"figure": exc.figure, "value": exc.value, "threshold": exc.threshold},
        )
    field_name = "options.output" if "log-odds" in str(exc) else "method"
    return InvalidInput(str(exc), errors=[FieldError(field_name, str(exc))])


def compute_many(
    model: LoadedModel, jobs: Sequence[tuple[dict[str, Any], Explainable]]
) -> list[Computed | RationaleError]:
    """Encode, predict and explain rows; each answer is what the row would get alone."""
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
            results.append(_refusal(exc))
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
            else:
                results[i] = _refusal(outcome)
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
    """Hands rows to the explain thread, together when they arrive together."""

    def __init__(self, executor: Executor, max_batch: int = MAX_BATCH) -> None:
        self.executor = executor
        self.max_batch = max_batch
        self._pending: dict[tuple[str, str], _Pending] = {}

    async def compute(self, model: LoadedModel, row: dict[str, Any], job: Explainable) -> Computed:
        """The row's prediction and explanation; raises its refusal."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Computed] = loop.create_future()
        slot = self._pending.setdefault((model.name, model.version), _Pending())
        slot.jobs.append((row, job, future))
        if not slot.running:
            slot.running = True
            slot.task = loop.create_task(self._drain(model, slot))
        return await future

    async def _drain(self, model: LoadedModel, slot: _Pending) -> None:
        loop = asyncio.get_running_loop()
        try:
            while slot.jobs:
                batch, slot.jobs = slot.jobs[: self.max_batch], slot.jobs[self.max_batch :]
                try:
                    outcomes = await loop.run_in_executor(
                        self.executor, compute_many, model, [(r, j) for r, j, _ in batch]
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
