"""ConvInteger -> Add(int32 bias) -> Cast<float> (-> Mul by a scale) fused into one
ConvIntegerToFloat step (lowp.runtime.conv_integer_fusion): the native call
(IntMatMul.run_conv with a bias, a float32 result and a scale) equals the unfused numpy
operators bit for bit on every instruction-set path and thread count, batch 0 included,
and a Session with the fusion equals ONNX Runtime run after run and replays the step inside
a native Program."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp import Session
from lowp.runtime import conv_integer_fusion, native_backend, native_float, native_integer
from lowp.runtime.prepacked import freeze
from tests.runtime.ort_agreement import onnxruntime_run

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_integer._extension() is None,
                                reason="the extension has no integer matmul")
BYTES = st.sampled_from([np.dtype(np.uint8), np.dtype(np.int8)])


def _ints(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype,
          extreme: bool = False) -> np.ndarray:
    info = np.iinfo(dtype)
    if extreme:
        return rng.choice([info.min, info.max], size=shape).astype(dtype)
    return rng.integers(int(info.min), int(info.max) + 1, size=shape).astype(dtype)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 2), c=st.sampled_from([1, 3, 8, 40]), m=st.sampled_from([1, 5, 16, 65]),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       hw=st.tuples(st.integers(1, 12), st.integers(1, 12)),
       strides=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       pads=st.tuples(*[st.integers(0, 2)] * 4), x_dtype=BYTES, w_dtype=BYTES,
       bias_kind=st.sampled_from(["per-channel", "one", "near-limits"]),
       bias_shape=st.sampled_from(["m11", "1m11", "scalar"]), extreme=st.booleans(),
       scale=st.none() | st.floats(width=32, allow_nan=True, allow_infinity=True,
                                   allow_subnormal=True),
       seed=st.integers(0, 2**32 - 1))
def test_conv_integer_to_float_equals_unfused(n, c, m, kernel, hw, strides, pads, x_dtype,
                                              w_dtype, bias_kind, bias_shape, extreme, scale,
                                              seed) -> None:
    """float32(ConvInteger + bias) (* scale) natively equals ConvInteger, Add, Cast and Mul
    by numpy: the int32 sum wrapping (biases near the int32 limits), sums beyond 2^24
    rounded to nearest by the Cast, one bias or one per output channel, any float32 scale,
    padding and strides."""
    rng = np.random.default_rng(seed)
    kh, kw = kernel
    if hw[0] + pads[0] + pads[2] < kh or hw[1] + pads[1] + pads[3] < kw:
        return
    x = _ints(rng, (n, c, *hw), x_dtype, extreme)
    w = freeze(_ints(rng, (m, c, kh, kw), w_dtype, extreme))
    xz = np.array(int(_ints(rng, (), x_dtype)), x_dtype)
    wz = _ints(rng, (m,), w_dtype) if rng.integers(0, 2) else np.array(0, w_dtype)
    size = 1 if bias_kind == "one" or bias_shape == "scalar" else m
    if bias_kind == "near-limits":
        bias = rng.choice([2**31 - 1, -2**31, 2**31 - 2**20, 2**24 + 1], size=size)
    else:
        bias = rng.integers(-2**26, 2**26, size=size)
    bias = bias.astype(np.int32).reshape({"m11": (size, 1, 1), "1m11": (1, size, 1, 1),
                                          "scalar": ()}[bias_shape])
    attrs = {"strides": list(strides), "pads": list(pads)}
    s = None if scale is None else np.array([scale], np.float32)
    with native_float.disabled(), np.errstate(all="ignore"):
        want = conv_integer_fusion._unfused(x, w, xz, wz, bias, s, attrs)
    assert want.dtype == np.float32
    for path in PATHS:
        with native_backend.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads):
                    assert native_integer.conv_integer(
                        x, w, xz, wz, 1, strides, (1, 1), pads[:2], pads[2:], bias=bias,
                        to_float=True, scale=s) is not None
                    got = conv_integer_fusion.ConvIntegerToFloat(x, w, xz, wz, bias, s,
                                                                 **attrs)
                assert got.shape == want.shape and got.dtype == np.float32
                nan = np.isnan(want)        # (NaN payloads aside: numpy's own)
                np.testing.assert_array_equal(np.isnan(got), nan)
                np.testing.assert_array_equal(got[~nan].view(np.uint32),
                                              want[~nan].view(np.uint32),
                                              err_msg=f"{path} {threads}")


def _model(reader_of_sum: bool = False, reader_of_float: bool = False
           ) -> tuple[bytes, object]:
    """DynamicQuantizeLinear -> ConvInteger -> Add(Reshape(bias computed at run time)) ->
    Cast<float> -> Mul, quantize_dynamic's form (the bias quantized by the input's scale)."""
    rng = np.random.default_rng(3)
    w = rng.integers(-128, 128, (24, 3, 3, 3)).astype(np.int8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("Mul", ["s", "ws"], ["bs"]),
             helper.make_node("Div", ["bf", "bs"], ["bq"]),
             helper.make_node("Floor", ["bq"], ["br"]),
             helper.make_node("Cast", ["br"], ["bi"], to=TensorProto.INT32),
             helper.make_node("Reshape", ["bi", "shape"], ["b"]),
             helper.make_node("ConvInteger", ["q", "w", "z", "wz"], ["acc"],
                              pads=[1, 1, 1, 1], strides=[2, 2], kernel_shape=[3, 3]),
             helper.make_node("Add", ["acc", "b"], ["sum"]),
             helper.make_node("Cast", ["sum"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["f", "bs"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24, 9, 10])]
    if reader_of_sum:
        outputs.append(helper.make_tensor_value_info("sum", TensorProto.INT32, [1, 24, 9, 10]))
    if reader_of_float:     # the Cast read twice: fused without its Mul
        nodes.append(helper.make_node("Sigmoid", ["f"], ["g"]))
        outputs.append(helper.make_tensor_value_info("g", TensorProto.FLOAT, [1, 24, 9, 10]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 17, 20])],
        outputs,
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(0, np.int8), "wz"),
         numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
         numpy_helper.from_array(rng.standard_normal(24).astype(np.float32) * 3, "bf"),
         numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString(), model


@pytest.mark.parametrize(("reader_of_sum", "reader_of_float"),
                         [(False, False), (True, False), (False, True)])
def test_session_equals_onnxruntime(reader_of_sum: bool, reader_of_float: bool) -> None:
    """The fused step in a replayed Session equals ONNX Runtime's output run after run and
    runs inside a native Program; a sum read elsewhere (a graph output) is not fused; a
    Cast read twice is fused without the Mul."""
    data, model = _model(reader_of_sum, reader_of_float)
    session = Session(data)
    fused = [s for s in session.steps if s.op_type == conv_integer_fusion.OP_TYPE]
    assert len(fused) == (0 if reader_of_sum else 1)
    if fused:
        assert fused[0].outputs == (["f"] if reader_of_float else ["y"])
        assert len(fused[0].inputs) == (5 if reader_of_float else 6)
    rng = np.random.default_rng(11)
    for run in range(4):
        x = (rng.standard_normal((1, 3, 17, 20)) * (run + 1)).astype(np.float32)
        want = onnxruntime_run(model, {"x": x})
        got = session.run({"x": x}, profile=run == 3)
        for name, value in zip([o.name for o in model.graph.output], want, strict=True):
            assert got[name].dtype == value.dtype
            np.testing.assert_array_equal(got[name].view(np.uint32), value.view(np.uint32),
                                          err_msg=f"{name} {run}")
    if not reader_of_sum:
        assert f"{conv_integer_fusion.OP_TYPE}:float" in session.last_profile, \
            session.last_profile


def test_disabled_leaves_the_nodes() -> None:
    data, _ = _model()
    with conv_integer_fusion.disabled():
        session = Session(data)
    assert not any(s.op_type == conv_integer_fusion.OP_TYPE for s in session.steps)
    assert any(s.op_type == "ConvInteger" for s in session.steps)
