"""Numpy float implementations of the ONNX neural-network ops: conv, pooling, norms, resize, RNNs.

Registered into FLOAT_OPS (see float_registry for the calling convention). Convolution is
im2col + one batched matmul per group; pooling reduces strided window views; Resize is
separable (one 1-D interpolation per resized axis), which equals ONNX Runtime's n-linear and
cubic formulas up to float32 rounding and is exact for nearest.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto

from lowp import eigen_math, libm, mlas_sgemm, ort_math
from lowp.errors import NodeError
from lowp.ops.pool import crop_negative_pads, ort_same_pads, window_reaching_pads
from lowp.runtime import max_pool_order, native_float, native_rnn, nchwc_conv
from lowp.runtime.float_registry import OpResult, compute_dtype, register, unsupported

Pads = tuple[list[int], list[int]]

# Upper bound of one im2col buffer; larger batches are convolved in slices.
_IM2COL_BYTES = 64 << 20


def _f(x: np.ndarray) -> np.ndarray:
    return x.astype(compute_dtype(x), copy=False)


def _ints(v: Sequence[int] | np.ndarray | None, n: int, default: int) -> list[int]:
    return [default] * n if v is None or len(v) == 0 else [int(a) for a in v]


# --- geometry shared by conv and pooling --------------------------------------------------


def auto_pads(op: str, in_sp: Sequence[int], k: Sequence[int], s: Sequence[int],
               d: Sequence[int], pads: Sequence[int] | None, auto_pad: str) -> Pads:
    """Begin and end pads per spatial axis for explicit pads or auto_pad."""
    nd = len(in_sp)
    if auto_pad in ("NOTSET", ""):
        p = _ints(pads, 2 * nd, 0)
        return p[:nd], p[nd:]
    if auto_pad == "VALID":
        return [0] * nd, [0] * nd
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise unsupported(op, f"auto_pad={auto_pad!r}")
    begin, end = [], []
    for i in range(nd):
        out = -(-in_sp[i] // s[i])
        total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_sp[i])
        small, big = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else big)
        end.append(big if auto_pad == "SAME_UPPER" else small)
    return begin, end


def _windows(xp: np.ndarray, k: Sequence[int], s: Sequence[int], d: Sequence[int],
             out: Sequence[int]) -> np.ndarray:
    """View (N, C, *out, *k) of the windows of the padded input `xp` (N, C, *spatial)."""
    nd = len(k)
    ext = [(k[i] - 1) * d[i] + 1 for i in range(nd)]
    v = sliding_window_view(xp, ext, axis=tuple(range(2, 2 + nd)))
    pos = tuple(slice(0, (out[i] - 1) * s[i] + 1, s[i]) for i in range(nd))
    win = tuple(slice(None, None, d[i]) for i in range(nd))
    return v[(slice(None), slice(None)) + pos + win]


def _pad_spatial(x: np.ndarray, begin: Sequence[int], end: Sequence[int],
                 value: Any = 0) -> np.ndarray:
    if not any(begin) and not any(end):
        return x
    widths = [(0, 0), (0, 0)] + [(int(b), int(e)) for b, e in zip(begin, end, strict=True)]
    return np.pad(x, widths, mode="constant", constant_values=value)


# --- convolution --------------------------------------------------------------------------


def _check_conv_weight(channels: int, w_shape: tuple[int, ...], group: int,
                       kernel_shape: Sequence[int] | None, transposed: bool = False) -> None:
    """The weight, the group and kernel_shape agree with the input's channels: a Conv
    weight is (M, C / group, k...), a ConvTranspose weight (C, M / group, k...)."""
    if len(w_shape) < 3:
        raise NodeError(f"weight of shape {list(w_shape)} is not a convolution kernel")
    m = w_shape[0]
    if transposed:
        bad = group < 1 or channels % group or m != channels
    else:
        bad = group < 1 or channels % group or m % group or w_shape[1] * group != channels
    if bad:
        raise NodeError(f"{channels} input channels, weight {list(w_shape)} and group={group} "
                        "do not agree")
    if kernel_shape is not None and list(kernel_shape) != list(w_shape[2:]):
        raise NodeError(f"kernel_shape {list(kernel_shape)} is not the weight's "
                        f"{list(w_shape[2:])}")


@register
def Conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, auto_pad: str = "NOTSET",
         dilations: Sequence[int] | None = None, group: int = 1,
         kernel_shape: Sequence[int] | None = None, pads: Sequence[int] | None = None,
         strides: Sequence[int] | None = None, w_constant: bool = False,
         b_constant: bool = False, init: np.ndarray | None = None, relu: bool = False,
         **_: Any) -> np.ndarray:
    """N-D convolution: pad, im2col over strided window views, one matmul per group; a
    float32 2-D one that ONNX Runtime moves to its NCHWc kernels (constant weights and
    bias: `w_constant`, `b_constant`) sums in their order (lowp.runtime.nchwc_conv), the
    other float32 ones as MLAS's im2col SGEMM does, per image and group (lowp.mlas_sgemm),
    the bias added after: by one native call when built (lowp.runtime.native_float.conv),
    else by the numpy form below, its reference. `init` (float32, the output's shape):
    the SGEMM accumulates onto it, or the NCHWc kernel's first block adds to it
    (FusedConv's Sum). `relu` (lowp.runtime.conv_bias_fusion's ConvBias, on the NCHWc
    path only): ONNX Runtime's Relu node after the bias, in the NCHWc kernel's write-out."""
    xf, wf = _f(x), _f(w)
    n, c = x.shape[:2]
    in_sp = x.shape[2:]
    nd = len(in_sp)
    k = list(w.shape[2:])
    _check_conv_weight(c, w.shape, group, kernel_shape)
    if w.ndim != x.ndim:
        raise NodeError(f"weight rank {w.ndim} does not match input rank {x.ndim}")
    s, d = _ints(strides, nd, 1), _ints(dilations, nd, 1)
    begin, end = auto_pads("Conv", in_sp, k, s, d, pads, auto_pad)
    out = [(in_sp[i] + begin[i] + end[i] - (k[i] - 1) * d[i] - 1) // s[i] + 1 for i in range(nd)]
    if any(o < 1 for o in out):
        raise NodeError(f"the {'x'.join(map(str, k))} kernel (dilations {d}) does not fit the "
                        f"padded input {list(in_sp)}")
    m, g = w.shape[0], group
    nchwc = nchwc_conv.plan(x.shape, w.shape, g, w_constant, b_constant) \
        if x.dtype == np.float32 and w.dtype == np.float32 else None
    if nchwc is not None:
        return nchwc_conv.convolve(x, w, None if b is None else _f(b), nchwc, g,
                                   begin + end, s, d, sum=init, relu=relu)
    if relu:
        raise ValueError("Conv: relu is for the NCHWc kernel only")
    mlas = xf.dtype == np.float32 and wf.dtype == np.float32
    whole = mlas_sgemm.conv_whole_axis(in_sp, k, s, d, begin + end, c // g) if mlas else None
    if whole == "rows":
        y = _window_row_products(xf, wf, g, tuple(out), init)
        if b is not None:
            y += _f(b).reshape((1, m) + (1,) * nd)
        return y
    native = native_float.conv(x, w, None if b is None else _f(b), g, s, d, begin, out,
                               init) if mlas else None
    if native is not None:
        return native
    kk = c // g * int(np.prod(k))
    p = int(np.prod(out))
    wg = wf.reshape(1, g, m // g, kk)
    init_g = None if init is None else _f(init).reshape(n, g, m // g, p)
    direct = all(v == 1 for v in k + s) and not any(begin) and not any(end) \
        or whole == "columns"
    parts = mlas_sgemm.conv_parts(m // g, p, kk, native_float.get_threads(), n * g, direct)
    if direct:
        cols1 = xf.reshape(n, g, kk, p)
        y = _mlas_products(wg[0], cols1, parts, init_g) if mlas else np.matmul(wg, cols1)
        y = y.reshape((n, m) + tuple(out))
    else:
        win = _windows(_pad_spatial(xf, begin, end), k, s, d, out)
        win = win.reshape((n, g, c // g) + win.shape[2:])
        order = (0, 1, 2) + tuple(range(3 + nd, 3 + 2 * nd)) + tuple(range(3, 3 + nd))
        win = win.transpose(order)
        y = np.empty((n, g, m // g, p), dtype=xf.dtype)
        # im2col a few images at a time so that the column buffer stays bounded.
        step = max(1, _IM2COL_BYTES // max(1, kk * p * g * xf.itemsize))
        for i in range(0, n, step):
            cols = win[i:i + step].reshape(-1, g, kk, p)
            if mlas:
                y[i:i + step] = _mlas_products(
                    wg[0], cols, parts, None if init_g is None else init_g[i:i + step])
            else:
                np.matmul(wg, cols, out=y[i:i + step])
        y = y.reshape((n, m) + tuple(out))
    if b is not None:
        y += _f(b).reshape((1, m) + (1,) * nd)
    return y.astype(x.dtype, copy=False)


def _window_row_products(x: np.ndarray, w: np.ndarray, group: int, out: tuple[int, ...],
                         init: np.ndarray | None) -> np.ndarray:
    """MlasConv's GemmDirect with B transposed (lowp.mlas_sgemm.conv_whole_axis "rows": a
    kernel as wide as the input, one input channel per group): per image and group, the
    filters (m / group x K) times the rows that start every input width (one per output
    position, K long, overlapping), one MlasGemm each (ldb the width), cut as
    `conv_parts`' direct products, accumulated onto `init` when given; float32, no bias."""
    n, m = x.shape[0], w.shape[0]
    width, kk, size = x.shape[-1], int(np.prod(w.shape[1:])), int(np.prod(out))
    # (the per-group size spelt out: an empty batch has no -1 to infer)
    flat = np.ascontiguousarray(x).reshape(n, group, int(np.prod(x.shape[1:])) // group)
    filters = np.ascontiguousarray(w).reshape(group, m // group, kk)
    parts = mlas_sgemm.conv_parts(m // group, size, kk, native_float.get_threads(),
                                  n * group, True)
    y = np.empty((n, group, m // group, size), np.float32)
    c0 = None if init is None else np.ascontiguousarray(init, np.float32).reshape(y.shape)
    for i, j in product(range(n), range(group)):
        item = flat[i, j]
        rows = np.lib.stride_tricks.as_strided(item, (size, kk),
                                               (width * item.itemsize, item.itemsize))
        start = None if c0 is None else c0[i, j]
        if size == 1 or not native_float.sgemm(filters[j], np.ascontiguousarray(rows).T,
                                               y[i, j], trans_b=True, init=start,
                                               parts=parts):
            y[i, j] = mlas_sgemm.gemm(filters[j], rows, trans_b=True, c=start, ldb=width,
                                      parts=parts)
    return y.reshape((n, m) + out)


def _mlas_products(wg: np.ndarray, cols: np.ndarray, parts: list[tuple[slice, slice]],
                   init: np.ndarray | None = None) -> np.ndarray:
    """(n, g, m/g, p) float32 products of the filters wg (g, m/g, kk) with the columns
    cols (n, g, kk, p), one MLAS SGEMM per image and group (ONNX Runtime's MlasConv), each
    cut in `parts` between threads (lowp.mlas_sgemm.conv_parts), accumulated onto `init`
    (n, g, m/g, p) when given (beta 1)."""
    out = np.empty(cols.shape[:2] + (wg.shape[1], cols.shape[3]), np.float32)
    for i, j in product(range(cols.shape[0]), range(cols.shape[1])):
        a, bm = np.ascontiguousarray(wg[j]), np.ascontiguousarray(cols[i, j])
        c0 = None if init is None else np.ascontiguousarray(init[i, j])
        if not native_float.sgemm(a, bm, out[i, j], init=c0, parts=parts):
            out[i, j] = mlas_sgemm.gemm(a, bm, c=c0, parts=parts)
    return out


# FusedConv's activations: the lowp operator that computes each as MLAS's MlasActivation
# does after the bias, and how its activation_params bind to that operator's attributes
_FUSED_ACTIVATIONS: dict[str, tuple[str, ...]] = {
    "Relu": (), "Sigmoid": (), "Tanh": (), "LeakyRelu": ("alpha",),
    "HardSigmoid": ("alpha", "beta"), "Clip": ("min", "max")}


@register
def FusedConv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
              z: np.ndarray | None = None, *, activation: str = "",
              activation_params: Sequence[float] | None = None, **attrs: Any) -> np.ndarray:
    """ONNX Runtime's com.microsoft FusedConv (lowp.runtime.ort_conv_add, and
    lowp.runtime.ort_nchwc_add for its NCHWc Convs): Conv with the optional Sum `z` as the
    output's starting value (the im2col SGEMM accumulates onto it, beta 1; MLAS's NCHWc
    kernel adds its first block of input channels to it), the bias added after, then
    `activation` (docs/operators.md (O31f), (O31n)). A Conv that is not float32 is computed
    unfused: the Conv, then + z, then the activation."""
    if activation and activation not in _FUSED_ACTIVATIONS:
        raise unsupported("FusedConv", f"activation {activation!r}")
    attrs = {k: v for k, v in attrs.items() if k != "opset"}
    f32 = x.dtype == np.float32 and w.dtype == np.float32 and (
        z is None or z.dtype == np.float32)
    if z is not None and f32:
        y = Conv(x, w, b, init=np.broadcast_to(z, z.shape), **attrs)
    else:
        y = Conv(x, w, b, **attrs)
        if z is not None:
            y = y + z
    if not activation:
        return y
    if y.dtype == np.float32 and activation in ("Relu", "Clip"):
        # in place, natively where it can: the result stays in the buffer the Conv wrote
        # (a replayed step's), the values those of np.maximum then np.minimum
        bounds = [0.0, None] if activation == "Relu" else list(activation_params or [])
        if len(bounds) == 2 and native_float.clamp_in_place(y, *bounds):
            return y
    from .float_ops import FLOAT_OPS

    names = _FUSED_ACTIVATIONS[activation]
    params = list(activation_params or [])
    if activation == "Clip":
        return np.asarray(FLOAT_OPS["Clip"](y, *(np.float32(v) for v in params)))
    return np.asarray(FLOAT_OPS[activation](y, **dict(zip(names, params, strict=False))))


@register
def ConvInteger(x: np.ndarray, w: np.ndarray, x_zero_point: np.ndarray | None = None,
                w_zero_point: np.ndarray | None = None, **attrs: Any) -> np.ndarray:
    """int32 convolution of (x - x_zp) and (w - w_zp), w_zp per tensor or per output
    channel; padding contributes zero (the input padded with its zero point). Exact: the
    8-bit differences' sums stay below 2^53 and run in float64. A 2-D one in one group with
    a constant weight asks lowp.runtime.native_integer.conv_integer first (the same
    integers)."""
    from lowp.ops.linear import wrap_int32
    from lowp.runtime import native_integer

    shape = attrs.get("kernel_shape")
    if x.ndim == 4 and w.ndim == 4 and (not shape or list(shape) == list(w.shape[2:])):
        k = list(w.shape[2:])
        begin, end = auto_pads("ConvInteger", x.shape[2:], k, _ints(attrs.get("strides"), 2, 1),
                               _ints(attrs.get("dilations"), 2, 1), attrs.get("pads"),
                               attrs.get("auto_pad", "NOTSET"))
        native = native_integer.conv_integer(
            x, w, x_zero_point, w_zero_point, int(attrs.get("group", 1)),
            _ints(attrs.get("strides"), 2, 1), _ints(attrs.get("dilations"), 2, 1), begin, end)
        if native is not None:
            return native
    xz = 0.0 if x_zero_point is None else float(np.asarray(x_zero_point).reshape(-1)[0])
    wz = 0.0 if w_zero_point is None else np.asarray(w_zero_point, np.float64).reshape(
        (-1,) + (1,) * (w.ndim - 1))
    y = Conv(x.astype(np.float64) - xz, w.astype(np.float64) - wz, **attrs)
    return wrap_int32(np.rint(y).astype(np.int64))


@register
def ConvTranspose(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *,
                  auto_pad: str = "NOTSET", dilations: Sequence[int] | None = None,
                  group: int = 1, kernel_shape: Sequence[int] | None = None,
                  output_padding: Sequence[int] | None = None,
                  output_shape: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                  strides: Sequence[int] | None = None, w_constant: bool = False,
                  **_: Any) -> np.ndarray:
    """N-D transposed convolution: one matmul per group, then col2im scatter-add.
    `w_constant`: the filter is a constant (ONNX Runtime then prepacks it)."""
    xf, wf = _f(x), _f(w)
    n, c = x.shape[:2]
    in_sp = x.shape[2:]
    nd = len(in_sp)
    k = list(w.shape[2:])
    _check_conv_weight(c, w.shape, group, kernel_shape, transposed=True)
    if w.ndim != x.ndim:
        raise NodeError(f"weight rank {w.ndim} does not match input rank {x.ndim}")
    s, d = _ints(strides, nd, 1), _ints(dilations, nd, 1)
    adj = _ints(output_padding, nd, 0)
    g = group
    mg = w.shape[1]
    ext = [(k[i] - 1) * d[i] + 1 for i in range(nd)]
    full = [(in_sp[i] - 1) * s[i] + ext[i] + adj[i] for i in range(nd)]
    if output_shape is not None and len(output_shape) > 0:
        shape = [int(v) for v in output_shape][-nd:]
        total = [max(0, full[i] - shape[i]) for i in range(nd)]
        # As ONNX Runtime: the odd pad goes to the end for SAME_UPPER, to the start otherwise.
        if auto_pad == "SAME_UPPER":
            begin = [t // 2 for t in total]
        else:
            begin = [t - t // 2 for t in total]
        end = [total[i] - begin[i] for i in range(nd)]
        # an output_shape beyond the full output (by less than a stride, as ONNX Runtime
        # accepts) ends in zeros: the output is output_shape, not the padded full output
        out = shape
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        total = [max(0, full[i] - in_sp[i] * s[i]) for i in range(nd)]
        if auto_pad == "SAME_UPPER":
            begin = [t // 2 for t in total]
        else:
            begin = [t - t // 2 for t in total]
        end = [total[i] - begin[i] for i in range(nd)]
    else:
        begin, end = auto_pads("ConvTranspose", in_sp, k, s, d, pads, auto_pad)
    if output_shape is None or len(output_shape) == 0:
        out = [full[i] - begin[i] - end[i] for i in range(nd)]
    # cols[n, g, o, *k, *in] = sum_c w[g, c, o, *k] x[n, g, c, *in]  (col2im scatters them)
    kk = mg * int(np.prod(k))
    if c == g and xf.dtype == np.float32 and wf.dtype == np.float32:
        # one input channel per group: every GEMM has K = 1, a column entry is w * x
        # rounded once; one native call makes and adds them (no GEMM per group), reading
        # a channels-last input in place
        direct = native_float.conv_transpose_direct(
            xf, wf, None if b is None else _f(b).reshape(-1), k, out, s, d, begin)
        if direct is not None:
            return direct.astype(x.dtype, copy=False)
    packed = w_constant and kk > 1 and c // g > 1
    if xf.dtype == np.float32 and wf.dtype == np.float32:
        # the same products and col2im, a block of output channels at a time
        blocked = native_float.conv_transpose(
            xf, wf, None if b is None else _f(b).reshape(-1), g, k, out, s, d, begin,
            trans_a=not packed)
        if blocked is not None:
            return blocked.astype(x.dtype, copy=False)
    if g > 1 and not xf.flags.c_contiguous:
        # (each group's product would gather its rows across the whole tensor: a
        # channels-last input is copied channels-first once, the same values)
        copied = native_float.contiguous_copy(xf)
        xf = xf if copied is None else copied
    wg = wf.reshape(g, c // g, kk).transpose(0, 2, 1)
    xg = xf.reshape(n, g, c // g, int(np.prod(in_sp, dtype=np.int64)))
    if xf.dtype == np.float32 and wf.dtype == np.float32:
        # ONNX Runtime's order: one MLAS GEMM per image and group, the filter as A (read
        # transposed, or transposed once when it is a constant with both per-group
        # dimensions above 1); col2im below adds in the same order as its Col2im
        cols = native_float.buffer((n, g, kk, xg.shape[-1]))
        wt = wf.reshape(g, c // g, kk)
        for i, j in product(range(n), range(g)):
            if not native_float.sgemm(wt[j].T, xg[i, j], cols[i, j], trans_a=not packed):
                cols[i, j] = mlas_sgemm.gemm(np.ascontiguousarray(wt[j].T) if packed else
                                             wt[j], xg[i, j], trans_a=not packed,
                                             threads=native_float.get_threads())
    else:
        cols = np.matmul(wg[None], xg)
    cols = cols.reshape((n, g * mg) + tuple(k) + tuple(in_sp))
    native = native_float.col2im(cols, None if b is None else _f(b).reshape(-1), k, in_sp,
                                 out, s, d, begin)
    if native is not None:
        return native.astype(x.dtype, copy=False)
    size = [max(full[i], begin[i] + out[i]) for i in range(nd)]
    buf = np.zeros((n, g * mg) + tuple(size), dtype=xf.dtype)
    nan_order = bool(np.isnan(cols).any())
    for offs in product(*(range(v) for v in k)):
        dst = (slice(None), slice(None)) + tuple(
            slice(offs[i] * d[i], offs[i] * d[i] + (in_sp[i] - 1) * s[i] + 1, s[i])
            for i in range(nd))
        col = cols[(slice(None), slice(None)) + offs]
        if nan_order:
            column_first = _col2im_column_first(nd, in_sp[-1], offs[-1] * d[-1] - begin[-1],
                                                s[-1], out[-1])
            buf[dst] = np.where(column_first, ort_math.sse_op(np.add, col, buf[dst]),
                                ort_math.sse_op(np.add, buf[dst], col))
        else:
            buf[dst] += col
    y = buf[(slice(None), slice(None)) + tuple(slice(begin[i], begin[i] + out[i])
                                               for i in range(nd))]
    if b is not None:
        # Eigen's rowwise += of the bias: the image's NaN before the bias's
        y = ort_math.sse_op(np.add, y, _f(b).reshape((1, -1) + (1,) * nd))
    return np.ascontiguousarray(y).astype(x.dtype, copy=False)


def _col2im_column_first(nd: int, width: int, first: int, stride: int,
                         out_width: int) -> np.ndarray:
    """Which of a tap's `width` input columns ONNX Runtime's col2im adds column entry first
    (x86's NaN: the entry's) rather than image first (docs/operators.md (O270)).

    The tap's column c lands on output column c * stride + first; its columns landing inside
    [0, out_width) form one run. Only the 2-D Col2im with stride 1 adds a run in vector
    code: four values at a time image first, then a pair column first, then one image
    first. Strided runs, 1-D and N-D transposed convolutions add every entry image first.
    """
    column_first = np.zeros(width, dtype=bool)
    if nd != 2 or stride != 1:
        return column_first
    lo, hi = max(0, -first), min(width, out_width - first)
    run = hi - lo
    if run > 0:
        pairs = lo + run // 4 * 4
        column_first[pairs:pairs + (run % 4) // 2 * 2] = True
    return column_first


# --- pooling ------------------------------------------------------------------------------


def _pool_geometry(op: str, in_sp: Sequence[int], k: Sequence[int], s: Sequence[int],
                   d: Sequence[int], pads: Sequence[int] | None, auto_pad: str,
                   ceil_mode: int, overhang_as_pad: bool = True
                   ) -> tuple[list[int], list[int], list[int], list[int]]:
    """(begin pads, end pads, extra end pads for ceil_mode windows, output size).

    auto_pad SAME comes as explicit pads: the callers take ONNX Runtime's, which leave
    dilation out, and drop what a negative one crops (`_same_as_explicit`, (O180)). An
    output size of 0 is an empty output ((O181)).
    """
    nd = len(in_sp)
    assert auto_pad not in ("SAME_UPPER", "SAME_LOWER"), "pass SAME through _same_as_explicit"
    begin, end = auto_pads(op, in_sp, k, s, d, pads, auto_pad)
    if overhang_as_pad:
        reach = window_reaching_pads(in_sp, k, s, [*begin, *end], d, bool(ceil_mode))
        begin, end = reach[:nd], reach[nd:]
    out, extra = [], []
    for i in range(nd):
        ext = (k[i] - 1) * d[i] + 1
        num = in_sp[i] + begin[i] + end[i] - ext
        if -s[i] < num < 0:     # (O80), the overhang not made padding: one window
            o = 1
        elif num < 0:           # (O181): ONNX Runtime's division toward zero, 0 or less
            o = -(-num // s[i]) + 1
        elif ceil_mode:
            o = -(-num // s[i]) + 1
            # The last window must start inside the input or the begin padding.
            if (o - 1) * s[i] >= in_sp[i] + begin[i]:
                o -= 1
        else:
            o = num // s[i] + 1
        if o < 0:
            raise NodeError(f"the {'x'.join(map(str, k))} window does not fit the padded "
                            f"input {list(in_sp)}")
        out.append(o)
        extra.append(max(0, (o - 1) * s[i] + ext - (in_sp[i] + begin[i] + end[i])))
    return begin, end, extra, out


def _same_as_explicit(x: np.ndarray, first: int, kernel_shape: Sequence[int], strides: Any,
                      pads: Any, auto_pad: str) -> tuple[np.ndarray, Any, str]:
    """(x, pads, auto_pad) of a pool with auto_pad SAME_UPPER / SAME_LOWER as explicit pads:
    ONNX Runtime's ((O180)), a negative one cropping `x` (spatial axes from `first`).
    Other pools as they are."""
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return x, pads, auto_pad
    nd = len(kernel_shape)
    begin, end = ort_same_pads(x.shape[first:first + nd], [int(v) for v in kernel_shape],
                               _ints(strides, nd, 1), auto_pad)
    return (crop_negative_pads(x, begin, end, first), [max(p, 0) for p in (*begin, *end)],
            "NOTSET")


def _max_pool_pads(spatial: Sequence[int], kernel_shape: Sequence[int], strides: Any,
                   pads: Any, auto_pad: str) -> tuple[Any, str]:
    """(pads, auto_pad) of a MaxPool: auto_pad SAME_UPPER / SAME_LOWER as ONNX Runtime's
    explicit pads, negative ones kept ((O180), (O200)); other pools' as they are."""
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return pads, auto_pad
    begin, end = ort_same_pads(spatial, [int(v) for v in kernel_shape],
                               _ints(strides, len(kernel_shape), 1), auto_pad)
    return [*begin, *end], "NOTSET"


#: the float MaxPool kernels (`max_pool_order`) ONNX Runtime runs through MlasPool
_MLAS_MAX_POOLS = ("vector", "generic", "global")


def _check_mlas_pads(kind: str, begin: Sequence[int], end: Sequence[int],
                     op: str = "MaxPool") -> None:
    """ONNX Runtime's MlasPool refuses a negative pad (a SAME pad of a kernel smaller than
    its stride); its loop and NCHWc kernels take it ((O200), (O218)). lowp refuses where it
    does."""
    if kind in _MLAS_MAX_POOLS and any(p < 0 for p in (*begin, *end)):
        raise NodeError(f"auto_pad SAME gives the negative pads {[*begin, *end]} "
                        "(a kernel smaller than its stride), which ONNX Runtime's float32 "
                        f"{op} refuses where MLAS runs it (MlasPool)")


def _empty_pool(x: np.ndarray, out: Sequence[int], channels_last: bool = False
                ) -> np.ndarray:
    """The output of a pool with an output size of 0 ((O181))."""
    shape = (x.shape[0], *out, x.shape[-1]) if channels_last else (*x.shape[:2], *out)
    return np.empty(shape, x.dtype)


def _pool_windows(op: str, x: np.ndarray, kernel_shape: Sequence[int], strides: Any,
                  dilations: Any, pads: Any, auto_pad: str, ceil_mode: int,
                  value: Any) -> tuple[np.ndarray, list[int], list[int], list[int], list[int]]:
    nd = x.ndim - 2
    k = [int(v) for v in kernel_shape]
    s, d = _ints(strides, nd, 1), _ints(dilations, nd, 1)
    begin, end, extra, out = _pool_geometry(op, x.shape[2:], k, s, d, pads, auto_pad, ceil_mode)
    if 0 in out:
        return np.empty((*x.shape[:2], *out, *k), x.dtype), begin, s, d, out
    return _windows(_window_input(x, begin, k, s, d, out, value), k, s, d, out), begin, s, d, out


def _window_input(x: np.ndarray, begin: Sequence[int], k: Sequence[int], s: Sequence[int],
                  d: Sequence[int], out: Sequence[int], value: Any) -> np.ndarray:
    """`x` (N, C, *spatial) as the windows read it: `value` before it for a positive begin
    pad, its first elements gone for a negative one (a MaxPool's SAME pad, (O200)), and
    `value` after it as far as the last window reaches (past a negative end pad the
    elements stay: ONNX Runtime's loop reads them)."""
    nd = len(k)
    if any(b < 0 for b in begin):
        x = crop_negative_pads(x, begin, [0] * nd, 2)
        begin = [max(b, 0) for b in begin]
    reach = [max(0, (out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - (x.shape[2 + i] + begin[i]))
             for i in range(nd)]
    return _pad_spatial(x, begin, reach, value)


def _native_pool(op: str, x: np.ndarray, kernel_shape: Sequence[int], strides: Any,
                 dilations: Any, pads: Any, auto_pad: str, ceil_mode: int,
                 count_include_pad: int = 0) -> np.ndarray | None:
    """The native kernel's result for 2-D float32 pooling, or None (numpy then computes)."""
    if x.ndim != 4 or x.dtype != np.float32:
        return None
    k = [int(v) for v in kernel_shape]
    s, d = _ints(strides, 2, 1), _ints(dilations, 2, 1)
    begin, end, _extra, out = _pool_geometry(op, x.shape[2:], k, s, d, pads, auto_pad,
                                             ceil_mode)
    return native_float.pool2d(op, x, k, s, d, begin, end, out, count_include_pad)


def max_pool_channels_last(x: np.ndarray, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
                           dilations: Sequence[int] | None = None,
                           kernel_shape: Sequence[int], pads: Sequence[int] | None = None,
                           strides: Sequence[int] | None = None, storage_order: int = 0,
                           nchwc_channels: int = 0, **_: Any) -> np.ndarray:
    """MaxPool of channels-last 2-D data (N, H, W, C), channels-last: the values of MaxPool
    of its channels-first view (docs/native.md, "Float MaxPool on channels-last data"), in
    the same ONNX Runtime order (lowp.runtime.max_pool_order). Natively
    (native_float.max_pool_channels_last: the same values) where it runs, numpy on the
    channels-first view otherwise."""
    same_pads, same_auto_pad = _max_pool_pads(x.shape[1:3], kernel_shape, strides, pads,
                                              auto_pad)
    k = [int(v) for v in kernel_shape]
    s, d = _ints(strides, 2, 1), _ints(dilations, 2, 1)
    begin, end, extra, out = _pool_geometry("MaxPool", x.shape[1:3], k, s, d, same_pads,
                                            same_auto_pad, ceil_mode)
    if 0 in out:
        return _empty_pool(x, out, channels_last=True)
    first = np.moveaxis(x, -1, 1)
    kind = max_pool_order.path(
        first, k, s, d, begin, end, extra, num_outputs=1, storage_order=storage_order,
        nchwc=_nchwc_pool(first, nchwc_channels),
        vector=_mlas_vector_pool(x.shape[1:3], k, s, begin, end))
    _check_mlas_pads(kind, begin, end)
    order = {"vector": native_float.MAX_MLAS_VECTOR, "nchwc": native_float.MAX_NCHWC,
             "generic": native_float.MAX_GENERIC, "loop": native_float.MAX_LOOP}.get(kind)
    if order is not None:
        # only the begin pads place the windows (the kernel reads the taps inside x)
        xc = crop_negative_pads(x, begin, [0, 0], 1)
        native = native_float.max_pool_channels_last(xc, k, s, d, [max(b, 0) for b in begin],
                                                     out, order)
        if native is not None:
            return native
    y = MaxPool(first, auto_pad=auto_pad, ceil_mode=ceil_mode, dilations=dilations,
                kernel_shape=kernel_shape, pads=pads, strides=strides,
                storage_order=storage_order, nchwc_channels=nchwc_channels)
    assert isinstance(y, np.ndarray)
    return np.ascontiguousarray(np.moveaxis(y, 1, -1))


def _lowest(dtype: np.dtype) -> Any:
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    return np.iinfo(dtype).min


@register
def MaxPool(x: np.ndarray, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
            dilations: Sequence[int] | None = None, kernel_shape: Sequence[int],
            pads: Sequence[int] | None = None, storage_order: int = 0,
            strides: Sequence[int] | None = None, num_outputs: int = 1,
            nchwc_channels: int = 0, **_: Any) -> OpResult:
    """Max over strided windows; Indices (row-major, or column-major with storage_order)
    on request. Floats in the order of the kernel ONNX Runtime runs (lowp.runtime.
    max_pool_order, docs/operators.md (O150)): it decides which NaN, zero or lowest float a
    window gives; natively for MLAS's 2-D vector kernel and the NCHWc kernel. float16 runs
    float32's between Casts, as ONNX Runtime's CPU provider does (it has no float16 MaxPool;
    (O187))."""
    if x.dtype == np.float16:
        from .float_ops import Cast
        pooled = MaxPool(Cast(x, to=TensorProto.FLOAT), auto_pad=auto_pad,
                         ceil_mode=ceil_mode, dilations=dilations, kernel_shape=kernel_shape,
                         pads=pads, storage_order=storage_order, strides=strides,
                         num_outputs=num_outputs)
        if isinstance(pooled, tuple):
            return Cast(pooled[0], to=TensorProto.FLOAT16), pooled[1]
        return Cast(pooled, to=TensorProto.FLOAT16)
    nd = x.ndim - 2
    pads, auto_pad = _max_pool_pads(x.shape[2:], kernel_shape, strides, pads, auto_pad)
    k = [int(v) for v in kernel_shape]
    s, d = _ints(strides, nd, 1), _ints(dilations, nd, 1)
    begin, end, extra, out = _pool_geometry("MaxPool", x.shape[2:], k, s, d, pads, auto_pad,
                                            ceil_mode)
    if 0 in out:
        y = _empty_pool(x, out)
        return (y, y.astype(np.int64)) if num_outputs > 1 else y
    floating = x.dtype in (np.float32, np.float64)
    kind = max_pool_order.path(
        x, k, s, d, begin, end, extra, num_outputs=num_outputs, storage_order=storage_order,
        nchwc=_nchwc_pool(x, nchwc_channels),
        vector=_mlas_vector_pool(x.shape[2:], k, s, begin, end)) if floating else "plain"
    _check_mlas_pads(kind, begin, end)
    if kind in ("vector", "nchwc") and nd == 2:
        # the native kernels read only the taps inside the input: a negative begin pad
        # as the elements it drops, a negative end pad as none
        xc = crop_negative_pads(x, begin, [0] * nd, 2)
        native = native_float.pool2d(
            "MaxPool", xc, k, s, d, [max(b, 0) for b in begin], [max(e, 0) for e in end], out,
            max_order=native_float.MAX_NCHWC if kind == "nchwc" else
            native_float.MAX_MLAS_VECTOR)
        if native is not None:
            return native
    if kind == "global":     # MLAS's global kernel: GlobalMaxPool's order without NCHWc
        native = native_float.reduce_max(x, tuple(range(2, x.ndim)), True, 1)
        return native if native is not None else max_pool_order.mlas_global(x)
    if kind == "vector":
        return max_pool_order.mlas_vector(x, k, s, begin, end, extra, out)
    win, begin, s, d, out = _pool_windows("MaxPool", x, kernel_shape, strides, dilations,
                                          pads, auto_pad, ceil_mode, _lowest(x.dtype))
    chosen = None
    if kind == "plain":
        y = win.max(axis=tuple(range(2 + nd, 2 + 2 * nd)))
    else:
        y, chosen = max_pool_order.reduce(win, x.shape, k, s, d, begin, out, kind)
    if num_outputs < 2:
        return y
    if chosen is None:      # (integers: the first maximum)
        flat = win.reshape(win.shape[:2 + nd] + (-1,)).argmax(axis=-1)
        chosen = np.unravel_index(flat, k)
    # Indices: flat position in the unpadded input of each window's chosen tap
    n, c = x.shape[:2]
    in_sp = x.shape[2:]
    coords = []
    for i in range(nd):
        o = np.arange(out[i]).reshape((1, 1) + tuple(-1 if j == i else 1 for j in range(nd)))
        coords.append(np.where(chosen[i] < 0, -1, o * s[i] + chosen[i] * d[i] - begin[i]))
    axes = range(nd - 1, -1, -1) if storage_order and nd > 1 else range(nd)
    spatial, scale = np.zeros(y.shape, np.int64), 1
    for i in reversed(list(axes)):
        spatial = spatial + coords[i] * scale
        scale *= int(in_sp[i])
    base = (np.arange(n).reshape(-1, 1) * c + np.arange(c).reshape(1, -1))
    base = base.reshape((n, c) + (1,) * nd) * int(np.prod(in_sp))
    return y, (base + spatial).astype(np.int64)


@register
def AveragePool(x: np.ndarray, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
                count_include_pad: int = 0, dilations: Sequence[int] | None = None,
                kernel_shape: Sequence[int], pads: Sequence[int] | None = None,
                strides: Sequence[int] | None = None, nchwc_channels: int = 0,
                opset: int = 0, **_: Any) -> np.ndarray:
    """Mean over windows; the divisor counts explicit pads only with count_include_pad.
    A float32 2-D pool whose channels fill MLAS's NCHWc blocks (`nchwc_channels`, the
    channel count ONNX Runtime's shape inference knows), or that MLAS does not take, sums
    the window row-major as ONNX Runtime then does; others column by column (MLAS). From
    `opset` 19 on (AveragePool-19, which has dilations) ONNX Runtime runs every one with
    its generic loop, row-major, divided by the count ((O32))."""
    nd = x.ndim - 2
    k = [int(v) for v in kernel_shape]
    s, d = _ints(strides, nd, 1), _ints(dilations, nd, 1)
    # ONNX Runtime's generic pooling loop (AveragePool-19's kernel; before it, dilated
    # windows or padded counts with ceil_mode, which MLAS does not take) adds row-major
    # like the NCHWc kernel; it counts a window's taps past the end padding as an
    # overhang, never in the divisor, where MLAS counts them as padding ((O80))
    generic = opset >= 19 or any(v > 1 for v in d) or bool(count_include_pad and ceil_mode)
    # from opset 19 on, a pool whose channels fill the NCHWc blocks without ceil_mode sums
    # row-major as the generic loop does but counts the overhang as padding, as MLAS's
    # NCHWc kernel does (dilated windows too; (O80))
    overhang_as_pad = not generic or (opset >= 19 and not ceil_mode
                                      and _nchwc_pool(x, nchwc_channels))
    # MLAS's NCHWc kernel: whole channel blocks, unless ceil_mode with padded counts
    # sends the pool to the generic loop
    nchwc_kernel = _nchwc_pool(x, nchwc_channels) and not (count_include_pad and ceil_mode)
    signed, signed_auto_pad = _max_pool_pads(x.shape[2:], kernel_shape, strides, pads,
                                             auto_pad)
    if signed_auto_pad != auto_pad and any(p < 0 for p in signed):
        if nchwc_kernel:            # reads past a negative end pad ((O218))
            return _nchwc_average_pool_past_end(x, k, s, d, signed, ceil_mode,
                                                bool(count_include_pad))
        if not generic and x.dtype == np.float32:
            _check_mlas_pads("generic", signed[:nd], signed[nd:], "AveragePool")
    x, pads, auto_pad = _same_as_explicit(x, 2, kernel_shape, strides, pads, auto_pad)
    begin, end, extra, out = _pool_geometry("AveragePool", x.shape[2:], k, s, d, pads,
                                            auto_pad, ceil_mode, overhang_as_pad=overhang_as_pad)
    if 0 in out:
        return _empty_pool(x, out)
    if not generic and x.dtype == np.float32 and not _nchwc_pool(x, nchwc_channels) \
            and list(x.shape[2:]) == k and all(v == 1 for v in s) \
            and not any(begin) and not any(end) and not any(extra):
        # MlasPool takes a window that is the whole unpadded image, with unit strides, as
        # a global pool: GlobalAveragePool's order (docs/operators.md (O59c))
        return GlobalAveragePool(x)
    rowmajor = generic or _nchwc_pool(x, nchwc_channels) or not _mlas_vector_pool(
        x.shape[2:], k, s, begin, end)
    if not rowmajor:
        native = _native_pool("AveragePool", x, kernel_shape, strides, dilations, pads,
                              auto_pad, ceil_mode, count_include_pad)
        if native is not None:
            return native
    # a window of padding only: MLAS's NCHWc kernel divides its +0 by a count of 0 (the
    # default NaN) where the loop writes 0 ((O182), (O219))
    counts = _average_counts(tuple(x.shape[2:]), np.dtype(compute_dtype(x)), tuple(k),
                             tuple(s), tuple(d), tuple(begin), tuple(end), tuple(extra),
                             tuple(out), bool(count_include_pad),
                             empty_as_nan=nchwc_kernel and not count_include_pad)
    if rowmajor and nd == 2 and x.dtype == np.float32:
        # the row-major sums natively, divided by these same divisors (the same values)
        native = native_float.average_pool_rowmajor(x, k, s, d, begin, out,
                                                    counts.reshape(out))
        if native is not None:
            return native
    xf = _f(x)
    win, *_geom = _pool_windows("AveragePool", xf, kernel_shape, strides, dilations, pads,
                                auto_pad, ceil_mode, 0)
    total = _window_sum_rowmajor(win, nd) if rowmajor else _window_sum(win, nd)
    if not rowmajor and nd == 2:
        total = np.where(_negative_zero_windows(xf, k, s, d, begin, out),
                         total.dtype.type(-0.0), total)
    with np.errstate(invalid="ignore"):         # 0 / 0: (O219)'s default NaN
        return (total / counts).astype(x.dtype, copy=False)


def _negative_zero_windows(x: np.ndarray, k: Sequence[int], s: Sequence[int],
                           d: Sequence[int], begin: Sequence[int], out: Sequence[int]
                           ) -> np.ndarray:
    """The windows MLAS's 2-D vector kernel sums to -0 ((O350)): it sums each column from
    its first row inside the input (rows of padding are skipped) and the columns from the
    first (a column of padding holds +0), never from +0, so a window whose taps inside the
    input are all -0 and that has no tap in a pad column gives -0 (N, C, *out)."""
    # 1 for a -0 tap, 2 for a row of padding (changes nothing), 0 for anything else and a
    # column of padding: the window's minimum is 1 exactly where it sums to -0
    z = ((x == 0) & np.signbit(x)).astype(np.int8)
    reach = [max(0, (out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - (x.shape[2 + i] + begin[i]))
             for i in range(2)]
    z = np.pad(z, [(0, 0), (0, 0), (max(begin[0], 0), reach[0]), (0, 0)], constant_values=2)
    z = np.pad(z, [(0, 0), (0, 0), (0, 0), (max(begin[1], 0), reach[1])], constant_values=0)
    return _windows(z, k, s, d, out).min(axis=(-2, -1)) == 1


def _nchwc_average_pool_past_end(x: np.ndarray, k: Sequence[int], s: Sequence[int],
                                 d: Sequence[int], pads: Sequence[int], ceil_mode: int,
                                 include_pad: bool) -> np.ndarray:
    """AveragePool with a negative SAME pad in MLAS's NCHWc kernel ((O218)): window o of
    axis i reads the taps o s_i - pad_begin_i + t d_i inside the input, past a negative end
    pad too (as (O200)'s MaxPool), summed row-major from +0 and divided by the taps inside
    the input, or with count_include_pad by the taps inside the padded input, every tap of
    an axis whose end pad is negative."""
    nd = len(k)
    begin, end, _extra, out = _pool_geometry("AveragePool", x.shape[2:], k, s, d, pads,
                                             "NOTSET", ceil_mode)
    if 0 in out:
        return _empty_pool(x, out)
    counts = np.ones(tuple(out), np.float32)
    for i in range(nd):
        taps = np.arange(out[i])[:, None] * s[i] - begin[i] + np.arange(k[i])[None, :] * d[i]
        low, high = 0, x.shape[2 + i]
        if include_pad:
            low = -max(begin[i], 0)
            high = high + end[i] if end[i] >= 0 else np.iinfo(np.int64).max
        axis = ((taps >= low) & (taps < high)).sum(axis=1).astype(np.float32)
        counts = counts * axis.reshape([-1 if j == i else 1 for j in range(nd)])
    counts = np.ascontiguousarray(np.maximum(counts, 1))
    if nd == 2 and x.dtype == np.float32:
        # the kernel reads the taps inside x: a negative begin pad as the elements it drops
        native = native_float.average_pool_rowmajor(
            crop_negative_pads(x, begin, [0] * nd, 2), k, s, d, [max(b, 0) for b in begin],
            out, counts)
        if native is not None:
            return native
    win = _windows(_window_input(_f(x), begin, k, s, d, out, 0), k, s, d, out)
    total = _window_sum_rowmajor(win, nd)
    return (total / counts.reshape((1, 1, *out))).astype(x.dtype, copy=False)


@functools.lru_cache(maxsize=64)
def _average_counts(spatial: tuple[int, ...], dtype: np.dtype, k: tuple[int, ...],
                    s: tuple[int, ...], d: tuple[int, ...], begin: tuple[int, ...],
                    end: tuple[int, ...], extra: tuple[int, ...], out: tuple[int, ...],
                    include_pad: bool, empty_as_nan: bool = False) -> np.ndarray:
    """AveragePool's divisors, (1, 1, *out): the window cells inside the input (plus the
    explicit pads with count_include_pad), summed in `dtype`; a window without any, 1 (its
    mean 0, ONNX Runtime's loop, (O182)), or with `empty_as_nan` 0 (its mean 0 / 0, MLAS's
    NCHWc kernel, (O219)). One read-only array per geometry (a native call recorded twice
    then reads the same memory)."""
    nd = len(spatial)
    ones = np.ones((1, 1) + spatial, dtype=dtype)
    if include_pad:
        ones = _pad_spatial(ones, list(begin), list(end), 1)
        cnt = _pad_spatial(ones, [0] * nd, list(extra), 0)
    else:
        cnt = _pad_spatial(ones, list(begin), [e + x_ for e, x_ in zip(end, extra, strict=True)],
                           0)
    counts = _windows(cnt, list(k), list(s), list(d), list(out)).sum(
        axis=tuple(range(2 + nd, 2 + 2 * nd)))
    # a dilated window whose every tap is padding: ONNX Runtime's loop writes 0 ((O182))
    counts = np.ascontiguousarray(counts if empty_as_nan else np.maximum(counts, 1))
    counts.flags.writeable = False
    return counts


#: MLAS_POOL_REDUCTION_BUFFER_STACK minus its padding of one vector less one float
_MLAS_POOL_ROW_BUFFER = 2048 - 3


def _mlas_vector_pool(spatial: Sequence[int], k: Sequence[int], s: Sequence[int],
                      begin: Sequence[int], end: Sequence[int]) -> bool:
    """Whether MLAS pools this NCHW input with its vector kernel, which sums each window's
    columns first (MlasPool: 2-D or 3-D, a last stride of at most 2, every kernel side at
    most 32, and the padded last axis within its row buffer); otherwise its generic kernel
    adds the window row-major from +0 (a stride of 3 or more along the width)."""
    if len(spatial) < 2 or s[-1] > 2 or any(v > 32 for v in k):
        return False
    room = _MLAS_POOL_ROW_BUFFER
    for pad in (begin[-1], end[-1]):
        room = room - pad if room >= pad else 0
    return room >= spatial[-1]


def _nchwc_pool(x: np.ndarray, channels: int) -> bool:
    """Whether ONNX Runtime runs this float32 2-D pool with its NCHWc kernels (its layout
    transformer needs the channel count in the graph and a multiple of the block)."""
    block = nchwc_conv.block_size()
    return (x.dtype == np.float32 and x.ndim == 4 and block > 0 and channels > 0
            and channels % block == 0 and x.shape[1] == channels)


def _window_sum_rowmajor(win: np.ndarray, nd: int, *, term_first: bool = False
                         ) -> np.ndarray:
    """Sum the `nd` trailing window axes as MLAS's NCHWc average pooling and ONNX Runtime's
    generic pooling loop do: one tap after another in row-major order, from +0 (padded taps
    hold 0 and add nothing). Each addition is the running sum plus the tap (x86 keeps the
    first operand's NaN), or with `term_first` the tap plus the running sum."""
    total = np.zeros(win.shape[:-nd], win.dtype)
    for tap in np.ndindex(*win.shape[-nd:]):
        term = win[(Ellipsis,) + tap]
        total = (ort_math.first_nan_add(term, total) if term_first
                 else ort_math.first_nan_add(total, term))
    return total


def _window_sum(win: np.ndarray, nd: int) -> np.ndarray:
    """Sum the `nd` trailing window axes in the order of MLAS's vector pooling kernel: each
    column of the window (one position of its last axis) adds its taps along the other
    window axes one after another, row-major (a 3-D window's depth and height as one
    chain), from +0; then the columns are added one after another from +0. Padded taps
    hold 0 and add nothing."""
    lead = win.shape[:win.ndim - nd]
    count = int(np.prod(win.shape[-nd:-1]))       # taps of one column
    taps = win.reshape(lead + (count, win.shape[-1]))
    columns = np.zeros(lead + (win.shape[-1],), win.dtype)
    for i in range(count):          # each running sum the first operand (x86's NaN order)
        columns = ort_math.first_nan_add(columns, taps[..., i, :])
    total = np.zeros(lead, win.dtype)
    for j in range(win.shape[-1]):
        total = ort_math.first_nan_add(total, columns[..., j])
    return total


@register
def LpPool(x: np.ndarray, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
           dilations: Sequence[int] | None = None, kernel_shape: Sequence[int],
           p: int = 2, pads: Sequence[int] | None = None,
           strides: Sequence[int] | None = None, opset: int = 0, **_: Any) -> np.ndarray:
    """The p-norm of each window, as ONNX Runtime's loops compute it: float32 |x|^p by
    double pow, summed row-major from +0, then powf(sum, 1.0f / p). Before opset 18
    (pool.cc Pool<float, LpPool>, pool_base.h LpPool::Process) each sum is the running sum
    plus the term, from opset 18 on (LpPoolV18, pool_functors.h LpPool{1,2,3}DTask) the term
    plus the running sum, as its build adds them: a window of several NaNs gives its first
    NaN, or its last ((O202))."""
    nd = x.ndim - 2
    # ONNX Runtime's LpPool loops read past a negative SAME end pad ((O218), as (O200))
    pads, auto_pad = _max_pool_pads(x.shape[2:], kernel_shape, strides, pads, auto_pad)
    win, *_geom = _pool_windows("LpPool", _lp_terms(x, p), kernel_shape, strides, dilations,
                                pads, auto_pad, ceil_mode, 0)
    return _lp_root(_window_sum_rowmajor(win, nd, term_first=opset >= 18), p, x.dtype)


def _lp_terms(x: np.ndarray, p: int) -> np.ndarray:
    """|x|^p per element: float32 as ONNX Runtime's static_cast<float>(std::pow(std::abs(x),
    p)) with an integer p, a double pow (its NaN: |x|'s, quieted, rounded to float32)."""
    if x.dtype != np.float32:
        return np.abs(_f(x)) ** p
    return libm.pow_float64(np.abs(x).astype(np.float64), float(p)).astype(np.float32)


def _lp_root(total: np.ndarray, p: int, dtype: np.dtype) -> np.ndarray:
    """total^(1/p): float32 as ONNX Runtime's std::pow(total, 1.0f / p), the C library's
    powf."""
    if total.dtype != np.float32:
        return (total ** (1.0 / p)).astype(dtype, copy=False)
    return libm.powf(total, np.float32(1.0) / np.float32(p)).astype(dtype, copy=False)


def global_average_pool_channels_last(x: np.ndarray, nchwc_channels: int = 0
                                      ) -> np.ndarray | None:
    """GlobalAveragePool of float32 channels-last `x` (N, ..., C) as GlobalAveragePool
    computes it on the channels-first data, bit for bit, without moving it:
    (N, 1, ..., 1, C) channels-last, or None (then convert and pool channels-first)."""
    if x.dtype != np.float32 or x.ndim < 3:
        return None
    lanes_count = 1 if _nchwc_pool(np.moveaxis(x, -1, 1), nchwc_channels) else 4
    return native_float.global_average_pool_channels_last(x, lanes_count)


@register
def GlobalAveragePool(x: np.ndarray, *, nchwc_channels: int = 0, **_: Any) -> np.ndarray:
    """Mean over the spatial axes; float32 in MLAS's order: the NCHWc kernel adds the values
    one after another (channels filling its blocks, 2-D), its NCHW kernel in four lanes,
    (l0 + l2) + (l1 + l3), then the rest one by one; either divides by the count."""
    if x.dtype == np.float32 and x.ndim >= 3:
        size = int(np.prod(x.shape[2:], dtype=np.int64))
        flat = x.reshape(x.shape[0], x.shape[1], size)
        if size == 0:
            return np.full(x.shape[:2] + (1,) * (x.ndim - 2), np.nan, np.float32)
        lanes_count = 1 if _nchwc_pool(x, nchwc_channels) else 4
        native = native_float.global_average_pool(x, lanes_count)
        if native is not None:
            return native
        total = nchwc_conv.pool_sums(np.ascontiguousarray(flat).reshape(-1, size),
                                     lanes_count).reshape(x.shape[:2])
        mean = total / np.float32(size)
        return mean.reshape(x.shape[:2] + (1,) * (x.ndim - 2)).astype(np.float32)
    axes = tuple(range(2, x.ndim))
    return _f(x).mean(axis=axes, keepdims=True).astype(x.dtype, copy=False)


@register
def GlobalMaxPool(x: np.ndarray, *, nchwc_channels: int = 0, **_: Any) -> np.ndarray:
    """The maximum over the spatial axes; float32 by MLAS's order (docs/operators.md (O140)),
    NCHWc where ONNX Runtime's layout transformer takes it (`nchwc_channels`, (O152)),
    natively where it can."""
    return global_max(x, tuple(range(2, x.ndim)), nchwc_channels)


def global_max(x: np.ndarray, axes: tuple[int, ...], nchwc_channels: int = 0) -> np.ndarray:
    """The maximum of `x` over `axes`, kept: GlobalMaxPool of channels-first data (the
    spatial axes) and of channels-last data (the middle ones). float32 with one to three
    spatial axes in MLAS's order (`ort_math.mlas_global_max`, docs/operators.md (O140):
    which NaN or zero survives; -inf throughout gives the lowest float), NCHWc where ONNX
    Runtime moves a 4-D input of whole channel blocks (`nchwc_channels`: the channel count
    its layout transformer knows and takes, ort_context._pool_context; 0 where it does not
    take the pool, (O152)); natively the ReduceMax kernel with
    that order where it decides the bits. More spatial axes by `float_ops.max_reference`
    ((O48)); other dtypes by np.max."""
    if x.dtype != np.float32 or x.size == 0:
        return x.max(axis=axes, keepdims=True)
    kept = [a for a in range(x.ndim) if a not in axes]
    block = nchwc_conv.block_size()
    nchwc = x.ndim == 4 and block > 0 and nchwc_channels > 0 and \
        nchwc_channels % block == 0 and x.shape[kept[-1]] == nchwc_channels
    pool = 0 if len(axes) > 3 else 2 if nchwc else 1
    native = native_float.reduce_max(x, axes, True, pool)
    if native is not None:
        return native
    if pool == 0:
        from .float_ops import max_reference

        return max_reference(x, axes, True)
    rows = np.ascontiguousarray(x.transpose(kept + list(axes))).reshape(
        int(np.prod([x.shape[a] for a in kept])), -1)
    y = ort_math.mlas_global_max(rows, nchwc)
    return y.reshape([1 if a in axes else d for a, d in enumerate(x.shape)])


@register
def GlobalLpPool(x: np.ndarray, *, p: int = 2, **_: Any) -> np.ndarray:
    """LpPool with the window the whole spatial input: ONNX Runtime's Pool<float, LpPool>
    loop, row-major from +0 ((O202))."""
    spatial = int(np.prod(x.shape[2:], dtype=np.int64))
    terms = _lp_terms(x, p).reshape(x.shape[0], x.shape[1], spatial)
    return _lp_root(_window_sum_rowmajor(terms, 1), p, x.dtype).reshape(
        x.shape[:2] + (1,) * (x.ndim - 2))


# --- normalization ------------------------------------------------------------------------


def _channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return _f(v).reshape((1, -1) + (1,) * (ndim - 2))


@register
def BatchNormalization(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray,
                       var: np.ndarray, *, epsilon: float = 1e-5, momentum: float = 0.9,
                       training_mode: int = 0, channels_last: bool = False,
                       nchwc: bool = False, **_: Any) -> np.ndarray:
    """Inference-mode batch normalization (running statistics); `channels_last`: the
    channels are the last axis of `x` (the same operations on each element). `nchwc`:
    ONNX Runtime's NCHWc transformer runs it as a 1x1 depthwise Conv whose constants it
    folds as scale / sqrt(var + epsilon) and beta - mean * that ((O52n))."""
    if training_mode:
        raise unsupported("BatchNormalization", "training_mode=1")
    xf = _f(x)
    dt = xf.dtype.type

    def fold() -> tuple[np.ndarray, np.ndarray]:
        # ONNX Runtime's order: one scale and one offset per channel, then x * scale + offset;
        # of two NaNs the scale's before 1 / stdev's, the bias's before mean * scale's ((O221))
        with np.errstate(invalid="ignore", divide="ignore"):
            if nchwc and xf.dtype == np.float32:
                s = ort_math.sse_op(np.divide, _f(scale), np.sqrt(_f(var) + dt(epsilon)))
            else:
                s = ort_math.sse_op(np.multiply, _f(scale),
                                    dt(1) / np.sqrt(_f(var) + dt(epsilon)))
            return s, ort_math.sse_op(np.subtract, _f(bias), (_f(mean) * s).astype(xf.dtype))

    if xf.dtype == np.float32:
        native = native_float.batch_norm(xf, (scale, bias, mean, var), epsilon, fold,
                                         channels_last, variant=nchwc)
        if native is not None:
            return native
    new_scale, new_bias = fold()
    if nchwc or xf.dtype != np.float32 or x.ndim < 2 or x.size == 0:
        shape = (-1,) if channels_last else (1, -1) + (1,) * (x.ndim - 2)
        y = ort_math.sse_op(np.add, ort_math.sse_op(np.multiply, xf, new_scale.reshape(shape)),
                            new_bias.reshape(shape))
        return y.astype(x.dtype, copy=False)
    first = np.moveaxis(xf, -1, 1) if channels_last else xf     # ONNX Runtime's NCHW planes
    n, c = first.shape[:2]
    ch = np.arange(n * c) % c
    y = eigen_scale_shift(np.ascontiguousarray(first).reshape(n * c, -1),
                          new_scale.reshape(-1)[ch], new_bias.reshape(-1)[ch],
                          planes_per_image=c).reshape(first.shape)
    return np.ascontiguousarray(np.moveaxis(y, 1, -1)) if channels_last else y


@register
def InstanceNormalization(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, *,
                          epsilon: float = 1e-5, **_: Any) -> np.ndarray:
    """Float32 as ONNX Runtime's kernel (docs/operators.md (O35)): per (n, c) plane, the mean
    by Eigen's vectorized sum of the plane (peeled to its 16-byte boundary) and the sum of
    squared deviations by Eigen's sum of an expression (not peeled), then x * s + t with
    s = scale / sqrt(sum / W + eps) and t = bias - mean * s; natively
    `native_float.instance_norm` ((O287))."""
    if x.dtype == np.float32 and x.ndim >= 3 and x.size:
        native = native_float.instance_norm(x, _f(scale), _f(bias), epsilon)
        if native is not None:
            return native
        f = np.float32
        n, c = x.shape[:2]
        rows = np.ascontiguousarray(x).reshape(n * c, -1)
        w = rows.shape[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = (ort_math.eigen_row_sums(rows) / f(w)).astype(f)
            dev = ort_math.sse_op(np.subtract, rows, mean[:, None])
            squared = ort_math.eigen_expression_sums((dev * dev).astype(f), nan_order="norm")
            inv = (f(1) / np.sqrt((squared / f(w) + f(epsilon)).astype(f))).astype(f)
        ch = np.arange(n * c) % c
        # of two NaNs, the one ONNX Runtime's compiled kernel hands on ((O221)): the scale's
        # before 1 / stdev's, the bias's before mean * s's
        s = ort_math.sse_op(np.multiply, _f(scale).reshape(-1)[ch], inv)
        t = ort_math.sse_op(np.subtract, _f(bias).reshape(-1)[ch], (mean * s).astype(f))
        return eigen_scale_shift(rows, s, t).reshape(x.shape)
    xf = _f(x)
    axes = tuple(range(2, x.ndim))
    mean = xf.mean(axis=axes, keepdims=True)
    var = ((xf - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (xf - mean) / np.sqrt(var + xf.dtype.type(epsilon))
    return (y * _channel(scale, x.ndim) + _channel(bias, x.ndim)).astype(x.dtype, copy=False)


def eigen_scale_shift(planes: np.ndarray, s: np.ndarray, t: np.ndarray, *,
                      planes_per_image: int | None = None) -> np.ndarray:
    """planes * s + t for float32 (count, w) planes of one buffer from a 16-byte boundary,
    one s and t per plane, with ONNX Runtime's NaNs where two meet (its Eigen assignment
    Y = X * s + t in InstanceNormalization and BatchNormalization, (O221)): x's before s's,
    except in the last value of a plane whose scalar tail (after Eigen's peel to the
    boundary and its 4-value packets) has three values, where its compiled tail loop takes
    s's; then x * s's before t's. `planes_per_image` (BatchNormalization's C) with planes of
    one value: s's first but in the first two channels of an image whose C values start
    one or two values past a 16-byte boundary ((O272))."""
    count, w = planes.shape
    scaled = ort_math.sse_op(np.multiply, planes, s[:, None])
    if planes_per_image is not None and w == 1:
        image_start = np.arange(count) // planes_per_image * planes_per_image
        channel = np.arange(count) - image_start
        peel = np.minimum(-image_start % 4, planes_per_image)
        last = np.nonzero(~((channel < 2) & (peel >= 2)))[0]
    else:
        head = np.minimum((-(np.arange(count) * w)) % 4, w)
        last = np.nonzero((w - head) % 4 == 3)[0]
    scaled[last, -1] = ort_math.sse_op(np.multiply, s[last], planes[last, -1])
    return ort_math.sse_op(np.add, scaled, t[:, None])


# ONNX Runtime's float16 LayerNormalization computes rows of fewer than this many values in
# its generic loop's order (float32 rows: fewer than 8), measured on 1.32 (O213)
FLOAT16_LAYER_NORM_LANE_ROWS = 16


@register
def LayerNormalization(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None = None, *,
                       axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1,
                       **_: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (Y, Mean, InvStdDev), statistics over axes [axis, rank); float32 with a full
    scale (and bias) in ONNX Runtime's order (lowp.ort_math.layer_norm_rows; rows of fewer
    than 8 values in its generic loop's, lowp.ort_math.skip_layer_norm_rows). float16 as
    ONNX Runtime's float16 kernel (onnxruntime/core/providers/cpu/nn/layer_norm_impl.cc):
    x, scale and bias converted to float32, the float32 computation, rows of fewer than 16
    values in the generic loop's order, Y rounded to float16 once (docs/operators.md
    (O213)). float64 as ONNX Runtime's double kernel, its generic loop on every row
    (lowp.ort_math.layer_norm_rows_double, (O352))."""
    xf = _f(x)
    ax = axis + x.ndim if axis < 0 else axis
    axes = tuple(range(ax, x.ndim))
    n = int(np.prod(x.shape[ax:]))
    half = x.dtype == np.float16
    if ((x.dtype == np.float32 or half) and n and np.size(scale) == n
            and (bias is None or np.size(bias) == n) and x.size):
        x32 = x.astype(np.float32) if half else x
        sc, bi = _f(scale), None if bias is None else _f(bias)
        eps = float(np.float32(epsilon))
        stat = x.shape[:ax] + (1,) * (x.ndim - ax)
        welford = n < (FLOAT16_LAYER_NORM_LANE_ROWS if half else 8)
        made = native_float.layer_norm(x32, n, sc, bi, eps, stat, welford=welford)
        if made is None:
            rows = ort_math.skip_layer_norm_rows if welford else ort_math.layer_norm_rows
            y, m, v = rows(x32.reshape(-1, n), sc, bi, eps)
            made = y.reshape(x.shape), m.reshape(stat), v.reshape(stat)
        if half:
            return made[0].astype(np.float16), made[1], made[2]
        return made
    if x.dtype == np.float64 and n and np.size(scale) == n \
            and (bias is None or np.size(bias) == n) and x.size:
        # ONNX Runtime's double kernel: its generic loop on every row ((O352))
        stat = x.shape[:ax] + (1,) * (x.ndim - ax)
        y, m, v = ort_math.layer_norm_rows_double(
            x.reshape(-1, n), np.asarray(scale).reshape(n),
            None if bias is None else np.asarray(bias).reshape(n), float(np.float32(epsilon)))
        return y.reshape(x.shape), m.reshape(stat), v.reshape(stat)
    mean = xf.mean(axis=axes, keepdims=True)
    var = ((xf - mean) ** 2).mean(axis=axes, keepdims=True)
    inv = 1 / np.sqrt(var + xf.dtype.type(epsilon))
    y = (xf - mean) * inv * _f(scale)
    if bias is not None:
        y = y + _f(bias)
    return y.astype(x.dtype, copy=False), mean, inv


@register
def SimplifiedLayerNormalization(x: np.ndarray, scale: np.ndarray, *, axis: int = -1,
                                 epsilon: float = 1e-5, stash_type: int = 1, **_: Any
                                 ) -> tuple[np.ndarray, np.ndarray]:
    """ONNX Runtime's SimplifiedLayerNormalization (RMSNorm over axes [axis, rank), no mean
    subtracted): returns (Y, InvStdDev); float32 with a full scale in its order
    (lowp.ort_math.simplified_layer_norm_rows; natively, native_float.simplified_layer_norm)."""
    ax = axis + x.ndim if axis < 0 else axis
    n = int(np.prod(x.shape[ax:]))
    stat = x.shape[:ax] + (1,) * (x.ndim - ax)
    if x.dtype == np.float32 and n and np.size(scale) == n and x.size:
        sc, eps = _f(scale).reshape(n), float(np.float32(epsilon))
        native = native_float.simplified_layer_norm(x, n, sc, eps, stat)
        if native is not None:
            return native
        y, inv = ort_math.simplified_layer_norm_rows(x.reshape(-1, n), sc, eps)
        return y.reshape(x.shape), inv.reshape(stat)
    xf = _f(x)
    axes = tuple(range(ax, x.ndim))
    inv = 1 / np.sqrt((xf * xf).mean(axis=axes, keepdims=True) + xf.dtype.type(epsilon))
    return (xf * inv * _f(scale)).astype(x.dtype, copy=False), inv


@register
def SkipLayerNormalization(x: np.ndarray, skip: np.ndarray, gamma: np.ndarray,
                           beta: np.ndarray | None = None, bias: np.ndarray | None = None, *,
                           epsilon: float = 1e-12, **_: Any
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ONNX Runtime's com.microsoft SkipLayerNormalization over the last axis: returns
    (Y, Mean, InvStdDev, the sum x + skip + bias); float32 in its order
    (lowp.ort_math.skip_layer_norm_rows)."""
    if x.ndim not in (2, 3):
        raise unsupported("SkipLayerNormalization", f"input of rank {x.ndim} (2 or 3 needed)")
    n = x.shape[-1]
    for name, t in (("gamma", gamma), ("beta", beta), ("bias", bias)):
        if t is not None and np.size(t) != n:
            raise unsupported("SkipLayerNormalization",
                              f"{name} of {np.size(t)} values for a hidden size of {n}")
    f = np.float32
    total = native_float.add(x, skip) if x.shape == skip.shape else None
    if total is None:
        total = (_f(x) + _f(skip)).astype(f)
    if bias is not None:
        sum_bias = native_float.add(total, np.asarray(bias, f).reshape(n))
        total = sum_bias if sum_bias is not None else (total + _f(bias).reshape(n)).astype(f)
    stat = x.shape[:-1] + (1,)
    g, b = _f(gamma).reshape(n), None if beta is None else _f(beta).reshape(n)
    eps = float(np.float32(epsilon))
    native = native_float.layer_norm(total, n, g, b, eps, stat, welford=True) \
        if total.size else None
    if native is not None:
        y, m, v = native
    else:
        y, m, v = ort_math.skip_layer_norm_rows(total.reshape(-1, n), g, b, eps)
    return y.reshape(x.shape), m.reshape(stat), v.reshape(stat), total


@register
def GroupNormalization(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, *,
                       epsilon: float = 1e-5, num_groups: int, opset: int = 21,
                       stash_type: int = 1, **_: Any) -> np.ndarray:
    if x.dtype == np.float32 and opset >= 21 and x.size:
        ours = _group_norm_function(x, scale, bias, epsilon, num_groups)
        if ours is not None:
            return ours
    xf = _f(x)
    n, c = x.shape[:2]
    grouped = xf.reshape(n, num_groups, x.size // max(n * num_groups, 1))
    mean = grouped.mean(axis=2, keepdims=True)
    var = ((grouped - mean) ** 2).mean(axis=2, keepdims=True)
    y = ((grouped - mean) / np.sqrt(var + xf.dtype.type(epsilon))).reshape(x.shape)
    if opset < 21:  # scale and bias per group
        sc = np.repeat(_f(scale), c // num_groups)
        bi = np.repeat(_f(bias), c // num_groups)
    else:
        sc, bi = _f(scale), _f(bias)
    return (y * _channel(sc, x.ndim) + _channel(bi, x.ndim)).astype(x.dtype, copy=False)


def _group_norm_function(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, epsilon: float,
                         groups: int) -> np.ndarray | None:
    """GroupNormalization-21 as ONNX Runtime runs it: the ONNX function body, each of its
    float32 operators in ONNX Runtime's order (ReduceMean (O18), then
    mean(x^2) - mean^2 + eps, sqrt, (x - mean) / std, scale * y + bias;
    docs/operators.md (O36))."""
    f = np.float32
    n, c = x.shape[:2]
    x3 = np.ascontiguousarray(x).reshape(n, groups, x.size // max(n * groups, 1))
    mean = ort_math.reduce_sum(x3, (2,), True, mean=True)
    mean_sq = ort_math.reduce_sum((x3 * x3).astype(f), (2,), True, mean=True)
    if mean is None or mean_sq is None:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(((mean_sq - (mean * mean).astype(f)).astype(f) + f(epsilon)).astype(f))
        normalized = ((x3 - mean).astype(f) / std).astype(f).reshape(n, c, -1)
    y = (_f(scale).reshape(1, -1, 1) * normalized).astype(f) + _f(bias).reshape(1, -1, 1)
    return y.astype(f).reshape(x.shape)


@register
def LRN(x: np.ndarray, *, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0,
        size: int, **_: Any) -> np.ndarray:
    if x.dtype == np.float32 and x.ndim == 4 and size % 2 == 1 and x.size:
        return _lrn_ort(x, alpha, beta, bias, size)
    xf = _f(x)
    c = x.shape[1]
    sq = np.pad(xf**2, [(0, 0), ((size - 1) // 2, size - 1 - (size - 1) // 2)]
                + [(0, 0)] * (x.ndim - 2))
    acc = sum(sq[:, i:i + c] for i in range(size))
    dt = xf.dtype.type
    return (xf / (dt(bias) + dt(alpha / size) * acc) ** dt(beta)).astype(x.dtype, copy=False)


def _lrn_ort(x: np.ndarray, alpha: float, beta: float, bias: float, size: int) -> np.ndarray:
    """ONNX Runtime's float LRN (NCHW, odd size), its order of operations: the window sum
    of squares slides along the channels (the previous channel's scale, plus the entering
    square times alpha / size, plus the leaving one times -alpha / size, each product
    rounded before its sum), then x * scale^(-beta) with Eigen's pow. (O26), (O346)"""
    f = np.float32
    n, c = x.shape[:2]
    pre = (size - 1) // 2
    squares = np.zeros((n, c + size - 1) + x.shape[2:], f)
    squares[:, pre:pre + c] = x * x
    a = f(alpha) / f(size)
    scale = np.empty_like(x)
    running = np.full((n,) + x.shape[2:], f(bias), f)
    for p in range(size):
        running = running + squares[:, p] * a
    scale[:, 0] = running
    for ch in range(1, c):
        running = running + squares[:, ch + size - 1] * a
        running = running + squares[:, ch - 1] * -a
        scale[:, ch] = running
    # (x * scale^(-beta) is one functor of cost 320 that TryParallelFor cuts into blocks at
    # several threads, each an Eigen assignment from its own start, (O346))
    return x * eigen_math.blockwise(scale, lambda t: eigen_math.power(t, -f(beta)), 320.0,
                                    native_float.get_threads())


# --- resize -------------------------------------------------------------------------------


def _source_coords(mode: str, out_len: int, in_len: int, scale: np.float32,
                   roi_start: float, roi_end: float) -> np.ndarray:
    """Input coordinate of each output index, in float32 like ONNX Runtime."""
    f = np.float32
    x = np.arange(out_len, dtype=np.float32)
    lr, lo = f(out_len), f(in_len)
    if mode == "half_pixel":
        return (x + f(0.5)) / scale - f(0.5)
    if mode == "half_pixel_symmetric":
        adjustment = lr / (scale * lo)
        offset = lo / f(2) * (f(1) - adjustment)
        # ONNX Runtime evaluates this sum in double precision, then rounds to float32.
        return (offset.astype(np.float64) + (x.astype(np.float64) + 0.5) / float(scale)
                - 0.5).astype(np.float32)
    if mode == "pytorch_half_pixel":
        return (x + f(0.5)) / scale - f(0.5) if out_len > 1 else np.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + f(0.5)) / scale
    if mode == "align_corners":
        return np.zeros_like(x) if out_len == 1 else x * (lo - f(1)) / (lr - f(1))
    if mode == "tf_crop_and_resize":
        if out_len == 1:
            return np.full_like(x, 0.5 * (roi_start + roi_end) * (in_len - 1))
        return (f(roi_start) * (lo - f(1))
                + x * f(roi_end - roi_start) * (lo - f(1)) / (lr - f(1))).astype(np.float32)
    raise unsupported("Resize", f"coordinate_transformation_mode={mode!r}")


def _nearest_index(coords: np.ndarray, nearest_mode: str, in_len: int, downsample: bool
                   ) -> np.ndarray:
    if nearest_mode == "round_prefer_floor":
        idx = np.where(coords == np.floor(coords) + 0.5, np.floor(coords), np.round(coords))
    elif nearest_mode == "round_prefer_ceil":
        idx = np.where(coords == np.floor(coords) + 0.5, np.ceil(coords), np.round(coords))
    elif nearest_mode == "floor":
        idx = np.floor(coords)
    elif nearest_mode == "ceil":
        idx = np.ceil(coords)
    elif nearest_mode == "simple":  # Resize-10 and Upsample
        idx = np.ceil(coords) if downsample else np.trunc(coords)
    else:
        raise unsupported("Resize", f"nearest_mode={nearest_mode!r}")
    return np.clip(idx.astype(np.int64), 0, in_len - 1)


def _cubic_coeffs(t: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic weights (4 per coordinate) for fractional offsets `t`, shape (..., 4)."""
    a32 = np.float32(a)
    t = np.abs(t)

    def far(u: np.ndarray) -> np.ndarray:
        return ((a32 * u - 5 * a32) * u + 8 * a32) * u - 4 * a32

    def near(u: np.ndarray) -> np.ndarray:
        return ((a32 + 2) * u - (a32 + 3)) * u * u + 1

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def _antialias_axis(x: np.ndarray, axis: int, coords: np.ndarray, scale: float, mode: str,
                    cubic_a: float, exclude_outside: int) -> np.ndarray:
    """Downsampling with the interpolation kernel stretched by 1/scale (antialias=1)."""
    n = x.shape[axis]
    c = coords.astype(np.float64)
    base = np.floor(c)
    ratio = np.where(c == base, 1.0, c - base)  # the left neighbour at integer coordinates
    if mode == "linear":
        start = int(np.floor(-1 / scale) + 1)
        offs = np.arange(start, 2 - start)
        t = np.abs((offs[None, :] - ratio[:, None]) * scale)
        w = np.clip(1 - t, 0, 1)
    else:
        start = int(np.floor(-2 / scale) + 1)
        offs = np.arange(start, 2 - start)
        t = np.abs((offs[None, :] - ratio[:, None]) * scale)
        a = cubic_a
        w = np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                     np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))
    w = w / w.sum(axis=1, keepdims=True)
    idx = (base - np.where(c == base, 1, 0)).astype(np.int64)[:, None] + offs[None, :]
    if exclude_outside:
        w = np.where((idx >= 0) & (idx < n), w, 0.0)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    idx = np.clip(idx, 0, n - 1)
    shape = [1] * x.ndim
    shape[axis] = -1
    y = np.zeros(1, dtype=x.dtype)
    for j in range(idx.shape[1]):
        y = y + np.take(x, idx[:, j], axis=axis) * w[:, j].astype(x.dtype).reshape(shape)
    return y


def _resize_axis(x: np.ndarray, axis: int, coords: np.ndarray, mode: str,
                 nearest_mode: str, downsample: bool, cubic_a: float,
                 exclude_outside: int) -> np.ndarray:
    n = x.shape[axis]
    if mode == "nearest":
        return np.take(x, _nearest_index(coords, nearest_mode, n, downsample), axis=axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    if mode == "linear":
        c = np.clip(coords, 0, n - 1)
        i0 = np.minimum(c.astype(np.int64), n - 1)
        i1 = np.minimum(i0 + 1, n - 1)
        w1 = (c - i0).astype(np.float32)
        w0 = np.where(i0 == i1, np.float32(0.5), 1 - w1).astype(np.float32)
        w1 = np.where(i0 == i1, np.float32(0.5), w1).astype(np.float32)
        return (np.take(x, i0, axis=axis) * w0.reshape(shape)
                + np.take(x, i1, axis=axis) * w1.reshape(shape))
    if mode == "cubic":
        base = np.floor(coords).astype(np.int64)
        w = _cubic_coeffs((coords - base).astype(np.float32), cubic_a)
        idx = base[:, None] + np.arange(-1, 3)[None, :]
        if exclude_outside:
            w = np.where((idx >= 0) & (idx < n), w, 0)
            w = w / w.sum(axis=1, keepdims=True)
        idx = np.clip(idx, 0, n - 1)
        y = np.zeros(1, dtype=x.dtype)
        for j in range(4):
            y = y + np.take(x, idx[:, j], axis=axis) * w[:, j].astype(np.float32).reshape(shape)
        return y
    raise unsupported("Resize", f"mode={mode!r}")


def _output_geometry(in_shape: list[int], scales: list[float] | None,
                     sizes: list[int] | None, keep_aspect_ratio_policy: str
                     ) -> tuple[list[int], list[np.float32]]:
    """(output sizes, float32 scales) of a Resize along its axes of sizes `in_shape`."""
    if sizes is not None:
        if keep_aspect_ratio_policy == "stretch":
            sc = [np.float32(o) / np.float32(i) for o, i in zip(sizes, in_shape, strict=True)]
            out = list(sizes)
        elif keep_aspect_ratio_policy in ("not_larger", "not_smaller"):
            ratios = [np.float32(o) / np.float32(i) for o, i in zip(sizes, in_shape, strict=True)]
            r = min(ratios) if keep_aspect_ratio_policy == "not_larger" else max(ratios)
            sc = [np.float32(r)] * len(in_shape)
            out = [int(math.floor(float(r) * i + 0.5)) for i in in_shape]
        else:
            raise unsupported("Resize", f"keep_aspect_ratio_policy={keep_aspect_ratio_policy!r}")
    elif scales is not None:
        sc = [np.float32(v) for v in scales]
        out = [int(np.float32(v) * np.float32(i)) for v, i in zip(sc, in_shape, strict=True)]
    else:
        raise unsupported("Resize", "neither scales nor sizes given")
    return out, sc


def _last_two_axes(rank: int, ax: list[int], in_shape: list[int], out: list[int],
                   sc: list[np.float32]) -> list[int] | None:
    """The places in `ax` of the last two axes when a Resize changes nothing else (each
    other axis keeps its size with scale 1): ONNX Runtime's 2-D kernels' case; else None."""
    hw = [j for j, a in enumerate(ax) if a >= rank - 2]
    if len(hw) != 2 or not all(out[j] == in_shape[j] and sc[j] == 1
                               for j, a in enumerate(ax) if a < rank - 2):
        return None
    return hw


def _resize(x: np.ndarray, scales: list[float] | None, sizes: list[int] | None,
            roi: list[float] | None, *, mode: str, coordinate_transformation_mode: str,
            nearest_mode: str, cubic_coeff_a: float = -0.75, exclude_outside: int = 0,
            extrapolation_value: float = 0.0, keep_aspect_ratio_policy: str = "stretch",
            axes: list[int] | None = None, antialias: int = 0) -> np.ndarray:
    rank = x.ndim
    ax = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
    in_shape = [x.shape[a] for a in ax]
    out, sc = _output_geometry(in_shape, scales, sizes, keep_aspect_ratio_policy)
    tf_crop = coordinate_transformation_mode == "tf_crop_and_resize"
    if out == in_shape:
        # ONNX Runtime returns the input unchanged when no dimension changes size, whatever
        # the scales; follow it so that both engines agree.
        return x.copy()
    work = x if mode == "nearest" else _f(x)
    # ONNX Runtime's bilinear kernel and its bicubic one (its only cubic kernel: rows
    # first, then columns) over the last two axes, in their float evaluation order
    two_axis = (mode == "linear" and rank >= 2) or (mode == "cubic" and rank in (2, 4))
    hw = _last_two_axes(rank, ax, in_shape, out, sc) if two_axis and not antialias \
        and not tf_crop else None
    if hw is not None and mode == "linear":
        rows, cols = (_bilinear_table(coordinate_transformation_mode, out[j], in_shape[j],
                                      sc[j]) for j in hw)
        return _cast_resized(_bilinear(work, rows, cols), x)
    if hw is not None:
        coords_h, coords_w = (_source_coords(coordinate_transformation_mode, out[j],
                                             in_shape[j], sc[j], 0.0, 1.0)
                              if out[j] != in_shape[j] or sc[j] != 1
                              else np.arange(out[j], dtype=np.float32) for j in hw)
        work = _bicubic(work, coords_h, coords_w, cubic_coeff_a, exclude_outside)
        return _cast_resized(work, x)
    outside: list[np.ndarray] = []
    for j, a in enumerate(ax):
        if out[j] == in_shape[j] and sc[j] == 1:
            continue  # as ONNX Runtime: an unscaled axis is copied, even under a crop roi
        r0 = roi[j] if roi else 0.0
        r1 = roi[j + len(ax)] if roi else 1.0
        coords = _source_coords(coordinate_transformation_mode, out[j], in_shape[j], sc[j],
                                r0, r1)
        if tf_crop:
            bad = (coords < 0) | (coords > in_shape[j] - 1)
            shape = [1] * rank
            shape[a] = -1
            outside.append(bad.reshape(shape))
        if antialias and mode != "nearest" and sc[j] < 1:
            work = _antialias_axis(work, a, coords, float(sc[j]), mode, cubic_coeff_a,
                                   exclude_outside)
        else:
            work = _resize_axis(work, a, coords, mode, nearest_mode, bool(sc[j] < 1),
                                cubic_coeff_a, exclude_outside)
    if outside:
        mask = outside[0]
        for m in outside[1:]:
            mask = mask | m
        work = np.where(mask, np.asarray(extrapolation_value).astype(work.dtype), work)
    if mode == "nearest":
        return np.ascontiguousarray(work)
    return _cast_resized(work, x)


def _cast_resized(work: np.ndarray, x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        # Integer inputs: truncate like ONNX Runtime's linear kernel, never wrap around.
        info = np.iinfo(x.dtype)
        work = np.clip(np.trunc(work), info.min, info.max)
    return np.ascontiguousarray(work).astype(x.dtype, copy=False)


def _bilinear_axis(coords: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """Source indices and weights along one axis, as ONNX Runtime's bilinear setup forms
    them: (i1, i2, d1 = |c - i1|, d2 = |c - i2|), both weights 0.5 at the border."""
    c = np.clip(coords.astype(np.float32), np.float32(0), np.float32(n - 1))
    i1 = np.minimum(c.astype(np.int64), n - 1)
    i2 = np.minimum(i1 + 1, n - 1)
    d1 = np.abs(c - i1.astype(np.float32))
    d2 = np.abs(c - i2.astype(np.float32))
    same = i1 == i2
    d1 = np.where(same, np.float32(0.5), d1).astype(np.float32)
    d2 = np.where(same, np.float32(0.5), d2).astype(np.float32)
    return i1, i2, d1, d2


@functools.lru_cache(maxsize=64)
def _bilinear_table(coordinate_mode: str, out_n: int, in_n: int, scale: np.float32
                    ) -> tuple[np.ndarray, ...]:
    """(i1, i2, d1, d2) of `_bilinear_axis` along an axis resized from `in_n` to `out_n` by
    `scale` (its source coordinates; the places themselves on an axis left as it is), as
    int32 and float32, computed once per geometry (the same arrays on every run, as
    replayed native calls need)."""
    coords = _source_coords(coordinate_mode, out_n, in_n, scale, 0.0, 1.0) \
        if out_n != in_n or scale != 1 else np.arange(out_n, dtype=np.float32)
    i1, i2, d1, d2 = _bilinear_axis(coords, in_n)
    table = (*(np.ascontiguousarray(i, np.int32) for i in (i1, i2)),
             *(np.ascontiguousarray(d, np.float32) for d in (d1, d2)))
    for v in table:
        v.flags.writeable = False
    return table


def _bilinear(x: np.ndarray, rows: Sequence[np.ndarray], cols: Sequence[np.ndarray], *,
              channels_last: bool = False) -> np.ndarray:
    """2-D linear resize of the last two axes of `x` (of the middle two of channels-last
    (N, H, W, C) `x` with `channels_last`, the result channels-last too) in ONNX Runtime's
    float32 order, with the per-axis tables `rows` = (y1, y2, dy1, dy2) and `cols` =
    (x1, x2, dx1, dx2) of `_bilinear_axis`:
    y = ((dx2*dy2*x11 + dx1*dy2*x21) + dx2*dy1*x12) + dx1*dy1*x22, each weight and term
    rounded once. Each output is a function of its own channel only, so both layouts give
    the same values; natively when built (`bilinear_float`)."""
    native = native_float.bilinear_float(x, rows, cols, channels_last)
    if native is not None:
        return native
    y1, y2, dy1, dy2 = rows
    x1, x2, dx1, dx2 = cols
    v = np.moveaxis(x, -1, 1) if channels_last else x
    top, bottom = v[..., y1, :], v[..., y2, :]
    x11, x21, x12, x22 = top[..., x1], top[..., x2], bottom[..., x1], bottom[..., x2]
    dy1, dy2 = dy1[:, None], dy2[:, None]
    # (of two NaNs the running sum's, as x86 adds in this order: numpy's own loops keep
    # either, by memory layout)
    add = ort_math.first_nan_add
    with np.errstate(invalid="ignore"):
        y = add(add(add((dx2 * dy2) * x11, (dx1 * dy2) * x21), (dx2 * dy1) * x12),
                (dx1 * dy1) * x22)
    return np.ascontiguousarray(np.moveaxis(y, 1, -1)) if channels_last else y


def _nchwc_interpolation(n: int, out: int, scale: int, mode: str) -> np.ndarray:
    """The source coordinate of each output place along one axis, as ONNX Runtime's NCHWc
    Upsample computes it in float32 (NchwcUpsample::ComputeInterpolation): the place
    itself when the axis is not scaled, else by `mode` (half_pixel clamped at 0)."""
    o = np.arange(out, dtype=np.float32)
    f = np.float32
    if scale == 1:
        return o
    if mode == "align_corners":
        return (o * f(n - 1) / f(out - 1)).astype(np.float32)
    if mode == "half_pixel":
        return np.maximum(f(0), (o + f(0.5)) / f(scale) - f(0.5)).astype(np.float32)
    return (o / f(scale)).astype(np.float32)


def _nchwc_linear_axis(coords: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """MlasNchwcExtractInterpolation: i0 = the coordinate truncated, i1 = min(i0 + 1, n - 1),
    the weight of i1 its fraction f and that of i0 1 - f."""
    i0 = coords.astype(np.int64)
    frac = (coords - i0.astype(np.float32)).astype(np.float32)
    return i0, np.minimum(i0 + 1, n - 1), frac, (np.float32(1) - frac).astype(np.float32)


def _nchwc_linear(x: np.ndarray, scales: Sequence[int], mode: str) -> np.ndarray:
    """ONNX Runtime's NCHWc Upsample in linear mode (MlasNchwcUpsampleLinear) of a float32
    [N, C, H, W] by whole factors: per output place, with fy, fx the fractions of its
    source coordinates, y = ((1-fy)(1-fx)·x00 + (1-fy)fx·x01) + (fy(1-fx)·x10 + fy fx·x11),
    each weight one float32 product and each sum rounded once, in that order."""
    h, w = x.shape[-2], x.shape[-1]
    y0, y1, fy, gy = _nchwc_linear_axis(
        _nchwc_interpolation(h, h * scales[2], scales[2], mode), h)
    x0, x1, fx, gx = _nchwc_linear_axis(
        _nchwc_interpolation(w, w * scales[3], scales[3], mode), w)
    top, bottom = x[..., y0, :], x[..., y1, :]
    gy, fy = gy[:, None], fy[:, None]
    return (((gy * gx) * top[..., x0] + (gy * fx) * top[..., x1])
            + ((fy * gx) * bottom[..., x0] + (fy * fx) * bottom[..., x1])).astype(np.float32)


def _bicubic_axis(coords: np.ndarray, n: int, a: float, exclude_outside: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clamped source indices (4 per coordinate), Keys weights and their sum (1, or the sum
    of the weights left inside when `exclude_outside`, added from 0 in tap order)."""
    base = np.floor(coords).astype(np.int64)
    w = _cubic_coeffs((coords - base.astype(np.float32)).astype(np.float32), a)
    idx = base[:, None] + np.arange(-1, 3)[None, :]
    total = np.ones(len(coords), np.float32)
    if exclude_outside:
        w = np.where((idx >= 0) & (idx < n), w, np.float32(0)).astype(np.float32)
        total = ((w[:, 0] + w[:, 1]) + w[:, 2]) + w[:, 3]
    return np.clip(idx, 0, n - 1), w.astype(np.float32), total.astype(np.float32)


def _bicubic(x: np.ndarray, coords_h: np.ndarray, coords_w: np.ndarray, a: float,
             exclude_outside: int) -> np.ndarray:
    """2-D cubic resize of the last two axes in ONNX Runtime's float32 order
    (ResizeBiCubic): each of the 4 source rows interpolated along x first,
    r = sum_j (cx_j / sx) * X[row, col_j], then y = sum_i (r_i * cy_i) / sy, both sums from
    0 in tap order."""
    iy, cy, sy = _bicubic_axis(coords_h, x.shape[-2], a, exclude_outside)
    ix, cx, sx = _bicubic_axis(coords_w, x.shape[-1], a, exclude_outside)
    rows = np.zeros(1, np.float32)
    for j in range(4):
        rows = rows + (cx[:, j] / sx) * np.take(x, ix[:, j], axis=-1)
    y = np.zeros(1, np.float32)
    for i in range(4):
        y = y + np.take(rows, iy[:, i], axis=-2) * cy[:, i, None] / sy[:, None]
    return y


def _bilinear_integer_axis(coords: np.ndarray, n: int
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ONNX Runtime's integer bilinear setup along one axis: the clamped coordinate in
    1/1024ths, truncated; (i1, i2, d1, d2) with d1 = |c - i1|, d2 = |c - i2| in 1/1024ths,
    both 512 at the border."""
    c = np.clip(coords.astype(np.float32), np.float32(0), np.float32(n - 1))
    c10 = (c * np.float32(1024)).astype(np.float32).astype(np.int64)     # truncation
    i1 = np.minimum(c.astype(np.int64), n - 1)
    i2 = np.minimum(i1 + 1, n - 1)
    same = i1 == i2
    d1 = np.where(same, 512, np.abs(c10 - i1 * 1024))
    d2 = np.where(same, 512, np.abs(c10 - i2 * 1024))
    return i1, i2, d1, d2


@functools.lru_cache(maxsize=64)
def _bilinear_integer_table(coordinate_mode: str, out_n: int, in_n: int, scale: np.float32
                            ) -> tuple[np.ndarray, ...]:
    """(i1, i2, d1, d2) of `_bilinear_integer_axis` as int32, computed once per geometry
    (the same arrays on every run, as replayed native calls need)."""
    coords = _source_coords(coordinate_mode, out_n, in_n, scale, 0.0, 1.0) \
        if scale != 1 else np.arange(out_n, dtype=np.float32)
    table = tuple(np.ascontiguousarray(v, np.int32) for v in _bilinear_integer_axis(coords,
                                                                                   in_n))
    for v in table:
        v.flags.writeable = False
    return table


def _bilinear_integer(x: np.ndarray, out_h: int, out_w: int, scale_h: np.float32,
                      scale_w: np.float32, coordinate_mode: str, *,
                      channels_last: bool = False) -> np.ndarray:
    """ONNX Runtime's 8-bit bilinear Resize on channels-last data (NhwcUpsampleBilinear-
    Integer), on NCHW `x` (NHWC with `channels_last`, the result then NHWC too): y = (w11 x11
    + w21 x21 + w12 x12 + w22 x22) / 2^20 in integers (truncated toward zero) with w11 = dx2
    dy2, w21 = dx1 dy2, w12 = dx2 dy1, w22 = dx1 dy1 in 1/1024ths (docs/operators.md, (O41));
    natively when built (`bilinear_integer`). Each output is a function of its own channel
    only, so both layouts give the same values."""
    if channels_last:
        n, in_h, in_w, c = x.shape
        dims, shape = (n, in_h, in_w, c, out_h, out_w), (n, out_h, out_w, c)
    else:
        n, c, in_h, in_w = x.shape
        dims, shape = (n * c, in_h, in_w, 1, out_h, out_w), (n, c, out_h, out_w)
    rows = _bilinear_integer_table(coordinate_mode, out_h, in_h, np.float32(scale_h))
    cols = _bilinear_integer_table(coordinate_mode, out_w, in_w, np.float32(scale_w))
    native = native_float.bilinear_integer(x, dims, rows, cols, shape)
    if native is not None:
        return native
    v = (np.moveaxis(x, -1, 1) if channels_last else x).astype(np.int64)
    y1, y2, dy1, dy2 = (t.astype(np.int64) for t in rows)
    x1, x2, dx1, dx2 = (t.astype(np.int64) for t in cols)
    top, bottom = v[:, :, y1, :], v[:, :, y2, :]
    dy1, dy2 = dy1[:, None], dy2[:, None]
    total = ((dx2 * dy2) * top[..., x1] + (dx1 * dy2) * top[..., x2]
             + (dx2 * dy1) * bottom[..., x1] + (dx1 * dy1) * bottom[..., x2])
    q = np.sign(total) * (np.abs(total) >> 20)         # C's division: toward zero
    if channels_last:
        q = np.moveaxis(q, 1, -1)
    return np.ascontiguousarray(q.astype(x.dtype))


def _opt_list(v: np.ndarray | None) -> list[float] | None:
    if v is None or np.asarray(v).size == 0:
        return None
    return [float(a) for a in np.asarray(v).reshape(-1)]


def _integer_bilinear_geometry(x: np.ndarray, size_list: list[float] | None,
                               sc: list[float] | None, *, antialias: int,
                               axes: Sequence[int] | None,
                               coordinate_transformation_mode: str,
                               keep_aspect_ratio_policy: str, mode: str
                               ) -> tuple[int, int, np.float32, np.float32] | None:
    """(out_h, out_w, scale_h, scale_w) where ONNX Runtime runs a Resize of NCHW `x` (after
    a convolution its layout transformer moved to channels-last) with its integer bilinear
    kernel (`_bilinear_integer`); None where it takes another path."""
    if not (mode == "linear" and x.dtype in (np.uint8, np.int8) and x.ndim == 4
            and not antialias and axes is None and keep_aspect_ratio_policy == "stretch"
            and coordinate_transformation_mode != "tf_crop_and_resize"):
        return None
    out = [int(s) for s in size_list] if size_list is not None else None if sc is None \
        else [int(np.float32(v) * np.float32(i)) for v, i in zip(sc, x.shape, strict=True)]
    factors = [np.float32(o) / np.float32(i) for o, i in zip(out, x.shape, strict=True)] \
        if size_list is not None and out is not None else \
        None if sc is None else [np.float32(v) for v in sc]
    # channels-last scales (1, s_h, s_w, 1): with s_h = 1 ONNX Runtime takes its NCHW
    # float kernel on the channels-last data, which interpolates the same way
    if out is not None and factors is not None and out[:2] == list(x.shape[:2]) \
            and factors[0] == factors[1] == 1 and factors[2] != 1:
        return out[2], out[3], factors[2], factors[3]
    return None


def resize_channels_last(x: np.ndarray, roi: np.ndarray | None = None,
                         scales: np.ndarray | None = None, sizes: np.ndarray | None = None,
                         *, antialias: int = 0, axes: Sequence[int] | None = None,
                         coordinate_transformation_mode: str = "half_pixel",
                         keep_aspect_ratio_policy: str = "stretch", mode: str = "nearest",
                         opset: int = 13, channels_last_integer: bool = False,
                         nchwc_linear: bool = False, **_: Any) -> np.ndarray | None:
    """`Resize` of channels-last `x` (N, H, W, C), channels-last, where it is ONNX Runtime's
    integer bilinear kernel (which runs on channels-last data, as lowp's convolutions do:
    no transposes around it) or its float32 bilinear one over H and W (whose every output
    is the same function of its own channel in either layout, (O355)); None otherwise (the
    caller then resizes a channels-first view), an NCHWc Upsample's order (O320)
    included."""
    if opset < 11 or x.ndim != 4:
        return None
    if channels_last_integer:
        geometry = _integer_bilinear_geometry(
            np.moveaxis(x, -1, 1), _opt_list(sizes), _opt_list(scales), antialias=antialias,
            axes=axes, coordinate_transformation_mode=coordinate_transformation_mode,
            keep_aspect_ratio_policy=keep_aspect_ratio_policy, mode=mode)
        if geometry is not None:
            return _bilinear_integer(x, *geometry, coordinate_transformation_mode,
                                     channels_last=True)
    if x.dtype != np.float32 or mode != "linear" or antialias or nchwc_linear \
            or coordinate_transformation_mode == "tf_crop_and_resize":
        return None
    # the geometry of `_resize` on the channels-first view (N, C, H, W)
    rank, shape = 4, (x.shape[0], x.shape[3], x.shape[1], x.shape[2])
    ax = list(range(rank)) if axes is None else [int(a) + rank if a < 0 else int(a)
                                                 for a in axes]
    in_shape = [shape[a] for a in ax]
    size_list = _opt_list(sizes)
    out, sc = _output_geometry(in_shape, _opt_list(scales),
                               None if size_list is None else [int(v) for v in size_list],
                               keep_aspect_ratio_policy)
    hw = _last_two_axes(rank, ax, in_shape, out, sc)
    if out == in_shape or hw is None:
        return None
    rows, cols = (_bilinear_table(coordinate_transformation_mode, out[j], in_shape[j], sc[j])
                  for j in hw)
    return _bilinear(x, rows, cols, channels_last=True)


@register
def Resize(x: np.ndarray, roi: np.ndarray | None = None, scales: np.ndarray | None = None,
           sizes: np.ndarray | None = None, *, antialias: int = 0,
           axes: Sequence[int] | None = None,
           coordinate_transformation_mode: str = "half_pixel", cubic_coeff_a: float = -0.75,
           exclude_outside: int = 0, extrapolation_value: float = 0.0,
           keep_aspect_ratio_policy: str = "stretch", mode: str = "nearest",
           nearest_mode: str = "round_prefer_floor", opset: int = 13,
           channels_last_integer: bool = False, nchwc_linear: bool = False,
           **_: Any) -> np.ndarray:
    """Resize-10..19: nearest, linear (n-linear), cubic, antialias, all coordinate modes.
    `channels_last_integer`: ONNX Runtime runs this Resize on channels-last data (after a
    convolution its layout transformer moved there), where 8-bit bilinear is integer
    arithmetic (`_bilinear_integer`). `nchwc_linear`: it runs this float32 linear Resize
    of an NCHWc value as its NCHWc Upsample (`_nchwc_linear`, (O320))."""
    if nchwc_linear:
        factors = ([int(v) for v in np.asarray(scales).reshape(-1)] if _opt_list(scales)
                   else [int(v) // d for v, d in zip(np.asarray(sizes).reshape(-1), x.shape,
                                                     strict=True)])
        return _nchwc_linear(x, factors, coordinate_transformation_mode)
    if opset < 11:  # Resize-10: (X, scales), asymmetric coordinates
        return _resize(x, _opt_list(roi), None, None, mode=mode,
                       coordinate_transformation_mode="asymmetric", nearest_mode="simple")
    size_list = _opt_list(sizes)
    sc = _opt_list(scales)
    if channels_last_integer:
        geometry = _integer_bilinear_geometry(x, size_list, sc, antialias=antialias, axes=axes,
                                              coordinate_transformation_mode=
                                              coordinate_transformation_mode,
                                              keep_aspect_ratio_policy=keep_aspect_ratio_policy,
                                              mode=mode)
        if geometry is not None:
            return _bilinear_integer(x, *geometry, coordinate_transformation_mode)
    return _resize(x, sc, None if size_list is None else [int(s) for s in size_list],
                   _opt_list(roi), mode=mode,
                   coordinate_transformation_mode=coordinate_transformation_mode,
                   nearest_mode=nearest_mode, cubic_coeff_a=cubic_coeff_a,
                   exclude_outside=exclude_outside, extrapolation_value=extrapolation_value,
                   keep_aspect_ratio_policy=keep_aspect_ratio_policy,
                   axes=None if axes is None else [int(a) for a in axes], antialias=antialias)


@register
def Upsample(x: np.ndarray, scales: np.ndarray | Sequence[float], *, mode: str = "nearest",
             **_: Any) -> np.ndarray:
    """Upsample-7/9: Resize with asymmetric coordinates and floor-style nearest."""
    sc = _opt_list(np.asarray(scales))  # an attribute of the same name before opset 9
    if mode == "bilinear":
        mode = "linear"
    return _resize(x, sc, None, None, mode=mode, coordinate_transformation_mode="asymmetric",
                   nearest_mode="simple")


# --- recurrent ----------------------------------------------------------------------------

ActFn = Callable[[np.ndarray], np.ndarray]

# Activations that take alpha/beta, with the spec's defaults.
_ACT_PARAMS: dict[str, tuple[float, float]] = {
    "affine": (1.0, 0.0), "leakyrelu": (0.01, 0.0), "thresholdedrelu": (1.0, 0.0),
    "scaledtanh": (1.0, 1.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0),
}


def _sigmoid(v: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(v))  # never overflows
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e)).astype(v.dtype, copy=False)


def _activation(name: str, alpha: float, beta: float) -> ActFn:
    n = name.lower()
    f = np.float32
    table: dict[str, ActFn] = {
        "sigmoid": _sigmoid,
        "tanh": np.tanh,
        "relu": lambda v: np.maximum(v, 0),
        "affine": lambda v: f(alpha) * v + f(beta),
        "leakyrelu": lambda v: np.where(v >= 0, v, f(alpha) * v),
        "thresholdedrelu": lambda v: np.where(v > alpha, v, 0).astype(v.dtype),
        "scaledtanh": lambda v: f(alpha) * np.tanh(f(beta) * v),
        "hardsigmoid": lambda v: np.clip(f(alpha) * v + f(beta), 0, 1),
        "elu": lambda v: np.where(v >= 0, v, f(alpha) * np.expm1(np.minimum(v, 0))),
        "softsign": lambda v: v / (1 + np.abs(v)),
        "softplus": lambda v: np.logaddexp(v, 0),
    }
    if n not in table:
        raise unsupported("RNN", f"activation {name!r}")
    return table[n]


def _activations(op: str, names: Sequence[str] | None, defaults: list[str], num_dirs: int,
                 alphas: Sequence[float] | None, betas: Sequence[float] | None
                 ) -> list[list[ActFn]]:
    """Per direction, the op's activation functions (alpha/beta consumed in order)."""
    names = list(names) if names else defaults * num_dirs
    if len(names) == len(defaults) and num_dirs == 2:
        names = names * 2
    al, be = list(alphas or []), list(betas or [])
    fns = []
    for name in names:
        a, b = _ACT_PARAMS.get(name.lower(), (0.0, 0.0))
        if name.lower() in _ACT_PARAMS:
            a = al.pop(0) if al else a
            b = be.pop(0) if be else b
        fns.append(_activation(name, a, b))
    per = len(defaults)
    return [fns[i * per:(i + 1) * per] for i in range(num_dirs)]


StepFn = Callable[[np.ndarray, list[np.ndarray]], list[np.ndarray]]


def _run_direction(xw: np.ndarray, states: list[np.ndarray], lens: np.ndarray, reverse: bool,
                   step: StepFn) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run `step` over time; xw is (seq, batch, gates) with the input projection done.

    Batch entries past their sequence length keep their state and output zeros; the reverse
    direction runs each entry's valid prefix backwards.
    """
    seq, batch = xw.shape[:2]
    if bool(np.all(lens >= seq)):              # no padding: plain slices, no masking
        ys = np.empty((seq, batch, states[0].shape[-1]), dtype=xw.dtype)
        for t in (range(seq - 1, -1, -1) if reverse else range(seq)):
            states = step(xw[t], states)
            ys[t] = states[0]
        return ys, states
    t_idx = np.arange(seq)[:, None]
    valid = t_idx < lens[None, :]
    src = np.where(valid, lens[None, :] - 1 - t_idx, t_idx) if reverse else \
        np.broadcast_to(t_idx, (seq, batch))
    bidx = np.arange(batch)
    ys = np.zeros((seq, batch, states[0].shape[-1]), dtype=xw.dtype)
    for t in range(seq):
        new = step(xw[src[t], bidx], states)
        keep = valid[t][:, None]
        states = [np.where(keep, n, s) for n, s in zip(new, states, strict=True)]
        ys[src[t], bidx] = np.where(keep, states[0], 0)
    return ys, states


def _rnn_common(op: str, x: np.ndarray, seq_lens: np.ndarray | None,
                initial: list[np.ndarray | None], direction: str, layout: int,
                hidden: int) -> tuple[np.ndarray, list[np.ndarray | None], np.ndarray, int,
                                      list[bool]]:
    if layout:
        x = x.transpose(1, 0, 2)
        initial = [None if s is None else s.transpose(1, 0, 2) for s in initial]
    seq, batch = x.shape[:2]
    lens = np.full(batch, seq, np.int64) if seq_lens is None else seq_lens.astype(np.int64)
    if direction == "forward":
        revs = [False]
    elif direction == "reverse":
        revs = [True]
    elif direction == "bidirectional":
        revs = [False, True]
    else:
        raise unsupported(op, f"direction={direction!r}")
    check_rnn_shapes(op, seq, batch, hidden, len(revs), seq_lens, initial)
    return _f(x), initial, lens, seq, revs


def check_rnn_shapes(op: str, seq: int, batch: int, hidden: int, dirs: int,
                     lens: np.ndarray | None, initial: list[np.ndarray | None]) -> None:
    """Refuse what ONNX Runtime's DeepCPU RNN, GRU and LSTM kernels refuse: sequence_lens
    not of shape [batch] or with a value outside [0, seq] (O188), an initial state not of
    shape [directions, batch, hidden] (in the sequence-first layout) -- numpy would
    broadcast a batch of 1 ((O165))."""
    if lens is not None:
        if lens.shape != (batch,):
            raise NodeError(f"input sequence_lens must have shape [{batch}], got "
                            f"{list(lens.shape)}")
        if lens.size and (int(lens.min()) < 0 or int(lens.max()) > seq):
            raise NodeError("Invalid value/s in sequence_lens. All values must be >= 0 and "
                            f"<= seq_length. seq_length={seq} (got {lens.tolist()})")
    names = ("initial_h", "initial_c") if op == "LSTM" else ("initial_h",)
    for name, state in zip(names, initial, strict=False):
        if state is not None and state.shape != (dirs, batch, hidden):
            raise NodeError(f"input {name} must have shape [{dirs}, {batch}, {hidden}], got "
                            f"{list(state.shape)}")


def _rnn_outputs(ys: list[np.ndarray], finals: list[list[np.ndarray]], layout: int,
                 dtype: np.dtype) -> tuple[np.ndarray, ...]:
    y = np.stack(ys, axis=1)  # (seq, dirs, batch, hidden)
    outs = [np.stack([f[i] for f in finals], axis=0) for i in range(len(finals[0]))]
    if layout:
        y = y.transpose(2, 0, 1, 3)
        outs = [o.transpose(1, 0, 2) for o in outs]
    return tuple(np.ascontiguousarray(a).astype(dtype, copy=False) for a in [y, *outs])


def _clip(v: np.ndarray, clip: float | None) -> np.ndarray:
    return v if clip is None else np.clip(v, -clip, clip)


def _emptied(finals: list[np.ndarray], lens: np.ndarray) -> list[np.ndarray]:
    """The final states with the rows of the empty sequences (length 0) zeroed, as ONNX
    Runtime's DeepCPU kernels write them (not the initial states; (O62b))."""
    empty = (lens <= 0)[:, None]
    if not empty.any():
        return finals
    return [np.where(empty, np.float32(0), f).astype(np.float32) for f in finals]


@register
def LSTM(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None = None,
         sequence_lens: np.ndarray | None = None, initial_h: np.ndarray | None = None,
         initial_c: np.ndarray | None = None, p: np.ndarray | None = None, *,
         activation_alpha: Sequence[float] | None = None,
         activation_beta: Sequence[float] | None = None,
         activations: Sequence[str] | None = None, clip: float | None = None,
         direction: str = "forward", hidden_size: int | None = None, input_forget: int = 0,
         layout: int = 0, w_packed: bool = False, r_packed: bool = False,
         **_: Any) -> tuple[np.ndarray, ...]:
    """LSTM (gates i, o, f, c), all directions, sequence_lens, peepholes, clip, layout.

    float32 with the default activations computes in ONNX Runtime's order
    (`_lstm_ort_direction`; `w_packed`/`r_packed`: the weights are constants ONNX Runtime
    prepacks), natively (lowp.runtime.native_rnn) when both are; other activations and
    types run the numpy loop below.
    """
    h = r.shape[-1]
    xf, (h0, c0), lens, seq, revs = _rnn_common("LSTM", x, sequence_lens,
                                                [initial_h, initial_c], direction, layout, h)
    if x.dtype == np.float32:
        params = deepcpu_activations("LSTM", activations, activation_alpha, activation_beta,
                                     len(revs))
        if w_packed and r_packed and x.shape[-1] and native_rnn.supported(
                x.dtype, params, lens, seq, h, clip):
            return native_rnn.lstm(x, w, r, b, lens, initial_h, initial_c, p, revs, layout,
                                   clip, bool(input_forget), params)
        ys, finals = [], []
        for di, rev in enumerate(revs):
            st = [np.zeros((xf.shape[1], h), np.float32) if s is None else _f(s[di])
                  for s in (h0, c0)]
            y, fin = _lstm_ort_direction(
                xf, _f(w[di]), _f(r[di]), None if b is None else _f(b[di]),
                None if p is None else _f(p[di]), st, lens, rev, clip, bool(input_forget),
                w_packed, r_packed, lstm_ort_acts(params[di]))
            ys.append(y)
            finals.append(_emptied(fin, lens))
        return _rnn_outputs(ys, finals, layout, x.dtype)
    batch = xf.shape[1]
    acts = _activations("LSTM", activations, ["Sigmoid", "Tanh", "Tanh"], len(revs),
                        activation_alpha, activation_beta)
    ys, finals = [], []
    for di, rev in enumerate(revs):
        wd, rd = _f(w[di]), np.ascontiguousarray(_f(r[di]).T).T
        bias = np.zeros(4 * h, xf.dtype) if b is None else _f(b[di, :4 * h] + b[di, 4 * h:])
        pi, po, pf = (np.zeros(h, xf.dtype),) * 3 if p is None else np.split(_f(p[di]), 3)
        f_act, g_act, h_act = acts[di]

        def step(xw_t: np.ndarray, st: list[np.ndarray], rd: np.ndarray = rd,
                 pi: np.ndarray = pi, po: np.ndarray = po, pf: np.ndarray = pf,
                 f_act: ActFn = f_act, g_act: ActFn = g_act, h_act: ActFn = h_act
                 ) -> list[np.ndarray]:
            hp, cp = st
            gates = xw_t + hp @ rd.T
            gi, go, gf, gc = np.split(gates, 4, axis=1)
            i = f_act(_clip(gi + pi * cp, clip))
            f = 1 - i if input_forget else f_act(_clip(gf + pf * cp, clip))
            c = f * cp + i * g_act(_clip(gc, clip))
            o = f_act(_clip(go + po * c, clip))
            return [o * h_act(c), c]

        st = [np.zeros((batch, h), xf.dtype) if s is None else _f(s[di]) for s in (h0, c0)]
        y, fin = _run_direction(xf @ wd.T + bias, st, lens, rev, step)
        ys.append(y)
        finals.append(fin)
    return _rnn_outputs(ys, finals, layout, x.dtype)


_FLOAT_MAX = np.float32(np.finfo(np.float32).max)


def _ort_clip(x: np.ndarray, bound: np.float32, with_bias: bool) -> np.ndarray:
    """ONNX Runtime's LSTM gate clip: after a bias add std::min then std::max (a NaN becomes
    the bound), without a bias the comparisons (a NaN stays)."""
    if with_bias:
        x = np.where(x < bound, x, bound)
        return np.where(-bound < x, x, -bound).astype(np.float32)
    return np.where(x > bound, bound, np.where(x < -bound, -bound, x)).astype(np.float32)


def _mlas_logistic(x: np.ndarray) -> np.ndarray:
    """ort_math.logistic, by the native float kernel when there is one (the same bits)."""
    native = native_float.unary("Sigmoid", x)
    return ort_math.logistic(x) if native is None else native


def _mlas_tanh(x: np.ndarray) -> np.ndarray:
    """ort_math.tanh, by the native float kernel when there is one (the same bits)."""
    native = native_float.unary("Tanh", x)
    return ort_math.tanh(x) if native is None else native


@dataclass(frozen=True)
class LstmOrtCell:
    """ONNX Runtime's DeepCPU LSTM gates on the summed products g = X W^T + H R^T (columns
    i, o, f, c): the peephole products, the bias Wb + Rb, the clip, MLAS's logistic and
    tanh, C = C_prev f + i g, H = tanh(C) o, each operation rounded to float32 (docs/
    operators.md, (O23)). Shared by LSTM and com.microsoft DynamicQuantizeLSTM."""

    bias: tuple[np.ndarray | None, ...]     # i, o, f, c (Wb + Rb), or None each
    peephole: tuple[np.ndarray | None, ...]  # i, o, f, or None each
    bound: np.float32
    input_forget: bool
    # f (gates i, f, o), g (block gate) and h (merged with o: H = h(C) o), (O62); None: the
    # defaults, MLAS's logistic, tanh, tanh
    acts: tuple[ActFn, ActFn, ActFn] | None = None

    @classmethod
    def of(cls, b: np.ndarray | None, p: np.ndarray | None, hid: int, clip: float | None,
           input_forget: bool, acts: tuple[ActFn, ActFn, ActFn] | None = None
           ) -> LstmOrtCell:
        bias = None if b is None else (b[:4 * hid] + b[4 * hid:]).astype(np.float32)
        return cls(tuple((None,) * 4 if bias is None else np.split(bias, 4)),
                   tuple((None,) * 3 if p is None else np.split(p, 3)),
                   _FLOAT_MAX if clip is None else np.float32(clip), input_forget, acts)

    def _gate(self, g: np.ndarray, c: np.ndarray, peep: np.ndarray | None,
              bias: np.ndarray | None, act: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        if peep is not None:
            g = (g + (c * peep).astype(np.float32)).astype(np.float32)
        if bias is not None:
            g = (g + bias).astype(np.float32)
        return act(_ort_clip(g, self.bound, bias is not None))

    def __call__(self, g: np.ndarray, cp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, C) of one step from the gate sums `g` (batch, 4 hidden) and C_prev."""
        f_act, g_act, h_act = self.acts or (_mlas_logistic, _mlas_tanh, _mlas_tanh)
        gi, go, gf, gc = np.split(g, 4, axis=1)
        bi, bo, bf, bc = self.bias
        pi, po, pf = self.peephole
        i = self._gate(gi, cp, pi, bi, f_act)
        f = (np.float32(1) - i).astype(np.float32) if self.input_forget else \
            self._gate(gf, cp, pf, bf, f_act)
        c = ((cp * f).astype(np.float32) + (i * self._gate(gc, cp, None, bc, g_act)).astype(
            np.float32)).astype(np.float32)
        o = self._gate(go, c, po, bo, f_act)
        return (h_act(c) * o).astype(np.float32), c


def lstm_batch_chunks(batch: int, hidden: int, threads: int) -> list[slice] | None:
    """ONNX Runtime's DeepCPU LSTM at `threads` intra-op threads splits each step's
    recurrent product H R^T by batch rows (more than 4 rows, or 2 or more with a hidden
    size of at most 256) into chunks of ceil(batch / threads) rows, each one MLAS product
    of its own, not cut further (docs/operators.md (O78)): those chunks, or None where the
    product is one MlasGemm call (cut by lowp.mlas_sgemm.thread_parts)."""
    if threads <= 1 or not (batch > 4 or (batch >= 2 and hidden <= 256)):
        return None
    size = -(-batch // threads)
    return [slice(lo, min(batch, lo + size)) for lo in range(0, batch, size)]


def _lstm_ort_direction(xf: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None,
                        p: np.ndarray | None, states: list[np.ndarray], lens: np.ndarray,
                        rev: bool, clip: float | None, input_forget: bool, w_packed: bool,
                        r_packed: bool, acts: tuple[ActFn, ActFn, ActFn] | None = None
                        ) -> tuple[np.ndarray, list[np.ndarray]]:
    """One direction of a float32 LSTM as ONNX Runtime's DeepCPU kernel computes it
    (docs/operators.md, (O23)): X W^T by MLAS (prepacked or not), per step the recurrence
    H R^T accumulated into it by MLAS, the peephole products, then the bias Wb + Rb, the
    clip, MLAS's logistic and tanh, C = C_prev f + i g, H = tanh(C) o."""
    seq, batch, inp = xf.shape
    hid = r.shape[-1]
    # ONNX Runtime projects the first max(lens) steps only (M = their rows: M = 1 takes
    # MLAS's one-row kernel)
    steps = min(seq, int(lens.max(initial=0))) if lens.size else seq
    xw = np.zeros((seq, batch, 4 * hid), np.float32)
    if steps:
        xw[:steps] = mlas_sgemm.gemm(xf[:steps].reshape(-1, inp), w, trans_b=True,
                                     packed=w_packed, threads=native_float.get_threads()
                                     ).reshape(steps, batch, 4 * hid)
    cell = LstmOrtCell.of(b, p, hid, clip, input_forget, acts)
    threads = native_float.get_threads()
    chunks = lstm_batch_chunks(batch, hid, threads)

    def step(xw_t: np.ndarray, st: list[np.ndarray]) -> list[np.ndarray]:
        if chunks is None:
            g = mlas_sgemm.gemm(st[0], r, trans_b=True, packed=r_packed, c=xw_t,
                                threads=threads)
        else:
            g = np.concatenate([mlas_sgemm.gemm(st[0][rows], r, trans_b=True,
                                                packed=r_packed, c=xw_t[rows])
                                for rows in chunks])
        return list(cell(g, st[1]))

    return _run_direction(xw, states, lens, rev, step)


# ONNX Runtime's deepcpu rational tanh (GRU's reset and output gates): float32, no fused
# multiply-adds (its own C++ loops)
_DEEPCPU_P = tuple(np.float32(c) for c in (-2.76076847742355e-16, 2.00018790482477e-13,
                                           -8.60467152213735e-11, 5.12229709037114e-08,
                                           1.48572235717979e-05, 6.37261928875436e-04,
                                           4.89352455891786e-03))
_DEEPCPU_Q = tuple(np.float32(c) for c in (1.19825839466702e-06, 1.18534705686654e-04,
                                           2.26843463243900e-03, 4.89352518554385e-03))


def _deepcpu_ratio(x: np.ndarray) -> np.ndarray:
    """p(x) / q(x) of ONNX Runtime's deepcpu tanh, each operation rounded to float32."""
    f = np.float32
    x2 = (x * x).astype(f)
    p = ((x2 * _DEEPCPU_P[0]).astype(f) + _DEEPCPU_P[1]).astype(f)
    for c in _DEEPCPU_P[2:]:
        p = ((x2 * p).astype(f) + c).astype(f)
    p = (x * p).astype(f)
    q = ((x2 * _DEEPCPU_Q[0]).astype(f) + _DEEPCPU_Q[1]).astype(f)
    for c in _DEEPCPU_Q[2:]:
        q = ((x2 * q).astype(f) + c).astype(f)
    return (p / q).astype(f)


def _bound(x: np.ndarray, b: float) -> np.ndarray:
    """deepcpu's clip_for_sigmoid / clip_for_tanh (a NaN stays)."""
    return np.where(x < -b, np.float32(-b), np.where(x > b, np.float32(b), x)).astype(
        np.float32)


def _gru_ort_direction(xf: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None,
                       states: list[np.ndarray], lens: np.ndarray, rev: bool,
                       clip: float | None, lbr: bool, w_packed: bool, r_packed: bool,
                       params: list[tuple[str, float, float]] | None = None
                       ) -> tuple[np.ndarray, list[np.ndarray]]:
    """One direction of a float32 GRU as ONNX Runtime's DeepCPU kernel computes it
    (docs/operators.md, (O25)): X W^T by MLAS; per step H R_zr^T accumulated into the z and
    r parts; r from the clipped r input by deepcpu's rational sigmoid times H (or times
    H R_h^T + Rbh with linear_before_reset), then the h part (a GEMM accumulated into it, or
    an add); z by MLAS's logistic; H = (1 - z) tanh'(h) + z H_prev with deepcpu's tanh.
    Other activations (`params`: f and g with their alpha and beta, (O62)): f of the r gate
    by deepcpu's fused reset form (Tanh its rational tanh on the input clamped to ±10, Relu
    v > 0 ? v : 0, the others ONNX Runtime's functors) times H, f of the z gate as MLAS
    (`deepcpu_activation`), g by the fused output form (Sigmoid its rational sigmoid on the
    input clamped to ±20: ((1 - z) 0.5) (1 + ratio) + z H_prev)."""
    f = np.float32
    (f_name, f_alpha, f_beta), (g_name, g_alpha, g_beta) = params or [
        ("sigmoid", 0.0, 0.0), ("tanh", 0.0, 0.0)]
    update_act = deepcpu_activation(f_name, f_alpha, f_beta)
    f_fused = deepcpu_activation(f_name, f_alpha, f_beta, fused=True)
    g_fused = deepcpu_activation(g_name, g_alpha, g_beta, fused=True)
    seq, batch, inp = xf.shape
    hid = r.shape[-1]
    steps = min(seq, int(lens.max(initial=0))) if lens.size else seq
    xw = np.zeros((seq, batch, 3 * hid), f)
    if steps:
        xw[:steps] = mlas_sgemm.gemm(xf[:steps].reshape(-1, inp), w, trans_b=True,
                                     packed=w_packed, threads=native_float.get_threads()
                                     ).reshape(steps, batch, 3 * hid)
    r_zr, r_h = r[:2 * hid], r[2 * hid:]
    bz = br = bh = rbh = None
    if b is not None:
        wz, wr, wh, rz, rr, rh = np.split(b, 6)
        bz, br = (wz + rz).astype(f), (wr + rr).astype(f)
        bh = wh if lbr else (wh + rh).astype(f)
        rbh = rh
    bound = _FLOAT_MAX if clip is None else f(clip)

    def prep(g: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        return _ort_clip((g + bias).astype(f) if bias is not None else g, bound,
                         bias is not None)

    threads = native_float.get_threads()

    def step(x_t: np.ndarray, st: list[np.ndarray]) -> list[np.ndarray]:
        hp = st[0]
        zr = mlas_sgemm.gemm(hp, r_zr, trans_b=True, packed=r_packed, c=x_t[:, :2 * hid],
                             threads=threads)
        half = f(0.5)
        if lbr:
            c0 = None if rbh is None else np.broadcast_to(rbh, (batch, hid))
            lin = mlas_sgemm.gemm(hp, r_h, trans_b=True, packed=r_packed, c=c0,
                                  threads=threads)
        r_in, base = prep(zr[:, hid:], br), (lin if lbr else hp)
        if f_name == "sigmoid":
            rt = _deepcpu_ratio((half * _bound(r_in, 20.0)).astype(f))
            rh_ = ((base * half).astype(f) * (f(1) + rt).astype(f)).astype(f)
        elif f_name == "tanh":
            rh_ = (base * _deepcpu_ratio(_bound(r_in, 10.0))).astype(f)
        else:
            rh_ = (base * f_fused(r_in)).astype(f)
        if lbr:
            gh = (x_t[:, 2 * hid:] + rh_).astype(f)
        else:
            gh = mlas_sgemm.gemm(rh_, r_h, trans_b=True, packed=r_packed,
                                 c=x_t[:, 2 * hid:], threads=threads)
        z = (ort_math.logistic if f_name == "sigmoid" else update_act)(prep(zr[:, :hid], bz))
        h_in, keep = prep(gh, bh), (f(1) - z).astype(f)
        if g_name == "sigmoid":
            rt = _deepcpu_ratio((half * _bound(h_in, 20.0)).astype(f))
            new = ((keep * half).astype(f) * (f(1) + rt).astype(f)).astype(f)
        else:
            new = (keep * (_deepcpu_ratio(_bound(h_in, 10.0)) if g_name == "tanh"
                           else g_fused(h_in))).astype(f)
        return [(new + (z * hp).astype(f)).astype(f)]

    return _run_direction(xw, states, lens, rev, step)


@register
def GRU(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None = None,
        sequence_lens: np.ndarray | None = None, initial_h: np.ndarray | None = None, *,
        activation_alpha: Sequence[float] | None = None,
        activation_beta: Sequence[float] | None = None,
        activations: Sequence[str] | None = None, clip: float | None = None,
        direction: str = "forward", hidden_size: int | None = None, layout: int = 0,
        linear_before_reset: int = 0, w_packed: bool = False, r_packed: bool = False,
        **_: Any) -> tuple[np.ndarray, ...]:
    """GRU (gates z, r, h), all directions, sequence_lens, linear_before_reset, layout.

    float32 with the default activations computes in ONNX Runtime's order
    (`_gru_ort_direction`; `w_packed`/`r_packed`: the weights are constants ONNX Runtime
    prepacks), natively (lowp.runtime.native_rnn) when both are; other activations and
    types run the numpy loop below.
    """
    h = r.shape[-1]
    xf, (h0,), lens, seq, revs = _rnn_common("GRU", x, sequence_lens, [initial_h], direction,
                                             layout, h)
    if x.dtype == np.float32:
        params = deepcpu_activations("GRU", activations, activation_alpha, activation_beta,
                                     len(revs))
        if w_packed and r_packed and x.shape[-1] and native_rnn.supported(
                x.dtype, params, lens, seq, h, clip):
            return native_rnn.gru(x, w, r, b, lens, initial_h, revs, layout, clip,
                                  bool(linear_before_reset), params)
        ys, finals = [], []
        for di, rev in enumerate(revs):
            st = [np.zeros((xf.shape[1], h), np.float32) if h0 is None else _f(h0[di])]
            y, fin = _gru_ort_direction(xf, _f(w[di]), _f(r[di]),
                                        None if b is None else _f(b[di]), st, lens, rev, clip,
                                        bool(linear_before_reset), w_packed, r_packed,
                                        params[di])
            ys.append(y)
            finals.append(_emptied(fin, lens))
        return _rnn_outputs(ys, finals, layout, x.dtype)
    batch = xf.shape[1]
    acts = _activations("GRU", activations, ["Sigmoid", "Tanh"], len(revs), activation_alpha,
                        activation_beta)
    ys, finals = [], []
    for di, rev in enumerate(revs):
        wd, rd = _f(w[di]), _f(r[di])
        wb, rb = (np.zeros(3 * h, xf.dtype),) * 2 if b is None else np.split(_f(b[di]), 2)
        f_act, g_act = acts[di]
        rz, rr, rh = np.split(rd, 3)
        rbz, rbr, rbh = np.split(rb, 3)

        def step(xw_t: np.ndarray, st: list[np.ndarray], rz: np.ndarray = rz,
                 rr: np.ndarray = rr, rh: np.ndarray = rh, rbz: np.ndarray = rbz,
                 rbr: np.ndarray = rbr, rbh: np.ndarray = rbh, f_act: ActFn = f_act,
                 g_act: ActFn = g_act) -> list[np.ndarray]:
            (hp,) = st
            xz, xr, xh = np.split(xw_t, 3, axis=1)
            z = f_act(_clip(xz + hp @ rz.T + rbz, clip))
            rg = f_act(_clip(xr + hp @ rr.T + rbr, clip))
            if linear_before_reset:
                hh = g_act(_clip(xh + rg * (hp @ rh.T + rbh), clip))
            else:
                hh = g_act(_clip(xh + (rg * hp) @ rh.T + rbh, clip))
            return [(1 - z) * hh + z * hp]

        st = [np.zeros((batch, h), xf.dtype) if h0 is None else _f(h0[di])]
        y, fin = _run_direction(xf @ wd.T + wb, st, lens, rev, step)
        ys.append(y)
        finals.append(fin)
    return _rnn_outputs(ys, finals, layout, x.dtype)


@register
def RNN(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None = None,
        sequence_lens: np.ndarray | None = None, initial_h: np.ndarray | None = None, *,
        activation_alpha: Sequence[float] | None = None,
        activation_beta: Sequence[float] | None = None,
        activations: Sequence[str] | None = None, clip: float | None = None,
        direction: str = "forward", hidden_size: int | None = None, layout: int = 0,
        **_: Any) -> tuple[np.ndarray, ...]:
    """Simple RNN, all directions, sequence_lens, clip, layout; float32 without a layout in
    ONNX Runtime's order (`_rnn_ort`, natively by lowp.runtime.native_rnn.simple_rnn)."""
    if x.dtype == np.float32 and not layout:
        seq, batch = x.shape[:2]
        check_rnn_shapes("RNN", seq, batch, r.shape[-1],
                         2 if direction == "bidirectional" else 1, sequence_lens, [initial_h])
        native = native_rnn.simple_rnn(
            x, w, r, b, sequence_lens, initial_h,
            _rnn_ort_directions(activations, activation_alpha, activation_beta, direction),
            clip, direction)
        if native is not None:
            return native
        return _rnn_ort(x, w, r, b, sequence_lens, initial_h, activation_alpha,
                        activation_beta, activations, clip, direction)
    h = r.shape[-1]
    xf, (h0,), lens, _seq, revs = _rnn_common("RNN", x, sequence_lens, [initial_h], direction,
                                              layout, h)
    batch = xf.shape[1]
    acts = _activations("RNN", activations, ["Tanh"], len(revs), activation_alpha,
                        activation_beta)
    ys, finals = [], []
    for di, rev in enumerate(revs):
        wd, rd = _f(w[di]), _f(r[di])
        bias = np.zeros(h, xf.dtype) if b is None else _f(b[di, :h] + b[di, h:])
        (f_act,) = acts[di]

        def step(xw_t: np.ndarray, st: list[np.ndarray], rd: np.ndarray = rd,
                 f_act: ActFn = f_act) -> list[np.ndarray]:
            return [f_act(_clip(xw_t + st[0] @ rd.T, clip))]

        st = [np.zeros((batch, h), xf.dtype) if h0 is None else _f(h0[di])]
        y, fin = _run_direction(xf @ wd.T + bias, st, lens, rev, step)
        ys.append(y)
        finals.append(fin)
    return _rnn_outputs(ys, finals, layout, x.dtype)


def _rnn_ort_sigmoid(v: np.ndarray) -> np.ndarray:
    """ONNX Runtime's RNN Sigmoid: 1 / (1 + expf(-x)) for x >= 0, else expf(x) / (1 +
    expf(x)), in float32 with the C library's expf."""
    f = np.float32
    with np.errstate(over="ignore", invalid="ignore"):
        e_neg, e_pos = libm.expf(-v), libm.expf(v)
        return np.where(v >= 0, f(1) / (f(1) + e_neg), e_pos / (f(1) + e_pos)).astype(f)


# ONNX Runtime's RNN activations: which take an alpha and a beta (consumed in order from
# activation_alpha and activation_beta across the directions), and the defaults when the
# lists run out (0 for the others, whatever the ONNX defaults: Affine and ScaledTanh give 0)
_RNN_ORT_ARGS: dict[str, tuple[bool, bool]] = {
    "affine": (True, True), "leakyrelu": (True, False), "thresholdedrelu": (True, False),
    "scaledtanh": (True, True), "hardsigmoid": (True, True), "elu": (True, False)}
_RNN_ORT_DEFAULTS: dict[str, tuple[float, float]] = {
    "leakyrelu": (0.01, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}


def _rnn_ort_activation(name: str, alpha: float, beta: float) -> ActFn:
    """ONNX Runtime's RNN activation `name` (its rnn_activation_functors.h, float32; an
    unknown name is its default, Tanh) with this direction's alpha and beta."""
    f = np.float32
    a, b = f(alpha), f(beta)

    def tanh(v: np.ndarray) -> np.ndarray:
        return (f(2) * _rnn_ort_sigmoid((f(2) * v).astype(f)) - f(1)).astype(f)

    def softplus(v: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return libm.logf((f(1) + libm.expf(v)).astype(f))

    def elu(v: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.where(v >= 0, v, a * (libm.expf(v) - f(1))).astype(f)

    def hard_sigmoid(v: np.ndarray) -> np.ndarray:
        y = (a * v + b).astype(f)
        y = np.where(f(0) < y, y, f(0))                      # std::max(0, y)
        return np.where(y < f(1), y, f(1)).astype(f)          # std::min(1, y)

    table: dict[str, ActFn] = {
        "Affine": lambda v: (a * v + b).astype(f),
        "Relu": lambda v: np.where(f(0) < v, v, f(0)).astype(f),
        "LeakyRelu": lambda v: np.where(v >= 0, v, a * v).astype(f),
        "ThresholdedRelu": lambda v: np.where(v > a, v, f(0)).astype(f),
        "Tanh": tanh,
        "ScaledTanh": lambda v: (a * tanh((b * v).astype(f))).astype(f),
        "Sigmoid": _rnn_ort_sigmoid,
        "HardSigmoid": hard_sigmoid,
        "Elu": elu,
        "Softsign": lambda v: (v / (f(1) + np.abs(v))).astype(f),
        "Softplus": softplus,
    }
    return table.get(name, tanh)


# ONNX Runtime's activation names (it lowercases the attribute's), as its functors' table
# (rnn_activation_functors.h) spells them
_ORT_ACT_NAMES = {n.lower(): n for n in (
    "Affine", "Relu", "LeakyRelu", "ThresholdedRelu", "Tanh", "ScaledTanh", "Sigmoid",
    "HardSigmoid", "Elu", "Softsign", "Softplus")}


def deepcpu_activations(op: str, names: Sequence[str] | None, alphas: Sequence[float] | None,
                        betas: Sequence[float] | None, dirs: int
                        ) -> list[list[tuple[str, float, float]]]:
    """Per direction of an LSTM (f, g, h) or GRU (f, g) node, ONNX Runtime's lowercased
    activation names with their alpha and beta (its rnn::detail::ActivationFuncs: the lists
    consumed in order by the activations that take each, its defaults when they run out;
    docs/operators.md, (O62)). A list of one direction's names for two directions is used
    for both (ONNX Runtime refuses it)."""
    per = 3 if op == "LSTM" else 2
    given = [n.lower() for n in names] if names else (
        ["sigmoid", "tanh", "tanh"] if op == "LSTM" else ["sigmoid", "tanh"]) * dirs
    if len(given) == per and dirs == 2:
        given = given * 2
    if len(given) != per * dirs:
        raise unsupported(op, f"{len(given)} activations for {dirs} directions")
    al, be = list(alphas or []), list(betas or [])
    out = []
    for name in given:
        if name not in _ORT_ACT_NAMES:
            raise unsupported(op, f"activation {name!r}")
        uses_alpha, uses_beta = _RNN_ORT_ARGS.get(name, (False, False))
        alpha, beta = _RNN_ORT_DEFAULTS.get(name, (0.0, 0.0))
        alpha = al.pop(0) if uses_alpha and al else alpha
        beta = be.pop(0) if uses_beta and be else beta
        out.append((name, float(alpha), float(beta)))
    return [out[d * per:(d + 1) * per] for d in range(dirs)]


def _mlas_relu(v: np.ndarray) -> np.ndarray:
    """MLAS's Relu (MlasActivation): maxps(0, v), which keeps a NaN and -0."""
    return np.where(np.float32(0) > v, np.float32(0), v).astype(np.float32)


def _fused_relu(v: np.ndarray) -> np.ndarray:
    """deepcpu's fused Relu (relu_m, gru_*_gate_relu): v > 0 ? v : 0 (a NaN becomes 0)."""
    return np.where(v > np.float32(0), v, np.float32(0)).astype(np.float32)


def deepcpu_activation(name: str, alpha: float, beta: float, fused: bool = False) -> ActFn:
    """ONNX Runtime's DeepCPU activation `name` (lowercased) over an array: Sigmoid and Tanh
    are MLAS's logistic and tanh, Relu MLAS's (its fused forms' v > 0 ? v : 0 with `fused`:
    LSTM's h), the others its functors element by element (`_rnn_ort_activation`)."""
    if name == "sigmoid":
        return _mlas_logistic
    if name == "tanh":
        return _mlas_tanh
    if name == "relu":
        return _fused_relu if fused else _mlas_relu
    return _rnn_ort_activation(_ORT_ACT_NAMES[name], alpha, beta)


def lstm_ort_acts(params: list[tuple[str, float, float]]
                   ) -> tuple[ActFn, ActFn, ActFn] | None:
    """LstmOrtCell's activations of one direction (None: the defaults)."""
    if [n for n, _, _ in params] == ["sigmoid", "tanh", "tanh"]:
        return None
    (f, fa, fb), (g, ga, gb), (h, ha, hb) = params
    return (deepcpu_activation(f, fa, fb), deepcpu_activation(g, ga, gb),
            deepcpu_activation(h, ha, hb, fused=True))


def _mlas_gemm_bt(a: np.ndarray, m: np.ndarray, c: np.ndarray | None) -> np.ndarray:
    """a m^T (+ c, beta = 1) in MLAS's order: natively when the extension is there."""
    a = np.ascontiguousarray(a)
    y = native_float.gemm(a, m, c, alpha=1.0, trans_a=False, trans_b=True, b_packed=False)
    return mlas_sgemm.gemm(a, m, trans_b=True, c=c, threads=native_float.get_threads()) \
        if y is None else y


def _rnn_ort_directions(activations: Sequence[str] | None, alphas: Sequence[float] | None,
                        betas: Sequence[float] | None, direction: str
                        ) -> list[tuple[str, float, float]]:
    """Per direction of an RNN node, ONNX Runtime's activation name, alpha and beta (see
    `_rnn_ort`)."""
    if direction not in ("forward", "reverse", "bidirectional"):
        raise unsupported("RNN", f"direction={direction!r}")
    dirs = 2 if direction == "bidirectional" else 1
    names = list(activations) if activations else ["Tanh"] * dirs
    if len(names) == 2 and dirs == 1:
        names = names[:1]
    if len(names) != dirs:
        raise unsupported("RNN", f"{len(names)} activations for {dirs} directions")
    al, be = list(alphas or []), list(betas or [])
    out = []
    for name in names:
        uses_alpha, uses_beta = _RNN_ORT_ARGS.get(name.lower(), (False, False))
        alpha, beta = _RNN_ORT_DEFAULTS.get(name.lower(), (0.0, 0.0))
        alpha = al.pop(0) if uses_alpha and al else alpha
        beta = be.pop(0) if uses_beta and be else beta
        out.append((name, alpha, beta))
    return out


def _rnn_ort(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None,
             sequence_lens: np.ndarray | None, initial_h: np.ndarray | None,
             alphas: Sequence[float] | None, betas: Sequence[float] | None,
             activations: Sequence[str] | None, clip: float | None,
             direction: str) -> tuple[np.ndarray, np.ndarray]:
    """A float32 RNN as ONNX Runtime's CPU kernel computes it (docs/operators.md, (O58)):
    per direction the rows Wb + Rb (one rounded sum), X W^T accumulated into them by MLAS
    (beta = 1, every step's rows); per step H_prev R^T by MLAS (nothing at the first step
    without initial_h) plus that step's rows, clipped (std::min, then std::max; no clip
    attribute: none), then the activation with this direction's alpha and beta (0 when
    not given, whatever the ONNX defaults). A row past its sequence length takes H_prev (0
    at the first step) and its Y is 0 at the end; Y_h is Y at the last valid step (forward)
    or at step 0 (reverse)."""
    f = np.float32
    seq, batch, inp = x.shape
    hid = r.shape[-1]
    params = _rnn_ort_directions(activations, alphas, betas, direction)
    dirs = len(params)
    lens = None if sequence_lens is None else sequence_lens.astype(np.int64)
    xf = np.ascontiguousarray(x, f).reshape(seq * batch, inp)
    y = np.zeros((seq, dirs, batch, hid), f)
    y_h = np.zeros((dirs, batch, hid), f)
    bound = None if clip is None or clip < 0 else f(clip)
    for d, (name, alpha, beta) in enumerate(params):
        act = _rnn_ort_activation(name, alpha, beta)
        reverse = direction == "reverse" or d == 1
        rows = (np.zeros((seq * batch, hid), f) if b is None else np.broadcast_to(
            (b[d, :hid].astype(f) + b[d, hid:].astype(f)).astype(f), (seq * batch, hid)).copy())
        xw = (_mlas_gemm_bt(xf, np.asarray(w[d], f), rows) if seq * batch
              else rows).reshape(seq, batch, hid)
        rd = np.asarray(r[d], f)
        h_prev = None if initial_h is None else np.asarray(initial_h[d], f)
        for t in range(seq):
            step = seq - 1 - t if reverse else t
            g = (np.zeros((batch, hid), f) if h_prev is None or batch == 0
                 else _mlas_gemm_bt(h_prev, rd, None))
            g = (g + xw[step]).astype(f)
            if bound is not None:
                g = np.where(bound < g, bound, g)
                g = np.where(g < -bound, -bound, g).astype(f)
            out = act(g)
            if lens is not None:
                valid = (step < lens)[:, None]
                out = np.where(valid, out, f(0) if h_prev is None else h_prev).astype(f)
            y[step, d] = out
            h_prev = out
        for i in range(batch):
            last = 0 if reverse else (seq - 1 if lens is None else int(lens[i]) - 1)
            if seq and 0 <= last < seq:
                y_h[d, i] = y[last, d, i]
    if lens is not None:
        for i in range(batch):
            y[int(max(lens[i], 0)):, :, i] = 0
    return y, y_h
