"""The signal-processing operators: DFT, STFT and the window / mel-filter generators, in
ONNX Runtime's CPU arithmetic (its signal/dft.cc and signal/window_functions.cc).

Registered into FLOAT_OPS (see float_registry for the calling convention). Complex values
are (real, imaginary) pairs of float32 or float64 arrays; every complex product is the
compiler's ``(ac - bd, ad + bc)`` and every product with a real number multiplies both parts,
in ONNX Runtime's order, so signed zeros and NaNs come out as its do (docs/operators.md
(O250)-(O252)).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from onnx import TensorProto, helper

from lowp import libm
from lowp.runtime.float_registry import register, unsupported

Complex = tuple[np.ndarray, np.ndarray]


# --- complex arithmetic in the compiler's order --------------------------------------------


def _mul(a: Complex, b: Complex) -> Complex:
    """(a.re b.re - a.im b.im, a.re b.im + a.im b.re), as std::complex's operator*."""
    return a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]


def _scale(a: Complex, s: Any) -> Complex:
    """A complex value times a real one: both parts multiplied."""
    return a[0] * s, a[1] * s


def _add(a: Complex, b: Complex) -> Complex:
    return a[0] + b[0], a[1] + b[1]


def _cos_sin(angle: np.ndarray) -> Complex:
    """(cos, sin) of `angle` with the C library's functions of its precision."""
    if angle.dtype == np.float64:
        return libm.cos_float64(angle), libm.sin_float64(angle)
    return libm.cosf(angle), libm.sinf(angle)


# --- the radix-2 FFT and Bluestein's chirp-z transform -------------------------------------


def _bit_reverse(i: np.ndarray, bits: int) -> np.ndarray:
    out = np.zeros_like(i)
    for b in range(bits):
        out |= ((i >> b) & 1) << (bits - 1 - b)
    return out


def _angular_velocity(length: int, inverse: bool, t: type[np.floating]) -> np.floating:
    tau = t(2) * t(math.pi)
    return (t(1) if inverse else t(-1)) * tau / t(length)


@functools.lru_cache(maxsize=64)
def _twiddles(length: int, inverse: bool, kind: str) -> Complex:
    """ONNX Runtime's table V: V[bit_reverse(i)] = exp(i * angular velocity), of the float
    type named `kind` (cached: the arrays are only read)."""
    t = np.dtype(kind).type
    bits = length.bit_length() - 1
    i = np.arange(length, dtype=np.int64)
    angle = i.astype(t) * _angular_velocity(length, inverse, t)
    cos, sin = _cos_sin(angle)
    order = _bit_reverse(i, bits)
    re, im = np.empty(length, t), np.empty(length, t)
    re[order], im[order] = cos, sin
    return _frozen((re, im))


def _fft_radix2(x: Complex, table: Complex, inverse: bool) -> Complex:
    """In-place radix-2 FFT of lines x (axis 0 the signal, already in bit-reversed order),
    with ONNX Runtime's butterflies: even + V[first] * odd, even + V[second] * odd."""
    n = x[0].shape[0]
    re, im = x[0].copy(), x[1].copy()
    size, bits = 2, 0
    while size <= n:
        mid = size >> 1
        bits += 1
        k = np.arange(mid, dtype=np.int64)
        first = _bit_reverse(k, bits)
        second = _bit_reverse(mid + k, bits)
        shape = (n // size, 2, mid) + re.shape[1:]
        blocks_re, blocks_im = re.reshape(shape), im.reshape(shape)
        even = (blocks_re[:, 0], blocks_im[:, 0])
        odd = (blocks_re[:, 1], blocks_im[:, 1])
        extra = (1,) * (re.ndim - 1)
        v_first = (table[0][first].reshape((mid,) + extra), table[1][first].reshape((mid,) + extra))
        v_second = (table[0][second].reshape((mid,) + extra),
                    table[1][second].reshape((mid,) + extra))
        # (the compiled butterfly adds the product to even: of two NaNs the product's)
        top = _add(_mul(v_first, odd), even)
        bottom = _add(_mul(v_second, odd), even)
        re = np.stack([top[0], bottom[0]], axis=1).reshape(re.shape)
        im = np.stack([top[1], bottom[1]], axis=1).reshape(im.shape)
        size <<= 1
    if inverse:
        t = re.dtype.type
        re, im = re / t(n), im / t(n)
    return re, im


def _padded(x: Complex, length: int) -> Complex:
    n = x[0].shape[0]
    if n >= length:
        return x[0][:length], x[1][:length]
    pad = ((0, length - n),) + ((0, 0),) * (x[0].ndim - 1)
    return np.pad(x[0], pad), np.pad(x[1], pad)


class _Signal:
    """The lines to transform: (real, imaginary) along axis 0 and whether they were
    complex in the input (ONNX Runtime's arithmetic differs between the two)."""

    def __init__(self, re: np.ndarray, im: np.ndarray | None) -> None:
        self.re, self.im = re, im

    def weighted(self, window: np.ndarray | None, length: int) -> Complex:
        """fft_radix2's first pass, in bit-reversed order: complex(1, 0) * x * window."""
        t = self.re.dtype.type
        order = _bit_reverse(np.arange(length, dtype=np.int64), length.bit_length() - 1)
        extra = (1,) * (self.re.ndim - 1)
        one: Complex = (np.array(1, t), np.array(0, t))
        if self.im is None:
            x = _padded((self.re, self.re), length)[0][order]
            value = (one[0] * x, one[1] * x)
            w = t(1) if window is None else window[order].reshape((length,) + extra)
            return _scale(value, w)
        xr, xi = _padded((self.re, self.im), length)
        value = _mul(one, (xr[order], xi[order]))
        return _mul(value, one)

    def chirped(self, window: np.ndarray | None, chirp: Complex, m: int) -> Complex:
        """Bluestein's a_n = x_n * window_n * chirp_n over the samples (zero beyond)."""
        t = self.re.dtype.type
        count = self.re.shape[0]
        if count > m:
            raise unsupported("DFT", f"{count} samples for a {m}-point Bluestein transform "
                                     "(ONNX Runtime reads past its buffer)")
        extra = (1,) * (self.re.ndim - 1)
        re = self.re
        im = np.zeros_like(re) if self.im is None else self.im
        w_chirp = (chirp[0][:count].reshape((count,) + extra),
                   chirp[1][:count].reshape((count,) + extra))
        if self.im is None:
            w = t(1) if window is None else window[:count].reshape((count,) + extra)
            a = _scale((re, im), w)
        else:
            a = _mul((re, im), (np.array(1, t), np.array(0, t)))
        a = _mul(a, w_chirp)
        return _padded(a, m)


def _transform(signal: _Signal, length: int, window: np.ndarray | None, inverse: bool
               ) -> Complex:
    """The full `length`-point transform of every line of `signal` (axis 0)."""
    if length & (length - 1) == 0:
        table = _twiddles(length, inverse, signal.re.dtype.str)
        return _fft_radix2(signal.weighted(window, length), table, inverse)
    return _bluestein(signal, length, window, inverse)


@functools.lru_cache(maxsize=64)
def _chirp(n: int, inverse: bool, kind: str) -> tuple[Complex, Complex]:
    """Bluestein's chirp (zero past n) and the FFT of its mirrored conjugate b, of the
    power of two m >= 2n - 1, in the float type named `kind` (cached: only read)."""
    t = np.dtype(kind).type
    m = 1 << (2 * n - 2).bit_length()
    direction = t(1) if inverse else t(-1)
    k = np.arange(n).astype(t)
    exponent = direction * t(math.pi) * k * k / t(n)
    cos, sin = _cos_sin(exponent)
    chirp = (np.zeros(m, t), np.zeros(m, t))
    chirp[0][:n], chirp[1][:n] = cos, sin
    b_re, b_im = np.zeros(m, t), np.zeros(m, t)
    b_re[:n], b_im[:n] = cos, -sin
    tail = np.arange(m - n + 1, m)
    b_re[tail], b_im[tail] = b_re[m - tail], b_im[m - tail]
    b_fft = _fft_radix2(_Signal(b_re, b_im).weighted(None, m), _twiddles(m, False, kind), False)
    return _frozen(chirp), _frozen(b_fft)


def _frozen(value: Complex) -> Complex:
    for part in value:
        part.setflags(write=False)
    return value


def _bluestein(signal: _Signal, n: int, window: np.ndarray | None, inverse: bool) -> Complex:
    """ONNX Runtime's chirp-z transform for a length that is not a power of two: two
    forward FFTs and an inverse one of length m (the table V stays the forward one, so the
    inverse comes out reversed and is read back from the end)."""
    t = signal.re.dtype.type
    m = 1 << (2 * n - 2).bit_length()
    scale = t(np.float32(1) / np.float32(n)) if inverse else t(1)
    chirp, b_fft = _chirp(n, inverse, signal.re.dtype.str)
    table = _twiddles(m, False, signal.re.dtype.str)
    a = signal.chirped(window, chirp, m)
    a_fft = _fft_radix2(_Signal(*a).weighted(None, m), table, False)
    extra = (1,) * (a[0].ndim - 1)
    product = _mul(a_fft, (b_fft[0].reshape((m,) + extra), b_fft[1].reshape((m,) + extra)))
    c = _fft_radix2(_Signal(*product).weighted(None, m), table, True)
    back = np.concatenate([[0], np.arange(m - 1, m - n, -1)])
    c_back = (c[0][back], c[1][back])
    chirp_n = (chirp[0][:n].reshape((n,) + extra), chirp[1][:n].reshape((n,) + extra))
    return _scale(_mul(c_back, chirp_n), scale)


# --- DFT and STFT -------------------------------------------------------------------------


def _float_kind(op: str, x: np.ndarray) -> np.dtype:
    if x.dtype not in (np.float32, np.float64):
        raise unsupported(op, f"input of type {x.dtype} (ONNX Runtime's CPU kernel takes "
                              "float and double only)")
    return x.dtype


def _as_signal(op: str, x: np.ndarray, axis: int) -> _Signal:
    """The lines of x along `axis` (non-negative, not the components' axis) moved first."""
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim < 3 or x.shape[-1] not in (1, 2):
        raise unsupported(op, f"signal of shape {list(x.shape)} (the last axis must be 1 "
                              "(real) or 2 (complex), after a batch and a signal axis)")
    lines = np.moveaxis(x, axis, 0)
    im = lines[..., 1] if x.shape[-1] == 2 else None
    return _Signal(lines[..., 0], im)


def _scalar(op: str, name: str, v: np.ndarray | None) -> int | None:
    if v is None:
        return None
    if v.size != 1:
        raise unsupported(op, f"{name} of shape {list(v.shape)} (a scalar is required)")
    return int(v.reshape(-1)[0])


@register
def DFT(x: np.ndarray, dft_length: np.ndarray | None = None, axis_input: np.ndarray | None = None,
        *, axis: int = 1, inverse: int = 0, onesided: int = 0, opset: int = 17,
        **_: Any) -> np.ndarray:
    """ONNX DFT (17: axis attribute, 20: axis input, default -2)."""
    _float_kind("DFT", x)
    complex_input = x.ndim > 2 and x.shape[-1] == 2
    if inverse and onesided and not complex_input:
        raise unsupported("DFT", "inverse=1 with onesided=1 on a real signal (the inverse "
                                 "of a one-sided spectrum takes a complex one)")
    if onesided and not inverse and complex_input:
        raise unsupported("DFT", "onesided=1 on a complex signal")
    if opset >= 20:
        chosen = _scalar("DFT", "axis", axis_input)
        axis = -2 if chosen is None else chosen
    rank = max(x.ndim, 3)
    if axis < 0:
        axis += x.ndim
    if not 0 <= axis < rank - 1:
        raise unsupported("DFT", f"axis {axis} of a rank-{x.ndim} signal")
    signal = _as_signal("DFT", x, axis)
    length = _scalar("DFT", "dft_length", dft_length)
    if length is None:
        length = signal.re.shape[0]
    if length <= 0:
        raise unsupported("DFT", f"dft_length {length} (it must be positive)")
    if inverse and onesided:
        return _inverse_one_sided(signal, dft_length, axis)
    re, im = _transform(signal, length, None, bool(inverse))
    if onesided:
        re, im = re[:length // 2 + 1], im[:length // 2 + 1]
    y = np.stack([re, im], axis=-1)
    return np.ascontiguousarray(np.moveaxis(y, 0, axis))


def _inverse_one_sided(signal: _Signal, dft_length: np.ndarray | None, axis: int
                       ) -> np.ndarray:
    """The real signal of N = 2 (n - 1) samples (or dft_length's, whose half spectrum has
    the input's n values) from a one-sided spectrum of n: the full spectrum X[N - j] =
    conj(X[j]) for 0 < j < N / 2 past the input's values, its (O250) inverse transform,
    the real parts ([..., N, 1])."""
    n = signal.re.shape[0]
    length = _scalar("DFT", "dft_length", dft_length)
    if length is None:
        length = 2 * (n - 1)
        if length == 0:             # one value: an empty signal, as ONNX Runtime's
            empty = np.zeros((0,) + signal.re.shape[1:] + (1,), signal.re.dtype)
            return np.moveaxis(empty, 0, axis)
    if length <= 0 or length // 2 + 1 != n:
        raise unsupported("DFT", f"the inverse one-sided DFT of {n} values to {length} "
                                 f"samples (lowp runs only N with N / 2 + 1 = {n})")
    assert signal.im is not None
    re = np.concatenate([signal.re, np.zeros((length - n,) + signal.re.shape[1:],
                                             signal.re.dtype)])
    im = np.concatenate([signal.im, np.zeros_like(re[n:])])
    mirrored = np.arange(1, (length + 1) // 2)
    re[length - mirrored], im[length - mirrored] = re[mirrored], -im[mirrored]
    real, _imaginary = _transform(_Signal(re, im), length, None, True)
    return np.ascontiguousarray(np.moveaxis(real[..., None], 0, axis))


@register
def STFT(signal: np.ndarray, frame_step: np.ndarray, window: np.ndarray | None = None,
         frame_length: np.ndarray | None = None, *, onesided: int = 1,
         **_: Any) -> np.ndarray:
    """ONNX STFT: one DFT of each windowed frame, [batch, frames, bins, 2]."""
    _float_kind("STFT", signal)
    step = _scalar("STFT", "frame_step", frame_step)
    length = _scalar("STFT", "frame_length", frame_length)
    x = signal[..., None] if signal.ndim == 2 else signal
    if x.ndim != 3 or x.shape[-1] not in (1, 2):
        raise unsupported("STFT", f"signal of shape {list(signal.shape)} (it must be "
                                  "[batch, length] or [batch, length, 1 or 2])")
    if window is not None:
        if window.ndim != 1:
            raise unsupported("STFT", f"window of shape {list(window.shape)}")
        if window.dtype != x.dtype:
            raise unsupported("STFT", f"window of type {window.dtype} for a {x.dtype} signal")
        if length is not None and length != window.shape[0]:
            raise unsupported("STFT", f"frame_length {length} and a window of "
                                      f"{window.shape[0]} (they must be equal)")
        if x.shape[-1] == 2:
            raise unsupported("STFT", "a window on a complex signal (ONNX Runtime reads "
                                      "the real window as complex pairs)")
        length = window.shape[0]
    if length is None or length <= 0:
        raise unsupported("STFT", "no window and no frame_length")
    if step is None or step <= 0:
        raise unsupported("STFT", f"frame_step {step} (it must be positive)")
    size = x.shape[1]
    if length > size:
        raise unsupported("STFT", f"frame_length {length} longer than the signal ({size})")
    frames = int(np.floor(np.float32(size - length) / np.float32(step))) + 1
    bins = length // 2 + 1 if onesided else length
    starts = np.arange(frames) * step
    idx = starts[:, None] + np.arange(length)[None, :]        # [frames, length]
    framed = x[:, idx]                                          # [batch, frames, length, c]
    lines = np.moveaxis(framed, 2, 0)                           # [length, batch, frames, c]
    im = lines[..., 1] if x.shape[-1] == 2 else None
    re, imag = _transform(_Signal(lines[..., 0], im), length, window, False)
    y = np.stack([re[:bins], imag[:bins]], axis=-1)             # [bins, batch, frames, 2]
    return np.ascontiguousarray(np.moveaxis(y, 0, 2))


# --- windows and the mel filter bank -------------------------------------------------------

_WINDOW_TYPES = {
    TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT8, TensorProto.INT16,
    TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8, TensorProto.UINT16,
    TensorProto.UINT32, TensorProto.UINT64}


def _output_type(op: str, output_datatype: int) -> np.dtype:
    if output_datatype in (TensorProto.FLOAT16, TensorProto.BFLOAT16):
        raise unsupported(op, f"output_datatype {output_datatype} (ONNX Runtime has no kernel "
                              "for it and runs the ONNX function body instead)")
    if output_datatype not in _WINDOW_TYPES:
        raise unsupported(op, f"output_datatype {output_datatype} (ONNX Runtime's CPU kernel "
                              "writes float, double and the integer types only)")
    return np.dtype(helper.tensor_dtype_to_np_dtype(output_datatype))


def _convert(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """static_cast<T> of float64 values as x86 converts them: rounded to a float type,
    truncated toward zero to an integer one; a NaN (a one-sample symmetric window's 0 / 0)
    becomes the conversion's "indefinite" value, INT32_MIN for int32 and INT64_MIN's bits
    for the 64-bit types, whose low bits (0) the narrower types keep."""
    if dtype.kind == "f":
        return values.astype(dtype)
    with np.errstate(invalid="ignore"):
        wide = np.where(np.isnan(values), np.iinfo(np.int64).min,
                        np.trunc(values)).astype(np.int64)
    if dtype == np.int32:
        return np.where(np.isnan(values), np.iinfo(np.int32).min, wide).astype(np.int32)
    return wide.astype(dtype)


def _cosine_sum_window(op: str, size: np.ndarray, a0: np.float32, a1: np.float32,
                       a2: np.float32, periodic: int, output_datatype: int) -> np.ndarray:
    """a0 - a1 cos(w i) + a2 cos(2 w i) in double (float coefficients), w = 2 pi / N, N the
    size (periodic) or size - 1."""
    dtype = _output_type(op, output_datatype)
    n = _scalar(op, "size", size)
    if n is None or n < 0:
        raise unsupported(op, f"size {n}")
    tau = 2 * math.pi
    with np.errstate(all="ignore"):
        increment = np.float64(tau) / np.float64(n if periodic else n - 1)
        i = np.arange(n, dtype=np.float64)
        value = np.float64(a0) - np.float64(a1) * libm.cos_float64(increment * i)
        if a2 != 0:
            value = value + np.float64(a2) * libm.cos_float64(2 * increment * i)
        else:
            value = value + 0.0
    return _convert(value, dtype)


@register
def HannWindow(size: np.ndarray, *, periodic: int = 1, output_datatype: int = 1,
               **_: Any) -> np.ndarray:
    half = np.float32(0.5)
    return _cosine_sum_window("HannWindow", size, half, half, np.float32(0), periodic,
                              output_datatype)


@register
def HammingWindow(size: np.ndarray, *, periodic: int = 1, output_datatype: int = 1,
                  **_: Any) -> np.ndarray:
    a0 = np.float32(25) / np.float32(46)
    return _cosine_sum_window("HammingWindow", size, a0, np.float32(1) - a0, np.float32(0),
                              periodic, output_datatype)


@register
def BlackmanWindow(size: np.ndarray, *, periodic: int = 1, output_datatype: int = 1,
                   **_: Any) -> np.ndarray:
    a2 = np.float32(0.16) / np.float32(2)
    return _cosine_sum_window("BlackmanWindow", size, np.float32(0.5) - a2, np.float32(0.5),
                              a2, periodic, output_datatype)


def _hz_to_mel(hz: float) -> float:
    """2595 log10(1 + hz / 700) in double (Python's math calls the C library's log10)."""
    return 2595 * math.log10(1 + hz / 700)


def _mel_to_hz(mel: float) -> float:
    """700 (10^(mel / 2595) - 1) in double, with the C library's pow."""
    return 700 * (math.pow(10, mel / 2595) - 1)


@register
def MelWeightMatrix(num_mel_bins: np.ndarray, dft_length: np.ndarray, sample_rate: np.ndarray,
                    lower_edge_hertz: np.ndarray, upper_edge_hertz: np.ndarray, *,
                    output_datatype: int = 1, **_: Any) -> np.ndarray:
    """ONNX Runtime's triangular mel filters, [dft_length // 2 + 1, num_mel_bins]: the band
    edges through double-precision mel <-> hertz, each filter rising and falling linearly
    between spectrogram bins."""
    op = "MelWeightMatrix"
    dtype = _output_type(op, output_datatype)
    mels = _scalar(op, "num_mel_bins", num_mel_bins)
    length = _scalar(op, "dft_length", dft_length)
    rate = _scalar(op, "sample_rate", sample_rate)
    if mels is None or length is None or rate is None or mels < 0 or length <= 0 or rate <= 0:
        raise unsupported(op, f"num_mel_bins {mels}, dft_length {length}, sample_rate {rate}")
    if lower_edge_hertz.size != 1 or upper_edge_hertz.size != 1:
        raise unsupported(op, "non-scalar edge frequencies")
    lower = np.float32(lower_edge_hertz.reshape(-1)[0])
    upper = np.float32(upper_edge_hertz.reshape(-1)[0])
    bins = length // 2 + 1
    for name, edge in (("lower_edge_hertz", lower), ("upper_edge_hertz", upper)):
        index = np.floor(np.float32(length + 1) * edge / np.float32(rate))
        if not 0 <= index < bins:
            raise unsupported(op, f"{name} {edge} outside the spectrogram's {bins} bins")
    low_mel, high_mel = _hz_to_mel(float(lower)), _hz_to_mel(float(upper))
    points = mels + 2
    step = (high_mel - low_mel) / float(np.float32(points))
    edges = [int(math.floor((length + 1) * _mel_to_hz(low_mel + step * i) / rate))
             for i in range(points)]
    if max(edges) >= bins or min(edges) < 0:
        raise unsupported(op, f"band edges {edges} outside the spectrogram's {bins} bins")
    y = np.zeros((bins, mels), dtype)
    kind = dtype.type
    for i in range(mels):
        left, center, right = edges[i], edges[i + 1], edges[i + 2]
        rise = center - left
        if rise == 0:
            y[center, i] = 1
        else:
            for j in range(left, center + 1):
                y[j, i] = _ratio(j - left, rise, kind)
        fall = right - center
        for j in range(center, right):
            y[j, i] = _ratio(right - j, fall, kind)
    return y


def _ratio(numerator: int, denominator: int, kind: type[np.generic]) -> Any:
    """numerator / static_cast<T>(denominator): a division of T for float types, an
    unsigned integer one for the integer types."""
    if issubclass(kind, np.floating):
        return kind(numerator) / kind(denominator)
    return kind(numerator // denominator)
