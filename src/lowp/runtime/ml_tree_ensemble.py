"""TreeEnsemble of the ai.onnx.ml domain, opset 5, as ONNX Runtime 1.32 runs it: its
attributes turned into opset 3's trees as onnxruntime/core/providers/cpu/ml/
tree_ensemble_attribute.h (TreeEnsembleAttributesV5::convert_to_v3) does, then opset 3's
regression (lowp.runtime.ml_trees). Rule (O203) in docs/operators.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lowp.errors import NodeError
from lowp.runtime.float_registry import array_attributes, prepared_by, register, unsupported
from lowp.runtime.ml_trees import (
    LEAF,
    MEMBER,
    MODES,
    Forest,
    depth_of,
    forest_of,
    go_masks,
    int_list,
    prepare_forest,
    regress,
)

# TreeEnsemble (ai.onnx.ml 5): its integer enums as ONNX Runtime 1.32 reads them (its own
# POST_EVAL_TRANSFORM order: 1 is LOGISTIC and 2 SOFTMAX, where the ONNX spec says the
# reverse; measured)
_V5_AGGREGATES = {0: "AVERAGE", 1: "SUM", 2: "MIN", 3: "MAX"}
_V5_TRANSFORMS = {0: "NONE", 1: "LOGISTIC", 2: "SOFTMAX", 3: "SOFTMAX_ZERO", 4: "PROBIT"}
_V5_MODES = {0: MODES["BRANCH_LEQ"], 1: MODES["BRANCH_LT"], 2: MODES["BRANCH_GTE"],
             3: MODES["BRANCH_GT"], 4: MODES["BRANCH_EQ"], 5: MODES["BRANCH_NEQ"],
             6: MEMBER}


def build_forest_v5(op: str, attrs: dict[str, Any], tree_type: type) -> Forest:
    """The trees of TreeEnsemble's attributes, as ONNX Runtime's TreeEnsembleAttributesV5
    turns them into opset 3's (convert_to_v3): the branches, then each leaf as a node of
    its own weight; trees in tree_roots' order, a root whose two children are the same leaf
    being that leaf alone (measured: the leaf it names, not leaf `root` as the conversion
    reads); a BRANCH_MEMBER node's set the next run of membership_values up to a NaN."""
    feature = int_list(attrs, "nodes_featureids")
    n = feature.size
    true_id, false_id = int_list(attrs, "nodes_truenodeids"), int_list(attrs, "nodes_falsenodeids")
    true_leaf = int_list(attrs, "nodes_trueleafs") != 0
    false_leaf = int_list(attrs, "nodes_falseleafs") != 0
    codes = int_list(attrs, "nodes_modes")
    splits: np.ndarray = np.asarray(attrs.get("nodes_splits", np.zeros(0)),
                                    tree_type).reshape(-1)
    targets, weights = int_list(attrs, "leaf_targetids"), attrs.get("leaf_weights")
    weights = np.zeros(0, tree_type) if weights is None else np.asarray(weights).reshape(-1)
    roots, n_targets = int_list(attrs, "tree_roots"), int(attrs.get("n_targets", 0) or 0)
    for name, arr in (("nodes_truenodeids", true_id), ("nodes_falsenodeids", false_id),
                      ("nodes_trueleafs", true_leaf), ("nodes_falseleafs", false_leaf),
                      ("nodes_modes", codes), ("nodes_splits", splits)):
        if arr.size != n:
            raise NodeError(f"{op}: {name} has {arr.size} entries, nodes_featureids {n}")
    if weights.dtype != tree_type or targets.size != weights.size:
        raise NodeError(f"{op}: leaf_weights must hold {targets.size} {np.dtype(tree_type)} "
                        f"values (the input's type), not {weights.size} {weights.dtype}")
    if n_targets <= 0 or ((targets < 0) | (targets >= n_targets)).any():
        raise NodeError(f"{op}: n_targets {n_targets} and leaf_targetids disagree")
    bad = sorted(set(codes.tolist()) - set(_V5_MODES))
    if bad:
        raise unsupported(op, f"node mode {bad[0]}")
    leaves_n = targets.size
    for ids, is_leaf, side in ((true_id, true_leaf, "true"), (false_id, false_leaf, "false")):
        limit = np.where(is_leaf, leaves_n, n)
        if ((ids < 0) | (ids >= limit)).any():
            raise NodeError(f"{op}: a {side} child index out of range")
    if ((roots < 0) | (roots >= max(n, 1))).any() or roots.size == 0:
        raise NodeError(f"{op}: tree_roots must index the nodes")
    missing = np.zeros(n + leaves_n, bool)
    tracks = int_list(attrs, "nodes_missing_value_tracks_true")
    missing[:min(n, tracks.size)] = tracks[:n] == 1
    v3_mode = np.zeros(max(_V5_MODES) + 1, np.int8)
    v3_mode[list(_V5_MODES)] = list(_V5_MODES.values())
    mode = np.r_[v3_mode[codes], np.full(leaves_n, LEAF, np.int8)]
    members: dict[int, np.ndarray] = {}
    values: np.ndarray = np.asarray(attrs.get("membership_values", np.zeros(0)),
                                    tree_type).reshape(-1)
    cursor = 0
    for k in np.flatnonzero(mode[:n] == MEMBER).tolist():
        end = cursor
        while end < values.size and not np.isnan(values[end]):
            end += 1
        if end == cursor:
            raise NodeError(f"{op}: membership node {k} has no membership value")
        members[int(k)] = values[cursor:end].copy()
        cursor = end + 1
    big = frozenset(k for k, m in members.items() if m.size >= 31 or m.max() > 30 or m.min() < 0)
    for node in big:        # (ONNX Runtime tests a big set's members on int32(x))
        m = members[node]
        if (m != np.trunc(m)).any() or (np.abs(m) > np.iinfo(np.int32).max).any():
            raise NodeError(f"{op}: membership node {node} has {m.size} values beyond 0..30 "
                            "of which some are not int32 (ONNX Runtime runs only integers "
                            "there)")
        members[node] = m.astype(np.int64)
    everyone = np.arange(n + leaves_n)
    true_child = np.where(true_leaf, n + true_id, true_id)
    false_child = np.where(false_leaf, n + false_id, false_id)
    true_child, false_child = np.r_[true_child, everyone[n:]], np.r_[false_child, everyone[n:]]
    single = (false_id[roots] == true_id[roots]) & false_leaf[roots] & true_leaf[roots]
    tree_roots = np.where(single, n + true_id[roots], roots)      # (a one-leaf tree)
    threshold = np.r_[splits, np.zeros(leaves_n, tree_type)].astype(tree_type)
    all_features = np.r_[feature, np.zeros(leaves_n, np.int64)]
    weight_target = np.full((n + leaves_n, 1), -1, np.int64)
    weight_value: np.ndarray = np.zeros((n + leaves_n, 1), tree_type)
    weight_target[n:, 0], weight_value[n:, 0] = targets, weights
    return Forest(all_features, threshold, mode, missing, true_child, false_child, tree_roots,
                  weight_target, weight_value, n_targets,
                  int(feature.max()) if n else 0, go_masks(mode, missing),
                  depth_of(op, tree_roots, mode != LEAF, true_child, false_child), members,
                  big)


@register
@array_attributes("nodes_featureids", "nodes_truenodeids", "nodes_falsenodeids",
                  "nodes_trueleafs", "nodes_falseleafs", "nodes_missing_value_tracks_true",
                  "leaf_targetids", "tree_roots")
def TreeEnsemble(x: np.ndarray, **attrs: Any) -> np.ndarray:
    """(O203) ONNX Runtime's TreeEnsemble (ai.onnx.ml 5): (N, n_targets) of the input's
    type (float32 or float64), through opset 3's regression ((O203), (O204))."""
    op = "TreeEnsemble"
    if x.dtype.type not in (np.float32, np.float64):
        raise unsupported(op, f"input of type {x.dtype}")
    if x.ndim == 0 or x.ndim > 2:
        raise NodeError(f"{op}: the input must have 1 or 2 dimensions, not {x.ndim}")
    aggregate = _V5_AGGREGATES.get(int(attrs.get("aggregate_function", 1)))
    post = _V5_TRANSFORMS.get(int(attrs.get("post_transform", 0)))
    if aggregate is None or post is None:
        raise NodeError(f"{op}: unknown aggregate_function or post_transform")
    tree_type = x.dtype.type
    forest = _forest(attrs, tree_type)
    return regress(op, x, forest, aggregate, post, np.zeros(0, tree_type), tree_type)


def _forest(attrs: dict[str, Any], tree_type: type) -> Forest:
    return forest_of("TreeEnsemble", attrs, tree_type,
                     lambda: build_forest_v5("TreeEnsemble", attrs, tree_type))


@prepared_by("TreeEnsemble")
def _prepare(attrs: dict[str, Any], x_type: np.dtype, fixed: bool) -> None:
    prepare_forest("TreeEnsemble", attrs, x_type, fixed, _forest)
