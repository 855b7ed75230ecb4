"""Rows that arrive together are explained together, with exactly the bits of alone."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.catalog.model import load_version
from app.compute.batcher import ExplainBatcher, compute_many, compute_one
from app.compute.batcher import Options as Job
from app.errors import InvalidInput
from tests.helpers import MODELS, instances


@pytest.mark.parametrize("name", ["credit-boost", "credit-risk", "income", "recidivism"])
def test_batched_rows_get_the_bits_they_get_alone(name: str) -> None:
    model = load_version(MODELS / name / "1", allow_unsafe=False)
    rows = instances(name, 12)
    jobs = [Job(output="log_odds" if i % 3 == 0 else None) for i in range(len(rows))]
    together = compute_many(model, list(zip(rows, jobs, strict=True)))
    for row, job, batched in zip(rows, jobs, together, strict=True):
        alone = compute_one(model, row, job)
        assert not isinstance(batched, Exception)
        assert batched.raw.tobytes() == alone.raw.tobytes()
        assert (
            batched.explanation.contributions.tobytes() == alone.explanation.contributions.tobytes()
        )
        assert batched.explanation.base_value == alone.explanation.base_value
        assert batched.explanation.method == alone.explanation.method


def test_tree_models_are_predicted_together_and_linear_ones_alone() -> None:
    assert load_version(MODELS / "credit-risk" / "1", allow_unsafe=False).batch_predict_safe
    assert load_version(MODELS / "credit-boost" / "1", allow_unsafe=False).batch_predict_safe
    assert not load_version(MODELS / "recidivism" / "1", allow_unsafe=False).batch_predict_safe


def test_one_refused_row_does_not_fail_its_neighbours() -> None:
    model = load_version(MODELS / "credit-risk" / "1", allow_unsafe=False)
    rows = instances("credit-risk", 3)
    jobs = [Job(), Job(method="shap.linear"), Job()]
    outcomes = compute_many(model, list(zip(rows, jobs, strict=True)))
    assert not isinstance(outcomes[0], Exception) and not isinstance(outcomes[2], Exception)
    assert isinstance(outcomes[1], InvalidInput)
    assert outcomes[1].errors[0].field == "method"


def test_concurrent_requests_through_the_batcher_match_sequential_answers() -> None:
    model = load_version(MODELS / "credit-risk" / "1", allow_unsafe=False)
    rows = instances("credit-risk", 40)
    expected = [compute_one(model, row, Job()) for row in rows]

    async def run() -> tuple[list[object], list[tuple[str, int]]]:
        with ThreadPoolExecutor(1) as executor:
            batcher = ExplainBatcher(executor, max_batch=16)
            got = await asyncio.gather(*(batcher.compute(model, row, Job()) for row in rows))
            return got, list(batcher.batch_sizes)

    got, sizes = asyncio.run(run())
    # The rows really were taken together (with max_batch=1 this would be 40 calls of 1).
    assert sum(n for _, n in sizes) == len(rows) and max(n for _, n in sizes) == 16
    for mine, theirs in zip(got, expected, strict=True):
        assert (
            mine.explanation.contributions.tobytes() == theirs.explanation.contributions.tobytes()
        )  # type: ignore[attr-defined]
