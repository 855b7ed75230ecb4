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
        except xgboost.core.XGBoostError as exc:
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
        except lightgbm.basic.LightGBMError as exc:
            raise FrameworkModelError(
                f"{name} is not a model LightGBM can load: {library_reason(exc)}"
            ) from exc
    raise FrameworkModelError(f"unknown model format {format!r} (known: {', '.join(FORMATS)})")


def library_reason(exc: Exception) -> str:
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
        tree, vector = _xgboost_tree(raw, int(info[t]), num_feature, f"tree {t}")
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


def _xgboost_tree(raw: Any, output: int, features: int, key: str) -> tuple[ParsedTree, bool]:
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


def _read_lightgbm(text: str) -> ParsedBooster:
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
    parsed = ParsedBooster(
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
        sigmoid=sigmoid,
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
) -> tuple[ParsedTree, set[int], bool]:
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
