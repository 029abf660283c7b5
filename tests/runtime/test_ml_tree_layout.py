"""Tree ensembles of industrial size (repro item 198, luscinia_stress: ten thousand trees,
4.8 million nodes): the attribute lists reach the operator as numpy arrays, the forest is
parsed once per node by array operations (any tree and node numbering, weights in any
order), a LightGBM-shaped classifier (OnnxMLTools: 11 classes, tree t scoring class t mod
11, SOFTMAX, 132 features) gives ONNX Runtime's bits on both backends at 1 and 2 threads,
and quantizing a model with nothing to quantize returns it without calibrating ((O230),
(O231))."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import lowp
from lowp import pipeline
from lowp.runtime import ml_trees
from lowp.runtime.float_registry import FLOAT_OPS, node_attributes
from tests.runtime.test_ml_trees import (
    _inputs,
    assert_bits_equal_onnxruntime,
    random_forest,
    tree_model,
)

_CLASSES = 11


def lightgbm_forest(rng: np.random.Generator, *, rounds: int, depth: int,
                    features: int) -> dict[str, Any]:
    """OnnxMLTools' LightGBM multi-class layout: `rounds` rounds of one tree a class, tree
    t's leaves scoring class t mod 11 only; every branch BRANCH_LEQ, some tracking NaN."""
    a = random_forest(rng, trees=rounds * _CLASSES, depth=depth, features=features, targets=1,
                      prefix="class", modes=["BRANCH_LEQ"], missing=True)
    a["class_ids"] = [t % _CLASSES for t in a["class_treeids"]]
    a.update(classlabels_int64s=list(range(_CLASSES)), post_transform="SOFTMAX")
    return a


def test_tree_attributes_reach_the_operator_as_arrays() -> None:
    """(O230) The node and weight lists come from the protobuf as int64, float32 and bytes
    arrays (not a Python object an entry), with a per-node cache; other attributes as
    before."""
    attrs = lightgbm_forest(np.random.default_rng(0), rounds=2, depth=3, features=5)
    node = tree_model("TreeEnsembleClassifier", attrs).graph.node[0]
    got = node_attributes(node)
    for name, dtype in (("nodes_treeids", np.int64), ("nodes_nodeids", np.int64),
                        ("nodes_featureids", np.int64), ("nodes_truenodeids", np.int64),
                        ("nodes_falsenodeids", np.int64), ("nodes_values", np.float32),
                        ("nodes_missing_value_tracks_true", np.int64),
                        ("class_treeids", np.int64), ("class_nodeids", np.int64),
                        ("class_ids", np.int64), ("class_weights", np.float32)):
        value = got[name]
        assert isinstance(value, np.ndarray) and value.dtype == dtype, name
        np.testing.assert_array_equal(value, np.asarray(attrs[name], dtype))
    modes = got["nodes_modes"]
    assert isinstance(modes, np.ndarray) and modes.dtype.kind == "S"
    assert modes.tolist() == [m.encode() for m in attrs["nodes_modes"]]
    assert got["classlabels_int64s"] == list(range(_CLASSES))
    assert got["post_transform"] == "SOFTMAX"
    assert got["node_cache"] == {}


def test_the_forest_is_parsed_once_per_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """(O230) Runs with the node's cache reuse its Forest (no hashing of the attributes);
    the Forest is arrays, one entry a node."""
    attrs = lightgbm_forest(np.random.default_rng(1), rounds=2, depth=3, features=5)
    node_attrs = node_attributes(tree_model("TreeEnsembleClassifier", attrs).graph.node[0])
    built = []
    real = ml_trees.build_forest

    def counted(*args: Any, **kwargs: Any) -> ml_trees.Forest:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(ml_trees, "build_forest", counted)
    x = _inputs(np.random.default_rng(2), 4, 5, np.float32, special=False)
    first = FLOAT_OPS["TreeEnsembleClassifier"](x, **node_attrs)
    second = FLOAT_OPS["TreeEnsembleClassifier"](x, **node_attrs)
    assert len(built) == 1
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    forest = built[0]
    n = len(attrs["nodes_treeids"])
    for name in ("feature", "threshold", "mode", "missing_true", "true_child", "false_child",
                 "go_mask"):
        assert getattr(forest, name).shape == (n,), name
    assert forest.weight_value.shape == (n, 1)


@pytest.mark.parametrize("rows", [1, 4, 64])
def test_a_lightgbm_shaped_classifier_matches_onnxruntime(rows: int) -> None:
    """luscinia_stress's shape at a small scale: 99 trees (more than ONNX Runtime's 80 for
    one row), 11 classes, 132 features, NaN inputs; 1, 4 and 64 rows (past its 50 at two
    threads), both backends, 1 and 2 threads."""
    rng = np.random.default_rng(rows)
    attrs = lightgbm_forest(rng, rounds=9, depth=6, features=132)
    x = _inputs(rng, rows, 132, np.float32, special=True)
    assert_bits_equal_onnxruntime(tree_model("TreeEnsembleClassifier", attrs), x)


def _renumbered(attrs: dict[str, Any], rng: np.random.Generator, spread: int
                ) -> dict[str, Any]:
    """`attrs` with tree ids spread `spread` apart and unordered, node ids permuted (ONNX
    Runtime wants them below the node count), the non-root nodes of each tree in shuffled
    positions and the weights in shuffled order: the same trees to ONNX Runtime (the first
    node of each run of a tree id is its root)."""
    out = dict(attrs)
    tree = np.asarray(attrs["nodes_treeids"])
    trees = np.unique(tree)
    tree_id = dict(zip(trees.tolist(), (rng.permutation(trees.size) * spread + 7).tolist(),
                       strict=True))
    node_ids = np.asarray(attrs["nodes_nodeids"])
    node_id = dict(enumerate(rng.permutation(node_ids.max() + 1).tolist()))
    order: list[int] = []
    for t in trees:
        at = np.flatnonzero(tree == t)
        order += [int(at[0]), *rng.permutation(at[1:]).tolist()]
    for name in ("nodes_featureids", "nodes_values", "nodes_modes",
                 "nodes_missing_value_tracks_true"):
        out[name] = [attrs[name][k] for k in order]
    out["nodes_treeids"] = [tree_id[int(tree[k])] for k in order]
    for name in ("nodes_nodeids", "nodes_truenodeids", "nodes_falsenodeids"):
        out[name] = [node_id[int(attrs[name][k])] for k in order]
    w = rng.permutation(len(attrs["class_treeids"]))
    out["class_treeids"] = [tree_id[int(attrs["class_treeids"][j])] for j in w]
    out["class_nodeids"] = [node_id[int(attrs["class_nodeids"][j])] for j in w]
    for name in ("class_ids", "class_weights"):
        out[name] = [attrs[name][j] for j in w]
    return out


@settings(max_examples=15, deadline=None)
@given(rounds=st.integers(1, 3), depth=st.integers(0, 4), weights=st.integers(1, 3),
       spread=st.sampled_from([1, 3, 1000]), rows=st.sampled_from([1, 5]),
       seed=st.integers(0, 2**31))
def test_any_numbering_of_trees_and_weights_matches_onnxruntime(
        rounds: int, depth: int, weights: int, spread: int, rows: int, seed: int) -> None:
    """(O230) The array-built index of (tree id, node id): ids apart and unordered,
    nodes out of depth-first order, several weights a leaf in shuffled order (summed in
    ONNX Runtime's sorted order), as ONNX Runtime reads them."""
    rng = np.random.default_rng(seed)
    attrs = random_forest(rng, trees=rounds * 3, depth=depth, features=4, targets=3,
                          prefix="class", modes=["BRANCH_LEQ", "BRANCH_LT", "BRANCH_EQ"],
                          weights_per_leaf=weights, missing=True)
    attrs = _renumbered(attrs, rng, spread)
    attrs["classlabels_int64s"] = [4, 5, 6]
    x = _inputs(rng, rows, 4, np.float32, special=True)
    assert_bits_equal_onnxruntime(tree_model("TreeEnsembleClassifier", attrs), x)


def _zipped_classifier() -> Any:
    """A LightGBM-shaped classifier ending, as OnnxMLTools writes it, in Identity, Cast and
    ZipMap."""
    model = tree_model("TreeEnsembleClassifier",
                       lightgbm_forest(np.random.default_rng(3), rounds=2, depth=3,
                                       features=6))
    g = model.graph
    g.node.extend([
        helper.make_node("Identity", ["label"], ["label_id"]),
        helper.make_node("Cast", ["probabilities"], ["probs"], to=TensorProto.FLOAT),
        helper.make_node("ZipMap", ["probs"], ["maps"], domain="ai.onnx.ml",
                         classlabels_int64s=list(range(_CLASSES)))])
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("label_id", TensorProto.INT64, None),
                     helper.make_value_info("maps", helper.make_sequence_type_proto(
                         helper.make_map_type_proto(TensorProto.INT64,
                                                    helper.make_tensor_type_proto(
                                                        TensorProto.FLOAT, []))))])
    return model


def test_a_model_with_nothing_to_quantize_comes_back_without_calibration(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """(O231) Tree ensemble, Identity, Cast and ZipMap: no node lowp quantizes, so
    quantize_model warns and returns the float model without running the calibration (or
    the range-method measurements, which ran the model many times: item 198)."""
    def never(*_: Any, **__: Any) -> None:
        raise AssertionError("calibrated a model with nothing to quantize")

    monkeypatch.setattr(pipeline, "calibrate", never)
    monkeypatch.setattr(pipeline, "_measured", never)
    model = _zipped_classifier()
    feeds = {"x": _inputs(np.random.default_rng(4), 8, 6, np.float32, special=False)}
    for mode in (lowp.QuantMode.STATIC, lowp.QuantMode.AUTO, lowp.QuantMode.DYNAMIC):
        with pytest.warns(pipeline.NothingToQuantizeWarning, match="TreeEnsembleClassifier"):
            q = lowp.quantize_model(model, feeds, lowp.Config(mode=mode))
        assert [n.op_type for n in q.graph.node] == [n.op_type for n in model.graph.node]
        want = lowp.Session(model).run(feeds)
        got = lowp.Session(q).run(feeds)
        np.testing.assert_array_equal(got["label_id"], want["label_id"])
        assert got["maps"] == want["maps"]


def test_a_model_with_a_quantizable_node_does_not_warn() -> None:
    """(O231) A MatMul before the trees is quantized as before, without the warning."""
    from tests.runtime.test_ml_ops import _settings, _tree_after_mlp

    with warnings.catch_warnings():
        warnings.simplefilter("error", pipeline.NothingToQuantizeWarning)
        q = lowp.quantize_model(_tree_after_mlp(),
                                {"input": _settings(np.random.default_rng(0), 32)})
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)
