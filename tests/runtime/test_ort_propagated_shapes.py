"""The tensors around a propagated QDQ pair are new to ONNX Runtime (InsertQDQPairs: the
producer's output becomes `{name}_pre_q`), so their shapes are what its inference computes,
never a shape the file declares for the old name (docs/operators.md (O99)).

Found on a QDQ transformer encoder whose projection runs as a 2-D Gemm and is reshaped back
through Shape -> Concat: the file declared the Reshape's output [1, seq, 192], which made
lowp fuse the residual Add and LayerNormalization into SkipLayerNormalization, while ONNX
Runtime, seeing only its own inferred shape after the DequantizeLinear moved past the
Reshape, kept the LayerNormalization (7 of 128 outputs apart on one sample of the model,
most LayerNorm values one float32 step apart)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, ort_qdq_propagation

from .ort_agreement import onnxruntime_run

HIDDEN = 32


def _residual_layer_norm(*, quantized: bool, declared: bool, constant_shape: bool,
                         skip_reader: bool = False) -> onnx.ModelProto:
    """x [1, seq, H] + Reshape(z [n, H]) -> LayerNormalization, the Reshape's input through a
    QuantizeLinear -> DequantizeLinear pair (`quantized`), its target either a constant or
    Shape(x) ++ [H] (`constant_shape`), its output's shape declared in value_info or not.
    `skip_reader`: the Reshape's output is also read by a QuantizeLinear, which the
    propagation passes by."""
    inits = [numpy_helper.from_array(np.linspace(0.5, 1.5, HIDDEN, dtype=np.float32), "g"),
             numpy_helper.from_array(np.linspace(-0.2, 0.2, HIDDEN, dtype=np.float32), "b"),
             numpy_helper.from_array(np.array([HIDDEN], np.int64), "h"),
             numpy_helper.from_array(np.array([1, -1, HIDDEN], np.int64), "target"),
             numpy_helper.from_array(np.float32(0.05), "s"),
             numpy_helper.from_array(np.uint8(128), "zp")]
    nodes = []
    data = "z"
    if quantized:
        nodes += [helper.make_node("QuantizeLinear", ["z", "s", "zp"], ["zq"]),
                  helper.make_node("DequantizeLinear", ["zq", "s", "zp"], ["zd"])]
        data = "zd"
    if constant_shape:
        shape = "target"
    else:
        nodes += [helper.make_node("Shape", ["x"], ["sx"], start=0, end=2),
                  helper.make_node("Concat", ["sx", "h"], ["shape"], axis=0)]
        shape = "shape"
    nodes += [helper.make_node("Reshape", [data, shape], ["r"]),
              helper.make_node("Add", ["x", "r"], ["sum"]),
              helper.make_node("LayerNormalization", ["sum", "g", "b"], ["y"], axis=-1,
                               epsilon=1e-5)]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "seq", HIDDEN])]
    if skip_reader:
        nodes.append(helper.make_node("QuantizeLinear", ["r", "s", "zp"], ["rq"]))
        outputs.append(helper.make_tensor_value_info("rq", TensorProto.UINT8,
                                                     [1, "seq", HIDDEN]))
    value_info = [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, "seq", HIDDEN])
                  ] if declared else []
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "seq", HIDDEN]),
                     helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", HIDDEN])],
        outputs, inits, value_info=value_info)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_the_producer_output_is_renamed_as_onnxruntime_renames_it():
    model = ort_qdq_propagation.apply(_residual_layer_norm(quantized=True, declared=True,
                                                           constant_shape=False))
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    assert reshape.output[0].startswith("r_pre_q")
    readers = [n for n in model.graph.node if reshape.output[0] in n.input]
    assert [n.op_type for n in readers] == ["QuantizeLinear"]


def test_another_reader_follows_the_renamed_output():
    model = ort_qdq_propagation.apply(_residual_layer_norm(
        quantized=True, declared=True, constant_shape=False, skip_reader=True))
    produced = {o for n in model.graph.node for o in n.output}
    inputs = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    assert all(i in produced or i in inputs for n in model.graph.node for i in n.input if i)


@pytest.mark.parametrize("skip_reader", [False, True])
@pytest.mark.parametrize("constant_shape", [False, True])
@pytest.mark.parametrize("declared", [False, True])
@pytest.mark.parametrize("quantized", [False, True])
def test_residual_layer_norm_equals_onnxruntime(quantized, declared, constant_shape,
                                                skip_reader):
    model = _residual_layer_norm(quantized=quantized, declared=declared,
                                 constant_shape=constant_shape, skip_reader=skip_reader)
    rng = np.random.default_rng(7)
    session = Session(model, threads=1)
    for seq in (5, 37):
        feeds = {"x": (rng.standard_normal((1, seq, HIDDEN)) * 3).astype(np.float32),
                 "z": (rng.standard_normal((seq, HIDDEN)) * 4).astype(np.float32)}
        want = onnxruntime_run(model, feeds)
        got = session.run(feeds)
        for out, value in zip(model.graph.output, want, strict=True):
            np.testing.assert_array_equal(got[out.name], value)


@settings(max_examples=15, deadline=None)
@given(seq=st.integers(1, 40), scale=st.floats(0.01, 30), seed=st.integers(0, 2**31 - 1))
def test_drawn_values_equal_onnxruntime(seq, scale, seed):
    model = _residual_layer_norm(quantized=True, declared=True, constant_shape=False)
    rng = np.random.default_rng(seed)
    feeds = {"x": (rng.standard_normal((1, seq, HIDDEN)) * scale).astype(np.float32),
             "z": (rng.standard_normal((seq, HIDDEN)) * 4).astype(np.float32)}
    want = onnxruntime_run(model, feeds)
    got = Session(model, threads=1).run(feeds)
    np.testing.assert_array_equal(got["y"], want[0])


def _shared_reshape(quantized_reader: bool) -> onnx.ModelProto:
    """a -> Q/DQ -> Reshape -> r, read by Add(r, DQ(Q(b))) -> Q/DQ -> y and by a
    QuantizeLinear (`quantized_reader`) or a Mul."""
    inits = [numpy_helper.from_array(np.float32(0.05), "s"),
             numpy_helper.from_array(np.uint8(128), "zp"),
             numpy_helper.from_array(np.float32(0.07), "s2"),
             numpy_helper.from_array(np.uint8(121), "zp2"),
             numpy_helper.from_array(np.float32(0.09), "s3"),
             numpy_helper.from_array(np.uint8(130), "zp3"),
             numpy_helper.from_array(np.array([1, 4, 8], np.int64), "target")]
    nodes = [helper.make_node("QuantizeLinear", ["a", "s", "zp"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "s", "zp"], ["ad"]),
             helper.make_node("Reshape", ["ad", "target"], ["r"]),
             helper.make_node("QuantizeLinear", ["b", "s2", "zp2"], ["bq"]),
             helper.make_node("DequantizeLinear", ["bq", "s2", "zp2"], ["bd"]),
             helper.make_node("Add", ["r", "bd"], ["sum"]),
             helper.make_node("QuantizeLinear", ["sum", "s3", "zp3"], ["sq"]),
             helper.make_node("DequantizeLinear", ["sq", "s3", "zp3"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])]
    if quantized_reader:
        nodes.append(helper.make_node("QuantizeLinear", ["r", "s", "zp"], ["rq"]))
        outputs.append(helper.make_tensor_value_info("rq", TensorProto.UINT8, [1, 4, 8]))
    else:
        nodes.append(helper.make_node("Mul", ["r", "r"], ["rr"]))
        outputs.append(helper.make_tensor_value_info("rr", TensorProto.FLOAT, [1, 4, 8]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 8]),
                     helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4, 8])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_a_quantize_among_the_readers_stops_the_propagation():
    # ONNX Runtime 1.32 inserts no pair after the Reshape when one of its readers is a
    # QuantizeLinear; with other readers only it inserts a DequantizeLinear for each edge
    # (the Add's and the Mul's two: three more than the file's three)
    model = _shared_reshape(quantized_reader=True)
    assert ort_qdq_propagation.apply(model) is model
    ops = [n.op_type for n in ort_qdq_propagation.apply(_shared_reshape(False)).graph.node]
    assert ops.count("DequantizeLinear") == 3 + 3


@settings(max_examples=20, deadline=None)
@given(quantized_reader=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_shared_reshape_equals_onnxruntime(quantized_reader, seed):
    model = _shared_reshape(quantized_reader)
    rng = np.random.default_rng(seed)
    feeds = {"a": (rng.standard_normal((4, 8)) * 4).astype(np.float32),
             "b": (rng.standard_normal((1, 4, 8)) * 5).astype(np.float32)}
    want = onnxruntime_run(model, feeds)
    got = Session(model, threads=1).run(feeds)
    for out, value in zip(model.graph.output, want, strict=True):
        np.testing.assert_array_equal(got[out.name], value)
