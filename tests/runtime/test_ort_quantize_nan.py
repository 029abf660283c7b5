"""QuantizeLinear of NaN as ONNX Runtime 1.32 computes it: qmin (docs/quantization.md (Q6),
docs/operators.md (O133)).

MLAS clamps x / scale with maxps(q, qmin - zero_point) first, which gives its second operand
for NaN; lowp gave the zero point. Found on unidic_imitator quantized by ONNX Runtime's
quantizer (uint16 / int16 / int8 activations): its attention mask (1 - mask) * float32's
minimum is a 16-bit Mul whose constant dequantizes to -inf, 0 * -inf is NaN, and the
QuantizeLinear after it gave 65535 in lowp, 0 in ONNX Runtime (evals/corpus/repro/README.md,
109).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session

from .ort_agreement import onnxruntime_run

_TYPES = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8,
          np.uint16: TensorProto.UINT16, np.int16: TensorProto.INT16}


def _quantize(dtype: type, scale: np.ndarray, zero_point: np.ndarray, shape: list[int],
              axis: int = 1) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=axis)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", _TYPES[dtype], shape)],
        [numpy_helper.from_array(np.asarray(scale, np.float32), "s"),
         numpy_helper.from_array(np.asarray(zero_point, dtype), "z")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _assert_agree(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """lowp's reference and native backends give ONNX Runtime's y at 1 and 2 threads."""
    name = model.graph.output[0].name
    for threads in (1, 2):
        want = onnxruntime_run(model, feeds, threads)[0]
        for backend in ("reference", "native"):
            session = Session(model, backend=backend, threads=threads)
            for run in range(2):                     # recorded, then replayed
                got = session.run(dict(feeds))[name]
                np.testing.assert_array_equal(got, want,
                                              err_msg=f"{backend} {threads} threads {run}")
    return want


@pytest.mark.parametrize("dtype", list(_TYPES))
def test_nan_quantizes_to_qmin(dtype: type) -> None:
    x = np.array([np.nan, -np.nan, 1.0, np.inf, -np.inf, 0.0, np.nan, 2.5], np.float32)
    info = np.iinfo(dtype)
    zero_point = int(info.max) // 3
    y = _assert_agree(_quantize(dtype, np.float32(0.5), np.array(zero_point, dtype), [8]),
                      {"x": x})
    assert y[0] == y[1] == y[6] == info.min


def test_a_16bit_mask_times_minus_infinity() -> None:
    # unidic_imitator's '/model/albert/Mul': DQ(uint16 {0, 65535}, s = 1 / 65535) times
    # DQ(code 0, zero point 65535, s = 5.19e33) = -inf; 0 * -inf = NaN -> code 0, not 65535
    inits = [numpy_helper.from_array(np.array(1.5259022e-05, np.float32), "ms"),
             numpy_helper.from_array(np.array(0, np.uint16), "mz"),
             numpy_helper.from_array(np.array(5.192376e+33, np.float32), "cs"),
             numpy_helper.from_array(np.array(65535, np.uint16), "cz"),
             numpy_helper.from_array(np.array(0, np.uint16), "c")]
    nodes = [helper.make_node("DequantizeLinear", ["m", "ms", "mz"], ["mf"]),
             helper.make_node("DequantizeLinear", ["c", "cs", "cz"], ["cf"]),
             helper.make_node("Mul", ["mf", "cf"], ["p"]),
             helper.make_node("QuantizeLinear", ["p", "cs", "cz"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "m", TensorProto.UINT16, [1, 1, 1, 40])], [helper.make_tensor_value_info(
            "y", TensorProto.UINT16, [1, 1, 1, 40])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    m = np.where(np.arange(40) % 3 == 0, 65535, 0).astype(np.uint16).reshape(1, 1, 1, 40)
    y = _assert_agree(model, {"m": m})
    assert not y.any()


@settings(max_examples=30, deadline=None)
@given(dtype=st.sampled_from(list(_TYPES)), n=st.integers(1, 300),
       per_channel=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_quantize_with_nans_equals_onnxruntime(dtype: type, n: int, per_channel: bool,
                                               seed: int) -> None:
    """NaNs of both signs among finite values and infinities, every type, per tensor and
    per channel, any length (the native kernels' vector bodies and remainders)."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    channels = 3 if per_channel else 1
    x = rng.normal(0, 40, size=(2, channels, n)).astype(np.float32)
    special = rng.random(x.shape)
    x[special < 0.2] = np.nan
    x[(special >= 0.2) & (special < 0.25)] = -np.nan
    x[(special >= 0.25) & (special < 0.28)] = np.inf
    scale = rng.uniform(0.05, 2.0, size=channels).astype(np.float32)
    zero_point = rng.integers(info.min, int(info.max) + 1, size=channels).astype(dtype)
    if not per_channel:
        scale, zero_point = scale.reshape(()), zero_point.reshape(())
    _assert_agree(_quantize(dtype, scale, zero_point, list(x.shape)), {"x": x})
