"""The tree ensembles of the ai.onnx.ml domain (TreeEnsembleClassifier, TreeEnsembleRegressor,
opsets 1 and 3) as ONNX Runtime's CPU kernels compute them, bit for bit; the machinery that
opset 5's TreeEnsemble (lowp.runtime.ml_tree_ensemble) shares.

ONNX Runtime's kernels: onnxruntime/core/providers/cpu/ml/tree_ensemble_common.h (the
traversal, the tree order and how its threads split the trees), tree_ensemble_aggregator.h
(SUM/AVERAGE/MIN/MAX, base values, the binary-class rules), ml_common.h (write_scores and
the post transforms). Rules (O203)-(O205) in docs/operators.md. Float operators, never quantized;
the walk and the aggregation native where the extension has them (lowp.runtime.native_trees,
(O274)); the reference vectorised: one numpy step per tree level for every (tree, row) pair
still on a branch, one sequential accumulate for the leaf weights; the trees parsed once per
node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lowp import libm
from lowp.errors import NodeError, UnsupportedOpError
from lowp.runtime import native_float, native_trees
from lowp.runtime.float_registry import (
    ARRAY_ATTRIBUTES,
    array_attributes,
    prepared_by,
    register,
    unsupported,
)

MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
          "BRANCH_NEQ": 5, "LEAF": 6}
LEAF = MODES["LEAF"]
MEMBER = 7                      # TreeEnsemble (ai.onnx.ml 5)'s BRANCH_MEMBER
_AGGREGATES = ("SUM", "AVERAGE", "MIN", "MAX")
_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
_INPUTS = (np.float32, np.float64, np.int64, np.int32)
# ONNX Runtime's thresholds: trees split by threads beyond PARALLEL_TREE trees for one row,
# beyond PARALLEL_N rows for a batch (TreeEnsembleCommon::Init's 80, 50)
PARALLEL_TREE, PARALLEL_N = 80, 50
# the attribute lists of TreeEnsembleClassifier/Regressor read as numpy arrays (O230)
_NODE_LISTS = ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes",
               "nodes_values", "nodes_truenodeids", "nodes_falsenodeids",
               "nodes_missing_value_tracks_true", "nodes_hitrates")
_WEIGHT_LISTS = ("treeids", "nodeids", "ids", "weights")


@dataclass(frozen=True)
class Forest:
    """The nodes in the attributes' order, as ONNX Runtime keeps them: each branch's
    children as node indices, each leaf's weights (target or class, value) sorted by
    (tree id, node id) then by their position in the attributes; `roots` the first node of
    each run of equal tree ids."""

    feature: np.ndarray          # (nodes,) int64
    threshold: np.ndarray        # (nodes,) float32 or float64 (the tree type)
    mode: np.ndarray             # (nodes,) codes of MODES
    missing_true: np.ndarray     # (nodes,) bool
    true_child: np.ndarray       # (nodes,) int64 (a leaf: itself)
    false_child: np.ndarray
    roots: np.ndarray            # (trees,) int64
    weight_target: np.ndarray    # (nodes, slots) int64, -1 past a leaf's weights (a
    #                              weightless leaf of one target: its nodes_values entry)
    weight_value: np.ndarray     # (nodes, slots) tree type
    n_targets: int
    max_feature: int
    go_mask: np.ndarray          # (nodes,) uint16: bit c set where comparison outcome c
    #                              (_outcomes) takes the true branch
    depth: int                   # the longest root-to-leaf path, in branches
    members: dict[int, np.ndarray] = field(default_factory=dict)   # BRANCH_MEMBER's sets
    big_sets: frozenset[int] = frozenset()   # of them, those tested on int32(x) (O203)
    # the forest as the native kernel holds it (lowp.runtime.native_trees), once built
    compiled: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _floats(op: str, attrs: dict[str, Any], name: str, tree_type: type) -> np.ndarray | None:
    """Attribute `name` (float list) or `name`_as_tensor (double tensor), as the tree type;
    None when neither is given. ONNX Runtime reads the tensors only as the tree type: a
    double tensor for a float32/int input fails its initialisation."""
    plain, tensor = attrs.get(name), attrs.get(f"{name}_as_tensor")
    if plain is not None and len(plain) and tensor is not None and np.asarray(tensor).size:
        raise NodeError(f"{op}: both {name} and {name}_as_tensor are given")
    if tensor is not None and np.asarray(tensor).size:
        t = np.asarray(tensor)
        if t.dtype != tree_type:
            raise NodeError(f"{op}: {name}_as_tensor holds {t.dtype}, the trees of a "
                            f"{np.dtype(tree_type)} input need {np.dtype(tree_type)} "
                            "(ONNX Runtime reads it as the input's tree type)")
        return t.reshape(-1)
    if plain is None or not len(plain):
        return None
    return np.asarray(plain, np.float32).astype(tree_type)


def int_list(attrs: dict[str, Any], name: str) -> np.ndarray:
    v = attrs.get(name)
    return np.asarray([] if v is None else v, np.int64).reshape(-1)


def _mode_codes(op: str, modes: Any) -> np.ndarray:
    """nodes_modes (strings, or an array of bytes) as codes of MODES: one comparison of the
    array a mode name (np.unique sorts millions of strings: 1.3 s for luscinia_stress)."""
    arr = np.asarray(modes).reshape(-1)
    if arr.dtype.kind not in "SU":
        arr = np.array([m.decode() if isinstance(m, bytes) else str(m) for m in arr.tolist()],
                       np.str_)
    codes = np.full(arr.size, -1, np.int8)
    for name, code in MODES.items():
        codes[arr == (name.encode() if arr.dtype.kind == "S" else name)] = code
    if (codes < 0).any():
        text = {m.decode() if isinstance(m, bytes) else str(m) for m in arr[codes < 0].tolist()}
        raise unsupported(op, f"node mode {sorted(text)[0]!r}")
    return codes


class _NodeIndex:
    """(tree id, node id) -> the node's position in the attributes, for arrays of pairs:
    both ids made dense (np.unique), their pair one sorted int64 key. The usual layout
    (trees in increasing id order, each tree's node ids 0, 1, 2, ... in order, as
    onnxmltools and skl2onnx write them) is indexed without sorting: a node is its tree's
    first position plus its id."""

    def __init__(self, tree: np.ndarray, node: np.ndarray) -> None:
        self.starts: np.ndarray | None = None
        if tree.size and bool((tree[1:] >= tree[:-1]).all()):
            first = np.r_[True, tree[1:] != tree[:-1]]
            starts = np.flatnonzero(first)
            rank = np.cumsum(first) - 1
            if bool((node == np.arange(tree.size) - starts[rank]).all()):
                self.starts, self.trees = starts, tree[starts]
                self.counts = np.diff(np.r_[starts, tree.size])
                self.unique = True
                return
        self.trees, tree_at = np.unique(tree, return_inverse=True)
        self.nodes, node_at = np.unique(node, return_inverse=True)
        keys = tree_at.reshape(-1) * self.nodes.size + node_at.reshape(-1)
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        self.unique = bool((self.keys[1:] != self.keys[:-1]).all())

    def find(self, tree: np.ndarray, node: np.ndarray) -> np.ndarray:
        """The positions of the pairs, -1 where a pair names no node."""
        t = np.minimum(np.searchsorted(self.trees, tree), self.trees.size - 1)
        if self.starts is not None:
            known = (self.trees[t] == tree) & (node >= 0) & (node < self.counts[t])
            return np.where(known, self.starts[t] + node, -1)
        u = np.minimum(np.searchsorted(self.nodes, node), self.nodes.size - 1)
        known = (self.trees[t] == tree) & (self.nodes[u] == node)
        keys = t * self.nodes.size + u
        at = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        found = known & (self.keys[at] == keys)
        return np.where(found, self.order[at], -1)


def build_forest(op: str, attrs: dict[str, Any], prefix: str, n_targets: int,
                 tree_type: type) -> Forest:
    """The trees of `attrs` (`prefix` "target" or "class" for the leaf weights), checked
    as ONNX Runtime's TreeEnsembleCommon::Init checks them, each refusal naming `op`.
    Array operations throughout: a node costs no Python object (an ensemble may have
    millions)."""
    tree, node = int_list(attrs, "nodes_treeids"), int_list(attrs, "nodes_nodeids")
    feature = int_list(attrs, "nodes_featureids")
    true_id, false_id = int_list(attrs, "nodes_truenodeids"), int_list(attrs, "nodes_falsenodeids")
    modes = attrs.get("nodes_modes")
    modes = np.zeros(0, np.str_) if modes is None else np.asarray(modes).reshape(-1)
    values = _floats(op, attrs, "nodes_values", tree_type)
    n = tree.size
    if n == 0:
        raise NodeError(f"{op}: the ensemble has no nodes")
    for name, arr in (("nodes_nodeids", node), ("nodes_featureids", feature),
                      ("nodes_truenodeids", true_id), ("nodes_falsenodeids", false_id),
                      ("nodes_modes", modes), ("nodes_values", values)):
        if arr is None or len(arr) != n:
            raise NodeError(f"{op}: {name} has {0 if arr is None else len(arr)} entries, "
                            f"nodes_treeids {n}")
    mode = _mode_codes(op, modes)
    tracks = int_list(attrs, "nodes_missing_value_tracks_true")
    missing = np.zeros(n, bool)
    missing[:min(n, tracks.size)] = tracks[:n] == 1
    if (feature < 0).any():
        raise NodeError(f"{op}: a negative feature id")
    assert values is not None
    index = _NodeIndex(tree, node)
    if not index.unique:
        raise NodeError(f"{op}: a (tree id, node id) pair appears twice")
    leaf = mode == LEAF
    true_child, false_child = _children(op, index, tree, node, leaf, true_id, false_id)
    weight_target, weight_value = _leaf_weights(op, attrs, prefix, n_targets, tree_type,
                                                index, leaf, values)
    roots = np.flatnonzero(np.r_[True, tree[1:] != tree[:-1]])
    return Forest(feature, values, mode, missing, true_child, false_child, roots,
                  weight_target, weight_value, n_targets, int(feature.max()),
                  go_masks(mode, missing),
                  depth_of(op, roots, mode != LEAF, true_child, false_child))


def _children(op: str, index: _NodeIndex, tree: np.ndarray, node: np.ndarray,
              leaf: np.ndarray, true_id: np.ndarray, false_id: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Each branch's true and false children as node positions (a leaf: itself); the
    first branch (true side first) naming no other node of its tree is the model's error."""
    n = tree.size
    here = np.arange(n)
    sides = []
    for ids in (true_id, false_id):
        child = np.where(leaf, here, index.find(tree, ids))
        sides.append((child, ~leaf & ((child < 0) | (child == here))))
    bad = sides[0][1] | sides[1][1]
    if bad.any():
        k = int(np.argmax(bad))
        side, ids = ("true", true_id) if sides[0][1][k] else ("false", false_id)
        raise NodeError(f"{op}: node {node[k]} of tree {tree[k]} has no valid "
                        f"{side} child ({ids[k]})")
    return sides[0][0], sides[1][0]


def _leaf_weights(op: str, attrs: dict[str, Any], prefix: str, n_targets: int,
                  tree_type: type, index: _NodeIndex, leaf: np.ndarray, values: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(weight_target, weight_value), (nodes, slots) each: a leaf's weights sorted by
    (tree id, node id, position), -1 targets past them; a branch's weights ignored, as
    ONNX Runtime does; one target: a weightless leaf's nodes_values entry."""
    w_tree, w_node = int_list(attrs, f"{prefix}_treeids"), int_list(attrs, f"{prefix}_nodeids")
    w_id = int_list(attrs, f"{prefix}_ids")
    w_val = _floats(op, attrs, f"{prefix}_weights", tree_type)
    w_val = np.zeros(0, tree_type) if w_val is None else w_val
    if not (w_tree.size == w_node.size == w_id.size == w_val.size):
        raise NodeError(f"{op}: the {prefix}_ attributes differ in length")
    if ((w_id < 0) | (w_id >= n_targets)).any():
        raise NodeError(f"{op}: a {prefix} id outside [0, {n_targets})")
    order = np.lexsort((w_node, w_tree))          # stable: equal pairs keep their positions
    at = index.find(w_tree[order], w_node[order])
    if (at < 0).any():
        j = int(order[np.argmax(at < 0)])
        raise NodeError(f"{op}: weight {j} names node {w_node[j]} of tree {w_tree[j]}, "
                        "which does not exist")
    kept = leaf[at]
    order, at = order[kept], at[kept]
    # the weights of one node are adjacent in `order`: each one's slot is its rank there
    first = np.r_[True, at[1:] != at[:-1]] if at.size else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    slot = np.arange(at.size) - np.repeat(starts, np.diff(np.r_[starts, at.size]))
    targets, weights = w_id[order], w_val[order]
    n = leaf.size
    if n_targets == 1:      # ONNX Runtime's one-target trees read a weightless leaf's value
        bare = leaf.copy()
        bare[at] = False
        extra = np.flatnonzero(bare)
        at, slot = np.r_[at, extra], np.r_[slot, np.zeros(extra.size, slot.dtype)]
        targets = np.r_[targets, np.zeros(extra.size, np.int64)]
        weights = np.r_[weights, values[extra]].astype(tree_type)
    width = max(1, int(slot.max()) + 1 if slot.size else 1)
    weight_target = np.full((n, width), -1, np.int64)
    weight_value: np.ndarray = np.zeros((n, width), tree_type)
    weight_target[at, slot], weight_value[at, slot] = targets, weights
    return weight_target, weight_value


def go_masks(mode: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Each node's mask of the comparison outcomes that take its true branch (GO), with
    bit 0 where a NaN goes true (missing_value_tracks_true)."""
    table = np.zeros(max(GO) + 1, np.uint16)
    table[list(GO)] = list(GO.values())
    return table[mode] | missing.astype(np.uint16)


def depth_of(op: str, roots: np.ndarray, branch: np.ndarray, true_child: np.ndarray,
           false_child: np.ndarray) -> int:
    """The number of branches on the longest path from a root; a cycle is the model's
    error."""
    frontier, depth = _distinct(roots), 0
    seen = np.zeros(branch.size, bool)
    while True:
        frontier = frontier[branch[frontier]]
        if frontier.size == 0:
            return depth
        depth += 1
        if depth > branch.size:
            raise NodeError(f"{op}: a tree of the ensemble has a cycle")
        children = (true_child[frontier], false_child[frontier])
        if frontier.size * 32 < branch.size:        # (a few nodes: sorted)
            frontier = _distinct(np.concatenate(children))
            continue
        for c in children:          # (a level of many: marked, not sorted)
            seen[c] = True
        frontier = np.flatnonzero(seen)
        seen[frontier] = False


def _distinct(a: np.ndarray) -> np.ndarray:
    """np.unique(a) of integers by a sort (numpy 2's np.unique hashes: 15x slower on a
    million node indices)."""
    s = np.sort(a)
    return s[np.r_[True, s[1:] != s[:-1]]] if s.size else s


def forest_of(op: str, attrs: dict[str, Any], tree_type: type,
              build: Callable[[], Forest]) -> Forest:
    """`build()` (the node's Forest), once per node and tree type when the executor gives
    the node's ``node_cache`` (lowp.runtime.float_registry.array_attributes), so a
    Session's runs reuse it; built on each call without one (`prepare` builds it at the
    session's build)."""
    cache = attrs.get("node_cache")
    if cache is None:
        return build()
    key = (op, np.dtype(tree_type).str)
    found = cache.get(key)
    if found is None:
        if cache.get(_RELEASED):
            raise NodeError(f"{op}: its trees were built for {cache[_RELEASED]} inputs, the "
                            f"type of its graph input, not {np.dtype(tree_type)}")
        found = cache[key] = build()
    return found


# node_cache key: the tree type whose forest is all that is left of the node's lists
_RELEASED = "released"
# the attributes a forest is built from, beyond the op's array attributes
_PARSED = ("nodes_values", "nodes_values_as_tensor", "nodes_hitrates_as_tensor",
           "nodes_splits", "leaf_weights", "membership_values", "target_weights",
           "target_weights_as_tensor", "class_weights", "class_weights_as_tensor")


def tree_type_of(op: str, x_type: np.dtype) -> type | None:
    """The tree type of `op` on inputs of `x_type` (_common, TreeEnsemble); None for the
    types it refuses."""
    if x_type == np.float64:
        return np.float64
    allowed = _INPUTS if op == "TreeEnsembleClassifier" else _INPUTS[:2]
    return np.float32 if x_type.type in allowed else None


def prepare_forest(op: str, attrs: dict[str, Any], x_type: np.dtype, fixed: bool,
                   forest: Callable[[dict[str, Any], type], Forest]) -> None:
    """The PREPARE of the tree ensembles: `forest(attrs, tree type)` (the op's, which
    caches it) and its native form built before the first run; with `fixed`, the
    attribute lists dropped once parsed (the forest holds all the runs read). A model the
    build refuses keeps its attributes, for the run to refuse it as ever."""
    tree_type = tree_type_of(op, x_type)
    if tree_type is None or attrs.get("node_cache") is None:
        return
    try:
        native_trees.prepare(forest(attrs, tree_type))
    except (NodeError, UnsupportedOpError):
        return
    if fixed:
        for name in (*ARRAY_ATTRIBUTES[op], *_PARSED):
            attrs.pop(name, None)
        attrs["node_cache"][_RELEASED] = np.dtype(tree_type).name


# comparison outcomes of x against a threshold: bit 0 x NaN, 1 less, 2 equal, 4 greater, 8 a
# NaN threshold; which of them take each mode's true branch (C's <=, <, >=, >, ==, !=: only
# != holds for NaN), missing_value_tracks_true adding bit 0
GO = {MODES["BRANCH_LEQ"]: 1 << 1 | 1 << 2, MODES["BRANCH_LT"]: 1 << 1,
       MODES["BRANCH_GTE"]: 1 << 2 | 1 << 4, MODES["BRANCH_GT"]: 1 << 4,
       MODES["BRANCH_EQ"]: 1 << 2, MODES["BRANCH_NEQ"]: 1 | 1 << 1 | 1 << 4 | 1 << 8,
       LEAF: 0, MEMBER: 0}


def _outcomes(val: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """The comparison outcome (the bit index of GO's masks) of each value."""
    with np.errstate(invalid="ignore"):
        less, equal, greater = val < thr, val == thr, val > thr
    unordered = ~(less | equal | greater) & ~np.isnan(val)
    return (less * 1 + equal * 2 + greater * 4 + unordered * 8).astype(np.uint16)


def leaves(forest: Forest, x: np.ndarray) -> np.ndarray:
    """(trees, rows) the leaf each tree reaches for each row of `x` (rows, features): the
    comparisons in the input type against the tree type (an int input as float32), NaN
    taking the true branch where the node's missing_value_tracks_true is 1. One step a
    level for the (tree, row) pairs still on a branch."""
    rows = x.shape[0]
    trees = forest.roots.size
    pos = np.repeat(forest.roots, rows)
    row = np.tile(np.arange(rows), trees)
    branch = forest.mode != LEAF
    active = np.flatnonzero(branch[pos])
    for _ in range(forest.depth):
        if active.size == 0:
            break
        p = pos[active]
        val = x[row[active], forest.feature[p]]
        go = (forest.go_mask[p] >> _outcomes(val, forest.threshold[p])) & 1
        for node, members in forest.members.items():      # (x in the set, or tracked NaN)
            at = p == node
            if at.any():
                v = val[at]
                key = _int32_cast(v) if node in forest.big_sets else v
                go[at] = np.isin(key, members) | (forest.missing_true[node] & np.isnan(v))
        step = np.where(go == 1, forest.true_child[p], forest.false_child[p])
        pos[active] = step
        active = active[branch[step]]
    return pos.reshape(trees, rows)


def _int32_cast(v: np.ndarray) -> np.ndarray:
    """C's static_cast<int32_t> of floats as x86 computes it (cvttss2si): truncation, and
    INT32_MIN for NaN and for values beyond the range."""
    low = np.iinfo(np.int32).min
    with np.errstate(invalid="ignore"):
        inside = (v >= low) & (v < -float(low))
        return np.where(inside, np.trunc(np.where(inside, v, 0)), low).astype(np.int64)


def _partitions(n_trees: int, parts: int) -> list[range]:
    """ThreadPool::PartitionWork: `n_trees` split into `parts` ranges, the first
    n_trees % parts of them one longer."""
    each, extra = divmod(n_trees, parts)
    out, start = [], 0
    for b in range(parts):
        size = each + (b < extra)
        out.append(range(start, start + size))
        start += size
    return out


def tree_groups(n_trees: int, rows: int, outputs: int, threads: int) -> list[range]:
    """(O204) The ranges of trees that ONNX Runtime's threads sum separately (each from
    zero, then merged in order), at `threads` intra-op threads: one range (every tree in
    order) at one thread, at most PARALLEL_N rows of several, or too few trees; one row and
    more than PARALLEL_TREE trees: each tree alone (one output) or min(threads, trees)
    PartitionWork ranges (several); more rows: PartitionWork ranges once the trees exceed
    the threads (reach them, for several outputs)."""
    threads = max(1, int(threads))
    every = [range(n_trees)]
    if threads == 1:
        return every
    if rows == 1:
        if n_trees <= PARALLEL_TREE:
            return every
        if outputs == 1:
            return [range(j, j + 1) for j in range(n_trees)]
        return _partitions(n_trees, min(threads, n_trees))
    if rows <= PARALLEL_N:
        return every
    if n_trees > threads or (outputs > 1 and n_trees == threads):
        return _partitions(n_trees, min(threads, n_trees))
    return every


_BLOCK = 1 << 22        # elements of the per-weight contributions summed at once


def _group_sum(forest: Forest, reached: np.ndarray, width: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """SUM over the trees of `reached` (trees, rows), in order: each weight's contribution
    laid out (weights, rows, targets), zero where a weight adds nothing (x + 0 is x, and
    the sum from +0 is never -0), then one sequential np.add.accumulate, the C loop's order;
    the final + 0 is the C sum's start (+0, not a first -0)."""
    trees, rows = reached.shape
    n = forest.n_targets
    s = np.zeros((rows, n), forest.weight_value.dtype)
    h = np.zeros((rows, n), bool)
    step = max(1, _BLOCK // max(1, trees * width * n))
    for first in range(0, rows, step):
        leaf = reached[:, first:first + step]                 # (trees, r)
        target = forest.weight_target[leaf][..., :width]      # (trees, r, width)
        value = forest.weight_value[leaf][..., :width]
        t, r, w = np.nonzero(target >= 0)
        c = target[t, r, w]
        parts = np.zeros((trees, width, leaf.shape[1], n), s.dtype)
        parts[t, w, r, c] = value[t, r, w]
        with np.errstate(all="ignore"):
            s[first:first + step] = np.add.accumulate(
                parts.reshape(trees * width, leaf.shape[1], n), axis=0)[-1] + s.dtype.type(0)
        h[first + r, c] = True
    return s, h


def _group_extreme(forest: Forest, reached: np.ndarray, width: int, minimum: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """MIN or MAX over the trees of `reached`, in order: a weight replaces the score when
    there is none yet or it is strictly smaller (larger), as the C loop compares."""
    rows = reached.shape[1]
    s = np.zeros((rows, forest.n_targets), forest.weight_value.dtype)
    h = np.zeros((rows, forest.n_targets), bool)
    everyone = np.arange(rows)
    for leaf in reached:
        for slot in range(width):
            target = forest.weight_target[leaf, slot]
            live = target >= 0
            r, t = everyone[live], target[live]
            v, old = forest.weight_value[leaf[live], slot], s[r, t]
            better = v < old if minimum else v > old
            s[r, t] = np.where(~h[r, t] | better, v, old)
            h[r, t] = True
    return s, h


def accumulate(forest: Forest, reached: np.ndarray, aggregate: str, groups: list[range],
               ) -> tuple[np.ndarray, np.ndarray]:
    """(scores, has_score), (rows, targets) each: the leaf weights of the trees in order
    (a leaf's in its sorted order) aggregated per ONNX Runtime's TreeAggregator, each group
    of trees from zero, the groups merged in order. One target reads only each leaf's first
    weight (ONNX Runtime keeps it in the node)."""
    width = 1 if forest.n_targets == 1 else forest.weight_target.shape[1]
    total = total_has = None
    for group in groups:
        part = reached[group.start:group.stop]
        if aggregate in ("SUM", "AVERAGE"):
            s, h = _group_sum(forest, part, width)
        else:
            s, h = _group_extreme(forest, part, width, aggregate == "MIN")
        if total is None or total_has is None:
            total, total_has = s, h
            continue
        with np.errstate(all="ignore"):
            if aggregate in ("SUM", "AVERAGE"):
                total = np.where(h, total + s, total) if forest.n_targets > 1 else total + s
            elif aggregate == "MIN":
                total = np.where(h, np.where(total_has & (total < s), total, s), total)
            else:
                total = np.where(h, np.where(total_has & (total > s), total, s), total)
        total_has = total_has | h
    assert total is not None and total_has is not None
    if forest.n_targets == 1 and aggregate in ("SUM", "AVERAGE"):
        total_has = np.zeros_like(total_has)    # (the one-target sum never sets it)
    return total, total_has


def tree_scores(forest: Forest, x: np.ndarray, aggregate: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """(scores, has_score), (rows, targets) each, of the rows `x` (rows, features) at the
    session's threads ((O204)): the native kernel's ((O274)), else `leaves` then
    `accumulate`, the reference."""
    threads = native_float.get_threads()
    groups = tree_groups(forest.roots.size, x.shape[0], forest.n_targets, threads)
    found = native_trees.scores(forest, x, aggregate, groups, threads)
    if found is not None:
        return found
    return accumulate(forest, leaves(forest, x), aggregate, groups)


def logistic(v: np.ndarray) -> np.ndarray:
    """ml_common.h ComputeLogistic in float32: 1 / (1 + expf(-|v|)), mirrored below 0."""
    v = v.astype(np.float32)
    with np.errstate(all="ignore"):
        e = np.float32(1) / (np.float32(1) + libm.expf(-np.abs(v)))
    return np.where(v < 0, np.float32(1) - e, e).astype(np.float32)


def probit(v: np.ndarray) -> np.ndarray:
    """ml_common.h ComputeProbit: sqrt(2) * ErfInv(2 v - 1), ErfInv's approximation in
    float32 with the C library's logf."""
    f = np.float32
    x = (f(2) * v.astype(f) - f(1)).astype(f)
    sgn = np.where(x < 0, f(-1), f(1))
    with np.errstate(all="ignore"):
        x = (f(1) - x) * (f(1) + x)
        log = libm.logf(x)
        v1 = f(2) / (f(np.pi) * f(0.147)) + f(0.5) * log
        v2 = f(1) / f(0.147) * log
        v3 = np.sqrt(v1 * v1 - v2) - v1      # (the compiled `-v + sqrt(..)`: a NaN's sign)
        return (f(np.sqrt(2)) * (sgn * np.sqrt(v3))).astype(f)


def _softmax(s: np.ndarray, zero: bool) -> np.ndarray:
    """ml_common.h ComputeSoftmax / ComputeSoftmaxZero on rows of tree-typed scores: the
    maximum from -FLT_MAX (NaN never exceeds it), expf of the float32 differences summed in
    order in float32; ComputeSoftmaxZero leaves the scores within 1e-7 of zero out of the sum
    and scales them by expf(-max) in the tree type."""
    f = np.float32
    sf = s.astype(f)
    with np.errstate(all="ignore"):
        v_max = _first_max(sf, np.full(s.shape[0], -np.finfo(f).max, f))
        e = libm.expf(sf - v_max[:, None])
        keep = (sf > f(1e-7)) | (sf < f(-1e-7)) if zero else np.ones(s.shape, bool)
        total = np.zeros(s.shape[0], f)
        for c in range(s.shape[1]):
            total = np.where(keep[:, c], total + e[:, c], total).astype(f)
        if not zero:
            return (e / total[:, None]).astype(f)
        # ComputeSoftmaxZero divides in the tree type (`*it / this_sum`): a float64 output
        # keeps the quotient unrounded
        t = s.dtype.type
        kept = e.astype(t) / total.astype(t)[:, None]
        small = s * libm.expf(-v_max).astype(t)[:, None] / total.astype(t)[:, None]
        return np.where(keep, kept, small)


def _first_max(s: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The C loop `if (v > v_max) v_max = v` over each row from `start`."""
    m = start.copy()
    for c in range(s.shape[1]):
        m = np.where(s[:, c] > m, s[:, c], m)
    return m


def transform(scores: np.ndarray, post: str) -> np.ndarray:
    """write_scores for two or more scores a row: float32 outputs from the tree-typed
    `scores` (those without has_score already 0), through the post transform; SOFTMAX_ZERO's
    in the tree type (the caller casts to its output type)."""
    s = scores.astype(np.float32)
    if post == "PROBIT":
        return probit(s)
    if post == "LOGISTIC":
        return logistic(s)
    if post in ("SOFTMAX", "SOFTMAX_ZERO"):
        return _softmax(scores, post == "SOFTMAX_ZERO")
    return s


def _common(op: str, x: np.ndarray, attrs: dict[str, Any]) -> tuple[np.ndarray, type, str, str]:
    allowed = _INPUTS if op == "TreeEnsembleClassifier" else _INPUTS[:2]
    if x.dtype.type not in allowed:      # (ONNX Runtime's regressor: float and double only)
        raise unsupported(op, f"input of type {x.dtype}")
    if x.ndim == 0 or x.ndim > 2:
        raise NodeError(f"{op}: the input must have 1 or 2 dimensions, not {x.ndim}")
    aggregate = str(attrs.get("aggregate_function", "SUM")) \
        if op == "TreeEnsembleRegressor" else "SUM"
    post = str(attrs.get("post_transform", "NONE"))
    if aggregate not in _AGGREGATES:
        raise unsupported(op, f"aggregate_function {aggregate!r}")
    if post not in _TRANSFORMS:
        raise unsupported(op, f"post_transform {post!r}")
    tree_type = np.float64 if x.dtype == np.float64 else np.float32
    return x, tree_type, aggregate, post


def _rows(op: str, x: np.ndarray, forest: Forest) -> np.ndarray:
    """`x` as (rows, features) in the tree type's comparison type; a 1-D input is one row
    of which ONNX Runtime lets the trees read only feature 0."""
    features = x.shape[1] if x.ndim == 2 else 1
    if forest.max_feature >= features:
        raise NodeError(f"{op}: a node reads feature {forest.max_feature} but the input has "
                        f"{features}")
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    return x2 if x2.dtype.kind == "f" else x2.astype(np.float32)


def _base(op: str, attrs: dict[str, Any], tree_type: type) -> np.ndarray:
    b = _floats(op, attrs, "base_values", tree_type)
    return np.zeros(0, tree_type) if b is None else b


@register
@array_attributes(*_NODE_LISTS, *(f"target_{a}" for a in _WEIGHT_LISTS))
def TreeEnsembleRegressor(x: np.ndarray, **attrs: Any) -> np.ndarray:
    """(O203) ONNX Runtime's TreeEnsembleRegressor: float32 (N, n_targets)."""
    op = "TreeEnsembleRegressor"
    x, tree_type, aggregate, post = _common(op, x, attrs)
    forest = _regressor_forest(attrs, tree_type)
    n_targets = forest.n_targets
    base = _base(op, attrs, tree_type)
    if base.size not in (0, n_targets):
        raise NodeError(f"{op}: {base.size} base_values for {n_targets} targets (0 or "
                        f"{n_targets})")
    return regress(op, x, forest, aggregate, post, base, np.float32)


def _regressor_forest(attrs: dict[str, Any], tree_type: type) -> Forest:
    op = "TreeEnsembleRegressor"
    n_targets = int(attrs.get("n_targets", 0) or 0)
    if n_targets <= 0:
        raise NodeError(f"{op}: n_targets must be positive, not {n_targets}")
    return forest_of(op, attrs, tree_type,
                     lambda: build_forest(op, attrs, "target", n_targets, tree_type))


@prepared_by("TreeEnsembleRegressor")
def _prepare_regressor(attrs: dict[str, Any], x_type: np.dtype, fixed: bool) -> None:
    prepare_forest("TreeEnsembleRegressor", attrs, x_type, fixed, _regressor_forest)


def regress(op: str, x: np.ndarray, forest: Forest, aggregate: str, post: str,
             base: np.ndarray, out_type: type) -> np.ndarray:
    """The regression scores (rows, targets) of `x` as `out_type`: FinalizeScores(1) of the
    aggregate, then write_scores (a transform in float32, widened to a float64 output)."""
    n_targets = forest.n_targets
    tree_type = forest.weight_value.dtype.type
    x2 = _rows(op, x, forest)
    s, h = tree_scores(forest, x2, aggregate)
    if aggregate == "SUM" and post == "NONE" and base.size == 0 and out_type is tree_type:
        # the scores as they are: a sum from +0 is never -0, so adding the +0 origin changes
        # no bit, and a target no leaf reached holds +0, what np.where puts there; so a
        # replayed run is the kernel's call alone (lowp.runtime.replay)
        return s
    n_trees = tree_type(forest.roots.size)
    with np.errstate(all="ignore"):
        if n_targets == 1:
            origin = base[0] if base.size == 1 else tree_type(0)
            v = s[:, 0]
            if aggregate == "AVERAGE":
                v = v / n_trees
            if aggregate in ("SUM", "AVERAGE"):
                v = v + origin
            else:
                v = np.where(h[:, 0], v + origin, origin)
            if post == "PROBIT":
                return probit(v.astype(np.float32)).astype(out_type)[:, None]
            return v.astype(out_type)[:, None]
        use_base = base.size == n_targets
        if aggregate == "AVERAGE":
            s = s / n_trees + base if use_base else s / n_trees
        elif aggregate == "SUM":
            s = s + base if use_base else s
        else:
            s = (base if use_base else tree_type(0)) + np.where(h, s, tree_type(0))
        scored = np.where(h, s, tree_type(0))
        if post == "NONE":
            return scored.astype(out_type)
        return transform(scored, post).astype(out_type)


def _binary_labels(pos_weight: np.ndarray, binary: bool, all_positive: bool,
                   labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_set_score_binary: each row's label and write_scores's add_second_class case."""
    if not binary:
        return np.where(pos_weight > 0, 1, 0).astype(np.int64), np.full(pos_weight.shape, -1)
    if all_positive:
        positive = pos_weight > 0.5
        return np.where(positive, labels[1], labels[0]), np.where(positive, 0, 1)
    positive = pos_weight > 0
    return np.where(positive, labels[1], labels[0]), np.where(positive, 2, 3)


@register
@array_attributes(*_NODE_LISTS, *(f"class_{a}" for a in _WEIGHT_LISTS))
def TreeEnsembleClassifier(x: np.ndarray, **attrs: Any) -> tuple[np.ndarray, np.ndarray]:
    """(O203), (O205) ONNX Runtime's TreeEnsembleClassifier: int64 labels (N,) and float32
    scores (N, classes)."""
    op = "TreeEnsembleClassifier"
    x, tree_type, _, post = _common(op, x, attrs)    # (it always sums: no aggregate)
    forest = _classifier_forest(attrs, tree_type)
    labels = int_list(attrs, "classlabels_int64s")
    n = labels.size
    base = _base(op, attrs, tree_type)
    if base.size not in ((0, 1, 2) if n == 2 else (0, n)):
        raise NodeError(f"{op}: {base.size} base_values for {n} classes")
    all_positive, binary = _classifier_facts(attrs, tree_type)
    s, h = tree_scores(forest, _rows(op, x, forest), "SUM")
    if post == "NONE":
        found = native_trees.classes(forest, s, h, labels, base, binary, all_positive)
        if found is not None:
            return found
    zero = tree_type(0)
    with np.errstate(all="ignore"):
        if n > 2:
            k = base.size
            s[:, :k] = np.where(h[:, :k], s[:, :k] + base, base)
            h[:, :k] = True
            best = np.full(s.shape[0], -1)
            top: np.ndarray = np.zeros(s.shape[0], tree_type)
            for c in range(n):
                win = h[:, c] & ((best == -1) | (s[:, c] > top))
                best, top = np.where(win, c, best), np.where(win, s[:, c], top)
            return labels[best], transform(np.where(h, s, zero), post).astype(np.float32)
        return _two_classes(s, h, base, post, binary, all_positive, labels, tree_type)


def _classifier_forest(attrs: dict[str, Any], tree_type: type) -> Forest:
    op = "TreeEnsembleClassifier"
    if attrs.get("classlabels_strings"):
        raise unsupported(op, "string class labels (classlabels_strings): lowp has no string "
                          "tensors")
    n = int_list(attrs, "classlabels_int64s").size
    if n < 2:
        raise unsupported(op, f"{n} class label(s): lowp runs two classes or more")
    return forest_of(op, attrs, tree_type,
                     lambda: build_forest(op, attrs, "class", n, tree_type))


def _classifier_facts(attrs: dict[str, Any], tree_type: type) -> tuple[bool, bool]:
    """(no class weight is negative, the two classes' weights all name one class), read
    from the lists once per node and tree type (lists of millions: not at every run)."""
    op = "TreeEnsembleClassifier"
    cache = attrs.get("node_cache")
    key = ("facts", np.dtype(tree_type).str)
    if cache is not None and key in cache:
        found: tuple[bool, bool] = cache[key]
        return found
    raw = _floats(op, attrs, "class_weights", tree_type)
    all_positive = raw is None or not (raw < 0).any()
    n = int_list(attrs, "classlabels_int64s").size
    binary = n == 2 and np.unique(int_list(attrs, "class_ids")).size == 1
    if cache is not None:
        cache[key] = (all_positive, binary)
    return all_positive, binary


@prepared_by("TreeEnsembleClassifier")
def _prepare_classifier(attrs: dict[str, Any], x_type: np.dtype, fixed: bool) -> None:
    def forest(a: dict[str, Any], tree_type: type) -> Forest:
        found = _classifier_forest(a, tree_type)
        _classifier_facts(a, tree_type)
        return found
    prepare_forest("TreeEnsembleClassifier", attrs, x_type, fixed, forest)


def _two_classes(s: np.ndarray, h: np.ndarray, base: np.ndarray, post: str, binary: bool,
                 all_positive: bool, labels: np.ndarray, tree_type: type,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(O205) TreeAggregatorClassifier::FinalizeScores for two classes, then write_scores:
    a row whose class 1 has no score keeps one score (base_values of 0 or 1 entry) and
    write_scores makes the pair from it."""
    zero = tree_type(0)
    s0, s1, h0, h1 = s[:, 0].copy(), s[:, 1].copy(), h[:, 0].copy(), h[:, 1].copy()
    second = np.full(s0.shape, -1)
    one_score = np.zeros(s0.shape, bool)
    if base.size == 2:
        s1 = np.where(h1, base[1] + s0, s1 + base[1])
        s0 = np.where(h1, -s1, s0 + base[0])
    elif base.size == 1:
        s0 = s0 + base[0]
        one_score = ~h1
    else:
        second[:] = 3
        one_score = ~h1
    pos_weight = np.where(h1, s1, np.where(h0, s0, zero))
    label, case = _binary_labels(pos_weight, binary, all_positive, labels)
    if binary:
        second = case
    v0 = np.where(h0, s0, zero)           # the score as write_scores reads it
    f = np.float32
    pair = None if one_score.all() else \
        transform(np.stack([v0, np.where(h1, s1, zero)], axis=1), post)
    if pair is not None and not one_score.any():
        return label.astype(np.int64), pair.astype(f)
    minus = np.where(h0, -s0, zero)       # ScoreValue's negation: 0, never -0, without one
    single = _one_score_pair(v0, minus, second, post, tree_type)
    z = single if pair is None else np.where(one_score[:, None], single, pair)
    return label.astype(np.int64), z.astype(f)


def _one_score_pair(v0: np.ndarray, minus: np.ndarray, second: np.ndarray, post: str,
                    tree_type: type) -> np.ndarray:
    """write_scores's two float32 scores a row from one score `v0` (`minus`: its negation
    as ScoreValue gives it) by `second`, its add_second_class case (-1: the default, the
    score and the second unset, which lowp writes 0); one column at a time."""
    f = np.float32
    v = v0.astype(f)
    if post == "PROBIT":
        return np.stack([probit(v), np.zeros(v.shape, f)], axis=1)
    if post == "LOGISTIC":      # every case, 0 to 3 (measured: ONNX Runtime 1.32)
        first, other = logistic(minus.astype(f)), logistic(v)
    else:                       # cases 0, 1: 1 - score; 2, 3: the negation
        first = np.where(second <= 1, (tree_type(1) - v0).astype(f), minus.astype(f))
        other = v
    default = second < 0
    return np.stack([np.where(default, v, first), np.where(default, f(0), other)], axis=1)
