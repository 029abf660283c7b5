"""One quantized operator at a time, random qparams: lowp's engine (through the QDQ form)
against ONNX Runtime running the QOperator node itself."""

from __future__ import annotations

import zlib

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import lowp

from .single_node import MS, codes, init, onnx_type, run_both

DTYPES = [np.uint8, np.int8]


def _qparams(rng: np.random.Generator, dtype: type, *names: str) -> list[onnx.TensorProto]:
    info = np.iinfo(dtype)
    out = []
    for n in names:
        out += [init(f"s{n}", np.float32(np.exp(rng.uniform(-5, -3)))),
                init(f"z{n}", dtype(rng.integers(info.min + 64, info.max - 63)))]
    return out


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
    """Every 8-bit code in x; identical, on the integer path (int8 QLinearAdd, QLinearMul
    and QLinearAveragePool included: their QDQ form carries the hint that ONNX Runtime runs
    them in its integer kernels)."""
    rng = np.random.default_rng(zlib.crc32(f"{op_type} {dtype.__name__}".encode()))
    inputs, attrs = ELEMENTWISE[op_type]
    node = helper.make_node(op_type, inputs, ["y"], domain=MS, **attrs)
    total = inside = 0
    for _ in range(3):
        x = codes(rng, dtype, (2, 8, 16, 16))
        x.reshape(-1)[:256] = np.arange(256).astype(np.uint8).view(dtype)
        feeds = {"x": x}
        if "b" in inputs:
            feeds["b"] = codes(rng, dtype, (2, 8, 16, 16))
        params = _qparams(rng, dtype, "x", "b", "y")
        if op_type == "QLinearAdd":      # a sum needs the range of both operands
            scales = {t.name: numpy_helper.to_array(t) for t in params}
            params[4] = init("sy", np.float32(scales["sx"] + scales["sb"]))
        got, want = run_both(node, params, feeds,
                          onnx_type(dtype))
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
        total += want.size
        inside += int(np.count_nonzero((want != np.iinfo(dtype).min) &
                                       (want != np.iinfo(dtype).max)))
    assert inside > 0.5 * total, f"{inside} of {total} outputs inside the range"


# Inputs on which the float path (DequantizeLinear -> float op -> QuantizeLinear, what lowp
# runs for an int8 Add or AveragePool group of a QDQ file) and ONNX Runtime's int8 kernel
# round differently (found by tools/qoperator_agreement.py): a QOperator file must run the
# kernel's arithmetic, (O10a) and (O8a), as ONNX Runtime does.
INT8_KERNEL_CASES = {
    "QLinearAdd": (["x", "sx", "zx", "b", "sb", "zb", "sy", "zy"], {},
                   {"x": [16], "b": [-120]},
                   {"sx": 0.016873987391591072, "zx": -96, "sb": 0.007137132342904806,
                    "zb": -23, "sy": 0.3421674966812134, "zy": -96}, [-92]),  # float: -93
    "QLinearAveragePool": (["x", "sx", "zx", "sy", "zy"],
                           {"kernel_shape": [3, 3], "pads": [0, 1, 0, 1]},
                           {"x": [[[[-22, 116, -35], [-41, 55, -121], [56, -122, 79]]]]},
                           {"sx": 0.06991516798734665, "zx": -88, "sy": 0.06093929335474968,
                            "zy": -69}, [[[[40, 27, 27]]]]),   # float path: 28 in the middle
}


@pytest.mark.parametrize("op_type", sorted(INT8_KERNEL_CASES))
def test_int8_kernels_of_a_qoperator_file(op_type):
    inputs, attrs, codes, qparams, expected = INT8_KERNEL_CASES[op_type]
    node = helper.make_node(op_type, inputs, ["y"], domain=MS, **attrs)
    inits = [init(k, np.float32(v) if k.startswith("s") else np.int8(v))
             for k, v in qparams.items()]
    feeds = {k: np.asarray(v, np.int8) for k, v in codes.items()}
    got, want = run_both(node, inits, feeds, onnx.TensorProto.INT8)
    np.testing.assert_array_equal(want, np.asarray(expected, np.int8))
    np.testing.assert_array_equal(got, want)


# A window that is the whole image, nothing padded: ONNX Runtime's QLinearAveragePool runs
# its global average pool, (O8)-(O9), whose rounding differs from (O8a) on these inputs
# (the float taps give 70 and -58)
WHOLE_IMAGE_WINDOWS = {
    "u8": ([[16, 234, 26, 9, 56], [64, 201, 2, 58, 112], [43, 215, 30, 241, 239],
            [111, 253, 248, 250, 107], [167, 98, 41, 245, 182]], 153, 75, 71),
    "s8": ([[-112, 106, -102, -119, -72], [-64, 73, -126, -70, -16], [-85, 87, -98, 113, 111],
            [-17, 125, 120, 122, -21], [39, -30, -87, 117, 54]], 25, -53, -57),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["u8", "s8"])
def test_average_pool_over_the_whole_image(dtype):
    key = "u8" if dtype is np.uint8 else "s8"
    window, zx, zy, expected = WHOLE_IMAGE_WINDOWS[key]
    node = helper.make_node("QLinearAveragePool", ["x", "sx", "zx", "sy", "zy"], ["y"],
                            domain=MS, kernel_shape=[5, 5])
    inits = [init("sx", np.float32(0.1210809051990509)), init("zx", dtype(zx)),
             init("sy", np.float32(0.6210105419158936)), init("zy", dtype(zy))]
    x = np.asarray(window, dtype).reshape(1, 1, 5, 5)
    got, want = run_both(node, inits, {"x": x}, onnx_type(dtype))
    assert want.reshape(-1).tolist() == [expected]
    np.testing.assert_array_equal(got, want)
    rng = np.random.default_rng(4)      # and on random codes
    for shape in [(8, 16, 5, 5), (2, 32, 5, 5)]:
        params = _qparams(rng, dtype, "x", "y")
        got, want = run_both(node, params, {"x": codes(rng, dtype, shape)}, onnx_type(dtype))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op_type", ["QLinearAdd", "QLinearMul", "QLinearAveragePool"])
def test_int8_groups_of_a_qoperator_file_lower_to_integer_steps(op_type):
    """The float operator of the QDQ form carries the hint (lowering.QOPERATOR_KEY); the
    same group written as QDQ is integer too, as ONNX Runtime fuses all-int8 QDQ Add, Mul
    and AveragePool groups (docs/operators.md, Add and Mul, (O59))."""
    from lowp.formats import to_qdq
    from lowp.runtime.lowering import QOPERATOR_KEY

    inputs, attrs = ELEMENTWISE[op_type]
    node = helper.make_node(op_type, inputs, ["y"], domain=MS, **attrs)
    x = np.zeros((1, 2, 4, 4), np.int8)
    feeds = {k: x for k in ("x", "b") if k in inputs}
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(k, onnx.TensorProto.INT8, list(x.shape))
                      for k in feeds],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT8, ["n", "c", "h", "w"])],
        _qparams(np.random.default_rng(0), np.int8, "x", "b", "y"))
    model = helper.make_model(graph, ir_version=8, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    qdq = to_qdq(model)
    op = op_type.removeprefix("QLinear")
    kinds = [s.kind for s in lowp.Session(qdq).steps if s.op_type == op]
    assert kinds == ["int"]
    for n in qdq.graph.node:
        assert [p.value for p in n.metadata_props if p.key == QOPERATOR_KEY] == (
            [op_type] if n.op_type == op else [])
        del n.metadata_props[:]
    assert [s.kind for s in lowp.Session(qdq).steps if s.op_type == op] == ["int"]


@pytest.mark.parametrize("dtype", DTYPES, ids=["u8", "s8"])
def test_softmax(dtype):
    """(O17); ONNX Runtime's row sum differs in a few rows per million elements."""
    rng = np.random.default_rng(5)
    node = helper.make_node("QLinearSoftmax", ["x", "sx", "zx", "sy", "zy"], ["y"], domain=MS,
                            axis=-1, opset=17)
    y = [init("sy", np.float32(1 / 256 if dtype is np.uint8 else 1 / 128)),
         init("zy", dtype(0))]
    for _ in range(3):
        got, want = run_both(node, _qparams(rng, dtype, "x") + y,
                          {"x": codes(rng, dtype, (4, 16, 32))},
                          onnx_type(dtype))
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
    x = codes(rng, dtype, (2, 16, 12, 12))
    # outputs spread over the whole range: 3 standard deviations of the accumulator
    acc_std = np.sqrt(16 // group * 9) * np.sqrt(np.mean((x.astype(np.float64) - zx) ** 2)) * \
        np.sqrt(np.mean(w.astype(np.float64) ** 2))
    sy = np.float32(6 * acc_std * sx * float(np.mean(sw)) / 255)
    zy = dtype(128 if dtype is np.uint8 else 0)
    inits = [init("sx", sx), init("zx", zx), init("w", w), init("sw", sw),
             init("zw", np.zeros(sw.shape, np.int8)), init("sy", sy), init("zy", zy),
             init("b", rng.integers(-2000, 2000, cout).astype(np.int32))]
    node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"],
                            ["y"], group=group, dilations=[dilation] * 2, strides=[stride] * 2,
                            pads=[1, 1, 1, 1])
    got, want = run_both(node, inits, {"x": x}, onnx_type(dtype))
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
    x = codes(rng, dtype, (3, 7, 32) if form == "QLinearMatMul" else (7, 32))
    acc_std = np.sqrt(32) * np.sqrt(np.mean((x.astype(np.float64) - zx) ** 2)) * \
        np.sqrt(np.mean(w.astype(np.float64) ** 2))
    zy = dtype(128 if dtype is np.uint8 else 0)
    inits = [init("sx", sx), init("zx", zx), init("w", w.T.copy() if trans_b else w),
             init("sw", sw), init("zw", np.zeros(12, np.int8)),
             init("c", rng.integers(-2000, 2000, 12).astype(np.int32)),
             init("sy", np.float32(6 * alpha * acc_std * sx * float(np.mean(sw)) / 255)),
             init("zy", zy)]
    out_type = onnx_type(dtype)
    if form == "QLinearMatMul":
        node = helper.make_node(form, ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["y"])
    else:
        ins = ["x", "sx", "zx", "w", "sw", "zw", "c", "sy", "zy"]
        if "float" in form:
            ins, out_type = ins[:7], onnx.TensorProto.FLOAT
        node = helper.make_node("QGemm", ins, ["y"], domain=MS, transB=int(trans_b),
                                alpha=alpha)
    got, want = run_both(node, inits, {"x": x}, out_type)
    if want.dtype != np.float32:
        inside = (want != np.iinfo(dtype).min) & (want != np.iinfo(dtype).max)
        assert np.mean(inside) > 0.9
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES, ids=["u8", "s8"])
@pytest.mark.parametrize("trans_b", [False, True], ids=["B", "B^T"])
@pytest.mark.parametrize("float_out", [False, True], ids=["requantized", "float"])
def test_qgemm_of_a_computed_b(dtype, trans_b, float_out):
    """ONNX Runtime's QOperator file of a tf2onnx Gemm whose weight is Reshaped to a shape
    the graph computes: QGemm's B is an activation (quantized by a QuantizeLinear), which
    ONNX Runtime's kernel reads unpacked; lowp refused it as a non-constant weight."""
    rng = np.random.default_rng(33 + 2 * trans_b + float_out)
    a = codes(rng, dtype, (7, 32))
    b = codes(rng, dtype, (12, 32) if trans_b else (32, 12))
    za, zb = (dtype(131), dtype(123)) if dtype is np.uint8 else (dtype(3), dtype(-5))
    sa, sb = np.float32(0.03), np.float32(0.05)
    acc_std = np.sqrt(32 * np.mean((a - np.float64(za)) ** 2) * np.mean((b - np.float64(zb)) ** 2))
    inits = [init("sa", sa), init("za", za), init("sb", sb), init("zb", zb),
             init("c", rng.integers(-2000, 2000, 12).astype(np.int32)),
             init("sy", np.float32(6 * 0.5 * acc_std * sa * sb / 255)),
             init("zy", dtype(128 if dtype is np.uint8 else 0))]
    ins = ["a", "sa", "za", "b", "sb", "zb", "c", "sy", "zy"]
    out_type = onnx_type(dtype)
    if float_out:
        ins, out_type = ins[:7], onnx.TensorProto.FLOAT
    node = helper.make_node("QGemm", ins, ["y"], domain=MS, transB=int(trans_b), alpha=0.5)
    got, want = run_both(node, inits, {"a": a, "b": b}, out_type)
    if not float_out:
        assert np.mean((want != np.iinfo(dtype).min) & (want != np.iinfo(dtype).max)) > 0.9
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES, ids=["u8", "s8"])
def test_qlinear_matmul_of_two_activations(dtype):
    """Attention's Q K^T in a QOperator file: both operands are activations."""
    rng = np.random.default_rng(21)
    a, b = codes(rng, dtype, (2, 3, 8, 16)), codes(rng, dtype, (2, 3, 16, 8))
    za, zb = (dtype(131), dtype(123)) if dtype is np.uint8 else (dtype(3), dtype(-5))
    acc_std = 4 * np.sqrt(np.mean((a - np.float64(za)) ** 2) * np.mean((b - np.float64(zb)) ** 2))
    sa, sb = np.float32(0.03), np.float32(0.05)
    inits = [init("sa", sa), init("za", za), init("sb", sb), init("zb", zb),
             init("sy", np.float32(6 * acc_std * sa * sb / 255)),
             init("zy", dtype(128 if dtype is np.uint8 else 0))]
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"],
                            ["y"])
    got, want = run_both(node, inits, {"a": a, "b": b},
                      onnx_type(dtype))
    assert np.mean((want != np.iinfo(dtype).min) & (want != np.iinfo(dtype).max)) > 0.9
    np.testing.assert_array_equal(got, want)
