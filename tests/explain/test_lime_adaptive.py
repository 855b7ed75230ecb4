"""lime.tabular: an explicit request is answered within the R² bar on the demo models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from app.catalog.model import load_version
from app.explain import FidelityFailure, explain_rows
from app.explain.engine import ExplainerSet, Thresholds
from app.explain.lime_tabular import LimeTabular
from app.explain.types import Target

MODELS = Path(__file__).resolve().parents[2] / "models"
ROWS = 60
"""Background rows explained per demo model (the first 60 of the 100)."""


@pytest.mark.parametrize("name", ["credit-risk", "income", "recidivism"])
def test_explicit_lime_meets_the_bar_on_nine_in_ten_demo_rows(name: str) -> None:
    loaded = load_version(MODELS / name / "1", allow_unsafe=False)
    model = loaded.model
    encoded = model.background[:ROWS]
    answered = 0
    widths = set()
    with threadpool_limits(1):  # as the workers run; OpenMP predictors crawl when oversubscribed
        predicted = np.argmax(model.raw_output(encoded), axis=1)
        for row, k in zip(encoded, predicted, strict=True):
            target = Target("probability", int(k), 0)
            try:
                (explanation,) = explain_rows(
                    loaded.explainers, row[None, :], target, "lime.tabular"
                )
            except FidelityFailure as failure:
                assert failure.figure == "local_r2" and failure.value < 0.5
                continue
            answered += 1
            assert explanation.method == "lime.tabular"
            assert explanation.exactness == "approximate"
            assert explanation.fidelity["local_r2"] >= 0.5
            surrogate = explanation.base_value + float(np.sum(explanation.contributions))
            assert surrogate == pytest.approx(explanation.fidelity["surrogate_prediction"])
            width = explanation.parameters["kernel_width"]
            assert 0 < width <= explanation.parameters["default_kernel_width"]
            widths.add(width)
    assert answered >= 0.9 * ROWS, f"{name}: {answered}/{ROWS} within the bar"
    assert widths  # the width used is reported


def test_the_bar_still_refuses_an_unfaithful_surrogate() -> None:
    """A bar no surrogate meets: the best attempt is refused with its R², never returned."""
    loaded = load_version(MODELS / "recidivism" / "1", allow_unsafe=False)
    explainers = ExplainerSet(loaded.model, Thresholds(lime_min_r2=0.999))
    row = loaded.model.background[:1]
    with pytest.raises(FidelityFailure, match="local_r2"):
        explain_rows(explainers, row, Target("probability", 1, 0), "lime.tabular")


def test_demo_lime_is_deterministic_and_seeded() -> None:
    loaded = load_version(MODELS / "credit-risk" / "1", allow_unsafe=False)
    row = loaded.model.background[3:4]
    lime = LimeTabular(loaded.model)
    first = lime.explain(row, Target("probability", 1, 0))[0]
    again = LimeTabular(loaded.model).explain(row, Target("probability", 1, 0))[0]
    other = lime.explain(row, Target("probability", 1, 5))[0]
    assert first.contributions.tobytes() == again.contributions.tobytes()
    assert first.parameters == again.parameters
    assert first.contributions.tobytes() != other.contributions.tobytes()
    assert other.parameters["seed"] == 5
