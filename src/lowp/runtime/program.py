"""Programs: recorded native calls run by one call into the extension (lowp._native.Program).

A recorded call (lowp.runtime.tape) is ``(binding, arguments)``. `APPENDERS` maps each
binding that a Program can hold to the Program method of the same arguments; `append`
adds a step's calls to a Program when every one of them is such a call on arrays the
binding reads in place (so that the Program reads the very memory a call would). Calls of
any other binding are not appended: the compiler in lowp.runtime.replay ends the segment
there and repeats those calls from Python.

`FLOAT_KERNELS` maps float operators (numpy steps, lowp.runtime.float_ops) to the native
call that computes the same values into a buffer the plan owns; see `float_call`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lowp import eigen_math, ort_math

from .tape import Call

_BYTES = np.dtype(np.uint8)
_F32 = np.dtype(np.float32)

# Program method names of the extension's recordable bindings (same names and arguments)
_FUNCTIONS = ("add", "max_pool2d", "quantize", "quantize_to_channels_last", "lookup8",
              "global_average_pool", "float_unary", "float_pool2d", "float_mean_rows",
              "float_binary", "float_clamp", "lookup8_f32", "lookup_pair", "take",
              "float_softmax_rows", "float_softmax_axis", "float_sgemm_mlas", "float_sqrt",
              "float_layer_norm", "float_reduce_sum", "qsoftmax_rows", "copy_block",
              "interleave_rows", "bilinear_integer", "bilinear_float",
              "float_col2im", "qaverage_pool2d", "qmatmul_acts", "rnn",
              "gather_rows", "cast_to_float", "cast_from_float", "compare", "float_fused",
              "float_log", "float_reduce_max", "float_reduce_extreme", "qbinary",
              "float_conv_im2col", "float_conv_nchwc",
              "float_simplified_layer_norm", "float_instance_norm", "float_libm", "float_powf",
              "dynamic_quantize",
              "float_max_pool_channels_last", "float_sincos", "where", "cast_integer",
              "one_hot", "arg_max", "set_slice", "float_rnn",
              "float_elu", "float_average_pool_rowmajor", "scatter_nd", "float_softplus",
              "integer_binary",
              "float_conv_transpose_direct", "float_conv_transpose", "cast_half", "float_floor",
              "matmul_nbits", "qlstm", "float_attention", "tree_ensemble_scores",
              "tree_classes", "first_largest_labels", "normalize_rows", "zipmap_scores")
# bindings whose array arguments may be strided views (non-negative strides: the kernel
# takes them)
_STRIDED = frozenset({"float_binary", "lookup_pair", "float_sgemm_mlas", "rnn", "compare",
                      "float_fused", "qbinary", "where", "integer_binary"})
# bindings that take 16-bit arrays as they are (float16 bits as uint16: no converted copy)
_HALF = frozenset({"cast_half"})
# bindings that take int8 arrays as int8 (no converted copy): the quantized LSTM's panels
_INT8 = frozenset({"qlstm"})
# bindings that take float64 arrays as they are: a float64 tree ensemble's rows and scores
_F64 = frozenset({"tree_ensemble_scores", "tree_classes"})

Appender = Callable[[Any, Any, tuple[object, ...]], None]
_appenders: dict[object, tuple[str, Appender]] | None = None


@dataclass(frozen=True)
class FeedSlots:
    """The array arguments (by position) that a binding's Program method may read through
    `lowp._native.FeedSlot`s, set to the run's arrays before each run: a feed read where
    the caller keeps it instead of being copied into the signature's buffer first
    (lowp.runtime.replay). ``append(program, arguments, slots)`` appends the call with a
    slot or None for each of `positions`."""

    positions: tuple[int, ...]
    append: Callable[[Any, tuple[object, ...], list[Any]], None]


def _quantize_slot(program: Any, args: tuple[object, ...], slots: list[Any]) -> None:
    program.quantize_slot(slots[0], *args[1:])


def _quantize_to_channels_last_slot(program: Any, args: tuple[object, ...],
                                    slots: list[Any]) -> None:
    x = args[0]
    assert isinstance(x, np.ndarray)
    program.quantize_to_channels_last_slot(slots[0], *x.shape, *args[1:])


def _float_attention_slots(program: Any, args: tuple[object, ...], slots: list[Any]) -> None:
    program.float_attention(*args, *slots)      # (q_slot, k_slot, v_slot)


# bindings that read array arguments through FeedSlots: a QDQ file's first quantizers,
# whose one pass over the feed a copy into the signature's buffer would double, and float
# Attention's Q, K and V (read whole: at sequence 16 the copies were a tenth of the run)
FEED_SLOTS: dict[str, FeedSlots] = {
    "quantize": FeedSlots((0,), _quantize_slot),
    "quantize_to_channels_last": FeedSlots((0,), _quantize_to_channels_last_slot),
    "float_attention": FeedSlots((0, 1, 2), _float_attention_slots),
}


def extension() -> Any:
    """lowp._native (imported on first use: this module loads without the extension)."""
    from . import native_backend
    return native_backend._native


def appenders() -> dict[object, tuple[str, Appender]]:
    """Recorded binding -> (name, ``append(program, receiver, arguments)``)."""
    global _appenders
    if _appenders is None:
        ext = extension()
        table: dict[object, tuple[str, Appender]] = {}
        for name in _FUNCTIONS:
            table[getattr(ext, name)] = (name, _method(getattr(ext.Program, name)))
        table[ext.ConvOp.run] = ("conv_run", _conv_run)
        if hasattr(ext, "IntMatMul"):
            table[ext.IntMatMul.run] = ("int_matmul_run", _int_matmul_run)
            table[ext.IntMatMul.run_scaled] = ("int_matmul_scaled_run", _int_matmul_scaled_run)
            if hasattr(ext.IntMatMul, "run_conv"):
                table[ext.IntMatMul.run_conv] = ("int_matmul_conv_run", _int_matmul_conv_run)
            if hasattr(ext.IntMatMul, "run_per_token"):
                table[ext.IntMatMul.run_per_token] = ("int_matmul_per_token_run",
                                                      _int_matmul_per_token_run)
        _appenders = table
    return _appenders


def _method(method: Callable[..., None]) -> Appender:
    def add(program: Any, receiver: object, args: tuple[object, ...]) -> None:
        method(program, *args)
    return add


def _conv_run(program: Any, op: object, args: tuple[object, ...]) -> None:
    program.conv_run(op, *args)      # ConvOp.run(x, y) on the operator it was bound to


def _int_matmul_run(program: Any, op: object, args: tuple[object, ...]) -> None:
    program.int_matmul_run(op, *args)   # IntMatMul.run(a, a_zp, y, ...) on its packed B


def _int_matmul_scaled_run(program: Any, op: object, args: tuple[object, ...]) -> None:
    program.int_matmul_scaled_run(op, *args)    # IntMatMul.run_scaled on its packed B


def _int_matmul_conv_run(program: Any, op: object, args: tuple[object, ...]) -> None:
    program.int_matmul_conv_run(op, *args)     # IntMatMul.run_conv (ConvInteger) on its B


def _int_matmul_per_token_run(program: Any, op: object, args: tuple[object, ...]) -> None:
    program.int_matmul_per_token_run(op, *args)     # IntMatMul.run_per_token on its packed B


def new_program() -> Any:
    return extension().Program()


def _in_place(name: str, args: tuple[object, ...]) -> bool:
    """Every array argument is one the binding reads without a converted copy."""
    for a in args:
        if isinstance(a, np.ndarray) and (
                (a.dtype not in (_BYTES, _F32, np.dtype(np.int32), np.dtype(np.int64))
                 and not (name in _INT8 and a.dtype == np.int8)
                 and not (name in _F64 and a.dtype == np.float64)
                 and not (name in _HALF and a.dtype.itemsize == 2))
                or not (a.flags.c_contiguous or (name in _STRIDED
                                                 and min(a.strides, default=0) >= 0))):
            return False
    return True


def appendable(calls: list[Call]) -> bool:
    table = appenders()
    for fn, args in calls:
        entry = table.get(getattr(fn, "__func__", fn))
        if entry is None or not _in_place(entry[0], args):
            return False
    return True


def append(program: Any, calls: list[Call]) -> None:
    """Append `calls` (all `appendable`) to `program`."""
    table = appenders()
    for fn, args in calls:
        _, add = table[getattr(fn, "__func__", fn)]
        add(program, getattr(fn, "__self__", None), args)


def feed_slots(call: Call) -> FeedSlots | None:
    """The `FEED_SLOTS` of `call`'s binding (None: it reads every argument as recorded)."""
    fn, args = call
    entry = appenders().get(getattr(fn, "__func__", fn))
    slots = None if entry is None else FEED_SLOTS.get(entry[0])
    return slots if slots is not None and len(args) > max(slots.positions) else None


# ---------------------------------------------------------------------------------------
# float operators as native calls

# native/float_elementwise.h FloatBinaryOp (Max, Min: two operands only; ClipLow and ClipHigh:
# a Clip by a computed bound, float_ops.Clip's selects)
BINARY_CODES = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Max": 4, "Min": 5, "PRelu": 6,
                "ClipLow": 7, "ClipHigh": 8}
# native_float.UNARY_CODES, exact ones
UNARY_CODES = {"Sigmoid": 3, "Tanh": 4, "HardSwish": 6, "Neg": 10, "Abs": 11, "Relu": 14}
Made = tuple[Call, np.ndarray] | None


@dataclass(frozen=True)
class FloatKernel:
    """How a float operator of `arity` inputs (all activations) runs natively:
    ``make(inputs, out, threads)`` returns the call writing the result into `out` (float32,
    the broadcast shape of the inputs) and `out`, or None for inputs it does not cover."""

    arity: int
    make: Callable[[list[np.ndarray], np.ndarray, int], Made]
    strided: bool = False   # `make` reads its inputs at their own strides (any layout)
    places: bool = False    # `make` takes nchwc_block and channels_last (float_binary's)

    def __call__(self, inputs: list[np.ndarray], out: np.ndarray, threads: int,
                 nchwc_block: int = 0, channels_last: bool = False) -> Made:
        """`nchwc_block` (Add): ONNX Runtime runs the step on its NCHWc layout of
        blocks of that many channels (Step.nchwc_block), `out` channels-first;
        `channels_last` (Add and Mul): `out` is channels-last data, ONNX Runtime's
        channels-first (which NaN of two NaNs they give depends on the place)."""
        if any(v.dtype != _F32 or not (v.flags.c_contiguous or (self.strided and _dense(v)))
               for v in inputs) or out.size == 0:
            return None
        if self.places and (nchwc_block or channels_last):
            return self.make(inputs, out, threads, nchwc_block,  # type: ignore[call-arg]
                             channels_last)
        return self.make(inputs, out, threads)


def _channels_last_places(y: np.ndarray) -> list[int]:
    """float_binary's and float_fused's `channels_last` of channels-last `y` (N, ..., C):
    channels and the spatial size, or nothing for data of rank < 3 (docs/operators.md
    (O197))."""
    if y.ndim < 3 or y.size == 0:
        return []
    return [y.shape[-1], y.size // (y.shape[0] * y.shape[-1])]


def _dense(v: np.ndarray) -> bool:
    """`v` covers a block of memory without gaps at non-negative strides (a permutation of
    the axes of a contiguous array, such as a channels-first array viewed channels-last)."""
    if v.size == 0 or any(s < 0 for s in v.strides):
        return False
    span = sum((n - 1) * s for n, s in zip(v.shape, v.strides, strict=True)) // v.itemsize
    return span + 1 == v.size


def _binary(op: str) -> FloatKernel:
    def make(inputs: list[np.ndarray], y: np.ndarray, threads: int,
             nchwc_block: int = 0, channels_last: bool = False) -> Made:
        a, b = inputs
        if op == "PRelu" and b.ndim == 1 and b.size > 1:
            return None     # before opset 7 such a slope is per channel: not a broadcast
        shape = y.shape
        geometry = broadcast_geometry(shape, a, b)
        if geometry is None:
            return None
        dims, (sa, sb) = geometry
        if op in ("Max", "Min") and threads > 1 and dims[3] == y.size and len(
                eigen_math.ort_parallel_blocks(y.size, 1.0, threads)) > 1:
            return None     # ONNX Runtime's blocks make runs of their own (O105): float_ops
        nchwc: list[int] = []
        if nchwc_block and op == "Add" and y.ndim == 4 and a.shape == b.shape \
                == y.shape and y.shape[1] * y.shape[2] * y.shape[3] > 0:
            # (float_ops._two_nans's blocked places: block, channels, H * W)
            nchwc = [nchwc_block, y.shape[1], y.shape[2] * y.shape[3]]
        moved = _channels_last_places(y) if channels_last and op in ("Add", "Mul") else []
        return (extension().float_binary, (BINARY_CODES[op], a, b, y.reshape(-1), dims, sa,
                                            sb, threads, nchwc, moved)), y
    # (float_binary reads each operand at the element strides of `geometry`: the arithmetic
    # ones take a channels-first operand viewed channels-last beside a channels-last one,
    # replay._channels_last_operands; Max, Min and PRelu keep contiguous operands)
    return FloatKernel(2, make, strided=op in ("Add", "Sub", "Mul", "Div"), places=True)


# native/compare.h CompareOp and CompareType
COMPARE_CODES = {"Equal": 0, "Less": 1, "Greater": 2, "LessOrEqual": 3, "GreaterOrEqual": 4}
_COMPARE_TYPES = {np.dtype(np.int64): 0, np.dtype(np.int32): 1, _F32: 2}


def compare_call(op: str, a: np.ndarray, b: np.ndarray, out: np.ndarray, threads: int) -> Made:
    """`op` (a key of COMPARE_CODES) of `a` and `b` (one dtype: int64, int32 or float32,
    broadcast) into bool `out` of the broadcast shape, or None."""
    kind = _COMPARE_TYPES.get(a.dtype)
    if kind is None or b.dtype != a.dtype or out.dtype != np.bool_ or out.size == 0:
        return None
    geometry = broadcast_geometry(out.shape, a, b)
    if geometry is None:
        return None
    dims, (sa, sb) = geometry
    return (extension().compare, (COMPARE_CODES[op], a, b, out.reshape(-1).view(np.uint8),
                                  dims, sa, sb, kind, threads)), out


# native/compare.h IntegerOp and IntegerType: Add, Sub, Mul of int64 or int32 (numpy's
# wraparound), And, Or, Xor of bools (a Loop body's iteration counter and condition)
INTEGER_CODES = {"Add": 0, "Sub": 1, "Mul": 2, "And": 3, "Or": 4, "Xor": 5}
_INTEGER_TYPES = {np.dtype(np.int64): 0, np.dtype(np.int32): 1, np.dtype(np.bool_): 2}


def integer_call(op: str, a: np.ndarray, b: np.ndarray, out: np.ndarray, threads: int
                 ) -> Made:
    """`op` (a key of INTEGER_CODES) of `a` and `b` of one type (int64 or int32 for Add,
    Sub and Mul; bool for And, Or and Xor; broadcast) into contiguous `out` of that type
    and the broadcast shape, or None: numpy's values (`a + b`, np.logical_and, ...)."""
    kind = _INTEGER_TYPES.get(a.dtype)
    if (kind is None or b.dtype != a.dtype or out.dtype != a.dtype or out.size == 0
            or (kind == 2) != (INTEGER_CODES[op] >= 3) or not out.flags.c_contiguous):
        return None
    geometry = broadcast_geometry(out.shape, a, b)
    if geometry is None:
        return None
    dims, (sa, sb) = geometry
    if kind == 2:       # (bools as the bytes a Program takes)
        a, b, y = a.view(np.uint8), b.view(np.uint8), out.reshape(-1).view(np.uint8)
    else:
        y = out.reshape(-1)
    return (extension().integer_binary, (INTEGER_CODES[op], a, b, y, dims, sa, sb, kind,
                                         threads)), out


_FALSE, _TRUE = np.zeros((), np.bool_), np.ones((), np.bool_)
_BITS: dict[int, np.dtype] = {1: _BYTES, 4: np.dtype(np.int32), 8: np.dtype(np.int64)}


def where_call(c: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray, threads: int
               ) -> Made:
    """Where(c, a, b) (bool `c`; `a` and `b` of `out`'s dtype, of 1, 2, 4 or 8 bytes, no
    objects; all broadcast) into contiguous `out` of the broadcast shape, or None: whole
    elements copied, float_ops.Where bit for bit (a float -0 of one operand as +0, (O345))."""
    if (c.dtype != np.bool_ or a.dtype != out.dtype or b.dtype != out.dtype
            or out.dtype.kind not in "biuf" or out.itemsize not in (1, 2, 4, 8)
            or out.size == 0 or not out.flags.c_contiguous):
        # (numpy's own element types only: bfloat16 and other user types stay numpy's)
        return None
    geometry = broadcast_geometry(out.shape, c, a, b)
    if geometry is None:
        return None
    dims, (sc, sa, sb) = geometry
    # (as integers of the same size, which a Program takes: bools and bytes, 32- and 64-bit
    # values; 16-bit ones stay Python calls)
    bits = _BITS.get(out.itemsize)
    zero = ort_math.where_zero_operand(c.shape, a, b.shape) + 1      # (before the views)
    if bits is not None:
        a, b = a.view(bits), b.view(bits)
    return (extension().where, (c.view(np.uint8), a, b, (out if bits is None else out.view(
        bits)).reshape(-1), dims, sc, sa, sb, threads, zero)), out


def not_call(x: np.ndarray, out: np.ndarray, threads: int) -> Made:
    """Not of bool `x` into bool `out` of its shape: Where(x, False, True)."""
    if x.dtype != np.bool_ or out.dtype != np.bool_ or out.shape != x.shape:
        return None
    return where_call(x, _FALSE, _TRUE, out, threads)


def element_strides(a: np.ndarray, shape: tuple[int, ...]) -> list[int]:
    view = np.broadcast_to(a, shape)
    return [s // a.itemsize if n > 1 else 0 for s, n in zip(view.strides, shape, strict=True)]


def broadcast_geometry(shape: tuple[int, ...], *operands: np.ndarray
                       ) -> tuple[list[int], list[list[int]]] | None:
    """`operands` broadcast to `shape` as collapse_axes merges them: (dims, each operand's
    element strides), or None."""
    return collapse_axes(shape, [element_strides(v, shape) for v in operands])


def collapse_axes(shape: tuple[int, ...], strides: list[list[int]]
                  ) -> tuple[list[int], list[list[int]]] | None:
    """Merge axes that are contiguous in every operand, drop unit axes: at most 4 left
    (padded with leading ones), else None."""
    dims: list[int] = []
    out: list[list[int]] = [[] for _ in strides]
    for i, n in enumerate(shape):
        if n == 1:
            continue
        if dims and all(s[-1] == st[i] * n for s, st in zip(out, strides, strict=True)):
            dims[-1] *= n
            for s, st in zip(out, strides, strict=True):
                s[-1] = st[i]
            continue
        dims.append(n)
        for s, st in zip(out, strides, strict=True):
            s.append(st[i])
    if len(dims) > 4:
        return None
    pad = 4 - len(dims)
    return [1] * pad + dims, [[0] * pad + s for s in out]


def _floor(inputs: list[np.ndarray], y: np.ndarray, threads: int) -> Made:
    """ONNX Runtime's Floor in the runs of its parallel blocks at `threads` (O148)."""
    (x,) = inputs
    runs = eigen_math.assignment_runs(x.size, 1.0, threads)
    ends = [] if len(runs) <= 1 else [last for _, last in runs]
    return (extension().float_floor, (x.reshape(-1), y.reshape(-1), ends, threads)), y


def _sqrt(inputs: list[np.ndarray], y: np.ndarray, threads: int) -> Made:
    (x,) = inputs
    return (extension().float_sqrt, (x.reshape(-1), y.reshape(-1), threads)), y


def _unary(op: str) -> FloatKernel:
    def make(inputs: list[np.ndarray], y: np.ndarray, threads: int) -> Made:
        (x,) = inputs
        return (extension().float_unary, (UNARY_CODES[op], x.reshape(-1), y.reshape(-1), 0.0,
                                           0.0, threads)), y
    return FloatKernel(1, make)


_ONE = np.ones(1, _F32)


def _reciprocal(inputs: list[np.ndarray], y: np.ndarray, threads: int) -> Made:
    """1 / x as float_binary's Div of a broadcast one: the IEEE division numpy makes."""
    (x,) = inputs
    return _binary("Div").make([_ONE, x], y, threads)


# float operator -> how it runs natively (each kernel equals the numpy operator of
# lowp.runtime.float_ops bit for bit: tests/native/test_float_elementwise.py)
FLOAT_KERNELS: dict[str, FloatKernel] = {
    **{op: _binary(op) for op in BINARY_CODES},
    "Sqrt": FloatKernel(1, _sqrt),          # one IEEE operation: numpy's bits on every path
    "Reciprocal": FloatKernel(1, _reciprocal),     # likewise
    "Floor": FloatKernel(1, _floor),        # exact; a NaN as float_ops.Floor gives it (O148)
    # (not Gelu: its numpy operator picks the kernel by the `approximate` attribute, which a
    # step does not show; it is recorded as it ran instead, replay.NATIVE_FLOAT)
    **{op: _unary(op) for op in UNARY_CODES if op not in ("Gelu", "GeluTanh")},
}


# native/float_elementwise.h FusedOp: how each operator of a fused chain is computed (the
# same arithmetic as its FLOAT_KERNELS entry: float_binary, float_unary (Relu's kRelu too),
# float_sqrt); Pow is by an exponent of 2 (x * x, as replay's Pow), a Mul of x with itself
# float_ops.Erf on float32 is float_unary's Erf (MLAS's form) whatever its attributes, so a
# chain takes it too (its own step records the call as it runs: replay.NATIVE_FLOAT)
FUSED_CODES = {**{op: code for op, code in BINARY_CODES.items()
                  if op not in ("PRelu", "ClipLow", "ClipHigh")},
               **{op: 16 + code for op, code in UNARY_CODES.items()},
               "Erf": 16 + 0, "Sqrt": 33}


def fused_call(code: np.ndarray, inputs: list[np.ndarray], y: np.ndarray, threads: int,
               channels_last: bool = False) -> Made:
    """One float_fused call computing the chain `code` ((instructions, 4) int32: op, dst,
    a, b; native/float_elementwise.h) of `inputs` (float32, each broadcast to y's shape)
    into contiguous float32 `y`; None where the arrays do not fit it (a layout of negative
    strides, more than four axes left after merging). `channels_last`: `y` is channels-last
    data (FloatKernel's)."""
    if y.dtype != _F32 or not y.flags.c_contiguous or y.size == 0 or any(
            v.dtype != _F32 or min(v.strides, default=0) < 0 for v in inputs):
        return None
    shape = y.shape
    geometry = collapse_axes(shape, [element_strides(v, shape) for v in inputs]
                             or [[0] * len(shape)])
    if geometry is None:
        return None
    dims, strides = geometry
    flat = [s for st in strides[:len(inputs)] for s in st]
    moved = _channels_last_places(y) if channels_last else []
    return (extension().float_fused, (code, list(inputs), y.reshape(-1), dims, flat,
                                       threads, moved)), y


def clip_call(x: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None, out: np.ndarray,
              threads: int) -> Made:
    """Clip of float32 `x` to constant one-value bounds (either may be None: the type's
    lowest / largest finite value, as float_ops.Clip) into `out`."""
    if x.dtype != _F32 or not x.flags.c_contiguous or x.ndim == 0 or out.shape != x.shape:
        return None
    if any(b is not None and b.size != 1 for b in (lo, hi)) or x.size == 0:
        return None
    big = float(np.finfo(_F32).max)
    low = float(np.asarray(lo).astype(_F32).reshape(())) if lo is not None else -big
    high = float(np.asarray(hi).astype(_F32).reshape(())) if hi is not None else big
    return (extension().float_clamp, (x.reshape(-1), out.reshape(-1), low, high, True, True,
                                       threads)), out


def powf_call(x: np.ndarray, e: np.ndarray, out: np.ndarray, threads: int) -> Made:
    """powf(x, e) of contiguous float32 `x` by one float32 exponent `e` (not NaN) into
    `out`: the C library's powf per element, as ONNX Runtime's Pow by such an exponent
    (float_ops.Pow: other than 2 and 3 where its loop takes the exponent per span)."""
    if (x.dtype != _F32 or e.dtype != _F32 or e.size != 1 or not x.flags.c_contiguous
            or out.shape != x.shape or x.size == 0 or np.isnan(e).any()):
        return None
    return (extension().float_powf, (x.reshape(-1), float(e.reshape(-1)[0]), out.reshape(-1),
                                      threads)), out


def dequantize_call(x: np.ndarray, table: np.ndarray, out: np.ndarray, threads: int) -> Made:
    """y[i] = table[x[i]]: a per-tensor DequantizeLinear of 8-bit `x`, with `table` its
    results on the 256 codes (computed by the step itself), into float32 `out`."""
    if x.dtype.itemsize != 1 or x.dtype.kind not in "iu" or not x.flags.c_contiguous:
        return None
    if table.dtype != _F32 or table.shape != (256,) or out.shape != x.shape or x.size == 0:
        return None
    return (extension().lookup8_f32, (x.view(np.uint8).reshape(-1), table, out.reshape(-1),
                                       threads)), out
