"""A QDQ Conv / Gemm whose int32 bias is dequantized at another scale than s_x * s_w (a
bias shared by layers whose inputs have different scales, as ONNX Runtime's quantizer writes
for a torch export that deduplicated equal biases into Identity nodes): ONNX Runtime's
QLinearConv takes the integers as they are when the scales are close (docs/operators.md
(O88)); its QGemm always does (evals/corpus/repro/README.md item 60)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session

from .ort_agreement import assert_engines_agree, onnxruntime_optimized_ops, onnxruntime_run

SX, SW, SY = np.float32(0.0155), np.float32(0.0015), np.float32(0.01)


def _conv_model(bias_scale: np.ndarray, bias_zero_point: int, w_scale: np.ndarray,
                bias: np.ndarray, seed: int = 0, *, identity: bool = False,
                hw: int = 6, sx: np.float32 = SX) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    k = bias.size
    inits = {"xs": sx, "xz": np.uint8(0), "wq": rng.integers(-127, 128, (k, 128, 1, 1), np.int8),
             "ws": w_scale.astype(np.float32), "wz": np.zeros(w_scale.size, np.int8),
             "bq": bias.astype(np.int32), "bs": bias_scale.astype(np.float32),
             "bz": np.full(bias_scale.size, bias_zero_point, np.int32),
             "ys": SY, "yz": np.uint8(128)}
    nodes = [helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["x"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"], axis=0)]
    if identity:        # the torch exporter's shared bias, as in craft_refiner
        nodes.append(helper.make_node("Identity", ["b"], ["b_shared"]))
    nodes += [helper.make_node("Conv", ["x", "w", "b_shared" if identity else "b"], ["pre"]),
              helper.make_node("QuantizeLinear", ["pre", "ys", "yz"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("xq", TensorProto.UINT8, [1, 128, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, k, hw, hw])],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _feeds(seed: int = 1, hw: int = 6) -> dict[str, np.ndarray]:
    return {"xq": np.random.default_rng(seed).integers(0, 256, (1, 128, hw, hw), np.uint8)}


def _onnxruntime_fuses(model: onnx.ModelProto) -> bool:
    """Whether ONNX Runtime's optimized graph runs the group as a QLinearConv."""
    return "QLinearConv" in onnxruntime_optimized_ops(model)


# bias scale / (s_x * s_w): inside ONNX Runtime's tolerance (1e-6 + 1% of s_x * s_w, here
# 5.3%), just outside it, and far off
RATIOS = (1.0, 1.004, 0.995, 1.05, 0.948, 1.06, 0.94, 1.37, 0.5)


@pytest.mark.parametrize("identity", [False, True])
@pytest.mark.parametrize("ratio", RATIOS)
def test_conv_bias_at_another_scale_equals_onnxruntime(ratio: float, identity: bool) -> None:
    bias = np.array([20000], np.int32)
    model = _conv_model(np.array([SX * SW * ratio]), 0, np.array([SW]), bias,
                        identity=identity)
    assert_engines_agree(model, _feeds())


@pytest.mark.parametrize("ratio", [1.0, 1.06, 0.94, 1.3, 0.7])
def test_conv_bias_beyond_tolerance_runs_unfused_as_in_onnxruntime(ratio: float) -> None:
    """Outside the tolerance ONNX Runtime's selector leaves the group unfused: the float
    Conv's sums (MLAS order) round where lowp's integer product, with the bias brought to
    s_x * s_w, did not (craft_refiner: 0.33% of a layer's outputs one unit apart)."""
    bias = np.random.default_rng(1).integers(-30000, 30000, 4).astype(np.int32)
    model = _conv_model(np.full(4, SX * SW * ratio), 0, np.full(4, SW), bias, 1, hw=24)
    assert _onnxruntime_fuses(model) is (ratio == 1.0)
    assert_engines_agree(model, _feeds(1, hw=24))


@pytest.mark.parametrize("ratio", [1.0, 1.02, 1.3])
def test_conv_bias_with_a_zero_point_is_not_taken_as_it_is(ratio: float) -> None:
    model = _conv_model(np.array([SX * SW * ratio]), 7, np.array([SW]),
                        np.array([20000], np.int32))
    assert not _onnxruntime_fuses(model)
    assert_engines_agree(model, _feeds())


def test_per_channel_bias_takes_every_channel_within_tolerance() -> None:
    w_scale = np.array([0.0015, 0.003, 0.0007], np.float32)
    want = (SX * w_scale).astype(np.float32)
    bias = np.array([20000, -15000, 30000], np.int32)
    for ratios, fused in (((1.03, 0.98, 1.0), True), ((1.03, 1.2, 1.0), False)):
        model = _conv_model(want * np.array(ratios), 0, w_scale, bias)
        assert _onnxruntime_fuses(model) is fused
        assert_engines_agree(model, _feeds())


@settings(max_examples=40, deadline=None)
@given(sx=st.floats(1e-2, 1.0), sw=st.floats(1e-3, 1e-1),
       edge=st.sampled_from([0.5, 0.999, 0.99999, 1.00001, 1.001, 2.0]),
       sign=st.sampled_from([1, -1]), seed=st.integers(0, 2**16))
def test_bias_scale_tolerance_is_onnxruntimes(sx: float, sw: float, edge: float, sign: int,
                                              seed: int) -> None:
    """lowp takes the integers as they are exactly where ONNX Runtime's selector fuses."""
    x_scale = np.float32(sx)
    want = np.float32(x_scale * np.float32(sw))
    scale = np.float32(float(want) + sign * edge * (1e-6 + 1e-2 * float(want)))
    bias = np.random.default_rng(seed).integers(-2**20, 2**20, 1).astype(np.int32)
    model = _conv_model(np.array([scale]), 0, np.array([sw]), bias, seed, sx=x_scale)
    ours = Session(model).run(_feeds(seed))["y"]
    theirs = onnxruntime_run(model, _feeds(seed))[0]
    np.testing.assert_array_equal(ours, theirs)
    assert _onnxruntime_fuses(model) is (edge < 1)


def _gemm_model(ratio: float, zero_point: int) -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    inits = {"xs": SX, "xz": np.uint8(0), "wq": rng.integers(-127, 128, (16, 5), np.int8),
             "ws": SW, "wz": np.int8(0), "bq": rng.integers(-3000, 3000, 5).astype(np.int32),
             "bs": np.float32(SX * SW * ratio), "bz": np.int32(zero_point),
             "ys": SY, "yz": np.uint8(128)}
    nodes = [helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["x"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"]),
             helper.make_node("Gemm", ["x", "w", "b"], ["pre"]),
             helper.make_node("QuantizeLinear", ["pre", "ys", "yz"], ["y"])]
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("xq", TensorProto.UINT8, [64, 16])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [64, 5])],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(("ratio", "zero_point"), [(1.05, 0), (1.5, 0), (3.0, 0), (1.0, 7)])
def test_gemm_bias_at_another_scale_keeps_its_value(ratio: float, zero_point: int) -> None:
    """ONNX Runtime's QGemm adds the int32 bias as if it were at s_x * s_w with zero point 0,
    whatever its DequantizeLinear says (item 60): lowp adds the bias's value, brought to
    s_x * s_w, as the graph means. When this fails on ONNX Runtime's side, it has started
    to check the bias scale: see whether its rule is (O88)'s."""
    model = _gemm_model(ratio, zero_point)
    xq = np.random.default_rng(4).integers(0, 256, (64, 16), np.uint8)
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    acc = xq.astype(np.int64) @ init["wq"].astype(np.int64)
    want = np.float32(SX * SW)

    def out(bias: np.ndarray) -> np.ndarray:
        return np.clip(np.rint((acc + bias) * want / SY) + 128, 0, 255).astype(np.uint8)

    value = (init["bq"].astype(np.int64) - zero_point) * init["bs"]
    as_meant = out(np.rint(value.astype(np.float32) / want))
    as_is = out(init["bq"].astype(np.int64))
    for backend in ("reference", "native"):
        np.testing.assert_array_equal(Session(model, backend=backend).run({"xq": xq})["y"],
                                      as_meant, err_msg=backend)
    np.testing.assert_array_equal(onnxruntime_run(model, {"xq": xq})[0], as_is)
    assert not np.array_equal(as_meant, as_is)
