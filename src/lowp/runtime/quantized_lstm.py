"""com.microsoft DynamicQuantizeLSTM, as ONNX Runtime's CPU kernel computes it (docs/
operators.md, (O23q)): the LSTM of (O23) whose two products take integer weights, each
float operand quantized to uint8 on the fly from its own range, one integer GEMM per call.

ONNX Runtime's quantize_dynamic writes this operator for every LSTM; W is int8 or uint8
[dirs, input, 4 hidden], R [dirs, hidden, 4 hidden] (already K x N, not transposed as in
the ONNX LSTM), scales and zero points per direction ([dirs]) or per column ([dirs, 4
hidden]).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lowp import eigen_math
from lowp.ops.linear import exact_matmul, wrap_int32
from lowp.runtime import native_float, native_qlstm
from lowp.runtime.float_nn import (
    LstmOrtCell,
    check_rnn_shapes,
    deepcpu_activations,
    lstm_ort_acts,
)
from lowp.runtime.float_registry import register, unsupported


def _mlas_min_max(a: np.ndarray) -> tuple[np.float32, np.float32]:
    """(min, max) of MLAS's MlasFindMinMaxElement (its AVX kernel) over a flat float32
    array holding a NaN: four accumulators of 8 lanes over 32-value chunks, one of 8 lanes
    over the 8-value chunks left, started at (FLT_MAX, -FLT_MAX), each step vminps /
    vmaxps(acc, v), which give v when either is NaN (a lane is NaN when its last value is,
    and forgets what came before a NaN); the accumulators folded (0 with 1, 2 with 3, then
    the two), the halves, then lanes (0, 1) with (2, 3) and lane 0 with lane 1 the same
    way; the last values (and all of a shorter array) through std::min / std::max, which
    skip a NaN value and keep a NaN bound (docs/operators.md, (O149))."""
    f = np.float32
    lo, hi = f(np.finfo(np.float32).max), f(-np.finfo(np.float32).max)

    def vmin(acc: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.where(acc < v, acc, v)

    def vmax(acc: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.where(acc > v, acc, v)

    n, i = a.size, 0
    if n >= 8:
        mn = np.full(8, lo, np.float32)
        mx = np.full(8, hi, np.float32)
        if n >= 32:
            mns, mxs = np.full((4, 8), lo, np.float32), np.full((4, 8), hi, np.float32)
            for j in range(0, n - 31, 32):
                chunk = a[j:j + 32].reshape(4, 8)
                mns, mxs = vmin(mns, chunk), vmax(mxs, chunk)
            i = n // 32 * 32
            mn = vmin(vmin(mns[0], mns[1]), vmin(mns[2], mns[3]))
            mx = vmax(vmax(mxs[0], mxs[1]), vmax(mxs[2], mxs[3]))
        for j in range(i, n - 7, 8):
            mn, mx = vmin(mn, a[j:j + 8]), vmax(mx, a[j:j + 8])
        i = n // 8 * 8
        mn, mx = vmin(mn[:4], mn[4:]), vmax(mx[:4], mx[4:])
        mn, mx = vmin(mn, mn[[2, 3, 2, 3]]), vmax(mx, mx[[2, 3, 2, 3]])
        lo, hi = vmin(mn, mn[[1, 1, 1, 1]])[0], vmax(mx, mx[[1, 1, 1, 1]])[0]
    for v in a[i:]:
        lo = v if v < lo else lo
        hi = v if hi < v else hi
    return f(lo), f(hi)


# GetQuantizationParameter's split of its min / max over intra-op threads: at most 32
# blocks, each a multiple of 128 values
_MINMAX_BLOCKS, _MINMAX_GRANULARITY = 32, 128


def mlas_range_span(n: int, threads: int) -> int:
    """The values of each MlasFindMinMaxElement call with which ONNX Runtime's
    GetQuantizationParameter takes the range of `n` values at `threads` intra-op threads
    (0: one call over all of them; docs/operators.md, (O189)): above 128 values it cuts them
    into blocks of ceil(ceil(n / 32) / 128) * 128 values and hands the blocks to
    TryParallelFor at a cost of {4 bytes loaded a value, 2 stored, 1 cycle a value} a block;
    each call of its functor spans the blocks of one of TryParallelFor's blocks
    (eigen_math.ort_parallel_block), all of them (one call) where Eigen's cost model keeps one
    thread (below about 124,000 values at 2 threads)."""
    if threads <= 1 or n <= _MINMAX_GRANULARITY:
        return 0
    per_block = -(-n // _MINMAX_BLOCKS)
    block = -(-per_block // _MINMAX_GRANULARITY) * _MINMAX_GRANULARITY
    count = -(-n // block)
    units = eigen_math.ort_parallel_block(
        count, eigen_math.ort_parallel_cost(4.0 * block, 2.0, float(block)), threads)
    return 0 if units >= count else units * block


def _mlas_split_min_max(a: np.ndarray, span: int) -> tuple[np.float32, np.float32]:
    """(min, max) of GetQuantizationParameter over a flat float32 array: one
    `_mlas_min_max` per call of `span` values (0: one call), each call's bounds folded in
    order with std::min / std::max (`agg < lo ? agg : lo`), which skip a NaN bound of any
    call after the first (O189)."""
    if not span or span >= a.size:
        return _mlas_min_max(a)
    lo, hi = _mlas_min_max(a[:span])
    for first in range(span, a.size, span):
        c_lo, c_hi = _mlas_min_max(a[first:first + span])
        lo = c_lo if c_lo < lo else lo
        hi = c_hi if hi < c_hi else hi
    return lo, hi


def dynamic_qparams(a: np.ndarray, span: int = 0) -> tuple[np.float32, int]:
    """(scale, zero point) of ONNX Runtime's GetQuantizationParameter for uint8: the range
    [min(0, min a), max(0, max a)] over 255 steps (scale 1 for an all-zero or empty `a`),
    zero point round-half-even(clamp(-min / scale, 0, 255)), all in float32. With a NaN in
    `a` the bounds are MLAS's (`_mlas_min_max`, per call of `span` values: `mlas_range_span`);
    a NaN bound stays NaN (std::min / max with 0), a NaN or infinite scale gives the zero
    point std::max(0, std::min(255, z)) does: 255 for a NaN z (O149)."""
    f = np.float32
    if a.size and np.isnan(a.min()):
        lo, hi = _mlas_split_min_max(np.ascontiguousarray(a, np.float32).reshape(-1), span)
        lo = lo if not f(0) < lo else f(0)      # std::min(lo, 0): a NaN stays
        hi = hi if not hi < f(0) else f(0)      # std::max(hi, 0)
    else:
        lo = f(min(0.0, float(a.min()))) if a.size else f(0)
        hi = f(max(0.0, float(a.max()))) if a.size else f(0)
    with np.errstate(invalid="ignore", over="ignore"):
        scale = f(1) if hi == lo else f((hi - lo) / f(255))
        z = f(0) - lo / scale
    if np.isnan(z):
        return scale, 255
    return scale, int(np.rint(np.clip(z, f(0), f(255))))


def quantize_uint8(a: np.ndarray, scale: np.float32, zero_point: int) -> np.ndarray:
    """MLAS's QuantizeLinear: a / scale (a division), clamped, rounded half to even, plus
    the zero point; a NaN quotient (a NaN, or an infinity over an infinite scale) clamps to
    the low bound (vmaxps(v, low) gives low), i.e. 0 (O149)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        v = a / scale
    v = np.where(np.isnan(v), np.float32(-zero_point), v)
    q = np.rint(np.clip(v, np.float32(-zero_point), np.float32(255 - zero_point)))
    return (q + zero_point).astype(np.uint8)


@dataclass(frozen=True)
class QuantizedWeight:
    """One direction's integer weight (K x N), its scales (one, or one per column) and the
    zero point MLAS uses: the first one (ONNX Runtime checks that a per-column uint8 zero
    point is constant and a per-column int8 one is zero)."""

    values: np.ndarray
    scale: np.ndarray
    zero_point: int

    @functools.cached_property
    def centered(self) -> np.ndarray:
        """values - zero_point, float64 (exact), made once."""
        return self.values.astype(np.float64) - self.zero_point

    @functools.cached_property
    def centered32(self) -> np.ndarray:
        return self.centered.astype(np.float32)

    @functools.cached_property
    def largest(self) -> int:
        """max |values - zero_point|."""
        return int(np.abs(self.centered).max(initial=0))

    def product(self, a: np.ndarray, c: np.ndarray | None = None,
                span: int = 0) -> np.ndarray:
        """rnn::detail::ComputeGemm on quantized weights: a (float32, M x K) quantized with
        its own range (taken `span` values a call: `mlas_range_span`), the exact int32
        product (a_q - z_a)(B - z_b), then MLAS's output processor: float32(acc) *
        float32(s_a * s_b[n]), plus `c` (beta = 1) after the product is rounded (a multiply
        then an add, no fused multiply-add)."""
        scale_a, zp_a = dynamic_qparams(a, span)
        a_q = quantize_uint8(a, scale_a, zp_a)
        # |a_q - z_a| <= 255: every partial sum is an integer of at most `bound`, exact in a
        # float32 product below 2^24 and a float64 one below 2^31 (where it rounds to
        # float32 as the int32 accumulator does)
        bound = self.values.shape[0] * 255 * self.largest
        if bound < 2**24:
            acc = (a_q.astype(np.float32) - np.float32(zp_a)) @ self.centered32
        elif bound < 2**31:
            acc = (a_q.astype(np.float64) - zp_a) @ self.centered
        else:
            acc = wrap_int32(exact_matmul(a_q.astype(np.int64) - zp_a,
                                          self.values.astype(np.int64) - self.zero_point))
        with np.errstate(invalid="ignore", over="ignore"):   # a NaN or infinite scale
            y = (acc.astype(np.float32) * (scale_a * self.scale).astype(np.float32)).astype(
                np.float32)
            return y if c is None else (y + c).astype(np.float32)


def _check_zero_points(zero_point: np.ndarray, dirs: int, name: str) -> None:
    zp = np.asarray(zero_point).reshape(dirs, -1)
    if zp.shape[1] > 1 and np.any(zp != zp[:, :1]):
        raise unsupported("DynamicQuantizeLSTM", f"{name} zero points that differ by column "
                          "(ONNX Runtime refuses them)")


def _weights(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
             dirs: int) -> list[QuantizedWeight]:
    scale = np.asarray(scale, np.float32).reshape(dirs, -1)
    zp = np.asarray(zero_point).reshape(dirs, -1)
    return [QuantizedWeight(q[d], scale[d], int(zp[d, 0])) for d in range(dirs)]


def _reverse_valid(x: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Each batch entry's first lens[b] steps reversed, the steps after them kept in place
    (rnn::detail::ReverseSequence); its own inverse."""
    seq = x.shape[0]
    t = np.arange(seq)[:, None]
    src = np.where(t < lens[None, :], lens[None, :] - 1 - t, t)
    return x[src, np.arange(x.shape[1])[None, :]]


def _direction(x: np.ndarray, w: QuantizedWeight, r: QuantizedWeight, cell: LstmOrtCell,
               h0: np.ndarray, c0: np.ndarray, lens: np.ndarray, reverse: bool,
               with_y: bool, rows_per_task: int, threads: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Y, Y_h, Y_c) of one direction, UniDirectionalLstm's order: X W for the first
    max(lens) steps in one product; per step H R per task of `rows_per_task` batch rows,
    each quantized on its own. The H a step reads is the previous step's output row: zero
    for an entry past its length when the node writes Y, its last H when it does not.
    `threads`: ONNX Runtime's intra-op threads, over which the X W product's range is taken,
    and the H R product's when one task holds the whole batch (the tasks of several run
    without the thread pool)."""
    seq, batch, _ = x.shape
    hid = r.values.shape[0]
    steps = int(lens.max(initial=0))
    xs = _reverse_valid(x, lens) if reverse else x
    x_span, h_span = _spans(x, hid, lens, rows_per_task, threads)
    g_x = np.zeros((seq, batch, 4 * hid), np.float32)
    if steps:
        g_x[:steps] = w.product(xs[:steps].reshape(steps * batch, -1), span=x_span).reshape(
            steps, batch, 4 * hid)
    ys = np.zeros((seq, batch, hid), np.float32)
    h_in, c = h0.copy(), c0.copy()
    y_h, y_c = np.zeros((batch, hid), np.float32), np.zeros((batch, hid), np.float32)
    for t in range(steps):
        g = np.empty_like(g_x[t])
        for s in range(0, batch, rows_per_task):
            rows = slice(s, s + rows_per_task)
            g[rows] = r.product(h_in[rows], c=g_x[t, rows], span=h_span)
        h_new, c_new = cell(g, c)
        live = t < lens
        c[live] = c_new[live]
        ys[t, live] = h_new[live]
        if with_y:
            h_in = ys[t].copy()
        else:
            h_in[live] = h_new[live]
        ends = lens == t + 1
        y_h[ends], y_c[ends] = h_new[ends], c[ends]
    return (_reverse_valid(ys, lens) if reverse else ys), y_h, y_c


def rows_per_task(batch: int, hidden: int, threads: int) -> int:
    """UniDirectionalLstm::SetNumThreads: with more than 4 entries, or 2 or more and at most
    256 hidden units, the batch is split into tasks of ceil(batch / threads) rows."""
    if batch > 4 or (batch >= 2 and hidden <= 256):
        return max(1, -(-batch // max(1, threads)))
    return max(1, batch)


def _spans(x: np.ndarray, hidden: int, lens: np.ndarray | None, task: int,
           threads: int) -> tuple[int, int]:
    """`mlas_range_span` of the X W product's operand (the first max(lens) steps) and of the
    H R product's (only when one task holds the whole batch: ONNX Runtime runs the tasks of
    several without its thread pool), as `_direction` takes them."""
    seq, batch, inp = x.shape
    steps = seq if lens is None else int(lens.max(initial=0))
    return (mlas_range_span(steps * batch * inp, threads),
            mlas_range_span(batch * hidden, threads) if task >= batch else 0)


@register
def DynamicQuantizeLSTM(x: np.ndarray, w: np.ndarray, r: np.ndarray,
                        b: np.ndarray | None = None, sequence_lens: np.ndarray | None = None,
                        initial_h: np.ndarray | None = None,
                        initial_c: np.ndarray | None = None, p: np.ndarray | None = None,
                        w_scale: np.ndarray | None = None,
                        w_zero_point: np.ndarray | None = None,
                        r_scale: np.ndarray | None = None,
                        r_zero_point: np.ndarray | None = None, *,
                        activations: Sequence[str] | None = None,
                        activation_alpha: Sequence[float] | None = None,
                        activation_beta: Sequence[float] | None = None,
                        clip: float | None = None,
                        direction: str = "forward", hidden_size: int | None = None,
                        input_forget: int = 0, layout: int = 0, with_y: bool = True,
                        ort_threads: int | None = None, **_: Any) -> tuple[np.ndarray, ...]:
    """LSTM with int8/uint8 W and R, X and H quantized per product (module docstring);
    natively (lowp.runtime.native_qlstm) when the extension takes the node, else the numpy
    loop below, the reference.

    `with_y`: the node writes Y (its first output has a name), which changes what a
    finished batch entry feeds the recurrent product's range; `ort_threads`: the intra-op
    threads of the ONNX Runtime session reproduced (1: one task for the whole batch; None:
    the session's own thread count, lowp.runtime.native_float.get_threads(), so that a
    Session at 2 threads gives ONNX Runtime's at 2 intra-op threads).
    """
    if layout:
        raise unsupported("DynamicQuantizeLSTM", "layout=1 (ONNX Runtime refuses it)")
    if w_scale is None or w_zero_point is None or r_scale is None or r_zero_point is None:
        raise unsupported("DynamicQuantizeLSTM", "missing weight scales or zero points")
    revs = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}.get(
        direction)
    if revs is None:
        raise unsupported("DynamicQuantizeLSTM", f"direction={direction!r}")
    dirs, hid = len(revs), r.shape[1]
    seq, batch, _ = x.shape
    check_rnn_shapes("LSTM", seq, batch, hid, dirs, sequence_lens, [initial_h, initial_c])
    x = x.astype(np.float32, copy=False)
    _check_zero_points(w_zero_point, dirs, "W")
    _check_zero_points(r_zero_point, dirs, "R")
    threads = native_float.get_threads() if ort_threads is None else ort_threads
    task = rows_per_task(batch, hid, threads)
    lens = None if sequence_lens is None else sequence_lens.astype(np.int64)
    # other activations: the gates as the float LSTM's (docs/operators.md, (O62)), numpy only
    params = deepcpu_activations("LSTM", activations, activation_alpha, activation_beta, dirs)
    acts = [lstm_ort_acts(d) for d in params]
    if all(a is None for a in acts) and native_qlstm.supported(x, hid, lens, clip):
        return native_qlstm.lstm(x, native_qlstm.packed(w, w_scale, w_zero_point, True),
                                 native_qlstm.packed(r, r_scale, r_zero_point), hid, b, lens,
                                 initial_h, initial_c, p, revs, clip, bool(input_forget),
                                 with_y, task, _spans(x, hid, lens, task, threads))
    if lens is None:
        lens = np.full(batch, seq, np.int64)
    ws = _weights(w, w_scale, w_zero_point, dirs)
    rs = _weights(r, r_scale, r_zero_point, dirs)
    outs = []
    for d, rev in enumerate(revs):
        h0 = (np.zeros((batch, hid), np.float32) if initial_h is None
              else initial_h[d].astype(np.float32))
        c0 = (np.zeros((batch, hid), np.float32) if initial_c is None
              else initial_c[d].astype(np.float32))
        cell = LstmOrtCell.of(None if b is None else b[d].astype(np.float32),
                              None if p is None else p[d].astype(np.float32), hid, clip,
                              bool(input_forget), acts[d])
        outs.append(_direction(x, ws[d], rs[d], cell, h0, c0, lens, rev, with_y, task,
                               threads))
    y = np.stack([o[0] for o in outs], axis=1)
    y_h = np.stack([o[1] for o in outs])
    y_c = np.stack([o[2] for o in outs])
    return y, y_h, y_c
