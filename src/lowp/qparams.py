"""Quantization parameters: QType, granularity, choose_qparams, quantize, dequantize.

The math is specified in docs/quantization.md; equation numbers are cited as (Qn).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from onnx import TensorProto

from .errors import QuantizationError

FLOAT32_EPS = float(np.finfo(np.float32).eps)


class QType(enum.Enum):
    """An integer storage type and its full representable range."""

    UINT8 = "uint8"
    INT8 = "int8"
    UINT16 = "uint16"
    INT16 = "int16"
    UINT4 = "uint4"
    INT4 = "int4"
    INT32 = "int32"

    @property
    def bits(self) -> int:
        return {"uint8": 8, "int8": 8, "uint16": 16, "int16": 16, "uint4": 4, "int4": 4,
                "int32": 32}[self.value]

    @property
    def signed(self) -> bool:
        return self.value.startswith("int")

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def numpy_dtype(self) -> np.dtype:
        """Storage dtype in numpy (4-bit values are held in 8-bit containers)."""
        return np.dtype({"uint8": np.uint8, "int8": np.int8, "uint16": np.uint16,
                         "int16": np.int16, "uint4": np.uint8, "int4": np.int8,
                         "int32": np.int32}[self.value])

    @property
    def onnx_type(self) -> int:
        return {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8,
                "uint16": TensorProto.UINT16, "int16": TensorProto.INT16,
                "uint4": TensorProto.UINT4, "int4": TensorProto.INT4,
                "int32": TensorProto.INT32}[self.value]

    @classmethod
    def from_onnx(cls, elem_type: int) -> QType:
        for q in cls:
            if q.onnx_type == elem_type:
                return q
        raise QuantizationError(f"ONNX element type {elem_type} is not a quantized type")

    @classmethod
    def from_numpy(cls, dtype: np.dtype) -> QType:
        for q in (cls.UINT8, cls.INT8, cls.UINT16, cls.INT16, cls.INT32):
            if q.numpy_dtype == np.dtype(dtype):
                return q
        raise QuantizationError(f"numpy dtype {dtype} is not a quantized type")


# --- granularity: a typed value, not a string -------------------------------------------------

@dataclass(frozen=True)
class PerTensor:
    """One scale and zero point for the whole tensor."""


@dataclass(frozen=True)
class PerAxis:
    """One scale and zero point per index along `axis` (per channel)."""

    axis: int = 0


@dataclass(frozen=True)
class PerGroup:
    """One scale and zero point per block of `group_size` consecutive indices along `axis`.

    With axis = output channels and group_size = C_out / groups this is Caffe2's group-wise
    convolution quantization; along the input axis it is ONNX's blocked quantization.
    """

    axis: int
    group_size: int


Granularity = PerTensor | PerAxis | PerGroup


@dataclass(frozen=True, eq=False)
class QParams:
    """Scale, zero point and integer range of a quantized tensor, see (Q1).

    `scale` and `zero_point` are 0-d arrays for PerTensor and 1-d arrays (one entry per
    channel or group) otherwise. `qmin`/`qmax` may be narrower than the storage type
    (reduce_range, narrow range); the storage type is `qtype`.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    qtype: QType
    qmin: int
    qmax: int
    granularity: Granularity = field(default_factory=PerTensor)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32))
        object.__setattr__(self, "zero_point", np.asarray(self.zero_point, dtype=np.int32))
        if self.scale.shape != self.zero_point.shape:
            raise QuantizationError("scale and zero_point must have the same shape")
        if isinstance(self.granularity, PerTensor) and self.scale.ndim != 0:
            raise QuantizationError("per-tensor qparams need scalar scale and zero_point")
        if not isinstance(self.granularity, PerTensor) and self.scale.ndim != 1:
            raise QuantizationError("per-axis/per-group qparams need 1-d scale and zero_point")
        if not (self.qtype.qmin <= self.qmin <= self.qmax <= self.qtype.qmax):
            raise QuantizationError(
                f"range [{self.qmin}, {self.qmax}] does not fit {self.qtype.value}")
        if np.any(~np.isfinite(self.scale)) or np.any(self.scale <= 0):
            raise QuantizationError(f"scales must be finite and positive, got {self.scale}")

    @property
    def is_per_tensor(self) -> bool:
        return isinstance(self.granularity, PerTensor)

    def __repr__(self) -> str:
        s = self.scale if self.scale.ndim else float(self.scale)
        z = self.zero_point if self.zero_point.ndim else int(self.zero_point)
        return (f"QParams(scale={s}, zero_point={z}, qtype={self.qtype.value}, "
                f"range=[{self.qmin}, {self.qmax}], granularity={self.granularity})")

    def broadcast(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        """Scale and zero point shaped to broadcast against a tensor of rank `ndim`.

        For PerGroup the caller expands groups first (see `expand_groups`).
        """
        if isinstance(self.granularity, PerTensor):
            return self.scale, self.zero_point
        axis = self.granularity.axis % ndim
        shape = [1] * ndim
        shape[axis] = -1
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    def expand_groups(self, length: int) -> QParams:
        """PerGroup -> PerAxis by repeating each group's parameters `group_size` times."""
        if not isinstance(self.granularity, PerGroup):
            return self
        g = self.granularity
        if length % g.group_size:
            raise QuantizationError(f"axis length {length} is not a multiple of group size "
                                    f"{g.group_size}")
        return QParams(np.repeat(self.scale, g.group_size),
                       np.repeat(self.zero_point, g.group_size),
                       self.qtype, self.qmin, self.qmax, PerAxis(g.axis))


def quant_range(qtype: QType, *, reduce_range: bool = False,
                narrow_range: bool = False) -> tuple[int, int]:
    """Integer range used for a tensor (Q4): full, 1 bit less (reduce_range) or narrow."""
    qmin, qmax = qtype.qmin, qtype.qmax
    if reduce_range:
        if qtype.signed:
            qmin, qmax = qmin // 2, qmax // 2
        else:
            qmax = qmax // 2
    if narrow_range and qtype.signed:
        qmin = -qmax
    return qmin, qmax


def choose_qparams(min_val: float | np.ndarray, max_val: float | np.ndarray, qtype: QType, *,
                   symmetric: bool = False, reduce_range: bool = False,
                   narrow_range: bool = False, preserve_sparsity: bool = False,
                   min_scale: float = FLOAT32_EPS, granularity: Granularity | None = None,
                   name: str = "tensor") -> QParams:
    """Choose scale and zero point for the real range [min_val, max_val], see (Q2)-(Q5).

    Parameters
    ----------
    min_val, max_val
        Observed range; scalars for per-tensor, 1-d arrays for per-axis / per-group.
    qtype
        Storage type of the quantized values.
    symmetric
        Zero point at the middle of the range (0 for signed types), scale from max(|min|, |max|).
    reduce_range
        Use one bit less (fbgemm's 7-bit activations that keep vpmaddubsw from saturating).
    narrow_range
        For signed types use [-qmax, qmax], e.g. [-127, 127].
    preserve_sparsity
        Zero must stay exactly zero after a round trip *and* sit at the symmetric zero point
        when the data has both signs (DNNLOWP's preserve_activation_sparsity).
    min_scale
        Lower bound on the scale (float32 eps by default, 2^-12 for XNNPACK-style targets).
    name
        Tensor name used in error messages.

    Examples
    --------
    >>> qp = choose_qparams(-1.0, 3.0, QType.UINT8)
    >>> float(qp.scale), int(qp.zero_point)
    (0.01568627543747425, 64)
    """
    lo = np.asarray(min_val, dtype=np.float32)
    hi = np.asarray(max_val, dtype=np.float32)
    if lo.shape != hi.shape:
        raise QuantizationError(f"{name}: min and max have different shapes")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise QuantizationError(f"{name}: observed range [{lo}, {hi}] is not finite "
                                "(NaN or Inf in the data)")
    if np.any(lo > hi):
        raise QuantizationError(f"{name}: min {lo} is greater than max {hi}")
    if granularity is None:
        granularity = PerTensor() if lo.ndim == 0 else PerAxis(0)
    qmin, qmax = quant_range(qtype, reduce_range=reduce_range, narrow_range=narrow_range)
    # (Q2) the range always contains 0 so that zero (padding, ReLU) is exact.
    lo = np.minimum(lo, np.float32(0))
    hi = np.maximum(hi, np.float32(0))
    symmetric = symmetric or (preserve_sparsity and bool(np.any((lo < 0) & (hi > 0))))
    span = np.float32(qmax - qmin)
    if symmetric:
        amax = np.maximum(-lo, hi)
        scale = (amax * np.float32(2)) / span                                   # (Q3)
        mid = (qmin + qmax + 1) // 2 if not qtype.signed else 0
        zero_point = np.full(lo.shape, mid, dtype=np.int64)
    else:
        scale = (hi - lo) / span                                                # (Q4)
        zero_point = None
    zero_range = (hi - lo) == 0
    scale = np.where(zero_range, np.float32(1.0), np.maximum(scale, np.float32(min_scale)))
    scale = scale.astype(np.float32)
    if zero_point is None:
        zp = np.float64(qmin) - np.rint(lo.astype(np.float64) / scale.astype(np.float64))  # (Q5)
        zero_point = np.clip(zp, qmin, qmax).astype(np.int64)
    return QParams(scale, zero_point.astype(np.int32), qtype, qmin, qmax, granularity)


def quantize(x: np.ndarray, qp: QParams) -> np.ndarray:
    """Quantize float data (Q6): q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax);
    NaN gives qmin, as ONNX Runtime's QuantizeLinear.

    Examples
    --------
    >>> qp = QParams(np.float32(0.5), np.int32(10), QType.UINT8, 0, 255)
    >>> quantize(np.array([0.25, 0.75, -100.0], np.float32), qp).tolist()
    [10, 12, 0]
    """
    x = np.asarray(x, dtype=np.float32)
    qp = _expand_for(qp, x)
    scale, zp = qp.broadcast(x.ndim)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        q = np.asarray(x / scale, dtype=np.float32)     # float32 division
    np.rint(q, out=q)
    if qp.qtype.bits <= 16:
        # |q| < 2^24 is exact in float32; anything larger saturates either way
        q += zp.astype(np.float32)
        np.nan_to_num(q, copy=False, nan=float(qp.qmin))
        np.clip(q, qp.qmin, qp.qmax, out=q)
        return q.astype(qp.qtype.numpy_dtype)
    q64 = np.nan_to_num(q.astype(np.float64) + zp, nan=float(qp.qmin))
    np.clip(q64, qp.qmin, qp.qmax, out=q64)
    return q64.astype(qp.qtype.numpy_dtype)


def dequantize(q: np.ndarray, qp: QParams) -> np.ndarray:
    """Dequantize (Q1): x = float32(q - zero_point) * scale."""
    q = np.asarray(q)
    qp = _expand_for(qp, q)
    scale, zp = qp.broadcast(q.ndim)
    return (q.astype(np.int32) - zp).astype(np.float32) * scale


def _expand_for(qp: QParams, x: np.ndarray) -> QParams:
    if isinstance(qp.granularity, PerGroup):
        return qp.expand_groups(x.shape[qp.granularity.axis % x.ndim])
    return qp


def quantize_bias(bias: np.ndarray, x_scale: np.ndarray | float,
                  w_scale: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Quantize a float bias to int32 at scale s_x * s_w (Q9); returns (bias_q, bias_scale).

    bias_q = clamp(round_half_even(b / float32(s_x * s_w)), int32). Per channel where the
    weight scale is per channel.
    """
    b = np.asarray(bias, dtype=np.float32)
    bias_scale = (np.float32(x_scale) * np.asarray(w_scale, dtype=np.float32)).astype(np.float32)
    bias_scale = np.broadcast_to(bias_scale, b.shape).astype(np.float32)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        q = np.rint(b / bias_scale).astype(np.float64)
    info = np.iinfo(np.int32)
    q = np.clip(np.nan_to_num(q, nan=0.0), info.min, info.max)
    return q.astype(np.int32), bias_scale
