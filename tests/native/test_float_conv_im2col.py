"""The native float32 Conv (im2col + MLAS SGEMM per image and group, the bias after:
native/float_im2col.cpp) equals the numpy form of lowp.runtime.float_nn.Conv bit for bit, for
1-D, 2-D and 3-D kernels of every geometry, on every instruction-set path and thread count;
the numpy form equals ONNX Runtime (tests/runtime/test_conv_replay.py and the corpus)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.runtime import native_backend, native_float, tape
from lowp.runtime.float_ops import FLOAT_OPS

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(not hasattr(native_float._extension(), "float_conv_im2col"),
                                reason="the native extension is not built")


@st.composite
def convs(draw: st.DrawFn) -> tuple[list[np.ndarray | None], dict[str, object]]:
    """Conv nodes of rank 1 to 3: kernel, stride, dilation, explicit pads or auto_pad,
    groups, batch (0 included), optional bias, signed zeros in every operand."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    nd = draw(st.integers(1, 3))
    group = draw(st.sampled_from([1, 2, 3]))
    cg, mg = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    k = [draw(st.integers(1, 3)) for _ in range(nd)]
    s = [draw(st.integers(1, 3)) for _ in range(nd)]
    d = [draw(st.integers(1, 2)) for _ in range(nd)]
    attrs: dict[str, object] = {"strides": s, "dilations": d, "group": group}
    if draw(st.booleans()):
        attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]))
        pads = [0] * (2 * nd)
    else:
        pads = [draw(st.integers(0, 2)) for _ in range(2 * nd)]
        attrs["pads"] = pads
    # every input at least as large as the kernel's extent less the pads
    sp = [max(1, (k[i] - 1) * d[i] + 1 - pads[i] - pads[nd + i]) + draw(st.integers(0, 6))
          for i in range(nd)]
    x = rng.standard_normal([draw(st.sampled_from([0, 1, 1, 2, 3])), group * cg, *sp]
                            ).astype(np.float32)
    w = rng.standard_normal([group * mg, cg, *k]).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = -0.0
    w[rng.random(w.shape) < 0.1] = -0.0
    b = None
    if draw(st.booleans()):
        b = rng.standard_normal(group * mg).astype(np.float32)
        b[rng.random(b.shape) < 0.2] = -0.0
    return [x, w, b], attrs


def _native_and_numpy(inputs: list[np.ndarray | None], attrs: dict[str, object], path: str,
                      threads: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with native_backend.use_path(path), native_float.threads(threads):
        with tape.recording() as recorded:
            got = FLOAT_OPS["Conv"](*inputs, **attrs, opset=17)
        with native_float.disabled():
            expected = FLOAT_OPS["Conv"](*inputs, **attrs, opset=17)
    return got, expected, [fn.__name__ for fn, _ in recorded]


def _assert_same_bits(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape and got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32))


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=80, deadline=None)
@given(case=convs(), threads=st.sampled_from([1, 2]))
def test_conv_equals_the_numpy_im2col(path, case, threads):
    inputs, attrs = case
    got, expected, called = _native_and_numpy(inputs, attrs, path, threads)
    assert called == ([] if inputs[0].shape[0] == 0 else ["float_conv_im2col"])
    _assert_same_bits(got, expected)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=30, deadline=None)
@given(nd=st.integers(1, 3), n=st.integers(1, 2), group=st.sampled_from([1, 2]),
       cg=st.integers(1, 40), mg=st.integers(1, 9), size=st.integers(1, 30),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_pointwise_conv_reads_the_input_as_its_columns(path, nd, n, group, cg, mg, size,
                                                       bias, seed):
    """A 1x1, stride-1, unpadded Conv has no column buffer: the GEMM reads the input."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal([n, group * cg] + [size] + [2] * (nd - 1)).astype(np.float32)
    w = rng.standard_normal([group * mg, cg] + [1] * nd).astype(np.float32)
    b = rng.standard_normal(group * mg).astype(np.float32) if bias else None
    with native_backend.use_path(path), tape.recording() as recorded:
        got = FLOAT_OPS["Conv"](x, w, b, group=group, opset=17)
    ((_, args),) = recorded
    assert args[4] is None                  # no columns: the input itself
    with native_float.disabled():
        expected = FLOAT_OPS["Conv"](x, w, b, group=group, opset=17)
    _assert_same_bits(got, expected)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=20, deadline=None)
@given(cg=st.integers(60, 200), mg=st.integers(1, 70), length=st.integers(1, 300),
       k=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_large_products_keep_the_sgemm_k_blocking(path, cg, mg, length, k, seed):
    """Products whose depth (c * k) crosses MLAS's K blocks and whose width crosses its
    column panels: the single native call blocks K as one float_sgemm_mlas call does."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal([1, cg, length]).astype(np.float32)
    w = rng.standard_normal([mg, cg, k]).astype(np.float32)
    b = rng.standard_normal(mg).astype(np.float32)
    got, expected, _ = _native_and_numpy([x, w, b], {"pads": [k // 2, k // 2]}, path, 1)
    _assert_same_bits(got, expected)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 5), group=st.sampled_from([1, 2, 3]), cg=st.integers(20, 130),
       mg=st.integers(1, 260), length=st.integers(1, 40), k=st.integers(1, 3),
       stride=st.integers(1, 2), bias=st.booleans(), threads=st.sampled_from([2, 3, 4]),
       seed=st.integers(0, 2**16))
def test_products_and_parts_as_the_pools_jobs_equal_the_numpy_im2col(
        path, n, group, cg, mg, length, k, stride, bias, threads, seed):
    """Products large enough that several images or groups run as the pool's jobs (each with
    columns of its own), or that a single product's MLAS operations do, one on each thread:
    the numpy form's values at that thread count (ONNX Runtime's parts)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal([n, group * cg, length + k - 1]).astype(np.float32)
    w = rng.standard_normal([group * mg, cg, k]).astype(np.float32)
    b = rng.standard_normal(group * mg).astype(np.float32) if bias else None
    attrs = {"group": group, "strides": [stride]}
    got, expected, _ = _native_and_numpy([x, w, b], attrs, path, threads)
    _assert_same_bits(got, expected)


def test_a_channels_first_view_of_channels_last_data_gives_the_same_values():
    rng = np.random.default_rng(3)
    x = rng.standard_normal([2, 6, 7, 5]).astype(np.float32)
    w = rng.standard_normal([4, 3, 3, 2]).astype(np.float32)
    view = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    attrs = {"group": 2, "pads": [1, 0, 1, 1], "strides": [2, 1]}
    _assert_same_bits(FLOAT_OPS["Conv"](view, w, None, **attrs, opset=17),
                      FLOAT_OPS["Conv"](x, w, None, **attrs, opset=17))


def test_zero_sums_keep_their_sign_as_numpy():
    # all-(-0) products: MLAS's sums start from +0 (or the first product) as the numpy form
    x = np.full((1, 2, 5), -0.0, np.float32)
    w = np.ones((3, 2, 3), np.float32)
    b = np.array([-0.0, 0.0, -0.0], np.float32)
    got, expected, _ = _native_and_numpy([x, w, b], {"pads": [1, 1]}, PATHS[-1], 1)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))
    _assert_same_bits(got, expected)


@pytest.mark.parametrize("dims", [
    [1, 4, 2, 3] + [1, 1, 1, 1, 1, 0] * 2 + [5, 3, 3, 1, 1, 0],       # c not divisible by group
    [1, 4, 2, 1] + [1, 1, 1, 1, 1, 0] * 2 + [5, 3, 4, 1, 1, 0],       # y of the wrong size
    [1, 4, 2, 1] + [1, 1, 1, 1, 1, 0] * 2 + [5, 3, 3, 0, 1, 0],       # stride 0
    [1, 4, 2, 1] + [1, 1, 1, 1, 1, 0] * 2,                            # two axes only
])
def test_the_binding_rejects_dims_that_do_not_match_the_arrays(dims):
    ext = native_float._extension()
    x, w, y = np.zeros(20, np.float32), np.zeros(24, np.float32), np.zeros(6, np.float32)
    with pytest.raises(ValueError):
        ext.float_conv_im2col(x, w, None, y, np.zeros(64, np.float32), dims, 1)


def test_the_binding_needs_columns_unless_the_input_is_them():
    ext = native_float._extension()
    dims = [1, 4, 2, 1] + [1, 1, 1, 1, 1, 0] * 2 + [5, 3, 3, 1, 1, 0]
    x, w, y = np.zeros(20, np.float32), np.zeros(24, np.float32), np.zeros(6, np.float32)
    with pytest.raises(ValueError):
        ext.float_conv_im2col(x, w, None, y, None, dims, 1)
    with pytest.raises(ValueError):     # columns too small: 4 * 3 rows of 3
        ext.float_conv_im2col(x, w, None, y, np.zeros(35, np.float32), dims, 1)
    ext.float_conv_im2col(x, w, None, y, np.zeros(36, np.float32), dims, 1)
