"""QDQ Elu, Selu, Softplus, Softsign and Exp groups as ONNX Runtime 1.32 runs them
(docs/operators.md (O132)).

ONNX Runtime has no integer kernel for these activations: it keeps DequantizeLinear ->
float op -> QuantizeLinear. Its float Exp is MLAS's; the others are Eigen functors, packet
exp / log1p on each run's full packets and the C library's on its last length % 4
elements. lowp runs such a group as a lookup table; the table held numpy's exp and
logaddexp, one float32 ulp apart often enough that a 16-bit QuantizeLinear landed one unit
off (madmom_key_cnn quantized by ONNX Runtime's quantizer with uint16 / int16 activations:
0.00% of output elements identical, 100.00% after).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from .ort_agreement import assert_sessions_equal_onnxruntime

_TYPES = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8,
          np.uint16: TensorProto.UINT16, np.int16: TensorProto.INT16}


def _group(op: str, dtype: type, s_x: float, z_x: int, s_y: float, z_y: int,
           shape: list[int]) -> onnx.ModelProto:
    """x -> Q -> DQ -> `op` -> Q -> DQ -> y, per-tensor `dtype` pairs."""
    inits = [numpy_helper.from_array(np.array(s_x, np.float32), "xs"),
             numpy_helper.from_array(np.array(z_x, dtype), "xz"),
             numpy_helper.from_array(np.array(s_y, np.float32), "ys"),
             numpy_helper.from_array(np.array(z_y, dtype), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
             helper.make_node(op, ["xf"], ["a"]),
             helper.make_node("QuantizeLinear", ["a", "ys", "yz"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, shape)], inits)
    opset = 21 if np.dtype(dtype).itemsize == 2 else 13
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("op", ["Elu", "Selu", "Softplus", "Softsign", "Exp"])
def test_every_uint16_code_equals_onnxruntime(op: str) -> None:
    # every input code once: numpy's exp and logaddexp in the table were one ulp from
    # ONNX Runtime's kernels on 2-40% of them, and its QuantizeLinear one unit apart
    s_x, z_x = 2.0 ** -12, 40000
    x = ((np.arange(65536, dtype=np.float32) - z_x) * np.float32(s_x)).reshape(1, 4, 128, 128)
    y = {"Elu": (-1.0, 6.0), "Selu": (-1.8, 10.0), "Softplus": (0.0, 6.0),
         "Softsign": (-1.0, 1.0), "Exp": (0.0, 400.0)}[op]
    s_y = float(np.float32((y[1] - y[0]) / 65535))
    z_y = int(round(-y[0] / s_y))
    assert_sessions_equal_onnxruntime(_group(op, np.uint16, s_x, z_x, s_y, z_y, list(x.shape)), x)


@pytest.mark.parametrize(("op", "code", "s_y", "packet", "scalar"), [
    ("Elu", -3677, 0.0009719383, -1000, -1001),
    ("Softplus", -4000, 1.9906192e-05, 1001, 1000),
])
def test_last_elements_take_the_c_library(op: str, code: int, s_y: float, packet: int,
                                          scalar: int) -> None:
    # one value everywhere, where Eigen's packet function and the C library's straddle a
    # half-way point of y: the last 7 % 4 = 3 elements (the assignment's scalar tail) are
    # one unit from the first 4
    s_x = 2.0 ** -10
    x = np.full((1, 7, 1, 1), np.float32(code) * np.float32(s_x), np.float32)
    model = _group(op, np.int16, s_x, 0, s_y, 0, [1, 7, 1, 1])
    y = assert_sessions_equal_onnxruntime(model, x).reshape(-1)
    codes = np.rint(y / np.float32(s_y)).astype(int).tolist()
    assert codes == [packet] * 4 + [scalar] * 3


@settings(max_examples=25, deadline=None)
@given(op=st.sampled_from(["Elu", "Selu", "Softplus", "Softsign", "Exp"]),
       dtype=st.sampled_from(list(_TYPES)), n=st.integers(1, 4100),
       channels_last=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_groups_equal_onnxruntime(op: str, dtype: type, n: int, channels_last: bool,
                                  seed: int) -> None:
    """Any size (runs with and without a scalar tail; at 2 threads Elu's blocks from about
    3,500 elements), every type, 4-D (lowp may run it channels-last) or 1-D."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    shape = [1, 3, 1, n] if channels_last else [n]
    s_x = float(np.float32(rng.uniform(0.5, 8.0) / (int(info.max) - int(info.min))))
    z_x = int(rng.integers(info.min // 2, info.max // 2 + 1)) if info.min < 0 else \
        int(rng.integers(info.max // 4, 3 * (info.max // 4)))
    codes = rng.integers(info.min, int(info.max) + 1, size=shape)
    x = ((codes - z_x) * np.float32(s_x)).astype(np.float32)
    s_y = float(np.float32(s_x * rng.uniform(0.3, 3.0)))
    z_y = int(rng.integers(info.min // 2, info.max // 2 + 1))
    assert_sessions_equal_onnxruntime(_group(op, dtype, s_x, z_x, s_y, z_y, shape), x)
