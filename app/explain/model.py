"""A fitted model seen through its raw input features.

Most models arrive as a ``Pipeline`` whose first step is a ``ColumnTransformer`` in which
every raw feature owns its own output columns (one-hot, ordinal, scaling, passthrough), or
as parts (``TabularModel.from_parts``: a preprocessor, or none, and an estimator such as
a framework booster). Such a model is *decomposed*: rows are encoded once into the
estimator's input space, each raw feature maps to a group of encoded columns, and
explainers work on the encoded matrix, folding columns back into their raw feature. A
model with no preprocessing (a bare estimator over numeric features) is the identity case
of the same path: each raw feature is its own column. A common set of transformers is
compiled to plain numpy, checked bit for bit against scikit-learn on the background, so
one row does not pay for a pandas DataFrame. Anything else is explained as a black box
over raw features.
"""

from __future__ import annotations

import copy
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import scipy.sparse
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

from app.explain import forests
from app.explain.types import ExplainerUnavailable, Target

Row = dict[str, Any]
Encoder = Callable[[Sequence[Row]], np.ndarray]


@dataclass(frozen=True)
class FeatureSpec:
    """A raw feature as the explainer needs it."""

    name: str
    categorical: bool
    categories: tuple[str, ...] | None = None
    """A categorical feature's categories in the manifest's order: their codes are 0, 1, …
    where the model reads categories as codes (a framework model's native categoricals)."""


@runtime_checkable
class Provable(Protocol):
    """An estimator that checks itself on the background it will be explained against."""

    def prove(self, rows: np.ndarray) -> None:
        """Check the estimator on rows of its input space (the encoded background)."""
        ...


@runtime_checkable
class ReadsRawFeatures(Protocol):
    """An estimator that can read the raw features itself and knows what it expects."""

    def check_features(self, features: Sequence[FeatureSpec]) -> None:
        """Raise ``ValueError`` where the features are not the ones it was trained on."""
        ...


@runtime_checkable
class HasLogOdds(Protocol):
    """A binary classifier whose log-odds are its own margin (no logit of a probability)."""

    def log_odds(self, rows: np.ndarray) -> np.ndarray:
        """The log-odds of the second class per row."""
        ...


def _missing(value: Any) -> bool:
    """None or a float NaN: a missing value."""
    return value is None or (isinstance(value, float) and math.isnan(value))


class CategoryCodes:
    """Raw features as a framework model reads them without a preprocessor: numbers as
    float64, a category as its position in the feature's ``categories``, missing as NaN."""

    def __init__(self, features: Sequence[FeatureSpec]) -> None:
        self.features = list(features)
        self.codes: dict[str, dict[str, float]] = {}
        for f in self.features:
            if not f.categorical:
                continue
            if not f.categories:
                raise ValueError(
                    f"feature {f.name!r}: a categorical feature read as codes needs its "
                    "categories in the manifest"
                )
            self.codes[f.name] = {str(c): float(k) for k, c in enumerate(f.categories)}

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The output columns: the raw features, in order."""
        return np.asarray([f.name for f in self.features], dtype=object)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """A DataFrame of raw features as the model's float64 input matrix."""
        return self.encode(_records(frame[[f.name for f in self.features]]))

    def encode(self, rows: Sequence[Row]) -> np.ndarray:
        """Rows (dicts of raw values) as the model's float64 input matrix."""
        out = np.empty((len(rows), len(self.features)), dtype=np.float64)
        for j, f in enumerate(self.features):
            codes = self.codes.get(f.name)
            for r, row in enumerate(rows):
                value = row[f.name]
                if _missing(value):
                    out[r, j] = np.nan
                elif codes is None:
                    out[r, j] = float(value)
                else:
                    code = codes.get(str(value))
                    if code is None:
                        raise ValueError(
                            f"feature {f.name!r}: {str(value)!r} is not one of its categories"
                        )
                    out[r, j] = code
        return out


class Composed:
    """A model given as parts: a preprocessor (anything with ``transform`` over a DataFrame
    of raw features; None: the raw numeric features as they are) and an estimator reading
    its output, called as one model on DataFrames of raw features."""

    def __init__(self, preprocessor: Any, estimator: Any) -> None:
        self.preprocessor = preprocessor
        self.estimator = estimator

    @property
    def classes_(self) -> Any:
        """The estimator's class labels, in the order of its ``predict_proba`` columns."""
        return self.estimator.classes_

    def transform(self, frame: pd.DataFrame) -> Any:
        """Raw features as the estimator reads them."""
        if self.preprocessor is None:
            return frame
        return self.preprocessor.transform(frame)

    def predict(self, frame: pd.DataFrame) -> Any:
        """The estimator's prediction of raw rows."""
        return self.estimator.predict(self.transform(frame))

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        """The estimator's class probabilities of raw rows."""
        return self.estimator.predict_proba(self.transform(frame))

    def decision_function(self, frame: pd.DataFrame) -> Any:
        """The estimator's decision function (margins) of raw rows."""
        return self.estimator.decision_function(self.transform(frame))


def _logit(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


class TabularModel:
    """A fitted model with ``predict``/``predict_proba`` over a DataFrame of raw features."""

    def __init__(
        self,
        pipeline: Any,
        features: Sequence[FeatureSpec],
        background: pd.DataFrame,
        task: str,
        classes: Sequence[str] | None,
    ) -> None:
        self.pipeline = pipeline
        self.features = list(features)
        self.feature_names = [f.name for f in self.features]
        self.task = task
        self.classes = list(classes) if classes is not None else None
        self.background_frame = self.frame_from_records(_records(background))
        self.estimator: Any = pipeline
        self.groups: list[np.ndarray] = [np.array([i]) for i in range(len(self.features))]
        self.decomposed = False
        self.compiled = False
        self._preprocess: Any = None
        self._encoder: Encoder | None = None
        self._known = threading.local()
        self._decompose()
        if isinstance(self.pipeline, Composed) and isinstance(self.pipeline.estimator, Provable):
            inputs = _dense(self.pipeline.transform(self.background_frame))
            self.pipeline.estimator.prove(inputs)
        self.background = self.encode(_records(self.background_frame))
        self._check_class_order()
        self._forest: forests.Predictor | None = None
        if self.decomposed:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # fitted with feature names
                self._forest = forests.predictor(self.estimator, self.background)

    @classmethod
    def from_parts(
        cls,
        preprocessor: Any,
        estimator: Any,
        features: Sequence[FeatureSpec],
        background: pd.DataFrame,
        task: str,
        classes: Sequence[str] | None,
    ) -> TabularModel:
        """A model given as a preprocessor (None: none) and an estimator reading its output.

        Without a preprocessor, categorical features reach the estimator as codes, their
        positions in the features' ``categories`` (``CategoryCodes``): the form framework
        models with native categoricals read.
        """
        features = list(features)
        head = preprocessor
        if head is None and isinstance(estimator, ReadsRawFeatures):
            estimator.check_features(features)
        if head is None and any(f.categorical for f in features):
            head = CategoryCodes(features)
        return cls(Composed(head, estimator), features, background, task, classes)

    # -- raw rows -----------------------------------------------------------------------

    def frame_from_records(self, rows: Sequence[Row]) -> pd.DataFrame:
        """A DataFrame of raw rows with the dtypes the model was trained on."""
        data: dict[str, Any] = {}
        for f in self.features:
            values = [row[f.name] for row in rows]
            if f.categorical:
                data[f.name] = pd.Series(
                    [None if _missing(v) else str(v) for v in values], dtype=object
                )
            else:
                data[f.name] = pd.Series(np.asarray(values, dtype=np.float64))
        return pd.DataFrame(data, columns=self.feature_names)

    # -- the encoded space explainers work in -------------------------------------------

    def encode(self, rows: Sequence[Row]) -> np.ndarray:
        """Rows in the space the estimator (decomposed) or the explainer (black box) reads."""
        if self._encoder is not None:
            return self._encoder(rows)
        frame = self.frame_from_records(rows)
        if self.decomposed:
            return _dense(self._preprocess.transform(frame))
        return frame.to_numpy(dtype=object)

    @contextmanager
    def known_output(self, encoded: np.ndarray, raw: np.ndarray) -> Iterator[None]:
        """Within the block, this thread's ``raw_output`` of exactly these rows is ``raw``
        (already computed by the caller), so the fidelity check does not predict again."""
        self._known.value = (encoded.shape, encoded.tobytes(), raw)
        try:
            yield
        finally:
            self._known.value = None

    def raw_output(self, encoded: np.ndarray) -> np.ndarray:
        """``predict_proba`` (n × classes) or ``predict`` (n) on encoded rows."""
        known = getattr(self._known, "value", None)
        if known is not None and known[0] == encoded.shape and known[1] == encoded.tobytes():
            return np.array(known[2], copy=True)
        if self._forest is not None:
            out = self._forest(encoded)
            return out if self.task == "classification" else _one_output(out)
        model = self.estimator
        data: Any = encoded
        if not self.decomposed:
            data = pd.DataFrame(encoded, columns=self.feature_names).astype(
                {f.name: np.float64 for f in self.features if not f.categorical}
            )
        if self.task == "classification":
            return np.asarray(model.predict_proba(data), dtype=np.float64)
        return _one_output(np.asarray(model.predict(data), dtype=np.float64))

    def output(self, encoded: np.ndarray, target: Target) -> np.ndarray:
        """The explained output (one number per row) in the target's space."""
        if (
            target.output == "log_odds"
            and self.decomposed
            and isinstance(self.estimator, HasLogOdds)
        ):
            margin = np.asarray(self.estimator.log_odds(encoded), dtype=np.float64)
            return margin if target.class_index == 1 else -margin
        raw = self.raw_output(encoded)
        return self.select(raw, target)

    def select(self, raw: np.ndarray, target: Target) -> np.ndarray:
        """Pick the explained output out of ``raw_output``."""
        if self.task == "regression":
            return raw
        assert target.class_index is not None
        p = raw[:, target.class_index]
        return _logit(p) if target.output == "log_odds" else p

    def output_function(self, target: Target) -> Callable[[np.ndarray], np.ndarray]:
        return lambda encoded: self.output(encoded, target)

    # -- decomposition ------------------------------------------------------------------

    def _decompose(self) -> None:
        pipeline = self.pipeline
        if isinstance(pipeline, Composed):
            if pipeline.preprocessor is None:
                self._identity(pipeline.estimator)
            else:
                self._decompose_head(pipeline.preprocessor, pipeline.estimator)
            return
        if isinstance(pipeline, Pipeline):
            steps = pipeline.steps
            if len(steps) == 1:
                self._identity(steps[0][1])
                return
            head: Any = steps[0][1] if len(steps) == 2 else pipeline[:-1]
            self._decompose_head(head, steps[-1][1])
            return
        self._identity(pipeline)

    def _decompose_head(self, head: Any, estimator: Any) -> None:
        """Decompose a preprocessing head whose raw features each own their columns."""
        first = head.steps[0][1] if isinstance(head, Pipeline) else head
        groups: list[np.ndarray] | None
        if isinstance(first, ColumnTransformer):
            groups = _column_groups(first, self.feature_names)
        else:
            groups = [np.array([i], dtype=np.intp) for i in range(len(self.features))]
        if groups is None:
            return
        try:
            transformed = _dense(head.transform(self.background_frame))
        except (TypeError, ValueError):
            return
        if transformed.ndim != 2 or sum(len(g) for g in groups) != transformed.shape[1]:
            return
        if not _groups_hold(head, self.background_frame, groups, transformed):
            return
        self._preprocess = head
        self.estimator = estimator
        self.groups = groups
        self.decomposed = True
        encoder = _compile(head, self.features, transformed.shape[1])
        if encoder is not None and _same_bits(encoder, head, self.background_frame, transformed):
            self._encoder = encoder
            self.compiled = True

    def _identity(self, estimator: Any) -> None:
        """No preprocessing: each raw (numeric) feature is its own column, where the
        estimator reading the float64 matrix gives the bits it gives on the DataFrame."""
        if any(f.categorical for f in self.features):
            return
        if getattr(estimator, "n_features_in_", len(self.features)) != len(self.features):
            return
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None and [str(n) for n in names] != self.feature_names:
            return
        reader = _matrix_reader(estimator)
        if reader is None:
            return
        frame = self.background_frame
        function = "predict_proba" if self.task == "classification" else "predict"
        # The matrix in the layout the DataFrame itself hands over (BLAS-backed models give
        # other last bits for another memory layout), and a few rows alone as served.
        pairs = [(frame, frame.to_numpy(dtype=np.float64))]
        for i in range(min(3, len(frame))):
            one = frame.iloc[[i]]
            pairs.append((one, np.ascontiguousarray(one.to_numpy(dtype=np.float64))))
        named = hasattr(estimator, "feature_names_in_")  # else a DataFrame only makes it warn
        for data, matrix in pairs:
            try:
                given = data if named else data.to_numpy(dtype=np.float64)
                theirs = np.asarray(getattr(estimator, function)(given), dtype=np.float64)
                ours = np.asarray(getattr(reader, function)(matrix), dtype=np.float64)
            except (AttributeError, TypeError, ValueError):
                return
            if ours.shape != theirs.shape or ours.tobytes() != theirs.tobytes():
                return
        self._preprocess = _IDENTITY
        self.estimator = reader
        self.groups = [np.array([i], dtype=np.intp) for i in range(len(self.features))]
        self.decomposed = True
        self._encoder = _identity_encoder(self.feature_names)
        self.compiled = True

    def _check_class_order(self) -> None:
        if self.task != "classification":
            return
        model_classes = [str(c) for c in getattr(self.pipeline, "classes_", [])]
        if model_classes != self.classes:
            raise ValueError(
                f"the manifest's classes {self.classes} differ from the model's {model_classes}"
            )

    def target(self, output: str | None, class_name: str | None, seed: int) -> Target:
        """Resolve an output space and class name into a ``Target`` (checks they exist)."""
        if self.task == "regression":
            if output not in (None, "prediction"):
                raise ExplainerUnavailable("a regression model is explained as its prediction")
            return Target("prediction", None, seed)
        if output not in (None, "probability", "log_odds"):
            raise ExplainerUnavailable("a classifier is explained as probability or log_odds")
        assert self.classes is not None
        index = self.classes.index(class_name) if class_name is not None else None
        return Target("log_odds" if output == "log_odds" else "probability", index, seed)


def _one_output(predictions: np.ndarray) -> np.ndarray:
    """A regressor's predictions as one number per row: a model fitted on a 2-D target of
    one column (LinearRegression on ``y[:, None]``) predicts an (n, 1) matrix."""
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        return predictions[:, 0]
    if predictions.ndim != 1:
        raise ExplainerUnavailable(
            f"the regressor predicts {predictions.shape[1:]} values per row; one is explained"
        )
    return predictions


def _dense(matrix: Any) -> np.ndarray:
    """A transformer's output as a dense float64 matrix (sparse one-hot output included)."""
    if scipy.sparse.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


def _records(frame: pd.DataFrame) -> list[Row]:
    """The rows of a frame as dicts keyed by column name."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _column_groups(ct: ColumnTransformer, names: list[str]) -> list[np.ndarray] | None:
    """Which encoded columns each raw feature owns, or None when that is not clear-cut."""
    position = {n: i for i, n in enumerate(names)}
    owned: dict[int, list[int]] = {i: [] for i in range(len(names))}
    start = 0
    for _name, transformer, columns in ct.transformers_:
        if transformer == "drop":
            continue
        cols = [columns] if isinstance(columns, str) else list(columns)
        if not all(isinstance(c, str) and c in position for c in cols):
            return None
        if isinstance(transformer, OneHotEncoder):
            if transformer.drop_idx_ is not None:
                widths = [
                    len(cats) - (0 if d is None else 1)
                    for cats, d in zip(transformer.categories_, transformer.drop_idx_, strict=True)
                ]
            else:
                widths = [len(cats) for cats in transformer.categories_]
        else:
            out = transformer.get_feature_names_out(cols) if transformer != "passthrough" else cols
            if len(out) != len(cols):
                return None
            widths = [1] * len(cols)
        for col, width in zip(cols, widths, strict=True):
            owned[position[col]].extend(range(start, start + width))
            start += width
    if any(not v for v in owned.values()):
        return None
    return [np.array(owned[i], dtype=np.intp) for i in range(len(names))]


def _groups_hold(ct: Any, frame: pd.DataFrame, groups: list[np.ndarray], base: np.ndarray) -> bool:
    """Changing one raw feature changes only the columns of its group."""
    rolled = frame.apply(lambda col: np.roll(col.to_numpy(), 1))
    for i, name in enumerate(frame.columns):
        changed = frame.copy()
        changed[name] = rolled[name]
        out = _dense(ct.transform(changed))
        same = (out == base) | (np.isnan(out) & np.isnan(base))  # a missing value stays one
        moved = np.flatnonzero((~same).any(axis=0))
        if not set(moved.tolist()) <= set(groups[i].tolist()):
            return False
    return True


def _compile(head: Any, features: list[FeatureSpec], width: int) -> Encoder | None:
    """A numpy encoder for one-hot, ordinal, standard-scaled and passthrough columns."""
    if isinstance(head, CategoryCodes):
        return head.encode if head.features == features else None
    if isinstance(head, ColumnTransformer):
        parts = list(head.transformers_)
    elif isinstance(head, StandardScaler):
        parts = [("all", head, [f.name for f in features])]
    else:
        return None
    position = {f.name: i for i, f in enumerate(features)}
    steps: list[Callable[[np.ndarray, Sequence[Row]], None]] = []
    start = 0
    for _name, transformer, columns in parts:
        if transformer == "drop":
            continue
        cols = [columns] if isinstance(columns, str) else list(columns)
        if isinstance(transformer, OneHotEncoder):
            if transformer.drop_idx_ is not None:
                return None
            for col, cats in zip(cols, transformer.categories_, strict=True):
                lookup = {str(c): start + k for k, c in enumerate(cats)}
                steps.append(_one_hot(col, lookup))
                start += len(cats)
        elif isinstance(transformer, OrdinalEncoder):
            for col, cats in zip(cols, transformer.categories_, strict=True):
                codes = {str(c): float(k) for k, c in enumerate(cats)}
                steps.append(_ordinal(col, start, codes))
                start += 1
        elif isinstance(transformer, StandardScaler) or _is_passthrough(transformer):
            scaler = transformer if isinstance(transformer, StandardScaler) else None
            mean = scaler.mean_ if scaler is not None and scaler.with_mean else None
            scale = scaler.scale_ if scaler is not None and scaler.with_std else None
            for k, col in enumerate(cols):
                if features[position[col]].categorical:
                    return None
                m = float(mean[k]) if mean is not None else None
                s = float(scale[k]) if scale is not None else None
                steps.append(_numeric(col, start, m, s))
                start += 1
        else:
            return None
    if start != width:
        return None

    def encode(rows: Sequence[Row]) -> np.ndarray:
        out = np.zeros((len(rows), width), dtype=np.float64)
        for step in steps:
            step(out, rows)
        return out

    return encode


def _is_passthrough(transformer: Any) -> bool:
    """A fitted ColumnTransformer stores "passthrough" as an identity FunctionTransformer."""
    if isinstance(transformer, str):
        return transformer == "passthrough"
    return (
        isinstance(transformer, FunctionTransformer)
        and transformer.func is None
        and not transformer.validate
    )


def _one_hot(col: str, lookup: dict[str, int]) -> Callable[[np.ndarray, Sequence[Row]], None]:
    def step(out: np.ndarray, rows: Sequence[Row]) -> None:
        for r, row in enumerate(rows):
            out[r, lookup[str(row[col])]] = 1.0

    return step


def _ordinal(
    col: str, index: int, codes: dict[str, float]
) -> Callable[[np.ndarray, Sequence[Row]], None]:
    def step(out: np.ndarray, rows: Sequence[Row]) -> None:
        for r, row in enumerate(rows):
            out[r, index] = codes[str(row[col])]

    return step


def _numeric(
    col: str, index: int, mean: float | None, scale: float | None
) -> Callable[[np.ndarray, Sequence[Row]], None]:
    def step(out: np.ndarray, rows: Sequence[Row]) -> None:
        values = np.fromiter(
            (np.nan if row[col] is None else float(row[col]) for row in rows),
            dtype=np.float64,
            count=len(rows),
        )
        if mean is not None:
            values = values - mean
        if scale is not None:
            values = values / scale
        out[:, index] = values

    return step


def _same_bits(encoder: Encoder, ct: Any, frame: pd.DataFrame, transformed: np.ndarray) -> bool:
    """The compiled encoder reproduces scikit-learn's transform bit for bit."""
    ours = encoder(_records(frame))
    single = np.vstack([encoder([row]) for row in _records(frame.head(5))])
    one_by_one = np.vstack(
        [_dense(ct.transform(frame.iloc[[i]])) for i in range(min(5, len(frame)))]
    )
    return (
        ours.shape == transformed.shape
        and ours.tobytes() == transformed.tobytes()
        and single.tobytes() == one_by_one.tobytes()
    )


class _Identity:
    """The preprocessing of a model that has none: raw numeric features as float64."""

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return np.ascontiguousarray(frame.to_numpy(dtype=np.float64))


_IDENTITY = _Identity()


def _identity_encoder(names: list[str]) -> Encoder:
    """Rows of raw numeric features as a float64 matrix, columns in the given order."""
    steps = [_numeric(name, i, None, None) for i, name in enumerate(names)]

    def encode(rows: Sequence[Row]) -> np.ndarray:
        out = np.zeros((len(rows), len(names)), dtype=np.float64)
        for step in steps:
            step(out, rows)
        return out

    return encode


def _matrix_reader(estimator: Any) -> Any:
    """The estimator as it reads a plain matrix: itself, or for a scikit-learn estimator
    fitted on a DataFrame a copy without the column names (which would only make it warn
    on every call); None where a fitted part inside it also holds column names."""
    if not isinstance(estimator, BaseEstimator) or not hasattr(estimator, "feature_names_in_"):
        return estimator
    if any(_holds_names(part, 4) for part in vars(estimator).values()):
        return None
    reader = copy.copy(estimator)
    del reader.feature_names_in_
    return reader


def _holds_names(value: Any, depth: int) -> bool:
    """Whether a fitted part inside ``value`` (estimators, lists, tuples, dicts, object
    arrays and other objects' attributes, to the given depth) was fitted with column names."""
    if depth <= 0 or isinstance(value, (str, bytes, int, float, bool, type(None))):
        return False
    if isinstance(value, BaseEstimator) and hasattr(value, "feature_names_in_"):
        return True
    if isinstance(value, dict):
        return any(_holds_names(v, depth - 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_names(v, depth - 1) for v in value)
    if isinstance(value, np.ndarray):
        return value.dtype == object and any(_holds_names(v, depth - 1) for v in value.ravel())
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and not isinstance(value, type):
        return any(_holds_names(v, depth - 1) for v in attributes.values())
    return False
