"""A grouped float ConvTranspose of a permuted view (a channels-last tensor read
channels-first, as a dequantized convolution output reaches DeepFilterNet3's ERB decoder)
copies its input channels-first once by a native `take` (native_float.contiguous_copy)
rather than gathering each group's row across the tensor: the same values, so the same
products and sums as the numpy reference and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import float_nn, native_float
from lowp.runtime.backends import native_available
from lowp.runtime.tape import recording
from tests.runtime.ort_agreement import assert_engines_agree

pytestmark = pytest.mark.skipif(
    not native_available() or not hasattr(native_float._extension(), "take"),
    reason="the native extension is not built")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=2, max_size=5), st.randoms(use_true_random=False))
def test_contiguous_copy_of_any_permuted_view(shape: list[int], rnd) -> None:
    base = np.random.default_rng(rnd.randint(0, 2**16)).standard_normal(shape).astype(
        np.float32)
    perm = list(range(len(shape)))
    rnd.shuffle(perm)
    view = base.transpose(perm)
    with recording() as tape:
        got = native_float.contiguous_copy(view)
    assert got is not None and got.flags.c_contiguous and len(tape) == 1
    np.testing.assert_array_equal(got.view(np.uint32), np.ascontiguousarray(view).view(np.uint32))


def test_a_copy_needs_a_permuted_view_of_contiguous_memory() -> None:
    x = np.zeros((4, 6, 8), np.float32)
    assert native_float.contiguous_copy(x[:, ::2]) is None
    assert native_float.contiguous_copy(x[:, ::-1]) is None


KW = {"dilations": [1, 1], "kernel_shape": [1, 3], "output_padding": [0, 1],
      "pads": [0, 1, 0, 1], "strides": [1, 2]}


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([2, 4, 16, 64]), st.integers(1, 3), st.integers(1, 12),
       st.integers(1, 9), st.integers(0, 2**16))
def test_grouped_conv_transpose_of_a_channels_last_view_equals_the_reference(
        groups: int, per_group: int, h: int, w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = groups * per_group
    x = rng.standard_normal((1, h, w, c)).astype(np.float32).transpose(0, 3, 1, 2)
    weights = rng.standard_normal((c, 1, 1, 3)).astype(np.float32)
    for constant in (False, True):
        with native_float.disabled():
            want = float_nn.ConvTranspose(x, weights, group=groups, w_constant=constant, **KW)
        got = float_nn.ConvTranspose(x, weights, group=groups, w_constant=constant, **KW)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_deepfilternet_erb_decoder_conv_transpose_after_a_channels_last_tensor() -> None:
    """Transpose (NHWC -> NCHW) -> ConvTranspose with 64 groups, stride 2 along frequency,
    against ONNX Runtime."""
    rng = np.random.default_rng(11)
    weights = (rng.standard_normal((64, 1, 1, 3)) * 0.3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
         helper.make_node("ConvTranspose", ["t", "w"], ["y"], group=64, **KW)], "convt",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 40, 8, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 40, 16])],
        [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert_engines_agree(model, {"x": rng.standard_normal((1, 40, 8, 64)).astype(np.float32)})


@pytest.mark.parametrize("threads", [1, 2])
def test_one_channel_per_group_conv_transpose_replays_inside_a_program(threads: int) -> None:
    """DeepFilterNet3's 64-group ConvTranspose (one input channel per group) is one native
    call, held by the replayed Program (it was 64 GEMMs and a col2im repeated from Python),
    and its output is ONNX Runtime's at 1 and 2 threads, bit for bit."""
    import onnxruntime as ort

    from lowp.runtime import Session

    rng = np.random.default_rng(5)
    weights = (rng.standard_normal((64, 1, 1, 3)) * 0.3).astype(np.float32)
    bias = rng.standard_normal(64).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=64, **KW)], "convt",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 40, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 40, 16])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.standard_normal((1, 64, 40, 8)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = -0.0
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    want = ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    session = Session(model, backend="native", threads=threads)
    for _ in range(3):                  # recorded twice, then replayed
        got = session.run({"x": x})["y"]
    session.run({"x": x}, profile=True)
    assert list(session.last_profile) == ["ConvTranspose:float"]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
