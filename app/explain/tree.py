"""Exact interventional TreeSHAP over scikit-learn's tree arrays, raw features as players.

The trees are read into flat arrays once per model version (``Ensemble``); the kernel in
``app.explain.treeshap`` walks them. Before an ensemble is used it must reproduce the
model's own output on the whole background (``predict_proba`` for forests and single
trees, ``decision_function`` for boosted classifiers, ``predict`` for regressors) within
``RECONSTRUCTION_TOLERANCE``; a model it cannot reproduce (a boosted model with a custom
``init``, a non-identity link, categorical bitset splits) is refused, never approximated.

Output spaces: forests and single trees are exact in probability (their probability is
the mean of their trees' leaf class fractions) and regressors in prediction. Boosted
models are exact in their raw margin: log-odds for binary classifiers. Their probability
is ``approximate``: per background row z the exact margin values are rescaled so they add
up to p(x) − p(z) (binary: by (σ(F(x)) − σ(F(z))) / (F(x) − F(z)); multiclass: the same
secant per margin along a path that moves one class margin at a time, averaged over the
forward and reverse class order), then averaged; additivity stays exact.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import expit, softmax
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from app.explain.base import column_owner
from app.explain.ensemble import Builder, Ensemble
from app.explain.frameworks import BoosterEstimator
from app.explain.model import TabularModel
from app.explain.treeshap import directions, leaf_weights, shap_row
from app.explain.types import (
    Exactness,
    ExplainerUnavailable,
    Explanation,
    Target,
    Thresholds,
)

TREE_MODELS: tuple[type, ...] = (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    BoosterEstimator,
)
BOOSTED: tuple[type, ...] = (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    BoosterEstimator,
)
"""Models whose output is a constant plus a sum of trees' margins (classifiers: a link of
it); XGBoost's and LightGBM's boosters carry their constant, scikit-learn's are fitted."""
BOOSTED_CLASSIFIERS: tuple[type, ...] = (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
)
RECONSTRUCTION_TOLERANCE = 1e-9
"""Largest |ours − model's own output| on the background before the ensemble is used."""
DERIVATIVE_BELOW = 1e-6
"""Below this margin difference the rescaling uses the derivative at the midpoint."""
IMPLEMENTATION = "rationale interventional TreeSHAP (numba), raw features as players"
RESCALED = "probability Shapley values, rescaled per background row from exact log-odds values"
RESCALED_MULTICLASS = (
    "probability Shapley values, rescaled per background row from exact per-class "
    "margin values (softmax)"
)


def is_boosted_classifier(model: TabularModel) -> bool:
    """Whether the model's probability is a link of a boosted margin."""
    estimator = model.estimator
    if isinstance(estimator, BoosterEstimator):
        return estimator.task == "classification"
    return isinstance(estimator, BOOSTED_CLASSIFIERS)


def _sklearn_tree(builder: Builder, tree: Any, values: np.ndarray) -> int:
    """Append a fitted ``tree_`` (scikit-learn's Tree) with the given leaf values."""
    missing = getattr(tree, "missing_go_to_left", None)
    if missing is None:
        missing = np.zeros(tree.node_count, dtype=np.bool_)
    return builder.add(
        np.asarray(tree.feature),
        np.asarray(tree.threshold),
        np.asarray(tree.children_left),
        np.asarray(tree.children_right),
        np.asarray(missing),
        values,
        int(tree.max_depth),
    )


def _single_output(tree: Any) -> None:
    if tree.n_outputs != 1:
        raise ExplainerUnavailable("shap.tree: multi-output trees are not supported")


def _extract(estimator: Any, classes: int) -> tuple[Ensemble, str]:
    """The ensemble and the name of the model's function whose output it reproduces."""
    if isinstance(estimator, BoosterEstimator):
        if estimator.ensemble is None or estimator.tree_problem is not None:
            raise ExplainerUnavailable(f"shap.tree: {estimator.tree_problem}")
        return estimator.ensemble, "decision_function" if classes > 0 else "predict"
    if isinstance(estimator, (DecisionTreeClassifier, DecisionTreeRegressor)):
        return _averaged([estimator], classes)
    if not isinstance(estimator, BOOSTED):
        return _averaged(list(estimator.estimators_), classes)
    margins = max(1, classes if classes > 2 else 1)
    builder = Builder()
    if isinstance(estimator, (GradientBoostingClassifier, GradientBoostingRegressor)):
        per_output, trees = _gradient_boosting(builder, estimator, margins)
        float32 = True
    else:
        per_output, trees = _histogram_boosting(builder, estimator, margins)
        float32 = False
    function = "decision_function" if classes > 0 else "predict"
    ensemble = builder.ensemble(per_output, [0.0] * margins, float32, trees)
    return ensemble, function


def _averaged(members: list[Any], classes: int) -> tuple[Ensemble, str]:
    """A tree or a forest: the mean of its trees' (normalised) leaf values."""
    builder = Builder()
    count = len(members)
    classifier = classes > 0
    roots: list[int] = []
    for member in members:
        tree = member.tree_
        _single_output(tree)
        raw = np.asarray(tree.value[:, 0, :], dtype=np.float64)
        if classifier:
            if raw.shape[1] != classes:
                raise ExplainerUnavailable("shap.tree: a tree does not know every class")
            total = raw.sum(axis=1, keepdims=True)
            total[total == 0.0] = 1.0
            leaf = raw / total / count
        else:
            leaf = raw[:, :1] / count
        roots.append(_sklearn_tree(builder, tree, leaf))
    outputs = classes if classifier else 1
    ensemble = builder.ensemble([roots] * outputs, [0.0] * outputs, True, count)
    return ensemble, "predict_proba" if classifier else "predict"


def _gradient_boosting(
    builder: Builder, estimator: Any, margins: int
) -> tuple[list[list[int]], int]:
    """GradientBoosting's stages: each tree's leaves scaled by the learning rate, per margin."""
    if estimator.init not in (None, "zero"):
        raise ExplainerUnavailable(
            "shap.tree: a gradient boosting model with a custom init estimator is not "
            "a sum of trees"
        )
    stages = np.asarray(estimator.estimators_)
    if stages.shape[1] != margins:
        raise ExplainerUnavailable("shap.tree: unexpected gradient boosting layout")
    rate = float(estimator.learning_rate)
    per_output: list[list[int]] = [[] for _ in range(margins)]
    for stage in stages:
        for k, member in enumerate(stage):
            tree = member.tree_
            _single_output(tree)
            leaf = np.zeros((tree.node_count, margins))
            leaf[:, k] = np.asarray(tree.value[:, 0, 0], dtype=np.float64) * rate
            per_output[k].append(_sklearn_tree(builder, tree, leaf))
    return per_output, int(stages.size)


def _histogram_boosting(
    builder: Builder, estimator: Any, margins: int
) -> tuple[list[list[int]], int]:
    """HistGradientBoosting's predictors (numeric splits only), per margin."""
    predictors = estimator._predictors
    if any(len(stage) != margins for stage in predictors):
        raise ExplainerUnavailable("shap.tree: unexpected histogram boosting layout")
    per_output: list[list[int]] = [[] for _ in range(margins)]
    for stage in predictors:
        for k, predictor in enumerate(stage):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ExplainerUnavailable(
                    "shap.tree: categorical splits of HistGradientBoosting are not supported"
                )
            leaf_mask = nodes["is_leaf"].astype(bool)
            leaf = np.zeros((len(nodes), margins))
            leaf[:, k] = np.where(leaf_mask, nodes["value"], 0.0)
            per_output[k].append(
                builder.add(
                    np.where(leaf_mask, -1, nodes["feature_idx"]),
                    nodes["num_threshold"],
                    nodes["left"],
                    nodes["right"],
                    nodes["missing_go_to_left"],
                    leaf,
                    int(nodes["depth"].max()),
                )
            )
    return per_output, sum(len(stage) for stage in predictors)


def _own_output(estimator: Any, function: str, background: np.ndarray) -> np.ndarray:
    """The model's own outputs on the background as (rows × outputs)."""
    out = np.asarray(getattr(estimator, function)(background), dtype=np.float64)
    return out.reshape(len(background), -1)


class TreeShap:
    """Exact interventional TreeSHAP against the model's whole background."""

    name: ClassVar[str] = "shap.tree"
    exact: ClassVar[bool] = True
    additive: ClassVar[bool] = True
    batchable: ClassVar[bool] = True

    @classmethod
    def supports(cls, model: TabularModel, target: Target) -> bool:
        """scikit-learn trees and tree ensembles; log-odds only for binary boosted trees."""
        if not model.decomposed or not isinstance(model.estimator, TREE_MODELS):
            return False
        if isinstance(model.estimator, BoosterEstimator) and model.estimator.tree_problem:
            return False
        if target.output == "log_odds":
            return is_boosted_classifier(model) and len(model.classes or []) == 2
        return True

    @classmethod
    def exact_for(cls, model: TabularModel, target: Target) -> bool:
        """Whether the values are exact Shapley values in the target's space."""
        return not (is_boosted_classifier(model) and target.output == "probability")

    @classmethod
    def build(cls, model: TabularModel, thresholds: Thresholds | None = None) -> TreeShap:
        """Read the trees and prove they reproduce the model's output on the background."""
        try:
            return cls(model)
        except ExplainerUnavailable:
            raise
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise ExplainerUnavailable(f"shap.tree: cannot read the model's trees ({exc})") from exc

    def __init__(self, model: TabularModel) -> None:
        self.model = model
        estimator = model.estimator
        self.classes = len(model.classes or []) if model.task == "classification" else 0
        self.boosted = isinstance(estimator, BOOSTED)
        framework = isinstance(estimator, BoosterEstimator)
        self.ensemble, function = _extract(estimator, self.classes)
        self.owner = column_owner(model.groups, model.background.shape[1]).astype(np.int64)
        if self.ensemble.feature.max(initial=-1) >= len(self.owner):
            raise ExplainerUnavailable("shap.tree: the trees read more columns than the encoding")
        self.background = self.ensemble.prepare(model.background)
        ours = np.column_stack(
            [self.ensemble.predict(self.background, k) for k in range(len(self.ensemble.values))]
        )
        theirs = _own_output(estimator, function, model.background)
        if self.boosted and not framework:
            # The model's constant (its init prediction) is whatever the trees leave over;
            # it must be the same for every row, or the model is not a constant plus trees.
            constants = theirs[0] - ours[0]
            self.ensemble.constants = [float(c) for c in constants]
            ours = ours + constants
        if ours.shape != theirs.shape or not np.all(
            np.abs(ours - theirs) <= RECONSTRUCTION_TOLERANCE
        ):
            raise ExplainerUnavailable(
                f"shap.tree: the trees do not reproduce the model's {function} on the "
                "background (custom init, non-identity link or unsupported layout)"
            )
        self.margins = ours
        """Our outputs on the background (rows × outputs): probabilities or margins."""
        self.own = theirs
        """The model's own outputs on the background, for the base value."""
        self.own_probability = (
            np.asarray(estimator.predict_proba(model.background), dtype=np.float64)
            if self.classes
            else None
        )
        self.w_x, self.w_z = leaf_weights(len(model.groups))
        self.z_left, self.group_of, self.group_start, self.group_row = _groups(
            self.ensemble, self.background
        )
        self.uniform = np.full(len(self.background), 1.0 / len(self.background))

    # -- explaining -------------------------------------------------------------------

    def explain(self, encoded: np.ndarray, target: Target) -> list[Explanation]:
        """Each row on its own (the same bits whatever else is in the batch)."""
        rows = self.ensemble.prepare(encoded)
        outputs = self.model.output(encoded, target)
        exact = self.exact_for(self.model, target)
        parameters = {
            "implementation": IMPLEMENTATION,
            "feature_perturbation": "interventional",
            "players": "raw features",
            "background_rows": len(self.background),
            "trees": self.ensemble.trees,
        }
        if not exact:
            parameters["probability"] = "rescaled per background row from exact margin values"
        base, phis = self._values(rows, target)
        exactness: Exactness = "exact" if exact else "approximate"
        approximates = None
        if not exact:
            approximates = RESCALED if len(self.ensemble.values) == 1 else RESCALED_MULTICLASS
        return [
            Explanation(
                method=self.name,
                base_value=base,
                contributions=phis[i],
                model_output=float(outputs[i]),
                exactness=exactness,
                approximates=approximates,
                parameters=dict(parameters),
            )
            for i in range(len(rows))
        ]

    def _values(self, rows: np.ndarray, target: Target) -> tuple[float, np.ndarray]:
        """The base value and each row's contributions (rows × features)."""
        phis = np.zeros((len(rows), len(self.model.groups)), dtype=np.float64)
        if not self.classes:
            for i in range(len(rows)):
                self._accumulate(rows[i], 0, self.uniform, phis[i])
            return float(np.mean(self.own[:, 0])), phis
        c = target.class_index
        assert c is not None
        if not self.boosted:
            for i in range(len(rows)):
                self._accumulate(rows[i], c, self.uniform, phis[i])
            assert self.own_probability is not None
            return float(np.mean(self.own_probability[:, c])), phis
        if target.output == "log_odds":
            sign = 1.0 if c == 1 else -1.0
            for i in range(len(rows)):
                self._accumulate(rows[i], 0, self.uniform, phis[i])
            return float(sign * np.mean(self.own[:, 0])), sign * phis
        margins = np.column_stack(
            [self.ensemble.predict(rows, k) for k in range(len(self.ensemble.values))]
        )
        for i in range(len(rows)):
            rates = _secants(margins[i], self.margins, c)
            for k in range(rates.shape[1]):
                self._accumulate(rows[i], k, rates[:, k] / len(self.background), phis[i])
        assert self.own_probability is not None
        return float(np.mean(self.own_probability[:, c])), phis

    def output_values(self, encoded: np.ndarray, k: int) -> tuple[float, np.ndarray]:
        """Exact interventional values of the ensemble's output k (a class margin of a
        boosted model, a class probability of a forest, a regressor's prediction): its mean
        over the background and each row's contributions (rows × raw features)."""
        rows = self.ensemble.prepare(encoded)
        phis = np.zeros((len(rows), len(self.model.groups)), dtype=np.float64)
        for i in range(len(rows)):
            self._accumulate(rows[i], k, self.uniform, phis[i])
        return float(np.mean(self.margins[:, k])), phis

    def _accumulate(self, row: np.ndarray, k: int, weights: np.ndarray, out: np.ndarray) -> None:
        ensemble = self.ensemble
        shap_row(
            row,
            self.z_left,
            np.ascontiguousarray(weights),
            ensemble.trees_of[k],
            ensemble.tree_root,
            self.group_of,
            self.group_start,
            self.group_row,
            ensemble.feature,
            ensemble.threshold,
            ensemble.left,
            ensemble.right,
            ensemble.missing_left,
            ensemble.kind,
            ensemble.cat_start,
            ensemble.cat_size,
            ensemble.cat_left,
            ensemble.values[k],
            self.owner,
            self.w_x,
            self.w_z,
            ensemble.max_depth,
            out,
        )


def _groups(
    ensemble: Ensemble, background: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Background rows' directions at every node, and per tree the groups of rows that go
    the same way at all of its nodes (``shap_row`` walks each group once)."""
    z_left = directions(
        background,
        ensemble.feature,
        ensemble.threshold,
        ensemble.missing_left,
        ensemble.kind,
        ensemble.cat_start,
        ensemble.cat_size,
        ensemble.cat_left,
    )
    count = len(ensemble.tree_root)
    group_of = np.empty((count, len(background)), dtype=np.int64)
    starts = [0]
    rows: list[np.ndarray] = []
    for t in range(count):
        part = z_left[:, ensemble.tree_root[t] : ensemble.tree_end[t]]
        _, first, inverse = np.unique(part, axis=0, return_index=True, return_inverse=True)
        group_of[t] = inverse.reshape(-1)
        rows.append(first.astype(np.int64))
        starts.append(starts[-1] + len(first))
    return (
        np.ascontiguousarray(z_left),
        group_of,
        np.asarray(starts, dtype=np.int64),
        np.concatenate(rows),
    )


def probability(margins: np.ndarray, c: int) -> np.ndarray:
    """Class c's probability from margins (rows × margins), as scikit-learn computes it."""
    if margins.shape[1] == 1:
        p1 = expit(margins[:, 0])
        return np.asarray(p1 if c == 1 else 1.0 - p1, dtype=np.float64)
    return np.asarray(softmax(margins, axis=1)[:, c], dtype=np.float64)


def _secants(x: np.ndarray, background: np.ndarray, c: int) -> np.ndarray:
    """Per background row and margin k, the rate r_k with Σ_k r_k·ΔF_k = p_c(x) − p_c(z).

    Margins move from z's to x's one at a time; each step's change of p_c over its ΔF_k
    (the derivative at the step's midpoint when ΔF_k is tiny). Multiclass: the mean of the
    forward and the reverse order, both of which telescope to p_c(x) − p_c(z).
    """
    count = background.shape[1]
    orders = [list(range(count))] if count == 1 else [list(range(count)), list(range(count))[::-1]]
    rates = np.zeros_like(background)
    for order in orders:
        current = background.copy()
        for k in order:
            before = probability(current, c)
            delta = x[k] - background[:, k]
            middle = current.copy()
            middle[:, k] = background[:, k] + delta / 2
            current[:, k] = x[k]
            after = probability(current, c)
            small = np.abs(delta) < DERIVATIVE_BELOW
            with np.errstate(divide="ignore", invalid="ignore"):
                secant = (after - before) / delta
            rates[:, k] += np.where(small, _derivative(middle, k, c), secant)
    return rates / len(orders)


def _derivative(margins: np.ndarray, k: int, c: int) -> np.ndarray:
    """∂p_c/∂F_k at the given margins."""
    if margins.shape[1] == 1:
        p = expit(margins[:, 0])
        return np.asarray((1.0 if c == 1 else -1.0) * p * (1.0 - p), dtype=np.float64)
    p = softmax(margins, axis=1)
    return np.asarray(p[:, c] * ((1.0 if k == c else 0.0) - p[:, k]), dtype=np.float64)
