"""Same request, same bits: repeated, concurrent, micro-batched, whatever runs beside it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.explain import ExplainerUnavailable, Explanation, Target, explain_rows
from app.explain.engine import METHODS, ExplainerSet, explain_each
from tests.explain.conftest import Case

METHOD_CASES = [
    ("shap.tree", "german_forest"),
    ("shap.linear", "diabetes_ridge"),
    ("shap.exact", "german_logistic"),
    ("shap.permutation", "cancer_mlp"),
    ("lime.tabular", "diabetes_ridge"),
]


def bits(explanation: Explanation) -> tuple[bytes, bytes, bytes]:
    return (
        np.asarray(explanation.contributions, dtype=np.float64).tobytes(),
        np.float64(explanation.base_value).tobytes(),
        np.float64(explanation.model_output).tobytes(),
    )


def default_target(case: Case, seed: int = 0) -> Target:
    classes = case.model.classes
    return case.model.target(None, classes[-1] if classes else None, seed)


@pytest.mark.parametrize(("method", "fixture"), METHOD_CASES)
def test_repeats_are_bit_identical(
    request: pytest.FixtureRequest, method: str, fixture: str
) -> None:
    case: Case = request.getfixturevalue(fixture)
    target = default_target(case)
    rows = case.encoded(2)
    first = explain_rows(case.explainers(), rows, target, method)
    shared = case.explainers()
    again = explain_rows(shared, rows, target, method)
    third = explain_rows(shared, rows, target, method)
    assert [bits(e) for e in first] == [bits(e) for e in again] == [bits(e) for e in third]
    assert {e.method for e in first} == {method}


@pytest.mark.parametrize(("method", "fixture"), METHOD_CASES)
def test_eight_concurrent_requests_return_the_sequential_answer(
    request: pytest.FixtureRequest, method: str, fixture: str
) -> None:
    case: Case = request.getfixturevalue(fixture)
    target = default_target(case)
    rows = case.encoded(8)
    sequential = [
        explain_rows(case.explainers(), rows[i : i + 1], target, method)[0] for i in range(8)
    ]
    shared = case.explainers()
    barrier = threading.Barrier(8)
    answers: dict[int, Explanation] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            answers[i] = explain_rows(shared, rows[i : i + 1], target, method)[0]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert [bits(answers[i]) for i in range(8)] == [bits(e) for e in sequential]


def test_only_verified_explainers_claim_batching() -> None:
    assert {name for name, cls in METHODS.items() if cls.batchable} == {
        "shap.tree",
        "shap.linear",
    }


@pytest.mark.parametrize(
    ("method", "fixture", "output"),
    [
        ("shap.tree", "german_forest", None),
        ("shap.tree", "wine_forest", None),
        ("shap.tree", "diabetes_gbr", None),
        ("shap.linear", "german_logistic", "log_odds"),
        ("shap.linear", "diabetes_ridge", None),
    ],
)
def test_batchable_explainers_give_rows_together_the_bits_of_rows_alone(
    request: pytest.FixtureRequest, method: str, fixture: str, output: str | None
) -> None:
    case: Case = request.getfixturevalue(fixture)
    classes = case.model.classes
    target = case.model.target(output, classes[-1] if classes else None, 0)
    rows = case.encoded(8)
    explainer = case.explainers().get(method)
    together = explainer.explain(rows, target)
    alone = [explainer.explain(rows[i : i + 1], target)[0] for i in range(8)]
    assert [bits(e) for e in together] == [bits(e) for e in alone]


def test_micro_batch_of_mixed_requests_matches_each_alone(
    german_forest: Case, german_logistic: Case
) -> None:
    for case in (german_forest, german_logistic):
        rows = case.encoded(6)
        classes = case.model.classes or []
        targets = [case.model.target("probability", classes[i % 2], seed=i % 3) for i in range(6)]
        methods = ["auto", "shap.permutation", "auto", "shap.exact", "auto", "shap.permutation"]
        shared = case.explainers()
        batch = explain_each(shared, rows, targets, methods)
        for i in range(6):
            (alone,) = explain_rows(case.explainers(), rows[i : i + 1], targets[i], methods[i])
            result = batch[i]
            assert isinstance(result, Explanation)
            assert result.method == alone.method and bits(result) == bits(alone)


def test_micro_batch_reports_failures_per_row(wine_forest: Case) -> None:
    rows = wine_forest.encoded(3)
    probability = wine_forest.model.target("probability", "2", 0)
    log_odds = wine_forest.model.target("log_odds", "2", 0)
    results = explain_each(
        wine_forest.explainers(), rows, [probability, log_odds, probability], ["auto"] * 3
    )
    assert isinstance(results[0], Explanation) and isinstance(results[2], Explanation)
    # A refusal of that row's own (a random forest does not add up in log-odds), not a crash.
    assert type(results[1]) is ExplainerUnavailable
    assert "log_odds" in str(results[1])
    for i in (0, 2):
        (alone,) = explain_rows(wine_forest.explainers(), rows[i : i + 1], probability, "auto")
        assert bits(results[i]) == bits(alone)


def test_global_random_state_is_neither_used_nor_changed(
    cancer_mlp: Case, german_logistic: Case
) -> None:
    answers = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)
        before = np.random.get_state()[1].copy()  # type: ignore[index]
        run = []
        for case, method in ((cancer_mlp, "shap.permutation"), (german_logistic, "lime.tabular")):
            shared = ExplainerSet(case.model, case.explainers(lime_min_r2=0.0).thresholds)
            run.append(bits(explain_rows(shared, case.encoded(1), default_target(case), method)[0]))
        after = np.random.get_state()[1]  # type: ignore[index]
        assert np.array_equal(before, after)
        answers.append(run)
    assert answers[0] == answers[1]


def test_the_seed_drives_the_sampling(cancer_mlp: Case) -> None:
    rows = cancer_mlp.encoded(1)
    one = explain_rows(cancer_mlp.explainers(), rows, default_target(cancer_mlp, 0), "auto")[0]
    two = explain_rows(cancer_mlp.explainers(), rows, default_target(cancer_mlp, 7), "auto")[0]
    assert one.method == two.method == "shap.permutation"
    assert bits(one)[0] != bits(two)[0]
    assert one.parameters["seed"] == 0 and two.parameters["seed"] == 7
