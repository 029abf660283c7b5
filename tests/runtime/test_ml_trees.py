"""The ai.onnx.ml tree ensembles (lowp.runtime.ml_trees, ml_tree_ensemble) against ONNX
Runtime bit for bit: random forests of every node mode, NaN and missing-value tracking,
every aggregate and post transform, the binary-class cases, at 1 and 2 threads on both
backends, with the native walk ((O274)) and the numpy reference; the corpus model
surfaces_knn_validity (refused before them)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.errors import LowpError
from lowp.runtime import Session, native_float
from lowp.runtime.backends import native_available
from lowp.runtime.float_registry import FLOAT_OPS
from tests.runtime.ort_agreement import onnxruntime_run

BACKENDS = ["reference"] + (["native"] if native_available() else [])
# the walks of the trees: the native kernel (where built) and the numpy reference
KERNELS = (["native"] if native_available() else []) + ["numpy"]
_ELEM = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE,
         np.int64: TensorProto.INT64, np.int32: TensorProto.INT32}
_BRANCHES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]
# thresholds and inputs from one small set, so that ties (and so the modes) matter
_GRID = np.array([-2.5, -1.0, 0.0, 0.5, 1.0, 3.0], np.float32)


def random_forest(rng: np.random.Generator, *, trees: int, depth: int, features: int,
                  targets: int, prefix: str, modes: list[str], weights_per_leaf: int = 1,
                  missing: bool = False) -> dict[str, Any]:
    """skl2onnx-like attributes of `trees` random trees of depth at most `depth`: node ids
    from 0 in depth-first order, leaves weighted with `prefix`_ (target or class) weights of
    very different magnitudes (so that the summation order shows)."""
    a: dict[str, list[Any]] = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
        f"{prefix}_treeids", f"{prefix}_nodeids", f"{prefix}_ids", f"{prefix}_weights")}
    for t in range(trees):
        count = 0

        def grow(level: int, tree: int = t) -> int:
            nonlocal count
            me = count
            count += 1
            k = len(a["nodes_nodeids"])
            a["nodes_treeids"].append(tree)
            a["nodes_nodeids"].append(me)
            a["nodes_featureids"].append(int(rng.integers(features)))
            a["nodes_values"].append(float(rng.choice(_GRID)))
            a["nodes_missing_value_tracks_true"].append(int(missing and rng.random() < 0.5))
            if level >= depth or (level > 0 and rng.random() < 0.3):
                a["nodes_modes"].append("LEAF")
                a["nodes_truenodeids"].append(0)
                a["nodes_falsenodeids"].append(0)
                for _ in range(int(rng.integers(1, weights_per_leaf + 1))):
                    a[f"{prefix}_treeids"].append(tree)
                    a[f"{prefix}_nodeids"].append(me)
                    a[f"{prefix}_ids"].append(int(rng.integers(targets)))
                    scale = 10.0 ** float(rng.integers(-3, 8))
                    a[f"{prefix}_weights"].append(float(np.float32(rng.standard_normal()
                                                                   * scale)))
                return me
            a["nodes_modes"].append(str(rng.choice(modes)))
            a["nodes_truenodeids"].append(0)
            a["nodes_falsenodeids"].append(0)
            a["nodes_truenodeids"][k] = grow(level + 1)
            a["nodes_falsenodeids"][k] = grow(level + 1)
            return me

        grow(0)
    return a


def tree_model(op: str, attrs: dict[str, Any], dtype: type = np.float32, ml_opset: int = 3,
               rank: int | None = 2) -> onnx.ModelProto:
    """One `op` node from x (`dtype`, `rank` dimensions, None: unknown) to its outputs."""
    if op == "TreeEnsembleRegressor":
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    else:
        label = TensorProto.STRING if "classlabels_strings" in attrs else TensorProto.INT64
        outputs = [helper.make_tensor_value_info("label", label, None),
                   helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, None)]
    node = helper.make_node(op, ["x"], [o.name for o in outputs], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", _ELEM[dtype], None if rank is None else [None] * rank)], outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                   helper.make_opsetid("ai.onnx.ml", ml_opset)],
                             ir_version=10)


def as_tensors(attrs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`attrs` with the float lists `names` as opset 3's double *_as_tensor attributes."""
    out = dict(attrs)
    for name in names:
        if name in out:
            values = out.pop(name)
            out[f"{name}_as_tensor"] = helper.make_tensor(
                name, TensorProto.DOUBLE, [len(values)],
                np.asarray(values, np.float64) * (1 + 1e-9))
    return out


def assert_bits_equal_onnxruntime(model: onnx.ModelProto, x: np.ndarray,
                                  threads: tuple[int, ...] = (1, 2)) -> list[np.ndarray]:
    """Every output of both backends (recorded, then replayed) equals ONNX Runtime's bit for
    bit, NaN payloads included, at each of `threads`; returns ONNX Runtime's outputs at the
    last."""
    names = [o.name for o in model.graph.output]
    want: list[np.ndarray] = []
    for n in threads:
        want = onnxruntime_run(model, {"x": x}, n)
        for backend, kernel in [(b, k) for b in BACKENDS for k in KERNELS]:
            with kernel_of(kernel):
                session = Session(model, backend=backend, threads=n)
                for run in range(2):
                    got = session.run({"x": x})
                    for name, w in zip(names, want, strict=True):
                        g = got[name]
                        assert g.dtype == w.dtype and g.shape == w.shape, (name, g.shape,
                                                                           w.shape)
                        bits = np.dtype(f"u{w.dtype.itemsize}")
                        np.testing.assert_array_equal(
                            g.view(bits), w.view(bits),
                            err_msg=f"{name} {backend} {kernel} {n} threads {run}")
    return want


def kernel_of(kernel: str) -> contextlib.AbstractContextManager[None]:
    """Run with the walk of `kernel`: "native" (native/tree_ensemble.cpp, (O274)) or
    "numpy" (the reference, ml_trees.leaves and accumulate)."""
    return contextlib.nullcontext() if kernel == "native" else native_float.disabled()


def _inputs(rng: np.random.Generator, rows: int, features: int, dtype: type,
            special: bool) -> np.ndarray:
    x = rng.choice(_GRID, (rows, features)) + rng.choice([0, 0, 0.25], (rows, features))
    if np.issubdtype(dtype, np.integer):
        return x.round().astype(dtype)
    x = x.astype(dtype)
    if special and x.size:
        x.reshape(-1)[rng.integers(0, x.size, 3)] = [np.nan, np.inf, -np.inf]
    return x


@settings(max_examples=40, deadline=None)
@given(trees=st.integers(1, 6), depth=st.integers(0, 4), rows=st.sampled_from([0, 1, 3, 17]),
       targets=st.integers(1, 3), aggregate=st.sampled_from(["SUM", "AVERAGE", "MIN", "MAX"]),
       post=st.sampled_from(["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]),
       dtype=st.sampled_from([np.float32, np.float64]), mixed=st.booleans(),
       base=st.booleans(), special=st.booleans(), seed=st.integers(0, 2**31))
def test_regressor_matches_onnxruntime(trees: int, depth: int, rows: int, targets: int,
                                       aggregate: str, post: str, dtype: type, mixed: bool,
                                       base: bool, special: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    modes = _BRANCHES if mixed else [str(rng.choice(_BRANCHES))]
    attrs = random_forest(rng, trees=trees, depth=depth, features=3, targets=targets,
                          prefix="target", modes=modes, weights_per_leaf=2, missing=special)
    attrs.update(n_targets=targets, aggregate_function=aggregate, post_transform=post)
    if base:
        attrs["base_values"] = [float(v) for v in
                                rng.standard_normal(targets).astype(np.float32)]
    if dtype is np.float64 and rng.random() < 0.5:
        attrs = as_tensors(attrs, ("nodes_values", "target_weights", "base_values"))
    assert_bits_equal_onnxruntime(tree_model("TreeEnsembleRegressor", attrs, dtype),
                                  _inputs(rng, rows, 3, dtype, special))


@settings(max_examples=60, deadline=None)
@given(trees=st.integers(1, 6), depth=st.integers(0, 4), rows=st.sampled_from([0, 1, 3, 17]),
       classes=st.integers(2, 4), one_column=st.booleans(), negative=st.booleans(),
       post=st.sampled_from(["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]),
       dtype=st.sampled_from(list(_ELEM)), mixed=st.booleans(), base=st.integers(0, 2),
       special=st.booleans(), seed=st.integers(0, 2**31))
def test_classifier_matches_onnxruntime(trees: int, depth: int, rows: int, classes: int,
                                        one_column: bool, negative: bool, post: str,
                                        dtype: type, mixed: bool, base: int, special: bool,
                                        seed: int) -> None:
    """Labels and scores, the two-class cases among them: skl2onnx's one weight column
    (class_ids all one class), all weights positive or not, 0, 1 or 2 base values."""
    rng = np.random.default_rng(seed)
    modes = _BRANCHES if mixed else [str(rng.choice(_BRANCHES))]
    attrs = random_forest(rng, trees=trees, depth=depth, features=3, targets=classes,
                          prefix="class", modes=modes, weights_per_leaf=3, missing=special)
    if one_column:
        column = int(rng.integers(classes))
        attrs["class_ids"] = [column] * len(attrs["class_ids"])
    weights = np.asarray(attrs["class_weights"], np.float32)
    weights = weights if negative else np.abs(weights) / (np.abs(weights).max() * 2 + 1)
    attrs["class_weights"] = [float(v) for v in weights]
    attrs.update(classlabels_int64s=[int(v) for v in rng.permutation(10)[:classes] * 7 - 20],
                 post_transform=post)
    if classes == 2 and not one_column and base == 1:
        base = 2       # (one base value for two classes both weighted: ONNX Runtime leaves
        #                 the second score of a row without a class-1 weight unset)
    if base and (classes == 2 or base == 2):
        size = classes if base == 2 else 1
        attrs["base_values"] = [float(v) for v in rng.standard_normal(size).astype(np.float32)]
    if post == "PROBIT" and classes == 2:       # (ONNX Runtime leaves the second score unset:
        attrs["base_values"] = [0.25, 0.5]      # two base values keep both scores)
    if dtype is np.float64 and rng.random() < 0.5:
        attrs = as_tensors(attrs, ("nodes_values", "class_weights", "base_values"))
    assert_bits_equal_onnxruntime(tree_model("TreeEnsembleClassifier", attrs, dtype),
                                  _inputs(rng, rows, 3, dtype, special))


_SPLITS = [("TreeEnsembleRegressor", 1, 5, 51), ("TreeEnsembleRegressor", 1, 90, 130),
           ("TreeEnsembleRegressor", 3, 5, 300), ("TreeEnsembleRegressor", 3, 90, 1),
           ("TreeEnsembleClassifier", 2, 5, 51), ("TreeEnsembleClassifier", 3, 81, 1),
           ("TreeEnsembleClassifier", 3, 90, 300)]


@pytest.mark.parametrize(("op", "outputs", "trees", "rows", "aggregate"), [
    (*split, aggregate) for split in _SPLITS
    for aggregate in (["SUM", "AVERAGE", "MIN", "MAX"] if split[0].endswith("Regressor")
                      else ["SUM"])])      # (the classifier has no aggregate_function)
def test_the_threads_split_the_trees_as_onnxruntime_does(op: str, outputs: int, trees: int,
                                                         rows: int, aggregate: str) -> None:
    """(O204) At 2 threads ONNX Runtime sums the trees in two halves (more than 50 rows, or
    one row and more than 80 trees) and adds the halves: other bits than at one thread,
    which lowp gives at each thread count."""
    rng = np.random.default_rng(trees * 1000 + rows)
    prefix = "target" if op == "TreeEnsembleRegressor" else "class"
    attrs = random_forest(rng, trees=trees, depth=3, features=3, targets=outputs,
                          prefix=prefix, modes=["BRANCH_LEQ"], weights_per_leaf=2)
    if prefix == "target":
        attrs.update(n_targets=outputs, aggregate_function=aggregate)
    else:
        attrs["classlabels_int64s"] = list(range(outputs))
    model = tree_model(op, attrs)
    x = _inputs(rng, rows, 3, np.float32, special=False)
    one, two = onnxruntime_run(model, {"x": x}, 1), onnxruntime_run(model, {"x": x}, 2)
    assert_bits_equal_onnxruntime(model, x)
    if aggregate in ("SUM", "AVERAGE") and (rows > 50 or outputs > 1):
        assert not np.array_equal(one[-1], two[-1])     # the order shows in the bits


@pytest.mark.parametrize("threads", [1, 2])
def test_the_corpus_decision_tree_matches_onnxruntime(threads: int) -> None:
    """surfaces_knn_validity (skl2onnx's decision tree, one weight column for two classes:
    refused before), on its corpus feeds and batches of 0, 1 and 200 rows, on every native
    path this machine has."""
    from evals.corpus import models as corpus

    from tests.runtime.ort_agreement import assert_outputs_equal_onnxruntime_on_every_path

    spec = corpus.BY_NAME["surfaces_knn_validity"]
    if not spec.path.exists():
        pytest.skip(f"{spec.path.name} not fetched")
    model = corpus.load_float(spec)
    feeds = corpus.make_feeds(spec, 200, seed=0)
    assert isinstance(feeds, dict)
    for rows in (spec.batch, 0, 1, 200):
        x = feeds["input"][:rows]
        assert_bits_equal_onnxruntime(_renamed(model), x, (threads,))
    assert_outputs_equal_onnxruntime_on_every_path(model, {"input": feeds["input"][:16]},
                                                   threads)


def _renamed(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its one input named x (assert_bits_equal_onnxruntime's feed)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    old = out.graph.input[0].name
    out.graph.input[0].name = "x"
    for node in out.graph.node:
        node.input[:] = ["x" if i == old else i for i in node.input]
    return out


def test_a_one_dimensional_input_is_one_row() -> None:
    rng = np.random.default_rng(5)
    attrs = random_forest(rng, trees=3, depth=2, features=1, targets=3, prefix="class",
                          modes=["BRANCH_LT"])
    attrs["classlabels_int64s"] = [4, 5, 6]
    x = np.array([0.5, 3.0, -1.0], np.float32)
    assert_bits_equal_onnxruntime(tree_model("TreeEnsembleClassifier", attrs, rank=None), x)


@pytest.mark.parametrize("op", ["TreeEnsembleRegressor", "TreeEnsembleClassifier"])
def test_opset_1_files_match_onnxruntime(op: str) -> None:
    rng = np.random.default_rng(6)
    prefix = "target" if op == "TreeEnsembleRegressor" else "class"
    attrs = random_forest(rng, trees=4, depth=3, features=2, targets=2, prefix=prefix,
                          modes=_BRANCHES, weights_per_leaf=2, missing=True)
    attrs.update({"n_targets": 2} if prefix == "target" else {"classlabels_int64s": [3, 9]})
    x = _inputs(rng, 40, 2, np.float32, special=True)
    assert_bits_equal_onnxruntime(tree_model(op, attrs, ml_opset=1), x)


def _one_split(**extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(
        nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0],
        nodes_values=[0.5, 0.0, 0.0], nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0], class_treeids=[0, 0],
        class_nodeids=[1, 2], class_ids=[0, 1], class_weights=[0.25, 0.75],
        classlabels_int64s=[0, 1])
    attrs.update(extra)
    return {k: v for k, v in attrs.items() if v is not None}


@pytest.mark.parametrize(("attrs", "dtype", "rank", "match"), [
    (_one_split(classlabels_int64s=None, classlabels_strings=["no", "yes"]), np.float32, 2,
     "string class labels"),
    (as_tensors(_one_split(), ("nodes_values",)), np.float32, 2, "nodes_values_as_tensor"),
    (_one_split(nodes_featureids=[3, 0, 0]), np.float32, 2, "feature 3 .* has 2"),
    (_one_split(class_ids=[0, 2]), np.float32, 2, "class id outside"),
    (_one_split(), np.float32, None, "1 or 2 dimensions"),
    (_one_split(nodes_truenodeids=[7, 0, 0]), np.float32, 2, "no valid true child"),
])
def test_what_onnxruntime_refuses_lowp_refuses_naming_it(attrs: dict[str, Any], dtype: type,
                                                         rank: int | None, match: str) -> None:
    """A lowp error naming the operator and what is wrong, where ONNX Runtime fails to load
    or to run the node (string labels: lowp has no string tensors)."""
    model = tree_model("TreeEnsembleClassifier", attrs, dtype, rank=rank)
    x = np.ones((2, 2) if rank else (2, 2, 2), dtype)
    if "classlabels_strings" not in attrs:
        with pytest.raises(Exception):  # noqa: B017  (ONNX Runtime: load or run error)
            onnxruntime_run(model, {"x": x})
    with pytest.raises(LowpError, match=f"TreeEnsembleClassifier.*{match}"):
        Session(model, backend="reference").run({"x": x})


def test_the_regressor_refuses_integer_input_as_onnxruntime() -> None:
    attrs = _one_split(class_treeids=None, class_nodeids=None, class_ids=None,
                       class_weights=None, classlabels_int64s=None, target_treeids=[0, 0],
                       target_nodeids=[1, 2], target_ids=[0, 0], target_weights=[1.0, 2.0],
                       n_targets=1)
    x = np.ones((2, 2), np.int64)
    with pytest.raises(LowpError, match="TreeEnsembleRegressor.*int64"):
        FLOAT_OPS["TreeEnsembleRegressor"](x, **attrs)


@pytest.mark.parametrize("targets", [1, 2])
def test_leaf_weights_are_read_as_onnxruntime_reads_them(targets: int) -> None:
    """One target: only a leaf's first weight counts, a weightless leaf gives its
    nodes_values entry; several: a weightless leaf adds nothing. Weights of a branch are
    ignored."""
    attrs = _one_split(class_treeids=None, class_nodeids=None, class_ids=None,
                       class_weights=None, classlabels_int64s=None, nodes_values=[0.5, 3.0, 7.0],
                       target_treeids=[0, 0, 0, 0], target_nodeids=[1, 0, 1, 1],
                       target_ids=[0, 0, 0, targets - 1], target_weights=[0.25, 50.0, 1.0, 8.0],
                       n_targets=targets)
    x = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    want = assert_bits_equal_onnxruntime(tree_model("TreeEnsembleRegressor", attrs), x)[0]
    np.testing.assert_array_equal(want, [[0.25], [7.0]] if targets == 1 else [[1.25, 8], [0, 0]])


@pytest.mark.parametrize("mode", _BRANCHES)
def test_nan_thresholds_and_inputs_branch_as_onnxruntime(mode: str) -> None:
    """Every ordered comparison with a NaN is false, != true; missing_value_tracks_true
    sends a NaN input (not a NaN threshold) to the true branch."""
    attrs = random_forest(np.random.default_rng(7), trees=4, depth=3, features=2,
                          targets=2, prefix="class", modes=[mode], missing=True)
    values = np.asarray(attrs["nodes_values"], np.float32)
    values[::3] = np.nan
    attrs.update(nodes_values=[float(v) for v in values], classlabels_int64s=[0, 1])
    x = np.array([[np.nan, 0.5], [0.5, np.nan], [-1.0, 3.0], [np.nan, np.nan]], np.float32)
    assert_bits_equal_onnxruntime(tree_model("TreeEnsembleClassifier", attrs), x)


def random_forest_v5(rng: np.random.Generator, *, trees: int, depth: int, features: int,
                     targets: int, dtype: type, big_sets: bool) -> dict[str, Any]:
    """TreeEnsemble (ai.onnx.ml 5) attributes of `trees` random trees: branches of every
    mode (BRANCH_MEMBER's sets small, or beyond ONNX Runtime's 30 with `big_sets`), each
    leaf one weight."""
    nodes: dict[str, list[Any]] = {k: [] for k in (
        "nodes_featureids", "nodes_splits", "nodes_modes", "nodes_truenodeids",
        "nodes_falsenodeids", "nodes_trueleafs", "nodes_falseleafs",
        "nodes_missing_value_tracks_true")}
    leaf_targets: list[int] = []
    leaf_weights: list[float] = []
    members: list[float] = []
    roots: list[int] = []

    def leaf() -> int:
        leaf_targets.append(int(rng.integers(targets)))
        leaf_weights.append(float(rng.standard_normal() * 10.0 ** float(rng.integers(-3, 6))))
        return len(leaf_targets) - 1

    def grow(level: int) -> tuple[int, bool]:
        if level >= depth or (level > 0 and rng.random() < 0.3):
            return leaf(), True
        k = len(nodes["nodes_modes"])
        mode = int(rng.integers(7))
        nodes["nodes_featureids"].append(int(rng.integers(features)))
        nodes["nodes_splits"].append(float(rng.choice(_GRID)))
        nodes["nodes_modes"].append(mode)
        nodes["nodes_missing_value_tracks_true"].append(int(rng.random() < 0.3))
        if mode == 6:
            pool = [-1.0, 0.0, 1.0, 3.0, 40.0] if big_sets else [0.0, 1.0, 3.0]
            members.extend(float(v) for v in rng.choice(pool, int(rng.integers(1, 4)),
                                                       replace=False))
            members.append(float("nan"))
        for side in ("true", "false"):
            nodes[f"nodes_{side}nodeids"].append(0)
            nodes[f"nodes_{side}leafs"].append(0)
        for side in ("true", "false"):
            child, is_leaf = grow(level + 1)
            nodes[f"nodes_{side}nodeids"][k] = child
            nodes[f"nodes_{side}leafs"][k] = int(is_leaf)
        return k, False

    for _ in range(trees):
        root, is_leaf = grow(0)
        if is_leaf:          # (a one-leaf tree: a branch whose children are both that leaf)
            raise AssertionError("grow(0) always branches")
        roots.append(root)
    attrs: dict[str, Any] = {k: v for k, v in nodes.items() if k not in (
        "nodes_splits", "nodes_modes")}
    attrs.update(
        nodes_splits=numpy_helper.from_array(np.asarray(nodes["nodes_splits"], dtype)),
        nodes_modes=numpy_helper.from_array(np.asarray(nodes["nodes_modes"], np.uint8)),
        leaf_targetids=leaf_targets,
        leaf_weights=numpy_helper.from_array(np.asarray(leaf_weights, dtype)),
        tree_roots=roots, n_targets=targets)
    if members:
        attrs["membership_values"] = numpy_helper.from_array(np.asarray(members, dtype))
    return attrs


def _v5_model(attrs: dict[str, Any], dtype: type) -> onnx.ModelProto:
    node = helper.make_node("TreeEnsemble", ["x"], ["y"], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", _ELEM[dtype], [None, None])], [helper.make_tensor_value_info("y", _ELEM[dtype],
                                                                          None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                   helper.make_opsetid("ai.onnx.ml", 5)],
                             ir_version=10)


@settings(max_examples=40, deadline=None)
@given(trees=st.integers(1, 5), depth=st.integers(1, 4), rows=st.sampled_from([0, 1, 3, 60]),
       targets=st.integers(1, 3), aggregate=st.integers(0, 3), post=st.integers(0, 4),
       dtype=st.sampled_from([np.float32, np.float64]), big_sets=st.booleans(),
       special=st.booleans(), seed=st.integers(0, 2**31))
def test_tree_ensemble_v5_matches_onnxruntime(trees: int, depth: int, rows: int,
                                              targets: int, aggregate: int, post: int,
                                              dtype: type, big_sets: bool, special: bool,
                                              seed: int) -> None:
    """ai.onnx.ml 5's TreeEnsemble, BRANCH_MEMBER among the modes, the output in the input's
    type, the integer post_transform as ONNX Runtime reads it."""
    rng = np.random.default_rng(seed)
    attrs = random_forest_v5(rng, trees=trees, depth=depth, features=3, targets=targets,
                             dtype=dtype, big_sets=big_sets)
    attrs.update(aggregate_function=aggregate, post_transform=post)
    x = _inputs(rng, rows, 3, dtype, special)
    if x.size:
        x.reshape(-1)[rng.integers(0, x.size, 2)] = [40.0, -1.0]
    assert_bits_equal_onnxruntime(_v5_model(attrs, dtype), x)


def _member_tree(members: list[float], roots: list[int] | None = None) -> dict[str, Any]:
    """One BRANCH_MEMBER node on feature 0 (true: leaf 0, false: leaf 1), then a second
    tree: a branch whose two children are leaf 0 (ONNX Runtime's one-leaf tree: leaf 0,
    not leaf 1 of the root's own index as its conversion to opset 3 reads)."""
    f = np.float32
    return dict(
        nodes_featureids=[0, 0], nodes_splits=numpy_helper.from_array(np.zeros(2, f)),
        nodes_modes=numpy_helper.from_array(np.array([6, 0], np.uint8)),
        nodes_truenodeids=[0, 0], nodes_falsenodeids=[1, 0], nodes_trueleafs=[1, 1],
        nodes_falseleafs=[1, 1], nodes_missing_value_tracks_true=[1, 0],
        leaf_targetids=[0, 0], leaf_weights=numpy_helper.from_array(np.array([1, 20], f)),
        tree_roots=roots or [0, 1], n_targets=1,
        membership_values=numpy_helper.from_array(np.array(members, f)))


@pytest.mark.parametrize("members", [[0.0, 2.0, 30.0], [-1.0, 1.0, 3.0], [40.0, 2.0]])
def test_tree_ensemble_v5_membership_as_onnxruntime(members: list[float]) -> None:
    """A set within 0..30 of fewer than 31 values is tested for equality; beyond, on the
    input truncated to int32 (3.25 is in {-1, 1, 3}); a tracked NaN goes true."""
    x = np.array([[3.25], [3.0], [2.0], [2.5], [-1.5], [np.nan], [1e10], [-0.0], [40.9]],
                 np.float32)
    assert_bits_equal_onnxruntime(_v5_model(_member_tree(members), np.float32), x)


def test_tree_ensemble_v5_refuses_a_big_set_of_fractions() -> None:
    model = _v5_model(_member_tree([-1.0, 0.5]), np.float32)
    x = np.ones((2, 1), np.float32)
    with pytest.raises(Exception):  # noqa: B017  (ONNX Runtime: load error)
        onnxruntime_run(model, {"x": x})
    with pytest.raises(LowpError, match="TreeEnsemble: membership node 0 .* not int32"):
        Session(model, backend="reference").run({"x": x})
