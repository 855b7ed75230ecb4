"""Coalition outputs of a model whose first layer is affine, one feature at a time.

Along a permutation chain each coalition differs from the one before it in a single raw
feature. For a model whose first layer is affine in the encoded columns (the hidden layer
of a scikit-learn ``MLPClassifier`` / ``MLPRegressor``, the decision function of a logistic
classifier), that layer's values therefore change by one precomputed step per feature:
Σ over the feature's columns of (x_c − b_c)·W_c. A chain's first-layer values are a running
sum of those steps, started from the background row's own values, so the coalitions' cells
are never built and the widest product of the model is never taken. What follows the first
layer runs as scikit-learn runs it, on a copy of the estimator without that layer.

The values are the model's own up to floating-point rounding (a running sum instead of one
product). ``FirstLayer.build`` proves that on the model before it is used: chains evaluated
both ways must agree within ``AGREEMENT`` on every class; otherwise the estimator builds
coalitions and calls the model as before.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import sklearn
from numba import njit
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, SGDClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor

from app.explain.base import column_owner
from app.explain.model import TabularModel, _one_output
from app.explain.types import Target

AGREEMENT = 1e-9
"""Largest |difference| allowed, relative to max(1, |output|), between the model's raw
outputs and these on the proof's coalitions (rounding alone is ~1e-15 here)."""
PROOF_ROWS = 4
"""Background rows explained, each against ``PROOF_PAIRS`` pairs of chains, in the proof."""
PROOF_PAIRS = 8
CHUNK_VALUES = 2**19
"""Largest number of values the kernel writes at once (outputs, or activated units)."""
ACTIVATION_CODES = {"identity": 0, "relu": 1, "tanh": 2, "logistic": 3}
"""scikit-learn's hidden activations, as the kernel names them."""

LOGISTIC: tuple[type, ...] = (LogisticRegression, LogisticRegressionCV, SGDClassifier)
KNOWN = frozenset({MLPClassifier, MLPRegressor, *LOGISTIC})


class FirstLayer:
    """First-layer steps of one model; ``chains`` gives a pair's interior coalition outputs."""

    def __init__(
        self,
        model: TabularModel,
        weights: np.ndarray,
        bias: np.ndarray,
        activation: str,
        output: tuple[np.ndarray, np.ndarray] | None,
        tail: Any,
    ) -> None:
        self.model = model
        self.weights = weights
        """Encoded columns × first-layer units."""
        self.code = ACTIVATION_CODES[activation]
        empty = (np.zeros((0, 0)), np.zeros(0))
        self.output_weights: np.ndarray = (output or empty)[0]
        self.output_bias: np.ndarray = (output or empty)[1]
        """A one-hidden-layer network's output layer (units × outputs), applied in the
        kernel; empty otherwise."""
        self.tail = tail
        """A copy of the estimator that reads what the kernel writes."""
        owner = column_owner(model.groups, model.background.shape[1])
        self.groups = model.groups
        self.singletons = bool(np.array_equal(owner, np.arange(len(owner))))
        self.start = np.ascontiguousarray(model.background @ weights + bias)
        """Each background row's own first-layer values."""
        self.width = len(self.output_bias) if output is not None else weights.shape[1]
        """Values the kernel writes per coalition."""

    @classmethod
    def build(cls, model: TabularModel) -> FirstLayer | None:
        """The incremental evaluator of ``model``, or None where it does not apply or its
        outputs differ from the model's on the proof's coalitions."""
        estimator: Any = model.estimator
        # scikit-learn's own classes only: a subclass may change what its layers compute
        # in ways the proof's background rows do not show (clipping to a range, say).
        if not model.decomposed or len(model.groups) < 2 or type(estimator) not in KNOWN:
            return None
        output: tuple[np.ndarray, np.ndarray] | None = None
        if isinstance(estimator, MLPClassifier | MLPRegressor):
            if estimator.activation not in ACTIVATION_CODES:
                return None
            activation = estimator.activation
            weights = np.asarray(estimator.coefs_[0], dtype=np.float64)
            bias = np.asarray(estimator.intercepts_[0], dtype=np.float64)
            tail = copy.copy(estimator)
            if estimator.n_layers_ == 3:
                # One hidden layer: the kernel applies the output layer too, and the tail
                # only the output activation (an identity layer, which changes no bit).
                out_weights = np.ascontiguousarray(estimator.coefs_[1], dtype=np.float64)
                output = (out_weights, np.asarray(estimator.intercepts_[1], dtype=np.float64))
                tail.coefs_ = [np.eye(out_weights.shape[1])]
                tail.intercepts_ = [np.zeros(out_weights.shape[1])]
            else:
                tail.coefs_ = list(estimator.coefs_[1:])
                tail.intercepts_ = list(estimator.intercepts_[1:])
            tail.n_layers_ = estimator.n_layers_ - 1
            tail.n_features_in_ = tail.coefs_[0].shape[0]
        elif isinstance(estimator, LOGISTIC) and hasattr(estimator, "predict_proba"):
            linear: Any = estimator
            coef = np.atleast_2d(np.asarray(linear.coef_, dtype=np.float64))
            activation = "identity"
            weights = coef.T
            bias = np.broadcast_to(np.asarray(linear.intercept_, dtype=np.float64), len(coef))
            # This copy's decision function is its input (the decision values the kernel
            # wrote), so its predict_proba is scikit-learn's own map from decision values
            # to probabilities (expit, OvR normalisation or softmax), nothing re-implemented.
            tail = copy.copy(linear)
            tail.decision_function = _Decisions(len(coef))
            tail.n_features_in_ = len(coef)
        else:
            return None
        if hasattr(tail, "feature_names_in_"):
            del tail.feature_names_in_
        layer = cls(model, np.ascontiguousarray(weights), bias, activation, output, tail)
        try:
            return layer if layer._proven() else None
        except Exception:  # whatever fails, the shortcut is not proven: the general path
            return None

    def steps(self, row: np.ndarray) -> np.ndarray:
        """Background rows × raw features × units: each feature's change of the first layer
        when it switches from the background row's values to ``row``'s."""
        difference = row[None, :] - self.model.background
        if self.singletons:
            change: np.ndarray = difference[:, :, None] * self.weights[None, :, :]
            return change
        # One product per raw feature over its own columns: n × width × units work in all,
        # never an n × width × units array (wide one-hot encodings).
        steps = np.empty((len(difference), len(self.groups), self.weights.shape[1]))
        for feature, columns in enumerate(self.groups):
            steps[:, feature] = difference[:, columns] @ self.weights[columns]
        return steps

    def chains(
        self, steps: np.ndarray, on_row: np.ndarray, orders: np.ndarray, target: Target
    ) -> np.ndarray:
        """Outputs of the m − 1 proper, non-empty coalitions of each pair's two chains: pair p
        starts from background row ``on_row[p]`` and switches the features in ``orders[p]``,
        then in its reverse."""
        pairs, m = orders.shape
        out = np.empty((pairs, 2, m - 1))
        per_call = max(1, CHUNK_VALUES // (2 * (m - 1) * self.width))
        for begin in range(0, pairs, per_call):
            end = min(pairs, begin + per_call)
            raw = self._raw(self._values(steps, on_row[begin:end], orders[begin:end]))
            out[begin:end] = self.model.select(raw, target).reshape(end - begin, 2, m - 1)
        return out

    def _values(self, steps: np.ndarray, on_row: np.ndarray, orders: np.ndarray) -> np.ndarray:
        """What the kernel writes for these pairs of chains, one row per coalition."""
        pairs, m = orders.shape
        values = np.empty((pairs, 2, m - 1, self.width))
        _chain_values(
            steps,
            self.start,
            np.ascontiguousarray(on_row, dtype=np.intp),
            np.ascontiguousarray(orders, dtype=np.intp),
            self.code,
            self.output_weights,
            self.output_bias,
            values,
        )
        return values.reshape(-1, self.width)

    def _raw(self, values: np.ndarray) -> np.ndarray:
        """What ``model.raw_output`` gives, from what the kernel wrote."""
        with sklearn.config_context(assume_finite=True):
            if self.model.task == "classification":
                return np.asarray(self.tail.predict_proba(values), dtype=np.float64)
            return _one_output(np.asarray(self.tail.predict(values), dtype=np.float64))

    def _proven(self) -> bool:
        """Chains of random orders from background rows to other background rows agree
        with the model's own outputs on the same coalitions."""
        model = self.model
        background = model.background
        n, m = len(background), len(model.groups)
        owner = column_owner(model.groups, background.shape[1])
        rng = np.random.default_rng(0)
        for explained in rng.choice(n, size=min(PROOF_ROWS, n), replace=False):
            row = background[explained]
            on_row = rng.integers(n, size=PROOF_PAIRS)
            orders = np.argsort(rng.random((PROOF_PAIRS, m)), axis=1)
            fast = self._raw(self._values(self.steps(row), on_row, orders))
            forward = np.argsort(orders, axis=1)
            position = np.stack([forward, m - 1 - forward], axis=1)
            switched = position[:, :, None, owner] < np.arange(1, m)[None, None, :, None]
            cells = np.where(switched, row, background[on_row][:, None, None, :])
            direct = model.raw_output(cells.reshape(-1, background.shape[1]))
            if fast.shape != direct.shape or not np.isfinite(fast).all():
                return False
            if np.any(np.abs(fast - direct) > AGREEMENT * np.maximum(1.0, np.abs(direct))):
                return False
        return True


class _Decisions:
    """A linear classifier's decision function for a copy fed its decision values: returns
    them as ``decision_function`` would (one column per class, or a vector for 2 classes)."""

    def __init__(self, columns: int) -> None:
        self.columns = columns

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return values.ravel() if self.columns == 1 else values


@njit(cache=True, nogil=True)
def _activate(value: float, code: int) -> float:
    if code == 1:
        return 0.0 if value < 0.0 else value  # a NaN stays NaN, as in np.maximum
    if code == 2:
        return math.tanh(value)
    if code == 3:
        return 1.0 / (1.0 + math.exp(-value))
    return value


@njit(cache=True, nogil=True)
def _chain_values(
    steps: np.ndarray,
    start: np.ndarray,
    on_row: np.ndarray,
    orders: np.ndarray,
    code: int,
    output_weights: np.ndarray,
    output_bias: np.ndarray,
    values: np.ndarray,
) -> None:
    """For every chain (pair p: ``orders[p]``, then its reverse) and its k-th interior
    coalition: the first layer's values start[b] + Σ of the first k + 1 features' steps
    (b = on_row[p]), activated, and — when ``output_bias`` is not empty — passed through the
    output layer. Sequential and in a fixed order, so the values do not depend on the
    chunking."""
    pairs, m = orders.shape
    units = start.shape[1]
    outputs = output_bias.shape[0]
    layer = np.empty(units)
    active = np.empty(units)
    for p in range(pairs):
        b = on_row[p]
        for c in range(2):
            layer[:] = start[b]
            for k in range(m - 1):
                f = orders[p, k] if c == 0 else orders[p, m - 1 - k]
                step = steps[b, f]
                for u in range(units):
                    layer[u] += step[u]
                if outputs == 0:
                    for u in range(units):
                        values[p, c, k, u] = _activate(layer[u], code)
                elif code == 1 and outputs == 1:
                    # ReLU into one output, in one pass (2× faster than the general loop).
                    total = output_bias[0]
                    for u in range(units):
                        unit = layer[u]
                        total += (0.0 if unit < 0.0 else unit) * output_weights[u, 0]
                    values[p, c, k, 0] = total
                else:
                    for u in range(units):
                        active[u] = _activate(layer[u], code)
                    for o in range(outputs):
                        total = output_bias[o]
                        for u in range(units):
                            total += active[u] * output_weights[u, o]
                        values[p, c, k, o] = total
