"""DequantizeLinear -> element-wise float operators -> QuantizeLinear tables whose operators
ONNX Runtime 1.32 evaluates as Eigen assignments (docs/operators.md (O169)).

ONNX Runtime keeps such a region as float operators. Elu, Selu, Celu, Softplus, Log, Sin
and Cos compute a run's full packets with Eigen's packet functions and its last length % 4
elements with the C library's, one float32 ulp apart on some inputs, so an element's
integer depends on its position. lowp's table of the region held one value per code: an
element in a run's tail could be one unit off.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from .ort_agreement import assert_sessions_equal_onnxruntime

_F = np.float32
_TYPES = {np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8}
# region operators: (op type, attributes, constant operand or None)
_POSITIONAL = [("Elu", {}, None), ("Elu", {"alpha": 0.5}, None), ("Selu", {}, None),
               ("Celu", {"alpha": 2.0}, None), ("Softplus", {}, None), ("Log", {}, None),
               ("Sin", {}, None), ("Cos", {}, None)]
_OTHERS = [("Mul", {}, 2.0), ("Mul", {}, -0.75), ("Add", {}, 0.5), ("Tanh", {}, None),
           ("Abs", {}, None), ("Neg", {}, None), ("Sigmoid", {}, None)]


def _region(chain: list[tuple[str, dict, float | None]], dtype: type, s_x: float, z_x: int,
            s_y: float | None, z_y: int) -> onnx.ModelProto:
    """x (integers, any length) -> DequantizeLinear -> chain -> QuantizeLinear -> y; with
    `s_y` None the chain's float result is y."""
    t = _TYPES[dtype]
    inits = [numpy_helper.from_array(np.array(s_x, _F), "xs"),
             numpy_helper.from_array(np.array(z_x, dtype), "xz")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["v0"])]
    for k, (op, attrs, constant) in enumerate(chain):
        inputs = [f"v{k}"]
        if constant is not None:
            inits.append(numpy_helper.from_array(np.array(constant, _F), f"c{k}"))
            inputs.append(f"c{k}")
        nodes.append(helper.make_node(op, inputs, [f"v{k + 1}"], **attrs))
    last = f"v{len(chain)}"
    out_type = TensorProto.FLOAT
    if s_y is None:
        nodes.append(helper.make_node("Identity", [last], ["y"]))
    else:
        inits += [numpy_helper.from_array(np.array(s_y, _F), "ys"),
                  numpy_helper.from_array(np.array(z_y, dtype), "yz")]
        nodes.append(helper.make_node("QuantizeLinear", [last, "ys", "yz"], ["y"]))
        out_type = t
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", t, ["n"])],
                              [helper.make_tensor_value_info("y", out_type, ["n"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(("chain", "code", "s_y", "packet", "scalar"), [
    ([("Elu", {}, None), ("Mul", {}, 2.0)], -127, 0.0039426875, -60, -61),
    ([("Softplus", {}, None), ("Mul", {}, 2.0)], -127, 0.020541854, 62, 61),
    ([("Log", {}, None)], 20, 0.061606664, -64, -63),
    ([("Log", {}, None), ("Mul", {}, 2.0)], 20, 0.12321333, -64, -63),
    ([("Sin", {}, None), ("Mul", {}, 2.0)], -95, 0.0031357743, -60, -61),
])
def test_run_tail_takes_the_c_library_regression(chain, code, s_y, packet, scalar):
    # one code everywhere, where Eigen's packet function and the C library's straddle a
    # half-way point of y: the last 7 % 4 = 3 elements are one unit from the first 4 (the
    # table gave all seven the packets' integer)
    model = _region(chain, np.int8, 0.001, 0, s_y, 0)
    y = assert_sessions_equal_onnxruntime(model, np.full(7, code, np.int8))
    assert y.tolist() == [packet] * 4 + [scalar] * 3


def _straddling_scale(chain: list[tuple[str, dict, float | None]], dtype: type, s_x: float,
                      z_x: int, k: int) -> tuple[float, np.ndarray]:
    """An output scale at which one code's region value, by ONNX Runtime's float operators,
    rounds one way in a run's full packets and the other way in its tail, and that code (a
    random scale and no code when no code's two values differ)."""
    session = ort.InferenceSession(_region(chain, dtype, s_x, z_x, None, 0).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    codes = np.arange(256, dtype=np.uint8).view(dtype)
    packets = session.run(None, {"x": codes})[0]            # 256 % 4 == 0: all packets
    tails = np.array([session.run(None, {"x": codes[i:i + 1]})[0][0] for i in range(256)])
    differ = np.nonzero((packets != tails) & np.isfinite(packets) & np.isfinite(tails)
                        & (np.abs(packets) > 1e-3))[0]
    if len(differ) == 0:
        return float(_F(0.01 * k / 60)), codes[:0]
    i = differ[k % len(differ)]
    middle = abs((float(packets[i]) + float(tails[i])) / 2)
    return float(_F(middle / (k + 0.5))), codes[i:i + 1]


@settings(max_examples=25, deadline=None)
@given(first=st.sampled_from(_POSITIONAL),
       rest=st.lists(st.sampled_from(_POSITIONAL + _OTHERS), min_size=1, max_size=3),
       dtype=st.sampled_from(list(_TYPES)), n=st.integers(1, 4500),
       k=st.integers(20, 60), seed=st.integers(0, 2**31 - 1))
def test_random_regions_equal_onnxruntime(first, rest, dtype, n, k, seed):
    """Two to four operators, at least one of them an Eigen assignment; any length (runs
    with and without a tail; at 2 threads Elu's, Softplus's and Log's blocks from a few
    thousand elements), the output scale put where a code's packet and tail values round
    apart, that code at half the positions."""
    rng = np.random.default_rng(seed)
    chain = [first, *rest]
    s_x = float(_F(rng.uniform(0.005, 0.05)))
    z_x = 0 if dtype == np.int8 else 128
    s_y, critical = _straddling_scale(chain, dtype, s_x, z_x, k)
    x = rng.integers(0, 256, n).astype(np.uint8).view(dtype)
    if len(critical):
        x[rng.random(n) < 0.5] = critical[0]
    z_y = 0 if dtype == np.int8 else 128
    assert_sessions_equal_onnxruntime(_region(chain, dtype, s_x, z_x, s_y, z_y), x)


def _between_convolutions(chain: list[tuple[str, dict, object]], s_y: float, channels: int,
                          size: tuple[int, int]) -> onnx.ModelProto:
    """x -> uint8 Q/DQ -> 1x1 identity Conv -> Q/DQ -> chain -> Q/DQ -> 1x1 identity Conv ->
    Q/DQ -> y: ONNX Runtime makes both convolutions QLinearConvs, channels-last, and its
    transpose optimizer cancels the Transposes between them through the chain, which then
    runs on channels-last data."""
    eye = np.eye(channels, dtype=np.int8).reshape(channels, channels, 1, 1)
    inits = [numpy_helper.from_array(np.array(0.001, _F), "xs"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz"),
             numpy_helper.from_array(eye, "w"), numpy_helper.from_array(np.array(1.0, _F), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(s_y, _F), "ys"),
             numpy_helper.from_array(np.array(128, np.uint8), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"]),
             helper.make_node("Conv", ["xf", "wf"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "xs", "xz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "xs", "xz"], ["v0"])]
    for k, (op, attrs, constant) in enumerate(chain):
        inputs = [f"v{k}"]
        if constant is not None:
            inits.append(numpy_helper.from_array(np.asarray(constant, _F), f"c{k}"))
            inputs.append(f"c{k}")
        nodes.append(helper.make_node(op, inputs, [f"v{k + 1}"], **attrs))
    nodes += [helper.make_node("QuantizeLinear", [f"v{len(chain)}", "ys", "yz"], ["mq"]),
              helper.make_node("DequantizeLinear", ["mq", "ys", "yz"], ["mf"]),
              helper.make_node("Conv", ["mf", "wf"], ["d"]),     # (not c{k}: a constant)
              helper.make_node("QuantizeLinear", ["d", "ys", "yz"], ["dq"]),
              helper.make_node("DequantizeLinear", ["dq", "ys", "yz"], ["y"])]
    shape = [1, channels, *size]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(("chain", "s_y"), [
    ([("Elu", {}, None)], 0.0011867294),                            # (O132)'s table
    ([("Elu", {}, None), ("Mul", {}, 2.0)], 0.0023734588),          # one table
    ([("Elu", {}, None), ("Mul", {}, np.full((6, 1, 1), 2.0))], 0.0023734588),  # per channel
])
def test_run_tail_between_convolutions_is_channels_last_regression(chain, s_y):
    # code 1 (x = -0.127) everywhere, Elu's packet and C-library values straddling a
    # half-way point of y: ONNX Runtime's tail is the last 6 * 5 * 7 % 4 = 2 elements of the
    # channels-last tensor (the last pixel's channels 4 and 5), not of the channels-first
    # one (channel 5's last two pixels), as lowp put it
    channels, size = 6, (5, 7)
    x = np.full((1, channels, *size), _F(-0.127), _F)
    y = assert_sessions_equal_onnxruntime(_between_convolutions(chain, s_y, channels, size), x)
    codes = np.rint(y / _F(s_y)).reshape(channels, -1)
    tails = np.argwhere(codes != codes[0, 0]).tolist()
    assert tails == [[4, 34], [5, 34]]


@settings(max_examples=15, deadline=None)
@given(first=st.sampled_from(_POSITIONAL),
       rest=st.lists(st.sampled_from(_POSITIONAL + _OTHERS), min_size=0, max_size=2),
       channels=st.integers(1, 8), size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       k=st.integers(20, 60), seed=st.integers(0, 2**31 - 1))
def test_random_regions_between_convolutions_equal_onnxruntime(first, rest, channels, size, k,
                                                               seed):
    """One to three operators between two channels-last QLinearConvs (a single Elu, Selu or
    Softplus is (O132)'s table), the output scale put where a code's packet and tail values
    round apart, that code at half the positions."""
    rng = np.random.default_rng(seed)
    chain = [first, *rest]
    s_y, critical = _straddling_scale(chain, np.uint8, 0.001, 128, k)
    codes = rng.integers(0, 256, (1, channels, *size))
    if len(critical):
        codes[rng.random(codes.shape) < 0.5] = int(critical[0])
    x = ((codes - 128) * _F(0.001)).astype(_F)
    assert_sessions_equal_onnxruntime(_between_convolutions(chain, s_y, channels, size), x)
