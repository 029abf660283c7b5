"""The native col2im of the float ConvTranspose equals the numpy scatter-add of
lowp.runtime.float_nn.ConvTranspose bit for bit (1-D and 2-D kernels, every geometry), on
every instruction-set path and thread count; so does its direct form (one input channel per
group: the products made where they are added, no GEMM); the numpy form equals ONNX Runtime
(tests/runtime/test_ort_float_order.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.runtime import native_backend, native_float, tape
from lowp.runtime.float_ops import FLOAT_OPS

PATHS = native_backend.available_paths()


# the bindings that make a float ConvTranspose's sums (col2im of GEMM columns, or direct)
COL2IM = {"float_col2im", "float_conv_transpose_direct", "float_conv_transpose"}


@st.composite
def conv_transposes(draw: st.DrawFn, depthwise: bool = False
                    ) -> tuple[list[np.ndarray | None], dict[str, object]]:
    """ConvTranspose nodes of rank 1 or 2: kernel, stride, dilation, pads or auto_pad or
    output_shape, output_padding, groups, optional bias; `depthwise`: one input channel
    per group, signed zeros in the input, weights and bias."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    nd = draw(st.integers(1, 2))
    group = draw(st.integers(1, 5)) if depthwise else draw(st.sampled_from([1, 2]))
    c_in = group if depthwise else group * draw(st.integers(1, 3))
    m_g = draw(st.integers(1, 3))
    k = [draw(st.integers(1, 4)) for _ in range(nd)]
    s = [draw(st.integers(1, 3)) for _ in range(nd)]
    d = [draw(st.integers(1, 2)) for _ in range(nd)]
    sp = [draw(st.integers(1, 6)) for _ in range(nd)]
    x = rng.standard_normal([draw(st.integers(1, 2)), c_in, *sp]).astype(np.float32)
    w = rng.standard_normal([c_in, m_g, *k]).astype(np.float32)
    b = rng.standard_normal(group * m_g).astype(np.float32) if draw(st.booleans()) else None
    if depthwise:
        for v in (x, w) if b is None else (x, w, b):
            v[rng.random(v.shape) < 0.2] = draw(st.sampled_from([0.0, -0.0]))
    attrs: dict[str, object] = {"strides": s, "dilations": d, "group": group}
    mode = draw(st.sampled_from(["pads", "same", "output_shape"]))
    full = [(sp[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 for i in range(nd)]
    if mode == "pads":
        attrs["pads"] = [draw(st.integers(0, (k[i] - 1) * d[i] // 2)) for i in range(nd)] * 2
        attrs["output_padding"] = [draw(st.integers(0, min(s[i], d[i]) - 1)) for i in range(nd)]
    elif mode == "same":
        attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER"]))
    else:
        attrs["output_shape"] = [max(1, full[i] + draw(st.integers(-2, s[i] - 1)))
                                 for i in range(nd)]
    return [x, w, b], attrs


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=60, deadline=None)
@given(case=conv_transposes(), threads=st.sampled_from([1, 2]), constant=st.booleans())
def test_conv_transpose_equals_the_numpy_scatter(path, case, threads, constant):
    inputs, attrs = case
    with native_backend.use_path(path), native_float.threads(threads):
        with tape.recording() as recorded:
            got = FLOAT_OPS["ConvTranspose"](*inputs, **attrs, w_constant=constant, opset=17)
        assert COL2IM & {fn.__name__ for fn, _ in recorded}
        with native_float.disabled():
            expected = FLOAT_OPS["ConvTranspose"](*inputs, **attrs, w_constant=constant,
                                                  opset=17)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=60, deadline=None)
@given(case=conv_transposes(depthwise=True), threads=st.sampled_from([1, 2]),
       constant=st.booleans())
def test_one_input_channel_per_group_runs_direct_and_equals_the_numpy_scatter(
        path, case, threads, constant):
    """A ConvTranspose with one input channel per group (DeepFilterNet3's 64-group
    upsampling) makes each column entry w * x where it adds it, one native call: the GEMMs'
    K = 1 products, in col2im's order, signed zeros included."""
    inputs, attrs = case
    with native_backend.use_path(path), native_float.threads(threads):
        with tape.recording() as recorded:
            got = FLOAT_OPS["ConvTranspose"](*inputs, **attrs, w_constant=constant, opset=17)
        names = [fn.__name__ for fn, _ in recorded]
        assert "float_conv_transpose_direct" in names and "float_sgemm_mlas" not in names
        with native_float.disabled():
            expected = FLOAT_OPS["ConvTranspose"](*inputs, **attrs, w_constant=constant,
                                                  opset=17)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    # a channels-last tensor read channels-first: read in place by its strides, no copy
    x = inputs[0]
    view = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    with native_backend.use_path(path), native_float.threads(threads):
        with tape.recording() as recorded:
            strided = FLOAT_OPS["ConvTranspose"](view, *inputs[1:], **attrs,
                                                 w_constant=constant, opset=17)
    assert [fn.__name__ for fn, _ in recorded] == ["float_conv_transpose_direct"]
    np.testing.assert_array_equal(strided.view(np.uint32), expected.view(np.uint32))


def test_zero_sums_keep_their_sign_as_numpy():
    # +0 start: a position reached only by -0 entries is +0, with a -0 bias too
    x = np.full((1, 1, 3, 3), -0.0, np.float32)
    w = np.ones((1, 1, 2, 2), np.float32)
    b = np.array([-0.0], np.float32)
    got = FLOAT_OPS["ConvTranspose"](x, w, b, strides=[2, 2], opset=17)
    with native_float.disabled():
        expected = FLOAT_OPS["ConvTranspose"](x, w, b, strides=[2, 2], opset=17)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=40, deadline=None)
@given(nd=st.integers(1, 2), k=st.lists(st.integers(1, 4), min_size=2, max_size=2),
       sp=st.lists(st.integers(1, 9), min_size=2, max_size=2), c_in=st.integers(1, 4),
       m=st.integers(1, 5), bias=st.booleans(), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16))
def test_kernel_equal_to_stride_equals_the_numpy_scatter(path, nd, k, sp, c_in, m, bias,
                                                         threads, seed):
    """Kernel = stride, no padding (a segmentation head's 2x2 stride-2 upsampling): every
    output gets one entry, which the native col2im writes in one pass; signed zeros in the
    columns (+0 + -0 is +0) and in the bias included."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal([1, c_in, *sp[:nd]]).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = 0.0
    w = rng.standard_normal([c_in, m, *k[:nd]]).astype(np.float32)
    w[rng.random(w.shape) < 0.2] = -0.0
    b = rng.standard_normal(m).astype(np.float32) if bias else None
    if b is not None:
        b[rng.random(m) < 0.3] = -0.0
    attrs = {"strides": k[:nd], "pads": [0] * (2 * nd)}
    with native_backend.use_path(path), native_float.threads(threads):
        with tape.recording() as recorded:
            got = FLOAT_OPS["ConvTranspose"](x, w, b, **attrs, opset=17)
        assert COL2IM & {fn.__name__ for fn, _ in recorded}
        with native_float.disabled():
            expected = FLOAT_OPS["ConvTranspose"](x, w, b, **attrs, opset=17)
    assert got.shape == expected.shape == (1, m, *(s * kk for s, kk in zip(sp[:nd], k[:nd],
                                                                            strict=True)))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=40, deadline=None)
@given(case=conv_transposes(), threads=st.sampled_from([1, 2]), constant=st.booleans())
def test_a_channels_first_view_of_channels_last_data_gives_the_same_values(path, case,
                                                                          threads, constant):
    """lowp.runtime.lower runs a ConvTranspose of channels-last data (a dequantized
    convolution output) on a channels-first view of it, with no copy: the GEMM reads its
    operand through the view's strides with the same flags, so the values are the
    contiguous input's bit for bit."""
    (x, w, b), attrs = case
    view = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    with native_backend.use_path(path), native_float.threads(threads):
        want = FLOAT_OPS["ConvTranspose"](x, w, b, **attrs, w_constant=constant, opset=17)
        got = FLOAT_OPS["ConvTranspose"](view, w, b, **attrs, w_constant=constant, opset=17)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("constant", [False, True])
def test_a_lone_row_of_a_threads_operation_is_computed_as_the_operation(path, constant):
    """The native ConvTranspose makes its column entries a block of output channels at a
    time, each block's rows of every MLAS operation one product. At 2 threads ONNX Runtime
    cuts the 513 x 256 product of this 1x1 filter into rows [0, 257) and [257, 513); the
    block of rows [256, 272) holds one row of the first: computed as that operation
    computes it (the general kernel), not by the M = 1 kernel of a one-row operation."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 16, 16)).astype(np.float32)
    w = rng.standard_normal((2, 513, 1, 1)).astype(np.float32)
    with native_backend.use_path(path), native_float.threads(2):
        with tape.recording() as recorded:
            got = FLOAT_OPS["ConvTranspose"](x, w, w_constant=constant, opset=17)
        assert [fn.__name__ for fn, _ in recorded] == ["float_conv_transpose"]
        with native_float.disabled():
            expected = FLOAT_OPS["ConvTranspose"](x, w, w_constant=constant, opset=17)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
