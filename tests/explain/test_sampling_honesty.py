"""shap.permutation: the stop rule is relative and the reported standard errors are honest.

Reference: the same unbiased estimator with another seed and a fixed, larger budget (its
own standard errors are asserted to be well below ours). A feature's error is then judged
against the combined standard error √(se² + se_ref²), which the reference's precision
keeps within a few per cent of ours alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from app.explain import Target, explain_rows
from app.explain.permutation import PermutationShap
from app.explain.types import Thresholds
from tests.explain.conftest import Case, _case

REFERENCE_PAIRS = 2048
REFERENCE_FACTOR = 8
"""The reference takes 8× our pairs, at least 2048 (one round, so its pairs are spread evenly
over the background rows; ours share theirs out by each row's spread, which buys about as
much as doubling the pairs, so 8× gives the reference about half our standard error)."""
ROWS = 3


@pytest.fixture(scope="module")
def cancer_bayes() -> Case:
    """30 numeric features, Gaussian naive Bayes: additive in log-odds, not in probability."""
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    pipe = Pipeline([("scale", StandardScaler()), ("nb", GaussianNB())])
    return _case("cancer-bayes", pipe, frame, target, "classification", background_rows=30)


@pytest.mark.parametrize("fixture", ["cancer_mlp", "cancer_bayes"])
def test_reported_standard_errors_are_honest(request: pytest.FixtureRequest, fixture: str) -> None:
    case: Case = request.getfixturevalue(fixture)
    thresholds = Thresholds()
    z: list[np.ndarray] = []
    relative_errors = []
    encoded = case.encoded(ROWS)
    for row in encoded:
        probabilities = case.model.raw_output(row[None, :])[0]
        target = Target("probability", int(np.argmax(probabilities)), 0)
        (ours,) = explain_rows(case.explainers(), row[None, :], target, "shap.permutation")
        other = Target(target.output, target.class_index, 991)
        pairs = max(REFERENCE_PAIRS, REFERENCE_FACTOR * ours.parameters["permutations"])
        (reference,) = PermutationShap(case.model, permutations=pairs).explain(row[None, :], other)
        assert ours.exactness == "estimated" and ours.standard_errors is not None
        # a small background: every pair takes one row, the error is stratified by row
        assert ours.parameters["stratified_by_background_row"] is True
        assert reference.standard_errors is not None
        # the bar is relative to the explanation's own scale, and met by every feature
        bar = thresholds.standard_error_bar(ours.contributions, ours.model_output)
        assert bar >= thresholds.sampling_standard_error * np.mean(np.abs(ours.contributions))
        assert float(ours.standard_errors.max()) <= bar
        assert ours.fidelity["standard_error"] == float(ours.standard_errors.max())
        # the reference is markedly more precise than what it judges
        assert np.mean(reference.standard_errors) <= 0.6 * np.mean(ours.standard_errors)
        assert abs(ours.additivity_residual) <= 1e-9
        assert ours.base_value == reference.base_value
        combined = np.sqrt(ours.standard_errors**2 + reference.standard_errors**2)
        z.append(np.abs(ours.contributions - reference.contributions) / combined)
        relative_errors.append(
            np.mean(np.abs(ours.contributions - reference.contributions))
            / np.mean(np.abs(reference.contributions))
        )
    scores = np.concatenate(z)
    assert len(scores) == ROWS * 30
    assert np.mean(scores <= 3) >= 0.95
    # honest both ways: z² averages 1 when the errors are right, far less when inflated
    print(f"{fixture}: mean z² {np.mean(scores**2):.2f}, within 3 SE {np.mean(scores <= 3):.1%}")
    assert 0.3 <= float(np.mean(scores**2)) <= 2.5
    assert max(relative_errors) <= 0.1


def test_the_relative_bar_is_a_setting_and_buys_precision(cancer_mlp: Case) -> None:
    row = cancer_mlp.encoded(1)
    target = Target("probability", 1, 0)
    (loose,) = explain_rows(cancer_mlp.explainers(), row, target, "shap.permutation")
    (tight,) = explain_rows(
        cancer_mlp.explainers(sampling_standard_error=0.08), row, target, "shap.permutation"
    )
    assert tight.parameters["evaluations"] > 2 * loose.parameters["evaluations"]
    scale = float(np.mean(np.abs(tight.contributions)))
    assert tight.fidelity["standard_error"] <= 0.08 * scale
    assert loose.fidelity["standard_error"] > 0.08 * float(np.mean(np.abs(loose.contributions)))


def test_the_absolute_floor_holds_for_a_near_zero_explanation(cancer_mlp: Case) -> None:
    """A feature-less difference (the row is its own background) stops at once."""
    row = cancer_mlp.encoded(1)
    model = cancer_mlp.model
    own = type(model)(
        model.pipeline,
        model.features,
        cancer_mlp.rows.head(1),
        model.task,
        model.classes,
    )
    estimator = PermutationShap(own, thresholds=Thresholds())
    (explanation,) = estimator.explain(row, Target("probability", 1, 0))
    assert np.all(explanation.contributions == 0.0)
    assert explanation.parameters["rounds"] == 1
    assert explanation.fidelity["standard_error"] <= Thresholds().sampling_standard_error_floor


def test_a_missed_bar_is_refused_with_its_figure(cancer_mlp: Case) -> None:
    """A budget too small for the bar: the engine refuses, naming the standard error."""
    from app.explain.types import FidelityFailure

    estimator = PermutationShap(
        cancer_mlp.model, permutations=4, max_permutations=4, thresholds=Thresholds()
    )
    target = Target("probability", 1, 0)
    (explanation,) = estimator.explain(cancer_mlp.encoded(1), target)
    from app.explain.engine import check_fidelity

    with pytest.raises(FidelityFailure, match="standard_error"):
        check_fidelity(explanation, estimator, Thresholds(), auto=False)


def test_a_large_background_falls_back_to_blocks_and_a_conservative_error(
    cancer_mlp: Case,
) -> None:
    """Above ``stratify_max_background`` rows, pairs average blocks and the error is the
    unstratified (conservative) one; both paths agree within their standard errors."""

    class Blocked(PermutationShap):
        stratify_max_background = 1

    row = cancer_mlp.encoded(1)
    target = Target("probability", 1, 0)
    (blocked,) = Blocked(cancer_mlp.model, permutations=512).explain(row, target)
    (stratified,) = PermutationShap(cancer_mlp.model, permutations=512).explain(row, target)
    assert blocked.parameters["stratified_by_background_row"] is False
    assert stratified.parameters["stratified_by_background_row"] is True
    assert blocked.standard_errors is not None and stratified.standard_errors is not None
    assert abs(blocked.additivity_residual) <= 1e-9
    assert abs(stratified.additivity_residual) <= 1e-9
    combined = np.sqrt(blocked.standard_errors**2 + stratified.standard_errors**2)
    z = np.abs(blocked.contributions - stratified.contributions) / combined
    assert np.mean(z <= 3) >= 0.95
