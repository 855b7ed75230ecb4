"""Exact interventional TreeSHAP kernel with raw features as players (numba-compiled).

For one explained row x, one background row z and one tree, the hybrid rows
h_S = (x on the players in S, z elsewhere) reach at most a few leaves. Walk from the root
keeping, per player, whether it is unfixed, fixed to x or fixed to z. At a node splitting
column c of player j: fixed to x → follow x's branch; fixed to z → follow z's; unfixed →
if x and z take the same branch follow it (j stays unfixed), else take both: x's child with
j fixed to x and z's child with j fixed to z. A leaf reached with the x-players P (|P| = p)
and z-players N (|N| = n) is the leaf of h_S exactly when P ⊆ S and S ∩ N = ∅, so its value
v contributes to each x-player +v·(p−1)!·n!/(p+n)! and to each z-player −v·p!·(n−1)!/(p+n)!
(the Shapley weights summed over the free players). A raw feature's encoded columns share
one player, so the values are Shapley values of raw features. Averaging over background
rows gives the interventional values; they add up to f(x) − mean f(z).

A node's split is one of four kinds (``kind``): numeric ``x <= threshold`` on values the
caller has already rounded as the model does (scikit-learn trees and XGBoost read float32,
HistGradientBoosting and LightGBM float64); numeric with zero as missing (LightGBM's
``zero_as_missing``: |x| ≤ 1e-35 goes where a missing value goes); and two categorical kinds,
a table of directions per category code (``cat_left[cat_start + code]`` for codes below
``cat_size``) with every other value going right (LightGBM: codes that truncate below 0 or
beyond its bitset) or left (XGBoost: negative values or codes beyond its set). A NaN always
follows ``missing_left``. Everything is sequential with a fixed order, so a row's values do
not depend on what else is explained, and the kernel releases the GIL.
"""

from __future__ import annotations

from math import factorial

import numpy as np
from numba import njit

UNFIXED = 0
TO_X = 1
TO_Z = 2


def leaf_weights(players: int) -> tuple[np.ndarray, np.ndarray]:
    """Tables w_x[p, n] = (p−1)!·n!/(p+n)! and w_z[p, n] = p!·(n−1)!/(p+n)!."""
    size = players + 1
    w_x = np.zeros((size, size), dtype=np.float64)
    w_z = np.zeros((size, size), dtype=np.float64)
    for p in range(size):
        for n in range(size - p):
            if p > 0:
                w_x[p, n] = factorial(p - 1) * factorial(n) / factorial(p + n)
            if n > 0:
                w_z[p, n] = factorial(p) * factorial(n - 1) / factorial(p + n)
    return w_x, w_z


NUMERIC = 0
"""Split kind: ``x <= threshold``."""
NUMERIC_ZERO_MISSING = 1
"""Split kind: ``x <= threshold``, except |x| ≤ ``ZERO_THRESHOLD`` goes where NaN goes."""
CATEGORIES_OTHERS_RIGHT = 2
"""Split kind: a category table; values truncating below 0 or beyond the table go right."""
CATEGORIES_OTHERS_LEFT = 3
"""Split kind: a category table; negative values or codes beyond the table go left."""
ZERO_THRESHOLD = float(np.float32(1e-35))
"""LightGBM's bound for "zero" (a float literal widened to double, as it compares)."""


RIGHT = 0
LEFT = 1
TABLE = 2
"""``_split``'s answers: go right, go left, or look the category code up in the table."""


@njit(cache=True, nogil=True)
def _split(value: float, kind: int, threshold: float, missing_left: bool, size: int) -> int:
    """Where a value goes at a node, from the node's scalars alone (kernels pass no arrays
    here: a call with array arguments costs more than the walk itself); ``TABLE``: at
    ``cat_left[cat_start + int(value)]``."""
    if value != value:  # NaN
        return LEFT if missing_left else RIGHT
    if kind == NUMERIC:
        return LEFT if value <= threshold else RIGHT
    if kind == NUMERIC_ZERO_MISSING:
        if -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD:
            return LEFT if missing_left else RIGHT
        return LEFT if value <= threshold else RIGHT
    others_left = kind == CATEGORIES_OTHERS_LEFT
    if value >= size or (value < 0.0 if others_left else value <= -1.0):
        return LEFT if others_left else RIGHT
    return TABLE


@njit(cache=True, nogil=True)
def directions(
    rows: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    kind: np.ndarray,
    cat_start: np.ndarray,
    cat_size: np.ndarray,
    cat_left: np.ndarray,
) -> np.ndarray:
    """Per row and node: whether the row goes left there (leaves: False)."""
    out = np.zeros((rows.shape[0], feature.shape[0]), dtype=np.bool_)
    for r in range(rows.shape[0]):
        for node in range(feature.shape[0]):
            c = feature[node]
            if c >= 0:
                v = rows[r, c]
                d = _split(v, kind[node], threshold[node], missing_left[node], cat_size[node])
                out[r, node] = d == LEFT if d != TABLE else cat_left[cat_start[node] + int(v)]
    return out


@njit(cache=True, nogil=True)
def shap_row(
    x: np.ndarray,
    z_left: np.ndarray,
    weights: np.ndarray,
    trees: np.ndarray,
    tree_root: np.ndarray,
    group_of: np.ndarray,
    group_start: np.ndarray,
    group_row: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    missing_left: np.ndarray,
    kind: np.ndarray,
    cat_start: np.ndarray,
    cat_size: np.ndarray,
    cat_left: np.ndarray,
    value: np.ndarray,
    owner: np.ndarray,
    w_x: np.ndarray,
    w_z: np.ndarray,
    max_depth: int,
    out: np.ndarray,
) -> None:
    """Add Σ_z weights[z] · φ(x, z) over the given trees into ``out``.

    ``z_left[b, node]``: whether background row b goes left at the node. Background rows
    that go the same way at every node of a tree get the same φ from it: per tree t they
    fall into groups (``group_of[t, b]``; the group's first row is
    ``group_row[group_start[t] + g]``), and each group is walked once with the sum of its
    rows' weights. ``feature[node] < 0`` marks a leaf; ``value[node]`` is its output.
    """
    players = out.shape[0]
    background = z_left.shape[0]
    state = np.zeros(players, dtype=np.int8)
    fixed = np.empty(players + 1, dtype=np.int64)
    size = 2 * max_depth + 4
    stack_node = np.empty(size, dtype=np.int64)
    stack_len = np.empty(size, dtype=np.int64)
    stack_player = np.empty(size, dtype=np.int64)
    stack_state = np.empty(size, dtype=np.int8)
    group_weight = np.empty(background, dtype=np.float64)
    for tt in range(trees.shape[0]):
        t = trees[tt]
        root = tree_root[t]
        first = group_start[t]
        groups = group_start[t + 1] - first
        for g in range(groups):
            group_weight[g] = 0.0
        for b in range(background):
            group_weight[group_of[t, b]] += weights[b]
        for g in range(groups):
            w = group_weight[g]
            if w == 0.0:
                continue
            zb = group_row[first + g]
            stack_node[0] = root
            stack_len[0] = 0
            stack_player[0] = -1
            stack_state[0] = UNFIXED
            top = 1
            nfixed = 0
            p = 0
            n = 0
            while top > 0:
                top -= 1
                node = stack_node[top]
                keep = stack_len[top]
                while nfixed > keep:
                    nfixed -= 1
                    j = fixed[nfixed]
                    if state[j] == TO_X:
                        p -= 1
                    else:
                        n -= 1
                    state[j] = UNFIXED
                j = stack_player[top]
                if j >= 0:
                    state[j] = stack_state[top]
                    fixed[nfixed] = j
                    nfixed += 1
                    if stack_state[top] == TO_X:
                        p += 1
                    else:
                        n += 1
                while True:
                    c = feature[node]
                    if c < 0:
                        if nfixed > 0:
                            v = value[node] * w
                            gain = v * w_x[p, n]
                            loss = v * w_z[p, n]
                            for k in range(nfixed):
                                i = fixed[k]
                                if state[i] == TO_X:
                                    out[i] += gain
                                else:
                                    out[i] -= loss
                        break
                    j = owner[c]
                    s = state[j]
                    go_z = z_left[zb, node]
                    if s == TO_Z:
                        node = left[node] if go_z else right[node]
                        continue
                    v = x[c]
                    d = _split(v, kind[node], threshold[node], missing_left[node], cat_size[node])
                    go_x = d == LEFT if d != TABLE else cat_left[cat_start[node] + int(v)]
                    if s == TO_X or go_x == go_z:
                        node = left[node] if go_x else right[node]
                        continue
                    x_child = left[node] if go_x else right[node]
                    z_child = right[node] if go_x else left[node]
                    stack_node[top] = z_child
                    stack_len[top] = nfixed
                    stack_player[top] = j
                    stack_state[top] = TO_Z
                    top += 1
                    stack_node[top] = x_child
                    stack_len[top] = nfixed
                    stack_player[top] = j
                    stack_state[top] = TO_X
                    top += 1
                    break
            while nfixed > 0:
                nfixed -= 1
                state[fixed[nfixed]] = UNFIXED


@njit(cache=True, nogil=True)
def leaf_nodes(
    rows: np.ndarray,
    roots: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    missing_left: np.ndarray,
    kind: np.ndarray,
    cat_start: np.ndarray,
    cat_size: np.ndarray,
    cat_left: np.ndarray,
) -> np.ndarray:
    """Per row and tree: the node of the leaf the row reaches (rows × trees)."""
    out = np.empty((rows.shape[0], roots.shape[0]), dtype=np.int64)
    for r in range(rows.shape[0]):
        for t in range(roots.shape[0]):
            node = roots[t]
            while feature[node] >= 0:
                v = rows[r, feature[node]]
                d = _split(v, kind[node], threshold[node], missing_left[node], cat_size[node])
                if d == LEFT or (d == TABLE and cat_left[cat_start[node] + int(v)]):
                    node = left[node]
                else:
                    node = right[node]
            out[r, t] = node
    return out


@njit(cache=True, nogil=True)
def predict_rows(
    rows: np.ndarray,
    roots: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    missing_left: np.ndarray,
    kind: np.ndarray,
    cat_start: np.ndarray,
    cat_size: np.ndarray,
    cat_left: np.ndarray,
    value: np.ndarray,
) -> np.ndarray:
    """Σ over the trees of each row's leaf value (trees added in order, from 0.0)."""
    out = np.zeros(rows.shape[0], dtype=np.float64)
    for r in range(rows.shape[0]):
        total = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while feature[node] >= 0:
                v = rows[r, feature[node]]
                d = _split(v, kind[node], threshold[node], missing_left[node], cat_size[node])
                if d == LEFT or (d == TABLE and cat_left[cat_start[node] + int(v)]):
                    node = left[node]
                else:
                    node = right[node]
            total += value[node]
        out[r] = total
    return out
