"""Which NaN float32 InstanceNormalization and BatchNormalization hand on where NaNs of
different payloads meet (x, scale, bias, mean, variance), against ONNX Runtime bit for bit
(docs/operators.md (O221)): the scale's before 1 / stdev's, x's before the scale's (the
scale's in the last value of a plane whose Eigen tail has three values, and in
BatchNormalization's one-value planes but the first two channels of images starting one or
two values past a 16-byte boundary, (O272)), x * s's before the shift's; InstanceNormalization's
squared norm of x - mean in its own lane order. Before, numpy's choice of two NaNs (which
its SIMD loops make by array length) gave other payloads (repro item 200)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from .ort_agreement import assert_bits_agree


def _nans(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` NaNs of random payloads, signs, quiet or signalling."""
    bits = (rng.integers(1, 1 << 22, n).astype(np.uint32) | np.uint32(0x7F800000)
            | (rng.integers(0, 2, n).astype(np.uint32) << 31)
            | (rng.integers(0, 2, n).astype(np.uint32) << 22))
    return bits.view(np.float32)


def _with_nans(rng: np.random.Generator, a: np.ndarray, share: float) -> np.ndarray:
    a = a.copy()
    hit = rng.random(a.shape) < share
    a[hit] = _nans(rng, int(hit.sum()))
    return a


def _model(op: str, shape: tuple[int, ...], params: dict[str, np.ndarray],
           constant: bool) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))]
    if not constant:
        inputs += [helper.make_tensor_value_info(k, TensorProto.FLOAT, [shape[1]])
                   for k in params]
    graph = helper.make_graph(
        [helper.make_node(op, ["x", *params], ["y"])], "g", inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
        [numpy_helper.from_array(v, k) for k, v in params.items()] if constant else [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


_SHAPES = st.tuples(st.integers(1, 3), st.integers(1, 6),
                    st.lists(st.integers(1, 11), min_size=1, max_size=2))


@settings(max_examples=40, deadline=None)
@given(shape=_SHAPES, share=st.sampled_from([0.05, 0.3]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_instance_norm_hands_on_onnxruntimes_nan(shape, share, threads, seed):
    rng = np.random.default_rng(seed)
    n, c, spatial = shape
    full = (n, c, *spatial)
    x = _with_nans(rng, rng.standard_normal(full).astype(np.float32), share)
    params = {"scale": _with_nans(rng, rng.standard_normal(c).astype(np.float32), 0.4),
              "bias": _with_nans(rng, rng.standard_normal(c).astype(np.float32), 0.4)}
    model = _model("InstanceNormalization", full, params, constant=False)
    assert_bits_agree(model, {"x": x, **params}, threads)


@settings(max_examples=40, deadline=None)
@given(shape=_SHAPES, share=st.sampled_from([0.0, 0.05, 0.3]), constant=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_batch_norm_hands_on_onnxruntimes_nan(shape, share, constant, threads, seed):
    rng = np.random.default_rng(seed)
    n, c, spatial = shape
    full = (n, c, *spatial)
    x = _with_nans(rng, rng.standard_normal(full).astype(np.float32), share)
    params = {k: _with_nans(rng, v.astype(np.float32), 0.3) for k, v in
              (("scale", rng.standard_normal(c)), ("bias", rng.standard_normal(c)),
               ("mean", rng.standard_normal(c)), ("var", rng.random(c) + 0.5))}
    model = _model("BatchNormalization", full, params, constant)
    assert_bits_agree(model, {"x": x} if constant else {"x": x, **params}, threads)


@pytest.mark.parametrize("op", ["InstanceNormalization", "BatchNormalization"])
@pytest.mark.parametrize("w", [1, 3, 5, 7, 11])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_nan_x_times_a_nan_scale_in_every_plane_position(op, w, threads):
    # every value of x a NaN of one payload, every scale a NaN of another: x's, except the
    # last value of planes with a three-value Eigen tail (and BatchNormalization's one-value
    # planes), which take the scale's
    c = 4
    x = np.full((1, c, w), np.uint32(0x7FC00001).view(np.float32))
    scale = np.full(c, np.uint32(0x7FC00002).view(np.float32))
    params = {"scale": scale, "bias": np.zeros(c, np.float32)}
    if op == "BatchNormalization":
        params |= {"mean": np.zeros(c, np.float32), "var": np.ones(c, np.float32)}
    model = _model(op, x.shape, params, constant=False)
    assert_bits_agree(model, {"x": x, **params}, threads)


@pytest.mark.parametrize("channels", [1, 2, 3, 5, 6, 7, 9])
@pytest.mark.parametrize("spatial", [(), (1,), (1, 1)])
def test_batch_norm_of_one_value_planes_over_several_images(channels, spatial):
    # x NaNs of payloads 1, 2, ... against NaN scales: ONNX Runtime keeps x's in channels 0
    # and 1 of the images whose C values start one or two values past a 16-byte boundary
    # (N = 2, C = 5: planes 5 and 6), the scale's elsewhere; before, lowp took the scale's
    # everywhere
    n = 8
    shape = (n, channels, *spatial)
    x = (np.uint32(0x7FC00000) | (np.arange(n * channels, dtype=np.uint32) + 1)).view(
        np.float32).reshape(shape)
    scale = (np.uint32(0x7FC10000) | np.arange(channels, dtype=np.uint32)).view(np.float32)
    params = {"scale": scale, "bias": np.zeros(channels, np.float32),
              "mean": np.zeros(channels, np.float32), "var": np.ones(channels, np.float32)}
    model = _model("BatchNormalization", shape, params, constant=True)
    for threads in (1, 2):
        assert_bits_agree(model, {"x": x}, threads)
