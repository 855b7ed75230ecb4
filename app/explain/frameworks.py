"""XGBoost and LightGBM boosters as estimators over their input columns, with their trees.

A framework model is the library's own ``Booster``: XGBoost's from UBJSON or JSON (as
``Booster.save_model`` writes it), LightGBM's from its text model file, read by
``load_booster`` / ``read_booster`` (``app.explain.booster_files``: checked in Python before
the library sees it; pickle and joblib are never read). ``BoosterEstimator`` puts a booster
behind ``predict`` / ``predict_proba`` / ``decision_function`` for the task and classes the
manifest gives, so ``TabularModel.from_parts`` can take it after a preprocessor or none.

Its trees are read into an ``Ensemble`` for exact TreeSHAP and proven on the background
(``prove``): on the background rows and on probes around every threshold, category code
and missing value, our walk of the trees must reproduce the library's own margins bit for
bit. What the libraries compute, and how the trees are read so that it matches:

- XGBoost reads its input as float32 and splits ``x < t`` on float32 thresholds; inputs are
  rounded to float32 (as for scikit-learn's trees) and a threshold becomes the float32 just
  below it, so ``x <= t'`` holds exactly when ``x < t`` does. A missing value follows the
  node's default direction; a categorical split sends the listed categories right and every
  other value, negative and unknown codes included, left. XGBoost sums its float32 leaves
  in float32 from its base margin; the proof repeats that sum bit for bit, and the
  estimator then serves the same leaves summed in float64 (the library's own output is
  that value rounded to float32, within ~1e-7 relative), so that exact Shapley values add
  up to what is served within 1e-9 rather than within float32 rounding.
- LightGBM reads float64 and splits ``x <= t`` on float64 thresholds: nothing to round. A
  missing value goes the node's default way where its missing type is NaN; where the type is
  Zero (``zero_as_missing``) |x| ≤ 1e-35 and NaN go the default way; where it is None, NaN
  is read as 0.0. A categorical split sends the categories of its bitset left and everything
  else (NaN, negative codes, codes beyond the bitset) right. LightGBM sums its float64 leaves
  from 0.0, so its own predictions are served; ours reproduce them bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
from scipy.special import expit, softmax

from app.explain.booster_files import (
    FORMATS,
    LIGHTGBM_CLASSIFIERS,
    XGBOOST_CLASSIFIERS,
    XGBOOST_LABELS,
    ParsedBooster,
    format_of_type_name,
    library_reason,
    lightgbm_model,
    load_booster,
    native_format,
    read_booster,
    xgboost_document,
    xgboost_model,
)
from app.explain.ensemble import Builder, Ensemble, tree_depth
from app.explain.model import FeatureSpec
from app.explain.treeshap import NUMERIC
from app.explain.types import ExplainerUnavailable, FrameworkModelError

__all__ = [
    "FORMATS",
    "BoosterEstimator",
    "format_of_type_name",
    "load_booster",
    "native_format",
    "read_booster",
]

PROBE_ROWS = 8
"""Background rows copied for each missing-value and category probe of the proof."""
PROBE_THRESHOLDS = 48
"""Thresholds per column probed (at, just below and just above each)."""
BASE_CANDIDATES = 3
"""float32 neighbours tried on each side of the base margin (see ``_xgboost_base``)."""
LINK_FLOAT32 = 1e-6
"""Largest gap between XGBoost's float32 probabilities and its margins' link in float64."""
LINK_FLOAT64 = 1e-12
"""Largest gap between LightGBM's probabilities and its margins' link (both float64)."""


# -- the estimator ----------------------------------------------------------------------


def _ensemble(parsed: ParsedBooster, float32: bool) -> Ensemble:
    """The parsed trees as one ensemble (constants 0: the caller sets them)."""
    builder = Builder()
    roots: list[list[int]] = [[] for _ in range(parsed.outputs)]
    for tree in parsed.trees:
        values = np.zeros((len(tree.feature), parsed.outputs))
        values[:, tree.output] = tree.value
        number = builder.add(
            tree.feature,
            tree.threshold,
            tree.left,
            tree.right,
            tree.missing_left,
            values,
            tree_depth(tree.left, tree.right),
            tree.kind,
            tree.tables,
        )
        roots[tree.output].append(number)
    if not parsed.trees:
        builder.add(
            np.array([-1]),
            np.zeros(1),
            np.array([-1]),
            np.array([-1]),
            np.zeros(1, dtype=np.bool_),
            np.zeros((1, parsed.outputs)),
            0,
        )
    return builder.ensemble(roots, [0.0] * parsed.outputs, float32, len(parsed.trees))


def _matrix(rows: Any, width: int) -> np.ndarray:
    """Rows (a DataFrame, a sparse or dense matrix) as a C-ordered float64 matrix."""
    if isinstance(rows, pd.DataFrame):
        data = rows.to_numpy(dtype=np.float64)
    elif scipy.sparse.issparse(rows):
        data = rows.toarray()
    else:
        data = np.asarray(rows, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != width:
        raise ValueError(f"the model reads {width} columns, not {data.shape[1:]}")
    return np.ascontiguousarray(data, dtype=np.float64)


class BoosterEstimator:
    """An XGBoost or LightGBM booster as an estimator over its input columns.

    ``task`` and ``classes`` come from the manifest (the booster knows neither the class
    names nor, for a binary model, that it is a classifier). Until ``prove`` has checked
    its trees on the background, predictions are the library's own.
    """

    def __init__(self, booster: Any, task: str, classes: Sequence[str] | None) -> None:
        self.booster = booster
        self.task = task
        module = type(booster).__module__.split(".")[0]
        if module == "xgboost" and type(booster).__name__ == "Booster":
            self.format = "xgboost"
            booster.set_param({"nthread": 1})
            parsed = xgboost_model(
                xgboost_document(bytes(booster.save_raw("ubj")), "the model"), "the model"
            )
        elif module == "lightgbm" and type(booster).__name__ == "Booster":
            self.format = "lightgbm"
            parsed = lightgbm_model(booster.model_to_string(), "the model")
        else:
            raise FrameworkModelError(
                "a framework estimator is an XGBoost or LightGBM Booster read from its own "
                "model file"
            )
        self.parsed = parsed
        self.objective = parsed.objective
        self.link = parsed.link
        self.outputs = parsed.outputs
        self.n_features_in_ = parsed.features
        self.classes_ = np.asarray(list(classes or []), dtype=object)
        self._check_task()
        self.ensemble: Ensemble | None = None
        """The proven trees (None until ``prove`` succeeds)."""
        self.tree_problem: str | None = parsed.tree_problem or "the trees are not proven yet"
        """Why the trees cannot give exact values (None once proven and usable)."""
        self.own_output = False
        """Whether predictions come from the proven trees summed in float64 (XGBoost)."""
        self.proof: dict[str, Any] = {}
        """What the proof compared: rows, probes, and for XGBoost the base margins found."""

    def _check_task(self) -> None:
        objective = f"{self.format} objective {self.objective!r}"
        if self.task == "regression":
            if self.outputs != 1:
                raise FrameworkModelError(
                    f"the manifest's task is regression; the model ({objective}) has "
                    f"{self.outputs} outputs"
                )
            return
        if self.task != "classification":
            raise FrameworkModelError(f"unknown task {self.task!r}")
        if self.link not in ("logistic", "softmax"):
            known = (
                XGBOOST_CLASSIFIERS | XGBOOST_LABELS
                if self.format == "xgboost"
                else (LIGHTGBM_CLASSIFIERS)
            )
            raise FrameworkModelError(
                f"the manifest's task is classification; {objective} does not give class "
                f"probabilities (supported: {', '.join(sorted(known))})"
            )
        classes = len(self.classes_)
        if self.link == "logistic":
            fits = classes == 2 and self.outputs == 1
        else:
            fits = classes >= 2 and classes == self.outputs
        if not fits:
            predicted = 2 if self.link == "logistic" else self.outputs
            raise FrameworkModelError(
                f"the manifest names {classes} classes; the model ({objective}) predicts "
                f"{predicted}"
            )

    # -- the manifest's features ----------------------------------------------------------

    def check_features(self, features: Sequence[FeatureSpec]) -> None:
        """The booster reads the raw features itself (no preprocessor): its feature count,
        its own feature names and the categories it stored agree with the manifest's."""
        features = list(features)
        if len(features) != self.n_features_in_:
            raise FrameworkModelError(
                f"the model reads {self.n_features_in_} features; the manifest declares "
                f"{len(features)}"
            )
        names = self.parsed.feature_names
        generic = names is None or names == [f"Column_{i}" for i in range(len(names))]
        if not generic and names != [f.name for f in features]:
            raise FrameworkModelError(
                f"the model's features {names} are not the manifest's "
                f"{[f.name for f in features]} (names and order must match)"
            )
        for j, stored in self.parsed.categories.items():
            self._same_categories(features[j], stored)
        stored_lists = self.parsed.pandas_categorical
        if stored_lists is not None:
            declared = [f for f in features if f.categorical]
            if len(declared) != len(stored_lists):
                raise FrameworkModelError(
                    f"the model was trained on {len(stored_lists)} pandas categorical "
                    f"columns; the manifest declares {len(declared)} categorical features"
                )
            for feature, stored in zip(declared, stored_lists, strict=True):
                self._same_categories(feature, stored)

    @staticmethod
    def _same_categories(feature: FeatureSpec, stored: list[str]) -> None:
        if not feature.categorical:
            raise FrameworkModelError(
                f"feature {feature.name!r}: the model reads it as a category; the manifest "
                "declares it numeric"
            )
        if list(feature.categories or []) != stored:
            raise FrameworkModelError(
                f"feature {feature.name!r}: the model's categories {stored} are not the "
                f"manifest's {list(feature.categories or [])} (order gives the codes)"
            )

    # -- the proof ------------------------------------------------------------------------

    def prove(self, rows: np.ndarray) -> None:
        """Check our walk of the trees against the library's own margins, bit for bit, on
        the rows (the encoded background) and on probes around every threshold, category
        code and missing value; only then are the trees used (and, for XGBoost, served)."""
        data = _matrix(rows, self.n_features_in_)
        try:
            self._library_margins(data[:1])
        except ValueError as exc:
            raise FrameworkModelError(f"the model cannot predict its input: {exc}") from exc
        if self.parsed.tree_problem is not None:
            self.tree_problem = self.parsed.tree_problem
            return
        ensemble = _ensemble(self.parsed, float32=self.format == "xgboost")
        probes = _probes(data, ensemble, self.parsed.categorical)
        theirs = self._library_margins(probes).reshape(len(probes), -1)
        prepared = ensemble.prepare(probes)
        self.proof = {"rows": len(data), "probes": len(probes) - len(data)}
        if self.format == "xgboost":
            bases = []
            for k in range(self.outputs):
                base = _xgboost_base(ensemble.leaves(prepared, k), theirs[:, k], self.parsed, k)
                if base is None:
                    self.tree_problem = (
                        "the trees do not reproduce XGBoost's own margins on the background"
                    )
                    return
                bases.append(base)
            ensemble.constants = [float(b) for b in bases]
            self.proof["base_margins"] = [float(b) for b in bases]
        else:
            ours = np.column_stack([ensemble.predict(prepared, k) for k in range(self.outputs)])
            if ours.tobytes() != np.ascontiguousarray(theirs).tobytes():
                self.tree_problem = (
                    "the trees do not reproduce LightGBM's own raw scores on the background"
                )
                return
        self.ensemble = ensemble
        self.tree_problem = None
        if self.link == "other" or not self._link_holds(data):
            self.tree_problem = (
                f"the prediction of objective {self.objective!r} is not the sum of the trees "
                "or a known link of it (TreeSHAP is exact for the sum)"
            )
            return
        self.own_output = self.format == "xgboost"

    def _link_holds(self, data: np.ndarray) -> bool:
        """The library's predictions are its margins through the link the objective names
        (the identity bit for bit; the logistic and softmax within its own rounding)."""
        margins = self._library_margins(data).reshape(len(data), -1)
        values = self._library_values(data).reshape(len(data), -1)
        if self.link == "identity":
            return values.tobytes() == margins.tobytes()
        if self.link == "logistic":
            expected = np.asarray(expit(margins), dtype=np.float64)
        else:
            expected = np.asarray(softmax(margins, axis=1), dtype=np.float64)
        tolerance = LINK_FLOAT32 if self.format == "xgboost" else LINK_FLOAT64
        return expected.shape == values.shape and bool(
            np.all(np.abs(expected - values) <= tolerance)
        )

    # -- predictions ----------------------------------------------------------------------

    def _library_margins(self, data: np.ndarray) -> np.ndarray:
        """The library's own margins (raw scores): (n,) or (n, outputs)."""
        return self._library(data, margin=True)

    def _library_values(self, data: np.ndarray) -> np.ndarray:
        """The library's own predictions (probabilities or values)."""
        if self.format == "xgboost" and self.parsed.labels_only:
            return np.asarray(softmax(self._library(data, margin=True), axis=1), np.float64)
        return self._library(data, margin=False)

    def _library(self, data: np.ndarray, margin: bool) -> np.ndarray:
        if self.format == "xgboost":
            import xgboost

            try:
                # a DMatrix, not inplace_predict: every booster predicts from one (gblinear
                # and DART do not predict in place)
                matrix = xgboost.DMatrix(
                    data,
                    missing=np.nan,
                    feature_types=self.booster.feature_types,
                    enable_categorical=bool(self.parsed.categorical),
                    nthread=1,
                )
                out = self.booster.predict(matrix, output_margin=margin, validate_features=False)
            except xgboost.core.XGBoostError as exc:
                raise ValueError(library_reason(exc)) from exc
        else:
            import lightgbm

            try:
                out = self.booster.predict(data, raw_score=margin, num_threads=1)
            except lightgbm.basic.LightGBMError as exc:
                raise ValueError(library_reason(exc)) from exc
        return np.asarray(out, dtype=np.float64)

    def _own_margins(self, data: np.ndarray) -> np.ndarray:
        assert self.ensemble is not None
        try:
            prepared = self.ensemble.prepare(data)
        except ExplainerUnavailable as exc:
            raise ValueError("a value is outside the float32 range the model reads") from exc
        margins = [self.ensemble.predict(prepared, k) for k in range(self.outputs)]
        return margins[0] if self.outputs == 1 else np.column_stack(margins)

    def decision_function(self, rows: Any) -> np.ndarray:
        """Margins (raw scores) per row: (n,), or (n, classes) for a multiclass model."""
        data = _matrix(rows, self.n_features_in_)
        if self.own_output:
            return self._own_margins(data)
        return self._library_margins(data)

    def log_odds(self, rows: Any) -> np.ndarray:
        """A binary classifier's log-odds of its second class: its margin (times LightGBM's
        ``sigmoid`` parameter where it is not 1)."""
        if self.link != "logistic":
            raise ExplainerUnavailable("log-odds are offered for binary classifiers")
        margin = self.decision_function(rows)
        return margin if self.parsed.sigmoid == 1.0 else self.parsed.sigmoid * margin

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities per row, in the manifest's class order."""
        if self.task != "classification":
            raise AttributeError("a regressor has no class probabilities")
        data = _matrix(rows, self.n_features_in_)
        if self.own_output:
            margins = self._own_margins(data)
            if self.link == "logistic":
                p1 = np.asarray(expit(margins), dtype=np.float64)
                return np.column_stack([1.0 - p1, p1])
            return np.asarray(softmax(margins, axis=1), dtype=np.float64)
        values = self._library_values(data)
        if values.ndim == 1:
            return np.column_stack([1.0 - values, values])
        return values

    def predict(self, rows: Any) -> np.ndarray:
        """Regression: the predicted value; classification: the most probable class."""
        if self.task == "classification":
            return np.asarray(self.classes_[np.argmax(self.predict_proba(rows), axis=1)])
        data = _matrix(rows, self.n_features_in_)
        if self.own_output:
            return self._own_margins(data)
        return self._library_values(data).reshape(len(data))

    def versions(self) -> dict[str, str]:
        """The version of the library whose booster this is, for the record."""
        import importlib.metadata

        package = "xgboost-cpu" if self.format == "xgboost" else "lightgbm"
        try:
            return {self.format: importlib.metadata.version(package)}
        except importlib.metadata.PackageNotFoundError:
            module = __import__(self.format)
            return {self.format: str(module.__version__)}

    def library_margins(self, rows: Any) -> np.ndarray:
        """The library's own margins (raw scores): (n,), or (n, classes) for multiclass."""
        return self._library_margins(_matrix(rows, self.n_features_in_))

    def library_output(self, rows: Any) -> np.ndarray:
        """The library's own prediction (probabilities, classes in columns, or values)."""
        data = _matrix(rows, self.n_features_in_)
        values = self._library_values(data)
        if self.task == "classification" and values.ndim == 1:
            return np.column_stack([1.0 - values, values])
        return values


def _probes(rows: np.ndarray, ensemble: Ensemble, categorical: Sequence[int]) -> np.ndarray:
    """The rows, then copies of a few of them with one column set to a value where a
    mistake in reading the trees would show: missing, zero, each threshold and the
    numbers next to it, every category code, negative and out-of-range codes."""
    base = rows[: min(len(rows), PROBE_ROWS)]
    blocks = [rows]
    width = rows.shape[1]
    numeric = ensemble.kind == NUMERIC
    for j in range(width):
        values: list[float] = [math.nan, 0.0, -0.0, 1e-36, -1e-36]
        at = np.unique(ensemble.threshold[(ensemble.feature == j) & numeric])
        if len(at) > PROBE_THRESHOLDS:
            at = at[np.linspace(0, len(at) - 1, PROBE_THRESHOLDS).astype(np.intp)]
        for t in at:
            # the threshold and its neighbours in the precision the model compares in
            if ensemble.float32:
                t32 = np.float32(t)
                near = (t32, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, -t32 - 1))
                values += [float(np.nextafter(t32, np.float32(-np.inf)))] + [float(v) for v in near]
            else:
                values += [
                    float(t),
                    float(np.nextafter(t, np.inf)),
                    float(np.nextafter(t, -np.inf)),
                ]
        if j in categorical:
            tables = ensemble.cat_size[ensemble.feature == j]
            top = int(tables.max(initial=0))
            values += [float(c) for c in range(top + 2)] + [-1.0, -0.5, 0.5, float(top + 40)]
        column = np.repeat(base[:1], len(values), axis=0)
        column[:, j] = values
        blocks.append(column)
        for value in (math.nan, 0.0):
            block = base.copy()
            block[:, j] = value
            blocks.append(block)
    return np.ascontiguousarray(np.vstack(blocks))


def _xgboost_base(leaves: np.ndarray, margins: np.ndarray, parsed: ParsedBooster, k: int) -> Any:
    """The float32 base margin that, summed with the rows' leaves in float32 tree by tree
    as XGBoost sums them, gives its own margins bit for bit; None if no candidate does.

    XGBoost stores the base score in output space and turns it into a margin with its own
    float32 arithmetic, so the candidates are the score through each inverse link (the
    identity, the logit, the log) and their nearest float32 neighbours.
    """
    score = parsed.base[k] if k < len(parsed.base) else parsed.base[0] if parsed.base else 0.5
    candidates: list[float] = [score]
    if 0.0 < score < 1.0:
        candidates.append(math.log(score) - math.log1p(-score))
    if score > 0.0:
        candidates.append(math.log(score))
    target = margins.astype(np.float32)
    leaves32 = leaves.astype(np.float32)
    for candidate in candidates:
        center = np.float32(candidate)
        for step in range(-BASE_CANDIDATES, BASE_CANDIDATES + 1):
            base = center
            direction = np.float32(np.inf) if step > 0 else np.float32(-np.inf)
            for _ in range(abs(step)):
                base = np.nextafter(base, direction)
            total = np.full(len(leaves32), base, dtype=np.float32)
            for t in range(leaves32.shape[1]):
                total = total + leaves32[:, t]
            if total.tobytes() == target.tobytes():
                return base
    return None
