"""The native tree-ensemble kernel (native/tree_ensemble.cpp) for lowp.runtime.ml_trees: the
walk of every tree for every row and the aggregation of the leaf weights, the numpy form
(`ml_trees.leaves`, `ml_trees.accumulate`) being the reference it equals bit for bit
((O274)). The compact forest is built once per Forest (so once per node, ml_trees.forest_of)
and kept in the Forest's `compiled` dict; None whenever the kernel is off or missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import native_float
from .tape import call

if TYPE_CHECKING:
    from .ml_trees import Forest

# ml_trees' aggregate names -> lowp::TreeAggregate (native/tree_ensemble.h)
AGGREGATE_CODES = {"SUM": 0, "AVERAGE": 1, "MIN": 2, "MAX": 3}


def _compiled(ext: Any, forest: Forest) -> Any:
    """The forest's lowp._native.TreeForest, built at the first use."""
    found = forest.compiled.get("native")
    if found is not None:
        return found
    nodes = sorted(forest.members)
    sets = [np.asarray(forest.members[k], np.float64) for k in nodes]
    start = np.r_[0, np.cumsum([s.size for s in sets], dtype=np.int64)].astype(np.int64)
    values = np.concatenate(sets) if sets else np.zeros(0, np.float64)
    width = 1 if forest.n_targets == 1 else forest.weight_target.shape[1]
    found = forest.compiled["native"] = ext.tree_forest(
        np.ascontiguousarray(forest.feature, np.int64), np.ascontiguousarray(forest.threshold),
        np.ascontiguousarray(forest.mode, np.int8), np.ascontiguousarray(forest.go_mask),
        np.ascontiguousarray(forest.true_child, np.int64),
        np.ascontiguousarray(forest.false_child, np.int64),
        np.ascontiguousarray(forest.roots, np.int64),
        np.ascontiguousarray(forest.weight_target, np.int64),
        np.ascontiguousarray(forest.weight_value), width, forest.n_targets,
        np.asarray(nodes, np.int64), start,
        np.asarray([k in forest.big_sets for k in nodes], np.uint8), values)
    return found


def prepare(forest: Forest) -> None:
    """The forest's native form built now (at the session's build) rather than at the
    first run; nothing without the kernel."""
    ext = native_float.binding("tree_forest")
    if ext is not None:
        _compiled(ext, forest)


def scores(forest: Forest, x: np.ndarray, aggregate: str, groups: list[range], threads: int
           ) -> tuple[np.ndarray, np.ndarray] | None:
    """(scores, has_score), (rows, targets) each, of the rows `x` (the tree type) as
    ml_trees.accumulate(forest, ml_trees.leaves(forest, x), aggregate, groups) gives them,
    on up to `threads` threads; None without the kernel. The results are
    native_float.buffer's and the call goes through lowp.runtime.tape, so that a replayed
    run repeats it (the same bounds array for the same groups)."""
    ext = native_float.binding("tree_ensemble_scores")
    tree_type = forest.weight_value.dtype
    if ext is None or x.dtype != tree_type or x.ndim != 2 or not groups:
        return None
    rows, features = x.shape
    s = native_float.buffer((rows, forest.n_targets), tree_type.type)
    h = native_float.buffer((rows, forest.n_targets), np.uint8)
    call(ext.tree_ensemble_scores, _compiled(ext, forest), np.ascontiguousarray(x).reshape(-1),
         rows, features, _bounds(forest, groups), AGGREGATE_CODES[aggregate], s.reshape(-1),
         h.reshape(-1), max(1, int(threads)))
    return s, h.view(bool)


def classes(forest: Forest, s: np.ndarray, h: np.ndarray, labels: np.ndarray,
            base: np.ndarray, binary: bool, all_positive: bool
            ) -> tuple[np.ndarray, np.ndarray] | None:
    """TreeEnsembleClassifier's int64 labels (rows,) and float32 scores (rows, classes) from
    the sums `s` and `has_score` `h` (rows, classes) for post_transform NONE, as
    ml_trees.TreeEnsembleClassifier's numpy gives them; None without the kernel. Buffers of
    native_float.buffer, the labels and base values the same arrays run after run (kept in
    the forest's `compiled`), so that a replayed run repeats the call."""
    ext = native_float.binding("tree_classes")
    if ext is None or s.dtype != forest.weight_value.dtype:
        return None
    rows, n = s.shape
    held: dict[tuple[bytes, bytes], tuple[np.ndarray, np.ndarray]] = \
        forest.compiled.setdefault("classes", {})
    key = (labels.tobytes(), base.tobytes())
    kept = held.get(key)
    if kept is None:
        kept = held[key] = (np.ascontiguousarray(labels, np.int64),
                            np.ascontiguousarray(base, s.dtype))
    label = native_float.buffer((rows,), np.int64)
    z = native_float.buffer((rows, n), np.float32)
    call(ext.tree_classes, np.ascontiguousarray(s).reshape(-1),
         np.ascontiguousarray(h).view(np.uint8).reshape(-1), rows, n, kept[0], kept[1],
         bool(binary), bool(all_positive), label, z.reshape(-1))
    return label, z


def _bounds(forest: Forest, groups: list[range]) -> np.ndarray:
    """The first tree of each group and the end of the last, the same array for the same
    groups (kept in the forest's `compiled`)."""
    starts = (*(g.start for g in groups), groups[-1].stop)
    kept: dict[tuple[int, ...], np.ndarray] = forest.compiled.setdefault("bounds", {})
    found = kept.get(starts)
    if found is None:
        found = kept[starts] = np.asarray(starts, np.int64)
    return found
