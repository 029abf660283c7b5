"""The amx path (tdpbusd tiles) against the scalar path, bit for bit: K around the 64-byte
tile block, M around the 16-row tile and the 32-row call, N around the 16-column tile and the
64-wide panel, and multi-tap convolutions (taps concatenated along K)."""

from __future__ import annotations

import ctypes
import itertools
import mmap
import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp import _native
from lowp.fixedpoint import Requant, RequantMode
from lowp.ops.conv import conv
from lowp.ops.layout import Layout
from lowp.ops.linear import matmul
from lowp.runtime import native_backend as nb
from lowp.runtime.native_backend import NativeConv, NativeMatMul

from .helpers import INT8_DTYPES, MODES, centering_bias, random_ints, spanning_requant

HAS_AMX = "amx" in nb.available_paths()
needs_amx = pytest.mark.skipif(
    not HAS_AMX, reason="AMX not available on this CPU: the AMX kernels were not tested")


@pytest.fixture(autouse=True)
def _every_gemm_on_tiles() -> Iterator[None]:
    """Short reductions and GEMMs of a few rows normally go to the avx512vnni GEMM; here the
    tiles take them too."""
    before = _native.short_gemm_bytes(), _native.short_gemm_rows()
    _native.set_short_gemm_bytes(0)
    _native.set_short_gemm_rows(0)
    try:
        yield
    finally:
        _native.set_short_gemm_bytes(before[0])
        _native.set_short_gemm_rows(before[1])


@needs_amx
def test_short_reductions_go_to_vnni_by_default() -> None:
    """Same outputs whichever kernel takes a short reduction (K = 64 bytes < 128)."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (100, 64), dtype=np.uint8)
    w = rng.integers(-127, 128, (64, 40), dtype=np.int8)
    rq = Requant(np.float32(2e-3), 128, 0, 255)
    outs = []
    for short in (0, 128):
        _native.set_short_gemm_bytes(short)
        with nb.use_path("amx"):
            outs.append(NativeMatMul(w, None, a_zero_point=128, a_dtype=np.uint8,
                                     b_zero_point=0, requant=rq, threads=1)(a))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], matmul(a, w, a_zero_point=128, b_zero_point=0,
                                                  requant=rq))


def test_amx_availability_reported() -> None:
    """Where the CPU lacks AMX this skips loudly, so that a run never passes silently."""
    if not HAS_AMX:
        pytest.skip("AMX not available on this CPU: the AMX kernels were not tested")
    with nb.use_path("amx"):
        assert nb.active_path() == "amx"


@needs_amx
def test_env_var_forces_amx() -> None:
    code = "from lowp.runtime import native_backend as nb; print(nb.active_path())"
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, LOWP_ISA="amx"),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "amx"


def _same_on_amx_and_scalar(make, x: np.ndarray, ref: np.ndarray) -> None:
    outs = {}
    for path in ("scalar", "amx"):
        with nb.use_path(path):
            outs[path] = make()(x)
    np.testing.assert_array_equal(outs["scalar"], ref)
    if not np.array_equal(outs["amx"], outs["scalar"]):
        bad = np.argwhere(outs["amx"] != outs["scalar"])
        raise AssertionError(f"amx differs from scalar at {len(bad)} of {ref.size} outputs, "
                             f"first at {bad[0].tolist()}")


@needs_amx
@pytest.mark.parametrize("k,m,n", list(itertools.product([1, 63, 64, 65, 1000],
                                                         [1, 15, 16, 17, 33],
                                                         [16, 48, 64, 200])))
def test_matmul_amx_equals_scalar(k: int, m: int, n: int) -> None:
    rng = np.random.default_rng(k * 10007 + m * 101 + n)
    a_dtype = np.dtype(np.uint8) if (k + m + n) % 2 else np.dtype(np.int8)
    a = random_ints(rng, (m, k), a_dtype)
    b = random_ints(rng, (k, n), np.dtype(np.int8))
    a_zp = int(rng.integers(np.iinfo(a_dtype).min, np.iinfo(a_dtype).max + 1))
    # per-column weight zero points exercise the row sums
    b_zp: int | np.ndarray = rng.integers(-128, 128, size=n) if n % 3 else 0
    acc = matmul(a, b, a_zero_point=a_zp, b_zero_point=b_zp)
    rq = spanning_requant(acc, out_dtype=np.dtype(np.uint8), mode=RequantMode.FLOAT32,
                          per_channel=True, stretch=1.0, clamp=(0.0, 1.0))

    def make() -> NativeMatMul:
        return NativeMatMul(b, None, a_zero_point=a_zp, a_dtype=a_dtype, b_zero_point=b_zp,
                            requant=rq, threads=1)

    _same_on_amx_and_scalar(make, a, rq.apply(acc))


@needs_amx
@pytest.mark.parametrize("offset", [0, 1, 16, 48])
def test_matmul_amx_unaligned_rows(offset: int) -> None:
    """Rows that start anywhere in a cache line (the A tiles load rows in place)."""
    rng = np.random.default_rng(offset)
    k, m, n = 200, 70, 96
    buf = random_ints(rng, (m * k + offset,), np.dtype(np.uint8))
    a = buf[offset:].reshape(m, k)
    b = random_ints(rng, (k, n), np.dtype(np.int8))
    acc = matmul(a, b, a_zero_point=3, b_zero_point=0)
    rq = spanning_requant(acc, out_dtype=np.dtype(np.int8), mode=RequantMode.FIXEDPOINT,
                          per_channel=False, stretch=1.0, clamp=(0.0, 1.0))

    def make() -> NativeMatMul:
        return NativeMatMul(b, None, a_zero_point=3, a_dtype=np.uint8, b_zero_point=0,
                            requant=rq, threads=1)

    _same_on_amx_and_scalar(make, a, rq.apply(acc))


# (x shape NHWC/NDHWC, w shape (M, C/group, *k), pads, strides, group)
CONVS = {
    "3x3 c16 (taps split blocks)": ((1, 9, 11, 16), (48, 16, 3, 3), (1, 1, 1, 1), (1, 1), 1),
    "3x3 c64 (whole-block taps)": ((2, 7, 8, 64), (70, 64, 3, 3), (1, 1, 1, 1), (1, 1), 1),
    "3x3 c20 stride 2": ((1, 13, 12, 20), (33, 20, 3, 3), (0, 1, 1, 0), (2, 2), 1),
    "7x7 c3 (kernel-row taps)": ((1, 20, 19, 3), (64, 3, 7, 7), (3, 3, 3, 3), (2, 2), 1),
    "5x5 c5 (28-byte kernel rows)": ((1, 12, 11, 5), (64, 5, 5, 5), (2, 2, 2, 2), (1, 1), 1),
    "3x3 c40 (taps straddle blocks)": ((1, 7, 9, 40), (64, 40, 3, 3), (1, 1, 1, 1), (1, 1), 1),
    "3x3 c64 one panel (row tiles in place or copied)": ((1, 5, 40, 64), (48, 64, 3, 3),
                                                          (1, 1, 1, 1), (1, 1), 1),
    "3x3 c128 one panel, stride 2": ((1, 9, 23, 128), (64, 128, 3, 3), (1, 1, 1, 1), (2, 2), 1),
    "1x1 c96 padded": ((1, 6, 7, 96), (130, 96, 1, 1), (1, 0, 0, 1), (1, 1), 1),
    "grouped 3x3": ((1, 8, 9, 24), (32, 12, 3, 3), (1, 1, 1, 1), (1, 1), 2),
    "3x3x3": ((1, 4, 6, 5, 16), (40, 16, 3, 3, 3), (1,) * 6, (1, 1, 1), 1),
}


@needs_amx
@pytest.mark.parametrize("name", sorted(CONVS))
@pytest.mark.parametrize("x_dtype", [np.dtype(np.uint8), np.dtype(np.int8)])
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_amx_equals_scalar(name: str, x_dtype: np.dtype, threads: int) -> None:
    x_shape, w_shape, pads, strides, group = CONVS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    x = random_ints(rng, x_shape, x_dtype)
    w = random_ints(rng, w_shape, np.dtype(np.int8))
    info = np.iinfo(x_dtype)
    x_zp = int(rng.integers(info.min, info.max + 1))
    w_zp = rng.integers(-128, 128, size=w_shape[0])
    kw = {"pads": pads, "strides": strides, "group": group}
    acc = conv(x, w, None, x_zero_point=x_zp, w_zero_point=w_zp, requant=None,
               layout=Layout.CHANNELS_LAST, **kw)
    rq = spanning_requant(acc, out_dtype=np.dtype(np.uint8), mode=RequantMode.FLOAT32,
                          per_channel=True, stretch=1.0, clamp=(0.0, 1.0))

    def make() -> NativeConv:
        return NativeConv(w, None, x_zero_point=x_zp, x_dtype=x_dtype, w_zero_point=w_zp,
                          requant=rq, threads=threads, **kw)

    _same_on_amx_and_scalar(make, x, rq.apply(acc))


@needs_amx
def test_amx_batch_zero_and_worker_threads() -> None:
    """An empty batch, then a product large enough to run on every worker thread (each
    configures its tiles before its first tile instruction)."""
    rng = np.random.default_rng(5)
    b = random_ints(rng, (512, 256), np.dtype(np.int8))
    rq = Requant(np.float32(1e-4), 128, 0, 255)
    with nb.use_path("amx"):
        op = NativeMatMul(b, None, a_zero_point=0, a_dtype=np.uint8, b_zero_point=0,
                          requant=rq, threads=0)
        assert op(np.zeros((0, 512), np.uint8)).shape == (0, 256)
        a = random_ints(rng, (999, 512), np.dtype(np.uint8))
        got = op(a)
    np.testing.assert_array_equal(got, rq.apply(matmul(a, b, a_zero_point=0, b_zero_point=0)))


# M around 0, 1, the 16-row tile, the 32-row call and the 8-row VNNI threshold; K (bytes)
# around the 64-byte tile block and the 128-byte short-reduction threshold; N around the
# 16-column tile, the 32-column pair and the 64-wide panel.
AMX_M = st.one_of(st.sampled_from([0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 97]),
                  st.integers(0, 140))
AMX_K = st.one_of(st.sampled_from([1, 3, 4, 60, 63, 64, 65, 127, 128, 129, 191, 192, 256, 260]),
                  st.integers(1, 400))
AMX_N = st.one_of(st.sampled_from([1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 96, 130]),
                  st.integers(1, 200))


@needs_amx
@given(m=AMX_M, k=AMX_K, n=AMX_N, a_dtype=INT8_DTYPES, mode=MODES, per_channel=st.booleans(),
       zp_per_column=st.booleans(), with_bias=st.booleans(), threads=st.sampled_from([1, 2]),
       tiles_only=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_matmul_amx_matches_reference(m: int, k: int, n: int, a_dtype: np.dtype, mode,
                                      per_channel: bool, zp_per_column: bool, with_bias: bool,
                                      threads: int, tiles_only: bool, seed: int) -> None:
    """Any M x K x N on the amx path equals the numpy reference, with every GEMM on the
    tiles or with the default thresholds (short reductions and few rows on VNNI)."""
    rng = np.random.default_rng(seed)
    a = random_ints(rng, (m, k), a_dtype)
    b = random_ints(rng, (k, n), np.dtype(np.int8))
    info = np.iinfo(a_dtype)
    a_zp = int(rng.integers(info.min, info.max + 1))
    b_zp: int | np.ndarray = rng.integers(-128, 128, size=n) if zp_per_column else 0
    bias = None
    if with_bias:
        bias = centering_bias(matmul(a, b, a_zero_point=a_zp, b_zero_point=b_zp), rng)
    acc = matmul(a, b, a_zero_point=a_zp, b_zero_point=b_zp, bias=bias)
    out_dtype = np.dtype(np.uint8) if seed % 2 else np.dtype(np.int8)
    rq = spanning_requant(acc, out_dtype=out_dtype, mode=mode, per_channel=per_channel,
                          stretch=1.0, clamp=(0.0, 1.0))
    ref = rq.apply(acc)
    before = _native.short_gemm_bytes(), _native.short_gemm_rows()
    if not tiles_only:  # the defaults, as a session runs
        _native.set_short_gemm_bytes(128)
        _native.set_short_gemm_rows(8)
    try:
        with nb.use_path("amx"):
            got = NativeMatMul(b, bias, a_zero_point=a_zp, a_dtype=a_dtype, b_zero_point=b_zp,
                               requant=rq, threads=threads)(a)
    finally:
        _native.set_short_gemm_bytes(before[0])
        _native.set_short_gemm_rows(before[1])
    assert got.shape == ref.shape
    if not np.array_equal(got, ref):
        bad = np.argwhere(got != ref)
        raise AssertionError(f"amx: {len(bad)} of {ref.size} outputs differ, first at "
                             f"{bad[0].tolist()}: got {got[tuple(bad[0])]}, "
                             f"want {ref[tuple(bad[0])]}")


@needs_amx
@given(c=st.one_of(st.sampled_from([3, 5, 16, 20, 40, 64, 65, 128]), st.integers(1, 140)),
       m=st.one_of(st.sampled_from([1, 16, 17, 48, 64, 65]), st.integers(1, 100)),
       kh=st.integers(1, 3), kw=st.sampled_from([1, 3, 5, 7]), h=st.integers(1, 9),
       w=st.integers(1, 40), stride=st.sampled_from([1, 2]), pad=st.sampled_from([0, 1, 3]),
       x_dtype=INT8_DTYPES, seed=st.integers(0, 2**32 - 1))
def test_conv_amx_matches_reference(c: int, m: int, kh: int, kw: int, h: int, w: int,
                                    stride: int, pad: int, x_dtype: np.dtype,
                                    seed: int) -> None:
    """Random 2-D convolutions on the tiles (taps that split, fill or straddle 64-byte K
    blocks, kernel-row taps, rows read in place or copied) equal the numpy reference."""
    rng = np.random.default_rng(seed)
    x = random_ints(rng, (1, h, w, c), x_dtype)
    wt = random_ints(rng, (m, c, kh, kw), np.dtype(np.int8))
    info = np.iinfo(x_dtype)
    x_zp = int(rng.integers(info.min, info.max + 1))
    w_zp = rng.integers(-128, 128, size=m)
    kwargs = {"pads": (pad, pad, pad, pad), "strides": (stride, stride), "group": 1}
    if h + 2 * pad < kh or w + 2 * pad < kw:
        return  # no output pixel
    acc = conv(x, wt, None, x_zero_point=x_zp, w_zero_point=w_zp, requant=None,
               layout=Layout.CHANNELS_LAST, **kwargs)
    rq = spanning_requant(acc, out_dtype=np.dtype(np.uint8), mode=RequantMode.FLOAT32,
                          per_channel=True, stretch=1.0, clamp=(0.0, 1.0))
    ref = rq.apply(acc)
    with nb.use_path("amx"):
        got = NativeConv(wt, None, x_zero_point=x_zp, x_dtype=x_dtype, w_zero_point=w_zp,
                         requant=rq, threads=1, **kwargs)(x)
    np.testing.assert_array_equal(got, ref)


def _guarded(nbytes: int) -> tuple[int, int, int]:
    """An anonymous mapping: a PROT_NONE page, `nbytes` rounded up to whole pages, a
    PROT_NONE page. Returns (mapping address, its length, address of the first data byte)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = mmap.PAGESIZE
    data = (nbytes + page - 1) // page * page
    length = data + 2 * page
    addr = libc.mmap(None, length, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap failed")
    for at in (addr, addr + page + data):
        if libc.mprotect(ctypes.c_void_p(at), page, 0) != 0:  # PROT_NONE
            raise OSError(ctypes.get_errno(), "mprotect failed")
    return addr, length, addr + page


# (x shape NHWC, w shape, stride) without padding and with whole groups of 4 channels, so
# that the kernel reads the rows of x in place (no padded copy), and the last output pixel's
# last tap ends at the last byte of x.
GUARDED = {
    "7x7 c4 stride 2 (kernel-row taps of 28 bytes)": ((1, 21, 19, 4), (70, 4, 7, 7), 2),
    "5x5 c12 (60-byte kernel rows)": ((1, 9, 8, 12), (70, 12, 5, 5), 1),
    "3x3 c16 (taps split blocks)": ((1, 6, 7, 16), (70, 16, 3, 3), 1),
    "3x3 c40 (taps straddle blocks)": ((1, 5, 9, 40), (70, 40, 3, 3), 1),
    "1x1 c200 (a 8-byte last block)": ((1, 3, 11, 200), (70, 200, 1, 1), 1),
}


@needs_amx
@pytest.mark.parametrize("name", sorted(GUARDED))
@pytest.mark.parametrize("at_end", [False, True])
def test_conv_amx_reads_nothing_outside_x(name: str, at_end: bool) -> None:
    """The row packing merges short tap runs by masked 64-byte loads whose masked-off lanes
    lie before or after the run: with x right after or right before a PROT_NONE page, those
    lanes must not be read (a plain load there would fault). The sanitizers do not see
    masked loads; the page protection does."""
    x_shape, w_shape, stride = GUARDED[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    nbytes = int(np.prod(x_shape))
    addr, length, data = _guarded(nbytes)
    try:
        page = mmap.PAGESIZE
        start = data + ((nbytes + page - 1) // page * page - nbytes if at_end else 0)
        x = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(start))
        x = x.reshape(x_shape)
        x[...] = random_ints(rng, x_shape, np.dtype(np.uint8))
        w = random_ints(rng, w_shape, np.dtype(np.int8))
        kw = {"pads": (0, 0, 0, 0), "strides": (stride, stride), "group": 1}
        acc = conv(x, w, None, x_zero_point=7, w_zero_point=0, requant=None,
                   layout=Layout.CHANNELS_LAST, **kw)
        rq = spanning_requant(acc, out_dtype=np.dtype(np.uint8), mode=RequantMode.FLOAT32,
                              per_channel=True, stretch=1.0, clamp=(0.0, 1.0))
        with nb.use_path("amx"):
            got = NativeConv(w, None, x_zero_point=7, x_dtype=np.uint8, w_zero_point=0,
                             requant=rq, threads=1, **kw)(x)
        np.testing.assert_array_equal(got, rq.apply(acc))
        del x
    finally:
        libc = ctypes.CDLL(None)
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.munmap(ctypes.c_void_p(addr), length)
