"""The native tree-ensemble kernel (native/tree_ensemble.cpp, lowp.runtime.native_trees) against
the numpy reference (ml_trees.leaves then ml_trees.accumulate) bit for bit: random forests
of every node mode, BRANCH_MEMBER's small and big sets, NaN tracks, several weights a leaf,
one or several targets, every aggregate, float32 and float64, 0, 1 and many rows, the
tree groups of ONNX Runtime's thread splits at 1, 2 and 3 threads ((O204), (O274)); the
operators take it when it is built; and a summed forest's replayed run is the kernel's
call alone, in a native Program."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, numpy_helper

from lowp.runtime import Session, ml_trees, native_float, native_trees
from lowp.runtime.backends import native_available
from lowp.runtime.float_registry import FLOAT_OPS
from lowp.runtime.ml_tree_ensemble import build_forest_v5
from tests.runtime.ort_agreement import onnxruntime_run
from tests.runtime.test_ml_trees import (
    _BRANCHES,
    _inputs,
    _v5_model,
    random_forest,
    random_forest_v5,
    tree_model,
)

pytestmark = pytest.mark.skipif(not native_available(), reason="needs the native extension")
_AGGREGATES = ["SUM", "AVERAGE", "MIN", "MAX"]


def _assert_native_equals_reference(forest: ml_trees.Forest, x: np.ndarray, aggregate: str,
                                    threads: int) -> None:
    groups = ml_trees.tree_groups(forest.roots.size, x.shape[0], forest.n_targets, threads)
    got = native_trees.scores(forest, x, aggregate, groups, threads)
    assert got is not None, "the native kernel did not run"
    want = ml_trees.accumulate(forest, ml_trees.leaves(forest, x), aggregate, groups)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        bits = np.dtype(f"u{w.dtype.itemsize}")
        np.testing.assert_array_equal(g.view(bits), w.view(bits),
                                      err_msg=f"{aggregate} {threads} threads {len(groups)} "
                                      "groups")


@settings(max_examples=80, deadline=None)
@given(trees=st.sampled_from([1, 2, 5, 81, 130]), depth=st.integers(0, 5),
       rows=st.sampled_from([0, 1, 2, 17, 51, 300]), targets=st.integers(1, 4),
       weights=st.integers(1, 3), aggregate=st.sampled_from(_AGGREGATES),
       dtype=st.sampled_from([np.float32, np.float64]), mixed=st.booleans(),
       special=st.booleans(), threads=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_the_native_walk_equals_the_reference(trees: int, depth: int, rows: int, targets: int,
                                              weights: int, aggregate: str, dtype: type,
                                              mixed: bool, special: bool, threads: int,
                                              seed: int) -> None:
    """Opset 1/3 forests (TreeEnsembleRegressor/Classifier's trees)."""
    rng = np.random.default_rng(seed)
    modes = _BRANCHES if mixed else [str(rng.choice(_BRANCHES))]
    attrs = random_forest(rng, trees=trees, depth=depth, features=3, targets=targets,
                          prefix="target", modes=modes, weights_per_leaf=weights,
                          missing=special)
    if special and rng.random() < 0.5:          # a NaN threshold (only NEQ goes true)
        attrs["nodes_values"][int(rng.integers(len(attrs["nodes_values"])))] = float("nan")
    forest = ml_trees.build_forest("TreeEnsembleRegressor", attrs, "target", targets, dtype)
    _assert_native_equals_reference(forest, _inputs(rng, rows, 3, dtype, special), aggregate,
                                    threads)


def _plain(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes as the executor hands them over: tensors as numpy arrays."""
    return {k: numpy_helper.to_array(v) if isinstance(v, TensorProto) else v
            for k, v in attrs.items()}


@settings(max_examples=60, deadline=None)
@given(trees=st.sampled_from([1, 3, 90]), depth=st.integers(1, 4),
       rows=st.sampled_from([0, 1, 3, 60]), targets=st.integers(1, 3),
       aggregate=st.sampled_from(_AGGREGATES), dtype=st.sampled_from([np.float32, np.float64]),
       big_sets=st.booleans(), special=st.booleans(), threads=st.integers(1, 2),
       seed=st.integers(0, 2**31))
def test_the_native_walk_equals_the_reference_on_opset_5(trees: int, depth: int, rows: int,
                                                         targets: int, aggregate: str,
                                                         dtype: type, big_sets: bool,
                                                         special: bool, threads: int,
                                                         seed: int) -> None:
    """TreeEnsemble's forests: BRANCH_MEMBER with small sets (equality) and big ones (on
    int32(x): NaN and values beyond the range are INT32_MIN)."""
    rng = np.random.default_rng(seed)
    attrs = _plain(random_forest_v5(rng, trees=trees, depth=depth, features=3,
                                    targets=targets, dtype=dtype, big_sets=big_sets))
    forest = build_forest_v5("TreeEnsemble", attrs, dtype)
    x = _inputs(rng, rows, 3, dtype, special)
    if x.size:
        x.reshape(-1)[rng.integers(0, x.size, 3)] = [40.0, -1.0, 3.5]
    _assert_native_equals_reference(forest, x, aggregate, threads)


def test_a_big_set_holds_int32_min_for_nan_and_out_of_range() -> None:
    """C's cast of NaN and of 1e10 to int32 is INT32_MIN: a big set holding it takes them."""
    low = float(np.iinfo(np.int32).min)
    attrs = dict(
        nodes_featureids=np.array([0]), nodes_splits=np.zeros(1, np.float32),
        nodes_modes=np.array([6], np.uint8), nodes_truenodeids=np.array([0]),
        nodes_falsenodeids=np.array([1]), nodes_trueleafs=np.array([1]),
        nodes_falseleafs=np.array([1]), nodes_missing_value_tracks_true=np.array([0]),
        leaf_targetids=np.array([0, 0]), leaf_weights=np.array([1, 20], np.float32),
        tree_roots=np.array([0]), n_targets=1,
        membership_values=np.array([low, 5.0, np.nan], np.float32))
    forest = build_forest_v5("TreeEnsemble", attrs, np.float32)
    x = np.array([[np.nan], [1e10], [-1e10], [5.5], [4.0]], np.float32)
    _assert_native_equals_reference(forest, x, "SUM", 1)
    s, _ = ml_trees.accumulate(forest, ml_trees.leaves(forest, x), "SUM", [range(1)])
    assert s[:, 0].tolist() == [1, 1, 1, 1, 20]


def _forests(cache: dict[Any, Any]) -> list[ml_trees.Forest]:
    return [f for f in cache.values() if isinstance(f, ml_trees.Forest)]


@pytest.mark.parametrize("op", ["TreeEnsembleRegressor", "TreeEnsembleClassifier"])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_operators_run_the_native_walk(op: str, threads: int) -> None:
    """The operators build the native forest once per node (in the Forest of the node's
    cache) and walk it, giving the reference's bits."""
    rng = np.random.default_rng(5)
    prefix = "target" if op == "TreeEnsembleRegressor" else "class"
    attrs = random_forest(rng, trees=90, depth=4, features=3, targets=3, prefix=prefix,
                          modes=_BRANCHES, weights_per_leaf=2, missing=True)
    if prefix == "target":
        attrs["n_targets"] = 3
    else:
        attrs["classlabels_int64s"] = [4, 5, 6]
    x = _inputs(rng, 60, 3, np.float32, special=True)
    cache: dict[Any, Any] = {}
    with native_float.threads(threads):
        got = FLOAT_OPS[op](x, **attrs, node_cache=cache)
        built = [f.compiled.get("native") for f in _forests(cache)]
        again = FLOAT_OPS[op](x, **attrs, node_cache=cache)
        with native_float.disabled():
            want = FLOAT_OPS[op](x, **attrs)
    assert len(built) == 1 and built[0] is not None
    assert [f.compiled.get("native") for f in _forests(cache)] == built    # (built once)
    outputs = [r if isinstance(r, tuple) else (r,) for r in (got, again, want)]
    for g, a, w in zip(*outputs, strict=True):
        bits = np.dtype(f"u{w.dtype.itemsize}")
        np.testing.assert_array_equal(g.view(bits), w.view(bits))
        np.testing.assert_array_equal(a.view(bits), w.view(bits))


def _summed_model(op: str, targets: int, dtype: type) -> onnx.ModelProto:
    """A forest of `op` summing its trees, no base values, no post transform."""
    rng = np.random.default_rng(11)
    if op == "TreeEnsemble":
        attrs = random_forest_v5(rng, trees=40, depth=4, features=3, targets=targets,
                                 dtype=dtype, big_sets=False)
        attrs.update(aggregate_function=1, post_transform=0)
        return _v5_model(attrs, dtype)
    attrs = random_forest(rng, trees=40, depth=4, features=3, targets=targets, prefix="target",
                          modes=_BRANCHES, weights_per_leaf=2, missing=True)
    attrs["n_targets"] = targets
    return tree_model(op, attrs, dtype)


@pytest.mark.parametrize(("op", "dtype"), [("TreeEnsemble", np.float64),
                                           ("TreeEnsemble", np.float32),
                                           ("TreeEnsembleRegressor", np.float32)])
@pytest.mark.parametrize("targets", [1, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_summed_forest_replays_as_a_native_program(op: str, dtype: type, targets: int,
                                                     threads: int) -> None:
    """A forest summing its trees with no base and no post transform (atspm_decode_trees')
    returns the kernel's scores as they are (a sum from +0 is never -0: adding the +0 origin
    changed no bit), so from the third run on its run is one native Program; every run,
    on new rows, gives ONNX Runtime's bits."""
    model = _summed_model(op, targets, dtype)
    session = Session(model, threads=threads)
    rng = np.random.default_rng(3)
    for run in range(5):
        x = _inputs(rng, 8, 3, dtype, special=True)
        x[run % 8] = 0.0
        (want,) = onnxruntime_run(model, {"x": x}, threads)
        got = session.run({"x": x})["y"]
        assert got.dtype == want.dtype and got.shape == want.shape
        bits = np.dtype(f"u{want.dtype.itemsize}")
        np.testing.assert_array_equal(got.view(bits), want.view(bits), err_msg=f"run {run}")
    assert session._replayer is not None and session._replayer.native_only(
        (("x", x.shape, x.dtype.str),)), "the replayed run is not native Programs only"


@pytest.mark.parametrize("mode", [*_BRANCHES, "mixed"])
def test_a_forest_of_one_mode_walks_its_compact_nodes(mode: str) -> None:
    """A forest whose branches all have one mode also holds the compact depth-first nodes
    (the false child next, ONNX Runtime's same_mode_ layout) its walk takes, with NaN
    tracks, NaN and infinite inputs and a NaN threshold; mixed modes keep the general walk;
    the sums are the reference's either way."""
    rng = np.random.default_rng(21)
    modes = _BRANCHES if mode == "mixed" else [mode]
    attrs = random_forest(rng, trees=70, depth=6, features=3, targets=2, prefix="target",
                          modes=modes, weights_per_leaf=2, missing=True)
    attrs["nodes_values"][3] = float("nan")
    for dtype in (np.float32, np.float64):
        forest = ml_trees.build_forest("TreeEnsembleRegressor", attrs, "target", 2, dtype)
        ext = native_float.binding("tree_forest")
        compiled = native_trees._compiled(ext, forest)
        assert compiled.same_mode == (-1 if mode == "mixed" else ml_trees.MODES[mode])
        for rows in (1, 8, 60):
            x = _inputs(rng, rows, 3, dtype, special=True)
            for threads in (1, 2):
                _assert_native_equals_reference(forest, x, "SUM", threads)


def test_a_shared_subtree_is_walked_as_the_reference() -> None:
    """Two branches of a tree sharing a child (LightGBM's chains of BRANCH_EQ write such
    trees; ONNX Runtime keeps one copy): the compact nodes copy the shared subtree, the
    leaves and sums are the reference's."""
    attrs: dict[str, Any] = {
        "nodes_treeids": [0] * 7, "nodes_nodeids": list(range(7)),
        "nodes_featureids": [0, 1, 1, 0, 0, 0, 0],
        "nodes_values": [0.5, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0],
        "nodes_modes": ["BRANCH_EQ", "BRANCH_EQ", "BRANCH_EQ", "LEAF", "LEAF", "LEAF",
                        "LEAF"],
        "nodes_truenodeids": [3, 3, 5, 0, 0, 0, 0],     # node 3 reached from 0 and 1
        "nodes_falsenodeids": [1, 2, 6, 0, 0, 0, 0],
        "nodes_missing_value_tracks_true": [0] * 7,
        "target_treeids": [0] * 4, "target_nodeids": [3, 4, 5, 6], "target_ids": [0] * 4,
        "target_weights": [1.0, 2.0, 3.0, 4.0]}
    forest = ml_trees.build_forest("TreeEnsembleRegressor", attrs, "target", 1, np.float32)
    assert native_trees._compiled(native_float.binding("tree_forest"), forest).same_mode == 4
    x = np.array([[0.5, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 3.0], [np.nan, np.nan]],
                 np.float32)
    _assert_native_equals_reference(forest, x, "SUM", 1)


def _classifier_model(classes: int, base: int, one_column: bool, negative: bool,
                      post: str = "NONE") -> onnx.ModelProto:
    """A TreeEnsembleClassifier (post_transform `post`) of `classes` classes."""
    rng = np.random.default_rng(classes * 100 + base * 10 + one_column * 2 + negative)
    attrs = random_forest(rng, trees=6, depth=5, features=3, targets=classes,
                          prefix="class", modes=["BRANCH_LEQ"], weights_per_leaf=2,
                          missing=True)
    if one_column:
        attrs["class_ids"] = [0] * len(attrs["class_ids"])
    weights = np.asarray(attrs["class_weights"], np.float32)
    if not negative:
        weights = np.abs(weights) / (np.abs(weights).max() * 2 + 1)
    attrs["class_weights"] = [float(v) for v in weights]
    attrs["classlabels_int64s"] = [3 * c - 4 for c in range(classes)]
    attrs["post_transform"] = post
    if base:
        size = classes if base == 2 else 1
        attrs["base_values"] = [0.125 * (c + 1) for c in range(size)]
    return tree_model("TreeEnsembleClassifier", attrs)


@pytest.mark.parametrize(("classes", "base", "one_column", "negative"), [
    (2, 0, True, False), (2, 0, True, True), (2, 1, True, False), (2, 2, False, True),
    (2, 0, False, False), (3, 0, False, True), (3, 2, False, False)])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_classifier_replays_as_a_native_program(classes: int, base: int, one_column: bool,
                                                  negative: bool, threads: int) -> None:
    """A TreeEnsembleClassifier without post transform (surfaces_knn_validity's) computes
    its labels and float32 scores natively from the sums (`tree_classes`, the two-class
    rules of (O205)), so from the third run on its run is one native Program; every run, on
    new rows, gives ONNX Runtime's bits."""
    model = _classifier_model(classes, base, one_column, negative)
    session = Session(model, threads=threads)
    rng = np.random.default_rng(7)
    for run in range(5):
        x = _inputs(rng, 16, 3, np.float32, special=True)
        want = onnxruntime_run(model, {"x": x}, threads)
        got = session.run({"x": x})
        for name, w in zip(("label", "probabilities"), want, strict=True):
            g = got[name]
            assert g.dtype == w.dtype and g.shape == w.shape, name
            bits = np.dtype(f"u{w.dtype.itemsize}")
            np.testing.assert_array_equal(g.view(bits), w.view(bits), err_msg=f"run {run}")
    assert session._replayer is not None and session._replayer.native_only(
        (("x", x.shape, x.dtype.str),)), "the replayed run is not native Programs only"


@pytest.mark.parametrize("post", ["LOGISTIC", "SOFTMAX", "PROBIT"])
@pytest.mark.parametrize("classes", [2, 3])
def test_a_classifier_with_a_post_transform_keeps_its_numpy_tail(post: str,
                                                                 classes: int) -> None:
    """The other post transforms still run the numpy tail after the native sums, on every
    run of a recorded signature (its outputs are not the kernels' buffers), with ONNX
    Runtime's bits."""
    model = _classifier_model(classes, 2, False, True, post)
    session = Session(model, threads=1)
    rng = np.random.default_rng(8)
    for run in range(4):
        x = _inputs(rng, 16, 3, np.float32, special=True)
        want = onnxruntime_run(model, {"x": x}, 1)
        got = session.run({"x": x})
        for name, w in zip(("label", "probabilities"), want, strict=True):
            bits = np.dtype(f"u{w.dtype.itemsize}")
            np.testing.assert_array_equal(got[name].view(bits), w.view(bits),
                                          err_msg=f"run {run}")
