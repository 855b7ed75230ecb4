"""Forest predictions from the trees' own arrays are scikit-learn's, bit for bit, or not used."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from app.explain import forests


def _data(kind: str, missing: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = (load_breast_cancer if kind == "classifier" else load_diabetes)(return_X_y=True)
    x = np.asarray(x, dtype=np.float64)
    if missing:
        x = x.copy()
        x[np.random.default_rng(3).random(x.shape) < 0.1] = np.nan
    return x, y


FAMILIES = [
    ("classifier", RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0)),
    ("classifier", ExtraTreesClassifier(n_estimators=30, max_depth=6, random_state=0)),
    ("classifier", DecisionTreeClassifier(max_depth=8, random_state=0)),
    ("regressor", RandomForestRegressor(n_estimators=30, max_depth=6, random_state=0)),
    ("regressor", ExtraTreesRegressor(n_estimators=30, max_depth=6, random_state=0)),
    ("regressor", DecisionTreeRegressor(max_depth=8, random_state=0)),
]


@pytest.mark.parametrize("missing", [False, True], ids=["complete", "missing"])
@pytest.mark.parametrize(("kind", "estimator"), FAMILIES, ids=lambda v: type(v).__name__)
def test_the_walk_is_the_librarys_prediction_bit_for_bit(
    kind: str, estimator: object, missing: bool
) -> None:
    x, y = _data(kind, missing)
    fitted = estimator.fit(x[:300], y[:300])  # type: ignore[attr-defined]
    predict = forests.predictor(fitted, x[:100])
    assert predict is not None
    rows = np.vstack([x[300:], np.random.default_rng(5).normal(x[:1], 1.0, (200, x.shape[1]))])
    library = fitted.predict_proba(rows) if kind == "classifier" else fitted.predict(rows)
    assert predict(rows).tobytes() == np.asarray(library, dtype=np.float64).tobytes()
    one = predict(rows[:1])
    assert one.tobytes() == np.asarray(library[:1], dtype=np.float64).tobytes()


def test_other_estimators_and_subclasses_keep_the_librarys_own_call() -> None:
    x, y = _data("classifier", False)

    class Tweaked(RandomForestClassifier):
        def predict_proba(self, X):  # type: ignore[no-untyped-def, override]
            return super().predict_proba(X) * 0.5 + 0.25

    assert forests.predictor(HistGradientBoostingClassifier().fit(x, y), x[:50]) is None
    assert forests.predictor(Tweaked(n_estimators=5, random_state=0).fit(x, y), x[:50]) is None


def test_a_walk_that_would_differ_from_the_library_is_refused() -> None:
    """The proof on the background and the probes is what admits a predictor."""
    x, y = _data("classifier", False)
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(x, y)
    tree = forest.estimators_[0].tree_
    node = int(np.flatnonzero(tree.children_left != -1)[0])
    true_threshold = float(tree.threshold[node])
    original = forests._arrays

    def shifted(estimators: list[object]) -> tuple[np.ndarray, ...]:
        arrays = list(original(estimators))
        arrays[4] = arrays[4].copy()
        arrays[4][node] = true_threshold + 1e3  # every row goes left at the first split
        return tuple(arrays)

    forests._arrays = shifted  # type: ignore[assignment]
    try:
        assert forests.predictor(forest, x[:100]) is None
    finally:
        forests._arrays = original  # type: ignore[assignment]
