"""ai.onnx.ml operators (lowp.runtime.ml_ops) against ONNX Runtime: the kernel on random
shapes and types, and a scikit-learn-style pipeline (Scaler, then an MLP) quantized by
lowp and run on both engines (the corpus's surfaces_knn_mlp refused before them); the
tree ensemble behind it (lowp.runtime.ml_trees); ZipMap's sequence of maps, returned as
ONNX Runtime returns it (the corpus's luscinia_stress refused before it); a linear
regressor, still refused by name. LinearClassifier and Normalizer: test_linear_classifier.py."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.errors import NodeError
from lowp.runtime import Session
from lowp.runtime.backends import native_available
from lowp.runtime.float_registry import FLOAT_OPS

BACKENDS = ["reference"] + (["native"] if native_available() else [])
_TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE,
          np.int32: TensorProto.INT32, np.int64: TensorProto.INT64}


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    return list(s.run(None, feeds))


def _scaler_model(dtype: type, rank: int, offset: list[float], scale: list[float]
                  ) -> onnx.ModelProto:
    node = helper.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml", offset=offset,
                            scale=scale)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", _TYPES[dtype], [None] * rank)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * rank)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                   helper.make_opsetid("ai.onnx.ml", 1)],
                             ir_version=10)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=3),
       dtype=st.sampled_from(list(_TYPES)), one=st.booleans(), seed=st.integers(0, 2**31))
def test_scaler_matches_onnxruntime(shape: list[int], dtype: type, one: bool,
                                    seed: int) -> None:
    rng = np.random.default_rng(seed)
    features = shape[0] if len(shape) == 1 else shape[1]
    k = 1 if one or features == 0 else features
    offset = [float(v) for v in rng.standard_normal(k).astype(np.float32) * 50]
    scale = [float(v) for v in rng.standard_normal(k).astype(np.float32)]
    if np.issubdtype(dtype, np.integer):
        x = rng.integers(-(2**30), 2**30, shape).astype(dtype) * 3
    else:
        x = (rng.standard_normal(shape) * 100).astype(dtype)
    want = _ort(_scaler_model(dtype, len(shape), offset, scale), {"x": x})[0]
    got = FLOAT_OPS["Scaler"](x, offset=offset, scale=scale, opset=21)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("shape", "offset", "scale", "match"), [
    ((2, 3), [1.0, 2.0], [1.0, 2.0], "feature size"),
    ((2, 3), [1.0], [1.0, 2.0], "same length"),
    ((2, 3), [], [], "same length"),
])
def test_scaler_refuses_what_onnxruntime_refuses(shape: tuple[int, ...], offset: list[float],
                                                 scale: list[float], match: str) -> None:
    x = np.ones(shape, np.float32)
    with pytest.raises(NodeError, match=match):
        FLOAT_OPS["Scaler"](x, offset=offset, scale=scale, opset=21)
    with pytest.raises(Exception):  # noqa: B017  (ONNX Runtime: load or run error)
        _ort(_scaler_model(np.float32, 2, offset, scale), {"x": x})


def _pipeline() -> onnx.ModelProto:
    """skl2onnx's MLPRegressor behind a StandardScaler, as surfaces-onnx-files ships it:
    Scaler -> Cast -> (MatMul, Add, Relu) x 2 -> MatMul, Add -> Reshape; opset 21."""
    rng = np.random.default_rng(3)
    inits, nodes = [], [
        helper.make_node("Scaler", ["input"], ["scaled"], domain="ai.onnx.ml",
                         offset=[66.8, 1.5, 5.3, 0.93], scale=[0.025, 0.89, 0.32, 1.18]),
        helper.make_node("Cast", ["scaled"], ["h0"], to=TensorProto.FLOAT)]
    widths = [4, 16, 16, 1]
    for i in range(3):
        w = rng.standard_normal((widths[i], widths[i + 1])).astype(np.float32) * 0.5
        b = rng.standard_normal(widths[i + 1]).astype(np.float32) * 0.1
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [f"h{i}", f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        if i < 2:
            nodes.append(helper.make_node("Relu", [f"a{i}"], [f"h{i + 1}"]))
    inits.append(numpy_helper.from_array(np.array([-1, 1], np.int64), "shape"))
    nodes.append(helper.make_node("Reshape", ["a2", "shape"], ["variable"]))
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                   helper.make_opsetid("ai.onnx.ml", 1)],
                             ir_version=10)


def _settings(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers([1, 0, 2, 0], [141, 4, 11, 3], (n, 4)).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scaler_pipeline_quantizes_and_matches_onnxruntime(backend: str) -> None:
    model = _pipeline()
    x = _settings(np.random.default_rng(1), 32)
    np.testing.assert_array_equal(Session(model, backend=backend).run({"input": x})["variable"],
                                  _ort(model, {"input": x})[0])
    qdq = lowp.quantize_model(model, {"input": _settings(np.random.default_rng(0), 64)})
    assert any(n.op_type == "Scaler" for n in qdq.graph.node)
    assert any(n.op_type == "QuantizeLinear" for n in qdq.graph.node)
    session = Session(qdq, backend=backend)
    for _ in range(2):      # the second run replays
        np.testing.assert_array_equal(session.run({"input": x})["variable"],
                                      _ort(qdq, {"input": x})[0])


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), features=st.integers(1, 9), one=st.booleans(),
       special=st.booleans(), seed=st.integers(0, 2**31))
def test_scaler_of_known_float_features_is_arithmetic(backend: str, rows: int, features: int,
                                                      one: bool, special: bool,
                                                      seed: int) -> None:
    """A Scaler of float32 (N, F) features whose F is known runs as Sub then Mul (chained
    and replayed natively, no Scaler step from Python on every run): ONNX Runtime's values
    bit for bit, NaN, infinities and signed zeros among them, recorded and replayed."""
    rng = np.random.default_rng(seed)
    k = 1 if one else features
    offset = [float(v) for v in rng.standard_normal(k).astype(np.float32) * 50]
    scale = [float(v) for v in rng.standard_normal(k).astype(np.float32)]
    x = (rng.standard_normal((rows, features)) * 100).astype(np.float32)
    if special:
        x.reshape(-1)[rng.integers(0, x.size, 4)] = [np.nan, np.inf, -np.inf, -0.0]
    model = _scaler_model(np.float32, 2, offset, scale)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = features
    want = _ort(model, {"x": x})[0]
    session = Session(model, backend=backend, threads=1)
    assert "Scaler" not in {s.op_type for s in session.steps}
    for _ in range(4):
        got = session.run({"x": x})["y"]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


def _tree_after_mlp() -> onnx.ModelProto:
    """The MLP pipeline with its output fed to a one-split decision tree, as skl2onnx writes
    a TreeEnsembleClassifier (the corpus's surfaces_knn_validity)."""
    model = _pipeline()
    tree = helper.make_node(
        "TreeEnsembleClassifier", ["variable"], ["label", "probabilities"], domain="ai.onnx.ml",
        classlabels_int64s=[0, 1], nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2],
        nodes_featureids=[0, 0, 0], nodes_values=[0.0, 0.0, 0.0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"], nodes_truenodeids=[1, 0, 0],
        nodes_falsenodeids=[2, 0, 0], class_treeids=[0, 0], class_nodeids=[1, 2],
        class_ids=[0, 1], class_weights=[1.0, 1.0])
    model.graph.node.append(tree)
    del model.graph.output[:]
    model.graph.output.extend([
        helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])])
    return model


@pytest.mark.parametrize("backend", BACKENDS)
def test_tree_after_mlp_quantizes_and_matches_onnxruntime(backend: str) -> None:
    """The tree (lowp.runtime.ml_trees) stays float behind the quantized MLP: labels and
    scores of the QDQ model equal ONNX Runtime's (the tree was refused before)."""
    model = _tree_after_mlp()
    x = _settings(np.random.default_rng(1), 32)
    qdq = lowp.quantize_model(model, {"input": _settings(np.random.default_rng(0), 64)})
    assert qdq.graph.node[-1].op_type == "TreeEnsembleClassifier"
    want = _ort(qdq, {"input": x})
    got = Session(qdq, backend=backend).run({"input": x})
    np.testing.assert_array_equal(got["label"], want[0])
    np.testing.assert_array_equal(got["probabilities"], want[1])


def _zipmap_model(rank: int, labels: list[int] | list[str]) -> onnx.ModelProto:
    """Relu -> ZipMap (a sequence of maps out) and Neg of the same Relu (a tensor out)."""
    strings = isinstance(labels[0], str)
    key = TensorProto.STRING if strings else TensorProto.INT64
    maps = helper.make_sequence_type_proto(helper.make_map_type_proto(
        key, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    attr = {"classlabels_strings" if strings else "classlabels_int64s": labels}
    shape = [len(labels)] if rank == 1 else [None, len(labels)]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("ZipMap", ["r"], ["scores"], domain="ai.onnx.ml", **attr),
         helper.make_node("Neg", ["r"], ["y"])], "zipmap",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_value_info("scores", maps),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("ai.onnx.ml", 1)])


def _same_maps(got: object, want: list[dict[object, float]]) -> None:
    """The same rows, keys in the same order, every score the same float32 bits."""
    assert isinstance(got, list) and len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert list(g) == list(w)
        assert np.array(list(g.values()), np.float32).tobytes() == \
            np.array(list(w.values()), np.float32).tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("rank", "labels"), [
    (2, [0, 1, 2]), (2, [7, -3, 5, 7]), (1, [5, 1, 9]), (2, ["yes", "no", "maybe"])])
def test_zipmap_returns_the_maps_onnxruntime_returns(backend: str, threads: int, rank: int,
                                                      labels: list[int] | list[str]) -> None:
    """(O226) ZipMap's output, a graph output of rows of label -> score, was refused ("a
    sequence; lowp's engine returns tensors only"); now one dict a row (a 1-D input one
    row), keys ascending, a repeated label keeping its last score, every score ONNX
    Runtime's float32 (NaN and -0 among them), on the first and the replayed runs."""
    rng = np.random.default_rng(len(labels) + rank)
    x = rng.standard_normal((5, len(labels)) if rank == 2 else len(labels)).astype(np.float32)
    x.reshape(-1)[:3] = [np.nan, 0.0, np.inf]
    model = _zipmap_model(rank, labels)
    want = _ort(model, {"x": x})
    session = Session(model, backend=backend, threads=threads)
    for _ in range(3):
        got = session.run({"x": x})
        _same_maps(got["scores"], want[0])
        np.testing.assert_array_equal(got["y"], want[1])


@pytest.mark.skipif(not native_available(), reason="needs the native extension")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("rank", "labels"), [
    (2, [0, 1, 2]), (2, [7, -3, 5, 7]), (1, [5, 1, 9]), (2, ["yes", "no", "maybe"])])
def test_zipmap_scores_replay_in_the_native_program(threads: int, rank: int,
                                                    labels: list[int] | list[str]) -> None:
    """A ZipMap whose output is a graph output gives its scores in the keys' order by a
    native call (`zipmap_scores`), and the Session makes the maps after the run
    (`zipmap_dicts`): from the third run the run is native Programs only (its ZipMap ran
    from Python on every run before), and every run, on new scores each time (NaN, -0,
    infinities among them), gives ONNX Runtime's maps, as a run without replay does."""
    model = _zipmap_model(rank, labels)
    fast = Session(model, threads=threads)
    plain = Session(model, threads=threads, replay=False)
    rng = np.random.default_rng(rank)
    shape = (5, len(labels)) if rank == 2 else (len(labels),)
    for run in range(5):
        x = rng.standard_normal(shape).astype(np.float32)
        x.reshape(-1)[[(run + k) % x.size for k in range(3)]] = [np.nan, -0.0, -np.inf]
        want = _ort(model, {"x": x})
        got = fast.run({"x": x})
        _same_maps(got["scores"], want[0])
        _same_maps(plain.run({"x": x})["scores"], want[0])
        np.testing.assert_array_equal(got["y"], want[1])
    assert fast._replayer is not None and fast._replayer.native_only(
        (("x", x.shape, x.dtype.str),)), "the replayed run is not native Programs only"


def test_zipmap_refuses_a_row_of_another_length_naming_the_node() -> None:
    model = _zipmap_model(2, [0, 1, 2])
    model.graph.node[1].name = "zm"
    for v in (model.graph.input[0], model.graph.output[1]):
        v.type.tensor_type.shape.dim[1].dim_param = "C"
    with pytest.raises(NodeError, match="zm.*2 scores a row and the node 3 class labels"):
        Session(model).run({"x": np.ones((2, 2), np.float32)})


@pytest.mark.parametrize("backend", BACKENDS)
def test_tree_with_zipmap_quantizes_and_matches_onnxruntime(backend: str) -> None:
    """The MLP -> tree pipeline with its probabilities zipped into maps, as skl2onnx and
    onnxmltools write classifiers by default: lowp quantizes it (the tree and ZipMap stay
    float) and both engines give the same labels and maps."""
    model = _tree_after_mlp()
    model.graph.node.append(helper.make_node("ZipMap", ["probabilities"], ["maps"],
                                             domain="ai.onnx.ml", classlabels_int64s=[0, 1]))
    model.graph.output.append(helper.make_value_info("maps", helper.make_sequence_type_proto(
        helper.make_map_type_proto(TensorProto.INT64,
                                   helper.make_tensor_type_proto(TensorProto.FLOAT, [])))))
    x = _settings(np.random.default_rng(1), 32)
    qdq = lowp.quantize_model(model, {"input": _settings(np.random.default_rng(0), 64)})
    assert qdq.graph.node[-1].op_type == "ZipMap"
    want = _ort(qdq, {"input": x})
    got = Session(qdq, backend=backend).run({"input": x})
    np.testing.assert_array_equal(got["label"], want[0])
    _same_maps(got["maps"], want[2])


def _regressor_after_mlp() -> onnx.ModelProto:
    """The MLP pipeline with its output fed to a LinearRegressor, an ai.onnx.ml operator
    lowp does not run; quantize names the unnamed node after its type."""
    model = _pipeline()
    linear = helper.make_node("LinearRegressor", ["variable"], ["score"], domain="ai.onnx.ml",
                              coefficients=[-1.0], intercepts=[0.5], targets=1)
    model.graph.node.append(linear)
    del model.graph.output[:]
    model.graph.output.extend([helper.make_tensor_value_info("score", TensorProto.FLOAT,
                                                             [None, 1])])
    return model


@pytest.mark.parametrize("mode", ["static", "auto"])
def test_an_unsupported_ml_operator_is_refused_by_quantize_naming_it(mode: str) -> None:
    """The default range method (and mode AUTO's candidates) are measured on lowp's engine,
    which refuses the linear regressor in every candidate: quantize_model raises that
    refusal (it said "no candidate could be measured" with each candidate's copy of it), and
    the detail names what lowp runs of the domain."""
    from lowp.config import Config, QuantMode
    from lowp.errors import UnsupportedOpError

    model = _regressor_after_mlp()
    x = _settings(np.random.default_rng(1), 8)
    assert _ort(model, {"input": x})[0].shape == (8, 1)
    with pytest.raises(UnsupportedOpError, match="LinearRegressor \\(node "
                       "'LinearRegressor[^']*'\\): domain 'ai.onnx.ml' is not "
                       "supported beyond LinearClassifier, Normalizer, Scaler, TreeEnsemble, "
                       "TreeEnsembleClassifier, TreeEnsembleRegressor, ZipMap$"):
        lowp.quantize_model(model, {"input": _settings(np.random.default_rng(0), 64)},
                            Config(mode=QuantMode(mode)))
