"""Faults stay where they start: a row the model cannot take, a client gone, a stopped
writer. Real models, a real SQLite store, no stand-ins."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor
from pathlib import Path

import pytest

from app.catalog.model import load_version
from app.catalog.validation import FLOAT32_MAX, check_model_range, value_limit
from app.compute import cost
from app.compute.batcher import Computed, ExplainBatcher, compute_many, compute_one
from app.compute.batcher import Options as Job
from app.errors import InvalidInput
from app.ledger import migrate
from app.ledger.chain import Draft
from app.ledger.db import make_engine
from app.ledger.repository import Repository
from app.ledger.writer import GroupWriter, WriterStopped
from tests.helpers import MODELS, instances
from tests.ledger.support import explanation_draft

POISON = 1e308
"""Finite, valid JSON, beyond float32: scikit-learn's trees refuse it."""


def bits(computed: Computed) -> tuple[bytes, bytes, float, str]:
    e = computed.explanation
    return computed.raw.tobytes(), e.contributions.tobytes(), e.base_value, e.method


@pytest.fixture(scope="module")
def credit():  # type: ignore[no-untyped-def]
    return load_version(MODELS / "credit-risk" / "1", allow_unsafe=False)


def test_values_beyond_what_the_model_takes_are_named_before_any_batching(credit) -> None:  # type: ignore[no-untyped-def]
    row = instances("credit-risk", 1)[0]
    assert value_limit(credit.model) == FLOAT32_MAX  # a tree ensemble reads float32
    assert check_model_range(credit.model, row, "instance") == []
    poisoned = row | {"credit_amount": POISON, "age_in_years": -POISON}
    errors = check_model_range(credit.model, poisoned, "instance")
    assert [e.field for e in errors] == ["instance.credit_amount", "instance.age_in_years"]
    assert "float32" in errors[0].message
    # Just inside float32 is taken, and the model really does answer for it.
    inside = row | {"credit_amount": 3.0e38}
    assert check_model_range(credit.model, inside, "instance") == []
    assert isinstance(compute_one(credit, inside, Job()), Computed)


def test_a_linear_model_takes_any_finite_value() -> None:
    recidivism = load_version(MODELS / "recidivism" / "1", allow_unsafe=False)
    assert value_limit(recidivism.model) > FLOAT32_MAX


def test_a_row_failing_inside_a_micro_batch_fails_alone(credit) -> None:  # type: ignore[no-untyped-def]
    rows = instances("credit-risk", 6)
    rows[2] = rows[2] | {"credit_amount": POISON}  # past validation, as a second line of defence
    jobs = [Job(), Job(output="log_odds"), Job(), Job(seed=3), Job(), Job(method="shap.tree")]
    outcomes = compute_many(credit, list(zip(rows, jobs, strict=True)))
    refused = outcomes[2]
    assert isinstance(refused, InvalidInput)
    assert refused.errors[0].field == "instance" and "float32" in refused.errors[0].message
    for i in (0, 1, 3, 4, 5):
        got = outcomes[i]
        assert isinstance(got, Computed), got
        assert bits(got) == bits(compute_one(credit, rows[i], jobs[i]))


def test_the_batcher_takes_rows_together_and_each_gets_its_own_answer(credit) -> None:  # type: ignore[no-untyped-def]
    rows = instances("credit-risk", 40)
    rows[7] = rows[7] | {"credit_amount": POISON}
    expected = {i: bits(compute_one(credit, row, Job())) for i, row in enumerate(rows) if i != 7}

    async def run() -> tuple[list[object], list[tuple[str, int]]]:
        with ThreadPoolExecutor(1) as executor:
            batcher = ExplainBatcher(executor, max_batch=16)
            # Keep the explain thread busy so that the requests queue up and are batched.
            gate = threading.Event()
            executor.submit(gate.wait, 30)
            tasks = [asyncio.ensure_future(batcher.compute(credit, row, Job())) for row in rows]
            await asyncio.sleep(0.05)
            gate.set()
            got = await asyncio.gather(*tasks, return_exceptions=True)
            return got, list(batcher.batch_sizes)

    got, sizes = asyncio.run(run())
    assert sizes == [("fast", 16), ("fast", 16), ("fast", 8)]
    refused = got[7]
    assert isinstance(refused, InvalidInput) and refused.errors[0].field == "instance"
    for i, outcome in enumerate(got):
        if i != 7:
            assert isinstance(outcome, Computed)
            assert bits(outcome) == expected[i]


def test_slow_requests_take_their_own_lane_and_the_budget_is_estimated() -> None:
    income = load_version(MODELS / "income" / "1", allow_unsafe=False)
    estimates = cost.apply_budget(income, budget=1e9)
    # 2^12 coalitions × 100 background rows against one pass over the background.
    assert estimates["shap.exact"] > 100 * estimates["shap.tree"]
    assert cost.request_cost(income, "auto") == estimates["shap.tree"]
    with ThreadPoolExecutor(1) as fast, ThreadPoolExecutor(1) as slow:
        between = (estimates["shap.tree"] * estimates["shap.exact"]) ** 0.5
        batcher = ExplainBatcher(fast, slow_executor=slow, fast_lane_seconds=between)
        assert batcher.lane(income, Job()) == "fast"
        assert batcher.lane(income, Job(method="shap.exact")) == "slow"
    # Under a budget the exact method does not fit in, auto never picks it and an explicit
    # request is refused naming the budget.
    small = estimates["shap.exact"] / 2
    cost.apply_budget(income, budget=small)
    assert "shap.exact" in income.explainers.over_budget
    assert "shap.exact" not in income.explainers.candidates(
        "auto", income.model.target(None, ">50K", 0)
    )
    error = cost.over_budget(income, "shap.exact", small)
    assert error is not None and error.field == "method" and "budget" in error.message
    assert cost.over_budget(income, "shap.tree", small) is None


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate.upgrade(engine)
    return Repository(engine)


def draft(i: int) -> Draft:
    return explanation_draft(i)


def test_the_writer_survives_callers_that_went_away(repository: Repository) -> None:
    writer = GroupWriter(repository)
    try:
        futures = [writer.submit([(draft(i), None)]) for i in range(300)]
        cancelled = [f for f in futures[::2] if f.cancel()]
        for future in futures:
            try:
                (outcome,) = future.result(timeout=60)
                assert outcome.record is not None
            except CancelledError:
                assert future in cancelled
        assert writer.alive
        (after,) = writer.append([(draft(999), None)], timeout=60)
        assert after.record is not None
        stored = repository.verify()
        assert stored["ok"] is True
        # A caller gone before the writer took its draft: nothing stored for it.
        assert stored["records_checked"] == 300 - len(cancelled) + 1
    finally:
        writer.close()


def test_a_stopped_writer_answers_at_once_instead_of_hanging(repository: Repository) -> None:
    writer = GroupWriter(repository)
    writer.close()
    assert not writer.alive
    with pytest.raises(WriterStopped) as raised:
        writer.append([(draft(1), None)], timeout=5)
    assert raised.value.status_code == 503 and raised.value.headers["Retry-After"]

    async def bounded() -> None:
        await writer.commit([(draft(2), None)], timeout=5)

    with pytest.raises(WriterStopped):
        asyncio.run(bounded())
