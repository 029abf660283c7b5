"""ONNX Runtime's MatMulNBits (bits 8, block 32, accuracy level 4) on x86-64 with AVX-512 VNNI,
reproduced bit for bit: the product ONNX Runtime 1.32 runs for DequantizeLinear(constant 8-bit
weight) -> MatMul with a float activation (docs/operators.md (O118)).

The weight is held as ONNX Runtime holds it after DQMatMulToMatMulNBits: unsigned bytes
`w_u8` (an int8 weight plus 128, its zero point plus 128), K cut into blocks of 32 (the last
one padded), one float32 scale and one zero point a column and block. Per row of A (M rows of
K floats; leading axes flattened) MLAS's CompInt8 kernel:

1. quantizes each block of 32 activations (zero padded): amax = max |a| (maxps lanes, which
   drop some NaNs: quantize_blocks), s_a = amax / 127, q = the low byte of
   int32(round_half_even(a * (127 / amax))) (within [-127, 127] for finite a and amax; 0
   for a NaN or infinite product), 127 / amax taken as 0 where amax = 0; and
   sum_a = float32(s_a * float32(sum q));
2. forms integer dot products of 4 consecutive k (VNNI vpdpbusd, u8 weight x s8 activation),
   g[b, j] = sum_{i<4} q[32 b + 4 j + i] * w_u8[32 b + 4 j + i], j = 0..7;
3. accumulates them in float32 lanes with fused multiply-adds by s_ab = float32(s_a * s_b):
   whole groups of four blocks b0..b0+3 in 16 lanes, lane 4 c + i of the 128-bit chunk c
   (c = 0, 1 for blocks b0 and b0 + 2, c = 2, 3 for b0 + 1 and b0 + 3, chunk c holding block
   groups j = 4 (c % 2) ...): the integer pair sums g[., j] + g[., j + 2] of one block, then
   the 16 lanes folded to 8 (lane i + lane i + 8); the remaining blocks one at a time in the 8
   lanes (lane j += g[b, j] * s_ab);
4. folds the 8 lanes to one value: columns in whole groups of four by FoldAccumulators,
   ((((l0 + l1) + l2) + l3) + (((l4 + l5) + l6) + l7)); the last N % 4 columns by
   hsum_float_8, ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7));
5. adds the bias (float32), then the zero-point term as an SGEMM over blocks:
   y += sum_b sum_a[b] * (-s_b[b] * z[b]) (a chain of fused multiply-adds from zero, added to y).

Checked against ONNX Runtime 1.32 on an Intel Xeon with AMX-INT8 (AVX-512 VNNI dispatch) at
1 and 2 threads: M 1 to 64, K 32 to 576 (whole and partial blocks, 1 to 18 blocks), N 1 to
128, zero points 0, 100 and 128, with and without bias (tests/runtime/test_ort_matmul_nbits.py).

Blocks of 16, 64 and 128 (bits 8 and 4) run other MLAS kernels, which differ from the above
in steps 3 and 4 only: how a group of blocks goes to 16 lanes and how the lanes fold
(`LaneLayout`, `LAYOUTS`, `PackedNBits._rows_lanes`; docs/operators.md (O159); checked on an
AMD EPYC Zen 4, tests/runtime/test_ort_matmul_nbits_blocks.py).
"""

from __future__ import annotations

import numpy as np

from .. import ort_math as _ort_math
from ..fixedpoint import fma32

BLOCK = 32
BLOCKS = (16, 32, 64, 128)            # the block lengths mirrored (docs/operators.md (O159))
_F = np.float32
_ROW_CHUNK_ELEMENTS = 1 << 22


def _max_ps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x86 maxps(a, b) lane by lane: a > b ? a : b, so b wherever either is a NaN."""
    return np.where(a > b, a, b)


def quantize_blocks(a: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(M, K) float32 -> int8 codes (M, blocks, block) as int64 and float32 scales (M, blocks):
    step 1 above, with MLAS's NaN handling (docs/operators.md (O136)).

    amax is the maximum of |a| as 16 lanes of maxps (lane l: |a[l]|, then maxps with
    |a[l + 16]|, |a[l + 32]|, ... for the 16-value chunks the block holds, zeros past the
    end) folded 16 -> 8 -> 4 -> 2 -> 1 by maxps of the high half with the low one: a NaN
    met as maxps' first operand is dropped, one met as its second is kept. The code of
    a * (127 / amax) is its int32 conversion (round half to even; NaN and |x| >= 2^31:
    INT32_MIN) truncated to its low byte, so a NaN, an infinity and any |x| >= 2^31 give
    0, and a value above a dropped amax wraps (300 -> 44)."""
    m, k = a.shape
    blocks = -(-k // block)
    padded = np.zeros((m, blocks * block), _F)
    padded[:, :k] = a
    blk = padded.reshape(m, blocks, block)
    mag = np.abs(blk)
    lane = mag[..., :16]
    filled = np.full((blocks, 1), block)
    filled[-1] = k - (blocks - 1) * block                 # values in each block
    for c in range(16, block, 16):                        # the chunks a block holds
        lane = np.where(filled > c, _max_ps(lane, mag[..., c:c + 16]), lane)
    lane = _max_ps(lane[..., 8:], lane[..., :8])
    lane = _max_ps(lane[..., 4:], lane[..., :4])
    lane = _max_ps(lane[..., :2], lane[..., 2:])
    amax = _max_ps(lane[..., 0], lane[..., 1]).astype(_F)
    scale = (amax / _F(127)).astype(_F)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inverse = np.where(amax != 0, _F(127) / np.where(amax != 0, amax, _F(1)), _F(0))
        x = np.rint(blk * inverse.astype(_F)[..., None]).astype(_F)
    fits = np.abs(x) < _F(2.0 ** 31)                  # False for NaN and infinities
    q = np.where(fits, x, _F(0)).astype(np.int64) & 0xFF
    return np.where(q > 127, q - 256, q), scale


def _fold4(v: np.ndarray) -> np.ndarray:
    lo = ((v[..., 0] + v[..., 1]).astype(_F) + v[..., 2]).astype(_F) + v[..., 3]
    hi = ((v[..., 4] + v[..., 5]).astype(_F) + v[..., 6]).astype(_F) + v[..., 7]
    return (lo.astype(_F) + hi.astype(_F)).astype(_F)


def _hsum8(v: np.ndarray) -> np.ndarray:
    r = (v[..., 4:8] + v[..., 0:4]).astype(_F)
    r2 = (r[..., 0:2] + r[..., 2:4]).astype(_F)
    return (r2[..., 0] + r2[..., 1]).astype(_F)


# lanes 0..15 of a group of four blocks: lane l = g[_LANE_BLK[l], j] + g[_LANE_BLK[l], j + 2]
# with j = _LANE_J[l] (chunk c = l // 4: blocks c // 2 and c // 2 + 2, groups 4 (c % 2) ...)
_LANE_BLK = np.array([c // 2 + 2 * (i // 2) for c in range(4) for i in range(4)])
_LANE_J = np.array([4 * (c % 2) + i % 2 for c in range(4) for i in range(4)])


def _hsum16(v: np.ndarray) -> np.ndarray:
    """hsum_float_16 (and GCC's _mm512_reduce_add_ps): lanes i + i + 8, then i + 4 + i,
    then i + i + 2, then 0 + 1."""
    h = (v[..., :8] + v[..., 8:]).astype(_F)
    h = (h[..., 4:] + h[..., :4]).astype(_F)
    h = (h[..., :2] + h[..., 2:]).astype(_F)
    return (h[..., 0] + h[..., 1]).astype(_F)


def _fold16(v: np.ndarray) -> np.ndarray:
    """FoldAccumulators of 16 lanes: ((l0 + l1) + l2) + l3 in each 128-bit chunk, then
    (c0 + c2) + (c1 + c3)."""
    c = v.reshape(*v.shape[:-1], 4, 4)
    s = (((c[..., 0] + c[..., 1]).astype(_F) + c[..., 2]).astype(_F) + c[..., 3]).astype(_F)
    return ((s[..., 0] + s[..., 2]).astype(_F) + (s[..., 1] + s[..., 3]).astype(_F)).astype(_F)


class LaneLayout:
    """How MLAS's AVX-512 VNNI CompInt8 kernel for one block length sums a group of `group`
    blocks into 16 float32 lanes (docs/operators.md (O159)): lane l holds 8 products of block
    `lane_block[l]`, at the positions perm[8 l .. 8 l + 7] of the group (block-major k);
    the blocks after the last whole group go one at a time to `rem_lanes` lanes, lane j
    summing the products at rem_perm[c j .. c j + c - 1] (c = block / rem_lanes). With 8
    remainder lanes the 16 are folded to 8 first (lane i + lane i + 8) and the 8 fold to one
    value per column as FoldAccumulators / hsum_float_8; with 16 they fold as hsum_float_16
    / FoldAccumulators of 16 lanes (`pair_fold`: which of the two a pair of rows takes)."""

    def __init__(self, block: int, group: int, lanes: list[tuple[int, list[int]]],
                 rem_lanes: int) -> None:
        self.block, self.group, self.rem_lanes = block, group, rem_lanes
        self.lane_block = np.array([b for b, _ in lanes], np.int64)
        self.perm = np.array([block * b + k for b, ks in lanes for k in ks], np.int64)
        self.rem_perm = np.arange(block, dtype=np.int64)
        self.perm_i32 = self.perm.astype(np.int32)                   # the native kernel's
        self.lane_block_i32 = self.lane_block.astype(np.int32)


def _quads(*starts: int) -> list[int]:
    return [s + i for s in starts for i in range(4)]


# 16: 8 blocks a group, lanes 4 L + h (block L) and 4 L + 2 + h (block L + 4) summing k =
# 4 h .. 4 h + 3 and 8 + 4 h .. (vpmaddubsw pairs, unpacked by 64 bits); the rest in 8 lanes
# of 2 products (k = 2 j, 2 j + 1)
# 64: 2 blocks a group, lane 4 L + 2 h + o (block o) summing the quads 4 L + h and 4 L + h + 2
# (vpdpbusd, unpacked by 32 bits); a last odd block in 16 lanes, lane i the quad i
# 128: 1 block, lane i summing the quads i and i + 16
LAYOUTS = {
    16: LaneLayout(16, 8, [(L + 4 * (lane % 4 // 2), _quads(4 * (lane % 2), 8 + 4 * (lane % 2)))
                           for L in range(4) for lane in range(4)], 8),
    64: LaneLayout(64, 2, [(lane % 2, _quads(4 * (4 * L + lane // 2), 4 * (4 * L + lane // 2 + 2)))
                           for L in range(4) for lane in range(4)], 16),
    128: LaneLayout(128, 1, [(0, _quads(4 * i, 64 + 4 * i)) for i in range(16)], 16),
}


class PackedNBits:
    """A MatMulNBits weight (N, blocks, block) uint8 (block 16, 32, 64 or 128) with its scales
    and zero points (N, blocks), its bits (8 or 4: the kernels of blocks of 64 fold a pair
    of rows differently), and what every run needs of them, computed once."""

    def __init__(self, w_u8: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
                 bits: int = 8) -> None:
        n, blocks, block = w_u8.shape
        if block not in BLOCKS:
            raise ValueError(f"MatMulNBits blocks of {block} are not modelled ({BLOCKS} are)")
        self.n, self.blocks, self.block, self.bits = n, blocks, block, bits
        self.pair_fold16 = block == 64 and bits == 8    # (O159)
        self.w_u8 = np.ascontiguousarray(w_u8, np.uint8)               # the native kernel's
        self.scale = np.ascontiguousarray(np.asarray(scale, _F).reshape(n, blocks))
        zb = np.asarray(zero_point).astype(_F).reshape(n, blocks)
        self.bblk = (-self.scale * zb).astype(_F)                      # QuantBBlkSum
        if block != BLOCK:
            lay = self.layout = LAYOUTS[block]
            groups = blocks // lay.group
            self.groups, self.rem = groups, blocks - groups * lay.group
            # lane-major bytes: (N, groups, 16, 8) of the whole groups, (N, rem, lanes, c) of
            # the blocks after them (the native kernel's; numpy's float64 copies: _lane_weights)
            wg = self.w_u8[:, :groups * lay.group].reshape(n, groups, lay.group * block)
            self.w_lanes = np.ascontiguousarray(wg[..., lay.perm].reshape(n, groups, 16, 8))
            self.w_rem = np.ascontiguousarray(
                self.w_u8[:, groups * lay.group:][..., lay.rem_perm]
                .reshape(n, self.rem, lay.rem_lanes, block // lay.rem_lanes))
            self._float_lanes: tuple[np.ndarray, np.ndarray] | None = None
            # the native AVX-512 VNNI kernel's panels of 16 columns (zero scales past N):
            # (panels, groups, 16 lanes, 2 quads, 16, 4) bytes; the blocks after the groups
            # (panels, rem, lanes, 16, 4), each lane's products padded to a quad with zeros
            panels = -(-n // 16)
            wl = np.zeros((panels * 16, groups, 16, 2, 4), np.uint8)
            wl[:n] = self.w_lanes.reshape(n, groups, 16, 2, 4)
            self.wp_lanes = np.ascontiguousarray(
                wl.reshape(panels, 16, groups, 16, 2, 4).transpose(0, 2, 3, 4, 1, 5))
            wr = np.zeros((panels * 16, self.rem, lay.rem_lanes, 4), np.uint8)
            if self.rem:                                      # at most 4 products a lane
                wr[:n, ..., :block // lay.rem_lanes] = self.w_rem
            self.wp_rem = np.ascontiguousarray(
                wr.reshape(panels, 16, self.rem, lay.rem_lanes, 4).transpose(0, 2, 3, 1, 4))
            self._scale_panels(n, blocks)
            return
        # the native AVX-512 kernel's panels of 16 columns (padded with zero scales):
        # (panels, blocks, 8, 16, 4) bytes, scales and bblk (panels, blocks, 16)
        panels = -(-n // 16)
        wpad = np.zeros((panels * 16, blocks, BLOCK), np.uint8)
        wpad[:n] = self.w_u8
        self.w_panels = np.ascontiguousarray(
            wpad.reshape(panels, 16, blocks, 8, 4).transpose(0, 2, 3, 1, 4))
        self._scale_panels(n, blocks)
        # (blocks * 8, 4, N) float64: the 4-k groups of every column, for exact products
        self.wg = np.ascontiguousarray(
            np.asarray(w_u8).reshape(n, blocks * 8, 4).transpose(1, 2, 0).astype(np.float64))

    def _lane_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """w_lanes and w_rem as float64 (groups * 16, 8, N) and (rem * lanes, c, N), for
        exact products in numpy; made on the first numpy run (the native kernel needs none)."""
        if self._float_lanes is None:
            n, per = self.n, self.block // self.layout.rem_lanes
            self._float_lanes = (
                np.ascontiguousarray(self.w_lanes.reshape(n, self.groups * 16, 8)
                                     .transpose(1, 2, 0).astype(np.float64)),
                np.ascontiguousarray(self.w_rem.reshape(n, -1, per).transpose(1, 2, 0)
                                     .astype(np.float64)))
        return self._float_lanes

    def _scale_panels(self, n: int, blocks: int) -> None:
        """Scales and -s_b z in panels of 16 columns (panels, blocks, 16), zeros past N."""
        panels = -(-n // 16)
        self.scale_panels, self.bblk_panels = (
            np.ascontiguousarray(np.concatenate(
                [v, np.zeros((panels * 16 - n, blocks), _F)]).reshape(panels, 16, blocks)
                .transpose(0, 2, 1)) for v in (self.scale, self.bblk))

    def lanes(self, q: np.ndarray, sab: np.ndarray) -> np.ndarray:
        """The 8 float32 lanes of step 3 for rows q (M, blocks, 32) and scales sab
        (M, N, blocks): (M, N, 8)."""
        m, blocks, n = q.shape[0], self.blocks, self.n
        qg = q.reshape(m, blocks * 8, 4).transpose(1, 0, 2).astype(np.float64)  # (b*8, M, 4)
        # g[m, n, b, j]: exact integer sums of 4 products (|g| < 2^17, float64 exact)
        g = np.matmul(qg, self.wg).reshape(blocks, 8, m, n).transpose(2, 3, 0, 1)
        whole = blocks // 4 * 4
        acc16 = np.zeros((m, n, 16), _F)
        if whole:
            gg = g[:, :, :whole].reshape(m, n, whole // 4, 4, 8)
            summ = (gg[..., _LANE_BLK, _LANE_J] + gg[..., _LANE_BLK, _LANE_J + 2]).astype(_F)
            sc = sab[:, :, :whole].reshape(m, n, whole // 4, 4)[..., _LANE_BLK]
            for i in range(whole // 4):
                acc16 = fma32(summ[:, :, i], sc[:, :, i], acc16).astype(_F)
        acc8 = (acc16[..., :8] + acc16[..., 8:]).astype(_F)
        for b in range(whole, blocks):
            acc8 = fma32(g[:, :, b].astype(_F), sab[:, :, b:b + 1], acc8).astype(_F)
        return acc8

    def run(self, a: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        """y = MatMulNBits(a): a (..., K) float32, bias (N,) or None -> (..., N) float32."""
        lead, k = a.shape[:-1], a.shape[-1]
        n, blocks = self.n, self.blocks
        if blocks != -(-k // self.block):
            raise ValueError(f"K = {k} needs {-(-k // self.block)} blocks of {self.block}, "
                             f"the weight has {blocks}")
        a2 = np.ascontiguousarray(a, _F).reshape(-1, k)
        out = np.empty((a2.shape[0], n), _F)
        with np.errstate(invalid="ignore", over="ignore"):   # NaNs and infinities: (O136)
            if self.block != BLOCK:
                self._rows_lanes(a2, bias, out)
            else:
                self._rows(a2, bias, out)
        return out.reshape(*lead, n)

    def _rows_lanes(self, a2: np.ndarray, bias: np.ndarray | None, out: np.ndarray) -> None:
        """Blocks of 16, 64 and 128 (MLAS's BlkLen16 / 64 / 128 kernels, docs/operators.md
        (O137), (O159)): each whole group of blocks as 16 lanes of 8 products, fused
        multiply-added by s_a * s_b into 16 float32 lanes; the blocks after the last group
        into 8 lanes (the 16 folded to 8 first) or 16; then folded to one value a column:
        8 lanes as for blocks of 32; 16 lanes by hsum_float_16 for rows in pairs (from the
        first; FoldAccumulators for groups of four columns at blocks of 64 with 8 bits), a
        last odd row's groups of four columns by FoldAccumulators and its other columns
        by hsum_float_16; then the bias and the zero-point term as for blocks of 32."""
        lay, n, blocks, block = self.layout, self.n, self.blocks, self.block
        groups, rem, rl = self.groups, self.rem, lay.rem_lanes
        wg, wr = self._lane_weights()
        m_all, tail = a2.shape[0], n // 4 * 4
        pair_fold = _fold16 if self.pair_fold16 else _hsum16
        rows = max(2, _ROW_CHUNK_ELEMENTS // max(1, n * blocks * 16) // 2 * 2)
        for r0 in range(0, m_all, rows):
            q, sa = quantize_blocks(a2[r0:r0 + rows], block)
            m = q.shape[0]
            sab = (sa[:, None, :] * self.scale[None]).astype(_F)
            acc = np.zeros((m, n, 16), _F)
            if groups:
                qg = q[:, :groups * lay.group].reshape(m, groups, -1)[..., lay.perm]
                qg = qg.reshape(m, groups * 16, 8).transpose(1, 0, 2).astype(np.float64)
                g = np.matmul(qg, wg).reshape(groups, 16, m, n).transpose(2, 3, 0, 1)
                sc = sab[:, :, :groups * lay.group].reshape(m, n, groups, lay.group)
                sc = sc[..., lay.lane_block]
                for i in range(groups):
                    acc = fma32(g[:, :, i].astype(_F), sc[:, :, i], acc).astype(_F)
            if rl == 8:
                acc = (acc[..., :8] + acc[..., 8:]).astype(_F)
            if rem:
                qr = q[:, groups * lay.group:][..., lay.rem_perm].reshape(m, rem * rl, -1)
                gr = np.matmul(qr.transpose(1, 0, 2).astype(np.float64), wr)
                gr = gr.reshape(rem, rl, m, n).transpose(2, 3, 0, 1)
                for i in range(rem):
                    b = groups * lay.group + i
                    acc = fma32(gr[:, :, i].astype(_F), sab[:, :, b, None], acc).astype(_F)
            if rl == 8:
                y = np.empty((m, n), _F)
                y[:, :tail] = _fold4(acc[:, :tail])
                y[:, tail:] = _hsum8(acc[:, tail:])
            else:
                y = _hsum16(acc)
                y[:, :tail] = pair_fold(acc[:, :tail])
                if m_all % 2 and r0 + m == m_all:                  # the last, unpaired row
                    y[-1, :tail] = _fold16(acc[-1, :tail])
            if bias is not None:
                y = (y + np.asarray(bias, _F)).astype(_F)
            ablk = (sa * q.sum(axis=-1).astype(_F)).astype(_F)
            zacc = np.zeros_like(y)
            for b in range(blocks):
                zacc = _zero_term_fma(ablk[:, None, b], self.bblk[None, :, b], zacc)
            out[r0:r0 + m] = _ort_math.first_nan_add(zacc, y).astype(_F)

    def _rows(self, a2: np.ndarray, bias: np.ndarray | None, out: np.ndarray) -> None:
        n, blocks = self.n, self.blocks
        tail = n // 4 * 4
        rows = max(1, _ROW_CHUNK_ELEMENTS // max(1, n * blocks * 8))
        for r0 in range(0, a2.shape[0], rows):
            q, sa = quantize_blocks(a2[r0:r0 + rows])
            sab = (sa[:, None, :] * self.scale[None]).astype(_F)
            acc8 = self.lanes(q, sab)
            y = np.empty(acc8.shape[:2], _F)
            y[:, :tail] = _fold4(acc8[:, :tail])
            y[:, tail:] = _hsum8(acc8[:, tail:])
            if bias is not None:
                y = (y + np.asarray(bias, _F)).astype(_F)
            ablk = (sa * q.sum(axis=-1).astype(_F)).astype(_F)        # AScaledBlkSum
            zacc = np.zeros_like(y)
            for b in range(blocks):
                zacc = _zero_term_fma(ablk[:, None, b], self.bblk[None, :, b], zacc)
            out[r0:r0 + rows] = _ort_math.first_nan_add(zacc, y).astype(_F)


def _zero_term_fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a * b + c rounded once, of several NaNs b's, then a's, then c's (quieted), as the fused
    multiply-adds of ONNX Runtime's zero-point term give them (docs/operators.md (O220))."""
    out = fma32(a, b, c).astype(_F)
    for v in (c, a, b):                  # the last one written wins
        v = np.broadcast_to(np.asarray(v, _F), out.shape)
        out = np.where(np.isnan(v), _ort_math.quieted(v), out)
    return out.astype(_F)


def matmul_nbits8(a: np.ndarray, w_u8: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
                  bias: np.ndarray | None = None) -> np.ndarray:
    """y = MatMulNBits(a) as ONNX Runtime computes it (steps 1-5 above).

    a: (..., K) float32; w_u8: (N, blocks, 32) uint8; scale, zero_point: (N, blocks);
    bias: (N,) float32 or None. Returns (..., N) float32.

    Examples
    --------
    >>> w = np.full((1, 1, 32), 129, np.uint8)             # int8 weights of 1, scale 0.5
    >>> y = matmul_nbits8(np.ones((1, 32), np.float32), w, np.full((1, 1), 0.5, np.float32),
    ...                   np.full((1, 1), 128, np.uint8))
    >>> float(y[0, 0])
    16.0
    """
    return PackedNBits(w_u8, scale, zero_point).run(a, bias)


def pack_weight(w: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, *,
                bits: int = 8, block: int = BLOCK
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A DequantizeLinear's constant (K, N) weight as DQMatMulToMatMulNBits stores it:
    uint8 (N, blocks, block) (a signed weight plus 2^(bits - 1): int8 + 128, int4 + 8; the
    padding at the zero point), scales and zero points (N, blocks).

    w: int8 / uint8 holding `bits`-bit values (its sign says int or uint); scale and
    zero_point per tensor (one value), per column ((N,)) or per block of `block` (16,
    32, 64 or 128) along K ((blocks, N), DequantizeLinear's block_size on axis 0); zero_point None:
    0. The 4-bit kernel (MatMulNBits bits 4) computes as the 8-bit one on these bytes
    (docs/operators.md (O137))."""
    k, n = w.shape
    blocks = -(-k // block)
    shift = 1 << (bits - 1) if w.dtype == np.int8 else 0
    s = np.asarray(scale, _F)
    z = np.zeros(s.shape, np.int64) if zero_point is None else np.asarray(zero_point, np.int64)
    if s.ndim == 2:                                                    # per block
        sb, zb = s.T, z.T + shift
    else:
        sb = np.repeat(np.broadcast_to(s.reshape(-1), (n,))[:, None], blocks, 1)
        zb = np.repeat(np.broadcast_to(z.reshape(-1), (n,))[:, None], blocks, 1) + shift
    wu = np.repeat(zb.astype(np.uint8), block, 1)
    wu[:, :k] = (w.T.astype(np.int64) + shift).astype(np.uint8)
    return (wu.reshape(n, blocks, block), np.ascontiguousarray(sb, _F),
            np.ascontiguousarray(zb, np.uint8))
