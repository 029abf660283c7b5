"""Native backend front: validates arguments in Python, then one call into lowp._native.

The C++ core (native/, described in docs/native.md) computes exactly what the numpy reference
ops compute (lowp.ops.conv / lowp.ops.linear with lowp.fixedpoint.Requant), on every
instruction-set path. Activations are channels-last: (N, *spatial, C).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence

import numpy as np

from .. import _native  # type: ignore[attr-defined]
from ..errors import NodeError
from ..fixedpoint import Requant, RequantMode, quantize_multiplier
from .tape import call as _call

_INT8_TYPES = (np.dtype(np.uint8), np.dtype(np.int8))
_ENV_VAR = "LOWP_ISA"
def available_paths() -> list[str]:
    """Instruction-set paths this CPU can run, 'scalar' always first."""
    return list(_native.available_paths())


def active_path() -> str:
    """The path new calls use: the best available one unless forced."""
    return str(_native.active_path())


def set_path(name: str) -> None:
    """Force the instruction-set path ('scalar', 'avx2', 'avxvnni', 'avx512vnni', ...).

    Raises ValueError for an unknown name or a path this CPU lacks.
    """
    _native.set_path(str(name))


@contextlib.contextmanager
def use_path(name: str) -> Iterator[None]:
    """Run the body with `name` forced, then restore the previous path."""
    previous = active_path()
    set_path(name)
    try:
        yield
    finally:
        set_path(previous)


def max_threads() -> int:
    """Hardware threads the native pool can use."""
    return int(_native.max_threads())


def _threads(threads: int | None) -> int:
    """A kernel's thread count: as given (0: every hardware thread), or with None the
    running session's (lowp.runtime.native_float's count, which Session.run sets)."""
    if threads is None:
        from . import native_float
        return native_float.get_threads()
    return NativeConv._check_threads(threads)


def _int_range(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _per_channel(value: int | np.ndarray, count: int, what: str, lo: int, hi: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integer, got dtype {arr.dtype}")
    if arr.ndim == 0:
        arr = np.full(count, int(arr), dtype=np.int64)
    if arr.shape != (count,):
        raise ValueError(f"{what} must be a scalar or have shape ({count},), got {arr.shape}")
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise ValueError(f"{what} must lie in [{lo}, {hi}]")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _requant_arrays(requant: Requant, count: int) -> tuple[np.ndarray, ...]:
    """Per-channel (scale, multiplier, left shift, right shift) for the epilogue."""
    if not isinstance(requant, Requant):
        raise ValueError(f"requant must be a lowp.fixedpoint.Requant, got {type(requant)}")
    out_dtype = np.dtype(requant.out_dtype)
    if out_dtype not in _INT8_TYPES:
        raise ValueError(f"native kernels write uint8 or int8, not {out_dtype}")
    lo, hi = _int_range(out_dtype)
    if not lo <= requant.qmin <= requant.qmax <= hi:
        raise ValueError(f"clamp range [{requant.qmin}, {requant.qmax}] exceeds {out_dtype}")
    if not -(1 << 24) <= requant.zero_point <= (1 << 24):
        raise ValueError(f"output zero point {requant.zero_point} is out of range")
    scale = np.asarray(requant.scale, dtype=np.float32)
    if scale.ndim == 0:
        scale = np.full(count, scale, dtype=np.float32)
    if scale.shape != (count,):
        raise ValueError(f"requant scale must be a scalar or have shape ({count},), "
                         f"got {scale.shape}")
    if requant.mode is RequantMode.FIXEDPOINT:
        mult, exp = quantize_multiplier(scale)
        left = np.maximum(exp, 0)
        right = np.maximum(-exp, 0)
        if left.size and (int(left.max()) > 31 or int(right.max()) > 62):
            raise ValueError("requant scale outside [2^-62, 2^31] cannot be run natively")
    else:
        if not np.all(np.isfinite(scale)):
            raise ValueError("requant scale must be finite")
        mult = np.full(count, 1 << 30, dtype=np.int64)
        left = right = np.zeros(count, dtype=np.int64)
    return (np.ascontiguousarray(scale), mult.astype(np.int32), left.astype(np.int32),
            right.astype(np.int32))


def _axis_params(values: Sequence[int] | None, rank: int, default: int, what: str,
                 minimum: int) -> tuple[int, ...]:
    out = tuple(int(v) for v in values) if values is not None else (default,) * rank
    if len(out) != rank:
        raise ValueError(f"{what} needs {rank} entries, got {len(out)}")
    if any(v < minimum for v in out):
        raise ValueError(f"{what} must be >= {minimum}, got {out}")
    return out


class NativeConv:
    """Prepacked quantized convolution (ONNX Conv on integers), channels-last activations.

    Parameters
    ----------
    w
        int8/uint8 weights in ONNX layout (M, C / group, *kernel), 1 to 3 spatial axes.
    bias
        int32 (M,) at scale s_x * s_w, or None.
    x_zero_point, x_dtype
        Zero point and dtype (uint8 or int8) of the activation; padding uses the zero point.
    w_zero_point
        Scalar or per output channel (M,).
    requant
        Output requantization (FLOAT32 or FIXEDPOINT, per tensor or per channel); its
        qmin/qmax carry a fused ReLU/Clip.
    strides, pads, dilations, group
        ONNX attributes; pads are all begins then all ends.
    threads
        Threads per call, 0 for every hardware thread. Results never depend on it.
    """

    def __init__(self, w: np.ndarray, bias: np.ndarray | None, *, x_zero_point: int,
                 x_dtype: np.dtype | type, w_zero_point: int | np.ndarray, requant: Requant,
                 strides: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                 dilations: Sequence[int] | None = None, group: int = 1,
                 threads: int = 0) -> None:
        w = np.asarray(w)
        if w.dtype not in _INT8_TYPES:
            raise ValueError(f"weights must be int8 or uint8, got {w.dtype}")
        if w.ndim not in (3, 4, 5):
            raise ValueError(f"weights must be (M, C/group, *kernel) with 1-3 spatial axes, "
                             f"got shape {w.shape}")
        rank = w.ndim - 2
        m, cg = int(w.shape[0]), int(w.shape[1])
        group = int(group)
        if group < 1 or m % group or m == 0 or cg == 0 or min(w.shape[2:]) < 1:
            raise ValueError(f"weight shape {w.shape} does not fit group={group}")
        self.rank = rank
        self.kernel = tuple(int(k) for k in w.shape[2:])
        self.strides = _axis_params(strides, rank, 1, "strides", 1)
        self.dilations = _axis_params(dilations, rank, 1, "dilations", 1)
        self.pads = _axis_params(pads, 2 * rank, 0, "pads", 0)
        self.group = group
        self.in_channels = cg * group
        self.out_channels = m
        self.x_dtype = np.dtype(x_dtype)
        if self.x_dtype not in _INT8_TYPES:
            raise ValueError(f"activations must be uint8 or int8, got {self.x_dtype}")
        xlo, xhi = _int_range(self.x_dtype)
        if not xlo <= int(x_zero_point) <= xhi:
            raise ValueError(f"x_zero_point {x_zero_point} is outside {self.x_dtype}")
        wlo, whi = _int_range(w.dtype)
        w_zp = _per_channel(w_zero_point, m, "w_zero_point", wlo, whi)
        bias_arr = None
        if bias is not None:
            b = np.asarray(bias)
            if b.shape != (m,) or b.dtype.kind not in "iu":
                raise ValueError(f"bias must be integer with shape ({m},), got {b.dtype} "
                                 f"{b.shape}")
            lo32, hi32 = _int_range(np.dtype(np.int32))
            if b.size and (int(b.min()) < lo32 or int(b.max()) > hi32):
                raise ValueError("bias does not fit int32")
            bias_arr = np.ascontiguousarray(b, dtype=np.int32)
        self.requant = requant
        self.out_dtype = np.dtype(requant.out_dtype) if isinstance(requant, Requant) else None
        # input shape -> (output shape, 5-d input shape, 5-d output shape), see __call__
        self._plans: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {}
        scale, mult, left, right = _requant_arrays(requant, m)
        pad3 = (0,) * (3 - rank)
        one3 = (1,) * (3 - rank)
        geo = [*one3, *self.kernel, *one3, *self.strides, *one3, *self.dilations,
               *pad3, *self.pads[:rank], *pad3, *self.pads[rank:], group, self.in_channels, m]
        w_bytes = np.ascontiguousarray(w).view(np.uint8).reshape(-1)
        self._op = _native.ConvOp(
            geo, self.x_dtype == np.int8, int(x_zero_point), w.dtype == np.int8, w_bytes,
            w_zp, bias_arr, scale, mult, left, right, int(requant.zero_point),
            int(requant.qmin), int(requant.qmax), requant.mode is RequantMode.FIXEDPOINT,
            self._check_threads(threads), True)

    @staticmethod
    def _check_threads(threads: int) -> int:
        if int(threads) < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        return int(threads)

    @property
    def threads(self) -> int:
        return int(self._op.threads)

    @threads.setter
    def threads(self, value: int) -> None:
        self._op.threads = self._check_threads(value)

    @property
    def uses_depthwise_kernel(self) -> bool:
        """True when the direct depthwise kernels run this convolution."""
        return bool(self._op.depthwise)

    @property
    def panels_id(self) -> int:
        """Identity of the packed weight panels: convolutions whose panels are equal byte
        for byte share one copy and report the same value; 0 for the depthwise kernels."""
        return int(self._op.panels_id)

    def output_shape(self, x_shape: Sequence[int]) -> tuple[int, ...]:
        """Channels-last output shape for a channels-last input shape."""
        plan = self._plans.get(x_shape) if type(x_shape) is tuple else None
        if plan is not None:
            return plan[0]
        if len(x_shape) != self.rank + 2:
            raise NodeError(f"input must have rank {self.rank + 2} (N, *spatial, C), "
                             f"got shape {tuple(x_shape)}")
        if x_shape[-1] != self.in_channels:
            raise NodeError(f"input has {x_shape[-1]} channels, weights expect "
                             f"{self.in_channels}")
        spatial = [int(s) for s in x_shape[1:-1]]
        out = []
        for i, size in enumerate(spatial):
            span = (self.kernel[i] - 1) * self.dilations[i] + 1
            padded = size + self.pads[i] + self.pads[i + self.rank]
            if padded < span:
                raise NodeError(f"kernel extent {span} exceeds padded input {padded} on "
                                 f"spatial axis {i}")
            out.append((padded - span) // self.strides[i] + 1)
        return (int(x_shape[0]), *out, self.out_channels)

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Convolve channels-last `x`; `out`, if given, is a buffer to write into (it must
        be C-contiguous with the output's shape and dtype) and is returned."""
        # Fast path for the steady state of a session (same input shape every run, arena
        # output): the shapes were validated on the first call with this input shape.
        plan = self._plans.get(x.shape) if type(x) is np.ndarray else None
        if (plan is not None and out is not None and x.dtype == self.x_dtype
                and x.flags.c_contiguous and type(out) is np.ndarray
                and out.shape == plan[0] and out.dtype == self.out_dtype
                and out.flags.c_contiguous):
            _call(self._op.run, x.reshape(plan[1]).view(np.uint8),
                  out.reshape(plan[2]).view(np.uint8))
            return out
        x = np.asarray(x)
        if x.dtype != self.x_dtype:
            raise ValueError(f"input dtype {x.dtype} differs from x_dtype {self.x_dtype}")
        out_shape = self.output_shape(x.shape)
        x = np.ascontiguousarray(x)
        pad = (1,) * (3 - self.rank)
        x5 = x.reshape((x.shape[0], *pad, *x.shape[1:]))
        if out is None:
            y = np.empty(out_shape, dtype=self.out_dtype)
        elif (out.shape != tuple(out_shape) or out.dtype != self.out_dtype
              or not out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous {self.out_dtype} array of shape "
                             f"{tuple(out_shape)}, got {out.dtype} {out.shape}")
        else:
            y = out
        y5 = y.reshape((out_shape[0], *pad, *out_shape[1:]))
        _call(self._op.run, x5.view(np.uint8), y5.view(np.uint8))
        if len(self._plans) < 16:
            self._plans[x.shape] = (tuple(out_shape), x5.shape, y5.shape)
        return y


class NativeMatMul:
    """Prepacked quantized matrix product ``a @ b`` with b (K, N) constant.

    `b_zero_point`, `bias` and per-channel requantization run along N (the columns).
    ``__call__(a)`` takes a of shape (..., K) in `a_dtype` and returns (..., N).
    """

    def __init__(self, b: np.ndarray, bias: np.ndarray | None, *, a_zero_point: int,
                 a_dtype: np.dtype | type, b_zero_point: int | np.ndarray, requant: Requant,
                 threads: int = 0) -> None:
        b = np.asarray(b)
        if b.ndim != 2:
            raise ValueError(f"b must be 2-d (K, N), got shape {b.shape}")
        if b.dtype not in _INT8_TYPES:
            raise ValueError(f"b must be int8 or uint8, got {b.dtype}")
        self.k, self.n = int(b.shape[0]), int(b.shape[1])
        if self.k == 0 or self.n == 0:
            raise ValueError(f"b must not be empty, got shape {b.shape}")
        w = np.ascontiguousarray(b.T).reshape(self.n, self.k, 1)
        self._conv = NativeConv(w, bias, x_zero_point=a_zero_point, x_dtype=a_dtype,
                                w_zero_point=b_zero_point, requant=requant, threads=threads)
        self.a_dtype = self._conv.x_dtype
        self.out_dtype = self._conv.out_dtype

    @property
    def threads(self) -> int:
        return self._conv.threads

    @threads.setter
    def threads(self, value: int) -> None:
        self._conv.threads = value

    @property
    def panels_id(self) -> int:
        """Identity of the packed weight panels (NativeConv.panels_id)."""
        return self._conv.panels_id

    def __call__(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``a @ b`` requantized; written into `out` (C-contiguous, (..., N)) when given."""
        a = np.asarray(a)
        if a.dtype != self.a_dtype:
            raise ValueError(f"a has dtype {a.dtype}, expected {self.a_dtype}")
        if a.ndim < 1 or a.shape[-1] != self.k:
            raise ValueError(f"a must have shape (..., {self.k}), got {a.shape}")
        lead = a.shape[:-1]
        rows = math.prod(lead)  # int; np.prod took a third of a small call's CPU time
        y = _out_buffer(out, (*lead, self.n), self.out_dtype)  # type: ignore[arg-type]
        # rows as the batch axis of a 1-wide convolution: zero rows is a zero batch
        self._conv(np.ascontiguousarray(a).reshape(rows, 1, self.k), out=y.reshape(rows, 1, self.n))
        return y


class NativeAdd:
    """Quantized element-wise Add (O10a) of two same-shape uint8/int8 tensors.

    Computes exactly what `lowp.ops.elementwise.add` computes for same-shape operands:
    ``y = clamp(rint(fma(a, ma, fma(b, mb, c))), qmin, qmax)`` with the raw integers as
    float32 and ``c = add_constant(ma, za, mb, zb, zy)``. `ma` and `mb` are the float32
    multipliers ``requant_scale(s_a, 1, s_y)`` and ``requant_scale(s_b, 1, s_y)``.
    Raises ValueError for anything the native loop does not cover (other dtypes, non-finite
    multipliers).
    """

    def __init__(self, *, a_dtype: np.dtype | type, ma: float, a_zero_point: int,
                 b_dtype: np.dtype | type, mb: float, b_zero_point: int, y_zero_point: int,
                 qmin: int, qmax: int, out_dtype: np.dtype | type,
                 threads: int | None = None) -> None:
        from ..ops.elementwise import add_constant

        self.a_dtype, self.b_dtype = np.dtype(a_dtype), np.dtype(b_dtype)
        self.out_dtype = np.dtype(out_dtype)
        for what, dt in (("a", self.a_dtype), ("b", self.b_dtype), ("output", self.out_dtype)):
            if dt not in _INT8_TYPES:
                raise ValueError(f"{what} must be uint8 or int8, got {dt}")
        self.ma, self.mb = np.float32(ma), np.float32(mb)
        for what, zp, dt in (("a_zero_point", a_zero_point, self.a_dtype),
                             ("b_zero_point", b_zero_point, self.b_dtype),
                             ("y_zero_point", y_zero_point, self.out_dtype)):
            lo, hi = _int_range(dt)
            if not lo <= int(zp) <= hi:
                raise ValueError(f"{what} {zp} is outside {dt}")
        lo, hi = _int_range(self.out_dtype)
        if not lo <= int(qmin) <= int(qmax) <= hi:
            raise ValueError(f"clamp range [{qmin}, {qmax}] exceeds {self.out_dtype}")
        with np.errstate(all="ignore"):
            c = add_constant(self.ma, int(a_zero_point), self.mb, int(b_zero_point),
                             int(y_zero_point))
        if not (np.isfinite(self.ma) and np.isfinite(self.mb) and np.isfinite(c)):
            raise ValueError("add multipliers must be finite")
        self._args = (self.a_dtype == np.int8, self.b_dtype == np.int8, float(self.ma),
                      float(self.mb), float(c), int(qmin), int(qmax))
        self._thread_count = None if threads is None else NativeConv._check_threads(threads)

    def __call__(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None
                 ) -> np.ndarray:
        if a.dtype != self.a_dtype or b.dtype != self.b_dtype:
            raise ValueError(f"inputs must be {self.a_dtype} and {self.b_dtype}, got "
                             f"{a.dtype} and {b.dtype}")
        if a.shape != b.shape:
            raise ValueError(f"inputs must have the same shape, got {a.shape} and {b.shape}")
        if out is None:
            out = np.empty(a.shape, self.out_dtype)
        elif out.shape != a.shape or out.dtype != self.out_dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {self.out_dtype} array of shape "
                             f"{a.shape}")
        _call(_native.add, np.ascontiguousarray(a).view(np.uint8).reshape(-1),
              np.ascontiguousarray(b).view(np.uint8).reshape(-1),
              out.view(np.uint8).reshape(-1), *self._args, _threads(self._thread_count))
        return out


def _out_buffer(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """`out` checked against the result's shape and dtype, or a new array."""
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {dtype} array of shape {shape}, got "
                         f"{out.dtype} {out.shape}")
    return out


def max_pool_2d(x: np.ndarray, *, kernel_shape: Sequence[int], strides: Sequence[int],
                pads: Sequence[int], dilations: Sequence[int], out_hw: Sequence[int],
                threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Channels-last 2-D max pool (O7) of a uint8/int8 (N, H, W, C) tensor.

    Equals `lowp.ops.pool.max_pool` with `Layout.CHANNELS_LAST`: the maximum over the
    in-bounds taps, the dtype's lowest value for a window without any. `out_hw` is the
    output's (OH, OW) (`lowp.ops.pool.pool_output_shape`, which applies ceil_mode); only the
    leading pads place the windows. Returns a C-contiguous (N, OH, OW, C) array: `out` when
    given.
    """
    if x.ndim != 4 or x.dtype not in _INT8_TYPES:
        raise ValueError(f"x must be a 4-d uint8/int8 array, got {x.ndim}-d {x.dtype}")
    geo = [int(v) for v in (*kernel_shape, *strides, *dilations, *pads[:2])]
    if len(kernel_shape) != 2 or len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
        raise ValueError("max_pool_2d needs 2 kernel sizes, strides, dilations and 4 pads")
    if min(geo[:6]) < 1 or min(int(p) for p in pads) < 0:
        raise ValueError(f"invalid pooling geometry {geo}")
    oh, ow = (int(v) for v in out_hw)
    n, h, w, c = x.shape
    y = _out_buffer(out, (n, max(oh, 0), max(ow, 0), c), x.dtype)
    if y.size == 0:
        return y
    xc = np.ascontiguousarray(x)
    _call(_native.max_pool2d, xc.view(np.uint8), y.view(np.uint8), [n, h, w, c, oh, ow],
          [geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7]],
          x.dtype == np.int8, _threads(threads))
    return y


def _quantize_checks(zero_point: int, qmin: int, qmax: int, dtype: np.dtype | type
                     ) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in _INT8_TYPES:
        raise ValueError(f"dtype must be uint8 or int8, got {dt}")
    lo, hi = _int_range(dt)
    if not lo <= int(qmin) <= int(qmax) <= hi:
        raise ValueError(f"clamp range [{qmin}, {qmax}] exceeds {dt}")
    if abs(int(zero_point)) > 1 << 21:
        raise ValueError(f"zero point {zero_point} is out of range")
    return dt


def quantize(x: np.ndarray, *, scale: float, zero_point: int, qmin: int, qmax: int,
             dtype: np.dtype | type, threads: int | None = None,
             out: np.ndarray | None = None
             ) -> np.ndarray:
    """Per-tensor quantization (Q6) of float32 data to uint8/int8.

    Equals `lowp.qparams.quantize`: ``clamp(rint(f32(x / scale)) + zero_point, qmin, qmax)``
    with a float32 division, ties to even and NaN -> qmin; any shape.
    """
    dt = _quantize_checks(zero_point, qmin, qmax, dtype)
    xf = np.asarray(x, dtype=np.float32, order="C")
    y = _out_buffer(out, xf.shape, dt)
    _call(_native.quantize, xf.reshape(-1), y.view(np.uint8).reshape(-1),
          float(np.float32(scale)), int(zero_point), int(qmin), int(qmax),
          _threads(threads))
    return y


def quantize_to_channels_last(x: np.ndarray, *, scale: float, zero_point: int, qmin: int,
                              qmax: int, dtype: np.dtype | type, threads: int | None = None,
                              out: np.ndarray | None = None) -> np.ndarray:
    """`quantize` of a channels-first (N, C, *spatial) tensor, written channels-last
    (N, *spatial, C): the layout change costs no separate pass over the data."""
    dt = _quantize_checks(zero_point, qmin, qmax, dtype)
    xf = np.asarray(x, dtype=np.float32, order="C")
    if xf.ndim < 3:
        raise ValueError(f"x must be (N, C, *spatial), got shape {xf.shape}")
    n, c = xf.shape[:2]
    y = _out_buffer(out, (n, *xf.shape[2:], c), dt)
    if y.size:
        _call(_native.quantize_to_channels_last, xf.reshape(n, c, -1),
              y.view(np.uint8).reshape(n, -1, c), float(np.float32(scale)), int(zero_point),
              int(qmin), int(qmax), _threads(threads))
    return y


def global_average_pool(x: np.ndarray, *, channels_last: bool, x_zero_point: int,
                        requant: Requant, out: np.ndarray | None = None) -> np.ndarray:
    """Global average pool (O8)-(O9) of a uint8/int8 (N, C, *spatial) or, with
    `channels_last`, (N, *spatial, C) tensor; `requant` maps the zero-point-corrected
    int32 sum to the output (its per-tensor scale already divided by the pixel count).
    Returns (N, C, 1, ...) or (N, 1, ..., C) in the requant's dtype."""
    if x.ndim < 3 or x.dtype not in _INT8_TYPES:
        raise ValueError(f"x must be a uint8/int8 array of rank >= 3, got {x.ndim}-d {x.dtype}")
    scale, mult, left, right = _requant_arrays(requant, 1)
    n = x.shape[0]
    c = x.shape[-1] if channels_last else x.shape[1]
    ones = (1,) * (x.ndim - 2)
    shape = (n, *ones, c) if channels_last else (n, c, *ones)
    assert requant.out_dtype is not None
    y = _out_buffer(out, shape, np.dtype(requant.out_dtype))
    xc = np.ascontiguousarray(x).view(np.uint8)
    pixels = int(np.prod(x.shape[1:-1] if channels_last else x.shape[2:]))
    x3 = xc.reshape(n, pixels, c) if channels_last else xc.reshape(n, c, pixels)
    if y.size:
        _call(_native.global_average_pool, x3, y.view(np.uint8).reshape(n, c), channels_last,
              x.dtype == np.int8, int(x_zero_point), float(scale[0]), int(mult[0]),
              int(left[0]), int(right[0]), requant.mode is RequantMode.FIXEDPOINT,
              int(requant.zero_point), int(requant.qmin), int(requant.qmax))
    return y


def average_pool_2d(x: np.ndarray, *, kernel_shape: Sequence[int], strides: Sequence[int],
                    pads: Sequence[int], dilations: Sequence[int], out_hw: Sequence[int],
                    count: np.ndarray, channels_last: bool, x_zero_point: int,
                    x_scale: float, y_scale: float, y_zero_point: int, qmin: int, qmax: int,
                    threads: int | None = None, out: np.ndarray | None = None
                    ) -> np.ndarray:
    """Quantized 2-D AveragePool of 8-bit (n, h, w, c) or (n, c, h, w) `x` in ONNX
    Runtime's float form (O8a), equal to lowp.ops.pool.average_pool in float32 mode;
    `count` (out_hw) holds the taps each output divides by (`ops.pool.window_counts`)."""
    if x.dtype not in _INT8_TYPES or x.ndim != 4:
        raise ValueError(f"average_pool_2d takes 4-d 8-bit data, got {x.dtype} {x.shape}")
    n = x.shape[0]
    c, h, w = (x.shape[3], *x.shape[1:3]) if channels_last else x.shape[1:]
    oh, ow = (int(v) for v in out_hw)
    shape = (n, oh, ow, c) if channels_last else (n, c, oh, ow)
    y = _out_buffer(out, shape, x.dtype)
    _call(_native.qaverage_pool2d, np.ascontiguousarray(x).view(np.uint8).reshape(-1),
          y.view(np.uint8).reshape(-1), np.ascontiguousarray(count, np.float32).reshape(-1),
          [n, c, h, w, oh, ow],
          [*(int(v) for v in kernel_shape), *(int(v) for v in strides),
           *(int(v) for v in dilations), int(pads[0]), int(pads[1])],
          channels_last, x.dtype == np.int8, int(x_zero_point), float(x_scale),
          float(y_scale), int(y_zero_point), int(qmin), int(qmax), _threads(threads))
    return y


class ActivationMatMul:
    """Quantized product of two 8-bit activations with numpy's matmul broadcasting of the
    leading axes (attention's Q·Kᵀ and P·V), int32 sums requantized per tensor in float32:
    ``clamp(rint(float32(acc) * scale) + y_zero_point)``, equal to (R2) while every |acc|
    stays below 2^24 (the caller's check). The batch offsets of each pair of shapes are
    made once (the same arrays every run, so a replayed call reads them)."""

    def __init__(self, *, a_zero_point: int, b_zero_point: int, scale: float,
                 y_zero_point: int, qmin: int, qmax: int, out_dtype: np.dtype | type) -> None:
        self.params = (int(a_zero_point), int(b_zero_point), float(np.float32(scale)),
                       int(y_zero_point), int(qmin), int(qmax))
        self.out_dtype = np.dtype(out_dtype)
        self._offsets: dict[tuple[tuple[int, ...], tuple[int, ...]],
                            tuple[np.ndarray, np.ndarray, tuple[int, ...]]] = {}

    def applies(self, a: np.ndarray, b: np.ndarray) -> bool:
        return (a.dtype in _INT8_TYPES and b.dtype in _INT8_TYPES and a.ndim >= 2
                and b.ndim >= 2 and a.shape[-1] == b.shape[-2] and a.shape[-1] > 0
                and self.out_dtype in _INT8_TYPES)

    def __call__(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
                 threads: int | None = None) -> np.ndarray:
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        key = (a.shape, b.shape)
        made = self._offsets.get(key)
        if made is None:
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
            idx = np.indices(batch).reshape(len(batch), -1) if batch else np.zeros((0, 1), int)

            def offsets(x: np.ndarray) -> np.ndarray:
                lead = x.shape[:-2]
                pad = len(batch) - len(lead)
                unit = x.shape[-2] * x.shape[-1]
                strides = [0] * pad + [int(np.prod(lead[i + 1:], dtype=np.int64)) * unit
                                       if lead[i] > 1 else 0 for i in range(len(lead))]
                return np.ascontiguousarray(
                    (np.array(strides, np.int64).reshape(-1, 1) * idx).sum(axis=0)
                    .astype(np.int64))

            made = self._offsets[key] = (offsets(a), offsets(b),
                                         (*batch, a.shape[-2], b.shape[-1]))
        a_off, b_off, shape = made
        y = _out_buffer(out, shape, self.out_dtype)
        za, zb, scale, zy, qmin, qmax = self.params
        _call(_native.qmatmul_acts, a.view(np.uint8).reshape(-1), b.view(np.uint8).reshape(-1),
              y.view(np.uint8).reshape(-1), a_off, b_off, a.shape[-2], a.shape[-1],
              b.shape[-1], a.dtype == np.int8, b.dtype == np.int8, self.out_dtype == np.int8,
              za, zb, scale, zy, qmin, qmax, _threads(threads))
        return y


def lookup(x: np.ndarray, table: np.ndarray, *, threads: int | None = None,
           out: np.ndarray | None = None) -> np.ndarray:
    """8-bit table lookup (O13): ``y[..., c] = table[c, x[..., c] as an unsigned byte]``.

    `table` is (256,) (one table) or (C, 256) with C the length of x's last axis, of
    uint8/int8 output values, indexed by the input byte's unsigned bit pattern.
    """
    if x.dtype not in _INT8_TYPES or table.dtype not in _INT8_TYPES:
        raise ValueError(f"lookup takes 8-bit inputs and tables, got {x.dtype} and {table.dtype}")
    channels = 1 if table.ndim == 1 else int(table.shape[0])
    if table.shape[-1] != 256 or table.ndim > 2 or (
            channels > 1 and (x.ndim == 0 or x.shape[-1] != channels)):
        raise ValueError(f"table of shape {table.shape} does not fit input {x.shape}")
    y = _out_buffer(out, x.shape, table.dtype)
    if y.size:
        _call(_native.lookup8, np.ascontiguousarray(x).view(np.uint8).reshape(-1),
              np.ascontiguousarray(table).view(np.uint8).reshape(-1),
              y.view(np.uint8).reshape(-1), channels, _threads(threads))
    return y


def _binary_geometry(a: np.ndarray, b: np.ndarray, shape: tuple[int, ...]
                     ) -> tuple[list[int], list[int], list[int]] | None:
    """The broadcast of `a` and `b` to `shape` merged into four axes: (dims, a's and b's
    element strides), or None when it does not merge or an operand has negative strides."""
    from .program import broadcast_geometry

    if any(s < 0 for s in (*a.strides, *b.strides)):
        return None
    geometry = broadcast_geometry(shape, a, b)
    if geometry is None:
        return None
    dims, (sa, sb) = geometry
    return dims, sa, sb


def lookup_pair(a: np.ndarray, b: np.ndarray, table: np.ndarray, *,
                threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray | None:
    """``table[(a bits << 8) | b bits]`` with numpy broadcasting of 8-bit `a` and `b` (a
    table of every value pair, `fastops.pair_table`), or None when the broadcast shape does
    not merge into four axes or an operand has negative strides (numpy then does it)."""
    if a.dtype not in _INT8_TYPES or b.dtype not in _INT8_TYPES or table.size != 65536:
        raise ValueError(f"lookup_pair takes 8-bit operands and 65,536 table entries, got "
                         f"{a.dtype}, {b.dtype} and {table.size}")
    shape = np.broadcast_shapes(a.shape, b.shape)
    if 0 in shape:                      # nothing to look up, whatever the axes
        return _out_buffer(out, shape, table.dtype)
    geometry = _binary_geometry(a, b, shape)
    if geometry is None:
        return None
    dims, sa, sb = geometry
    y = _out_buffer(out, shape, table.dtype)
    if y.size:
        _call(_native.lookup_pair, a.view(np.uint8), b.view(np.uint8),
              np.ascontiguousarray(table).view(np.uint8).reshape(-1),
              y.view(np.uint8).reshape(-1), dims, sa, sb, _threads(threads))
    return y


def qbinary_vectorized() -> bool:
    """Whether the active path runs `qbinary`'s rows as vectors (AVX-512); on the others
    its portable row is slower than a table of every value pair."""
    return active_path() in ("avx512vnni", "amx")


def qbinary(a: np.ndarray, b: np.ndarray, *, mul: bool, ma: float, mb: float, c: float,
            za: int, zb: int, qmin: int, qmax: int, out_dtype: np.dtype | type,
            threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray | None:
    """Quantized Add (O10a) or Mul (O11a, float32 mode) of 8-bit `a` and `b` with numpy
    broadcasting, in float32 as ONNX Runtime's QLinearAdd / QLinearMul kernels.

    Add: ``y = fma(a, ma, fma(b, mb, c))`` (the caller puts the operand (O10a) treats as a
    scalar second, with `c` from `ops.elementwise.add_constant`); Mul:
    ``y = float32(float32((a - za) * (b - zb)) * ma) + c`` with ``c = float32(zy)``; then
    ``clamp(round_half_even(y), qmin, qmax)`` as `out_dtype`. None when the broadcast shape
    does not merge into four axes or an operand has negative strides.
    """
    out_dtype = np.dtype(out_dtype)
    if a.dtype not in _INT8_TYPES or b.dtype not in _INT8_TYPES or out_dtype not in _INT8_TYPES:
        raise ValueError(f"qbinary takes 8-bit operands and output, got {a.dtype}, {b.dtype} "
                         f"and {out_dtype}")
    lo, hi = _int_range(out_dtype)
    if not lo <= int(qmin) <= int(qmax) <= hi:
        raise ValueError(f"clamp range [{qmin}, {qmax}] exceeds {out_dtype}")
    if not all(np.isfinite(np.float32(v)) for v in (ma, mb, c)):
        raise ValueError("qbinary multipliers must be finite")
    shape = np.broadcast_shapes(a.shape, b.shape)
    if 0 in shape:
        return _out_buffer(out, shape, out_dtype)
    geometry = _binary_geometry(a, b, shape)
    if geometry is None:
        return None
    dims, sa, sb = geometry
    y = _out_buffer(out, shape, out_dtype)
    _call(_native.qbinary, a.view(np.uint8), b.view(np.uint8), y.view(np.uint8).reshape(-1),
          dims, sa, sb, bool(mul), a.dtype == np.int8, b.dtype == np.int8, float(ma),
          float(mb), float(c), int(za), int(zb), int(qmin), int(qmax), _threads(threads))
    return y


def copy_block(x: np.ndarray, y: np.ndarray, rows: int, width: int, y_width: int,
               offset: int) -> None:
    """Copy `rows` rows of `width` bytes of contiguous `x` into contiguous `y`, whose rows
    are `y_width` bytes, at byte `offset` of each row (a Concat's part into its output)."""
    if not (x.flags.c_contiguous and y.flags.c_contiguous and x.dtype.itemsize == 1
            and y.dtype.itemsize == 1):
        raise ValueError("copy_block takes contiguous 8-bit arrays")
    if x.size:
        _call(_native.copy_block, x.reshape(-1).view(np.uint8), y.reshape(-1).view(np.uint8),
              int(rows), int(width), int(y_width), int(offset), 1)


def qsoftmax_rows(x: np.ndarray, n: int, table: np.ndarray, inv_scale: float, zero_point: int,
                  qmin: int, qmax: int, *, out: np.ndarray | None = None,
                  threads: int | None = None, inner: int = 1) -> np.ndarray:
    """Quantized Softmax (O17) of contiguous 8-bit `x`, viewed as (outer, n, inner), over its
    n axis (`table`: lowp.ops.softmax.exp_table for n; `inv_scale`: floor(1 / s_y) in
    float32), bit for bit with lowp.ops.softmax.softmax."""
    if x.dtype not in _INT8_TYPES or not x.flags.c_contiguous or n < 1 or inner < 1 or \
            x.size % (n * inner):
        raise ValueError(f"qsoftmax_rows takes contiguous 8-bit rows of {n} values, got "
                         f"{x.dtype} {x.shape}")
    y = _out_buffer(out, x.shape, x.dtype)
    if y.size:
        _call(_native.qsoftmax_rows, x.view(np.uint8).reshape(-1),
              np.ascontiguousarray(table, np.float32).reshape(-1), y.view(np.uint8).reshape(-1),
              n, float(inv_scale), int(zero_point), int(qmin), int(qmax),
              x.dtype == np.int8, _threads(threads), int(inner))
    return y


def _apply_env() -> None:
    forced = os.environ.get(_ENV_VAR, "").strip()
    if forced:
        try:
            set_path(forced)
        except ValueError as err:
            raise ValueError(f"{_ENV_VAR}={forced}: {err}") from None


_apply_env()
