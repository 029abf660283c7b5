"""lowp.runtime.nchwc_conv: float32 2-D convolutions that ONNX Runtime moves to its NCHWc
kernels equal ONNX Runtime bit for bit; the native kernel equals the numpy reference on
every instruction-set path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from lowp.runtime import nchwc_conv

from .ort_agreement import assert_engines_agree

needs_blocks = pytest.mark.skipif(nchwc_conv.block_size() == 0,
                                  reason="no AVX2: ONNX Runtime keeps NCHW convolutions")


def _model(w: np.ndarray, b: np.ndarray | None, x_shape: tuple[int, ...],
           **attrs: object) -> object:
    inits = [numpy_helper.from_array(w, "w")] + ([] if b is None else
                                                [numpy_helper.from_array(b, "b")])
    node = helper.make_node("Conv", ["x", "w"] + ([] if b is None else ["b"]), ["y"], **attrs)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", 1, x_shape)],
                              [helper.make_tensor_value_info("y", 1, ["n", "m", "h", "w"])],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@needs_blocks
@pytest.mark.parametrize("c,m,k,group,pads,strides,dilations", [
    (32, 64, 3, 1, [1, 1, 1, 1], [1, 1], [1, 1]),      # blocks of input channels
    (48, 24, 3, 1, [2, 2, 2, 2], [2, 1], [2, 2]),      # output channels not a block multiple
    (3, 16, 3, 1, [1, 1, 1, 1], [2, 2], [1, 1]),       # fewer channels than a block: NCHW input
    (256, 32, 1, 1, [0, 0, 0, 0], [1, 1], [1, 1]),     # pointwise, two 128-channel chunks
    (32, 32, 1, 1, [1, 0, 1, 0], [1, 1], [1, 1]),      # padded 1x1: the general kernel
    (32, 32, 3, 32, [1, 1, 1, 1], [1, 1], [1, 1]),     # depthwise
    (64, 64, 3, 2, [0, 1, 1, 0], [1, 1], [1, 1]),      # grouped, asymmetric padding
    (20, 32, 3, 1, [1, 1, 1, 1], [1, 1], [1, 1]),      # a partial last block of channels
    (17, 8, 3, 1, [1, 1, 1, 1], [1, 1], [1, 1]),       # not NCHWc: MLAS's im2col SGEMM
    (24, 24, 3, 3, [1, 1, 1, 1], [1, 1], [1, 1]),      # grouped, not NCHWc
])
def test_conv_equals_onnxruntime(c: int, m: int, k: int, group: int, pads: list[int],
                                 strides: list[int], dilations: list[int]) -> None:
    rng = np.random.default_rng(c + m + k)
    x = rng.standard_normal((2, c, 11, 10)).astype(np.float32)
    w = (rng.standard_normal((m, c // group, k, k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    model = _model(w, b, x.shape, pads=pads, strides=strides, dilations=dilations, group=group)
    assert_engines_agree(model, {"x": x})


def test_plan_follows_the_layout_transformer() -> None:
    block = nchwc_conv.block_size()
    if block == 0:
        assert nchwc_conv.plan((1, 32, 8, 8), (32, 32, 3, 3), 1, True, True) is None
        return
    plan = nchwc_conv.plan
    assert plan((1, 2 * block, 8, 8), (32, 2 * block, 3, 3), 1, True, True).kind == "nchwc"
    assert plan((1, 3, 8, 8), (16, 3, 3, 3), 1, True, True).kind == "nchw"
    assert plan((1, block, 8, 8), (8, block, 1, 1), 1, True, True).kind == "pointwise"
    assert plan((1, 2 * block, 8, 8), (2 * block, 1, 3, 3), 2 * block, True, True).kind \
        == "depthwise"
    assert plan((1, block + 4, 8, 8), (16, block + 4, 3, 3), 1, True, True).kind == "nchwc"
    assert plan((1, block + 3, 8, 8), (16, block + 3, 3, 3), 1, True, True) is None
    assert plan((1, 2 * block, 8, 8), (32, 2 * block, 3, 3), 1, False, True) is None
    assert plan((1, 2 * block, 8, 8), (32, 2 * block, 3, 3), 1, True, False) is None
    assert plan((1, 2 * block, 8), (32, 2 * block, 3), 1, True, True) is None
    assert plan((1, 12, 8, 8), (12, 1, 3, 3), 12, True, True) is None   # 12 % block


@st.composite
def _convs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int,
                                     list[int], list[int], list[int], str]:
    kind = draw(st.sampled_from(["nchwc", "pointwise", "nchw", "depthwise"]))
    group = 1
    block = 8
    if kind == "depthwise":
        c = m = group = 8 * draw(st.integers(1, 3))
        cg, k = 1, draw(st.integers(1, 4))
    elif kind == "nchw":
        c, m, k = draw(st.integers(1, 7)), draw(st.integers(1, 20)), draw(st.integers(1, 4))
        cg = c
    else:
        group = draw(st.sampled_from([1, 2])) if kind == "nchwc" else 1
        cg = block * draw(st.integers(1, 3)) if kind == "nchwc" else draw(st.integers(1, 300))
        c, m = cg * group, group * 8 * draw(st.integers(1, 3))
        k = 1 if kind == "pointwise" else draw(st.integers(1, 4))
    n = draw(st.integers(0, 2))
    h, w = draw(st.integers(k, k + 6)), draw(st.integers(k, k + 6))
    pads = [0] * 4 if kind == "pointwise" else [draw(st.integers(0, 2)) for _ in range(4)]
    strides = [draw(st.integers(1, 3)) for _ in range(2)]
    dil = [1, 1] if k == 1 else [draw(st.integers(1, 2)) for _ in range(2)]
    if any((s_ + a + b_ - (k - 1) * d - 1) < 0 for s_, a, b_, d in
           ((h, pads[0], pads[2], dil[0]), (w, pads[1], pads[3], dil[1]))):
        dil, pads = [1, 1], [k, k, k, k]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((m, cg, k, k)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32) if draw(st.booleans()) else None
    return x, wt, b, group, pads, strides, dil, kind


@pytest.mark.skipif(nchwc_conv._native_isa() is None, reason="native module not built")
@settings(max_examples=60, deadline=None)
@given(_convs())
def test_native_equals_reference_on_every_path(case: tuple) -> None:  # type: ignore[type-arg]
    from lowp import _float_conv

    x, w, b, group, pads, strides, dil, kind = case
    plan = nchwc_conv.Plan(kind, 8)
    ref = nchwc_conv.reference(x, w, b, plan, group, pads, strides, dil)
    for isa in ("scalar", "avx2", "avx512"):
        if isa == "avx512" and not nchwc_conv.block_size() == 16:
            continue
        y = np.empty_like(ref)
        if y.size:
            _float_conv.conv(x, nchwc_conv.pack(w, group), b, y, nchwc_conv.KINDS[kind], 8,
                             group, w.shape[2], w.shape[3], strides[0], strides[1], dil[0],
                             dil[1], pads[0], pads[1], isa, 2)
        np.testing.assert_array_equal(y, ref, err_msg=f"{isa} {kind}")


@pytest.mark.parametrize("x_shape,w_shape,pads", [
    ((2, 16, 100), (32, 16, 5), [2, 2]),                   # 1-D
    ((1, 1, 4000), (64, 1, 400), [0, 0]),                  # 1-D, an STFT's shape
    ((1, 4, 6, 8, 8), (8, 4, 3, 3, 3), [1, 1, 1, 1, 1, 1]),  # 3-D
])
def test_im2col_convolutions_equal_onnxruntime(x_shape: tuple[int, ...],
                                               w_shape: tuple[int, ...],
                                               pads: list[int]) -> None:
    """Convolutions ONNX Runtime keeps in NCHW: im2col, then MLAS's SGEMM per image."""
    rng = np.random.default_rng(len(x_shape))
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) * 0.1).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    strides = [160] if w_shape[-1] == 400 else [1] * (len(x_shape) - 2)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=pads, strides=strides)
    out = ["n", "m"] + [f"s{i}" for i in range(len(x_shape) - 2)]
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", 1, x_shape)],
                              [helper.make_tensor_value_info("y", 1, out)],
                              initializer=[numpy_helper.from_array(w, "w"),
                                           numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert_engines_agree(model, {"x": x})
