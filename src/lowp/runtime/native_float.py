"""Native float32 kernels for the float glue between quantized groups (lowp._native).

The numpy operators of lowp.runtime.float_ops / float_nn stay the reference: each of them
asks this module first and computes in numpy when it gets None back, which happens for any
dtype but float32, for empty arrays (`MIN_SIZE`), while `disabled()`, and when the extension
is missing or predates these kernels. The kernels (native/float_*.cpp, docs/native.md) give
the reference's values: bit for bit for Sigmoid, Tanh, HardSigmoid, HardSwish, Elu, MaxPool,
AveragePool, GlobalAveragePool and Exp, and within the bounds stated there for Erf and Gelu
(float64 inside, rounded once).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import mlas_sgemm, ort_math
from ..errors import NodeError
from . import prepacked
from .moves import NO_FILL, take_call
from .prepacked import PackCache
from .switch import Switch
from .tape import call

_native: Any = None   # the extension, bound at the first use (see _extension)
_enabled = Switch()
_threads = 1
_outputs = threading.local()    # .alloc: where results go instead of new arrays (see outputs)

# operator -> the kernel's FloatUnaryOp code (native/float_kernels.h)
UNARY_CODES = {"Erf": 0, "Gelu": 1, "GeluTanh": 2, "Sigmoid": 3, "Tanh": 4, "HardSigmoid": 5,
               "HardSwish": 6, "LeakyRelu": 7, "FastGelu": 8, "Exp": 9, "Neg": 10, "Abs": 11,
               "GeluKeepNaN": 13, "Relu": 14}

# C library function -> the kernel's LibmFunction code (native/float_libm.h)
LIBM_CODES = {"logf": 0, "log1pf": 1, "sinf": 2, "cosf": 3, "tanf": 4, "asinf": 5, "acosf": 6,
              "sinhf": 7, "coshf": 8, "asinhf": 9, "acoshf": 10, "atanhf": 11}

# Smallest element count (input elements for pooling) for the native call: it beats numpy
# from a single element on for every operator here (bench/float_glue.py thresholds: 2.7x for
# HardSigmoid, 8x for MaxPool, 10x for Erf at one element), so only empty arrays stay numpy.
MIN_SIZE = 1


#: Run the body with the numpy operators (the reference), e.g. to compare or time.
disabled = _enabled.off


def set_threads(threads: int) -> None:
    """Threads of the native float kernels (0 = all hardware threads; default 1)."""
    global _threads
    _threads = int(threads)


def get_threads() -> int:
    """Threads of the native float kernels (and of the recurrence, lowp.runtime.native_rnn)."""
    return _threads


def swap_threads(n: int) -> int:
    """Set the float kernels' thread count to `n`; returns the previous one (for restoring:
    the cheap form of `threads` that Session.run uses on every run)."""
    global _threads
    previous, _threads = _threads, int(n)
    return previous


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the body with `n` threads for the float kernels (a Session's own setting)."""
    global _threads
    previous, _threads = _threads, int(n)
    try:
        yield
    finally:
        _threads = previous


@contextlib.contextmanager
def softmax_subnormals(path: str) -> Iterator[str]:
    """Run the body with the softmax's rows that reach more than 60 below their maximum on
    `path`: "avoid" (no subnormal operand or result: Intel's microcode assists), "plain" or
    "measure" (the faster of the two on this CPU, timed once: the default). Both give the
    same bits (docs/native.md); yields the path the rows take, then restores the setting
    to "measure". Process-wide (the extension's setting), for tests and benchmarks."""
    ext = _has(_extension(), "float_softmax_subnormals")
    if ext is None:
        yield "none"
        return
    try:
        yield str(ext.float_softmax_subnormals(path))
    finally:
        ext.float_softmax_subnormals("measure")


@contextlib.contextmanager
def outputs(alloc: Callable[..., np.ndarray]) -> Iterator[None]:
    """Run the body (in this thread) with each kernel's result written into
    ``alloc(shape)`` (float32; ``alloc(shape, dtype)`` for others) rather than a new
    array: lowp.runtime.replay gives buffers a feed signature owns, so that the recorded
    calls (every call goes through lowp.runtime.tape.call) can be repeated. The operators
    return these results as the kernels wrote them."""
    previous = getattr(_outputs, "alloc", None)
    _outputs.alloc = alloc
    try:
        yield
    finally:
        _outputs.alloc = previous


def _empty(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    alloc = getattr(_outputs, "alloc", None)
    if alloc is None:
        return np.empty(shape, dtype)
    return alloc(shape) if dtype is np.float32 else alloc(shape, dtype)


def buffer(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """An array (float32 by default) for a result that native calls write (a buffer the
    signature owns while lowp.runtime.replay records, so that the calls repeat)."""
    return _empty(shape, dtype)


_BN_CACHE: dict[tuple[int, ...], tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray, bool]] = {}


def batch_norm(x: np.ndarray, params: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
               epsilon: float,
               fold: Callable[[], tuple[np.ndarray, np.ndarray]],
               channels_last: bool = False, variant: bool = False) -> np.ndarray | None:
    """Inference BatchNormalization of float32 `x` (N, C, ...) as ONNX Runtime orders it:
    x * scale + offset, two float32 roundings (native float_binary Mul, then Add); the
    per-channel (scale, offset) come from `fold()`, computed once per set of parameter
    arrays (the same constant objects on every run) and `variant` (the fold's form);
    `channels_last`: x is (N, ..., C).
    None when it does not run natively (also for parameters that fold to a NaN)."""
    from . import program

    if _usable("BatchNormalization", x) is None or x.ndim < 2 or not x.flags.c_contiguous:
        return None
    key = (*(id(p) for p in params), hash(float(epsilon)), variant)
    kept = _BN_CACHE.get(key)
    if kept is None or any(a is not b for a, b in zip(kept[0], params, strict=True)):
        if len(_BN_CACHE) > 256:
            _BN_CACHE.clear()
        scale, offset = fold()
        # a NaN scale or offset meets x's NaNs in an order the Mul and Add kernels do not
        # keep (ONNX Runtime's kernel hands on x's, then x * scale's, docs/operators.md
        # (O221)): such parameters run in the reference
        kept = _BN_CACHE[key] = (params, np.ascontiguousarray(scale, np.float32).reshape(-1),
                                 np.ascontiguousarray(offset, np.float32).reshape(-1),
                                 bool(np.isnan(scale).any() or np.isnan(offset).any()))
    axis = x.ndim - 1 if channels_last else 1
    if kept[1].size != x.shape[axis] or kept[2].size != x.shape[axis] or kept[3]:
        return None
    shape = (1,) * (x.ndim - 1) + (-1,) if channels_last else (1, -1) + (1,) * (x.ndim - 2)
    scale, offset = kept[1].reshape(shape), kept[2].reshape(shape)
    product = program.FLOAT_KERNELS["Mul"]([x, scale], _empty(x.shape), _threads)
    if product is None:
        return None
    (fn, args), tmp = product
    total = program.FLOAT_KERNELS["Add"]([tmp, offset], _empty(x.shape), _threads)
    if total is None:
        return None
    call(fn, *args)
    (fn, args), y = total
    call(fn, *args)
    return y


def _extension() -> Any:
    """lowp._native as lowp.runtime.native_backend holds it, or None without the extension
    or with a build older than these kernels. Looked up at the first use rather than at
    import, so that a substituted build (tools/sanitize.sh) is the one called."""
    global _native
    if _native is None:
        try:
            from . import native_backend
        except ImportError:
            return None
        _native = native_backend._native
    return _native if hasattr(_native, "float_unary") else None


def _has(ext: Any, name: str) -> Any:
    """`ext` when it has the binding `name` (builds differ in what they have), else None."""
    return ext if ext is not None and hasattr(ext, name) else None


def binding(name: str) -> Any:
    """The extension when it has the binding `name` and the native kernels are on (not
    `disabled()`), else None: for the fronts of other modules (lowp.runtime.native_trees)."""
    return _has(_extension(), name) if _enabled else None


def kernels() -> str:
    """Name of the float kernels of the active instruction-set path ('none' without them)."""
    ext = _extension()
    return "none" if ext is None else str(ext.float_kernels())


def _usable(op: str, x: np.ndarray) -> Any:
    """The extension when `op` on `x` runs natively, else None."""
    if not _enabled or x.dtype != np.float32 or x.size < MIN_SIZE:
        return None
    return _extension()


def unary(op: str, x: np.ndarray, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray | None:
    """`op` (a key of UNARY_CODES; alpha, beta: HardSigmoid's; alpha: LeakyRelu's) on
    float32 `x`, or None."""
    ext = _usable(op, x)
    if ext is None:
        return None
    src = np.ascontiguousarray(x).reshape(-1)
    y = _empty(x.shape)
    call(ext.float_unary, UNARY_CODES[op], src, y.reshape(-1), float(alpha), float(beta),
         _threads)
    return y


def clamp_in_place(y: np.ndarray, low: float | None, high: float | None) -> bool:
    """y = y < low ? low : y, then high < y ? high : y (either bound None: off; ONNX
    Runtime's Clip and MLAS's Relu / Clip activations: -0 and NaN stay), in place on
    contiguous float32 `y` (so a result computed into a recorded buffer stays there:
    FusedConv's Relu or Clip); False (y untouched) where it does not run natively."""
    ext = _usable("Clip", y)
    if ext is None or not y.flags.c_contiguous or not y.flags.writeable:
        return False
    flat = y.reshape(-1)
    call(ext.float_clamp, flat, flat, 0.0 if low is None else float(np.float32(low)),
         0.0 if high is None else float(np.float32(high)), low is not None, high is not None,
         _threads)
    return True


def clamp(x: np.ndarray, low: float, high: float) -> np.ndarray | None:
    """Clip of float32 `x` to one-value bounds as float_ops.Clip computes it, into a new
    array; None where it does not run natively."""
    ext = _usable("Clip", x)
    if ext is None or x.size == 0:
        return None
    y = _empty(x.shape)
    call(ext.float_clamp, np.ascontiguousarray(x).reshape(-1), y.reshape(-1), float(low),
         float(high), True, True, _threads)
    return y


def concat(arrays: Sequence[np.ndarray], axis: int) -> np.ndarray | None:
    """np.concatenate of contiguous arrays of one dtype along `axis` (normalized) as native
    block copies into a buffer (`_empty`: the signature's while recording), or None."""
    ext = _extension()
    first = arrays[0]
    if not _enabled or ext is None or first.dtype.kind not in "biuf":
        return None
    if any(type(a) is not np.ndarray or a.dtype != first.dtype or a.ndim != first.ndim
           or not a.flags.c_contiguous or a.shape[:axis] != first.shape[:axis]
           or a.shape[axis + 1:] != first.shape[axis + 1:] for a in arrays):
        return None
    shape = list(first.shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    y = _empty(tuple(shape), first.dtype.type)
    if y.dtype != first.dtype:
        return None
    if y.size == 0:
        return y
    rows = int(np.prod(shape[:axis], dtype=np.int64))
    row_bytes = int(np.prod(shape[axis:], dtype=np.int64)) * first.itemsize
    flat = y.reshape(-1).view(np.uint8)
    if 2 <= len(arrays) <= 4 and all(a.size * a.itemsize == 4 * rows for a in arrays):
        # parts of one 4-byte value a row: interleaved in one pass over y (the same bytes)
        call(ext.interleave_rows, [a.reshape(-1).view(np.uint8) for a in arrays], flat, rows,
             4)
        return y
    offset = 0
    for a in arrays:
        width = int(np.prod(a.shape[axis:], dtype=np.int64)) * first.itemsize
        if a.size:
            call(ext.copy_block, a.reshape(-1).view(np.uint8), flat, rows, width, row_bytes,
                 offset, 1)
        offset += width
    return y


def gather_error(status: np.ndarray, n: int) -> NodeError:
    """The error of an index a gather_rows call found outside [-n, n)."""
    return NodeError(f"indices element {int(status[1])} out of range [-{n}, {n - 1}] (the "
                     f"gathered axis has {n} entries)")


def gather(x: np.ndarray, indices: np.ndarray, axis: int) -> np.ndarray | None:
    """Gather of contiguous `x` at int64 or int32 `indices` (read at run time, e.g. token
    ids, or a Loop's int32 iteration counter) along `axis` (normalized) as native row
    copies into a buffer (`_empty`), or None. An index
    outside [-n, n) raises NodeError here; in a Program the call's status array (the last
    buffer it was given) says so after the run (lowp.runtime.replay checks it)."""
    ext = _extension()
    if (not _enabled or ext is None or x.dtype.kind not in "biuf" or not x.flags.c_contiguous
            or type(indices) is not np.ndarray or indices.dtype not in (np.int64, np.int32)
            or not indices.flags.c_contiguous or x.size == 0):
        return None
    n = int(x.shape[axis])
    y = _empty(x.shape[:axis] + indices.shape + x.shape[axis + 1:], x.dtype.type)
    status = _empty((2,), np.int64)
    if y.dtype != x.dtype or status.dtype != np.int64:
        return None
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    row = int(np.prod(x.shape[axis + 1:], dtype=np.int64)) * x.itemsize
    call(ext.gather_rows, x.reshape(-1).view(np.uint8), indices.reshape(-1),
         y.reshape(-1).view(np.uint8), outer, n, row, status, _threads)
    if status[0]:
        raise gather_error(status, n)
    return y


#: dtypes cast_to_float converts, by its code
CAST_CODES = {np.dtype(np.int64): 0, np.dtype(np.int32): 1, np.dtype(np.uint8): 2,
              np.dtype(np.int8): 3, np.dtype(np.bool_): 4}


def cast_to_float(x: np.ndarray) -> np.ndarray | None:
    """float32 of contiguous integer or bool `x` (numpy's astype conversion) into a buffer
    (`_empty`), or None."""
    ext = _extension()
    code = CAST_CODES.get(x.dtype)
    if not _enabled or ext is None or code is None or not x.flags.c_contiguous or x.size == 0:
        return None
    y = _empty(x.shape)
    src = x.reshape(-1)
    call(ext.cast_to_float, src.view(np.uint8) if x.dtype == np.bool_ else src, y.reshape(-1),
         code, _threads)
    return y


def cast_half(x: np.ndarray, dtype: np.dtype) -> np.ndarray | None:
    """x.astype(dtype) between float32 and float16 as ONNX Runtime's Cast converts on x86
    (F16C: round to nearest even, overflow to inf, a NaN quiet with its sign and top payload
    bits; numpy keeps a signalling NaN's payload as it is) into a buffer (`_empty`), or None."""
    ext = _has(_extension(), "cast_half")
    pair = (x.dtype, np.dtype(dtype))
    if (not _enabled or ext is None or pair not in _HALF_PAIRS or not ext.has_f16c()
            or not x.flags.c_contiguous or x.size == 0):
        return None
    to_half = pair[1] == np.float16
    y = _empty(x.shape, np.float16 if to_half else np.float32)
    if y.dtype != dtype:
        return None
    src, dst = x.reshape(-1), y.reshape(-1)
    call(ext.cast_half, src.view(np.uint16) if not to_half else src,
         dst.view(np.uint16) if to_half else dst, to_half, _threads)
    return y


def matmul_nbits(x: np.ndarray, packed: Any, bias: np.ndarray | None,
                 out: np.ndarray | None = None) -> np.ndarray | None:
    """MatMulNBits of float32 `x` (..., K) and `packed` (lowp.ops.matmul_nbits.PackedNBits,
    blocks of 16, 32, 64 or 128) plus `bias` (N float32 or None), as packed.run computes it,
    bit for bit (native/matmul_nbits.h), into `out` ((..., N) float32) or a buffer
    (`_empty`); or None."""
    name = "matmul_nbits" if packed.block == 32 else "matmul_nbits_lanes"
    ext = _has(_extension(), name)
    k = x.shape[-1] if x.ndim else 0
    if (not _enabled or ext is None or x.dtype != np.float32 or not x.flags.c_contiguous
            or k < 1 or -(-k // packed.block) != packed.blocks
            or (bias is not None and (bias.dtype != np.float32 or bias.shape != (packed.n,)))):
        return None
    shape = (*x.shape[:-1], packed.n)
    y = _empty(shape) if out is None else out
    if y.shape != shape or y.dtype != np.float32 or not y.flags.c_contiguous:
        return None
    m = x.size // k
    b = packed.scale.reshape(-1) if bias is None else bias
    if packed.block != 32:
        lay = packed.layout
        call(ext.matmul_nbits_lanes, x.reshape(-1), packed.scale.reshape(-1),
             packed.bblk.reshape(-1), packed.w_lanes.reshape(-1), packed.w_rem.reshape(-1),
             lay.perm_i32, lay.lane_block_i32, packed.wp_lanes.reshape(-1),
             packed.wp_rem.reshape(-1), packed.scale_panels.reshape(-1),
             packed.bblk_panels.reshape(-1), b, bias is not None, y.reshape(-1), m, k,
             packed.n, packed.block, lay.group, lay.rem_lanes, packed.pair_fold16, _threads)
        return y
    call(ext.matmul_nbits, x.reshape(-1), packed.w_u8.reshape(-1), packed.scale.reshape(-1),
         packed.bblk.reshape(-1), packed.w_panels.reshape(-1),
         packed.scale_panels.reshape(-1), packed.bblk_panels.reshape(-1), b,
         bias is not None, y.reshape(-1), m, k, packed.n, _threads)
    return y


_HALF_PAIRS = {(np.dtype(np.float32), np.dtype(np.float16)),
               (np.dtype(np.float16), np.dtype(np.float32))}


# integer and bool types of cast_integer, one_hot and arg_max (native/bindings.cpp)
INT_CODES = {np.dtype(np.int64): 0, np.dtype(np.int32): 1, np.dtype(np.uint8): 2,
             np.dtype(np.int8): 3, np.dtype(np.bool_): 4}


def cast_integer(x: np.ndarray, dtype: np.dtype) -> np.ndarray | None:
    """x.astype(dtype) between int64, int32, uint8, int8 and bool (numpy's conversion: to
    bool x != 0, else modulo 2^bits) into a buffer (`_empty`), or None: the small integer
    steps of a Loop body (a token's Cast between int32 and int64, a condition's)."""
    ext = _has(_extension(), "cast_integer")
    xc, yc = INT_CODES.get(x.dtype), INT_CODES.get(np.dtype(dtype))
    if (not _enabled or ext is None or xc is None or yc is None or xc == yc
            or not x.flags.c_contiguous or x.size == 0):
        return None
    y = _empty(x.shape, np.dtype(dtype).type)
    if y.dtype != dtype:
        return None
    # (one-byte types as uint8: the bytes are what the kernel reads and writes)
    src, dst = x.reshape(-1), y.reshape(-1)
    call(ext.cast_integer, src.view(np.uint8) if src.itemsize == 1 else src,
         dst.view(np.uint8) if dst.itemsize == 1 else dst, xc, yc)
    return y


def one_hot(indices: np.ndarray, depth: int, values: np.ndarray, axis: int
            ) -> np.ndarray | None:
    """float_ops.OneHot of integer `indices` along the last axis with float32 `values`
    into a buffer (`_empty`), or None."""
    ext = _has(_extension(), "one_hot")
    code = INT_CODES.get(indices.dtype)
    if (not _enabled or ext is None or code is None or code == 4 or values.dtype != np.float32
            or values.size < 2 or axis not in (-1, indices.ndim) or depth < 1
            or not indices.flags.c_contiguous or indices.size == 0):
        return None
    y = _empty((*indices.shape, depth))
    flat = values.reshape(-1)
    src = indices.reshape(-1)
    call(ext.one_hot, src.view(np.uint8) if src.itemsize == 1 else src, y.reshape(-1), code,
         depth, float(flat[0]),
         float(flat[1]))
    return y


def arg_max(x: np.ndarray, axis: int, keepdims: bool, last: bool) -> np.ndarray | None:
    """numpy's argmax of float32 `x` along `axis` (int64; `last`: the last largest value,
    as float_ops._arg flips for it) into a buffer (`_empty`), or None."""
    ext = _has(_extension(), "arg_max")
    if (not _enabled or ext is None or x.dtype != np.float32 or not x.flags.c_contiguous
            or x.size == 0 or not 0 <= axis < x.ndim):
        return None
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    kept = (*x.shape[:axis], 1, *x.shape[axis + 1:])
    y = _empty(kept, np.int64)
    if y.dtype != np.int64:
        return None
    # a 1-D input without select_last_index: ONNX Runtime's Eigen packets (O121)
    call(ext.arg_max, x.reshape(-1), y.reshape(-1), outer, x.shape[axis], inner, bool(last),
         x.ndim == 1 and not last)
    return y if keepdims else y.reshape(x.shape[:axis] + x.shape[axis + 1:])


def set_slice(x: np.ndarray, start: np.ndarray, end: np.ndarray, value: np.ndarray,
              axis: int) -> np.ndarray | None:
    """x with value written on [s, m) along `axis` (s = start[0], m = min(x.shape[axis],
    end[0]); value: x's shape without that axis) into a buffer (`_empty`) where
    0 <= s <= m, which the kernel reads at run time; else None (lowp.runtime.set_slice
    computes it otherwise)."""
    ext = _has(_extension(), "set_slice")
    if (not _enabled or ext is None or x.dtype != value.dtype or x.dtype.hasobject
            or not (x.flags.c_contiguous and value.flags.c_contiguous)
            or not (start.flags.c_contiguous and end.flags.c_contiguous)
            or start.dtype != np.int64 or end.dtype != np.int64
            or start.size != 1 or end.size != 1 or x.size == 0):
        return None
    y = _empty(x.shape, x.dtype.type)
    status = _empty((1,), np.int64)
    if y.dtype != x.dtype or status.dtype != np.int64:
        return None
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64)) * x.dtype.itemsize
    call(ext.set_slice, x.reshape(-1).view(np.uint8), value.reshape(-1).view(np.uint8),
         start.reshape(-1), end.reshape(-1), y.reshape(-1).view(np.uint8), outer,
         x.shape[axis], inner, status)
    return None if status[0] else y


# ScatterND's reductions (lowp::ScatterReduction) and the element types they combine
# (lowp::ScatterType); "none" copies the bytes of any type
SCATTER_REDUCTIONS = {"none": 0, "add": 1, "mul": 2}
SCATTER_TYPES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.int64): 2,
                 np.dtype(np.int32): 3}


def scatter_nd(x: np.ndarray, indices: np.ndarray, updates: np.ndarray, reduction: str
               ) -> np.ndarray | None:
    """float_ops.ScatterND of contiguous `x` at int64 or int32 `indices` (read at run time;
    shapes checked by the caller) into a buffer (`_empty`): a copy of x, then each index
    tuple's slice of `updates` written, added or multiplied in, in order, as numpy's
    assignment and ufunc.at do; or None. An index outside [-d, d) leaves a status the
    caller reads: None here, and in a Program the segment runs the plain way
    (lowp.runtime.replay's retried calls)."""
    ext = _has(_extension(), "scatter_nd")
    code = SCATTER_REDUCTIONS.get(reduction)
    depth = indices.shape[-1] if indices.ndim else 0
    if (not _enabled or ext is None or code is None or x.dtype.hasobject or x.size == 0
            or (code and x.dtype not in SCATTER_TYPES) or updates.dtype != x.dtype
            or type(indices) is not np.ndarray or indices.dtype not in (np.int64, np.int32)
            or not (x.flags.c_contiguous and indices.flags.c_contiguous
                    and updates.flags.c_contiguous) or not 1 <= depth <= x.ndim):
        return None
    y = _empty(x.shape, x.dtype.type)
    status = _empty((2,), np.int64)
    if y.dtype != x.dtype or status.dtype != np.int64:
        return None
    slice_size = int(np.prod(x.shape[depth:], dtype=np.int64))
    call(ext.scatter_nd, x.reshape(-1).view(np.uint8), indices.reshape(-1),
         updates.reshape(-1).view(np.uint8), y.reshape(-1).view(np.uint8),
         [int(d) for d in x.shape[:depth]], slice_size, x.itemsize, code,
         SCATTER_TYPES.get(x.dtype, 0), status)
    return None if status[0] else y


def cast_from_float(x: np.ndarray, dtype: np.dtype) -> np.ndarray | None:
    """np.trunc(x).astype(dtype) of contiguous float32 `x` for dtype int32 or int64 (NaN
    and values out of the type's range: its lowest value, as numpy's cast gives on x86) into
    a buffer (`_empty`), or None."""
    ext = _has(_extension(), "cast_from_float")
    if (not _enabled or ext is None or x.dtype != np.float32 or not x.flags.c_contiguous
            or dtype not in (np.int32, np.int64) or x.size == 0):
        return None
    y = _empty(x.shape, np.dtype(dtype).type)
    if y.dtype != dtype:
        return None
    call(ext.cast_from_float, x.reshape(-1), y.reshape(-1), _threads)
    return y


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """a + b of float32 arrays with numpy broadcasting (one IEEE addition per element:
    numpy's bits), or None."""
    from . import program
    if _usable("Add", a) is None or b.dtype != np.float32:
        return None
    made = program.FLOAT_KERNELS["Add"]([np.ascontiguousarray(a), np.ascontiguousarray(b)],
                                        _empty(np.broadcast_shapes(a.shape, b.shape)),
                                        _threads)
    if made is None:
        return None
    (fn, args), y = made
    call(fn, *args)
    return y


def average_pool_rowmajor(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
                          dilations: Sequence[int], begin: Sequence[int], out: Sequence[int],
                          counts: np.ndarray) -> np.ndarray | None:
    """AveragePool of a float32 NCHW `x`, each window summed row-major from +0 and divided
    by `counts` (float32, (oh, ow): the numpy form's divisors), as float_nn's row-major
    form (MLAS's NCHWc kernel, ONNX Runtime's generic loop) computes it; or None."""
    if x.ndim != 4 or counts.dtype != np.float32 or counts.shape != tuple(out):
        return None
    ext = _usable("AveragePool", x)
    if ext is None or not hasattr(ext, "float_average_pool_rowmajor"):
        return None
    n, c, h, w = x.shape
    y = _empty((n, c, int(out[0]), int(out[1])))
    geometry = [*kernel, *strides, *dilations, *begin[:2]]
    call(ext.float_average_pool_rowmajor, np.ascontiguousarray(x), y, counts,
         [n * c, h, w, int(out[0]), int(out[1])], [int(v) for v in geometry], _threads)
    return y


#: MaxPool orders of float_pool2d (the first two) and float_max_pool_channels_last
#: (native/float_kernels.h, float_reduce.h; lowp.runtime.max_pool_order's paths)
MAX_MLAS_VECTOR, MAX_NCHWC, MAX_GENERIC, MAX_LOOP = 0, 1, 2, 3


def pool2d(op: str, x: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
           dilations: Sequence[int], begin: Sequence[int], end: Sequence[int],
           out: Sequence[int], count_include_pad: int = 0,
           max_order: int = 0) -> np.ndarray | None:
    """MaxPool or AveragePool of a float32 NCHW `x` with the geometry float_nn resolved
    (begin/end pads as given or from auto_pad, output size with ceil_mode), or None. A
    MaxPool in ONNX Runtime's order `max_order` (docs/operators.md (O150)): MAX_MLAS_VECTOR,
    MLAS's vector kernel, or MAX_NCHWC, its NCHWc kernel."""
    if x.ndim != 4:
        return None
    ext = _usable(op, x)
    if ext is None:
        return None
    n, c, h, w = x.shape
    y = _empty((n, c, int(out[0]), int(out[1])))
    geometry = [*kernel, *strides, *dilations, *begin, *end]
    if op == "MaxPool":
        geometry.append(max_order)
    call(ext.float_pool2d, np.ascontiguousarray(x), y, [n * c, h, w, int(out[0]), int(out[1])],
         [int(v) for v in geometry], op == "AveragePool", bool(count_include_pad), _threads)
    return y


def max_pool_channels_last(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
                           dilations: Sequence[int], begin: Sequence[int],
                           out: Sequence[int], order: int) -> np.ndarray | None:
    """MaxPool of float32 channels-last `x` (N, H, W, C) with the geometry float_nn
    resolved (begin pads, output size), channels-last, in ONNX Runtime's order `order`
    (MAX_MLAS_VECTOR, MAX_NCHWC, MAX_GENERIC, MAX_LOOP: native/float_reduce.h), bit for
    bit with float_nn.max_pool_channels_last's numpy form; or None."""
    ext = _has(_usable("MaxPool", x), "float_max_pool_channels_last")
    if ext is None or x.ndim != 4:
        return None
    n, h, w, c = x.shape
    y = _empty((n, int(out[0]), int(out[1]), c))
    geometry = [*kernel, *strides, *dilations, *begin, order]
    call(ext.float_max_pool_channels_last, np.ascontiguousarray(x).reshape(-1), y.reshape(-1),
         [n, h, w, c, int(out[0]), int(out[1])], [int(v) for v in geometry], _threads)
    return y


def softmax_rows(x: np.ndarray, log: bool = False) -> np.ndarray | None:
    """Softmax (`log`: LogSoftmax) of every row of float32 (rows, n) `x` in ONNX Runtime's
    AVX-512F order (bit for bit with lowp.ort_math.softmax_rows, log_softmax_rows), or
    None."""
    if x.ndim != 2 or x.shape[1] == 0:
        return None
    ext = _has(_usable("Softmax", x), "float_softmax_rows")
    if ext is None:
        return None
    src = np.ascontiguousarray(x)
    y = _empty(src.shape)
    call(ext.float_softmax_rows, src.reshape(-1), y.reshape(-1), int(src.shape[1]), _threads,
         log)
    return y


def softmax_axis(x: np.ndarray, axis: int, log: bool = False) -> np.ndarray | None:
    """Softmax (`log`: LogSoftmax) of float32 `x` over `axis` (normalized), each line along
    it in ONNX Runtime's AVX-512F order: softmax_rows of the axis moved last, bit for bit,
    without moving it (the kernel reads the lines in place), or None."""
    if x.shape[axis] == 0:
        return None
    if axis == x.ndim - 1:
        y = softmax_rows(x.reshape(-1, x.shape[-1]), log)
        return None if y is None else y.reshape(x.shape)
    ext = _has(_usable("Softmax", x), "float_softmax_axis")
    if ext is None:
        return None
    src = np.ascontiguousarray(x)
    y = _empty(src.shape)
    inner = int(np.prod(src.shape[axis + 1:], dtype=np.int64))
    call(ext.float_softmax_axis, src.reshape(-1), y.reshape(-1), int(src.shape[axis]), inner,
         _threads, log)
    return y


def layer_norm(x: np.ndarray, n: int, scale: np.ndarray, bias: np.ndarray | None,
               epsilon: float, stat_shape: tuple[int, ...], welford: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(y, mean, inv_std_dev) of float32 `x` normalized over rows of its last `n` values in
    ONNX Runtime's order, bit for bit with lowp.ort_math.layer_norm_rows (scale and bias: n
    float32 values; mean and inv_std_dev in `stat_shape`), or None. `welford`: the order of
    its SkipLayerNormalization instead (lowp.ort_math.skip_layer_norm_rows)."""
    ext = _has(_usable("LayerNormalization", x), "float_layer_norm")
    if ext is None or scale.dtype != np.float32 or (
            bias is not None and bias.dtype != np.float32):
        return None
    y, mean, inv = _empty(x.shape), _empty(stat_shape), _empty(stat_shape)
    call(ext.float_layer_norm, np.ascontiguousarray(x).reshape(-1),
         np.ascontiguousarray(scale).reshape(-1),
         None if bias is None else np.ascontiguousarray(bias).reshape(-1), y.reshape(-1),
         mean.reshape(-1), inv.reshape(-1), n, float(np.float32(epsilon)), _threads,
         welford)
    return y, mean, inv


def simplified_layer_norm(x: np.ndarray, n: int, scale: np.ndarray, epsilon: float,
                          stat_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """(y, inv_std_dev) of float32 `x` RMS-normalized over rows of its last `n` values in
    ONNX Runtime's order, bit for bit with lowp.ort_math.simplified_layer_norm_rows (scale:
    n float32 values; inv_std_dev in `stat_shape`), or None."""
    ext = _has(_usable("SimplifiedLayerNormalization", x), "float_simplified_layer_norm")
    if ext is None or scale.dtype != np.float32:
        return None
    y, inv = _empty(x.shape), _empty(stat_shape)
    call(ext.float_simplified_layer_norm, np.ascontiguousarray(x).reshape(-1),
         np.ascontiguousarray(scale).reshape(-1), y.reshape(-1), inv.reshape(-1), n,
         float(np.float32(epsilon)), _threads)
    return y, inv


def instance_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray,
                  epsilon: float) -> np.ndarray | None:
    """InstanceNormalization of float32 `x` (N, C, spatial...) in ONNX Runtime's order, bit
    for bit with lowp.runtime.float_nn.InstanceNormalization's float32 form (NaN payloads
    included; scale and bias: C float32 values), or None."""
    ext = _has(_usable("InstanceNormalization", x), "float_instance_norm")
    if ext is None or x.ndim < 3 or scale.dtype != np.float32 or bias.dtype != np.float32 \
            or scale.size != x.shape[1] or bias.size != x.shape[1]:
        return None
    y = _empty(x.shape)
    call(ext.float_instance_norm, np.ascontiguousarray(x).reshape(-1),
         np.ascontiguousarray(scale).reshape(-1), np.ascontiguousarray(bias).reshape(-1),
         y.reshape(-1), int(np.prod(x.shape[2:])), float(np.float32(epsilon)), _threads)
    return y


_ATTENTION_DIMS: dict[tuple[int, ...], np.ndarray] = {}


class AttentionShape(NamedTuple):
    """The sizes of one Attention node (lowp.runtime.float_attention): Q (batch, heads, seq,
    head), K (kv_heads, kv_seq), V's head size, the past length and the mask's leading
    axes (1 or batch, 1 or heads); `three_d`: Q, K, V (and Y) are (batch, sequence,
    heads * head size)."""

    batch: int
    heads: int
    kv_heads: int
    seq: int
    kv_seq: int
    past: int
    head: int
    v_head: int
    mask_batch: int
    mask_heads: int
    three_d: bool


class AttentionFlags(NamedTuple):
    """How lowp.runtime.float_attention computes a node: its scale, softcap (0: none),
    masked value, qk_matmul_output_mode (-1: no Q·Kᵀ output), causal pattern, mask folded
    into the product, float16 rounding of each step, MLAS's unit leading dimensions of K
    and of V times Y, and whether the present outputs are made."""

    scale: float
    softcap: float
    low: float
    mode: int
    causal: bool
    fold: bool
    half: bool
    k_unit_ld: bool
    v_unit_ld: bool
    presents: bool


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray,
              past: tuple[np.ndarray, np.ndarray] | None, mask: np.ndarray | None,
              valid: np.ndarray | None, shape: AttentionShape, flags: AttentionFlags
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None,
                         np.ndarray | None] | None:
    """(Y, present K, present V, Q·Kᵀ output) of one Attention node by one native call,
    bit for bit with lowp.runtime.float_attention's loop (float32 operands, C-contiguous;
    `mask`: float32 additive or boolean, (mask_batch, mask_heads, seq, total); `valid`:
    nonpad_kv_seqlen as int64), or None (then also for a nonpad_kv_seqlen value out of
    range, which the kernel reads as it runs). The (batch, head) pairs are split over the
    session's threads."""
    ext = _has(_usable("Attention", q), "float_attention")
    arrays = (k, v) + (past or ()) + ((mask,) if mask is not None and mask.dtype != np.bool_
                                      else ())
    if ext is None or any(a.dtype != np.float32 for a in arrays) or (
            valid is not None and valid.dtype != np.int64):
        return None
    if not all(a.flags.c_contiguous for a in (q, *arrays)):
        return None
    s = shape
    total = s.past + s.kv_seq
    key = s[:10]
    dims = _ATTENTION_DIMS.get(key)
    if dims is None:
        if len(_ATTENTION_DIMS) > 256:
            _ATTENTION_DIMS.clear()
        dims = _ATTENTION_DIMS[key] = np.array(key, np.int64)
    y = _empty((s.batch, s.seq, s.heads * s.v_head) if s.three_d
               else (s.batch, s.heads, s.seq, s.v_head))
    present_k = _empty((s.batch, s.kv_heads, total, s.head)) if flags.presents else None
    present_v = _empty((s.batch, s.kv_heads, total, s.v_head)) if flags.presents else None
    qk = _empty((s.batch, s.heads, s.seq, total)) if flags.mode >= 0 else None
    status = _empty((1,), np.int64)
    if status.dtype != np.int64:
        return None
    floats = mask if mask is not None and mask.dtype != np.bool_ else None
    bools = mask.reshape(-1).view(np.uint8) if mask is not None and floats is None else None
    call(ext.float_attention, q.reshape(-1), k.reshape(-1), v.reshape(-1),
         None if past is None else past[0].reshape(-1),
         None if past is None else past[1].reshape(-1),
         None if floats is None else floats.reshape(-1), bools,
         None if valid is None else valid.reshape(-1), y.reshape(-1),
         None if present_k is None else present_k.reshape(-1),
         None if present_v is None else present_v.reshape(-1),
         None if qk is None else qk.reshape(-1), dims, s.three_d, flags.scale,
         flags.softcap, flags.low, flags.mode, flags.causal, flags.fold, flags.half,
         flags.k_unit_ld, flags.v_unit_ld, _threads, status)
    return None if status[0] else (y, present_k, present_v, qk)

def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, limit: int,
                        iou_threshold: np.float32, score_threshold: np.float32 | None,
                        center_point_box: int) -> np.ndarray | None:
    """NonMaxSuppression's (selected, 3) int64 rows of float32 boxes (batches, n, 4) and
    scores (batches, classes, n), bit for bit with lowp.runtime.float_detection's numpy
    selection ((O242), (O243), (O313)); limit >= 1; or None. Not a recorded call: the row
    count depends on the values, so a replay could not repeat it."""
    ext = _has(_usable("NonMaxSuppression", scores), "non_max_suppression")
    if ext is None or boxes.dtype != np.float32 or limit < 1:
        return None
    batches, classes, n = scores.shape
    out = np.empty(batches * classes * min(limit, n) * 3, np.int64)
    count = ext.non_max_suppression(
        np.ascontiguousarray(boxes).reshape(-1), np.ascontiguousarray(scores).reshape(-1),
        out, batches, classes, n, limit, float(iou_threshold),
        None if score_threshold is None else float(score_threshold), bool(center_point_box),
        _threads)
    return out[:3 * count].reshape(count, 3).copy()


def grid_sample(x: np.ndarray, grid: np.ndarray, nearest: bool, border: bool,
                align_corners: bool) -> np.ndarray | None:
    """GridSample of float32 x (N, C, H, W) at grid (N, *out, 2), modes linear or nearest,
    zeros or border padding, bit for bit with lowp.runtime.float_detection's numpy form
    ((O246), (O247), (O314)): y (N, C, *out); or None (also for a grid the reference
    refuses, which it then refuses with its own error)."""
    ext = _has(_usable("GridSample", x), "grid_sample")
    if ext is None or x.ndim != 4 or grid.dtype != np.float32 or grid.ndim != 4 \
            or min(x.shape[2:]) < 1:
        return None
    n, c, h, w = x.shape
    out = grid.shape[1:3]
    # not a recorded call (a grid the reference refuses shows only in its values): a new
    # array, never a signature's buffer
    y = np.empty((n, c, *out), np.float32)
    ok = ext.grid_sample(np.ascontiguousarray(x).reshape(-1),
                         np.ascontiguousarray(grid).reshape(-1), y.reshape(-1), n, c, h, w,
                         int(np.prod(out)), nearest, border, align_corners, _threads)
    return y if ok else None


def roi_align(x: np.ndarray, rois: np.ndarray, batch_indices: np.ndarray, pooled_h: int,
              pooled_w: int, sampling_ratio: int, spatial_scale: float, half_pixel: bool,
              max_mode: bool) -> np.ndarray | None:
    """RoiAlign of float32 x (N, C, H, W) at float32 rois (R, 4) of images batch_indices
    (R values in [0, N)), finite, bit for bit with lowp.runtime.float_detection's numpy
    form ((O244), (O245), (O314)): y (R, C, pooled_h, pooled_w); or None (also for a roi
    whose sample grid is negative on one axis only, which the reference refuses)."""
    ext = _has(_usable("RoiAlign", x), "roi_align")
    if ext is None or x.ndim != 4 or rois.dtype != np.float32 or min(x.shape[2:]) < 1:
        return None
    n, c, h, w = x.shape
    # not a recorded call (whether the rois are refused shows only in their values)
    y = np.empty((rois.shape[0], c, pooled_h, pooled_w), np.float32)
    ok = ext.roi_align(np.ascontiguousarray(x).reshape(-1),
                       np.ascontiguousarray(rois).reshape(-1),
                       np.ascontiguousarray(batch_indices, np.int64).reshape(-1),
                       y.reshape(-1), n, c, h, w, pooled_h, pooled_w, sampling_ratio,
                       float(np.float32(spatial_scale)), half_pixel, max_mode, _threads)
    return y if ok else None


def _gelu_tanh_code(with_bias: bool) -> np.ndarray:
    """float_fused instructions (op, dst, a, b) of lowp.ort_math.gelu_tanh's order,
    (0.5 x) (tanh(x ((c x) x + b)) + 1), over the inputs x, c, b, 1, 0.5 (operands -1 ..
    -5) and, with a bias, x = x + bias first (input -6), each operand order the
    reference's."""
    from .program import FUSED_CODES

    add, mul, tanh = FUSED_CODES["Add"], FUSED_CODES["Mul"], FUSED_CODES["Tanh"]
    x = 7 if with_bias else -1
    code = [(add, 7, -1, -6)] if with_bias else []
    code += [(mul, 0, -2, x), (mul, 1, 0, x), (add, 2, 1, -3), (mul, 3, x, 2), (tanh, 4, 3, 0),
             (add, 5, 4, -4), (mul, 6, -5, x), (mul, -1, 6, 5)]
    return np.array(code, np.int32)


# the constants of gelu_tanh: the same arrays on every call (replay compares addresses)
_GELU_TANH_CONSTANTS = tuple(np.full(1, v, np.float32) for v in (
    ort_math._GELU_C, ort_math._GELU_B, 1.0, 0.5))
_GELU_TANH_CODES: dict[bool, np.ndarray] = {}


def gelu_tanh(x: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray | None:
    """ONNX Runtime's float32 tanh GELU of `x` (+ `bias`, the sum rounded to float32 first:
    com.microsoft FastGelu), bit for bit with lowp.ort_math.gelu_tanh (its Tanh is the native
    unary kernel), or None: without a bias one pass of the unary kernel's FastGelu, with one
    a float_fused pass of the same operations."""
    from . import program

    if bias is None and x.flags.c_contiguous:   # one unary kernel (ort_fast_gelu_v)
        return unary("FastGelu", x)
    ext = _has(_usable("FastGelu", x), "float_fused")
    if ext is None or (bias is not None and (
            bias.dtype != np.float32 or np.broadcast_shapes(x.shape, bias.shape) != x.shape)):
        return None
    with_bias = bias is not None
    code = _GELU_TANH_CODES.get(with_bias)
    if code is None:
        code = _GELU_TANH_CODES[with_bias] = _gelu_tanh_code(with_bias)
    inputs = [x, *_GELU_TANH_CONSTANTS] + ([bias] if bias is not None else [])
    made = program.fused_call(code, inputs, _empty(x.shape), _threads)
    if made is None:
        return None
    (fn, args), y = made
    call(fn, *args)
    return y


def _reduction(op: str, kernel: str, x: np.ndarray, axes: tuple[int, ...], keepdims: bool
               ) -> tuple[Any, tuple[int, int, int, int], np.ndarray] | None:
    """(the kernel, ort_math.reduce_plan of the axes, the output buffer) of a reduction of
    float32 `x`, or None where the kernel or the plan is missing."""
    ext = _has(_usable(op, x), kernel)
    plan = None if ext is None else ort_math.reduce_plan(x.shape, axes)
    if plan is None:
        return None
    return getattr(ext, kernel), plan, _empty(tuple(ort_math.reduced_shape(x.shape, axes,
                                                                           keepdims)))


def reduce_sum(x: np.ndarray, axes: tuple[int, ...], keepdims: bool, mean: bool
               ) -> np.ndarray | None:
    """ReduceSum / ReduceMean of float32 `x` over `axes` in ONNX Runtime's order, bit for
    bit with lowp.ort_math.reduce_sum, or None (also where that returns None)."""
    found = _reduction("ReduceSum", "float_reduce_sum", x, axes, keepdims)
    if found is None:
        return None
    kernel, (form, outer, k, inner), y = found
    call(kernel, np.ascontiguousarray(x).reshape(-1), y.reshape(-1), outer, k, inner, form,
         mean, _threads)
    return y


def reduce_max(x: np.ndarray, axes: tuple[int, ...], keepdims: bool, pool: int = 0
               ) -> np.ndarray | None:
    """ReduceMax of float32 `x` over `axes` (one run of consecutive axes once unit axes are
    merged) by lowp.runtime.float_ops's rule (`max_reference`), or None. `pool` 1 (2): a
    GlobalMaxPool's outputs that are a NaN, a zero or -inf in MLAS's order
    (lowp.ort_math.mlas_global_max without (with) NCHWc, docs/operators.md (O140))."""
    found = _reduction("ReduceMax", "float_reduce_max", x, axes, keepdims)
    if found is None:
        return None
    kernel, (_, outer, k, inner), y = found
    call(kernel, np.ascontiguousarray(x).reshape(-1), y.reshape(-1), outer, k, inner, pool,
         _threads)
    return y


def reduce_extreme(x: np.ndarray, axes: tuple[int, ...], keepdims: bool, is_min: bool
                   ) -> np.ndarray | None:
    """ReduceMax (ReduceMin) of float32 `x` over `axes` as ONNX Runtime takes them, bit for
    bit with lowp.ort_math.reduce_extreme, or None (where its plan is None too)."""
    ext = _has(_usable("ReduceMin" if is_min else "ReduceMax", x), "float_reduce_extreme")
    plan = None if ext is None else ort_math.extreme_plan(x.shape, axes)
    if plan is None:
        return None
    form, a, b, c = plan
    y = _empty(tuple(ort_math.reduced_shape(x.shape, axes, keepdims)))
    call(ext.float_reduce_extreme, np.ascontiguousarray(x).reshape(-1), y.reshape(-1), a, b, c,
         form, is_min, _threads)
    return y


def _ends(runs: Sequence[tuple[int, int]] | None) -> list[int]:
    """The ends of consecutive `runs` [first, last) (lowp.eigen_math.assignment_runs), as
    the native Eigen functors take them (one call evaluates every run by itself); [] for
    one run."""
    return [] if runs is None or len(runs) <= 1 else [int(last) for _, last in runs]


def _eigen_blockwise(op: str, binding: str, x: np.ndarray,
                     runs: Sequence[tuple[int, int]] | None, *params: float) -> np.ndarray | None:
    """ONNX Runtime's Eigen functor `op` of float32 `x` by the native `binding`, each of
    `runs` (ONNX Runtime's parallel blocks) evaluated by itself, in one call; or None."""
    ext = _has(_usable(op, x), binding)
    if ext is None:
        return None
    y = _empty(x.shape)
    call(getattr(ext, binding), np.ascontiguousarray(x).reshape(-1), y.reshape(-1), *params,
         _ends(runs), _threads)
    return y


def log(x: np.ndarray, runs: Sequence[tuple[int, int]] | None = None) -> np.ndarray | None:
    """ONNX Runtime's Log of float32 `x` (lowp.eigen_math.log, bit for bit), or None."""
    return _eigen_blockwise("Log", "float_log", x, runs)


def elu(x: np.ndarray, alpha: float,
        runs: Sequence[tuple[int, int]] | None = None) -> np.ndarray | None:
    """ONNX Runtime's Elu of float32 `x` (lowp.runtime.float_ops's Eigen form, bit for bit),
    or None."""
    return _eigen_blockwise("Elu", "float_elu", x, runs, float(np.float32(alpha)))


def softplus(x: np.ndarray,
             runs: Sequence[tuple[int, int]] | None = None) -> np.ndarray | None:
    """ONNX Runtime's Softplus of float32 `x` (lowp.runtime.float_ops's Eigen form, bit for
    bit), or None."""
    return _eigen_blockwise("Softplus", "float_softplus", x, runs)


def sin(x: np.ndarray) -> np.ndarray | None:
    """ONNX Runtime's Sin of float32 `x` (lowp.eigen_math.sin, bit for bit), or None."""
    return _sincos("Sin", x, False)


def cos(x: np.ndarray) -> np.ndarray | None:
    """ONNX Runtime's Cos of float32 `x` (lowp.eigen_math.cos, bit for bit), or None."""
    return _sincos("Cos", x, True)


def _sincos(op: str, x: np.ndarray, cosine: bool) -> np.ndarray | None:
    ext = _has(_usable(op, x), "float_sincos")
    if ext is None:
        return None
    y = _empty(x.shape)
    call(ext.float_sincos, np.ascontiguousarray(x).reshape(-1), y.reshape(-1), cosine, _threads)
    return y


def libm(name: str, x: np.ndarray) -> np.ndarray | None:
    """The C library's float function `name` (a key of LIBM_CODES) on every element of
    float32 `x`, one call each as lowp.libm makes them through ctypes (the same function,
    so the same bits), or None."""
    ext = _has(_usable(name, x), "float_libm")
    if ext is None:
        return None
    y = _empty(x.shape)
    call(ext.float_libm, LIBM_CODES[name], np.ascontiguousarray(x).reshape(-1), y.reshape(-1),
         _threads)
    return y


def powf(x: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """The C library's powf(x, e) on every element of float32 `x` by one float32 exponent
    `e` (not a NaN: a signalling one would be quieted on its way), one call each as
    lowp.libm.powf's C calls (the same function, so the same bits), or None."""
    ext = _has(_usable("Pow", x), "float_powf")
    if ext is None or e.dtype != np.float32 or e.size != 1 or np.isnan(e).any():
        return None
    y = _empty(x.shape)
    call(ext.float_powf, np.ascontiguousarray(x).reshape(-1), float(e.reshape(-1)[0]),
         y.reshape(-1), _threads)
    return y


def pool_sums(rows: np.ndarray, lanes: int, mean: bool = False) -> np.ndarray | None:
    """Sums (or means: then divided by the count in float32) of the rows of float32 (r, n)
    in MLAS's global pooling orders (docs/operators.md (O32)): lanes 4, its NCHW kernel;
    lanes 1, its NCHWc kernel (the values in order from +0). Bit for bit with
    lowp.runtime.nchwc_conv.pool_sums_reference; None when it does not run natively."""
    ext = _has(_usable("GlobalAveragePool", rows), "float_reduce_sum")
    if ext is None or rows.ndim != 2 or rows.shape[1] == 0 or not rows.flags.c_contiguous:
        return None
    y = _empty((rows.shape[0],))
    call(ext.float_reduce_sum, rows.reshape(-1), y, rows.shape[0], rows.shape[1], 1,
         3 if lanes == 4 else 4, mean, _threads)
    return y


def global_average_pool(x: np.ndarray, lanes: int) -> np.ndarray | None:
    """GlobalAveragePool of float32 `x` (N, C, ...): `pool_sums` of its planes divided by
    their size; None when it does not run natively."""
    if x.ndim < 3 or x.size == 0 or not x.flags.c_contiguous:
        return None
    y = pool_sums(x.reshape(x.shape[0] * x.shape[1], -1), lanes, mean=True)
    return None if y is None else y.reshape(x.shape[:2] + (1,) * (x.ndim - 2))


def global_average_pool_channels_last(x: np.ndarray, lanes: int) -> np.ndarray | None:
    """GlobalAveragePool of float32 channels-last `x` (N, ..., C), read in place: each
    channel's values summed in `pool_sums`' order (a column of the (N, spatial, C) view),
    divided by their count; (N, 1, ..., 1, C), or None when it does not run natively."""
    ext = _has(_usable("GlobalAveragePool", x), "float_reduce_sum")
    if ext is None or x.ndim < 3 or not x.flags.c_contiguous:
        return None
    n, c = x.shape[0], x.shape[-1]
    k = int(np.prod(x.shape[1:-1], dtype=np.int64))
    if k == 0:
        return None
    y = _empty((n,) + (1,) * (x.ndim - 2) + (c,))
    call(ext.float_reduce_sum, x.reshape(-1), y.reshape(-1), n, k, c,
         3 if lanes == 4 else 4, True, _threads)
    return y


def col2im(cols: np.ndarray, bias: np.ndarray | None, kernel: Sequence[int],
           in_sp: Sequence[int], out: Sequence[int], strides: Sequence[int],
           dilations: Sequence[int], begin: Sequence[int]) -> np.ndarray | None:
    """ConvTranspose's col2im of float32 `cols` (N, C, *kernel, *in_sp) for 1-D and 2-D
    kernels: y (N, C, *out), every output +0 plus the entries landing on it in kernel-offset
    order, then bias (C values), as lowp.runtime.float_nn.ConvTranspose adds them; or None."""
    nd = len(kernel)
    ext = _has(_usable("ConvTranspose", cols), "float_col2im")
    if ext is None or nd not in (1, 2) or (bias is not None and bias.dtype != np.float32) or (
            min(out) < 1 or min(begin) < 0):
        return None
    n, c = cols.shape[:2]
    geometry = _col2im_geometry(kernel, in_sp, out, strides, dilations, begin)
    y = _empty((n, c, *(int(v) for v in out)))
    call(ext.float_col2im, np.ascontiguousarray(cols).reshape(-1),
         None if bias is None else np.ascontiguousarray(bias).reshape(-1), y.reshape(-1),
         [n * c, c, *geometry, int(nd == 1)], _threads)
    return y


def conv_transpose_direct(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                          kernel: Sequence[int], out: Sequence[int], strides: Sequence[int],
                          dilations: Sequence[int], begin: Sequence[int]) -> np.ndarray | None:
    """A float32 ConvTranspose of x (N, G, *in_sp) with one input channel per group, w
    (G, M / G, *kernel), 1-D or 2-D, in one native call: each column entry is the product
    w * x rounded once (the K = 1 GEMM of every group), added where col2im adds it
    (`col2im`'s order); y (N, M, *out), or None. x may be a permuted view of contiguous
    memory (a channels-last tensor read channels-first): read in place by its strides."""
    nd = len(kernel)
    ext = _has(_usable("ConvTranspose", x), "float_conv_transpose_direct")
    if (ext is None or nd not in (1, 2) or w.dtype != np.float32
            or (bias is not None and bias.dtype != np.float32) or min(out) < 1
            or min(begin) < 0):
        return None
    memory = _viewed_memory(x)
    if memory is None:
        return None
    x4 = x.reshape(x.shape[:2] + (1,) * (2 - nd) + x.shape[2:]) if nd == 1 else x
    x_strides = [st // x.itemsize for st in x4.strides]
    n, g = x.shape[:2]
    per_input = w.shape[1]
    c = g * per_input
    geometry = _col2im_geometry(kernel, x.shape[2:], out, strides, dilations, begin)
    y = _empty((n, c, *(int(v) for v in out)))
    call(ext.float_conv_transpose_direct, memory.reshape(-1),
         np.ascontiguousarray(w).reshape(-1),
         None if bias is None else np.ascontiguousarray(bias).reshape(-1), y.reshape(-1),
         [n * c, c, *geometry, per_input, *x_strides, int(nd == 1)],
         _threads)
    return y


def conv_transpose(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, group: int,
                   kernel: Sequence[int], out: Sequence[int], strides: Sequence[int],
                   dilations: Sequence[int], begin: Sequence[int],
                   trans_a: bool) -> np.ndarray | None:
    """A float32 1-D or 2-D ConvTranspose of x (N, C, *in_sp), w (C, M / group, *kernel) in
    one native call, the values of one `sgemm` per image and group (`trans_a`: the filter read
    transposed, as ONNX Runtime reads one it did not transpose once; cut between the threads
    as `thread_parts`) followed by `col2im`: the column entries made a block of output
    channels at a time and added while in cache. x may be a permuted view of contiguous
    memory whose positions are evenly strided (a channels-last tensor read channels-first):
    read in place. y (N, M, *out), or None."""
    nd = len(kernel)
    ext = _has(_usable("ConvTranspose", x), "float_conv_transpose")
    if (ext is None or nd not in (1, 2) or w.dtype != np.float32
            or (bias is not None and bias.dtype != np.float32) or min(out) < 1
            or min(begin) < 0 or x.size == 0):
        return None
    memory, x_strides = _positions_in_place(x)
    n, c = x.shape[:2]
    channels = group * w.shape[1]
    rows = w.shape[1] * int(np.prod(kernel))
    size = int(np.prod(x.shape[2:]))
    cuts = _operation_cuts(mlas_sgemm.thread_parts(rows, size, c // group, _threads, 1))
    if cuts is None:
        return None
    geometry = _col2im_geometry(kernel, x.shape[2:], out, strides, dilations, begin)
    y = _empty((n, channels, *(int(v) for v in out)))
    call(ext.float_conv_transpose, memory, np.ascontiguousarray(w).reshape(-1),
         None if bias is None else np.ascontiguousarray(bias).reshape(-1), y.reshape(-1),
         [n, c, group, int(trans_a), channels, *geometry, int(nd == 1),
          *x_strides, *cuts], _threads)
    return y


def _positions_in_place(x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The flat memory of x (N, C, *spatial) and its element strides (batch, channel,
    position) when x views contiguous memory with its positions evenly strided (row stride
    = width x column stride: channels-first or channels-last); else a contiguous copy's.
    An axis of one value (or one position) gets stride 0."""
    st = [v // x.itemsize for v in x.strides]
    memory = _viewed_memory(x)
    if memory is None or not (x.ndim == 3 or st[2] == x.shape[3] * st[3]):
        memory = np.ascontiguousarray(x)
        st = [v // x.itemsize for v in memory.strides]
    sizes = [x.shape[0], x.shape[1], int(np.prod(x.shape[2:]))]
    return memory.reshape(-1), [v if size > 1 else 0
                                for v, size in zip([st[0], st[1], st[-1]], sizes, strict=True)]


def _viewed_memory(x: np.ndarray) -> np.ndarray | None:
    """The contiguous memory x views (x's axes in decreasing stride order), or None when x
    has a negative stride or is no permutation of contiguous memory."""
    if any(st < 0 for st in x.strides):
        return None
    order = tuple(int(i) for i in np.argsort([-st for st in x.strides], kind="stable"))
    memory = x.transpose(order)
    return memory if memory.flags.c_contiguous else None


def _col2im_geometry(kernel: Sequence[int], in_sp: Sequence[int], out: Sequence[int],
                     strides: Sequence[int], dilations: Sequence[int],
                     begin: Sequence[int]) -> list[int]:
    """The 2-D col2im geometry of the native ConvTranspose kernels for a 1-D or 2-D one
    (a 1-D one as height 1): kh, kw, ih, iw, oh, ow, sh, sw, dh, dw, begin_h, begin_w."""
    pad = [1] * (2 - len(kernel))
    return [int(v) for v in (*pad, *kernel, *pad, *in_sp, *pad, *out, *pad, *strides, *pad,
                             *dilations, *[0] * (2 - len(kernel)), *begin)]


# MLAS operations a native convolution takes at most (kConvMaxParts, float_im2col.h)
_MAX_OPERATIONS = 64


def _operation_cuts(parts: Sequence[tuple[slice, slice]]) -> list[int] | None:
    """The MLAS operations `parts` (rows, columns) as the native convolutions take them:
    first row, rows, first column, columns of each, flat; None beyond _MAX_OPERATIONS."""
    if len(parts) > _MAX_OPERATIONS:
        return None
    return [v for rows, columns in parts
            for v in (rows.start, rows.stop - rows.start, columns.start,
                      columns.stop - columns.start)]


def bilinear_integer(x: np.ndarray, dims: Sequence[int], rows: Sequence[np.ndarray],
                     cols: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray | None:
    """ONNX Runtime's 8-bit bilinear Resize (docs/operators.md (O41)) of contiguous `x`
    viewed as dims = (outer, h, w, inner, out_h, out_w), with the per-axis source indices
    and distances `rows` = (y1, y2, dy1, dy2) and `cols` = (x1, x2, dx1, dx2) (int32); the
    result has `shape`. None when it does not run natively."""
    ext = _has(_extension(), "bilinear_integer")
    if (ext is None or not _enabled or x.dtype not in (np.uint8, np.int8) or x.size == 0
            or not x.flags.c_contiguous):
        return None
    y = _empty(shape, x.dtype.type)
    call(ext.bilinear_integer, x.reshape(-1).view(np.uint8), y.reshape(-1).view(np.uint8),
         [int(d) for d in dims], *rows, *cols, x.dtype == np.int8, _threads)
    return y


def bilinear_float(x: np.ndarray, rows: Sequence[np.ndarray], cols: Sequence[np.ndarray],
                   channels_last: bool = False) -> np.ndarray | None:
    """ONNX Runtime's float32 bilinear Resize of the last two axes of `x` (UpsampleBilinear,
    lowp.runtime.float_nn._bilinear's order), or of the middle two of channels-last
    (N, H, W, C) `x` (`channels_last`, the result then channels-last too), with the per-axis
    source indices and distances `rows` = (y1, y2, dy1, dy2) and `cols` = (x1, x2, dx1, dx2),
    or None."""
    ext = _has(_usable("Resize", x), "bilinear_float")
    if ext is None or x.ndim < (3 if channels_last else 2):
        return None
    x = np.ascontiguousarray(x)
    out_h, out_w = len(rows[0]), len(cols[0])
    if channels_last:
        h, w, inner = x.shape[-3:]
        shape: tuple[int, ...] = (*x.shape[:-3], out_h, out_w, inner)
    else:
        (h, w), inner = x.shape[-2:], 1
        shape = (*x.shape[:-2], out_h, out_w)
    y = _empty(shape)

    def axis(i1: np.ndarray, i2: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> list[np.ndarray]:
        # (the arrays themselves when they are int32 and float32 already, as
        # float_nn._bilinear_table's are: a replayed call reads the same ones on every run)
        return [*(np.ascontiguousarray(i, np.int32) for i in (i1, i2)),
                *(np.ascontiguousarray(d, np.float32) for d in (d1, d2))]

    call(ext.bilinear_float, x.reshape(-1), y.reshape(-1),
         [x.size // max(1, h * w * inner), h, w, inner, out_h, out_w], *axis(*rows),
         *axis(*cols), _threads)
    return y


def matmul(a: np.ndarray, b: np.ndarray, *, alpha: float = 1.0, trans_a: bool = False,
           trans_b: bool = False, b_packed: bool = False, trans_batch: bool = False,
           ldb_factor: int = 1) -> np.ndarray | None:
    """float32 MatMul / FusedMatMul in ONNX Runtime's MLAS order, bit for bit with
    lowp.mlas_sgemm.matmul (same arguments, the same batching), or None."""
    ext = _has(_usable("MatMul", a), "float_sgemm_mlas")
    if ext is None or b.dtype != np.float32 or a.ndim == 0 or b.ndim == 0:
        return None
    am = np.swapaxes(a, -1, -2) if trans_a and a.ndim > 1 else a
    bm = np.swapaxes(b, -1, -2) if trans_b and b.ndim > 1 else b
    if am.shape[-1] != bm.shape[0 if bm.ndim == 1 else -2]:
        return None                         # the reference reports the mismatch
    if mlas_sgemm.folds_batch_into_m(a.shape, b.shape, trans_a and a.ndim > 1, trans_batch) \
            and not am.flags.c_contiguous:
        return None                         # folding A's batch axes would copy it
    try:
        np.broadcast_shapes(am.shape[:-2], bm.shape[:-2])
    except ValueError:
        return None

    def product(pa: np.ndarray, pb: np.ndarray, out: np.ndarray, ta: bool, tb: bool,
                packed: bool, count: int, ldb: int) -> None:
        # a lone column of B read in place inside a larger array (transBatchB: MLAS's
        # leading dimension is not 1) goes through the general kernel, as in MLAS
        _by_parts(ext, b if b.ndim == 2 else None, pa, pb, out, None, ta, tb, packed, alpha,
                  count, unit_ldb=ldb == 1)

    return mlas_sgemm.batched(a, b, product, _empty, trans_a=trans_a, trans_b=trans_b,
                              b_packed=b_packed, trans_batch=trans_batch,
                              ldb_factor=ldb_factor, alpha=alpha)


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray | None, *, alpha: float, trans_a: bool,
         trans_b: bool, b_packed: bool) -> np.ndarray | None:
    """float32 Gemm of 2-D `a` and `b` as lowp.runtime.float_ops.Gemm computes it with beta
    1 (C broadcast into the output, then MLAS's SGEMM of alpha A B accumulated onto it, in
    the parts MLAS cuts it into between the session's threads, as lowp.mlas_sgemm.gemm),
    bit for bit, by one native call per part; None when it does not run natively. C is
    read in place through a broadcast view."""
    ext = _has(_usable("Gemm", a), "float_sgemm_mlas")
    if (ext is None or b.dtype != np.float32 or a.ndim != 2 or b.ndim != 2
            or (c is not None and c.dtype != np.float32)):
        return None
    am = a.T if trans_a else a
    bm = b.T if trans_b else b
    shape = (am.shape[0], bm.shape[1])
    init = c if c is None or c.shape == shape else np.broadcast_to(c, shape)
    y = _empty(shape)
    _by_parts(ext, b, am, bm, y, init, trans_a, trans_b, b_packed, alpha, 1)
    return y


def _by_parts(ext: Any, b: np.ndarray | None, am: np.ndarray, bm: np.ndarray, out: np.ndarray,
              init: np.ndarray | None, trans_a: bool, trans_b: bool, packed: bool,
              alpha: float, count: int, parts: list[tuple[slice, slice]] | None = None,
              unit_ldb: bool = True) -> None:
    """One float_sgemm_mlas call per part MLAS cuts the product of logical `am` (m x k) and
    `bm` (k x n) into between the session's threads (one part for a prepacked B; `count`:
    the products of the batch; `parts`: given, as lowp.mlas_sgemm.conv_parts gives them),
    with the panels of the constant 2-D `b` (None: none kept) and `init`'s part accumulated
    into (None: beta 0); `unit_ldb` false: B's leading dimension as MLAS is handed it is not
    1 (no N = 1 kernel). A part narrower than the product is never MLAS's N = 1 kernel's
    either (its B and C are read with the whole product's leading dimensions): a lone
    column of a wider B goes through the general kernel, in place."""
    m, k, n = am.shape[0], am.shape[1], bm.shape[1]
    whole = [(slice(0, m), slice(0, n))]
    if parts is None:
        parts = whole if packed else mlas_sgemm.thread_parts(m, n, k, _threads, count)
    for rows, cols in parts:
        held = None if b is None else _constant_panels(
            ext, b, len(range(m)[rows]), bm, trans_a, trans_b, packed, alpha, cols)
        unit = unit_ldb and len(range(n)[cols]) == n
        call(ext.float_sgemm_mlas, am[rows], bm[:, cols], out[rows, cols], float(alpha),
             trans_a, trans_b, packed, _threads, None if init is None else init[rows, cols],
             *(held or (None, 0, 0)), *(() if unit else (False,)))


def _pack_panels(b: np.ndarray, trans_b: bool, stride_k: int, width: int, floats: int,
                 path: str, cols: tuple[int, int]) -> np.ndarray:
    """The panels of 2-D `b`'s columns [cols) (logical B: its transpose with `trans_b`)
    that the SGEMM packs at K block `stride_k` and kernel width `width` (the kernels of
    `path`), starting on a 64-byte boundary: numpy's allocations are 16-byte aligned, and
    a panel's rows (multiples of 64 bytes) read across two cache lines every load slowed
    the product by about a tenth (bench/sgemm.py)."""
    buf = np.empty(4 * floats + 64, np.uint8)
    start = -buf.ctypes.data % 64
    panels = buf[start:start + 4 * floats].view(np.float32)
    logical = b.T if trans_b else b
    _extension().float_sgemm_pack(logical[:, cols[0]:cols[1]], panels, stride_k, width)
    return panels


_PANELS = PackCache(_pack_panels)


def _constant_panels(ext: Any, b: np.ndarray, m: int, bm: np.ndarray, trans_a: bool,
                     trans_b: bool, packed: bool, alpha: float, cols: slice = slice(None)
                     ) -> tuple[np.ndarray, int, int] | None:
    """B's panels packed once, as ONNX Runtime packs a constant B when the session is
    made, for a product of `m` rows by `bm`'s columns `cols` (a thread's part; `bm` is 2-D
    `b`, or its transpose), when `b` is a
    model's constant (frozen: read-only all the way down, so no call checks its values) and
    the product packs B; with the K block and width they were packed for. None otherwise
    (the product then packs B itself, or keeps a prepacked B's panels by their values)."""
    if not (prepacked.frozen(b) and _has(ext, "float_sgemm_pack")):
        return None
    lo, hi, _ = cols.indices(bm.shape[1])
    stride_k, width, floats = ext.float_sgemm_panels(m, bm[:, lo:hi], trans_a, trans_b,
                                                     packed, float(alpha))
    if floats == 0:
        return None
    panels = _PANELS(b, bool(trans_b), int(stride_k), int(width), int(floats),
                     str(ext.float_kernels()), (lo, hi))
    return panels, int(stride_k), int(width)


def conv(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, group: int,
         strides: Sequence[int], dilations: Sequence[int], begin: Sequence[int],
         out: Sequence[int], init: np.ndarray | None = None) -> np.ndarray | None:
    """Float32 1-D, 2-D or 3-D Conv of `x` (N, C, *in) with `w` (M, C / group, *k) as
    lowp.runtime.float_nn.Conv's MLAS path computes it (im2col per image and group, one
    float_sgemm_mlas product each, cut in the parts MLAS's threads cut it into
    (lowp.mlas_sgemm.conv_parts), accumulated onto `init` (the output's shape: FusedConv's
    Sum) when given, the bias added after), bit for bit, by one native call; `begin` holds
    the leading pads and `out` the output size. None when it does not run natively (then
    float_nn computes it)."""
    ext = _has(_usable("Conv", x), "float_conv_im2col")
    nd = x.ndim - 2
    if (ext is None or not 1 <= nd <= 3 or w.dtype != np.float32 or w.size == 0
            or (bias is not None and bias.dtype != np.float32)
            or (init is not None and init.dtype != np.float32)):
        return None
    n, c, m = x.shape[0], x.shape[1], w.shape[0]
    if init is not None and init.shape != (n, m) + tuple(int(v) for v in out):
        return None
    k = list(w.shape[2:])
    # (the trailing pads, for unit strides: what the output size leaves of the input)
    end = [int(out[i]) + (k[i] - 1) * int(dilations[i]) - int(x.shape[2 + i]) - int(begin[i])
           for i in range(nd)]
    direct = all(v == 1 for v in k) and all(v == 1 for v in strides) and not any(begin) and \
        all(int(out[i]) == int(x.shape[2 + i]) for i in range(nd)) or \
        mlas_sgemm.conv_whole_axis(tuple(x.shape[2:]), k, list(strides), list(dilations),
                                   [*begin, *end], c // group) == "columns"
    size, depth = int(np.prod(out)), c // group * int(np.prod(k))
    parts = mlas_sgemm.conv_parts(m // group, size, depth, _threads, n * group, direct)
    cuts = _operation_cuts(parts)
    if cuts is None:
        return None
    cut = cuts if len(parts) > 1 else []     # MLAS's operations
    lead = 3 - nd
    axes = [[1, 1, 1, 1, 1, 0]] * lead + [
        [int(x.shape[2 + i]), k[i], int(out[i]), int(strides[i]), int(dilations[i]),
         int(begin[i])] for i in range(nd)]
    pointwise = all(a[1] == 1 and a[3] == 1 and a[5] == 0 and a[2] == a[0] for a in axes)
    y = _empty((n, m) + tuple(int(v) for v in out))
    cols = None if pointwise else _empty((c // group * int(np.prod(k)),
                                          int(np.prod(out))))
    call(ext.float_conv_im2col, np.ascontiguousarray(x).reshape(-1),
         np.ascontiguousarray(w).reshape(-1),
         None if bias is None else np.ascontiguousarray(bias).reshape(-1), y.reshape(-1),
         None if cols is None else cols.reshape(-1),
         [n, c, m, group] + [v for a in axes for v in a] + cut, _threads,
         *(() if init is None else (np.ascontiguousarray(init).reshape(-1),)))
    return y


def conv_nchwc(x: np.ndarray, packed: np.ndarray, bias: np.ndarray | None,
               shape: tuple[int, ...], dims: Sequence[int], isa: str,
               sum: np.ndarray | None = None, relu: bool = False) -> np.ndarray | None:
    """Float32 2-D Conv in MLAS's NCHWc order (lowp.runtime.nchwc_conv.convolve: `packed`
    weights, `dims` and the instruction-set path `isa` as it gives them, the contiguous
    float32 `sum` of the output's size its fused Add, `relu` a Relu node's select after
    the bias) into an output of `shape`, by
    lowp._native's float_conv_nchwc (a Program step, unlike lowp._float_conv's call of the
    same kernel), or None when it does not run natively."""
    ext = _has(_usable("Conv", x), "float_conv_nchwc")
    if ext is None or (bias is not None and bias.dtype != np.float32):
        return None
    y = _empty(shape)
    args: tuple[object, ...] = (
        np.ascontiguousarray(x).reshape(-1), packed,
        None if bias is None else np.ascontiguousarray(bias).reshape(-1), y.reshape(-1),
        [int(d) for d in dims] + ([1] if relu else []), isa, _threads)
    call(ext.float_conv_nchwc, *args, *(() if sum is None else (sum.reshape(-1),)))
    return y


def _sgemm_extension(am: np.ndarray, bm: np.ndarray, out: np.ndarray,
                     init: np.ndarray | None) -> Any:
    """The extension that runs MLAS's SGEMM on these float32 operands, None when not."""
    ext = _has(_usable("MatMul", am), "float_sgemm_mlas")
    if (ext is None or bm.dtype != np.float32 or out.dtype != np.float32
            or (init is not None and init.dtype != np.float32)):
        return None
    return ext


def sgemm(am: np.ndarray, bm: np.ndarray, out: np.ndarray, *, trans_a: bool = False,
          trans_b: bool = False, packed: bool = False, init: np.ndarray | None = None,
          parts: list[tuple[slice, slice]] | None = None) -> bool:
    """out (m x n) = am (m x k) @ bm (k x n) (+ init, beta 1), float32 logical operands, in
    MLAS's order as lowp.mlas_sgemm.gemm computes it with these flags and the session's
    threads, one MlasGemm call: cut as `thread_parts`, or as `parts` when given; False
    when not run natively."""
    ext = _sgemm_extension(am, bm, out, init)
    if ext is None:
        return False
    if am.shape[0] == 0 or bm.shape[1] == 0:
        return True
    _by_parts(ext, None, am, bm, out, init, trans_a, trans_b, packed, 1.0, 1, parts)
    return True


def single_sgemm(am: np.ndarray, bm: np.ndarray, out: np.ndarray, *, alpha: float,
                 trans_b: bool, init: np.ndarray | None, unit_ldb: bool) -> bool:
    """out (m x n) = alpha * am (m x k) @ bm (k x n) (+ init, beta 1), float32 logical
    operands, as lowp.mlas_sgemm.gemm computes it on one thread (a kernel that calls MlasGemm
    without its thread pool: ONNX's Attention), one native call; `unit_ldb` false: B's or
    C's leading dimension as MLAS is handed it is not 1 (no N = 1 kernel). False when not
    run natively."""
    ext = _sgemm_extension(am, bm, out, init)
    if ext is None:
        return False
    if am.shape[0] == 0 or bm.shape[1] == 0:
        return True
    call(ext.float_sgemm_mlas, am, bm, out, float(alpha), False, trans_b, False, 1, init,
         None, 0, 0, *(() if unit_ldb else (False,)))
    return True


class EinsumPlan(NamedTuple):
    """A two-operand Einsum as a batch of products (lowp.runtime.float_ops.Einsum): a's axes
    in `perm_a` order fold to (nb, m, k), b's in `perm_b` order to (nb, k, n); the products,
    shaped `order_shape` (batch, row and column indices), take `to_out` to the output."""

    perm_a: tuple[int, ...]
    perm_b: tuple[int, ...]
    nb: int
    m: int
    k: int
    n: int
    order_shape: tuple[int, ...]
    to_out: tuple[int, ...]


def _folded(x: np.ndarray, perm: Sequence[int], shape: tuple[int, ...]) -> np.ndarray | None:
    """x's axes in `perm` order folded to `shape` as a view (no copy), rows of a product
    read in place; None where that takes a copy or a stride is negative."""
    try:
        v = x.transpose(perm).reshape(shape, copy=False)
    except ValueError:
        return None
    return v if all(s >= 0 for s in v.strides) else None


def einsum_products(a: np.ndarray, b: np.ndarray, plan: EinsumPlan) -> np.ndarray | None:
    """float32 Einsum of `a` and `b` by `plan`: one float_sgemm_mlas product per batch entry
    (MLAS's order, as the reference's copies compute it), reading the operands and writing
    the output in place through strided views, so no copy is made and every call repeats
    in a Program (an output that does not fold to the products' shape: the products into
    a buffer, then one native copy); None where it does not run natively or an operand does
    not fold to the products' shape without a copy."""
    ext = _has(_usable("Einsum", a), "float_sgemm_mlas")
    if ext is None or b.dtype != np.float32:
        return None
    av = _folded(a, plan.perm_a, (plan.nb, plan.m, plan.k))
    bv = _folded(b, plan.perm_b, (plan.nb, plan.k, plan.n))
    out_shape = tuple(plan.order_shape[i] for i in plan.to_out)
    to_order = tuple(int(i) for i in np.argsort(plan.to_out))
    if av is None or bv is None:
        return None
    # (whether the output folds depends on its shape only)
    if _rows_of_unit_stride(_folded(np.empty(out_shape, np.float32), to_order,
                                    (plan.nb, plan.m, plan.n))):
        y = _empty(out_shape)
        yv = _folded(y, to_order, (plan.nb, plan.m, plan.n))
        assert yv is not None
        for i in range(plan.nb):
            _by_parts(ext, None, av[i], bv[i], yv[i], None, False, False, False, 1.0, 1)
        return y
    # an output whose product rows are not rows of memory (attention's bts,bcs->bct): the
    # products into a buffer, then one native copy to the output's order (the reference's
    # transposed copy)
    if _has(ext, "take") is None or plan.nb * plan.m * plan.n >= 2**31:
        return None
    products = buffer((plan.nb, plan.m, plan.n))
    for i in range(plan.nb):
        _by_parts(ext, None, av[i], bv[i], products[i], None, False, False, False, 1.0, 1)
    return contiguous_copy(products.reshape(plan.order_shape).transpose(plan.to_out))


def _rows_of_unit_stride(v: np.ndarray | None) -> bool:
    return v is not None and (v.shape[2] <= 1 or v.strides[2] == 4)


_PERMUTED_MAPS: dict[tuple[tuple[int, ...], tuple[int, ...]], np.ndarray] = {}
# the same maps while anything holds them (a call a replay recorded reads its map again)
_PERMUTED_HELD: weakref.WeakValueDictionary[tuple[tuple[int, ...], tuple[int, ...]],
                                            np.ndarray] = weakref.WeakValueDictionary()


def contiguous_copy(x: np.ndarray) -> np.ndarray | None:
    """A C-contiguous float32 copy of `x`, a permuted view of contiguous memory (a
    channels-last tensor read channels-first), by one native `take` along an index map (a
    swap of two axis groups is copied in tiles), so that it repeats in a Program; None
    where `x` is no such view or it does not run natively."""
    ext = _has(_usable("Transpose", x), "take")
    if ext is None or x.ndim < 2 or x.size >= 2**31 or any(s <= 0 for s in x.strides):
        return None
    order = tuple(int(i) for i in np.argsort([-s for s in x.strides], kind="stable"))
    base = x.transpose(order)
    if not base.flags.c_contiguous:
        return None
    inverse = tuple(int(i) for i in np.argsort(order))
    key = (base.shape, inverse)
    # every map held (by the cache below, or by a recorded call) is in _PERMUTED_HELD: a
    # recorded call's map is found again after the cache is cleared, so that a replayed
    # signature's second recording matches its first
    mapped = _PERMUTED_HELD.get(key)
    if mapped is None:
        mapped = np.ascontiguousarray(
            np.arange(base.size, dtype=np.int32).reshape(base.shape).transpose(inverse)
        ).reshape(-1)
        _PERMUTED_HELD[key] = mapped
    if key not in _PERMUTED_MAPS:
        if len(_PERMUTED_MAPS) > 64:
            _PERMUTED_MAPS.clear()
        _PERMUTED_MAPS[key] = mapped
    y = _empty(x.shape)
    take, args = take_call(ext, base, mapped, NO_FILL, y, _threads)
    call(take, *args)
    return y
