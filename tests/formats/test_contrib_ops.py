"""One quantized operator at a time, random qparams: lowp's engine (through the QDQ form)
against ONNX Runtime running the QOperator node itself."""

from __future__ import annotations

import zlib

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import lowp

MS = "com.microsoft"
DTYPES = [np.uint8, np.int8]


def _init(name: str, value: object) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _both(node: onnx.NodeProto, inits: list[onnx.TensorProto], feeds: dict[str, np.ndarray],
          out_type: int) -> tuple[np.ndarray, np.ndarray]:
    """(lowp, ONNX Runtime) on a model of the one node `node` writing 'y'."""
    import onnxruntime as ort

    rank = next(iter(feeds.values())).ndim
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                       list(v.shape)) for k, v in feeds.items()],
        [helper.make_tensor_value_info("y", out_type, [f"d{i}" for i in range(rank)])], inits)
    model = helper.make_model(graph, ir_version=8, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    want = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return lowp.Session(model).run(feeds)["y"], want


def _qparams(rng: np.random.Generator, dtype: type, *names: str) -> list[onnx.TensorProto]:
    info = np.iinfo(dtype)
    out = []
    for n in names:
        out += [_init(f"s{n}", np.float32(np.exp(rng.uniform(-5, -3)))),
                _init(f"z{n}", dtype(rng.integers(info.min + 64, info.max - 63)))]
    return out


def _codes(dtype: type, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


ELEMENTWISE = {
    "QLinearSigmoid": (["x", "sx", "zx", "sy", "zy"], {}),
    "QLinearLeakyRelu": (["x", "sx", "zx", "sy", "zy"], {"alpha": 0.13}),
    "QLinearAdd": (["x", "sx", "zx", "b", "sb", "zb", "sy", "zy"], {}),
    "QLinearMul": (["x", "sx", "zx", "b", "sb", "zb", "sy", "zy"], {}),
    "QLinearConcat": (["sy", "zy", "x", "sx", "zx", "b", "sb", "zb"], {"axis": 1}),
    "QLinearAveragePool": (["x", "sx", "zx", "sy", "zy"],
                           {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2],
                            "count_include_pad": 1}),
    "QLinearGlobalAveragePool": (["x", "sx", "zx", "sy", "zy"], {"channels_last": 0}),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["u8", "s8"])
@pytest.mark.parametrize("op_type", sorted(ELEMENTWISE))
def test_elementwise_and_pooling(op_type, dtype):
    """Every 8-bit code in x; exact except where the QDQ form runs in float: ONNX Runtime
    fuses no int8 QDQ Add or AveragePool group, so lowp's engine does not either, and that
    float path differs from the int8 QLinearAdd / QLinearAveragePool kernels by one unit on
    about 1.5 elements per million (tools/qoperator_agreement.py)."""
    rng = np.random.default_rng(zlib.crc32(f"{op_type} {dtype.__name__}".encode()))
    inputs, attrs = ELEMENTWISE[op_type]
    node = helper.make_node(op_type, inputs, ["y"], domain=MS, **attrs)
    differ = total = inside = 0
    for _ in range(3):
        x = _codes(dtype, (2, 8, 16, 16), rng)
        x.reshape(-1)[:256] = np.arange(256).astype(np.uint8).view(dtype)
        feeds = {"x": x}
        if "b" in inputs:
            feeds["b"] = _codes(dtype, (2, 8, 16, 16), rng)
        params = _qparams(rng, dtype, "x", "b", "y")
        if op_type == "QLinearAdd":      # a sum needs the range of both operands
            scales = {t.name: numpy_helper.to_array(t) for t in params}
            params[4] = _init("sy", np.float32(scales["sx"] + scales["sb"]))
        got, want = _both(node, params, feeds,
                          helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
        assert got.dtype == want.dtype and got.shape == want.shape
        d = np.abs(got.astype(np.int64) - want.astype(np.int64))
        assert d.max() <= 1
        differ, total = differ + int(np.count_nonzero(d)), total + d.size
        inside += int(np.count_nonzero((want != np.iinfo(dtype).min) &
                                       (want != np.iinfo(dtype).max)))
    assert inside > 0.5 * total, f"{inside} of {total} outputs inside the range"
    float_path = op_type in ("QLinearAdd", "QLinearAveragePool") and dtype is np.int8
    allowed = 1e-4 * total if float_path else 0
    assert differ <= allowed, f"{differ} of {total} differ"


@pytest.mark.parametrize("dtype", DTYPES, ids=["u8", "s8"])
def test_softmax(dtype):
    """(O17); ONNX Runtime's row sum differs in a few rows per million elements."""
    rng = np.random.default_rng(5)
    node = helper.make_node("QLinearSoftmax", ["x", "sx", "zx", "sy", "zy"], ["y"], domain=MS,
                            axis=-1, opset=17)
    y = [_init("sy", np.float32(1 / 256 if dtype is np.uint8 else 1 / 128)),
         _init("zy", dtype(0))]
    for _ in range(3):
        got, want = _both(node, _qparams(rng, dtype, "x") + y,
                          {"x": _codes(dtype, (4, 16, 32), rng)},
                          helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
        d = np.abs(got.astype(np.int64) - want.astype(np.int64))
        assert d.max() <= 1 and np.count_nonzero(d) <= 1


@pytest.mark.parametrize("dtype", DTYPES, ids=["u8", "s8"])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize(("group", "dilation", "stride"), [(1, 1, 1), (4, 1, 2), (16, 2, 1)],
                         ids=["dense", "grouped", "depthwise"])
def test_qlinear_conv(dtype, per_channel, group, dilation, stride):
    rng = np.random.default_rng(group * 10 + dilation)
    cout = 16
    w = rng.integers(-127, 128, (cout, 16 // group, 3, 3)).astype(np.int8)
    sw = rng.uniform(0.001, 0.01, cout if per_channel else ()).astype(np.float32)
    sx, zx = np.float32(0.02), dtype(3)
    x = _codes(dtype, (2, 16, 12, 12), rng)
    # outputs spread over the whole range: 3 standard deviations of the accumulator
    acc_std = np.sqrt(16 // group * 9) * np.sqrt(np.mean((x.astype(np.float64) - zx) ** 2)) * \
        np.sqrt(np.mean(w.astype(np.float64) ** 2))
    sy = np.float32(6 * acc_std * sx * float(np.mean(sw)) / 255)
    zy = dtype(128 if dtype is np.uint8 else 0)
    inits = [_init("sx", sx), _init("zx", zx), _init("w", w), _init("sw", sw),
             _init("zw", np.zeros(sw.shape, np.int8)), _init("sy", sy), _init("zy", zy),
             _init("b", rng.integers(-2000, 2000, cout).astype(np.int32))]
    node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"],
                            ["y"], group=group, dilations=[dilation] * 2, strides=[stride] * 2,
                            pads=[1, 1, 1, 1])
    got, want = _both(node, inits, {"x": x}, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    inside = (want != np.iinfo(dtype).min) & (want != np.iinfo(dtype).max)
    assert np.mean(inside) > 0.9
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES, ids=["u8", "s8"])
@pytest.mark.parametrize("form", ["QLinearMatMul", "QGemm", "QGemm-transB-alpha",
                                  "QGemm-float", "QGemm-float-transB-alpha"])
def test_matmul_and_gemm(dtype, form):
    rng = np.random.default_rng(len(form))
    trans_b, alpha = ("transB" in form), (0.5 if "alpha" in form else 1.0)
    w = rng.integers(-127, 128, (32, 12)).astype(np.int8)
    sw = rng.uniform(0.001, 0.01, 12).astype(np.float32)
    sx, zx = np.float32(0.02), dtype(5)
    x = _codes(dtype, (3, 7, 32) if form == "QLinearMatMul" else (7, 32), rng)
    acc_std = np.sqrt(32) * np.sqrt(np.mean((x.astype(np.float64) - zx) ** 2)) * \
        np.sqrt(np.mean(w.astype(np.float64) ** 2))
    zy = dtype(128 if dtype is np.uint8 else 0)
    inits = [_init("sx", sx), _init("zx", zx), _init("w", w.T.copy() if trans_b else w),
             _init("sw", sw), _init("zw", np.zeros(12, np.int8)),
             _init("c", rng.integers(-2000, 2000, 12).astype(np.int32)),
             _init("sy", np.float32(6 * alpha * acc_std * sx * float(np.mean(sw)) / 255)),
             _init("zy", zy)]
    out_type = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    if form == "QLinearMatMul":
        node = helper.make_node(form, ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["y"])
    else:
        ins = ["x", "sx", "zx", "w", "sw", "zw", "c", "sy", "zy"]
        if "float" in form:
            ins, out_type = ins[:7], onnx.TensorProto.FLOAT
        node = helper.make_node("QGemm", ins, ["y"], domain=MS, transB=int(trans_b),
                                alpha=alpha)
    got, want = _both(node, inits, {"x": x}, out_type)
    if want.dtype != np.float32:
        inside = (want != np.iinfo(dtype).min) & (want != np.iinfo(dtype).max)
        assert np.mean(inside) > 0.9
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES, ids=["u8", "s8"])
def test_qlinear_matmul_of_two_activations(dtype):
    """Attention's Q K^T in a QOperator file: both operands are activations."""
    rng = np.random.default_rng(21)
    a, b = _codes(dtype, (2, 3, 8, 16), rng), _codes(dtype, (2, 3, 16, 8), rng)
    za, zb = (dtype(131), dtype(123)) if dtype is np.uint8 else (dtype(3), dtype(-5))
    acc_std = 4 * np.sqrt(np.mean((a - np.float64(za)) ** 2) * np.mean((b - np.float64(zb)) ** 2))
    sa, sb = np.float32(0.03), np.float32(0.05)
    inits = [_init("sa", sa), _init("za", za), _init("sb", sb), _init("zb", zb),
             _init("sy", np.float32(6 * acc_std * sa * sb / 255)),
             _init("zy", dtype(128 if dtype is np.uint8 else 0))]
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"],
                            ["y"])
    got, want = _both(node, inits, {"a": a, "b": b},
                      helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    assert np.mean((want != np.iinfo(dtype).min) & (want != np.iinfo(dtype).max)) > 0.9
    np.testing.assert_array_equal(got, want)
