"""lowp.runtime.nchwc_conv: float32 2-D convolutions that ONNX Runtime moves to its NCHWc
kernels equal ONNX Runtime bit for bit; the native kernel equals the numpy reference on
every instruction-set path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from lowp.runtime import Session, nchwc_conv

from .ort_agreement import assert_engines_agree, onnxruntime_run

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
    (8, 8, 3, 8, [1, 1, 1, 1], [2, 1], [1, 1]),        # depthwise, channels padded to a block
    (12, 12, 3, 12, [1, 1, 1, 1], [1, 1], [1, 1]),     # (ppocr_cls_v2's 8-channel one)
    (10, 10, 3, 10, [1, 1, 1, 1], [1, 1], [1, 1]),     # depthwise kept in NCHW
    (64, 64, 3, 2, [0, 1, 1, 0], [1, 1], [1, 1]),      # grouped, asymmetric padding
    (20, 32, 3, 1, [1, 1, 1, 1], [1, 1], [1, 1]),      # a partial last block of channels
    (17, 8, 3, 1, [1, 1, 1, 1], [1, 1], [1, 1]),       # not NCHWc: MLAS's im2col SGEMM
    (24, 24, 3, 3, [1, 1, 1, 1], [1, 1], [1, 1]),      # grouped, not NCHWc
    # grouped 1x1: MLAS's pointwise kernel per group (128-channel chains), not the NCHWc
    # kernel's blocks (was 690 of 864 values apart on [1, 128, 9, 3] by [32, 64, 1, 1])
    (128, 32, 1, 2, [0, 0, 0, 0], [1, 1], [1, 1]),
    (64, 64, 1, 2, [0, 0, 0, 0], [2, 1], [1, 1]),      # strided
    (64, 64, 1, 2, [1, 0, 0, 1], [1, 1], [1, 1]),      # padded: the NCHWc kernel
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
    assert plan((1, 4 * block, 8, 8), (2 * block, 2 * block, 1, 1), 2, True, True).kind \
        == "pointwise"
    assert plan((1, 4 * block, 8, 8), (2 * block, 2 * block, 3, 3), 2, True, True).kind \
        == "nchwc"
    assert plan((1, 2 * block, 8, 8), (2 * block, 1, 3, 3), 2 * block, True, True).kind \
        == "depthwise"
    assert plan((1, block + 4, 8, 8), (16, block + 4, 3, 3), 1, True, True).kind == "nchwc"
    assert plan((1, block + 3, 8, 8), (16, block + 3, 3, 3), 1, True, True) is None
    assert plan((1, 2 * block, 8, 8), (32, 2 * block, 3, 3), 1, False, True) is None
    assert plan((1, 2 * block, 8, 8), (32, 2 * block, 3, 3), 1, True, False) is None
    assert plan((1, 2 * block, 8), (32, 2 * block, 3), 1, True, True) is None
    # depthwise: channels padded to a whole block when they are a multiple of 4
    assert plan((1, 12, 8, 8), (12, 1, 3, 3), 12, True, True).kind == "depthwise"
    assert plan((1, 10, 8, 8), (10, 1, 3, 3), 10, True, True) is None


ISAS = ("scalar", "avx2", "avx512")


def _native_paths() -> list[str]:
    return [isa for isa in ISAS if isa != "avx512" or nchwc_conv.block_size() == 16]


@st.composite
def _convs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int,
                                     list[int], list[int], list[int], str, int]:
    """Convolutions of every kind, with rows wide enough for several register tiles of
    columns (6 on AVX-512 and AVX2, 4 in the scalar code) and their remainders, output
    channels over one to five 16-lane blocks (the tiles take four blocks on AVX-512), borders
    of padding taps on both sides, strides and dilations."""
    kind = draw(st.sampled_from(["nchwc", "pointwise", "nchw", "depthwise"]))
    block = draw(st.sampled_from([8, 16]))
    group = 1
    if kind == "depthwise":
        c = m = group = 4 * draw(st.integers(1, 6))     # a partial last block too
        cg, k = 1, draw(st.integers(1, 4))
    elif kind == "nchw":
        c, m, k = draw(st.integers(1, 7)), draw(st.integers(1, 80)), draw(st.integers(1, 4))
        cg = c
    else:
        group = draw(st.sampled_from([1, 2]))
        cg = block * draw(st.integers(1, 3)) if kind == "nchwc" or group > 1 \
            else draw(st.integers(1, 300))
        c, m = cg * group, group * 8 * draw(st.integers(1, 10))
        if kind == "nchwc":
            cg -= draw(st.integers(0, 3)) if group == 1 else 0   # a partial last block
            c = cg * group
        k = 1 if kind == "pointwise" else draw(st.integers(1, 4))
    n = draw(st.integers(0, 2))
    h, w = draw(st.integers(k, k + 6)), draw(st.integers(k, k + 40))
    pads = [0] * 4 if kind == "pointwise" else [draw(st.integers(0, 2)) for _ in range(4)]
    strides = [draw(st.integers(1, 3)) for _ in range(2)]
    if draw(st.booleans()):
        strides[1] = 1          # depthwise runs stride-1 rows in vectors of columns
    dil = [1, 1] if k == 1 else [draw(st.integers(1, 2)) for _ in range(2)]
    if any((s_ + a + b_ - (k - 1) * d - 1) < 0 for s_, a, b_, d in
           ((h, pads[0], pads[2], dil[0]), (w, pads[1], pads[3], dil[1]))):
        dil, pads = [1, 1], [k, k, k, k]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((m, cg, k, k)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32) if draw(st.booleans()) else None
    return x, wt, b, group, pads, strides, dil, kind, block


def _native(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, group: int, pads: list[int],
            strides: list[int], dil: list[int], kind: str, block: int, isa: str,
            threads: int, out_shape: tuple[int, ...], sum: np.ndarray | None = None
            ) -> np.ndarray:
    from lowp import _float_conv

    y = np.full(out_shape, np.nan, np.float32)
    _float_conv.conv(x, nchwc_conv.pack(w, group), b, y, nchwc_conv.KINDS[kind], block, group,
                     w.shape[2], w.shape[3], strides[0], strides[1], dil[0], dil[1], pads[0],
                     pads[1], isa, threads, sum)
    return y


needs_native = pytest.mark.skipif(nchwc_conv._native_isa() is None,
                                  reason="native module not built")


@needs_native
@settings(max_examples=80, deadline=None)
@given(_convs())
def test_native_equals_reference_on_every_path(case: tuple) -> None:  # type: ignore[type-arg]
    x, w, b, group, pads, strides, dil, kind, block = case
    plan = nchwc_conv.Plan(kind, block)
    ref = nchwc_conv.reference(x, w, b, plan, group, pads, strides, dil)
    for isa in _native_paths():
        for threads in (1, 2):
            y = _native(x, w, b, group, pads, strides, dil, kind, block, isa, threads,
                        ref.shape)
            np.testing.assert_array_equal(y, ref, err_msg=f"{isa} {kind} {threads} threads")


@needs_native
@settings(max_examples=60, deadline=None)
@given(_convs(), st.integers(0, 2**16))
def test_native_with_a_sum_equals_reference_on_every_path(case: tuple,  # type: ignore[type-arg]
                                                          seed: int) -> None:
    """A fused Add's Sum (lowp.runtime.ort_nchwc_add): the first block of input channels
    adds to it, then the later blocks, then the bias; depthwise: the chain, then the Sum."""
    x, w, b, group, pads, strides, dil, kind, block = case
    plan = nchwc_conv.Plan(kind, block)
    shape = nchwc_conv.reference(x, w, b, plan, group, pads, strides, dil).shape
    z = (np.random.default_rng(seed).standard_normal(shape) * 4).astype(np.float32)
    ref = nchwc_conv.reference(x, w, b, plan, group, pads, strides, dil, z)
    for isa in _native_paths():
        for threads in (1, 2):
            y = _native(x, w, b, group, pads, strides, dil, kind, block, isa, threads,
                        ref.shape, z)
            np.testing.assert_array_equal(y, ref, err_msg=f"{isa} {kind} {threads} threads")


@needs_native
def test_sum_starts_the_first_block() -> None:
    """(z + block 0) + block 1, + bias: not the unfused ((block 0 + block 1) + bias) + z."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 32, 9, 21)).astype(np.float32)
    w = rng.standard_normal((16, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    plan, pads, ones = nchwc_conv.Plan("nchwc", 16), [1, 1, 1, 1], [1, 1]
    z = (rng.standard_normal((1, 16, 9, 21)) * 4).astype(np.float32)
    chains = [nchwc_conv.reference(x[:, i:i + 16], w[:, i:i + 16], None, plan, 1, pads, ones,
                                   ones) for i in (0, 16)]
    expected = (((z + chains[0]) + chains[1]) + b.reshape(1, -1, 1, 1)).astype(np.float32)
    ref = nchwc_conv.reference(x, w, b, plan, 1, pads, ones, ones, z)
    np.testing.assert_array_equal(ref, expected)
    unfused = nchwc_conv.reference(x, w, b, plan, 1, pads, ones, ones) + z
    assert (unfused != ref).any()
    with pytest.raises(ValueError, match="sum"):
        from lowp import _float_conv

        y = np.empty_like(z)
        _float_conv.conv(x, nchwc_conv.pack(w, 1), b, y, 0, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1,
                         "scalar", 1, y)


@needs_native
@pytest.mark.parametrize("kind,c,m,k,group,pads,strides,dil", [
    ("nchwc", 32, 80, 3, 1, [1, 1, 1, 1], [1, 1], [1, 1]),   # 5 output blocks: a tile + one
    ("nchwc", 16, 48, 3, 1, [2, 0, 0, 3], [1, 2], [2, 1]),   # uneven borders, strided rows
    ("nchwc", 20, 40, 5, 1, [2, 2, 2, 2], [1, 1], [1, 1]),   # partial block, 5x5
    ("nchwc", 32, 64, 3, 2, [1, 1, 1, 1], [1, 1], [1, 1]),   # grouped
    ("nchwc", 16, 16, 3, 1, [5, 5, 5, 5], [1, 1], [1, 1]),   # columns with no tap inside
    ("pointwise", 300, 40, 1, 1, [0, 0, 0, 0], [1, 1], [1, 1]),  # three 128-channel chunks
    ("nchw", 3, 32, 3, 1, [1, 1, 1, 1], [2, 2], [1, 1]),     # an image stem
    ("depthwise", 16, 16, 3, 16, [1, 1, 1, 1], [1, 1], [1, 1]),
    ("depthwise", 16, 16, 5, 16, [2, 2, 2, 2], [1, 1], [2, 2]),
    ("depthwise", 16, 16, 3, 16, [1, 1, 1, 1], [2, 2], [1, 1]),
])
def test_native_equals_reference_on_wide_rows(kind: str, c: int, m: int, k: int, group: int,
                                              pads: list[int], strides: list[int],
                                              dil: list[int]) -> None:
    """Rows of 53 columns: full register tiles and every remainder between the borders;
    signed zeros in the input (a chain of -0 products stays -0 only in order)."""
    rng = np.random.default_rng(c * m + k)
    x = rng.standard_normal((2, c, 9, 53)).astype(np.float32)
    x[:, :, ::3, ::2] = -0.0
    w = rng.standard_normal((m, c // group, k, k)).astype(np.float32)
    w[::4] = -0.0
    b = rng.standard_normal(m).astype(np.float32)
    for block in (8, 16):
        ref = nchwc_conv.reference(x, w, b, nchwc_conv.Plan(kind, block), group, pads,
                                   strides, dil)
        for isa in _native_paths():
            y = _native(x, w, b, group, pads, strides, dil, kind, block, isa, 2, ref.shape)
            np.testing.assert_array_equal(y, ref, err_msg=f"{isa} block {block}")


@needs_native
@pytest.mark.parametrize("strides", [[1, 1], [1, 2]])
def test_depthwise_padding_taps_keep_a_zero_sign_and_skip_infinite_weights(
        strides: list[int]) -> None:
    """Depthwise rows of 40 columns: a chain that underflows to -0 before a padding column's
    tap (fma(0, w > 0, -0) would make it +0) and a channel with an infinite weight on the
    padding's side (0 * inf would be NaN); the taps in the padding are skipped."""
    c, k = 16, 3
    x = np.zeros((1, c, 6, 40), np.float32)
    x[:, :8, 1, 0] = x[:, :8, 1, 39] = 1e-30
    w = np.full((c, 1, k, k), -1.0, np.float32)
    w[:8, :, :, :] = -1e-30             # the underflowing products (-1e-60 -> -0)
    w[:8, :, 2, 0] = 1.0                # the left padding column's tap of the last kernel row
    w[8:, :, 1, 0] = np.inf             # left padding column
    w[8:, :, 1, 2] = -np.inf            # right padding column
    x[:, 8:] = np.random.default_rng(0).standard_normal((c - 8, 6, 40)).astype(np.float32)
    pads, dil = [1, 1, 1, 1], [1, 1]
    ref = nchwc_conv.reference(x, w, None, nchwc_conv.Plan("depthwise", 16), c, pads,
                               strides, dil)
    assert np.signbit(ref[0, :8, 2, 0]).all()
    for isa in _native_paths():
        for threads in (1, 2):
            y = _native(x, w, None, c, pads, strides, dil, "depthwise", 16, isa, threads,
                        ref.shape)
            np.testing.assert_array_equal(y.view(np.uint32), ref.view(np.uint32),
                                          err_msg=f"{isa} {threads} threads")


@needs_blocks
@settings(max_examples=40, deadline=None)
@given(c=st.sampled_from([3, 16, 20, 32]), m=st.sampled_from([16, 32, 48]),
       k=st.integers(1, 5), h=st.integers(1, 40), stride=st.integers(1, 3),
       dil=st.integers(1, 3), pad=st.tuples(st.integers(0, 3), st.integers(0, 3)),
       depthwise=st.booleans(), n=st.integers(0, 2))
def test_column_images_run_as_rows_with_the_same_sums(c: int, m: int, k: int, h: int,
                                                      stride: int, dil: int,
                                                      pad: tuple[int, int], depthwise: bool,
                                                      n: int) -> None:
    """An image one column wide with a (k, 1) kernel (a TensorFlow 1-D convolution, magika's
    first layer) runs as a row: the same values as the reference, on the Program binding and
    on the module with a thread count, and as ONNX Runtime's NCHWc kernel."""
    if (h + pad[0] + pad[1] - (k - 1) * dil - 1) < 0:
        return
    group = c if depthwise and c % 16 == 0 else 1
    m = c if group > 1 else m
    rng = np.random.default_rng(c * h + k)
    x = rng.standard_normal((n, c, h, 1)).astype(np.float32)
    w = rng.standard_normal((m, c // group, k, 1)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    pads, strides, dil2 = [pad[0], 0, pad[1], 0], [stride, 1], [dil, 1]
    plan = nchwc_conv.plan(x.shape, w.shape, group, True, True)
    if plan is None:
        return
    ref = nchwc_conv.reference(x, w, b, nchwc_conv._pointwise(plan, w.shape[2:], pads), group,
                               pads, strides, dil2)
    for threads in (None, 1, 2):
        got = nchwc_conv.convolve(x, w, b, plan, group, pads, strides, dil2, threads=threads)
        np.testing.assert_array_equal(got, ref, err_msg=f"threads {threads}")
    if n:
        model = _model(w, b, x.shape, pads=pads, strides=strides, dilations=dil2, group=group)
        assert_engines_agree(model, {"x": x})


@needs_native
def test_native_rejects_a_depthwise_kind_of_other_shapes() -> None:
    x = np.zeros((1, 16, 5, 5), np.float32)
    w = np.zeros((32, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="depthwise"):
        _native(x, w, None, 16, [1, 1, 1, 1], [1, 1], [1, 1], "depthwise", 16, "scalar", 1,
                (1, 32, 5, 5))


def test_weights_are_packed_once_per_array_and_again_after_a_change() -> None:
    w = np.random.default_rng(0).standard_normal((24, 8, 3, 3)).astype(np.float32)
    first = nchwc_conv.packed_weights(w, 1)
    assert nchwc_conv.packed_weights(w, 1) is first
    np.testing.assert_array_equal(first, nchwc_conv.pack(w, 1))
    w[3, 2, 1, 0] = 7.0
    again = nchwc_conv.packed_weights(w, 1)
    assert again is not first
    np.testing.assert_array_equal(again, nchwc_conv.pack(w, 1))
    assert nchwc_conv.packed_weights(w.copy(), 1) is not again   # another array, packed anew


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


@needs_native
def test_the_program_binding_equals_the_module_and_checks_its_dims() -> None:
    """lowp._native.float_conv_nchwc (the Program step) runs the same kernel as
    lowp._float_conv.conv; dims that do not match the arrays are refused."""
    from lowp import _native

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 20, 7, 30)).astype(np.float32)
    w = rng.standard_normal((40, 20, 3, 3)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    pads, strides, dil = [1, 2, 1, 2], [1, 2], [1, 1]
    ref = nchwc_conv.reference(x, w, b, nchwc_conv.Plan("nchwc", 16), 1, pads, strides, dil)
    dims = [2, 20, 7, 30, 40, *ref.shape[2:], nchwc_conv.KINDS["nchwc"], 16, 1, 3, 3, 1, 2,
            1, 1, 1, 2]
    for isa in _native_paths():
        y = np.full(ref.shape, np.nan, np.float32)
        _native.float_conv_nchwc(x.reshape(-1), nchwc_conv.pack(w, 1), b, y.reshape(-1), dims,
                                 isa, 2)
        np.testing.assert_array_equal(y, ref, err_msg=isa)
    y = np.empty(ref.shape, np.float32)
    with pytest.raises(ValueError, match="inconsistent"):
        _native.float_conv_nchwc(x.reshape(-1), nchwc_conv.pack(w, 1), b, y.reshape(-1),
                                 [3] + dims[1:], "scalar", 1)
    with pytest.raises(ValueError, match="18 or 19 dims"):
        _native.float_conv_nchwc(x.reshape(-1), nchwc_conv.pack(w, 1), b, y.reshape(-1),
                                 dims[:-1], "scalar", 1)


@st.composite
def _thin_maps(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[int],
                                         list[int], str, int]:
    """1-row maps (TensorFlow's 1-D convolutions as (1, k) kernels, slovorez_morphemes'
    (n, 256, 1, 64) by (192, 256, 1, 5)): several images of one row each, output channels
    over one to thirteen 16-lane blocks (the AVX-512 tiles take four blocks and six columns,
    AVX2 one and six), rows narrower and wider than a tile, padding on both sides."""
    kind = draw(st.sampled_from(["nchwc", "pointwise"]))
    block = draw(st.sampled_from([8, 16]))
    cg = block * draw(st.integers(1, 4)) - (draw(st.integers(0, 3)) if kind == "nchwc" else 0)
    if kind == "pointwise":
        cg = draw(st.integers(1, 300))
    m = draw(st.integers(1, 208))
    k = 1 if kind == "pointwise" else draw(st.integers(1, 5))
    n, w = draw(st.integers(1, 4)), draw(st.integers(k, 80))
    left = 0 if kind == "pointwise" else draw(st.integers(0, k - 1))
    right = 0 if kind == "pointwise" else draw(st.integers(0, k - 1))
    stride = draw(st.sampled_from([1, 1, 2]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, cg, 1, w)).astype(np.float32)
    x[..., ::5] = -0.0
    wt = rng.standard_normal((m, cg, 1, k)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32) if draw(st.booleans()) else None
    return x, wt, b, [0, left, 0, right], [1, stride], kind, block


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@needs_native
@settings(max_examples=40, deadline=None)
@given(_thin_maps())
def test_thin_maps_equal_reference_on_every_lowp_path(case: tuple) -> None:  # type: ignore[type-arg]
    """`convolve` on each of lowp's instruction-set paths (what LOWP_ISA forces: amx and
    avx512vnni run the AVX-512 kernel, avxvnni and avx2 the AVX2 one, scalar the scalar one),
    on lowp._native's Program binding at 1 and 2 threads and lowp._float_conv's, bit for bit
    the numpy reference (signed zeros included)."""
    from lowp.runtime import native_backend, native_float

    x, w, b, pads, strides, kind, block = case
    plan = nchwc_conv.Plan(kind, block)
    ref = nchwc_conv.reference(x, w, b, plan, 1, pads, strides, [1, 1])
    for path in native_backend.available_paths():
        with native_backend.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads):
                    y = nchwc_conv.convolve(x, w, b, plan, 1, pads, strides, [1, 1])
                np.testing.assert_array_equal(_bits(y), _bits(ref),
                                              err_msg=f"{path} {kind} {threads} threads")
            y = nchwc_conv.convolve(x, w, b, plan, 1, pads, strides, [1, 1], threads=2)
            np.testing.assert_array_equal(_bits(y), _bits(ref), err_msg=f"{path} module")


def test_packed_weights_start_on_a_cache_line() -> None:
    """The packing is 64-byte aligned: the kernel's weight vectors never straddle two lines
    (numpy's own allocations are 16-byte aligned)."""
    rng = np.random.default_rng(3)
    for m, cg, k in ((192, 256, 5), (27, 96, 1), (5, 3, 3)):
        w = rng.standard_normal((m, cg, 1, k)).astype(np.float32)
        packed = nchwc_conv.pack(w, 1)
        assert packed.ctypes.data % 64 == 0
        blocks = -(-m // 16)
        expect = np.zeros((blocks * 16, cg, 1, k), np.float32)
        expect[:m] = w
        np.testing.assert_array_equal(
            packed.reshape(blocks, cg, 1, k, 16), expect.reshape(blocks, 16, cg, 1, k)
            .transpose(0, 2, 3, 4, 1))


@needs_native
@settings(max_examples=40, deadline=None)
@given(_convs(), st.integers(0, 2**16))
def test_relu_in_the_write_out_equals_a_relu_node_on_every_path(
        case: tuple, seed: int) -> None:  # type: ignore[type-arg]
    """`relu` (lowp.runtime.conv_bias_fusion's ConvBias): 0 > y ? 0 : y after the bias in
    every kind's write-out, vector columns and scalar remainders, on every instruction-set
    path, both bindings, 1 and 2 threads; a NaN output stays that NaN (a max with 0 in the
    other operand order gives 0)."""
    from lowp import _float_conv
    from lowp.runtime import native_backend, native_float

    x, w, b, group, pads, strides, dil, kind, block = case
    x = x.copy()
    rng = np.random.default_rng(seed)
    if x.size:
        x.reshape(-1)[rng.integers(0, x.size, 3)] = np.nan
    plan = nchwc_conv.Plan(kind, block)
    ref = nchwc_conv.reference(x, w, b, plan, group, pads, strides, dil)
    ref = np.where(np.float32(0) > ref, np.float32(0), ref)
    for isa in _native_paths():
        for threads in (1, 2):
            y = np.full(ref.shape, np.nan, np.float32)
            _float_conv.conv(x, nchwc_conv.pack(w, group), b, y, nchwc_conv.KINDS[kind], block,
                             group, w.shape[2], w.shape[3], strides[0], strides[1], dil[0],
                             dil[1], pads[0], pads[1], isa, threads, None, True)
            np.testing.assert_array_equal(_bits(y), _bits(ref),
                                          err_msg=f"{isa} {kind} {threads} threads")
    if block != nchwc_conv.block_size() or x.shape[0] == 0:
        return
    for path in native_backend.available_paths():
        with native_backend.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads):
                    y = nchwc_conv.convolve(x, w, b, plan, group, pads, strides, dil,
                                            relu=True)
                np.testing.assert_array_equal(_bits(y), _bits(ref),
                                              err_msg=f"{path} {kind} {threads} Program")


def _nan_payloads(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal values with NaNs of random payloads and signs, infinities and -0."""
    x = rng.standard_normal(shape).astype(np.float32)
    u = rng.random(shape)
    x[(u >= 0.05) & (u < 0.08)] = np.inf
    x[(u >= 0.08) & (u < 0.11)] = -0.0
    bits = x.view(np.uint32)
    nan = u < 0.05
    bits[nan] = (0x7F800001 + rng.integers(0, 0x3FFFFF, nan.sum())).astype(np.uint32) | \
        np.where(rng.random(nan.sum()) < 0.5, 0x80000000, 0).astype(np.uint32)
    return x


@needs_blocks
@needs_native
@pytest.mark.parametrize("c,h,w,k,pads,stride,dilation", [
    (20, 9, 13, 3, [1, 1, 1, 1], 1, 1),     # a partial second block of channels
    (32, 7, 7, 5, [2, 2, 2, 2], 1, 1),      # rows narrower than 16 columns
    (16, 15, 40, 3, [1, 1, 1, 1], 2, 2),
    (4, 5, 30, 2, [1, 2, 1, 2], 1, 1),
    (24, 11, 9, 4, [2, 1, 2, 1], 1, 2),
])
def test_depthwise_nan_payloads_equal_onnxruntime(c: int, h: int, w: int, k: int,
                                                  pads: list[int], stride: int,
                                                  dilation: int) -> None:
    """MLAS's depthwise kernel hands on, of a tap's weight, its input and the sum so far, the
    first NaN; the bias's NaN after the chain's (docs/operators.md (O327)). Finite weights
    (a NaN weight meeting a NaN input: the next test)."""
    rng = np.random.default_rng(c * h + w)
    x = _nan_payloads(rng, (2, c, h, w))
    wt = rng.standard_normal((c, 1, k, k)).astype(np.float32)
    wt[1, 0, -1, -1] = -np.inf
    wt[2] = -0.0
    b = rng.standard_normal(c).astype(np.float32)
    b[3] = np.float32(np.nan)
    model = _model(wt, b, x.shape, pads=pads, strides=[stride] * 2,
                   dilations=[dilation] * 2, group=c)
    expected = onnxruntime_run(model, {"x": x})[0]
    for threads in (1, 2):
        y = Session(model, backend="native", threads=threads).run({"x": x})["y"]
        assert y.tobytes() == expected.tobytes(), f"Session, {threads} threads"
    for isa in _native_paths():
        for threads in (1, 2):
            y = _native(x, wt, b, c, pads, [stride] * 2, [dilation] * 2, "depthwise", 16, isa,
                        threads, expected.shape)
            assert y.tobytes() == expected.tobytes(), f"{isa} {threads} threads"


def nan_taps_case(k: int, h: int, wd: int) -> tuple[np.ndarray, np.ndarray]:
    """Channel t (of k * k, padded to a block) has a NaN weight at tap t only; batch s has,
    in channel t, NaN inputs of distinct payloads every k columns from column s in every k-th
    row from kernel row t // k: each NaN weight meets NaN inputs of one payload per output,
    its chain's one NaN pair."""
    c = -(-k * k // 16) * 16
    rng = np.random.default_rng(k * 100 + wd)
    wt = rng.standard_normal((c, 1, k, k)).astype(np.float32)
    x = rng.standard_normal((k, c, h, wd)).astype(np.float32)
    for t in range(k * k):
        wt[t, 0].reshape(-1)[t] = np.uint32(0xFFC0AAAA).view(np.float32)
        for s in range(k):
            x.view(np.uint32)[s, t, t // k::k, s::k] = (
                0x7FC10000 + np.arange(s, wd, k, dtype=np.uint32))[None, :]
    return x, wt


@needs_blocks
@needs_native
@pytest.mark.parametrize("k,pads,stride", [
    (3, [1, 1, 1, 1], 1), (3, [0, 0, 0, 0], 1), (3, [1, 2, 0, 0], 1),
    (5, [2, 2, 2, 2], 1), (5, [0, 1, 2, 0], 1), (7, [3, 3, 3, 3], 1), (7, [0, 0, 0, 0], 1),
    (3, [1, 1, 1, 1], 2),       # strided rows: MLAS's assembly kernel, the weight's NaN
])
def test_depthwise_nan_weight_meeting_nan_input_equals_onnxruntime(
        k: int, pads: list[int], stride: int) -> None:
    """A NaN weight meeting a NaN input in one tap: MLAS's sliding depthwise kernel hands on
    the input's NaN in some taps of its tiles of 12, 10 or 8 columns (docs/operators.md
    (O353)), the weight's elsewhere; rows of every width that gives each tile count, masked
    and not."""
    for wd in range(max(1, k - pads[1] - pads[3]), 3 * (k + 10)):
        x, wt = nan_taps_case(k, k + 2, wd)
        c = wt.shape[0]
        model = _model(wt, None, x.shape, pads=pads, strides=[stride] * 2, group=c)
        expected = onnxruntime_run(model, {"x": x})[0]
        ref = nchwc_conv.reference(x, wt, None, nchwc_conv.Plan("depthwise", 16), c, pads,
                                   [stride] * 2, [1, 1])
        assert ref.tobytes() == expected.tobytes(), f"reference, {wd} columns"
        for isa in _native_paths():
            y = _native(x, wt, None, c, pads, [stride] * 2, [1, 1], "depthwise", 16, isa,
                        2, expected.shape)
            assert y.tobytes() == expected.tobytes(), f"{isa}, {wd} columns"
    y = Session(model, backend="native").run({"x": x})["y"]
    assert y.tobytes() == expected.tobytes(), "Session"


def _blocks_nan_model(w: np.ndarray, b: np.ndarray, x_shape: tuple[int, ...], tail: str,
                      **attrs: object) -> object:
    """Conv(x), then a Relu node or an Add of the same Conv of a second input x2 (ONNX
    Runtime fuses either into its NCHWc Conv: the Add as the Conv's Sum)."""
    model = _model(w, b, x_shape, **attrs)
    g = model.graph  # type: ignore[attr-defined]
    if tail == "relu":
        g.node[0].output[0] = "c"
        g.node.append(helper.make_node("Relu", ["c"], ["y"]))
    elif tail == "sum":
        g.node[0].output[0] = "c"
        g.node.append(helper.make_node("Conv", ["x2", "w", "b"], ["s"], **attrs))
        g.node.append(helper.make_node("Add", ["c", "s"], ["y"]))
        g.input.append(helper.make_tensor_value_info("x2", 1, x_shape))
    return model


@needs_blocks
@needs_native
@pytest.mark.parametrize("c,m,k,group,pads,stride,tail", [
    (32, 32, 3, 1, [1, 1, 1, 1], 1, ""),       # two blocks of input channels
    (16, 48, 3, 1, [1, 1, 1, 1], 1, "relu"),   # three blocks of output channels
    (40, 32, 3, 1, [1, 1, 1, 1], 1, "sum"),    # a partial last block
    (32, 16, 5, 1, [2, 1, 2, 1], 2, ""),       # borders of two padding columns, strided
    (64, 64, 3, 2, [0, 1, 1, 0], 1, "sum"),    # grouped
    (64, 16, 1, 1, [0, 0, 0, 0], 1, ""),       # pointwise
    (160, 16, 1, 1, [0, 0, 0, 0], 1, "sum"),   # pointwise, two 128-channel chunks
    (160, 32, 1, 1, [0, 0, 0, 0], 1, "relu"),
    (3, 16, 3, 1, [1, 1, 1, 1], 1, ""),        # NCHW input
    (7, 24, 4, 1, [2, 1, 2, 1], 2, "sum"),
])
def test_blocks_nan_payloads_equal_onnxruntime(c: int, m: int, k: int, group: int,
                                               pads: list[int], stride: int,
                                               tail: str) -> None:
    """MLAS's NCHWc, pointwise and NCHW kernels hand on, of a tap's weight, its input and the
    block's sum so far, the first NaN; a block's sum adds to the blocks' total (the first to
    the Sum), its NaN first; the bias last, the total's NaN first; Relu keeps the NaN
    (docs/operators.md (O335)). Every output column of rows wider and narrower than the
    register tiles; the numpy reference too."""
    from lowp import _float_conv

    rng = np.random.default_rng(c * m + k)
    for h, wd in ((7, 29), (5, 6)):
        x = _nan_payloads(rng, (2, c, h, wd))
        x2 = _nan_payloads(rng, x.shape)
        wt = rng.standard_normal((m, c // group, k, k)).astype(np.float32)
        wt[1, 0, -1, -1] = -np.inf
        wt[2] = -0.0
        b = rng.standard_normal(m).astype(np.float32)
        b[3] = np.float32(np.nan)
        attrs = {"kernel_shape": [k, k], "pads": pads, "strides": [stride] * 2,
                 "group": group}
        model = _blocks_nan_model(wt, b, x.shape, tail, **attrs)
        feeds = {"x": x, "x2": x2} if tail == "sum" else {"x": x}
        expected = onnxruntime_run(model, feeds)[0]
        for threads in (1, 2):
            y = Session(model, backend="native", threads=threads).run(feeds)["y"]
            assert y.tobytes() == expected.tobytes(), f"Session, {wd} columns, {threads} threads"
        # the kernel itself, with the Sum ONNX Runtime's Conv of x2
        z = onnxruntime_run(_model(wt, b, x.shape, **attrs), {"x": x2})[0] \
            if tail == "sum" else None
        kind = nchwc_conv.plan(x.shape, wt.shape, group, True, True)
        assert kind is not None
        ref = nchwc_conv.reference(x, wt, b, kind, group, pads, [stride] * 2, [1, 1], z)
        ref = np.where(np.float32(0) > ref, np.float32(0), ref) if tail == "relu" else ref
        assert ref.tobytes() == expected.tobytes(), f"reference, {wd} columns"
        for isa in _native_paths():
            for threads in (1, 2):
                y = np.full(expected.shape, np.nan, np.float32)
                _float_conv.conv(x, nchwc_conv.pack(wt, group), b, y,
                                 nchwc_conv.KINDS[kind.kind], 16, group, k, k, stride, stride,
                                 1, 1, pads[0], pads[1], isa, threads, z, tail == "relu")
                assert y.tobytes() == expected.tobytes(), \
                    f"{isa} {kind.kind}, {wd} columns, {threads} threads"


@needs_native
@settings(max_examples=40, deadline=None)
@given(_convs(), st.integers(0, 2**16))
def test_native_nan_payloads_equal_reference_on_every_path(
        case: tuple, seed: int) -> None:  # type: ignore[type-arg]
    """NaNs of random payloads and signs, infinities and -0 in the input, the weights, the
    bias and the Sum: every kind's native kernel hands on the numpy reference's NaN (MLAS's
    order, docs/operators.md (O327), (O335)) on every path, 1 and 2 threads."""
    x, w, b, group, pads, strides, dil, kind, block = case
    rng = np.random.default_rng(seed)
    x, w = _nan_payloads(rng, x.shape), _nan_payloads(rng, w.shape)
    b = None if b is None else _nan_payloads(rng, b.shape)
    plan = nchwc_conv.Plan(kind, block)
    shape = nchwc_conv.reference(x, w, b, plan, group, pads, strides, dil).shape
    for z in (None, _nan_payloads(rng, shape)):
        ref = nchwc_conv.reference(x, w, b, plan, group, pads, strides, dil, z)
        for isa in _native_paths():
            for threads in (1, 2):
                y = _native(x, w, b, group, pads, strides, dil, kind, block, isa, threads,
                            ref.shape, z)
                np.testing.assert_array_equal(_bits(y), _bits(ref),
                                              err_msg=f"{isa} {kind} {threads} threads")
