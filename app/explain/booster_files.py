"""Framework model files read and checked in Python: XGBoost's and LightGBM's trees.

XGBoost saves UBJSON or JSON (``Booster.save_model``), LightGBM a text model file. Both
libraries end the process on some malformed files instead of raising (an empty XGBoost
buffer, a LightGBM file cut short), so ``read_booster`` parses and checks every file here
first (a bounded UBJSON reader, strict counts and tree structure) and only then hands it to
the library. The same parser reads a loaded booster's own dump into ``ParsedBooster``: its
objective, outputs, feature names, stored categories and trees (``ParsedTree``), which
``app.explain.frameworks`` turns into the TreeSHAP ensemble. Pickle and joblib are never
read here.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.explain.treeshap import (
    CATEGORIES_OTHERS_LEFT,
    CATEGORIES_OTHERS_RIGHT,
    NUMERIC,
    NUMERIC_ZERO_MISSING,
)
from app.explain.types import FrameworkModelError

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

MAX_UBJSON_DEPTH = 64
"""Deepest nesting accepted in a UBJSON document (XGBoost's models nest 6 levels)."""


# -- reading model files ----------------------------------------------------------------


def native_format(obj: Any) -> str | None:
    """``"xgboost"`` or ``"lightgbm"`` when the object is (or ends in) such a model."""
    steps = getattr(obj, "steps", None)
    if isinstance(steps, list) and steps:
        return native_format(steps[-1][1])
    return format_of_type_name(type(obj).__module__)


def format_of_type_name(name: str) -> str | None:
    """``"xgboost"`` or ``"lightgbm"`` for a fully qualified type name from one of them
    (as skops lists a file's types before loading it: ``xgboost.sklearn.XGBClassifier``)."""
    module = name.split(".")[0]
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
        xgboost_model(xgboost_document(data, name), name)
        import xgboost

        booster = xgboost.Booster()
        try:
            booster.load_model(bytearray(data))
        except (xgboost.core.XGBoostError, ValueError) as exc:
            # (an error message quoting the file's bytes may not even decode: ValueError)
            raise FrameworkModelError(
                f"{name} is not a model XGBoost can load: {library_reason(exc)}"
            ) from exc
        return booster
    if format == "lightgbm":
        text = _lightgbm_text(data, name)
        lightgbm_model(text, name)
        import lightgbm

        try:
            return lightgbm.Booster(model_str=text)
        except (lightgbm.basic.LightGBMError, ValueError) as exc:
            raise FrameworkModelError(
                f"{name} is not a model LightGBM can load: {library_reason(exc)}"
            ) from exc
    raise FrameworkModelError(f"unknown model format {format!r} (known: {', '.join(FORMATS)})")


def library_reason(exc: Exception) -> str:
    """A library's error message in words: its first line without time stamps and paths."""
    if isinstance(exc, UnicodeDecodeError):
        return "its error message is not text"
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


def xgboost_document(data: bytes, name: str) -> dict[str, Any]:
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
class ParsedTree:
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
class ParsedBooster:
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
    trees: list[ParsedTree]
    base: list[float] = field(default_factory=list)
    """XGBoost: the base score per output (in output space, as the file stores it)."""
    tree_problem: str | None = None
    """Why the trees cannot be used for exact values (None: they can)."""
    labels_only: bool = False
    """XGBoost's multi:softmax: the library predicts labels, not probabilities."""
    pandas_categorical: list[list[str]] | None = None
    """LightGBM: the categories of each pandas categorical column it was trained on."""
    sigmoid: float = 1.0
    """LightGBM binary models: the log-odds are ``sigmoid`` times the raw score."""


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


def xgboost_model(document: dict[str, Any], name: str) -> ParsedBooster:
    """The checked content of an XGBoost model document."""
    try:
        return _read_xgboost(document)
    except _Malformed as exc:
        raise FrameworkModelError(f"{name} is not a valid XGBoost model: {exc}") from exc


def _read_xgboost(document: dict[str, Any]) -> ParsedBooster:
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
        return ParsedBooster(
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
        tree, vector = _xgboost_tree(raw, int(info[t]), num_feature, num_target, f"tree {t}")
        if vector:
            problem = "trees with vector leaves (multi_strategy)"
        if weights is not None:
            tree.value = (tree.value.astype(np.float32) * weights[t]).astype(np.float64)
        trees.append(tree)
    categories = _xgboost_categories(model.get("cats"), num_feature)
    return ParsedBooster(
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


def _xgboost_tree(
    raw: Any, output: int, features: int, targets: int, key: str
) -> tuple[ParsedTree, bool]:
    """One XGBoost tree as float32-exact arrays; whether its leaves are vectors."""
    param = _get(raw, "tree_param", dict)
    try:
        count = int(_get(param, "num_nodes", (str, int)))
        width = int(param.get("size_leaf_vector", "1"))
    except ValueError as exc:
        raise _Malformed(f"{key}: its parameters are not numbers") from exc
    if count <= 0:
        raise _Malformed(f"{key}: no nodes")
    # XGBoost reads a leaf vector of this width per node without checking it (a wrong
    # width ends the process): it must be the model's target count, the weights that long
    vector = width > 1
    if width not in (0, 1) and width != targets:
        raise _Malformed(f"{key}: leaf vectors of {width} values for {targets} targets")
    weights = np.asarray(raw.get("base_weights", []))
    if weights.shape != (count * max(1, width),):
        raise _Malformed(f"{key}: base_weights does not weigh every node")
    left = _ints(_get(raw, "left_children", (list, np.ndarray)), count, f"{key} left_children")
    right = _ints(_get(raw, "right_children", (list, np.ndarray)), count, f"{key} right_children")
    split = _ints(_get(raw, "split_indices", (list, np.ndarray)), count, f"{key} split_indices")
    conditions = _floats(_get(raw, "split_conditions", (list, np.ndarray)), count, key)
    default = _ints(_get(raw, "default_left", (list, np.ndarray)), count, f"{key} default_left")
    types = _ints(raw.get("split_type", np.zeros(count, dtype=np.int64)), count, key)
    reached = _check_structure(left, right, key)
    _check_parents(raw.get("parents"), left, right, count, key)
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
    tree = ParsedTree(
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


XGBOOST_NO_PARENT = 0x7FFFFFFF
"""The parent XGBoost saves for a root."""


def _check_parents(values: Any, left: np.ndarray, right: np.ndarray, count: int, key: str) -> None:
    """Each node's saved parent is the node whose child it is, the root has none, and a
    node pruned away (no longer anyone's child) names a node of the tree or none: XGBoost
    follows the parents without checking them."""
    parents = _ints(values if values is not None else [], count, f"{key} parents")
    expected = np.full(count, -1, dtype=np.int64)
    for node in range(count):
        for child in (left[node], right[node]):
            if child >= 0:
                expected[child] = node
    expected[0] = XGBOOST_NO_PARENT
    pruned = expected < 0
    named = (parents == XGBOOST_NO_PARENT) | ((parents >= 0) & (parents < count))
    if not (np.array_equal(parents[~pruned], expected[~pruned]) and named[pruned].all()):
        raise _Malformed(f"{key}: its parents do not match its children")


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


def lightgbm_model(text: str, name: str) -> ParsedBooster:
    """The checked content of a LightGBM text model."""
    try:
        return _read_lightgbm(text)
    except _Malformed as exc:
        raise FrameworkModelError(f"{name} is not a valid LightGBM model: {exc}") from exc


_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(
    r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)",
    re.IGNORECASE,
)
TREE_LINES = 22
"""LightGBM reads at most this many ``key=value`` lines of a tree."""
TREE_INTEGERS = {
    "split_feature": "internal",
    "decision_type": "internal",
    "left_child": "internal",
    "right_child": "internal",
    "internal_count": "internal",
    "leaf_count": "leaves",
}
TREE_NUMBERS = {
    "threshold": "internal",
    "split_gain": "internal",
    "internal_value": "internal",
    "internal_weight": "internal",
    "leaf_value": "leaves",
    "leaf_weight": "leaves",
}
"""A LightGBM tree's arrays and their lengths (internal nodes or leaves): LightGBM parses
each one it finds with a fixed count and ends the process where one does not parse."""


def _lines(text: str) -> list[str]:
    """The lines of a text model as LightGBM splits them (at ``\n``, a ``\r`` before it
    dropped); a lone ``\r`` is refused."""
    lines = text.split("\n")
    out = [line[:-1] if line.endswith("\r") else line for line in lines]
    if any("\r" in line for line in out):
        raise _Malformed("a line break is neither \\n nor \\r\\n")
    return out


def _integer(text: str, key: str) -> int:
    if not _INTEGER.fullmatch(text.strip()):
        raise _Malformed(f"{key} is not an integer")
    return int(text)


def _integers(text: str, count: int, key: str) -> np.ndarray:
    parts = text.split()
    if len(parts) != count or not all(_INTEGER.fullmatch(v) for v in parts):
        raise _Malformed(f"{key} does not hold {count} integers")
    return np.asarray([int(v) for v in parts], dtype=np.int64)


def _numbers(text: str, count: int, key: str) -> np.ndarray:
    parts = text.split()
    if len(parts) != count or not all(_NUMBER.fullmatch(v) for v in parts):
        raise _Malformed(f"{key} does not hold {count} numbers")
    return np.asarray([float(v) for v in parts], dtype=np.float64)


def _read_lightgbm(text: str) -> ParsedBooster:
    lines = _lines(text)
    if "end of trees" not in lines:
        raise _Malformed("no end of trees")
    end = lines.index("end of trees")
    first = next((i for i in range(end) if lines[i].startswith("Tree=")), None)
    if first is None:
        raise _Malformed("no trees")
    header: dict[str, str] = {}
    for line in lines[1:first]:
        key, sep, value = line.partition("=")
        if sep and "=" in value and key not in ("feature_names", "monotone_constraints"):
            raise _Malformed(f"a header line holds two '=': {line[:40]!r}")
        if line:
            header[key] = value
    try:
        num_class = _integer(header["num_class"], "num_class")
        per_iteration = _integer(header.get("num_tree_per_iteration", str(num_class)), "trees")
        max_feature = _integer(header["max_feature_idx"], "max_feature_idx")
        _integer(header["label_index"], "label_index")
        infos = header["feature_infos"].split(" ")
    except KeyError as exc:
        raise _Malformed(f"the header has no {exc.args[0]}") from exc
    if num_class < 1 or max_feature < 0 or per_iteration != num_class:
        raise _Malformed("the header's class, tree and feature counts do not agree")
    features = max_feature + 1
    names = header.get("feature_names", "").split(" ")
    if len(names) != features or len(infos) != features:
        raise _Malformed("feature_names or feature_infos does not cover every feature")
    objective_tokens = header.get("objective", "regression").split()
    objective = objective_tokens[0] if objective_tokens else "regression"
    problem: str | None = None
    if "average_output" in header:
        problem = "random forest mode (average_output) divides the sum of its trees"
    sigmoid = 1.0
    for token in objective_tokens[1:]:
        key, _, value = token.partition(":")
        if key == "sigmoid":
            if not _NUMBER.fullmatch(value):
                raise _Malformed("the sigmoid parameter is not a number")
            sigmoid = float(value)
    if objective in LIGHTGBM_CLASSIFIERS:
        link = LIGHTGBM_CLASSIFIERS[objective]
        if sigmoid != 1.0:
            problem = problem or f"the sigmoid parameter {sigmoid} scales the margin"
    elif objective in LIGHTGBM_IDENTITY and "sqrt" not in objective_tokens:
        link = "identity"
    else:
        link = "other"
    blocks = _tree_blocks(lines, first, end)
    _check_tree_sizes(header.get("tree_sizes"), lines, first, [b for b, _ in blocks])
    trees = []
    categorical: set[int] = set()
    for t, (_, values) in enumerate(blocks):
        tree, cats, linear = _lightgbm_tree(values, t % per_iteration, features, f"tree {t}")
        if linear:
            problem = problem or "linear trees (linear_tree) have models in their leaves"
        categorical |= cats
        trees.append(tree)
    if len(trees) % per_iteration:
        raise _Malformed("the trees do not fill their last iteration")
    tail = lines[end + 1 :]
    _check_tail(tail)
    pandas_categorical = _pandas_categorical(text)
    return ParsedBooster(
        objective,
        link,
        num_class if num_class > 1 else 1,
        features,
        names,
        sorted(categorical | _lightgbm_declared(tail)),
        {},
        trees,
        tree_problem=problem,
        pandas_categorical=pandas_categorical,
        sigmoid=sigmoid,
    )


PANDAS_KEY = "pandas_categorical:"
_PARAMETER = re.compile(r"\[[A-Za-z0-9_]+: .*\]")


def _check_tail(tail: list[str]) -> None:
    """What follows the trees, as LightGBM writes it: feature importances, a closed
    ``parameters:`` section of ``[key: value]`` lines, an optional ``parser:`` section, the
    pandas categories (LightGBM's own reader crashes on a cut parameters section)."""
    section = None
    closed = {"parameters": False, "parser": False}
    for line in tail:
        if section == "parameters":
            if line == "end of parameters":
                section, closed["parameters"] = None, True
            elif line and not _PARAMETER.fullmatch(line):
                raise _Malformed(f"a parameter line is not [key: value]: {line[:40]!r}")
        elif section == "parser":
            if line == "end of parser":
                section, closed["parser"] = None, True
        elif line == "parameters:" and not closed["parameters"]:
            section = "parameters"
        elif line == "parser:" and not closed["parser"]:
            section = "parser"
        elif line and line != "feature_importances:" and not line.startswith(PANDAS_KEY):
            name, sep, value = line.rpartition("=")
            if not sep or not name or not _INTEGER.fullmatch(value):
                raise _Malformed(f"unexpected line after the trees: {line[:40]!r}")
    if section is not None:
        raise _Malformed(f"the {section} section is not closed")


def _pandas_categorical(text: str) -> list[list[str]] | None:
    """The categories LightGBM's Python package stored, read as it reads them (its last
    line, when that starts with ``pandas_categorical:``)."""
    index = text.rfind("\n", 0, len(text) - len(PANDAS_KEY))
    last = text[index:].strip()
    if not last.startswith(PANDAS_KEY):
        return None
    try:
        stored = json.loads(last[len(PANDAS_KEY) :])
    except ValueError as exc:
        raise _Malformed("pandas_categorical is not JSON") from exc
    if stored is None:
        return None
    if not isinstance(stored, list) or not all(isinstance(c, list) for c in stored):
        raise _Malformed("pandas_categorical is not a list of category lists")
    return [[_category_text(v) for v in c] for c in stored]


def _tree_blocks(lines: list[str], first: int, end: int) -> list[tuple[int, dict[str, str]]]:
    """Each tree's ``Tree=`` line and its ``key=value`` lines (up to the blank line that
    ends it); between trees only blank lines, as LightGBM reads them."""
    blocks: list[tuple[int, dict[str, str]]] = []
    i = first
    while i < end:
        if not lines[i]:
            i += 1
            continue
        if not lines[i].startswith("Tree=") or not _INTEGER.fullmatch(lines[i][5:]):
            raise _Malformed(f"a tree was expected, not {lines[i][:40]!r}")
        start = i
        values: dict[str, str] = {}
        i += 1
        while i < end and lines[i]:
            key, sep, value = lines[i].partition("=")
            if not sep:
                raise _Malformed(f"tree {len(blocks)}: a line without '='")
            values[key] = value
            i += 1
        if i - start - 1 > TREE_LINES:
            raise _Malformed(f"tree {len(blocks)}: more than {TREE_LINES} lines")
        blocks.append((start, values))
    return blocks


def _check_tree_sizes(sizes: str | None, lines: list[str], first: int, starts: list[int]) -> None:
    """``tree_sizes`` (LightGBM finds each tree by these byte counts, from the first
    ``Tree=`` line) must land on every tree's ``Tree=`` line."""
    if sizes is None:
        return
    counts = _integers(sizes, len(starts), "tree_sizes")
    if (counts < 0).any():
        raise _Malformed("tree_sizes is negative")
    offsets = {}
    position = 0
    for i in range(first, len(lines)):
        offsets[i] = position
        position += len(lines[i].encode("utf-8")) + 1
    boundaries = np.concatenate([[0], np.cumsum(counts)[:-1]])
    expected = [offsets[s] - offsets[first] for s in starts]
    if boundaries.tolist() != expected:
        raise _Malformed("tree_sizes does not locate the trees")


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
) -> tuple[ParsedTree, set[int], bool]:
    """One LightGBM tree (internal nodes first, then its leaves); its categorical columns;
    whether its leaves hold linear models. Every array LightGBM would parse is checked."""
    if "num_leaves" not in values or "num_cat" not in values or "leaf_value" not in values:
        raise _Malformed(f"{key}: no num_leaves, num_cat or leaf_value")
    leaves = _integer(values["num_leaves"], f"{key} num_leaves")
    num_cat = _integer(values["num_cat"], f"{key} num_cat")
    linear = _integer(values.get("is_linear", "0"), f"{key} is_linear") != 0
    if "shrinkage" in values and not _NUMBER.fullmatch(values["shrinkage"].strip()):
        raise _Malformed(f"{key}: shrinkage is not a number")
    if leaves < 1 or num_cat < 0:
        raise _Malformed(f"{key}: counts out of range")
    internal = leaves - 1
    counts = {"internal": internal, "leaves": leaves}
    arrays: dict[str, np.ndarray] = {}
    # LightGBM reads leaf_value and leaf_count of every tree, the rest only of a tree
    # with splits (or linear leaves): a one-leaf tree leaves them empty
    full = internal > 0 or linear
    for name, size in TREE_INTEGERS.items():
        if name in values and (full or name == "leaf_count"):
            arrays[name] = _integers(values[name], counts[size], f"{key} {name}")
    for name, size in TREE_NUMBERS.items():
        if name in values and (full or name == "leaf_value"):
            arrays[name] = _numbers(values[name], counts[size], f"{key} {name}")
    if linear:
        _check_linear(values, leaves, features, key)
    leaf_value = arrays["leaf_value"]
    if internal == 0:
        tree = ParsedTree(
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
    for name in ("split_feature", "threshold", "left_child", "right_child"):
        if name not in arrays:
            raise _Malformed(f"{key}: no {name}")
    split = arrays["split_feature"]
    threshold = arrays["threshold"]
    decision = arrays.get("decision_type", np.zeros(internal, dtype=np.int64))
    children = [arrays["left_child"], arrays["right_child"]]
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
        if "cat_boundaries" not in values or "cat_threshold" not in values:
            raise _Malformed(f"{key}: no cat_boundaries or cat_threshold")
        boundaries = _integers(values["cat_boundaries"], num_cat + 1, f"{key} cat_boundaries")
        if boundaries[0] != 0 or (np.diff(boundaries) < 0).any():
            raise _Malformed(f"{key}: cat_boundaries out of order")
        words = _integers(values["cat_threshold"], int(boundaries[-1]), f"{key} cat_threshold")
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
    tree = ParsedTree(
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


def _check_linear(values: dict[str, str], leaves: int, features: int, key: str) -> None:
    """A linear tree's leaf models, as LightGBM parses them (counts from num_features)."""
    if "leaf_const" in values:
        _numbers(values["leaf_const"], leaves, f"{key} leaf_const")
    if "num_features" not in values:
        return
    counts = _integers(values["num_features"], leaves, f"{key} num_features")
    if (counts < 0).any():
        raise _Malformed(f"{key}: num_features is negative")
    total = int(counts.sum())
    if "leaf_features" in values:
        used = _integers(values["leaf_features"], total, f"{key} leaf_features")
        if ((used < 0) | (used >= features)).any():
            raise _Malformed(f"{key}: a leaf model reads a feature the model does not have")
    if "leaf_coeff" in values:
        _numbers(values["leaf_coeff"], total, f"{key} leaf_coeff")
