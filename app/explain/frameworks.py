"""XGBoost and LightGBM boosters as estimators over their input columns, with their trees.

A framework model is the library's own ``Booster``: XGBoost's from UBJSON or JSON (as
``Booster.save_model`` writes it), LightGBM's from its text model file. ``read_booster`` /
``load_booster`` check the file in Python before the library sees it (both libraries end
the process on some malformed files instead of raising), then load it; pickle and joblib
are never read here. ``BoosterEstimator`` puts a booster behind ``predict`` /
``predict_proba`` / ``decision_function`` for the task and classes the manifest gives, so
``TabularModel.from_parts`` can take it after a preprocessor or none.

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
  missing value goes the default way where the node's missing type is NaN, where zero goes
  where it is "zero" (|x| ≤ 1e-35 and NaN, for ``zero_as_missing``), and where 0.0 goes
  otherwise. A categorical split sends the categories of its bitset left and everything else
  (NaN, negative codes, codes beyond the bitset) right. LightGBM sums its float64 leaves from
  0.0, so its own predictions are served; ours reproduce them bit for bit.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
from scipy.special import expit, softmax

from app.explain.ensemble import Builder, Ensemble, tree_depth
from app.explain.model import FeatureSpec
from app.explain.treeshap import (
    CATEGORIES_OTHERS_LEFT,
    CATEGORIES_OTHERS_RIGHT,
    NUMERIC,
    NUMERIC_ZERO_MISSING,
)
from app.explain.types import ExplainerUnavailable, FrameworkModelError

FORMATS: tuple[str, ...] = ("xgboost", "lightgbm")
"""The framework formats a manifest may name for its estimator."""

XGBOOST_CLASSIFIERS = {"binary:logistic": "logistic", "multi:softprob": "softmax"}
"""XGBoost objectives whose output is class probabilities, and their link."""
XGBOOST_LABELS = {"multi:softmax": "softmax"}
"""XGBoost objectives that predict labels; their probabilities are the softmax of margins."""
XGBOOST_IDENTITY = frozenset(
    {
        "reg:squarederror",
        "reg:linear",
        "reg:squaredlogerror",
        "reg:pseudohubererror",
        "reg:absoluteerror",
        "reg:quantileerror",
        "rank:pairwise",
        "rank:ndcg",
        "rank:map",
    }
)
"""XGBoost objectives whose prediction is the margin itself."""
LIGHTGBM_CLASSIFIERS = {"binary": "logistic", "cross_entropy": "logistic", "multiclass": "softmax"}
"""LightGBM objectives whose output is class probabilities, and their link."""
LIGHTGBM_IDENTITY = frozenset(
    {
        "regression",
        "regression_l1",
        "huber",
        "fair",
        "quantile",
        "mape",
        "custom",
        "lambdarank",
        "rank_xendcg",
    }
)
"""LightGBM objectives whose prediction is the raw score itself (unless ``sqrt``)."""

PROBE_ROWS = 8
"""Background rows copied for each missing-value and category probe of the proof."""
PROBE_THRESHOLDS = 48
"""Thresholds per column probed (at, just below and just above each)."""
MAX_UBJSON_DEPTH = 64
"""Deepest nesting accepted in a UBJSON document (XGBoost's models nest 6 levels)."""
BASE_CANDIDATES = 3
"""float32 neighbours tried on each side of the base margin (see ``_xgboost_base``)."""


# -- reading model files ----------------------------------------------------------------


def native_format(obj: Any) -> str | None:
    """``"xgboost"`` or ``"lightgbm"`` when the object is (or ends in) such a model."""
    steps = getattr(obj, "steps", None)
    if isinstance(steps, list) and steps:
        return native_format(steps[-1][1])
    module = type(obj).__module__.split(".")[0]
    return module if module in FORMATS else None


def load_booster(path: str | Path, format: str) -> Any:
    """The library's own Booster read from a model file of the given format."""
    location = Path(path)
    try:
        data = location.read_bytes()
    except OSError as exc:
        raise FrameworkModelError(f"{location.name} cannot be read ({exc.strerror})") from exc
    return read_booster(data, format, location.name)


def read_booster(data: bytes, format: str, name: str = "the estimator file") -> Any:
    """The library's own Booster from the bytes of a model file (checked first: both
    libraries end the process on some malformed files instead of raising)."""
    if format == "xgboost":
        _xgboost_model(_xgboost_document(data, name), name)
        import xgboost

        booster = xgboost.Booster()
        try:
            booster.load_model(bytearray(data))
        except xgboost.core.XGBoostError as exc:
            raise FrameworkModelError(
                f"{name} is not a model XGBoost can load: {_reason(exc)}"
            ) from exc
        return booster
    if format == "lightgbm":
        text = _lightgbm_text(data, name)
        _lightgbm_model(text, name)
        import lightgbm

        try:
            return lightgbm.Booster(model_str=text)
        except lightgbm.basic.LightGBMError as exc:
            raise FrameworkModelError(
                f"{name} is not a model LightGBM can load: {_reason(exc)}"
            ) from exc
    raise FrameworkModelError(f"unknown model format {format!r} (known: {', '.join(FORMATS)})")


def _reason(exc: Exception) -> str:
    """A library's error message in words: its first line without time stamps and paths."""
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else "no reason given"
    line = re.sub(r"^\[[0-9:]+\]\s*", "", line)
    line = re.sub(r"^\S+\.(cc|cpp|h|cu):\d+:\s*", "", line)
    return line[:200]


class _Malformed(Exception):
    """A model document that does not parse or does not hold what a model holds."""


# -- XGBoost documents ------------------------------------------------------------------

_UBJ_NUMBERS: dict[bytes, str] = {
    b"i": ">i1",
    b"U": ">u1",
    b"I": ">i2",
    b"l": ">i4",
    b"L": ">i8",
    b"d": ">f4",
    b"D": ">f8",
}


class _Ubjson:
    """A bounded reader of UBJSON (Universal Binary JSON), XGBoost's binary model format:
    every length is checked against the bytes left, nesting is limited."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def document(self) -> Any:
        value = self.value(self.marker(), 0)
        if self.pos != len(self.data):
            raise _Malformed("bytes after the end of the document")
        return value

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise _Malformed("the document ends early")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def marker(self) -> bytes:
        while True:
            byte = self.take(1)
            if byte != b"N":
                return byte

    def peek(self) -> bytes:
        return self.data[self.pos : self.pos + 1]

    def count(self) -> int:
        marker = self.marker()
        dtype = _UBJ_NUMBERS.get(marker)
        if dtype is None or marker in (b"d", b"D"):
            raise _Malformed("a length is not an integer")
        size = np.dtype(dtype).itemsize
        value = int(np.frombuffer(self.take(size), dtype=dtype)[0])
        if value < 0 or value > len(self.data):
            raise _Malformed("a length is out of range")
        return value

    def value(self, marker: bytes, depth: int) -> Any:
        if depth > MAX_UBJSON_DEPTH:
            raise _Malformed("the document nests too deep")
        dtype = _UBJ_NUMBERS.get(marker)
        if dtype is not None:
            number = np.frombuffer(self.take(np.dtype(dtype).itemsize), dtype=dtype)[0]
            return float(number) if marker in (b"d", b"D") else int(number)
        if marker == b"Z":
            return None
        if marker == b"T":
            return True
        if marker == b"F":
            return False
        if marker == b"C":
            return self.take(1).decode("latin-1")
        if marker in (b"S", b"H"):
            try:
                return self.take(self.count()).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Malformed("a string is not UTF-8") from exc
        if marker == b"[":
            return self.array(depth)
        if marker == b"{":
            return self.object(depth)
        raise _Malformed(f"unknown marker {marker!r}")

    def header(self) -> tuple[bytes | None, int | None]:
        kind: bytes | None = None
        if self.peek() == b"$":
            self.take(1)
            kind = self.take(1)
            if self.peek() != b"#":
                raise _Malformed("a typed container has no count")
        if self.peek() == b"#":
            self.take(1)
            return kind, self.count()
        return kind, None

    def array(self, depth: int) -> Any:
        kind, count = self.header()
        if count is None:
            items: list[Any] = []
            while True:
                marker = self.marker()
                if marker == b"]":
                    return items
                items.append(self.value(marker, depth + 1))
        if kind is not None and kind in _UBJ_NUMBERS:
            dtype = np.dtype(_UBJ_NUMBERS[kind])
            raw = np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype)
            return raw.astype(dtype.newbyteorder("="))
        return [self.value(kind or self.marker(), depth + 1) for _ in range(count)]

    def object(self, depth: int) -> dict[str, Any]:
        kind, count = self.header()
        out: dict[str, Any] = {}
        while count is None or len(out) < count:
            if count is None and self.peek() == b"}":
                self.take(1)
                return out
            try:
                key = self.take(self.count()).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Malformed("a key is not UTF-8") from exc
            out[key] = self.value(kind or self.marker(), depth + 1)
        return out


def _xgboost_document(data: bytes, name: str) -> dict[str, Any]:
    """The model document of an XGBoost file (JSON or UBJSON, told by the second byte)."""
    start = data.lstrip()[:2]
    if not start.startswith(b"{"):
        raise FrameworkModelError(
            f"{name} is not an XGBoost model saved as UBJSON or JSON (Booster.save_model)"
        )
    try:
        if start[1:2] in (b'"', b"}", b"\n", b"\r", b"\t", b" "):
            document = json.loads(data)
        else:
            document = _Ubjson(data).document()
    except (_Malformed, ValueError, RecursionError) as exc:
        raise FrameworkModelError(
            f"{name} is not an XGBoost model saved as UBJSON or JSON: {exc}"
        ) from exc
    if not isinstance(document, dict):
        raise FrameworkModelError(f"{name} is not an XGBoost model document")
    return document


@dataclass
class _Tree:
    """One tree in our node numbering (node 0 the root; −1: no child)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    kind: np.ndarray
    tables: dict[int, np.ndarray]
    value: np.ndarray
    output: int


@dataclass
class _Parsed:
    """What the estimator needs of a model file, checked."""

    objective: str
    link: str
    """``logistic``, ``softmax``, ``identity`` or ``other``."""
    outputs: int
    """Margins per row: the classes of a multiclass model, else 1."""
    features: int
    feature_names: list[str] | None
    categorical: list[int]
    """Columns the booster splits as categories."""
    categories: dict[int, list[str]]
    """Columns whose categories the model itself stored, in code order."""
    trees: list[_Tree]
    base: list[float] = field(default_factory=list)
    """XGBoost: the base score per output (in output space, as the file stores it)."""
    tree_problem: str | None = None
    """Why the trees cannot be used for exact values (None: they can)."""
    labels_only: bool = False
    """XGBoost's multi:softmax: the library predicts labels, not probabilities."""
    pandas_categorical: list[list[str]] | None = None
    """LightGBM: the categories of each pandas categorical column it was trained on."""


def _get(mapping: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise _Malformed(f"no {key!r}")
    value = mapping[key]
    if not isinstance(value, kind):
        raise _Malformed(f"{key!r} has the wrong type")
    return value


def _ints(values: Any, count: int, key: str) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (count,):
        raise _Malformed(f"{key!r} does not hold {count} integers")
    if count and not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise _Malformed(f"{key!r} does not hold integers")
    return array.astype(np.int64)


def _floats(values: Any, count: int, key: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _Malformed(f"{key!r} does not hold numbers") from exc
    if array.shape != (count,):
        raise _Malformed(f"{key!r} does not hold {count} numbers")
    return array


def _number_list(text: str, key: str) -> list[float]:
    try:
        return [float(v) for v in text.strip().strip("[]").split(",") if v.strip()]
    except ValueError as exc:
        raise _Malformed(f"{key!r} is not a list of numbers") from exc


def _check_structure(left: np.ndarray, right: np.ndarray, key: str) -> np.ndarray:
    """Node 0 reaches every node at most once (no cycles, no shared children); which
    nodes it reaches."""
    count = len(left)
    seen = np.zeros(count, dtype=bool)
    stack = [0]
    while stack:
        node = stack.pop()
        if seen[node]:
            raise _Malformed(f"{key}: a node is reached twice")
        seen[node] = True
        for child in (left[node], right[node]):
            if child >= count or child < -1:
                raise _Malformed(f"{key}: a child is out of range")
            if child >= 0:
                stack.append(int(child))
        if (left[node] < 0) != (right[node] < 0):
            raise _Malformed(f"{key}: a node has one child")
    return seen


def _xgboost_model(document: dict[str, Any], name: str) -> _Parsed:
    """The checked content of an XGBoost model document."""
    try:
        return _read_xgboost(document)
    except _Malformed as exc:
        raise FrameworkModelError(f"{name} is not a valid XGBoost model: {exc}") from exc


def _read_xgboost(document: dict[str, Any]) -> _Parsed:
    learner = _get(document, "learner", dict)
    params = _get(learner, "learner_model_param", dict)
    objective = str(_get(_get(learner, "objective", dict), "name", str))
    try:
        num_class = int(params.get("num_class", "0"))
        num_feature = int(_get(params, "num_feature", (str, int)))
        num_target = int(params.get("num_target", "1"))
    except ValueError as exc:
        raise _Malformed("the model parameters are not numbers") from exc
    if num_feature <= 0 or num_class < 0:
        raise _Malformed("the model has no features")
    base = _number_list(str(params.get("base_score", "0.5")), "base_score")
    outputs = max(1, num_class) * max(1, num_target)
    names = learner.get("feature_names") or None
    types = list(learner.get("feature_types") or [])
    if names is not None and len(names) != num_feature:
        raise _Malformed("feature_names does not name every feature")
    categorical = [j for j, t in enumerate(types) if t == "c"]
    booster = _get(learner, "gradient_booster", dict)
    kind = _get(booster, "name", str)
    problem: str | None = None
    weights: np.ndarray | None = None
    if kind == "dart":
        weights = np.asarray(booster.get("weight_drop", []), dtype=np.float32)
        booster = _get(booster, "gbtree", dict)
    if kind == "gblinear":
        return _Parsed(
            objective,
            _xgboost_link(objective),
            outputs,
            num_feature,
            [str(n) for n in names] if names else None,
            categorical,
            {},
            [],
            base,
            tree_problem="a linear booster (gblinear) has no trees",
            labels_only=objective in XGBOOST_LABELS,
        )
    if kind not in ("gbtree", "dart"):
        raise _Malformed(f"unknown booster {kind!r}")
    model = _get(booster, "model", dict)
    raw_trees = _get(model, "trees", list)
    info = _ints(_get(model, "tree_info", (list, np.ndarray)), len(raw_trees), "tree_info")
    if weights is not None and len(weights) != len(raw_trees):
        raise _Malformed("weight_drop does not weigh every tree")
    if num_target > 1:
        problem = "a multi-target model"
    if len(info) and (info.min() < 0 or info.max() >= outputs):
        raise _Malformed("a tree belongs to no output")
    trees = []
    for t, raw in enumerate(raw_trees):
        tree, vector = _xgboost_tree(raw, int(info[t]), num_feature, f"tree {t}")
        if vector:
            problem = "trees with vector leaves (multi_strategy)"
        if weights is not None:
            tree.value = (tree.value.astype(np.float32) * weights[t]).astype(np.float64)
        trees.append(tree)
    categories = _xgboost_categories(model.get("cats"), num_feature)
    return _Parsed(
        objective,
        _xgboost_link(objective),
        outputs,
        num_feature,
        [str(n) for n in names] if names else None,
        categorical,
        categories,
        trees,
        base,
        tree_problem=problem,
        labels_only=objective in XGBOOST_LABELS,
    )


def _xgboost_link(objective: str) -> str:
    if objective in XGBOOST_CLASSIFIERS:
        return XGBOOST_CLASSIFIERS[objective]
    if objective in XGBOOST_LABELS:
        return XGBOOST_LABELS[objective]
    return "identity" if objective in XGBOOST_IDENTITY else "other"


def _xgboost_tree(raw: Any, output: int, features: int, key: str) -> tuple[_Tree, bool]:
    """One XGBoost tree as float32-exact arrays; whether its leaves are vectors."""
    param = _get(raw, "tree_param", dict)
    try:
        count = int(_get(param, "num_nodes", (str, int)))
        vector = int(param.get("size_leaf_vector", "1")) > 1
    except ValueError as exc:
        raise _Malformed(f"{key}: its parameters are not numbers") from exc
    if count <= 0:
        raise _Malformed(f"{key}: no nodes")
    left = _ints(_get(raw, "left_children", (list, np.ndarray)), count, f"{key} left_children")
    right = _ints(_get(raw, "right_children", (list, np.ndarray)), count, f"{key} right_children")
    split = _ints(_get(raw, "split_indices", (list, np.ndarray)), count, f"{key} split_indices")
    conditions = _floats(_get(raw, "split_conditions", (list, np.ndarray)), count, key)
    default = _ints(_get(raw, "default_left", (list, np.ndarray)), count, f"{key} default_left")
    types = _ints(raw.get("split_type", np.zeros(count, dtype=np.int64)), count, key)
    reached = _check_structure(left, right, key)
    leaf = (left < 0) | ~reached
    if ((split < 0) | (split >= features))[~leaf].any():
        raise _Malformed(f"{key}: a split reads a feature the model does not have")
    values32 = conditions.astype(np.float32)
    thresholds = np.where(leaf, 0.0, np.nextafter(values32, np.float32(-np.inf)).astype(np.float64))
    kind = np.where(types == 1, CATEGORIES_OTHERS_LEFT, NUMERIC).astype(np.int8)
    tables: dict[int, np.ndarray] = {}
    nodes = _ints(raw.get("categories_nodes", []), len(raw.get("categories_nodes", [])), key)
    if len(nodes):
        segments = _ints(raw.get("categories_segments", []), len(nodes), f"{key} segments")
        sizes = _ints(raw.get("categories_sizes", []), len(nodes), f"{key} sizes")
        cats = np.asarray(raw.get("categories", []))
        if ((nodes < 0) | (nodes >= count)).any() or (segments < 0).any() or (sizes < 0).any():
            raise _Malformed(f"{key}: categories out of range")
        if len(nodes) and int((segments + sizes).max()) > len(cats):
            raise _Malformed(f"{key}: categories out of range")
        for node, start, size in zip(nodes, segments, sizes, strict=True):
            listed = np.asarray(cats[start : start + size], dtype=np.int64)
            if (listed < 0).any() or (listed >= 1 << 24).any():
                raise _Malformed(f"{key}: a category code is out of range")
            table = np.ones(int(listed.max()) + 1 if len(listed) else 0, dtype=np.bool_)
            table[listed] = False  # listed categories go right
            tables[int(node)] = table
    if any(int(n) not in tables for n in np.flatnonzero((kind == CATEGORIES_OTHERS_LEFT) & ~leaf)):
        raise _Malformed(f"{key}: a categorical split has no categories")
    tree = _Tree(
        feature=np.where(leaf, -1, split),
        threshold=thresholds,
        left=np.where(leaf, -1, left),
        right=np.where(leaf, -1, right),
        missing_left=default.astype(np.bool_),
        kind=np.where(leaf, NUMERIC, kind).astype(np.int8),
        tables={n: v for n, v in tables.items() if not leaf[n]},
        value=np.where(leaf, values32.astype(np.float64), 0.0),
        output=output,
    )
    return tree, vector


def _xgboost_categories(cats: Any, features: int) -> dict[int, list[str]]:
    """The categories XGBoost stored per feature (when trained on pandas categoricals)."""
    out: dict[int, list[str]] = {}
    if not isinstance(cats, dict):
        return out
    encodings = cats.get("enc") or []
    if len(encodings) not in (0, features):
        raise _Malformed("stored categories do not cover every feature")
    for j, enc in enumerate(encodings):
        if not isinstance(enc, dict):
            raise _Malformed("stored categories have the wrong type")
        if "offsets" in enc:
            offsets = [int(v) for v in np.asarray(enc["offsets"]).tolist()]
            raw = bytes(int(v) & 0xFF for v in np.asarray(enc.get("values", [])).tolist())
            if offsets and (offsets[0] < 0 or offsets[-1] > len(raw) or offsets != sorted(offsets)):
                raise _Malformed("stored categories are out of range")
            try:
                names = [raw[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]
            except UnicodeDecodeError as exc:
                raise _Malformed("a stored category is not UTF-8") from exc
        else:
            names = [_category_text(v) for v in np.asarray(enc.get("values", [])).tolist()]
        if names:
            out[j] = names
    return out


def _category_text(value: Any) -> str:
    """A numeric category as the manifest writes it (integers without a decimal point)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- LightGBM documents -----------------------------------------------------------------


def _lightgbm_text(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameworkModelError(f"{name} is not a LightGBM text model file") from exc
    if not text.startswith("tree\n") and not text.startswith("tree\r\n"):
        raise FrameworkModelError(
            f"{name} is not a LightGBM text model file (Booster.save_model writes one)"
        )
    return text


def _lightgbm_model(text: str, name: str) -> _Parsed:
    """The checked content of a LightGBM text model."""
    try:
        return _read_lightgbm(text)
    except _Malformed as exc:
        raise FrameworkModelError(f"{name} is not a valid LightGBM model: {exc}") from exc


def _key_values(lines: Sequence[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep:
            out[key] = value
    return out


def _lightgbm_ints(values: dict[str, str], key: str, count: int) -> np.ndarray:
    try:
        array = np.asarray([int(v) for v in values.get(key, "").split()], dtype=np.int64)
    except ValueError as exc:
        raise _Malformed(f"{key} is not a list of integers") from exc
    if len(array) != count:
        raise _Malformed(f"{key} does not hold {count} values")
    return array


def _lightgbm_floats(values: dict[str, str], key: str, count: int) -> np.ndarray:
    try:
        array = np.asarray([float(v) for v in values.get(key, "").split()], dtype=np.float64)
    except ValueError as exc:
        raise _Malformed(f"{key} is not a list of numbers") from exc
    if len(array) != count:
        raise _Malformed(f"{key} does not hold {count} values")
    return array


def _read_lightgbm(text: str) -> _Parsed:
    lines = text.splitlines()
    try:
        end = lines.index("end of trees")
    except ValueError as exc:
        raise _Malformed("no end of trees") from exc
    starts = [i for i in range(end) if lines[i].startswith("Tree=")]
    if not starts:
        raise _Malformed("no trees")
    header = _key_values(lines[: starts[0]])
    try:
        num_class = int(header["num_class"])
        per_iteration = int(header["num_tree_per_iteration"])
        max_feature = int(header["max_feature_idx"])
    except (KeyError, ValueError) as exc:
        raise _Malformed("the header does not give the classes and features") from exc
    if num_class < 1 or per_iteration < 1 or max_feature < 0:
        raise _Malformed("the header's counts are out of range")
    features = max_feature + 1
    objective_tokens = header.get("objective", "regression").split()
    objective = objective_tokens[0] if objective_tokens else "regression"
    names = header.get("feature_names", "").split()
    if len(names) != features:
        raise _Malformed("feature_names does not name every feature")
    problem: str | None = None
    if any(line.strip() == "average_output" for line in lines[: starts[0]]):
        problem = "random forest mode (average_output) divides the sum of its trees"
    sigmoid = 1.0
    for token in objective_tokens[1:]:
        key, _, value = token.partition(":")
        if key == "sigmoid":
            try:
                sigmoid = float(value)
            except ValueError as exc:
                raise _Malformed("the sigmoid parameter is not a number") from exc
    if objective in LIGHTGBM_CLASSIFIERS:
        link = LIGHTGBM_CLASSIFIERS[objective]
        if sigmoid != 1.0:
            problem = problem or f"the sigmoid parameter {sigmoid} scales the margin"
    elif objective in LIGHTGBM_IDENTITY and "sqrt" not in objective_tokens:
        link = "identity"
    else:
        link = "other"
    trees = []
    categorical: set[int] = set()
    bounds = [*starts, end]
    for t in range(len(starts)):
        values = _key_values(lines[bounds[t] + 1 : bounds[t + 1]])
        tree, cats, linear = _lightgbm_tree(values, t % per_iteration, features, f"tree {t}")
        if linear:
            problem = problem or "linear trees (linear_tree) have models in their leaves"
        categorical |= cats
        trees.append(tree)
    if len(trees) % per_iteration:
        raise _Malformed("the trees do not fill their last iteration")
    tail = lines[end + 1 :]
    categories: dict[int, list[str]] = {}
    pandas_categorical: list[list[str]] | None = None
    for line in tail:
        if line.startswith("pandas_categorical:"):
            try:
                stored = json.loads(line.partition(":")[2])
            except ValueError as exc:
                raise _Malformed("pandas_categorical is not JSON") from exc
            if stored is not None:
                if not isinstance(stored, list) or not all(isinstance(c, list) for c in stored):
                    raise _Malformed("pandas_categorical is not a list of category lists")
                pandas_categorical = [[_category_text(v) for v in c] for c in stored]
    parsed = _Parsed(
        objective,
        link,
        num_class if num_class > 1 else 1,
        features,
        names,
        sorted(categorical | _lightgbm_declared(tail)),
        categories,
        trees,
        tree_problem=problem,
        pandas_categorical=pandas_categorical,
    )
    return parsed


def _lightgbm_declared(tail: Sequence[str]) -> set[int]:
    """The categorical features named in the model's parameters (``categorical_feature``)."""
    for line in tail:
        if line.startswith("[categorical_feature:"):
            text = line.strip()[len("[categorical_feature:") : -1].strip()
            try:
                return {int(v) for v in text.split(",") if v.strip()}
            except ValueError:
                return set()
    return set()


def _lightgbm_tree(
    values: dict[str, str], output: int, features: int, key: str
) -> tuple[_Tree, set[int], bool]:
    """One LightGBM tree (internal nodes first, then its leaves); its categorical columns;
    whether its leaves hold linear models."""
    try:
        leaves = int(values["num_leaves"])
        num_cat = int(values.get("num_cat", "0"))
        linear = int(values.get("is_linear", "0")) != 0
    except (KeyError, ValueError) as exc:
        raise _Malformed(f"{key}: no num_leaves") from exc
    if leaves < 1 or num_cat < 0:
        raise _Malformed(f"{key}: counts out of range")
    leaf_value = _lightgbm_floats(values, "leaf_value", leaves)
    internal = leaves - 1
    if internal == 0:
        tree = _Tree(
            feature=np.array([-1], dtype=np.int64),
            threshold=np.zeros(1),
            left=np.array([-1], dtype=np.int64),
            right=np.array([-1], dtype=np.int64),
            missing_left=np.zeros(1, dtype=np.bool_),
            kind=np.zeros(1, dtype=np.int8),
            tables={},
            value=leaf_value,
            output=output,
        )
        return tree, set(), linear
    split = _lightgbm_ints(values, "split_feature", internal)
    threshold = _lightgbm_floats(values, "threshold", internal)
    decision = _lightgbm_ints(values, "decision_type", internal)
    children = [_lightgbm_ints(values, k, internal) for k in ("left_child", "right_child")]
    if ((split < 0) | (split >= features)).any() or ((decision < 0) | (decision > 15)).any():
        raise _Malformed(f"{key}: a split is out of range")
    if any(((c >= internal) | (c < -leaves)).any() for c in children):
        raise _Malformed(f"{key}: a child is out of range")
    left, right = (np.where(c >= 0, c, internal + ~c) for c in children)
    count = internal + leaves
    left = np.concatenate([left, np.full(leaves, -1)])
    right = np.concatenate([right, np.full(leaves, -1)])
    reached = _check_structure(left, right, key)
    if not reached.all():
        raise _Malformed(f"{key}: a node is unreachable")
    boundaries = np.zeros(1, dtype=np.int64)
    words = np.zeros(0, dtype=np.int64)
    if num_cat:
        boundaries = _lightgbm_ints(values, "cat_boundaries", num_cat + 1)
        if boundaries[0] != 0 or (np.diff(boundaries) < 0).any():
            raise _Malformed(f"{key}: cat_boundaries out of order")
        words = _lightgbm_ints(values, "cat_threshold", int(boundaries[-1]))
        if ((words < 0) | (words >= 1 << 32)).any():
            raise _Malformed(f"{key}: cat_threshold out of range")
    is_cat = (decision & 1) > 0
    default_left = (decision & 2) > 0
    missing_type = (decision >> 2) & 3
    kind = np.full(count, NUMERIC, dtype=np.int8)
    missing = np.zeros(count, dtype=np.bool_)
    tables: dict[int, np.ndarray] = {}
    for node in range(internal):
        if is_cat[node]:
            index = threshold[node]
            if not (index.is_integer() and 0 <= index < num_cat):
                raise _Malformed(f"{key}: a categorical split names no category set")
            chunk = words[boundaries[int(index)] : boundaries[int(index) + 1]]
            bits = ((chunk[:, None] >> np.arange(32)) & 1).astype(np.bool_).reshape(-1)
            kind[node] = CATEGORIES_OTHERS_RIGHT
            tables[node] = bits
            missing[node] = False  # NaN: right, always
        elif missing_type[node] == 1:
            kind[node] = NUMERIC_ZERO_MISSING
            missing[node] = default_left[node]
        elif missing_type[node] == 2:
            missing[node] = default_left[node]
        else:
            missing[node] = threshold[node] >= 0.0  # NaN is read as 0.0, 0.0 <= t
    tree = _Tree(
        feature=np.concatenate([split, np.full(leaves, -1)]),
        threshold=np.concatenate([np.where(is_cat, 0.0, threshold), np.zeros(leaves)]),
        left=left,
        right=right,
        missing_left=missing,
        kind=kind,
        tables=tables,
        value=np.concatenate([np.zeros(internal), leaf_value]),
        output=output,
    )
    return tree, {int(c) for c in split[is_cat]}, linear


# -- the estimator ----------------------------------------------------------------------


def _ensemble(parsed: _Parsed, float32: bool) -> Ensemble:
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
            parsed = _xgboost_model(
                _xgboost_document(bytes(booster.save_raw("ubj")), "the model"), "the model"
            )
        elif module == "lightgbm" and type(booster).__name__ == "Booster":
            self.format = "lightgbm"
            parsed = _lightgbm_model(booster.model_to_string(), "the model")
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
        if self.link == "other":
            self.tree_problem = (
                f"the prediction of objective {self.objective!r} is not the sum of the trees "
                "(TreeSHAP is exact for the sum)"
            )
        self.own_output = self.format == "xgboost" and self.link != "other"

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
                raise ValueError(_reason(exc)) from exc
        else:
            import lightgbm

            try:
                out = self.booster.predict(data, raw_score=margin, num_threads=1)
            except lightgbm.basic.LightGBMError as exc:
                raise ValueError(_reason(exc)) from exc
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
        """A binary classifier's log-odds of its second class: its margin."""
        if self.link != "logistic":
            raise ExplainerUnavailable("log-odds are offered for binary classifiers")
        return self.decision_function(rows)

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


def _xgboost_base(leaves: np.ndarray, margins: np.ndarray, parsed: _Parsed, k: int) -> Any:
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
