"""Every scikit-learn family of the conformance table is served under ``auto`` within the
the fidelity bars (docs/explanations.md#fidelity-bars), or refused at load with the reason the
table gives; a bare estimator (no Pipeline) is served by the methods, and with the exactness,
of its Pipeline twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.families import BARE_CASES, CASES, Case, bar, pipeline_twin, run_case

pytestmark = pytest.mark.slow


def _param(case: Case) -> object:
    marks = []
    if case.engine_gap:
        marks.append(pytest.mark.xfail(reason=case.engine_gap, strict=True))
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_family_is_served_within_its_bars_or_refused_as_the_table_says(
    case: Case, tmp_path: Path
) -> None:
    outcome = run_case(case, tmp_path / "models")
    if case.refused is not None:
        assert outcome.refused is not None, f"{case.id} was served, the table says refused"
        assert case.refused in outcome.refused
        return
    assert outcome.refused is None, outcome.refused
    assert outcome.rows, "no row was explained"
    for served in outcome.rows:
        # the service's prediction is the artifact's own
        assert abs(served.output - served.artifact_output) <= 1e-9 * max(1.0, abs(served.output))
        # adds up to the artifact's prediction within the fidelity bar for its exactness
        assert abs(served.residual) <= bar(served), (served.method, served.residual)
        assert served.repeat_identical, f"{served.method} is not bit-identical on repeat"
        assert served.exactness in ("exact", "estimated", "approximate")
        if served.exactness == "estimated":
            assert served.has_standard_errors
        if served.exactness == "approximate":
            assert served.approximates


BLACK_BOX_WHEN_BARE = (
    "CalibratedClassifierCV",
    "VotingClassifier",
    "VotingRegressor",
    "StackingClassifier",
    "StackingRegressor",
)
"""Meta-estimators that fit their members on the DataFrame they are given: the members hold
its column names, so a bare one is explained over raw features as a black box."""


@pytest.mark.parametrize("case", [_param(c) for c in BARE_CASES])
def test_a_bare_estimator_is_served_as_its_pipeline_twin(case: Case, tmp_path: Path) -> None:
    bare = run_case(case, tmp_path / "bare")
    twin = run_case(pipeline_twin(case), tmp_path / "twin")
    assert (bare.refused is None) == (twin.refused is None), (bare.refused, twin.refused)
    if bare.refused is not None:
        return
    assert bare.decomposed == (not case.family.startswith(BLACK_BOX_WHEN_BARE))
    assert bare.methods == twin.methods
    assert bare.exactness == twin.exactness
