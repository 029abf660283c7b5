"""ONNX Runtime's float32 2-D convolution under its NCHWc layout, reproduced bit for bit.

At its default optimization level ONNX Runtime rewrites most 2-D float convolutions with
constant weights into MLAS's NCHWc kernels (its layout transformer), which sum in another
order than an im2col GEMM: blocks of 8 (AVX2) or 16 (AVX-512) input channels, each a chain
of fused multiply-adds from +0 over kernel row, kernel column and channel, the blocks' sums
added one after another, the bias last (docs/operators.md (O31)). A QuantizeLinear after such
a float convolution lands on ONNX Runtime's integer only in that order. `plan` applies the
transformer's rules; `convolve` runs the native kernel (lowp._float_conv, every instruction
set bit-identical) or, without it, `reference`, the numpy form that is its specification.

The transformer's own fusion of an Add of two NCHWc tensors into a Conv without activation
(lowp.runtime.ort_nchwc_add) gives the Conv a Sum: the first block's sum is added to it
instead of starting the total (`sum`), the bias still last.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lowp import ort_math
from lowp.cpu import cpu_flags
from lowp.fixedpoint import fma32

from .prepacked import PackCache, aligned64

_F = np.float32
LANES = 16                      # output channels per packed weight vector (native kernel)
POINTWISE_CHUNK = 128           # input channels per pointwise kernel call
KINDS = {"nchwc": 0, "pointwise": 1, "nchw": 2, "depthwise": 3}


@dataclass(frozen=True)
class Plan:
    """How MLAS runs one convolution: the kernel kind and the NCHWc block size."""

    kind: str
    block: int

    @property
    def step(self) -> int:
        """Input channels summed in one chain before the blocks are added."""
        return {"pointwise": POINTWISE_CHUNK, "nchw": 1}.get(self.kind, self.block)


@functools.cache
def block_size() -> int:
    """MLAS's NCHWc block size on this CPU: 16 with AVX-512F, 8 with AVX2, else 0 (ONNX
    Runtime then keeps its NCHW convolution)."""
    from lowp import ort_math

    if ort_math.mlas_has_avx512f():
        return 16
    flags = cpu_flags()
    return 8 if "avx2" in flags and "fma" in flags else 0


def plan(x_shape: Sequence[int], w_shape: Sequence[int], group: int, w_constant: bool,
         b_constant: bool) -> Plan | None:
    """The NCHWc kernel ONNX Runtime's layout transformer gives this Conv, or None when it
    keeps the Conv in NCHW (1-D and 3-D, weights or bias computed at run time, more input
    channels than a block but not a multiple of 4, grouped ones the blocks do not divide,
    depthwise ones of channels not a multiple of 4).
    A last block of input channels may be partial (the transformer pads it with zeros)."""
    block = block_size()
    if block == 0 or len(x_shape) != 4 or len(w_shape) != 4 or not (w_constant and b_constant):
        return None
    m, cg, kh, kw = (int(v) for v in w_shape)
    if group > 1:
        if cg == 1 and m == group:  # channels padded to whole blocks from 4s on (ORT 1.32)
            return Plan("depthwise", block) if m % 4 == 0 else None
        if m % block:
            return None
        if cg % block or m % group or (m // group) % block:
            return None
        return Plan("pointwise" if kh == kw == 1 else "nchwc", block)
    if cg < block:
        return Plan("nchw", block)
    if cg % 4:                  # ONNX Runtime 1.32 pads channels to a block from 4s on
        return None
    return Plan("pointwise" if kh == kw == 1 else "nchwc", block)


def _pointwise(p: Plan, kernel: Sequence[int], pads: Sequence[int]) -> Plan:
    """A 1x1 kernel runs MLAS's pointwise kernel only without padding."""
    if p.kind == "pointwise" and any(pads):
        return Plan("nchwc", p.block)
    return p


def _out_size(size: int, k: int, stride: int, dilation: int, begin: int, end: int) -> int:
    return (size + begin + end - (k - 1) * dilation - 1) // stride + 1


def reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, p: Plan, group: int,
              pads: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int], sum: np.ndarray | None = None) -> np.ndarray:
    """The NCHWc order in numpy: per block of input channels, fused multiply-adds from +0
    over kernel row, kernel column and channel (padding taps skipped: an fma with +0 leaves
    every sum but -0 as it is, and a skipped tap leaves -0 too); the blocks' sums added in
    order, the first to `sum` when given (float32, the output's shape); the bias last.
    MLAS's NaN (docs/operators.md (O327), (O335)): of a tap's weight, its input and the sum
    so far the first NaN (`_tap_nans`); a block's sum before the total, the total before
    the bias."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    ph0, pw0, ph1, pw1 = pads
    oh = _out_size(h, kh, strides[0], dilations[0], ph0, ph1)
    ow = _out_size(wd, kw, strides[1], dilations[1], pw0, pw1)
    mg = m // group
    x_firsts = [_sliding_input_first(kw, kx, ow, wd, strides[1], dilations[1], pw0)
                if p.kind == "depthwise" and p.block == 16 else None for kx in range(kw)]
    y = np.empty((n, m, oh, ow), _F)
    oy = np.arange(oh) * strides[0] - ph0
    ox = np.arange(ow) * strides[1] - pw0
    for g in range(group):
        wg = w[g * mg:(g + 1) * mg]
        total: np.ndarray | None = None if sum is None else \
            np.asarray(sum, _F)[:, g * mg:(g + 1) * mg]
        for c0 in range(0, cg, p.step):
            acc = np.zeros((n, mg, oh, ow), _F)
            for ky in range(kh):
                iy = oy + ky * dilations[0]
                vy = (iy >= 0) & (iy < h)
                rows = np.clip(iy, 0, h - 1)
                for kx in range(kw):
                    ix = ox + kx * dilations[1]
                    vx = (ix >= 0) & (ix < wd)
                    cols = np.clip(ix, 0, wd - 1)
                    valid = vy[:, None] & vx[None, :]
                    x_first = x_firsts[kx]
                    for ci in range(c0, min(cg, c0 + p.step)):
                        plane = x[:, g * cg + ci][:, rows][:, :, cols]
                        wv = wg[:, ci, ky, kx][None, :, None, None]
                        prod = _tap_nans(plane[:, None], wv, acc,
                                         fma32(plane[:, None], wv, acc), x_first)
                        acc = np.where(valid, prod, acc).astype(_F)
            total = acc if total is None else ort_math.first_nan_add(acc, total)
        assert total is not None
        y[:, g * mg:(g + 1) * mg] = total
    if b is not None:
        y = ort_math.first_nan_add(y, b.reshape(1, m, 1, 1).astype(_F))
    return y


def _tap_nans(x: np.ndarray, w: np.ndarray, acc: np.ndarray, prod: np.ndarray,
              x_first: np.ndarray | None = None) -> np.ndarray:
    """`prod` (the fma x * w + acc) with MLAS's NaN where it is one: w's, else x's, else
    acc's (quieted), x's before w's in the output columns `x_first` marks; a NaN of none of
    them (inf * 0, inf - inf) as the fma gave it."""
    if not np.isnan(prod).any():
        return prod
    for v in (acc, x, w):
        prod = np.where(np.isnan(v), ort_math.quieted(v.astype(_F)), prod)
    if x_first is not None:
        prod = np.where(np.isnan(x) & x_first, ort_math.quieted(x.astype(_F)), prod)
    return prod.astype(_F)


def _sliding_input_first(width: int, kx: int, ow: int, w: int, stride: int, dilation: int,
                         pad: int) -> np.ndarray:
    """Per output column, whether kernel column kx of a depthwise Conv hands on the input's
    NaN before the weight's (docs/operators.md (O353)): ONNX Runtime 1.32's sliding
    depthwise kernel (AVX-512's 16-channel blocks; stride and dilation 1 along the row, 3, 5
    or 7 wide) computes a row in tiles of 12, 10 or 8 outputs from column 0 (masked where a
    tap falls in the padding), and the compiler gave some of their fused multiply-adds the
    input as first operand (probed; the native kernel's mlas_sliding_input_first)."""
    out = np.zeros(ow, bool)
    if stride != 1 or dilation != 1 or width not in (3, 5, 7):
        return out
    full = {3: 12, 5: 10, 7: 8}[width]
    for start in range(0, ow, full):
        count = min(full, ow - start)
        masked = start - pad < 0 or start - pad + count + width - 1 > w
        for o in range(count):
            if masked or count == 1:
                first = masked and count == 1
            elif width == 3:
                first = count <= 8 and o == 0 and kx > 0
            elif width == 5 and count == 10:
                first = o == 7 and kx == 4
            elif width == 7 and count == 8:
                first = (o == 0 and (kx == 2 or kx >= 4)) or (o == 4 and kx == 6)
            else:
                first = o == 0 and kx > 0
            out[start + o] = first
    return out


def pack(w: np.ndarray, group: int) -> np.ndarray:
    """Weights (m, cg, kh, kw) as the native kernel reads them: (group, m blocks of 16, cg,
    kh, kw, 16 output lanes), zero lanes past the group's last output channel; 64-byte
    aligned."""
    m, cg, kh, kw = w.shape
    mg = m // group
    blocks = -(-mg // LANES)
    padded = np.zeros((group, blocks * LANES, cg, kh, kw), _F)
    padded[:, :mg] = w.reshape(group, mg, cg, kh, kw)
    packed = padded.reshape(group, blocks, LANES, cg, kh, kw).transpose(0, 1, 3, 4, 5, 2)
    return aligned64(packed.reshape(-1))


# pack(w, group) once per constant weight array (a Conv runs the NCHWc kernel only with
# constant weights, `plan`)
packed_weights = PackCache(lambda w, group: pack(np.asarray(w, _F), group))


def _native_isa() -> str | None:
    """The native kernel's instruction set for lowp's active integer path, or None."""
    try:
        from lowp import _float_conv  # type: ignore[attr-defined]  # noqa: F401
        from lowp.runtime.native_backend import active_path
    except ImportError:
        return None
    path = active_path()
    if path.startswith("avx512") or path.startswith("amx"):
        return "avx512"
    return "avx2" if path.startswith("avx") else "scalar"


def convolve(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, p: Plan, group: int,
             pads: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
             threads: int | None = None, sum: np.ndarray | None = None,
             relu: bool = False) -> np.ndarray:
    """float32 NCHW convolution in MLAS's NCHWc order (native when built, else numpy),
    the first block's sum added to `sum` when given (an array of the output's shape, or one
    that broadcasts to it); with `relu`, 0 > y ? 0 : y after the bias (ONNX Runtime's Relu
    node: NaN and -0 kept; lowp.runtime.conv_bias_fusion). Without `threads`,
    lowp._native's call on the float kernels' threads (lowp.runtime.native_float: a Program
    step when replayed); with them, or while the native float kernels are disabled,
    lowp._float_conv's call of the same kernel (0 threads: all)."""
    from . import native_float

    p = _pointwise(p, w.shape[2:], pads)
    isa = _native_isa()
    if sum is not None:
        n, _, h, wd = x.shape
        sum = np.ascontiguousarray(np.broadcast_to(sum, (n, w.shape[0], _out_size(
            h, w.shape[2], strides[0], dilations[0], pads[0], pads[2]), _out_size(
            wd, w.shape[3], strides[1], dilations[1], pads[1], pads[3]))), _F)
    if isa is None:
        ref = reference(x, w, b, p, group, pads, strides, dilations, sum)
        return np.where(np.float32(0) > ref, np.float32(0), ref) if relu else ref
    from lowp import _float_conv  # type: ignore[attr-defined]

    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    oh = _out_size(h, kh, strides[0], dilations[0], pads[0], pads[2])
    ow = _out_size(wd, kw, strides[1], dilations[1], pads[1], pads[3])
    bias = None if b is None else np.ascontiguousarray(b, _F).reshape(-1)
    packed = packed_weights(w, group)
    # (h, w, kh, kw, stride, dilation, begin pad) and output (h, w) as the kernel is called
    g, out_hw = _as_row(h, wd, kh, kw, strides, dilations, pads, (oh, ow))
    out = (n, m, *out_hw)
    if threads is None and n > 0:
        dims = [n, c, g[0], g[1], m, out[2], out[3], KINDS[p.kind], p.block, group, *g[2:]]
        y = native_float.conv_nchwc(np.ascontiguousarray(x, _F), packed, bias, out, dims,
                                    isa, None if sum is None else sum.reshape(out), relu)
        if y is not None:
            return y.reshape(n, m, oh, ow)
    y = np.empty(out, _F)
    if y.size == 0:
        return y.reshape(n, m, oh, ow)
    _float_conv.conv(np.ascontiguousarray(x, _F).reshape(n, c, g[0], g[1]), packed, bias, y,
                     KINDS[p.kind], p.block, group, *g[2:], isa, threads or 0,
                     None if sum is None else sum.reshape(out), relu)
    return y.reshape(n, m, oh, ow)


def _as_row(h: int, wd: int, kh: int, kw: int, strides: Sequence[int],
            dilations: Sequence[int], pads: Sequence[int], out_hw: tuple[int, int]
            ) -> tuple[tuple[int, ...], tuple[int, int]]:
    """The kernel's geometry (h, w, kh, kw, sh, sw, dh, dw, ph, pw) and output (h, w) for a
    convolution whose output is `out_hw`: a column image (w = 1,
    a (k, 1) kernel without width padding, as TensorFlow exports of 1-D convolutions write
    it) runs as one row of h columns with a (1, k) kernel. Memory is the same (x, y and the
    packed weights' (cg, kh, kw) order), and so is every output's sum: kernel row then column
    is one index either way. The kernel tiles columns; a column image has one."""
    if wd == 1 and kw == 1 and kh > 0 and pads[1] == pads[3] == 0 and h > 1:
        return (1, h, 1, kh, 1, strides[0], 1, dilations[0], 0, pads[0]), (1, out_hw[0])
    return (h, wd, kh, kw, strides[0], strides[1], dilations[0], dilations[1], pads[0],
            pads[1]), out_hw


def pool_sums(rows: np.ndarray, lanes: int) -> np.ndarray:
    """Sums of the rows of float32 (rows, n) in MLAS's global pooling orders (docs/operators.md
    (O32)): lanes 1, the values one after another from +0 (its NCHWc kernel); lanes 4, four
    accumulators from +0 over the first n - n % 4 values, (l3 + l1) + (l2 + l0), then the
    rest in order (its NCHW kernel); each running sum the first operand of its addition,
    which decides the NaN a sum gives ((O201)). Native when built
    (lowp.runtime.native_float.pool_sums), numpy otherwise."""
    from . import native_float

    rows = np.ascontiguousarray(rows, _F)
    native = native_float.pool_sums(rows, lanes)
    return pool_sums_reference(rows, lanes) if native is None else native


def pool_sums_reference(rows: np.ndarray, lanes: int) -> np.ndarray:
    """pool_sums in numpy: the specification of the native kernel."""
    n = rows.shape[1]
    add = ort_math.first_nan_add      # x86's addition: the first operand's NaN
    if lanes == 1:
        total = np.zeros(rows.shape[0], _F)
        for j in range(n):
            total = add(total, rows[:, j])
        return total
    head = n - n % 4
    acc = np.zeros((rows.shape[0], 4), _F)
    for k in range(0, head, 4):
        acc = add(acc, rows[:, k:k + 4])
    total = add(add(acc[:, 3], acc[:, 1]), add(acc[:, 2], acc[:, 0]))
    for j in range(head, n):
        total = add(total, rows[:, j])
    return total
