"""Tree ensembles as flat node arrays, the form the numba TreeSHAP kernel walks.

Every library's trees (scikit-learn's, XGBoost's, LightGBM's) are read into one
``Ensemble``: per node its split (feature, kind, threshold or category table, where a
missing value goes) and its children, per model output the trees that add up to it, their
leaf values and a constant. Readers append trees with ``Builder``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.explain.treeshap import NUMERIC, leaf_nodes, predict_rows
from app.explain.types import ExplainerUnavailable


@dataclass
class Ensemble:
    """Trees as flat node arrays; per model output k, its trees, leaf values and constant.

    Outputs: class probabilities (forest classifiers), the prediction (regressors) or
    the class margins (boosted classifiers: one margin when binary).
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    kind: np.ndarray
    """Each node's split kind (``app.explain.treeshap``: numeric, or a category table)."""
    cat_start: np.ndarray
    """Categorical nodes: where the node's table starts in ``cat_left``."""
    cat_size: np.ndarray
    """Categorical nodes: how many category codes the table holds."""
    cat_left: np.ndarray
    """Every categorical node's table: whether category code c goes left."""
    tree_root: np.ndarray
    """Each tree's root node (trees are numbered in the order they were read)."""
    tree_end: np.ndarray
    """One past each tree's last node."""
    trees_of: list[np.ndarray]
    """Per output k, the trees that add up to it."""
    values: list[np.ndarray]
    constants: list[float]
    max_depth: int
    float32: bool
    """Whether the model reads its input as float32 (rows are rounded before comparing)."""
    trees: int

    def prepare(self, rows: np.ndarray) -> np.ndarray:
        """Rows as the model compares them (scikit-learn trees and XGBoost read float32)."""
        data = np.asarray(rows, dtype=np.float64)
        if not self.float32:
            return np.ascontiguousarray(data)
        with np.errstate(over="ignore"):
            rounded = data.astype(np.float32)
        if (np.isinf(rounded) & np.isfinite(data)).any():
            raise ExplainerUnavailable("shap.tree: a value is outside the float32 range")
        return np.ascontiguousarray(rounded.astype(np.float64))

    def predict(self, prepared: np.ndarray, k: int) -> np.ndarray:
        """Output k on prepared rows: each row's leaves summed tree by tree, plus the constant."""
        sums = predict_rows(
            prepared,
            self.tree_root[self.trees_of[k]],
            self.feature,
            self.threshold,
            self.left,
            self.right,
            self.missing_left,
            self.kind,
            self.cat_start,
            self.cat_size,
            self.cat_left,
            self.values[k],
        )
        return np.asarray(sums + self.constants[k], dtype=np.float64)

    def leaves(self, prepared: np.ndarray, k: int) -> np.ndarray:
        """The leaf values output k's trees give each prepared row (rows × trees)."""
        nodes = leaf_nodes(
            prepared,
            self.tree_root[self.trees_of[k]],
            self.feature,
            self.threshold,
            self.left,
            self.right,
            self.missing_left,
            self.kind,
            self.cat_start,
            self.cat_size,
            self.cat_left,
        )
        return np.asarray(self.values[k][nodes], dtype=np.float64)


class Builder:
    """Concatenates trees into one node array."""

    def __init__(self) -> None:
        self.feature: list[np.ndarray] = []
        self.threshold: list[np.ndarray] = []
        self.left: list[np.ndarray] = []
        self.right: list[np.ndarray] = []
        self.missing: list[np.ndarray] = []
        self.kind: list[np.ndarray] = []
        self.cat_start: list[np.ndarray] = []
        self.cat_size: list[np.ndarray] = []
        self.cat_left: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.size = 0
        self.table_size = 0
        self.depth = 0
        self.roots: list[int] = []
        self.ends: list[int] = []

    def add(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        missing: np.ndarray,
        values: np.ndarray,
        depth: int,
        kind: np.ndarray | None = None,
        tables: dict[int, np.ndarray] | None = None,
    ) -> int:
        """Append one tree (leaves have feature < 0; values: nodes × outputs); its number.

        ``kind``: each node's split kind (numeric when omitted); ``tables``: per categorical
        node, whether each category code goes left.
        """
        leaf = feature < 0
        count = len(feature)
        offset = self.size
        self.feature.append(np.where(leaf, -1, feature).astype(np.int64))
        self.threshold.append(np.asarray(threshold, dtype=np.float64))
        self.left.append(np.where(leaf, -1, left.astype(np.int64) + offset))
        self.right.append(np.where(leaf, -1, right.astype(np.int64) + offset))
        self.missing.append(np.asarray(missing, dtype=np.bool_))
        kinds = np.full(count, NUMERIC, dtype=np.int8) if kind is None else kind
        self.kind.append(np.asarray(kinds, dtype=np.int8))
        start = np.zeros(count, dtype=np.int64)
        size = np.zeros(count, dtype=np.int64)
        for node, table in sorted((tables or {}).items()):
            start[node] = self.table_size
            size[node] = len(table)
            self.cat_left.append(np.asarray(table, dtype=np.bool_))
            self.table_size += len(table)
        self.cat_start.append(start)
        self.cat_size.append(size)
        self.values.append(np.asarray(values, dtype=np.float64))
        self.size += count
        self.depth = max(self.depth, depth)
        self.roots.append(offset)
        self.ends.append(self.size)
        return len(self.roots) - 1

    def ensemble(
        self, roots: list[list[int]], constants: list[float], float32: bool, trees: int
    ) -> Ensemble:
        """The ensemble of every tree added; ``roots[k]``: the trees of output k."""
        values = np.concatenate(self.values, axis=0)
        tables = self.cat_left or [np.zeros(0, dtype=np.bool_)]
        return Ensemble(
            feature=np.concatenate(self.feature),
            threshold=np.concatenate(self.threshold),
            left=np.concatenate(self.left),
            right=np.concatenate(self.right),
            missing_left=np.concatenate(self.missing),
            kind=np.concatenate(self.kind),
            cat_start=np.concatenate(self.cat_start),
            cat_size=np.concatenate(self.cat_size),
            cat_left=np.concatenate(tables),
            tree_root=np.asarray(self.roots, dtype=np.int64),
            tree_end=np.asarray(self.ends, dtype=np.int64),
            trees_of=[np.asarray(r, dtype=np.int64) for r in roots],
            values=[np.ascontiguousarray(values[:, k]) for k in range(values.shape[1])],
            constants=constants,
            max_depth=self.depth,
            float32=float32,
            trees=trees,
        )


def tree_depth(left: np.ndarray, right: np.ndarray) -> int:
    """The depth of a tree given by child arrays (node 0 the root, −1 or less: no child)."""
    depth = 0
    stack = [(0, 0)]
    while stack:
        node, level = stack.pop()
        depth = max(depth, level)
        for child in (left[node], right[node]):
            if child >= 0:
                stack.append((int(child), level + 1))
    return depth
