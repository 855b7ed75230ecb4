"""Forest predictions read from the trees' own arrays, proven bit for bit against scikit-learn.

scikit-learn predicts a forest one tree at a time (``predict_proba`` of a 60-tree forest on one
row costs about 2 ms, most of a tree explanation's time); the same walk over the same arrays in
one compiled loop costs microseconds. The walk repeats scikit-learn's arithmetic exactly: the
row is cast to float32 and compared ``x <= threshold`` (NaN goes where the node sends missing
values), each tree's leaf value is added to the running sum in the forest's tree order, and the
sum is divided by the number of trees once, at the end. A predictor is only used after it
matched ``predict_proba`` / ``predict`` bit for bit on the background and on probe rows around
every threshold; anything else keeps the library's own call.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

FORESTS = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)
TREES = (DecisionTreeClassifier, DecisionTreeRegressor)

Predictor = Callable[[np.ndarray], np.ndarray]


@njit(cache=True, nogil=True)
def _walk(
    rows: np.ndarray,
    roots: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    values: np.ndarray,
    divide: bool,
) -> np.ndarray:
    """Sum of the trees' leaf values per row, in tree order, divided by the tree count."""
    n, width = rows.shape[0], values.shape[1]
    out = np.zeros((n, width))
    for i in range(n):
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] != -1:
                x = np.float32(rows[i, feature[node]])
                if np.isnan(x):
                    node = left[node] if missing_left[node] else right[node]
                elif x <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            for k in range(width):
                out[i, k] += values[node, k]
        if divide:
            for k in range(width):
                out[i, k] /= roots.shape[0]
    return out


def _arrays(estimators: list[object]) -> tuple[np.ndarray, ...]:
    """Every tree's nodes in one set of arrays; children and roots as global node ids."""
    roots, lefts, rights, features, thresholds, missing, values = [], [], [], [], [], [], []
    offset = 0
    for estimator in estimators:
        tree = estimator.tree_  # type: ignore[attr-defined]
        count = tree.node_count
        roots.append(offset)
        left = tree.children_left.astype(np.int64)
        right = tree.children_right.astype(np.int64)
        lefts.append(np.where(left == -1, -1, left + offset))
        rights.append(np.where(right == -1, -1, right + offset))
        features.append(tree.feature.astype(np.int64))
        thresholds.append(tree.threshold.astype(np.float64))
        gone = getattr(tree, "missing_go_to_left", None)
        missing.append(
            np.zeros(count, dtype=np.bool_) if gone is None else np.asarray(gone, dtype=np.bool_)
        )
        values.append(np.asarray(tree.value, dtype=np.float64)[:, 0, :])
        offset += count
    return (
        np.asarray(roots, dtype=np.int64),
        np.concatenate(lefts),
        np.concatenate(rights),
        np.concatenate(features),
        np.concatenate(thresholds),
        np.concatenate(missing),
        np.ascontiguousarray(np.concatenate(values)),
    )


def _probes(background: np.ndarray, thresholds: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Rows around every split: each threshold, and the float32 values just below and above."""
    base = np.array(background[0], dtype=np.float64)
    rows = []
    for f, t in zip(feature, thresholds, strict=True):
        if f < 0 or not np.isfinite(np.float32(t)):
            continue
        t32 = np.float32(t)
        for value in (t, float(t32), float(np.nextafter(t32, np.float32(-np.inf)))):
            row = base.copy()
            row[f] = value
            rows.append(row)
        row = base.copy()
        row[f] = float(np.nextafter(t32, np.float32(np.inf)))
        rows.append(row)
    return np.asarray(rows[:20000], dtype=np.float64).reshape(-1, background.shape[1])


def predictor(estimator: object, background: np.ndarray) -> Predictor | None:
    """The forest's own prediction from its arrays, or None where it is not bit-identical.

    Classifiers answer ``predict_proba``; regressors ``predict``, as one column."""
    if type(estimator) in FORESTS:
        trees = list(estimator.estimators_)  # type: ignore[attr-defined]
        divide = True
    elif type(estimator) in TREES:
        trees, divide = [estimator], False
    else:
        return None
    if getattr(estimator, "n_outputs_", 1) != 1:
        return None
    roots, left, right, feature, threshold, missing, values = _arrays(trees)
    classifier = hasattr(estimator, "classes_")

    def predict(rows: np.ndarray) -> np.ndarray:
        data = np.ascontiguousarray(rows, dtype=np.float64)
        out = _walk(data, roots, left, right, feature, threshold, missing, values, divide)
        return out if classifier else out[:, 0]

    checked = np.vstack([background, _probes(background, threshold, feature)])
    checked = checked[np.all(np.isfinite(checked) | np.isnan(checked), axis=1)]
    try:
        library = (
            estimator.predict_proba(checked)  # type: ignore[attr-defined]
            if classifier
            else estimator.predict(checked)  # type: ignore[attr-defined]
        )
    except ValueError:  # the library refuses a probe: keep its own call
        return None
    ours = predict(checked)
    if ours.shape != np.shape(library) or ours.tobytes() != np.asarray(library).tobytes():
        return None
    return predict
