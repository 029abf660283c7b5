"""The native kernels of a Loop body's small integer steps (native_float.cast_integer,
one_hot, arg_max; portable code, the same on every instruction-set path): equal to the numpy
operators (float_ops with the native kernels off) bit for bit, and replayed in a Loop body
with ONNX Runtime's values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, float_ops, native_float
from lowp.runtime import native_backend as nb
from lowp.runtime.backends import native_available
from tests.runtime.ort_agreement import onnxruntime_run

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")

INTS = [np.int64, np.int32, np.uint8, np.int8, np.bool_]
TO = {np.int64: TensorProto.INT64, np.int32: TensorProto.INT32, np.uint8: TensorProto.UINT8,
      np.int8: TensorProto.INT8, np.bool_: TensorProto.BOOL}


def _same(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.reshape(-1).view(np.uint8),
                                  theirs.reshape(-1).view(np.uint8))


@given(src=st.sampled_from(INTS), dst=st.sampled_from(INTS), data=st.data())
@settings(max_examples=60, deadline=None)
def test_cast_integer_is_numpys(src, dst, data):
    x = data.draw(hnp.arrays(src, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)))
    with native_float.disabled():
        theirs = float_ops.Cast(x, to=TO[dst])
    ours = float_ops.Cast(x, to=TO[dst])
    _same(np.asarray(ours), np.asarray(theirs))
    if src != dst and x.size:
        assert native_float.cast_integer(x, np.dtype(dst)) is not None


@given(dtype=st.sampled_from([np.int64, np.int32, np.int8, np.uint8]),
       depth=st.integers(1, 9), data=st.data(),
       values=st.tuples(st.floats(width=32), st.floats(width=32)))
@settings(max_examples=60, deadline=None)
def test_one_hot_is_numpys(dtype, depth, data, values):
    indices = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                                   elements=st.integers(0 if dtype == np.uint8 else -12, 12)))
    vals = np.array(values, np.float32)
    d = np.array([depth], np.int64)
    with native_float.disabled():
        theirs = float_ops.OneHot(indices, d, vals, axis=-1)
    ours = float_ops.OneHot(indices, d, vals, axis=-1)
    _same(ours, theirs)
    assert native_float.one_hot(indices, depth, vals, -1) is not None or indices.size == 0


@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                    elements=st.sampled_from([0.0, -0.0, 1.0, -2.5, 3.0, np.inf, -np.inf,
                                              np.nan, 7.25])),
       axis=st.integers(0, 2), keepdims=st.sampled_from([0, 1]), last=st.sampled_from([0, 1]),
       path=st.sampled_from(["avx512vnni", "avx2", "scalar"]))
@settings(max_examples=80, deadline=None)
def test_arg_max_is_numpys(x, axis, keepdims, last, path):
    axis = axis % x.ndim
    with native_float.disabled():
        theirs = float_ops.ArgMax(x, axis=axis, keepdims=keepdims, select_last_index=last)
    with nb.use_path(path) if path in nb.available_paths() else native_float.disabled():
        ours = float_ops.ArgMax(x, axis=axis, keepdims=keepdims, select_last_index=last)
    _same(ours, theirs)


def _token_loop(steps: int, classes: int, fed_values: bool = False) -> object:
    """A decoder's token bookkeeping: the previous token (int32) one-hot, scores from it,
    their ArgMax cast back to int32, and a bool condition through int64 (paddle2onnx's)."""
    n = helper.make_node
    vi = helper.make_tensor_value_info
    body = helper.make_graph(
        [n("Cast", ["tok_in"], ["tok64"], to=TensorProto.INT64),
         n("OneHot", ["tok64", "depth", "vals"], ["hot"], axis=-1),
         n("MatMul", ["hot", "w"], ["scores"]),
         n("Add", ["scores", "bias_in"], ["s2"]),
         n("ArgMax", ["s2"], ["best"], axis=1, keepdims=0),
         n("Cast", ["best"], ["tok_out"], to=TensorProto.INT32),
         n("Cast", ["cond_in"], ["c64"], to=TensorProto.INT64),
         n("Cast", ["c64"], ["cond_out"], to=TensorProto.BOOL),
         n("Identity", ["s2"], ["bias_out"])],
        "body", [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []),
                 vi("tok_in", TensorProto.INT32, [1]), vi("bias_in", TensorProto.FLOAT,
                                                          [1, classes])],
        [vi("cond_out", TensorProto.BOOL, []), vi("tok_out", TensorProto.INT32, [1]),
         vi("bias_out", TensorProto.FLOAT, [1, classes]), vi("hot", TensorProto.FLOAT,
                                                             [1, classes])],
        [numpy_helper.from_array(np.array([classes], np.int64), "depth")]
        + ([] if fed_values else [numpy_helper.from_array(np.array([0.0, 1.0], np.float32),
                                                          "vals")]))
    rng = np.random.default_rng(classes)
    w = rng.standard_normal((classes, classes)).astype(np.float32)
    graph = helper.make_graph(
        [n("Loop", ["steps", "cond", "tok0", "bias0"], ["tok", "bias", "hots"], body=body)],
        "g", [vi("tok0", TensorProto.INT32, [1]), vi("bias0", TensorProto.FLOAT, [1, classes])]
        + ([vi("vals", TensorProto.FLOAT, [2])] if fed_values else []),
        [vi("tok", TensorProto.INT32, [1]), vi("bias", TensorProto.FLOAT, [1, classes]),
         vi("hots", TensorProto.FLOAT, [steps, 1, classes])],
        [numpy_helper.from_array(np.int64(steps), "steps"),
         numpy_helper.from_array(np.array(True), "cond"),
         numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("classes", [5, 30])
def test_token_steps_replay_in_a_loop_body(classes):
    model = _token_loop(7, classes)
    feeds = {"tok0": np.array([2], np.int32),
             "bias0": np.linspace(-1, 1, classes, dtype=np.float32).reshape(1, classes)}
    theirs = onnxruntime_run(model, feeds)
    session = Session(model)
    for _ in range(3):
        ours = session.run(feeds)
        for name, value in zip(("tok", "bias", "hots"), theirs, strict=True):
            _same(ours[name], value)
    (loop,) = [s for s in session.steps if s.op_type == "Loop"]
    from lowp.runtime.control import SubPlan
    (plan,) = [c.cell_contents for c in loop.fn.__closure__ or ()
               if isinstance(c.cell_contents, SubPlan)]
    replayer = plan._replayer
    (signature,) = list(replayer._ready)
    assert replayer.plain_steps(signature) == []


def test_one_hot_of_fed_values_follows_them():
    # (the kernel holds the values as numbers: values read from a feed are not replayed)
    model = _token_loop(4, 6, fed_values=True)
    session = Session(model)
    for run in range(5):
        feeds = {"tok0": np.array([1], np.int32),
                 "bias0": np.linspace(-1, 1, 6, dtype=np.float32).reshape(1, 6),
                 "vals": np.array([0.0, 1.0 + (run >= 3)], np.float32)}
        theirs = onnxruntime_run(model, feeds)
        ours = session.run(feeds)
        for name, value in zip(("tok", "bias", "hots"), theirs, strict=True):
            _same(ours[name], value)
