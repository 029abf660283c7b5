"""lowp.runtime.ort_weight_bias: a float Conv / Gemm between a DequantizeLinear and a
QuantizeLinear runs in integers, its weights and bias quantized as ONNX Runtime quantizes
them at load, so both engines give the same integers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime.ort_weight_bias import apply, quantized_bias, weight_parameters

from .ort_agreement import assert_engines_agree


def _qdq_model(body: list[onnx.NodeProto], inits: dict[str, np.ndarray], x_shape: list[int],
               y_shape: list[int]) -> onnx.ModelProto:
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]), *body,
             helper.make_node("QuantizeLinear", ["pre", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    inits = {"xs": np.float32(0.02), "xz": np.uint8(128), "ys": np.float32(0.05),
             "yz": np.uint8(100), **inits}
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", 1, x_shape)],
                              [helper.make_tensor_value_info("y", 1, y_shape)],
                              [numpy_helper.from_array(np.asarray(v), k)
                               for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _agree(model: onnx.ModelProto, x: np.ndarray) -> None:
    assert_engines_agree(model, {"x": x})


RNG = np.random.default_rng(0)
W = (RNG.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32)
B = (RNG.standard_normal(16) * 0.3).astype(np.float32)


@pytest.mark.parametrize("tail", ["none", "relu", "clip_reshape_transpose"])
def test_float_conv_between_qdq_equals_onnxruntime(tail: str) -> None:
    conv_out = "pre" if tail == "none" else "conv"
    body = [helper.make_node("Conv", ["xd", "w", "b"], [conv_out], pads=[1, 1, 1, 1])]
    inits: dict[str, np.ndarray] = {"w": W, "b": B}
    y_shape = [1, 16, 7, 7]
    if tail == "relu":
        body.append(helper.make_node("Relu", ["conv"], ["pre"]))
    elif tail == "clip_reshape_transpose":
        body += [helper.make_node("Clip", ["conv", "lo", "hi"], ["act"]),
                 helper.make_node("Reshape", ["act", "shape"], ["flat"]),
                 helper.make_node("Transpose", ["flat"], ["pre"], perm=[0, 2, 1])]
        inits.update({"lo": np.float32(0), "hi": np.float32(6),
                      "shape": np.array([0, 16, -1], np.int64)})
        y_shape = [1, 49, 16]
    model = _qdq_model(body, inits, [1, 8, 7, 7], y_shape)
    rewritten = apply(model)
    assert any(n.op_type == "QuantizeLinear" and n.input[0] == "w" for n in rewritten.graph.node)
    _agree(model, (RNG.standard_normal((1, 8, 7, 7)) * 2).astype(np.float32))


def test_float_bias_of_per_channel_weights_equals_onnxruntime() -> None:
    w_scale = (np.abs(RNG.standard_normal(16)) * 0.01 + 0.002).astype(np.float32)
    w_q = np.clip(np.rint(W / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
    body = [helper.make_node("DequantizeLinear", ["wq", "wscale", "wzero"], ["wd"], axis=0),
            helper.make_node("Conv", ["xd", "wd", "b"], ["pre"], pads=[1, 1, 1, 1])]
    model = _qdq_model(body, {"wq": w_q, "wscale": w_scale, "wzero": np.zeros(16, np.int8),
                              "b": B}, [1, 8, 7, 7], [1, 16, 7, 7])
    _agree(model, (RNG.standard_normal((1, 8, 7, 7)) * 2).astype(np.float32))


def test_gemm_and_untouched_nodes() -> None:
    wg = (RNG.standard_normal((10, 24)) * 0.2).astype(np.float32)
    body = [helper.make_node("Gemm", ["xd", "w", "b"], ["pre"], transB=1)]
    model = _qdq_model(body, {"w": wg, "b": B[:10]}, [3, 24], [3, 10])
    _agree(model, (RNG.standard_normal((3, 24)) * 2).astype(np.float32))
    # a float Conv whose output branches is left alone, as ONNX Runtime leaves it
    branching = _qdq_model([helper.make_node("Conv", ["xd", "w", "b"], ["c"]),
                            helper.make_node("Add", ["c", "c"], ["pre"])],
                           {"w": W, "b": B}, [1, 8, 7, 7], [1, 16, 5, 5])
    assert apply(branching) is branching


def test_parameters_follow_onnxruntimes_rules() -> None:
    scale, zp = weight_parameters(np.array([-1.0, 0.5, 3.0], np.float32))
    assert scale == np.float32(np.float32(4.0) / np.float32(255))
    assert zp == np.int8(np.rint(np.float32(-128) - np.float32(-1.0) / scale))
    assert weight_parameters(np.zeros(4, np.float32)) == (np.float32(1), np.int8(-128))
    q, s = quantized_bias(np.array([0.3, -0.7], np.float32), np.float32(0.02),
                          np.float32(0.01))
    assert s.dtype == np.float32 and q.dtype == np.int32
    assert q.tolist() == np.rint(np.array([0.3, -0.7], np.float32) / s).astype(int).tolist()
    assert TensorProto.INT32 == numpy_helper.from_array(q).data_type


@pytest.mark.parametrize("weight_from", ["initializer", "constant_node"])
def test_bias_from_a_constant_node_equals_onnxruntime(weight_from: str) -> None:
    """paddle2onnx writes a Conv's bias (and PP-OCRv4's weights) as Constant nodes, which
    ONNX Runtime's constant folding has made initializers before WeightBiasQuantization:
    the float bias of ppocrv4_det's depthwise Conv groups was left in float before (one
    unit apart at exact 140.501: lowp 141, ONNX Runtime 140, on its QDQ files)."""
    w_scale = (np.abs(RNG.standard_normal(16)) * 0.01 + 0.002).astype(np.float32)
    w_q = np.clip(np.rint(W / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
    inits: dict[str, np.ndarray] = {"wscale": w_scale, "wzero": np.zeros(16, np.int8)}
    body = [helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(B, "bv"))]
    if weight_from == "initializer":
        inits["wq"] = w_q
    else:       # a float weight quantized in the graph: Constant -> QuantizeLinear
        inits["wf"] = (w_q.astype(np.float32) * w_scale[:, None, None, None]).astype(
            np.float32)
        body.append(helper.make_node("QuantizeLinear", ["wf", "wscale", "wzero"], ["wq"],
                                     axis=0))
    body += [helper.make_node("DequantizeLinear", ["wq", "wscale", "wzero"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd", "b"], ["pre"], pads=[1, 1, 1, 1])]
    model = _qdq_model(body, inits, [1, 8, 7, 7], [1, 16, 7, 7])
    assert any(n.op_type == "DequantizeLinear" and n.input[0].endswith("_bias_int32")
               for n in apply(model).graph.node)
    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((1, 8, 7, 7)).astype(np.float32)
        _agree(model, x * 2)


@pytest.mark.parametrize("tail", ["none", "relu"])
def test_ir3_weights_listed_as_inputs_are_constants(tail: str) -> None:
    """IR 3 lists every initializer as a graph input too, and ONNX Runtime's quantize_static
    keeps the IR version of the file it quantizes (an opset 7 model comes back at opset 11,
    IR 3). ONNX Runtime cannot feed such an initializer (IR < 4: no overridable
    initializers), so the float Conv's weights are constants and it quantizes them: lowp
    took them for fed inputs and left the Conv in float, one step apart on 3 of 15 values
    (the QDQ fuzzer, seed 20261422, repro item 302)."""
    conv_out = "pre" if tail == "none" else "conv"
    body = [helper.make_node("Conv", ["xd", "w", "b"], [conv_out], pads=[1, 1, 1, 1])]
    if tail == "relu":
        body.append(helper.make_node("Relu", ["conv"], ["pre"]))
    model = _qdq_model(body, {"w": W, "b": B}, [1, 8, 7, 7], [1, 16, 7, 7])
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", 11))
    model.ir_version = 3
    model.graph.input.extend(
        helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in model.graph.initializer)
    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((1, 8, 7, 7)).astype(np.float32)
        _agree(model, x * 2)
