"""NativeConv against lowp.ops.conv.conv (channels last) on every path, tolerance 0."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lowp.fixedpoint import RequantMode
from lowp.ops.conv import conv
from lowp.ops.layout import Layout
from lowp.runtime.native_backend import NativeConv

from .helpers import (
    INT8_DTYPES,
    MODES,
    assert_all_paths,
    assert_spans,
    centering_bias,
    random_ints,
    spanning_requant,
)


@st.composite
def conv_cases(draw: st.DrawFn, *, rank: int | None = None, depthwise: bool = False,
               kernel: int | None = None, stride: int | None = None) -> dict:
    """Random geometry whose output is non-empty: rank, groups, kernel, stride, pads, dil."""
    r = draw(st.integers(1, 3)) if rank is None else rank
    if depthwise:
        group = draw(st.integers(1, 40))
        cg, mg = 1, 1
    else:
        group = draw(st.sampled_from([1, 1, 2, 3]))
        cg = draw(st.one_of(st.integers(1, 9), st.sampled_from([16, 17, 32])))
        mg = draw(st.one_of(st.integers(1, 20), st.sampled_from([31, 64, 65, 70])))
    ks = tuple(draw(st.integers(1, 3)) if kernel is None else kernel for _ in range(r))
    ss = tuple(draw(st.integers(1, 3)) if stride is None else stride for _ in range(r))
    ds = tuple(draw(st.integers(1, 2)) if kernel is None else 1 for _ in range(r))
    ps = tuple(draw(st.integers(0, 2)) for _ in range(2 * r))
    max_side = {1: 16, 2: 9, 3: 5}[r]
    spatial = []
    for i in range(r):
        span = (ks[i] - 1) * ds[i] + 1
        lo = max(1, span - ps[i] - ps[i + r])
        spatial.append(draw(st.integers(lo, max(lo, max_side))))
    return {"rank": r, "group": group, "cg": cg, "mg": mg, "kernel": ks, "strides": ss,
            "dilations": ds, "pads": ps, "spatial": tuple(spatial),
            "batch": draw(st.sampled_from([0, 1, 1, 2]))}


def _check_conv(case: dict, *, x_dtype: np.dtype, w_dtype: np.dtype, mode: RequantMode,
                per_channel: bool, seed: int, threads: int = 1) -> NativeConv | None:
    rng = np.random.default_rng(seed)
    c = case["group"] * case["cg"]
    m = case["group"] * case["mg"]
    x = random_ints(rng, (case["batch"], *case["spatial"], c), x_dtype)
    w = random_ints(rng, (m, case["cg"], *case["kernel"]), w_dtype)
    xi, wi = np.iinfo(x_dtype), np.iinfo(w_dtype)
    x_zp = int(rng.integers(xi.min, xi.max + 1))
    choice = rng.integers(0, 3)
    if choice == 0:
        w_zp: int | np.ndarray = 128 if w_dtype == np.uint8 else 0
    elif choice == 1:
        w_zp = int(rng.integers(wi.min, wi.max + 1))
    else:
        w_zp = rng.integers(wi.min, wi.max + 1, size=m)
    kw = {"strides": case["strides"], "pads": case["pads"], "dilations": case["dilations"],
          "group": case["group"]}
    bias = None
    if rng.random() < 0.7:
        bias = centering_bias(conv(x, w, None, x_zero_point=x_zp, w_zero_point=w_zp,
                                   requant=None, layout=Layout.CHANNELS_LAST, **kw), rng)
    acc = conv(x, w, bias, x_zero_point=x_zp, w_zero_point=w_zp, requant=None,
               layout=Layout.CHANNELS_LAST, **kw)
    out_dtype = np.dtype(np.uint8) if rng.random() < 0.5 else np.dtype(np.int8)
    rq = spanning_requant(acc, out_dtype=out_dtype, mode=mode, per_channel=per_channel,
                          stretch=float(rng.uniform(0.6, 1.4)),
                          clamp=[(0.0, 1.0), (0.5, 1.0), (0.1, 0.8)][int(rng.integers(0, 3))])
    ref = rq.apply(acc)
    assert_spans(ref, rq, acc)
    made: list[NativeConv] = []

    def make() -> NativeConv:
        op = NativeConv(w, bias, x_zero_point=x_zp, x_dtype=x_dtype, w_zero_point=w_zp,
                        requant=rq, threads=threads, **kw)
        made.append(op)
        return op

    assert_all_paths(make, x, ref)
    return made[-1] if made else None


@given(case=conv_cases(), x_dtype=INT8_DTYPES, w_dtype=INT8_DTYPES, mode=MODES,
       per_channel=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_conv_matches_reference(case: dict, x_dtype: np.dtype, w_dtype: np.dtype,
                                mode: RequantMode, per_channel: bool, seed: int) -> None:
    _check_conv(case, x_dtype=x_dtype, w_dtype=w_dtype, mode=mode, per_channel=per_channel,
                seed=seed)


@given(case=st.one_of(conv_cases(rank=2, depthwise=True, kernel=3, stride=1),
                      conv_cases(rank=2, depthwise=True, kernel=3, stride=2),
                      conv_cases(rank=3, depthwise=True, kernel=3, stride=1)),
       x_dtype=INT8_DTYPES, w_dtype=INT8_DTYPES, mode=MODES, per_channel=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_depthwise_3x3_and_3x3x3(case: dict, x_dtype: np.dtype, w_dtype: np.dtype,
                                 mode: RequantMode, per_channel: bool, seed: int) -> None:
    op = _check_conv(case, x_dtype=x_dtype, w_dtype=w_dtype, mode=mode,
                     per_channel=per_channel, seed=seed)
    assert op is not None and op.uses_depthwise_kernel


@given(case=conv_cases(depthwise=True), x_dtype=INT8_DTYPES, mode=MODES,
       seed=st.integers(0, 2**32 - 1))
def test_depthwise_generic(case: dict, x_dtype: np.dtype, mode: RequantMode,
                           seed: int) -> None:
    """Any kernel size, stride, dilation and padding through the generic depthwise kernel."""
    _check_conv(case, x_dtype=x_dtype, w_dtype=np.dtype(np.int8), mode=mode,
                per_channel=True, seed=seed)


@given(cg=st.sampled_from([1, 2, 3, 5, 6, 7]),
       kernel=st.sampled_from([(3, 3), (7, 7), (1, 5), (5, 2)]),
       stride=st.integers(1, 2), pad=st.integers(0, 3),
       mg=st.sampled_from([8, 16, 24, 32, 48, 64, 70]),
       x_dtype=INT8_DTYPES, w_dtype=INT8_DTYPES, mode=MODES, per_channel=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_conv_kernel_row_taps(cg: int, kernel: tuple[int, int], stride: int, pad: int, mg: int,
                              x_dtype: np.dtype, w_dtype: np.dtype, mode: RequantMode,
                              per_channel: bool, seed: int) -> None:
    """First-layer shapes (few input channels, wide kernels): a whole kernel row is one GEMM
    tap, and the last 4-byte block of a row reaches into the next pixel."""
    side = max(kernel) + 3
    case = {"rank": 2, "group": 1, "cg": cg, "mg": mg, "kernel": kernel,
            "strides": (stride, stride), "dilations": (1, 1), "pads": (pad, pad, pad, pad),
            "spatial": (side, side + 2), "batch": 1}
    _check_conv(case, x_dtype=x_dtype, w_dtype=w_dtype, mode=mode, per_channel=per_channel,
                seed=seed)


@given(mg=st.sampled_from([8, 24, 32, 40, 64, 72, 96, 136]), group=st.integers(1, 2),
       cg=st.sampled_from([4, 20, 64]), x_dtype=INT8_DTYPES, w_dtype=INT8_DTYPES, mode=MODES,
       per_channel=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_conv_output_widths(mg: int, group: int, cg: int, x_dtype: np.dtype,
                            w_dtype: np.dtype, mode: RequantMode, per_channel: bool,
                            seed: int) -> None:
    """1x1 convolutions whose panels hold whole and partial 32-channel blocks (the 256-bit
    epilogue narrows 32 outputs per store, then 8 at a time), at group offsets that are not
    a multiple of 32, with every weight zero-point form."""
    case = {"rank": 2, "group": group, "cg": cg, "mg": mg, "kernel": (1, 1),
            "strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "spatial": (3, 5),
            "batch": 1}
    _check_conv(case, x_dtype=x_dtype, w_dtype=w_dtype, mode=mode, per_channel=per_channel,
                seed=seed)


@given(rows=st.integers(1, 30), mg=st.sampled_from([16, 32, 48, 64, 80, 112, 128, 200]),
       cg=st.sampled_from([4, 64, 132]), threads=st.sampled_from([1, 2]),
       x_dtype=INT8_DTYPES, w_dtype=INT8_DTYPES, mode=MODES, per_channel=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_conv_every_tile_of_rows_and_columns(rows: int, mg: int, cg: int, threads: int,
                                             x_dtype: np.dtype, w_dtype: np.dtype,
                                             mode: RequantMode, per_channel: bool,
                                             seed: int) -> None:
    """1x1 convolutions over 1 to 30 pixels and 16 to 64 columns a panel: every row count
    and column count of the GEMM tiles (the accumulators start from the bias, take the
    weight zero-point term and are requantized without leaving registers)."""
    case = {"rank": 2, "group": 1, "cg": cg, "mg": mg, "kernel": (1, 1),
            "strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "spatial": (1, rows),
            "batch": 1}
    _check_conv(case, x_dtype=x_dtype, w_dtype=w_dtype, mode=mode, per_channel=per_channel,
                seed=seed, threads=threads)


@given(kernel=st.sampled_from([(3, 3), (5, 5), (3, 1), (1, 3), (2, 2)]),
       strides=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       dilations=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       pads=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
                      st.integers(0, 3)).filter(any),
       side=st.tuples(st.integers(1, 26), st.integers(1, 26)),
       cg=st.sampled_from([4, 16, 64]), mg=st.sampled_from([16, 64, 80]),
       group=st.sampled_from([1, 1, 2]), batch=st.sampled_from([1, 2]),
       threads=st.sampled_from([1, 2]), w_dtype=INT8_DTYPES, mode=MODES,
       per_channel=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_conv_padded_uint8_input_read_in_place(
        kernel: tuple[int, int], strides: tuple[int, int], dilations: tuple[int, int],
        pads: tuple[int, int, int, int], side: tuple[int, int], cg: int, mg: int, group: int,
        batch: int, threads: int, w_dtype: np.dtype, mode: RequantMode, per_channel: bool,
        seed: int) -> None:
    """Padded uint8 inputs of whole 4-channel blocks over maps of up to 26 x 26 pixels:
    the avx512vnni path reads them in place (tiles of inside windows by tap offsets, tiles
    with a border window by a pointer per row and tap, the padding's taps on a pixel of
    zero points) where the other paths copy the input padded; every tile of border and
    inside rows, several panels, 1 and 2 threads, every weight zero-point form (row sums)."""
    spatial = tuple(max(side[i], (kernel[i] - 1) * dilations[i] + 1 - pads[i] - pads[i + 2])
                    for i in range(2))
    case = {"rank": 2, "group": group, "cg": cg, "mg": mg, "kernel": kernel,
            "strides": strides, "dilations": dilations, "pads": pads, "spatial": spatial,
            "batch": batch}
    _check_conv(case, x_dtype=np.dtype(np.uint8), w_dtype=w_dtype, mode=mode,
                per_channel=per_channel, seed=seed, threads=threads)


@given(group=st.sampled_from([1, 5, 16, 40, 128]), kh=st.integers(2, 21),
       stride=st.integers(1, 3), dilation=st.integers(1, 2), pad=st.tuples(
           st.integers(0, 3), st.integers(0, 3)), width_pad=st.booleans(),
       length=st.integers(1, 40), batch=st.sampled_from([1, 2, 3]),
       threads=st.sampled_from([1, 2]), x_dtype=INT8_DTYPES, mode=MODES,
       seed=st.integers(0, 2**32 - 1))
def test_depthwise_column_kernel_on_one_pixel_wide_input(
        group: int, kh: int, stride: int, dilation: int, pad: tuple[int, int],
        width_pad: bool, length: int, batch: int, threads: int, x_dtype: np.dtype,
        mode: RequantMode, seed: int) -> None:
    """A kh x 1 depthwise kernel on (n, t, 1, c) data (fsmn_vad's memory blocks, 20 x 1):
    run with height and width exchanged (one row of outputs, the taps paired along it)
    unless the width is padded; equal to the reference on every path either way."""
    span = (kh - 1) * dilation + 1
    length = max(length, span - pad[0] - pad[1])
    pads = (pad[0], 1 if width_pad else 0, pad[1], 0)
    case = {"rank": 2, "group": group, "cg": 1, "mg": 1, "kernel": (kh, 1),
            "strides": (stride, 1), "dilations": (dilation, 1), "pads": pads,
            "spatial": (length, 1), "batch": batch}
    op = _check_conv(case, x_dtype=x_dtype, w_dtype=np.dtype(np.int8), mode=mode,
                     per_channel=True, seed=seed, threads=threads)
    assert op is not None and op.uses_depthwise_kernel
