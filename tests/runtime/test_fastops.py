"""The runtime's fast numpy operators equal the reference operators bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp.fixedpoint import RequantMode
from lowp.ops.elementwise import add
from lowp.ops.layout import Layout
from lowp.ops.pool import max_pool
from lowp.runtime.fastops import make_add
from lowp.runtime.fastops import max_pool as fast_max_pool


@st.composite
def pool_cases(draw: st.DrawFn):
    k = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(k)]
    strides = [draw(st.integers(1, 3)) for _ in range(k)]
    dilations = [draw(st.integers(1, 2)) for _ in range(k)]
    pads = [draw(st.integers(0, kk - 1)) for kk in kernel] * 2
    pads = pads[:k] + [draw(st.integers(0, kk - 1)) for kk in kernel]
    sizes = [draw(st.integers((kernel[i] - 1) * dilations[i] + 1, 9)) for i in range(k)]
    n, c = draw(st.integers(0, 2)), draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.uint8, np.int8]))
    layout = draw(st.sampled_from(list(Layout)))
    shape = (n, c, *sizes) if layout is Layout.CHANNELS_FIRST else (n, *sizes, c)
    x = np.random.default_rng(draw(st.integers(0, 1000))).integers(
        np.iinfo(dtype).min, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    return x, dict(kernel_shape=kernel, strides=strides, pads=pads, dilations=dilations,
                   ceil_mode=draw(st.booleans()), layout=layout)


@given(pool_cases())
def test_max_pool_equals_reference(case):
    x, kw = case
    np.testing.assert_array_equal(fast_max_pool(x, **kw), max_pool(x, **kw))


@given(st.sampled_from([np.uint8, np.int8]), st.sampled_from([np.uint8, np.int8]),
       st.floats(2.0 ** -10, 1.0, width=32), st.floats(2.0 ** -10, 1.0, width=32),
       st.floats(2.0 ** -10, 1.0, width=32), st.integers(-128, 127), st.integers(-128, 127),
       st.integers(0, 255), st.booleans(), st.integers(0, 1000))
def test_add_equals_reference(da, db, sa, sb, sy, za, zb, zy, relu, seed):
    rng = np.random.default_rng(seed)
    za = int(np.clip(za, np.iinfo(da).min, np.iinfo(da).max))
    zb = int(np.clip(zb, np.iinfo(db).min, np.iinfo(db).max))
    a = rng.integers(np.iinfo(da).min, np.iinfo(da).max + 1, (2, 3, 4, 5)).astype(da)
    b = rng.integers(np.iinfo(db).min, np.iinfo(db).max + 1, (1, 3, 1, 5)).astype(db)
    qmin, qmax = (zy if relu else 0), 255
    kw = dict(a_scale=sa, a_zero_point=za, b_scale=sb, b_zero_point=zb, y_scale=sy,
              y_zero_point=zy, qmin=qmin, qmax=qmax)
    want = add(a, b, out_dtype=np.uint8, **kw)
    fast = make_add(a.dtype, sa, za, b.dtype, sb, zb, sy, zy, qmin, qmax, np.dtype(np.uint8))
    np.testing.assert_array_equal(fast(a, b), want)


@given(st.sampled_from([np.uint8, np.int8]), st.sampled_from(list(Layout)), st.integers(1, 3),
       st.integers(0, 2), st.integers(1, 5), st.floats(2.0 ** -10, 1.0, width=32),
       st.floats(2.0 ** -10, 1.0, width=32), st.integers(-20, 20), st.integers(0, 1000),
       st.sampled_from(list(RequantMode)), st.booleans())
def test_global_average_pool_equals_reference(dtype, layout, rank, n, c, sx, sy, zy, seed,
                                              mode, use_native):
    """The native loop and the numpy fallback both equal lowp.ops.pool.global_average_pool."""
    from lowp.ops.pool import global_average_pool
    from lowp.runtime import fastops
    rng = np.random.default_rng(seed)
    spatial = tuple(rng.integers(1, 6, rank))
    shape = (n, c, *spatial) if layout is Layout.CHANNELS_FIRST else (n, *spatial, c)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    kw = dict(x_zero_point=int(rng.integers(info.min, info.max + 1)), x_scale=sx, y_scale=sy,
              y_zero_point=zy, qmin=int(info.min), qmax=int(info.max), layout=layout, mode=mode)
    want = global_average_pool(x, **kw).astype(dtype)
    saved = fastops._native_module
    if not use_native:
        fastops._native_module = lambda: None  # type: ignore[assignment]
    try:
        arena = fastops.Arena()
        got = fastops.global_average_pool(x, out_dtype=np.dtype(dtype), arena=arena, **kw)
        again = fastops.global_average_pool(x, out_dtype=np.dtype(dtype), arena=arena, **kw)
    finally:
        fastops._native_module = saved
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(again, want)


@given(st.sampled_from([np.uint8, np.int8]), st.integers(1, 40), st.integers(0, 1000))
def test_attention_matmul_fast_path_equals_reference(dtype, k, seed):
    """Session's MatMul of two activations (float64 product) equals lowp.ops.linear.matmul.
    The int8 group is tagged as a QOperator file's QLinearMatMul: ONNX Runtime leaves an
    untagged int8 QDQ MatMul unfused, and so does lowp (docs/operators.md (O5a))."""
    from onnx import TensorProto, helper, numpy_helper

    from lowp.fixedpoint import Requant
    from lowp.ops.linear import matmul
    from lowp.runtime import Session

    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max + 1, (2, 3, k)).astype(dtype)
    b = rng.integers(info.min, info.max + 1, (2, k, 4)).astype(dtype)
    za, zb, zy = int(rng.integers(info.min, info.max + 1)), 3, 7
    sa, sb, sy = np.float32(0.02), np.float32(0.03), np.float32(0.05 * k)
    t = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    init = [numpy_helper.from_array(v, n) for n, v in (
        ("sa", sa), ("sb", sb), ("sy", sy), ("za", np.array(za, dtype)),
        ("zb", np.array(zb, dtype)), ("zy", np.array(zy, np.uint8)))]
    nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["af"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["bf"]),
             helper.make_node("MatMul", ["af", "bf"], ["yf"]),
             helper.make_node("QuantizeLinear", ["yf", "sy", "zy"], ["y"])]
    if dtype == np.int8:
        from lowp.runtime.lowering import QOPERATOR_KEY
        tag = nodes[2].metadata_props.add()
        tag.key, tag.value = QOPERATOR_KEY, "QLinearMatMul"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", t, a.shape),
                                           helper.make_tensor_value_info("b", t, b.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, (2, 3, 4))],
                              init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = Session(model, backend="reference")
    assert [s.kind for s in session.steps] == ["int"]
    from lowp.fixedpoint import requant_scale
    want = matmul(a, b, a_zero_point=za, b_zero_point=zb,
                  requant=Requant(requant_scale(sa, sb, sy), zy, 0, 255))
    np.testing.assert_array_equal(session.run({"a": a, "b": b})["y"], want)


@given(st.lists(st.tuples(st.sampled_from([np.uint8, np.int8]),
                          st.floats(2.0 ** -8, 4.0, width=32), st.integers(-20, 20),
                          st.integers(0, 5)), min_size=1, max_size=4),
       st.sampled_from([np.uint8, np.int8]), st.floats(2.0 ** -8, 4.0, width=32),
       st.integers(-20, 20), st.booleans(), st.sampled_from(list(RequantMode)),
       st.integers(0, 2), st.integers(0, 1000))
def test_concat_equals_reference(parts, out_dtype, sy, zy, narrow, mode, axis, seed):
    """Copied, natively rescaled and reference-rescaled parts all equal lowp.ops.concat."""
    from lowp.ops.concat import concat
    from lowp.qparams import QParams, QType
    from lowp.runtime import fastops
    rng = np.random.default_rng(seed)
    qt = {np.uint8: QType.UINT8, np.int8: QType.INT8}
    yqt = qt[out_dtype]
    lo, hi = (yqt.qmin + 10, yqt.qmax - 7) if narrow else (yqt.qmin, yqt.qmax)
    yqp = QParams(np.float32(sy), np.int32(zy), yqt, lo, hi)
    xs, qps = [], []
    for k, (dt, s, z, width) in enumerate(parts):
        same = k == 0                     # one part in the output's own qparams
        dt = out_dtype if same else dt
        xq = qt[dt]
        qps.append(QParams(np.float32(sy if same else s), np.int32(zy if same else z), xq,
                           xq.qmin, xq.qmax))
        shape = [2, 3, 4]
        shape[axis] = width
        info = np.iinfo(dt)
        xs.append(rng.integers(info.min, info.max + 1, shape).astype(dt))
    want = concat(xs, qps, yqp, axis, mode)
    arena = fastops.Arena()
    for _ in range(2):
        got = fastops.make_concat(qps, yqp, mode)(xs, axis, arena)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_concat_of_parts_that_differ_off_the_axis_raises(axis):
    """Parts whose other axes differ are refused, as numpy's concatenate refuses them, on
    the native block-copy path too (which would otherwise copy bytes of mismatched rows)."""
    from lowp.qparams import QParams, QType
    from lowp.runtime import fastops
    qp = QParams(np.float32(0.1), np.int32(3), QType.UINT8, 0, 255)
    a = np.zeros((2, 2, 2), np.uint8)
    b_shape = [2, 2, 2]
    b_shape[(axis + 1) % 3] = 1
    b = np.zeros(b_shape, np.uint8)
    concat = fastops.make_concat([qp, qp], qp, RequantMode.FLOAT32)
    with pytest.raises(ValueError, match="dimension"):
        concat([a, b], axis, fastops.Arena())


@given(shape=st.tuples(st.integers(0, 2), st.integers(1, 9), st.integers(0, 5),
                       st.integers(1, 5)), rank=st.integers(2, 4),
       dtype=st.sampled_from([np.uint8, np.int8]), seed=st.integers(0, 2**16))
def test_per_channel_quantize_equals_the_reference(shape: tuple[int, ...], rank: int,
                                                   dtype: type, seed: int) -> None:
    # one scale and zero point per channel (axis 1, docs/operators.md (O240)): the native
    # loop plane by plane, with ties, NaN and infinities; of rank 2 too (a Gemm weight
    # [K, N] quantized along axis 1 in ONNX Runtime's QDQ file came out all zero: each
    # "plane" was a copied scalar, found by the graph fuzzer)
    shape = shape[:rank]
    from lowp.qparams import PerAxis, QParams, QType
    from lowp.qparams import quantize as reference_quantize
    from lowp.runtime.fastops import quantize as fast_quantize

    rng = np.random.default_rng(seed)
    qtype = QType.from_numpy(np.dtype(dtype))
    scale = rng.uniform(1e-3, 0.5, shape[1]).astype(np.float32)
    zero_point = rng.integers(qtype.qmin, qtype.qmax + 1, shape[1]).astype(np.int32)
    qp = QParams(scale, zero_point, qtype, qtype.qmin, qtype.qmax, PerAxis(1))
    x = (rng.standard_normal(shape) * 40).astype(np.float32)
    x.reshape(-1)[::7] = np.float32(0.5) * scale[0]            # ties
    x.reshape(-1)[1::11] = [np.nan, np.inf, -np.inf][seed % 3]
    np.testing.assert_array_equal(fast_quantize(x, qp), reference_quantize(x, qp))
