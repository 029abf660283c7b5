"""A Loop body's large float product runs only when its operands' bytes changed
(`Program.memoize_last`, lowp.runtime.replay.memoized): the same values as a plain run and
ONNX Runtime, whether the operands change on each iteration, stay the same after the first
(slanet_table's attention keys: carried through `x + 0`, which turns -0 into +0), or
change between runs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session
from lowp.runtime.backends import native_available
from lowp.runtime.program import extension
from lowp.runtime.replay import memoized
from tests.runtime.ort_agreement import onnxruntime_run

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")

F = TensorProto.FLOAT
vi = helper.make_tensor_value_info


def test_memoized_call_skips_unchanged_operands():
    ext = extension()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 32)).astype(np.float32)
    b = rng.standard_normal((32, 48)).astype(np.float32)
    c = np.empty((64, 48), np.float32)
    expect = np.empty_like(c)
    ext.float_sgemm_mlas(a, b, expect, 1.0, False, False, False, 1)
    prog = ext.Program()
    prog.float_sgemm_mlas(a, b, c, 1.0, False, False, False, 1)
    prog.memoize_last([a, b])
    prog.run()
    np.testing.assert_array_equal(c, expect)
    c[:] = 7.0                      # (not written again while a and b are the same bytes)
    prog.run()
    assert (c == 7.0).all()
    b[3, 5] = -b[3, 5]              # one operand changed: computed again
    prog.run()
    ext.float_sgemm_mlas(a, b, expect, 1.0, False, False, False, 1)
    np.testing.assert_array_equal(c, expect)
    a[1, 1] = 0.0
    prog.run()
    a[1, 1] = -0.0                  # (the sign of a zero is a change of bytes)
    c[:] = 7.0
    prog.run()
    ext.float_sgemm_mlas(a, b, expect, 1.0, False, False, False, 1)
    np.testing.assert_array_equal(c, expect)


def test_memoized_needs_a_large_product_writing_none_of_its_operands():
    ext = extension()
    a = np.ones((1, 256), np.float32)
    b = np.ones((256, 256), np.float32)
    c = np.empty((1, 256), np.float32)
    assert memoized([(ext.float_sgemm_mlas, (a, b, c, 1.0, False, False, False, 1))]) is None
    a = np.ones((256, 96), np.float32)
    b = np.ones((96, 256), np.float32)
    c = np.empty((256, 256), np.float32)
    made = memoized([(ext.float_sgemm_mlas, (a, b, c, 1.0, False, False, False, 1))])
    assert made is not None and made[0] is a and made[1] is b
    bt = np.ones((256, 96), np.float32).T   # (a transposed view: its whole base is compared)
    made = memoized([(ext.float_sgemm_mlas, (a, bt, c, 1.0, False, True, False, 1))])
    assert made is not None and made[1] is bt.base
    assert memoized([(ext.float_binary, (0, a, a, c))]) is None


def _attention_loop(rows: int, k: int, n: int) -> onnx.ModelProto:
    """A Loop carrying `keys` (rows x k) through Unsqueeze -> Add 0 -> Squeeze (paddle2onnx's
    assign) and `h` (1 x n); each iteration h = tanh(keys @ w) summed over rows * 0.1 + h
    + drift, `drift` fed (zero: h's product operands stay the same after the first)."""
    n_ = helper.make_node
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    body = helper.make_graph(
        [n_("MatMul", ["keys_in", "w"], ["prod"]),
         n_("Tanh", ["prod"], ["t"]),
         n_("ReduceSum", ["t", "axes"], ["s"], keepdims=1),
         n_("Mul", ["s", "tenth"], ["s10"]),
         n_("Add", ["s10", "h_in"], ["h1"]),
         n_("Add", ["h1", "drift"], ["h_out"]),
         n_("Unsqueeze", ["keys_in", "axes"], ["ku"]),
         n_("Add", ["ku", "zero"], ["kz"]),
         n_("Squeeze", ["kz", "axes"], ["keys_out"]),
         n_("Identity", ["cond_in"], ["cond_out"])],
        "body", [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []),
                 vi("keys_in", F, [rows, k]), vi("h_in", F, [1, n])],
        [vi("cond_out", TensorProto.BOOL, []), vi("keys_out", F, [rows, k]),
         vi("h_out", F, [1, n])],
        [zero, axes, numpy_helper.from_array(np.array(0.1, np.float32), "tenth")])
    rng = np.random.default_rng(rows * 1000 + k * 10 + n)
    w = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")
    graph = helper.make_graph(
        [n_("Loop", ["steps", "", "keys0", "h0"], ["keys", "h"], body=body)], "g",
        [vi("keys0", F, [rows, k]), vi("h0", F, [1, n]), vi("drift", F, [1, n]),
         vi("steps", TensorProto.INT64, [])],
        [vi("keys", F, [rows, k]), vi("h", F, [1, n])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@given(rows=st.sampled_from([16, 64, 100]), k=st.sampled_from([8, 32, 96]),
       n=st.sampled_from([16, 64]), steps=st.integers(1, 6), negative_zero=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_loop_product_of_unchanged_operands(rows, k, n, steps, negative_zero, threads, seed):
    model = _attention_loop(rows, k, n)
    rng = np.random.default_rng(seed)
    keys = rng.standard_normal((rows, k)).astype(np.float32)
    if negative_zero:
        keys[::3, 1] = -0.0
    feeds = {"keys0": keys, "h0": rng.standard_normal((1, n)).astype(np.float32),
             "drift": np.zeros((1, n), np.float32), "steps": np.array(steps, np.int64)}
    fast = Session(model, threads=threads)
    plain = Session(model, threads=threads, replay=False)
    for run in range(4):            # recorded twice, then replayed; then new keys
        if run == 3:
            feeds["keys0"] = rng.standard_normal((rows, k)).astype(np.float32)
        theirs = onnxruntime_run(model, feeds)
        ours, reference = fast.run(feeds), plain.run(feeds)
        for name, value in zip(("keys", "h"), theirs, strict=True):
            np.testing.assert_array_equal(ours[name].view(np.uint32),
                                          reference[name].view(np.uint32), err_msg=name)
            if threads == 1:
                np.testing.assert_array_equal(ours[name], value, err_msg=name)
