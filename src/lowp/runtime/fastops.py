"""Fast numpy forms of memory-bound integer operators, equal to lowp.ops bit for bit.

The reference operators in lowp.ops are written for clarity; these are written for speed
(strided slices instead of gathered windows, in-place float32 passes) and tested against
them with tolerance 0.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ..fixedpoint import Requant, RequantMode, requant_scale, requantize
from ..ops.concat import rescale
from ..ops.elementwise import add as reference_add
from ..ops.elementwise import add_constant, add_span_kind
from ..ops.layout import Layout
from ..ops.pool import average_pool as reference_average_pool
from ..ops.pool import (
    crop_negative_pads,
    global_average_scale,
    pool_output_shape,
    window_counts,
    window_reaching_pads,
)
from ..qparams import PerAxis, QParams
from ..qparams import quantize as ref_quantize

if TYPE_CHECKING:
    from .native_backend import NativeAdd


def max_pool(x: np.ndarray, *, kernel_shape: Sequence[int], strides: Sequence[int],
             pads: Sequence[int], dilations: Sequence[int], ceil_mode: bool,
             layout: Layout, arena: Arena | None = None) -> np.ndarray:
    """lowp.ops.pool.max_pool (O7) as a running maximum over strided slices.

    Channels-last 2-D uint8/int8 inputs run natively (`native_backend.max_pool_2d`, into a
    buffer of `arena` when given) when the extension is present.
    """
    k = len(kernel_shape)
    first = 2 if layout is Layout.CHANNELS_FIRST else 1
    spatial = x.shape[first:first + k]
    pads = window_reaching_pads(spatial, kernel_shape, strides, pads, dilations, ceil_mode)
    out = pool_output_shape(spatial, kernel_shape, strides, pads, dilations, ceil_mode)
    if 0 in out:                                 # no window: an empty output (O181)
        return np.empty((*x.shape[:first], *out, *x.shape[first + k:]), x.dtype)
    if any(p < 0 for p in pads[:k]):
        # a negative begin pad (auto_pad SAME, (O200)) drops the elements before the first
        # window; a negative end pad drops nothing (the windows read every tap inside x)
        x = crop_negative_pads(x, pads[:k], [0] * k, first)
        spatial = x.shape[first:first + k]
        pads = [max(p, 0) for p in pads[:k]] + list(pads[k:])
    if k == 2 and layout is Layout.CHANNELS_LAST and x.ndim == 4 and x.dtype in _BYTE_TYPES:
        native = _native_module()
        if native is not None:
            shape = (x.shape[0], *out, x.shape[-1])
            return native.max_pool_2d(x, kernel_shape=kernel_shape, strides=strides,
                                      pads=[*pads[:k], *(max(p, 0) for p in pads[k:])],
                                      dilations=dilations, out_hw=out,
                                      out=arena.get(shape, x.dtype) if arena else None)
    lowest = np.iinfo(x.dtype).min
    widths = [(0, 0)] * x.ndim
    for i in range(k):
        need = (out[i] - 1) * strides[i] + (kernel_shape[i] - 1) * dilations[i] + 1
        end = max(pads[k + i], need - spatial[i] - pads[i], 0)
        widths[first + i] = (pads[i], end)
    xp = np.pad(x, widths, constant_values=lowest) if any(map(any, widths)) else x
    y: np.ndarray | None = None
    for offs in itertools.product(*[range(kk) for kk in kernel_shape]):
        index = [slice(None)] * x.ndim
        for i, o in enumerate(offs):
            start = o * dilations[i]
            index[first + i] = slice(start, start + (out[i] - 1) * strides[i] + 1, strides[i])
        tap = xp[tuple(index)]
        y = tap.copy() if y is None else np.maximum(y, tap, out=y)
    assert y is not None
    return np.ascontiguousarray(y)


def quantize(x: np.ndarray, qp: QParams, *, arena: Arena | None = None,
             channels_last: bool = False) -> np.ndarray:
    """lowp.qparams.quantize (Q6); natively for contiguous float32 input and per-tensor
    8-bit qparams when the extension is present (into a buffer of `arena` when given).

    With `channels_last`, a channels-first (N, C, *spatial) input is returned channels-last.
    """
    if (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous
            and qp.is_per_tensor and qp.qtype.bits == 8):
        native = _native_module()
        if native is not None:
            dtype = qp.qtype.numpy_dtype
            kw = dict(scale=float(qp.scale), zero_point=int(qp.zero_point), qmin=qp.qmin,
                      qmax=qp.qmax, dtype=dtype)
            if channels_last:
                shape = (x.shape[0], *x.shape[2:], x.shape[1])
                return native.quantize_to_channels_last(  # type: ignore[no-any-return]
                    x, **kw, out=arena.get(shape, dtype) if arena else None)
            return native.quantize(x, **kw,  # type: ignore[no-any-return]
                                   out=arena.get(x.shape, dtype) if arena else None)
    if (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous
            and x.ndim >= 3 and qp.granularity == PerAxis(1) and qp.qtype.bits == 8
            and not channels_last and _native_module() is not None):
        return _quantize_per_channel(x, qp, arena)
    y = ref_quantize(x, qp)
    return np.ascontiguousarray(np.moveaxis(y, 1, -1)) if channels_last else y


def _quantize_per_channel(x: np.ndarray, qp: QParams, arena: Arena | None) -> np.ndarray:
    """(Q6) with one scale and zero point per channel of a channels-first tensor of rank 3
    or more: the native per-tensor loop on each (sample, channel) plane, which is
    contiguous (of a rank-2 tensor x[n, c] is one value, a copy, not a plane to write)."""
    from . import native_backend

    dtype = qp.qtype.numpy_dtype
    y = arena.get(x.shape, dtype) if arena else np.empty(x.shape, dtype)
    channels = x.shape[1]
    if np.size(qp.scale) != channels:
        return ref_quantize(x, qp)        # its error names the mismatch
    for n in range(x.shape[0]):
        for c in range(channels):
            native_backend.quantize(x[n, c], scale=float(qp.scale[c]),
                                    zero_point=int(qp.zero_point[c]), qmin=qp.qmin,
                                    qmax=qp.qmax, dtype=dtype, out=y[n, c])
    return y


_BYTE_TYPES = (np.dtype(np.uint8), np.dtype(np.int8))


def _native_module() -> ModuleType | None:
    """lowp.runtime.native_backend, or None when the extension is missing."""
    try:
        from . import native_backend
    except ImportError:
        return None
    return native_backend


def make_add(a_dtype: np.dtype, a_scale: float, a_zero_point: int, b_dtype: np.dtype,
             b_scale: float, b_zero_point: int, y_scale: float, y_zero_point: int,
             qmin: int, qmax: int, out_dtype: np.dtype) -> Callable[..., np.ndarray]:
    """lowp.ops.elementwise.add (O10a): the native loop for same-shape 8-bit operands, the
    native broadcasting loop (`native_backend.qbinary`, where the path runs it as vectors)
    or else a table of every value pair for other 8-bit operands; the reference for the
    rest (16-bit)."""
    ma = requant_scale(a_scale, 1.0, y_scale)
    mb = requant_scale(b_scale, 1.0, y_scale)
    with np.errstate(all="ignore"):
        constants = {"": add_constant(ma, a_zero_point, mb, b_zero_point, y_zero_point),
                     "a": add_constant(mb, b_zero_point, ma, a_zero_point, y_zero_point)}
    finite = all(math.isfinite(float(v)) for v in (ma, mb, *constants.values()))
    native = _native_add(a_dtype=a_dtype, ma=ma, a_zero_point=a_zero_point, b_dtype=b_dtype,
                         mb=mb, b_zero_point=b_zero_point, y_zero_point=y_zero_point,
                         qmin=qmin, qmax=qmax, out_dtype=out_dtype)
    params = dict(a_scale=a_scale, a_zero_point=a_zero_point, b_scale=b_scale,
                  b_zero_point=b_zero_point, y_scale=y_scale, y_zero_point=y_zero_point,
                  qmin=qmin, qmax=qmax, out_dtype=out_dtype)

    tables: dict[str, np.ndarray] = {}

    def add(a: np.ndarray, b: np.ndarray, arena: Arena | None = None) -> np.ndarray:
        if (native is not None and a.shape == b.shape and a.dtype == native.a_dtype
                and b.dtype == native.b_dtype):
            return native(a, b, out=arena.get(a.shape, native.out_dtype) if arena else None)
        if _pair_tabulable(a, b, out_dtype):
            kind = add_span_kind(a.shape, b.shape)
            module = _native_module() if finite else None
            if module is not None and module.qbinary_vectorized():
                # the operand (O10a) treats as a scalar goes second, as ONNX Runtime's
                # kernel takes it
                x, s, mx, ms = (b, a, mb, ma) if kind == "a" else (a, b, ma, mb)
                y = _qbinary(module, x, s, arena, out_dtype, mul=False, ma=mx, mb=ms,
                             c=constants["a" if kind == "a" else ""], za=0, zb=0, qmin=qmin,
                             qmax=qmax)
                if y is not None:
                    return y
            if kind not in tables:
                tables[kind] = pair_table(
                    lambda ga, gb: reference_add(ga, gb, span_kind=kind, **params),  # type: ignore[arg-type]
                    a.dtype, b.dtype)
            return pair_lookup(a, b, tables[kind], arena)
        return reference_add(a, b, **params)  # type: ignore[arg-type]

    return add


def make_mul(mul: Callable[..., np.ndarray], out_dtype: np.dtype, *,
             float_mul: FloatMul | None = None) -> Callable[..., np.ndarray]:
    """`mul(a, b)`, a reference element-wise operator of two 8/16-bit operands, through a
    table of every value pair when both are 8-bit (exact by construction). With `float_mul`,
    the parameters of `mul` when it is the float32-mode quantized Mul (O11a), 8-bit operands
    run the native loop (`native_backend.qbinary`) instead of the table where the path runs
    it as vectors."""
    tables: dict[tuple[str, str], np.ndarray] = {}
    native = None
    if float_mul is not None and all(np.isfinite((float_mul.multiplier,
                                                   float_mul.y_zero_point))):
        native = _native_module()

    def run(a: np.ndarray, b: np.ndarray, arena: Arena | None = None) -> np.ndarray:
        if not _pair_tabulable(a, b, out_dtype):
            return mul(a, b)
        if native is not None and float_mul is not None and native.qbinary_vectorized():
            y = _qbinary(native, a, b, arena, out_dtype, mul=True, ma=float_mul.multiplier,
                         mb=1.0, c=float(np.float32(float_mul.y_zero_point)),
                         za=float_mul.a_zero_point, zb=float_mul.b_zero_point,
                         qmin=float_mul.qmin, qmax=float_mul.qmax)
            if y is not None:
                return y
        key = (a.dtype.str, b.dtype.str)
        if key not in tables:
            tables[key] = pair_table(mul, a.dtype, b.dtype)
        return pair_lookup(a, b, tables[key], arena)

    return run


def _qbinary(module: ModuleType, a: np.ndarray, b: np.ndarray, arena: Arena | None,
             out_dtype: np.dtype, **params: object) -> np.ndarray | None:
    """`native_backend.qbinary(a, b, **params)` into the arena's buffer of the broadcast
    shape; None where it does not run (numpy's broadcast does not merge into four axes)."""
    out = arena.get(np.broadcast_shapes(a.shape, b.shape), np.dtype(out_dtype)) \
        if arena else None
    return module.qbinary(a, b, out_dtype=out_dtype, out=out,  # type: ignore[no-any-return]
                          **params)


@dataclass(frozen=True)
class FloatMul:
    """The parameters of a float32-mode quantized Mul (O11a): zero points, the float32
    multiplier ``requant_scale(s_a, s_b, s_y)``, the output zero point and clamp bounds."""

    a_zero_point: int
    b_zero_point: int
    multiplier: float
    y_zero_point: int
    qmin: int
    qmax: int


def _pair_tabulable(a: np.ndarray, b: np.ndarray, out_dtype: np.dtype) -> bool:
    # the table (65,536 entries, about a millisecond to build on the first run) is one
    # native lookup per run, and replayable; the reference is a dozen numpy calls (some
    # 80 us on a tiny operand), so it pays off within a few dozen runs at any size
    return (a.dtype.itemsize == b.dtype.itemsize == np.dtype(out_dtype).itemsize == 1
            and a.dtype.kind in "iu" and b.dtype.kind in "iu")


def pair_table(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], a_dtype: np.dtype,
               b_dtype: np.dtype) -> np.ndarray:
    """`fn` evaluated on every pair of 8-bit values: entry (a_bits << 8) | b_bits, where
    *_bits is the value's unsigned bit pattern.

    `fn` must be element-wise (each output element a function of its two input elements
    alone), so the table holds exactly what `fn` computes for each pair.
    """
    codes = np.arange(256, dtype=np.uint8)
    grid_a = codes.view(a_dtype).reshape(256, 1)
    grid_b = codes.view(b_dtype).reshape(1, 256)
    return np.ascontiguousarray(np.broadcast_to(fn(grid_a, grid_b), (256, 256))).reshape(-1)


def pair_lookup(a: np.ndarray, b: np.ndarray, table: np.ndarray,
                arena: Arena | None = None) -> np.ndarray:
    """table[(a_bits << 8) | b_bits] with numpy broadcasting of `a` and `b`: natively for
    8-bit tables when the extension is present (into a buffer of `arena` when given)."""
    native = _native_module()
    if native is not None and table.dtype in _BYTE_TYPES:
        shape = np.broadcast_shapes(a.shape, b.shape)
        y = native.lookup_pair(a, b, table,
                               out=arena.get(shape, table.dtype) if arena else None)
        if y is not None:
            return y  # type: ignore[no-any-return]
    index = np.left_shift(a.view(np.uint8), 8, dtype=np.uint16)
    index = np.bitwise_or(index, b.view(np.uint8), dtype=np.uint16)
    out = arena.get(index.shape, table.dtype) if arena is not None else None
    return np.take(table, index, out=out)


def _native_add(**kwargs: object) -> NativeAdd | None:
    """The native same-shape Add (lowp.runtime.native_backend.NativeAdd), or None when the
    extension is missing or the types are outside what it covers."""
    try:
        from .native_backend import NativeAdd
    except ImportError:
        return None
    try:
        return NativeAdd(**kwargs)  # type: ignore[arg-type]
    except ValueError:
        return None


def global_average_pool(x: np.ndarray, *, x_zero_point: int, x_scale: float, y_scale: float,
                        y_zero_point: int, qmin: int, qmax: int, layout: Layout,
                        out_dtype: np.dtype, mode: RequantMode = RequantMode.FLOAT32,
                        arena: Arena | None = None) -> np.ndarray:
    """lowp.ops.pool.global_average_pool ((O8) with (O59b) or (O9)), in either layout:
    natively for 8-bit data when the extension is present (into a buffer of `arena` when
    given), else the sum taken in place."""
    spatial = tuple(range(2, x.ndim)) if layout is Layout.CHANNELS_FIRST else tuple(
        range(1, x.ndim - 1))
    count = int(np.prod([x.shape[a] for a in spatial]))
    m = global_average_scale(x_scale, y_scale, count) if mode is RequantMode.FLOAT32 else \
        (requant_scale(x_scale, 1.0, y_scale) / np.float32(max(count, 1))).astype(np.float32)
    native = _native_module()
    if native is not None and x.dtype in _BYTE_TYPES and np.dtype(out_dtype) in _BYTE_TYPES \
            and x.ndim >= 3 and np.isfinite(m) and m > 0:
        requant = Requant(m, int(y_zero_point), qmin, qmax, mode, out_dtype)
        cl = layout is Layout.CHANNELS_LAST
        n, c = x.shape[0], x.shape[-1] if cl else x.shape[1]
        shape = (n, *(1,) * (x.ndim - 2), c) if cl else (n, c, *(1,) * (x.ndim - 2))
        return native.global_average_pool(  # type: ignore[no-any-return]
            x, channels_last=cl, x_zero_point=x_zero_point, requant=requant,
            out=arena.get(shape, np.dtype(out_dtype)) if arena else None)
    acc = x.sum(axis=spatial, keepdims=True, dtype=np.int64) - count * int(x_zero_point)
    y = requantize(acc.astype(np.int32), m, y_zero_point, qmin, qmax, mode)
    return y.astype(out_dtype)


def make_average_pool(geometry: dict[str, object], params: dict[str, object]
                      ) -> Callable[..., np.ndarray]:
    """lowp.ops.pool.average_pool with this `geometry` (kernel_shape, strides, pads,
    dilations, count_include_pad, ceil_mode) and these quantization `params`: natively for
    2-D 8-bit data in float32 mode ((O8a); the window counts made once per input size),
    else the reference. ``run(x, layout, arena=None)``."""
    kernel = [int(v) for v in geometry["kernel_shape"]]  # type: ignore[attr-defined]
    strides = [int(v) for v in geometry["strides"]]  # type: ignore[attr-defined]
    pads = [int(v) for v in geometry["pads"]]  # type: ignore[attr-defined]
    dilations = [int(v) for v in geometry["dilations"]]  # type: ignore[attr-defined]
    counts: dict[tuple[int, ...], tuple[list[int], np.ndarray, list[int]]] = {}

    def run(x: np.ndarray, layout: Layout, arena: Arena | None = None) -> np.ndarray:
        native = _native_module()
        if (native is None or len(kernel) != 2 or x.ndim != 4 or x.dtype not in _BYTE_TYPES
                or params["mode"] is not RequantMode.FLOAT32):
            return reference_average_pool(x, layout=layout, **geometry, **params)  # type: ignore[arg-type]
        cl = layout is Layout.CHANNELS_LAST
        spatial = tuple(x.shape[1:3] if cl else x.shape[2:])
        made = counts.get(spatial)
        if made is None:
            ceil_mode = bool(geometry["ceil_mode"])
            padded = window_reaching_pads(spatial, kernel, strides, pads, dilations, ceil_mode)
            hw = pool_output_shape(spatial, kernel, strides, padded, dilations, ceil_mode)
            taps = window_counts(spatial, kernel, strides, padded, dilations, hw,
                                 bool(geometry["count_include_pad"]))
            made = counts[spatial] = ([int(v) for v in hw], np.ascontiguousarray(
                np.maximum(taps, 1).astype(np.float32).reshape(tuple(hw))), padded)
        out_hw, count, padded = made
        shape = (x.shape[0], *out_hw, x.shape[3]) if cl else (*x.shape[:2], *out_hw)
        return native.average_pool_2d(  # type: ignore[no-any-return]
            x, kernel_shape=kernel, strides=strides, pads=padded, dilations=dilations,
            out_hw=out_hw, count=count, channels_last=cl,
            x_zero_point=int(params["x_zero_point"]), x_scale=float(params["x_scale"]),  # type: ignore[call-overload, arg-type]
            y_scale=float(params["y_scale"]), y_zero_point=int(params["y_zero_point"]),  # type: ignore[call-overload, arg-type]
            qmin=int(params["qmin"]), qmax=int(params["qmax"]),  # type: ignore[call-overload]
            out=arena.get(shape, x.dtype) if arena else None)

    return run


def make_concat(qparams_in: Sequence[QParams], y_qparams: QParams,
                mode: RequantMode = RequantMode.FLOAT32) -> Callable[..., np.ndarray]:
    """lowp.ops.concat.concat (O12a)/(O12): inputs already in the output's qparams (and
    full clamp range) are copied as they are, 8-bit inputs go through a 256-entry table
    of the reference's own results (the native lookup), the rest through the reference;
    the parts are concatenated into a buffer of `arena` when given."""
    out_dtype = np.dtype(y_qparams.qtype.numpy_dtype)
    full = (y_qparams.qmin, y_qparams.qmax) == (int(np.iinfo(out_dtype).min),
                                                int(np.iinfo(out_dtype).max))
    plans: list[Callable[..., np.ndarray]] = []
    for qp in qparams_in:
        same = (float(qp.scale) == float(y_qparams.scale)
                and int(qp.zero_point) == int(y_qparams.zero_point))
        table = None
        if not (same and full) and qp.qtype.bits == 8:
            codes = np.arange(256, dtype=np.uint8).view(qp.qtype.numpy_dtype)
            table = rescale(codes, qp, y_qparams, mode)
        plans.append(_concat_part(qp, y_qparams, mode, same and full, table))

    part_arenas = [Arena() for _ in qparams_in]
    native = _native_module()

    def concat(xs: Sequence[np.ndarray], axis: int, arena: Arena | None = None) -> np.ndarray:
        if arena is not None and native is not None and out_dtype.itemsize == 1 and all(
                x.dtype.itemsize == 1 and x.ndim == xs[0].ndim for x in xs):
            # parts looked up into buffers of their own, then copied natively into their
            # block of every output row: all native calls on the same buffers run after run
            for a in part_arenas:
                a.reuse = arena.reuse
            parts = [plan(x, a) for plan, x, a in zip(plans, xs, part_arenas, strict=True)]
            shape = list(parts[0].shape)
            shape[axis] = sum(p.shape[axis] for p in parts)
            if any(p.shape[:axis] != parts[0].shape[:axis]
                   or p.shape[axis + 1:] != parts[0].shape[axis + 1:] for p in parts):
                np.concatenate(parts, axis=axis)    # raises numpy's error on the shapes
            out = arena.get(tuple(shape), out_dtype)
            rows = int(np.prod(shape[:axis], dtype=np.int64))
            row_bytes = int(np.prod(shape[axis:], dtype=np.int64))
            offset = 0
            for p in parts:
                src = np.ascontiguousarray(p)
                width = int(np.prod(p.shape[axis:], dtype=np.int64))
                native.copy_block(src, out, rows, width, row_bytes, offset)
                offset += width
            return out
        parts = [plan(x) for plan, x in zip(plans, xs, strict=True)]
        shape = list(parts[0].shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        into = arena.get(tuple(shape), out_dtype) if arena else None
        return np.concatenate(parts, axis=axis, out=into)

    return concat


def _concat_part(qp: QParams, y_qparams: QParams, mode: RequantMode, as_is: bool,
                 table: np.ndarray | None) -> Callable[..., np.ndarray]:
    dtype = np.dtype(y_qparams.qtype.numpy_dtype)
    x_dtype = np.dtype(qp.qtype.numpy_dtype)

    def part(x: np.ndarray, arena: Arena | None = None) -> np.ndarray:
        if as_is and x.dtype == dtype:
            return x
        if table is not None and x.dtype == x_dtype:
            return lookup(x, table, arena)
        return rescale(x, qp, y_qparams, mode)

    return part


def lookup(x: np.ndarray, table: np.ndarray, arena: Arena | None = None) -> np.ndarray:
    """``table[c, x as unsigned]`` (O13) with `table` (256,) or (C, 256) over x's last axis:
    natively for 8-bit data when the extension is present (into a buffer of `arena` when
    given), else by numpy indexing."""
    unsigned = np.dtype(f"u{x.dtype.itemsize}")
    native = _native_module()
    if (native is not None and x.dtype in _BYTE_TYPES and table.dtype in _BYTE_TYPES
            and (table.ndim == 1 or (x.ndim and x.shape[-1] == table.shape[0]))):
        return native.lookup(x, table,  # type: ignore[no-any-return]
                             out=arena.get(x.shape, table.dtype) if arena else None)
    codes = x.view(unsigned)
    if table.ndim == 1:
        return table[codes]
    return table[np.arange(table.shape[0]), codes]


# Set while a subgraph body runs with its values copied in and out (a replayed Loop body,
# lowp.runtime.control): no step then reads a buffer a later call writes into, so the
# subgraph's arenas reuse their buffers too.
_SUBGRAPH_REUSE = contextvars.ContextVar("lowp_subgraph_reuse", default=False)


@contextlib.contextmanager
def subgraph_buffers_reused(on: bool = True) -> Iterator[None]:
    """Within the block, arenas made with `reuse` off reuse their buffers as well (or, with
    `on` false, do not: a subgraph run the plain way inside a replayed one)."""
    token = _SUBGRAPH_REUSE.set(on)
    try:
        yield
    finally:
        _SUBGRAPH_REUSE.reset(token)


class Arena:
    """The reusable output buffer of one step (lowp.runtime.backends): the same array run
    after run while the shape and dtype stay the same; a new array on every call when
    `reuse` is off (subgraph bodies, which may read their own previous output), except
    inside `subgraph_buffers_reused`, where the same array serves those calls only."""

    __slots__ = ("reuse", "_buffer", "_subgraph_buffer")

    def __init__(self, reuse: bool = True) -> None:
        self.reuse = reuse
        self._buffer: np.ndarray | None = None
        self._subgraph_buffer: np.ndarray | None = None

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        if not self.reuse and _SUBGRAPH_REUSE.get():
            b = self._subgraph_buffer
            if b is None or b.shape != shape or b.dtype != dtype:
                b = self._subgraph_buffer = np.empty(shape, dtype)
            return b
        b = self._buffer
        if b is not None and b.shape == shape and b.dtype == dtype:
            return b
        b = np.empty(shape, dtype)
        if self.reuse:
            self._buffer = b
        return b
