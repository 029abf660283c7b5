"""Requantization of int32 accumulators: THE rounding rules, shared by every operator.

Two modes, chosen by the target (docs/quantization.md, (R1)-(R4)):

* FLOAT32: y = clamp(round_half_even(float32(acc) * M) + zp, qmin, qmax), M a float32
  (fbgemm, ONNX Runtime MLAS, XNNPACK fp32).
* FIXEDPOINT: M = m * 2^(e - 31) with a 31-bit multiplier m; y = clamp(zp +
  rounding_divide_by_pot(sat_rounding_doubling_high_mul(acc << l, m), r), qmin, qmax)
  (gemmlowp / TFLite / QNNPACK style), rounding half away from zero.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .errors import QuantizationError

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


class RequantMode(enum.Enum):
    FLOAT32 = "float32"
    FIXEDPOINT = "fixedpoint"


def requant_scale(x_scale: np.ndarray | float, w_scale: np.ndarray | float,
                  y_scale: np.ndarray | float) -> np.ndarray:
    """M = float32(float32(s_x * s_w) / s_y), computed in float32 in this order (R1)."""
    xw = (np.float32(x_scale) * np.asarray(w_scale, dtype=np.float32)).astype(np.float32)
    return (xw / np.float32(y_scale)).astype(np.float32)


def fma32(a: np.ndarray | np.floating | float, b: np.ndarray | np.floating | float,
          c: np.ndarray | np.floating | float) -> np.ndarray:
    """float32 fused multiply-add, a * b + c rounded once to nearest even (IEEE fma).

    The product of two float32 values is exact in float64; the float64 sum is made exact by
    Knuth's TwoSum (s + err == p + c), and rounding s to float32 is only wrong when s lies
    exactly half-way between two float32 values and err breaks the tie: then the neighbour
    on err's side is taken. Used where a peer's kernel fuses (ONNX Runtime's QLinearAdd).

    Examples
    --------
    >>> float(fma32(np.float32(1 + 2**-23), np.float32(1 - 2**-23), np.float32(-1)))
    -1.4210854715202004e-14
    """
    a64 = np.asarray(a, np.float32).astype(np.float64)
    b64 = np.asarray(b, np.float32).astype(np.float64)
    c64 = np.asarray(c, np.float32).astype(np.float64)
    p = a64 * b64                                   # exact: 24 + 24 bits
    s = p + c64
    r = np.array(s.astype(np.float32), ndmin=1)
    # s exactly half-way between two float32 values: in float32's normal range, the 29
    # float64 significand bits below float32's are 1000...0; rarer cases (subnormal
    # float32 results) take the general test below. Only those few need TwoSum's error.
    tie = (s.view(np.int64) & 0x1FFFFFFF) == 0x10000000
    tiny = np.abs(s) < 2.0 ** -125
    fix = np.flatnonzero(tie | tiny)
    if fix.size:
        pp = np.broadcast_to(p, s.shape).ravel()[fix]
        cc = np.broadcast_to(c64, s.shape).ravel()[fix]
        ss, rr = s.ravel()[fix], r.ravel()[fix]
        bp = ss - cc
        ee = (pp - bp) + (cc - (ss - bp))           # TwoSum: s + err == p + c exactly
        d = ss - rr.astype(np.float64)                  # where s fell from r (exact)
        toward = np.nextafter(rr, np.where(d > 0, np.float32(np.inf), np.float32(-np.inf)))
        half = (d != 0) & (np.abs(d) * 2 == np.abs(toward.astype(np.float64) - rr))
        # a tie broken by err towards `toward` (err on the same side as d) moves there
        r.ravel()[fix] = np.where((ee != 0) & half & ((ee > 0) == (d > 0)), toward, rr)
    r = r.reshape(s.shape)
    return np.asarray(r, np.float32)


def quantize_multiplier(scale: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Split positive float32 scales into (multiplier in [2^30, 2^31), shift) (R3).

    scale == multiplier * 2^(shift - 31) exactly for float32 inputs: a float32 has a 24-bit
    significand, so the 31-bit multiplier holds it without rounding.

    Examples
    --------
    >>> m, s = quantize_multiplier(np.float32(0.25))
    >>> int(m), int(s)
    (1073741824, -1)
    """
    s = np.asarray(scale, dtype=np.float32).astype(np.float64)
    if np.any(~np.isfinite(s)) or np.any(s <= 0):
        raise QuantizationError(f"requantization scale must be finite and positive, got {s}")
    frac, exp = np.frexp(s)                      # s = frac * 2^exp, frac in [0.5, 1)
    mult = np.rint(frac * float(1 << 31)).astype(np.int64)   # exact for float32 inputs
    overflow = mult == (1 << 31)
    mult = np.where(overflow, mult // 2, mult)
    exp = np.where(overflow, exp + 1, exp)
    return mult.astype(np.int64), exp.astype(np.int64)


def _sat_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values held in int64 (R4)."""
    ab = a * b                                       # fits in int64 for int32 operands
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # C++ integer division truncates toward zero
    q = np.where(num >= 0, num >> 31, -((-num) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, q)


def _rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero (R4)."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


@dataclass(frozen=True, eq=False)
class Requant:
    """Everything the epilogue needs to turn int32 accumulators into output integers.

    `scale` is M (R1): a float32 scalar or one value per output channel. `qmin`/`qmax`
    are the output clamp bounds: the type's range narrowed by a fused ReLU/Clip.
    """

    scale: np.ndarray
    zero_point: int
    qmin: int
    qmax: int
    mode: RequantMode = RequantMode.FLOAT32
    out_dtype: np.dtype = np.dtype(np.uint8)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32))
        object.__setattr__(self, "out_dtype", np.dtype(self.out_dtype))
        if self.qmin > self.qmax:
            raise QuantizationError(f"empty output range [{self.qmin}, {self.qmax}]")

    def apply(self, acc: np.ndarray, channel_axis: int = -1) -> np.ndarray:
        """Requantize int32 `acc`; per-channel scales run along `channel_axis`."""
        scale = self.scale
        if scale.ndim:
            shape = [1] * acc.ndim
            shape[channel_axis] = -1
            scale = scale.reshape(shape)
        return requantize(acc, scale, self.zero_point, self.qmin, self.qmax, self.mode
                          ).astype(self.out_dtype)


def requantize(acc: np.ndarray, scale: np.ndarray | float, zero_point: int | np.ndarray,
               qmin: int, qmax: int, mode: RequantMode = RequantMode.FLOAT32) -> np.ndarray:
    """Requantize int32 accumulators to [qmin, qmax] (R2) or (R4); returns int32.

    int64 accumulators (16-bit layers, (S8)) are accepted in FLOAT32 mode.

    Examples
    --------
    >>> requantize(np.array([5, 15, -1000], np.int32), np.float32(0.1), 3, 0, 255).tolist()
    [3, 5, 0]
    """
    acc = np.asarray(acc)
    if acc.dtype != np.int32 and not (acc.dtype == np.int64 and mode is RequantMode.FLOAT32):
        raise QuantizationError(f"accumulators must be int32 (int64 only for float32 "
                                f"requantization of 16-bit layers), got {acc.dtype}")
    scale = np.asarray(scale, dtype=np.float32)
    if mode is RequantMode.FLOAT32:
        y = np.rint(acc.astype(np.float32) * scale).astype(np.float64)       # (R2)
        y = y + np.asarray(zero_point, dtype=np.float64)
        return np.clip(y, qmin, qmax).astype(np.int32)
    mult, exp = quantize_multiplier(scale)
    left = np.maximum(exp, 0)
    right = np.maximum(-exp, 0)
    x = np.clip(acc.astype(np.int64) << left, INT32_MIN, INT32_MAX)
    x = _sat_rounding_doubling_high_mul(x, mult)
    x = _rounding_divide_by_pot(x, right)
    y = x + np.asarray(zero_point, dtype=np.int64)
    return np.clip(y, qmin, qmax).astype(np.int32)
