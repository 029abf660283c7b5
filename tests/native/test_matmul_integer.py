"""The native integer core of quantize_dynamic files (lowp.runtime.native_integer: MatMulInteger
with a packed constant B, DynamicQuantizeLinear) equals the numpy operators of
lowp.runtime.float_ops bit for bit on every instruction-set path and thread count, including
int32 wrapping, and a Session replaying DynamicQuantizeLinear -> MatMulInteger equals ONNX
Runtime run after run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp import Session
from lowp.runtime import float_ops, native_backend, native_float, native_integer
from lowp.runtime.prepacked import freeze
from tests.runtime.ort_agreement import onnxruntime_run

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_integer._extension() is None,
                                reason="the extension has no integer matmul")
BYTES = st.sampled_from([np.dtype(np.uint8), np.dtype(np.int8)])
# reductions around the 4-byte groups and 64-byte blocks, columns around the 16/64 panels
DEPTHS = st.one_of(st.integers(0, 20), st.sampled_from([63, 64, 65, 127, 128, 129, 512, 515]))
WIDTHS = st.one_of(st.integers(1, 20), st.sampled_from([31, 32, 33, 63, 64, 65, 129, 200]))


def _ints(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype,
          extreme: bool = False) -> np.ndarray:
    info = np.iinfo(dtype)
    if extreme:   # the type's ends only: the largest products and sums
        return rng.choice([info.min, info.max], size=shape).astype(dtype)
    return rng.integers(int(info.min), int(info.max) + 1, size=shape).astype(dtype)


def _zero_point(rng: np.random.Generator, dtype: np.dtype, kind: str, n: int
                ) -> np.ndarray | None:
    info = np.iinfo(dtype)
    if kind == "none":
        return None
    values = [info.min, info.max, 0, int(rng.integers(info.min, info.max + 1))]
    if kind == "per-column":
        return rng.choice(values, size=n).astype(dtype)
    return np.array(values[int(rng.integers(0, 4))], dtype)


def _check(a: np.ndarray, b: np.ndarray, za: np.ndarray | None, zb: np.ndarray | None) -> None:
    with native_float.disabled():
        want = float_ops.MatMulInteger(a, b, za, zb)
    b = freeze(b.copy())
    for path in PATHS:
        with native_backend.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads):
                    got = native_integer.matmul_integer(a, b, za, zb)
                assert got is not None
                assert got.dtype == np.int32 and got.shape == want.shape
                np.testing.assert_array_equal(got, want, err_msg=f"{path} {threads}")


@settings(max_examples=120, deadline=None)
@given(batch=st.lists(st.integers(0, 3), max_size=2), m=st.integers(0, 40), k=DEPTHS,
       n=WIDTHS, a_dtype=BYTES, b_dtype=BYTES,
       za_kind=st.sampled_from(["none", "scalar"]),
       zb_kind=st.sampled_from(["none", "scalar", "per-column"]), extreme=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_matmul_integer_equals_numpy(batch, m, k, n, a_dtype, b_dtype, za_kind, zb_kind,
                                     extreme, seed) -> None:
    rng = np.random.default_rng(seed)
    a = _ints(rng, (*batch, m, k), a_dtype, extreme)
    b = _ints(rng, (k, n), b_dtype, extreme)
    _check(a, b, _zero_point(rng, a_dtype, za_kind, n), _zero_point(rng, b_dtype, zb_kind, n))


@pytest.mark.parametrize("a_dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("b_dtype", [np.uint8, np.int8])
def test_int32_wraps(a_dtype, b_dtype) -> None:
    """Sums past 2^31 wrap as the reference's wrap_int32 (k * 255 * 255 > 2^32 here)."""
    k = 70_000
    ai, bi = np.iinfo(a_dtype), np.iinfo(b_dtype)
    a = np.full((3, k), ai.max, a_dtype)
    a[1] = ai.min
    b = np.full((k, 17), bi.min, b_dtype)
    b[:, 3] = bi.max
    _check(a, b, np.array(ai.min if ai.min else ai.max, a_dtype)[()].reshape(()),
           np.array(bi.max, b_dtype))


def test_not_native_without_frozen_constant() -> None:
    """A B that is not a frozen constant (an activation) stays with numpy."""
    a = np.ones((2, 3), np.uint8)
    b = np.ones((3, 4), np.int8)
    assert native_integer.matmul_integer(a, b, None, None) is None
    assert native_integer.matmul_integer(a, freeze(b.copy()), None, None) is not None
    b3 = freeze(np.ones((1, 3, 4), np.int8))
    assert native_integer.matmul_integer(a, b3, None, None) is None
    assert native_integer.matmul_integer(a, freeze(b.copy()), np.ones(2, np.uint8), None) is None


SPECIALS = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 3e38, -3e38, 1e-40]


def _assert_dynamic_quantize_equals(x: np.ndarray, want: tuple[np.ndarray, ...],
                                    where: str = "") -> None:
    """lowp's native DynamicQuantizeLinear of `x` on every instruction-set path gives
    `want` (the numpy reference's) bit for bit, dtypes and shapes included."""
    for path in PATHS:
        with native_backend.use_path(path):
            got = native_integer.dynamic_quantize(x)
        assert got is not None
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape, path + where
            np.testing.assert_array_equal(g.view(np.uint32) if g.dtype == np.float32 else g,
                                          w.view(np.uint32) if w.dtype == np.float32 else w,
                                          err_msg=path + where)


@settings(max_examples=150, deadline=None)
@given(shape=st.lists(st.integers(0, 40), max_size=3),
       spread=st.sampled_from([1e-42, 1e-30, 1e-3, 1.0, 60.0, 1e30, 3e38]),
       shift=st.sampled_from([0.0, 0.5, -0.5, 1.0, -1.0]),
       specials=st.integers(0, 3), seed=st.integers(0, 2**32 - 1))
def test_dynamic_quantize_equals_numpy(shape, spread, shift, specials, seed) -> None:
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        x = ((rng.standard_normal(shape) + shift) * spread).astype(np.float32)
        if x.size:
            for _ in range(specials):
                x.reshape(-1)[rng.integers(0, x.size)] = SPECIALS[rng.integers(len(SPECIALS))]
        with native_float.disabled():
            want = float_ops.DynamicQuantizeLinear(x)
    _assert_dynamic_quantize_equals(x, want)


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf, 3e38, -3e38])
def test_dynamic_quantize_finds_a_special_value_at_every_position(special) -> None:
    """The range pass reads 32, then 16 values at a time, then one by one (the AVX-512
    paths) or 8 at a time (the others): a special value in each of those places."""
    base = np.random.default_rng(5).standard_normal(71).astype(np.float32)
    for pos in range(71):
        x = base.copy()
        x[pos] = special
        with np.errstate(all="ignore"), native_float.disabled():
            want = float_ops.DynamicQuantizeLinear(x)
        _assert_dynamic_quantize_equals(x, want, f" at {pos}")


def test_dynamic_quantize_ties_and_constant_rows() -> None:
    """Halves round to even; an all-equal tensor and an empty one give the reference's
    qparams."""
    cases = [np.arange(-255, 256, dtype=np.float32) / 2, np.full(7, 3.0, np.float32),
             np.full(5, -2.0, np.float32), np.zeros(9, np.float32), np.zeros(0, np.float32),
             np.linspace(-1, 1, 1001, dtype=np.float32)]
    for x in cases:
        with native_float.disabled():
            want = float_ops.DynamicQuantizeLinear(x)
        got = native_integer.dynamic_quantize(x)
        assert got is not None
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def _scaled_model(w: np.ndarray, zw: np.ndarray, m: int, outputs: tuple[str, ...]
                  ) -> onnx.ModelProto:
    """quantize_dynamic's form: Mul(scale of x, weight scale) scales the Cast product."""
    k, n = w.shape
    types = {"y": TensorProto.FLOAT, "acc": TensorProto.INT32}
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("Mul", ["s", "ws"], ["scales"]),
             helper.make_node("MatMulInteger", ["q", "w", "z", "zw"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "scales"], ["y"])]
    graph = helper.make_graph(
        nodes, "dynamic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info(o, types[o], [m, n]) for o in outputs],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(zw, "zw"),
         numpy_helper.from_array(np.array(0.0123, np.float32), "ws")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _dynamic_model(w: np.ndarray, zw: np.ndarray, m: int, outputs: tuple[str, ...]
                   ) -> onnx.ModelProto:
    k, n = w.shape
    types = {"y": TensorProto.FLOAT, "acc": TensorProto.INT32}
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("MatMulInteger", ["q", "w", "z", "zw"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "s"], ["y"])]
    graph = helper.make_graph(
        nodes, "dynamic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info(o, types[o], [m, n]) for o in outputs],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(zw, "zw")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("outputs", [("y",), ("y", "acc")])
@pytest.mark.parametrize("w_dtype", [np.int8, np.uint8])
def test_session_replays_like_onnxruntime(w_dtype, outputs, scaled) -> None:
    """DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul (which ONNX Runtime fuses when
    the accumulator is not an output): replayed runs read this run's scale and zero point
    (new ranges every run) and equal ONNX Runtime."""
    rng = np.random.default_rng(0)
    m, k, n = 6, 70, 90
    info = np.iinfo(w_dtype)
    w = rng.integers(info.min, int(info.max) + 1, size=(k, n)).astype(w_dtype)
    zw = np.array(3 if w_dtype == np.int8 else 130, w_dtype)
    model = (_scaled_model if scaled else _dynamic_model)(w, zw, m, outputs)
    session = Session(model, threads=1)
    for run in range(6):
        x = (rng.standard_normal((m, k)) * (run + 1) + run - 3).astype(np.float32)
        want = dict(zip(outputs, onnxruntime_run(model, {"x": x}), strict=True))
        got = session.run({"x": x})
        for name in outputs:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} run {run}")


def _bias(rng: np.random.Generator, kind: str, n: int) -> np.ndarray | None:
    """None, or n float32 values (as [n], [1, n] or [1, 1, n]) of any magnitude with the
    special values among them: signed zeros, infinities and a quiet NaN."""
    if kind == "none":
        return None
    v = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4)).astype(np.float32)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], np.float32)
    pick = rng.random(n) < 0.1
    v[pick] = rng.choice(specials, size=int(pick.sum()))
    return v.reshape({"1d": (n,), "2d": (1, n), "3d": (1, 1, n)}[kind])


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(st.integers(0, 2), max_size=1), m=st.integers(0, 20), k=DEPTHS,
       n=WIDTHS, a_dtype=BYTES, b_dtype=BYTES, per_column=st.booleans(),
       zb_kind=st.sampled_from(["none", "scalar", "per-column"]),
       bias_kind=st.sampled_from(["none", "1d", "2d", "3d"]),
       seed=st.integers(0, 2**32 - 1))
def test_matmul_integer_to_float_equals_numpy(batch, m, k, n, a_dtype, b_dtype, per_column,
                                              zb_kind, bias_kind, seed) -> None:
    """The scaled product (MatMulIntegerToFloat) equals float32(acc) * float32(a_scale *
    b_scale), then + bias (each rounded to float32, in that order), of the numpy operators,
    scales of any magnitude, biases with signed zeros, infinities and NaN; the result keeps
    the product's shape whatever the bias's rank, as ONNX Runtime's kernel."""
    rng = np.random.default_rng(seed)
    a = _ints(rng, (*batch, m, k), a_dtype)
    b = _ints(rng, (k, n), b_dtype)
    za = _zero_point(rng, a_dtype, "scalar", n)
    zb = _zero_point(rng, b_dtype, zb_kind, n)
    sa = np.array(rng.uniform(1e-4, 1.0), np.float32)
    sb = (rng.uniform(-1, 1, n if per_column else ()) * 10.0 ** rng.integers(-30, 30)
          ).astype(np.float32)
    bias = _bias(rng, bias_kind, n)
    with native_float.disabled(), np.errstate(invalid="ignore", over="ignore"):
        acc = float_ops.MatMulInteger(a, b, za, zb)
        want = acc.astype(np.float32) * np.multiply(sa, sb, dtype=np.float32)
        if bias is not None:
            want = (want + bias.reshape(-1)).astype(np.float32)
        ref = float_ops.MatMulIntegerToFloat(a, b, sa, sb, za, zb, bias)
    np.testing.assert_array_equal(ref.view(np.uint32), want.view(np.uint32))
    b = freeze(b.copy())
    for path in PATHS:
        with native_backend.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads):
                    got = native_integer.matmul_integer_scaled(a, b, za, zb, sa, sb, bias)
                    via_op = float_ops.MatMulIntegerToFloat(a, b, sa, sb, za, zb, bias)
                    swapped = float_ops.MatMulIntegerToFloat(a, b, sb, sa, za, zb, bias)
                assert got is not None and got.shape == want.shape
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                              err_msg=f"{path} {threads}")
                np.testing.assert_array_equal(via_op.view(np.uint32), want.view(np.uint32))
                np.testing.assert_array_equal(swapped.view(np.uint32), want.view(np.uint32))


def test_dynamic_matmul_fuses() -> None:
    """quantize_dynamic's chain (the scales' Mul read once) becomes MatMulIntegerToFloat;
    with the accumulator a graph output it stays as it is."""
    from lowp.runtime import ort_fusions

    w = np.ones((8, 4), np.int8)
    for outputs, fused in ((("y",), True), (("y", "acc"), False)):
        model = _scaled_model(w, np.array(0, np.int8), 3, outputs)
        ops = [n.op_type for n in ort_fusions.apply(model).graph.node]
        assert ("MatMulIntegerToFloat" in ops) == fused, ops


@pytest.mark.skipif("amx" not in PATHS, reason="AMX not available on this CPU: the tile "
                    "route of the integer product was not tested")
@pytest.mark.parametrize(("m", "k", "n"), [(48, 512, 1024), (8, 128, 16), (7, 128, 16),
                                           (8, 127, 17), (33, 130, 70), (17, 1024, 200),
                                           (64, 515, 65), (40, 64, 64)])
@pytest.mark.parametrize("on_tiles", ["default", "always"])
def test_amx_tiles_take_long_products(m, k, n, on_tiles) -> None:
    """On the amx path a product with at least short_gemm_bytes of reduction and
    short_gemm_rows rows runs on the tiles (the weights in the path's own panel layout),
    the others on the avx512vnni registers; both give the numpy operators' integers and
    scaled floats, with per-column zero points on B, at 1 and 2 threads."""
    from lowp import _native

    rng = np.random.default_rng(m * 1_000_003 + k * 1_009 + n)
    a = _ints(rng, (m, k), np.dtype(np.uint8))
    b = _ints(rng, (k, n), np.dtype(np.int8))
    za = np.array(int(rng.integers(0, 256)), np.uint8)
    zb = rng.integers(-128, 128, n).astype(np.int8)
    sa = np.array(0.0123, np.float32)
    sb = rng.uniform(1e-3, 1.0, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    with native_float.disabled():
        want = float_ops.MatMulInteger(a, b, za, zb)
        want_f = float_ops.MatMulIntegerToFloat(a, b, sa, sb, za, zb, bias)
    b = freeze(b.copy())
    before = _native.short_gemm_bytes(), _native.short_gemm_rows()
    if on_tiles == "always":
        _native.set_short_gemm_bytes(0)
        _native.set_short_gemm_rows(0)
    try:
        with native_backend.use_path("amx"):
            for threads in (1, 2):
                with native_float.threads(threads):
                    got = native_integer.matmul_integer(a, b, za, zb)
                    got_f = native_integer.matmul_integer_scaled(a, b, za, zb, sa, sb, bias)
                assert got is not None and got_f is not None
                np.testing.assert_array_equal(got, want, err_msg=str(threads))
                np.testing.assert_array_equal(got_f.view(np.uint32), want_f.view(np.uint32),
                                              err_msg=str(threads))
    finally:
        _native.set_short_gemm_bytes(before[0])
        _native.set_short_gemm_rows(before[1])


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 2), c=st.integers(1, 9), m=st.sampled_from([1, 5, 16, 24, 65]),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       size=st.tuples(st.integers(0, 9), st.integers(0, 9)),
       strides=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       dilations=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       pads=st.tuples(*[st.integers(0, 2)] * 4), x_dtype=BYTES, w_dtype=BYTES,
       xz_kind=st.sampled_from(["none", "scalar"]),
       wz_kind=st.sampled_from(["none", "scalar", "per-column"]), extreme=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_conv_integer_equals_numpy(n, c, m, kernel, size, strides, dilations, pads, x_dtype,
                                   w_dtype, xz_kind, wz_kind, extreme, seed) -> None:
    """ConvInteger with a constant weight (IntMatMul.run_conv: its windows gathered into
    rows, the product by the native integer matmul, the NCHW result) equals the float64
    reference bit for bit, on every path at 1 and 2 threads: zero points on both sides (the
    input's padding contributes zero), strides, dilations, padding, batch 0."""
    from lowp.runtime import float_nn

    rng = np.random.default_rng(seed)
    kh, kw = kernel
    h = (kh - 1) * dilations[0] + 1 + size[0] - pads[0] - pads[2]
    w_ = (kw - 1) * dilations[1] + 1 + size[1] - pads[1] - pads[3]
    if h < 1 or w_ < 1:
        return
    x = _ints(rng, (n, c, h, w_), x_dtype, extreme)
    w = freeze(_ints(rng, (m, c, kh, kw), w_dtype, extreme))
    xz = _zero_point(rng, x_dtype, xz_kind, m)
    wz = _zero_point(rng, w_dtype, wz_kind, m)
    attrs = {"strides": list(strides), "dilations": list(dilations), "pads": list(pads)}
    with native_float.disabled():
        want = float_nn.ConvInteger(x, w, xz, wz, **attrs)
    assert native_integer.conv_integer(x, w, xz, wz, 1, strides, dilations, pads[:2],
                                       pads[2:]) is not None
    for path in PATHS:
        with native_backend.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads):
                    got = float_nn.ConvInteger(x, w, xz, wz, **attrs)
                assert got.dtype == np.int32 and got.shape == want.shape
                np.testing.assert_array_equal(got, want, err_msg=f"{path} {threads}")


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 5),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dilations=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       pads=st.tuples(*[st.integers(0, 4)] * 4), dtype=BYTES, seed=st.integers(0, 2**32 - 1))
def test_conv_rows_equal_numpy(n, c, kernel, hw, strides, dilations, pads, dtype,
                               seed) -> None:
    """The native window gather (conv_integer_rows) gives the numpy gather's rows byte for
    byte: padding wider than the kernel's reach, taps wholly in the padding, dilations,
    strides, int8 and uint8 with their zero points (negative for int8)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    kh, kw = kernel
    if (h + pads[0] + pads[2] - (kh - 1) * dilations[0] - 1 < 0
            or w + pads[1] + pads[3] - (kw - 1) * dilations[1] - 1 < 0):
        return
    x = _ints(rng, (n, c, h, w), dtype, False)
    zp = _ints(rng, (), dtype)[()]
    args = (kernel, strides, dilations, pads[:2], pads[2:])
    want = native_integer.conv_rows_numpy(x, zp, *args)
    got = native_integer.conv_rows(x, zp, *args)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 2), c=st.sampled_from([3, 16, 24]), m=st.sampled_from([17, 64, 96]),
       kernel=st.sampled_from([(1, 1), (3, 3), (3, 1)]), hw=st.sampled_from([(20, 37), (32, 48)]),
       stride=st.integers(1, 2), x_dtype=BYTES, w_dtype=BYTES,
       wz_kind=st.sampled_from(["none", "scalar", "per-column"]),
       seed=st.integers(0, 2**32 - 1))
def test_conv_integer_large_equals_numpy(n, c, m, kernel, hw, stride, x_dtype, w_dtype,
                                         wz_kind, seed) -> None:
    """ConvInteger large enough that IntMatMul.run_conv splits its gather and its NCHW
    transpose over the threads equals the float64 reference on every path, 1 and 2
    threads."""
    from lowp.runtime import float_nn

    rng = np.random.default_rng(seed)
    x = _ints(rng, (n, c, *hw), x_dtype)
    w = freeze(_ints(rng, (m, c, *kernel), w_dtype))
    xz = _zero_point(rng, x_dtype, "scalar", m)
    wz = _zero_point(rng, w_dtype, wz_kind, m)
    pads = [kernel[0] // 2, kernel[1] // 2] * 2
    attrs = {"strides": [stride, stride], "pads": pads}
    with native_float.disabled():
        want = float_nn.ConvInteger(x, w, xz, wz, **attrs)
    for path in PATHS:
        with native_backend.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads):
                    got = float_nn.ConvInteger(x, w, xz, wz, **attrs)
                np.testing.assert_array_equal(got, want, err_msg=f"{path} {threads}")


def test_conv_integer_session_equals_onnxruntime() -> None:
    """A quantize_dynamic-style DynamicQuantizeLinear -> ConvInteger (constant uint8
    weights, per-tensor zero points, padding and stride 2) in a replayed Session equals ONNX
    Runtime's int32 output run after run."""
    rng = np.random.default_rng(7)
    w = rng.integers(0, 256, (24, 3, 3, 3)).astype(np.uint8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("ConvInteger", ["q", "w", "z", "wz"], ["y"],
                              pads=[1, 1, 1, 1], strides=[2, 2])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 17, 20])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 24, 9, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(131, np.uint8),
                                                                  "wz")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = Session(model.SerializeToString())
    for run in range(4):
        x = (rng.standard_normal((1, 3, 17, 20)) * (run + 1)).astype(np.float32)
        want = onnxruntime_run(model, {"x": x})[0]
        got = session.run({"x": x}, profile=run == 3)["y"]
        np.testing.assert_array_equal(got, want, err_msg=str(run))
    # the ConvInteger step replays inside a native Program, not from Python
    assert "ConvInteger:float" in session.last_profile, session.last_profile


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(st.integers(0, 2), max_size=1), m=st.integers(0, 40),
       k=st.sampled_from([64, 128, 192, 512, 1024]), n=WIDTHS,
       b_dtype=BYTES, za_kind=st.sampled_from(["none", "scalar"]),
       zb_kind=st.sampled_from(["none", "scalar", "per-column"]), offset=st.integers(0, 3),
       extreme=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_uint8_rows_read_in_place(batch, m, k, n, b_dtype, za_kind, zb_kind, offset, extreme,
                                  seed) -> None:
    """uint8 A whose rows are whole 64-byte blocks is read where it is, not copied (at any
    address: `offset` bytes past numpy's alignment), with row sums only where a B zero
    point needs them: the same integers and scaled floats on every path and thread count,
    batch and rows 0 included."""
    rng = np.random.default_rng(seed)
    shape = (*batch, m, k)
    raw = np.empty(int(np.prod(shape)) + offset, np.uint8)
    a = raw[offset:].reshape(shape)
    a[...] = _ints(rng, shape, np.dtype(np.uint8), extreme)
    b = _ints(rng, (k, n), b_dtype, extreme)
    za = _zero_point(rng, np.dtype(np.uint8), za_kind, n)
    zb = _zero_point(rng, b_dtype, zb_kind, n)
    _check(a, b, za, zb)
    sa = np.array(0.0123, np.float32)
    sb = rng.uniform(1e-3, 1.0, n).astype(np.float32)
    with native_float.disabled():
        want = float_ops.MatMulIntegerToFloat(a, b, sa, sb, za, zb, None)
    b = freeze(b.copy())
    for path in PATHS:
        with native_backend.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads):
                    got = native_integer.matmul_integer_scaled(a, b, za, zb, sa, sb)
                assert got is not None
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                              err_msg=f"{path} {threads}")
