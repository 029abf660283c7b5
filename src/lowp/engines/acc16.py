"""Saturating 16-bit accumulation (DNNLOWP_ACC16), the numpy reference of (S1)-(S7).

u8 activations times the dense s8 weights are summed in pairs with int16 saturation
(vpmaddubsw), the pairs accumulated in int16 with saturation (vpaddsw) for `block_pairs`
pairs, then widened to int32; the sparse outlier weights are accumulated in int32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops.linear import exact_matmul, wrap_int32
from .types import DEFAULT_BLOCK_PAIRS

INT16_MIN = -(1 << 15)
INT16_MAX = (1 << 15) - 1


@dataclass(frozen=True, eq=False)
class OutlierSplit:
    """w = dense + outliers (S5); outliers also in compressed sparse column form.

    `dense` and `outliers` are int8 (K, N); column n of the CSC part holds the entries
    ``row_idx[col_ptr[n]:col_ptr[n+1]]`` with ``values`` in the same range.
    """

    dense: np.ndarray
    outliers: np.ndarray
    col_ptr: np.ndarray
    row_idx: np.ndarray
    values: np.ndarray

    @property
    def count(self) -> int:
        return int(self.values.size)

    @property
    def fraction(self) -> float:
        return self.count / max(1, self.dense.size)


def outlier_mask(w: np.ndarray, nbits_in_non_outlier: int) -> np.ndarray:
    """True where int8 `w` needs more than `nbits_in_non_outlier` bits (S5).

    Examples
    --------
    >>> outlier_mask(np.array([-9, -8, 7, 8], np.int8), 4).tolist()
    [True, False, False, True]
    """
    w = np.asarray(w).astype(np.int32)
    if nbits_in_non_outlier == 0:
        return np.ones(w.shape, dtype=bool)
    half = 1 << (nbits_in_non_outlier - 1)
    return (w < -half) | (w >= half)


def split_outliers(w: np.ndarray, nbits_in_non_outlier: int) -> OutlierSplit:
    """Split int8 weights (K, N) into a dense part and a sparse outlier part (S5)."""
    w = np.asarray(w)
    if w.dtype != np.int8 or w.ndim != 2:
        raise ValueError(f"split_outliers needs int8 (K, N) weights, got {w.dtype} {w.shape}")
    mask = outlier_mask(w, nbits_in_non_outlier)
    dense = np.where(mask, 0, w).astype(np.int8)
    outliers = np.where(mask, w, 0).astype(np.int8)
    cols, rows = np.nonzero(mask.T)                    # column-major order
    counts = np.bincount(cols, minlength=w.shape[1])
    col_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return OutlierSplit(dense, outliers, col_ptr, rows.astype(np.int32),
                        w.T[mask.T].astype(np.int8))


@dataclass(frozen=True, eq=False)
class Acc16Trace:
    """Per output element: did a pair sum (S1) or a running sum (S3) saturate, and how often."""

    pair_events: np.ndarray       # int64 (M, N): saturated pair sums
    sum_events: np.ndarray        # int64 (M, N): saturated running sums


def acc16_matmul(a: np.ndarray, dense: np.ndarray, block_pairs: int = DEFAULT_BLOCK_PAIRS,
                 *, trace: bool = False) -> tuple[np.ndarray, Acc16Trace | None]:
    """The 16-bit part (S1)-(S4) of ``a @ dense``: raw u8 (M, K) times raw s8 (K, N).

    Returns int32 (M, N) and, with `trace`, where saturation happened.

    Examples
    --------
    >>> a = np.array([[255, 255, 255, 255]], np.uint8)
    >>> w = np.array([[127], [127], [1], [1]], np.int8)
    >>> acc16_matmul(a, w)[0].tolist()            # pair 0 saturates at 32767
    [[32767]]
    """
    a = np.asarray(a)
    dense = np.asarray(dense)
    if a.dtype != np.uint8 or dense.dtype != np.int8:
        raise ValueError(f"acc16 needs uint8 activations and int8 weights, got {a.dtype} and "
                         f"{dense.dtype}")
    m, k = a.shape
    n = dense.shape[1]
    if dense.shape[0] != k:
        raise ValueError(f"inner dimensions differ: {a.shape} and {dense.shape}")
    if k % 2:
        a = np.pad(a, [(0, 0), (0, 1)])
        dense = np.pad(dense, [(0, 1), (0, 0)])
    ai = a.astype(np.int32)
    wi = dense.astype(np.int32)
    k2 = ai.shape[1] // 2
    total = np.zeros((m, n), dtype=np.int64)
    pair_ev = np.zeros((m, n), dtype=np.int64) if trace else None
    sum_ev = np.zeros((m, n), dtype=np.int64) if trace else None
    for j0 in range(0, k2, block_pairs):
        acc = np.zeros((m, n), dtype=np.int32)
        for j in range(j0, min(k2, j0 + block_pairs)):
            raw = ai[:, 2 * j, None] * wi[2 * j] + ai[:, 2 * j + 1, None] * wi[2 * j + 1]
            pair = np.clip(raw, INT16_MIN, INT16_MAX)                        # (S1)
            run = acc + pair
            acc = np.clip(run, INT16_MIN, INT16_MAX)                         # (S3)
            if pair_ev is not None and sum_ev is not None:
                pair_ev += raw != pair
                sum_ev += run != acc
        total += acc                                                         # (S4)
    tr = Acc16Trace(pair_ev, sum_ev) if pair_ev is not None and sum_ev is not None else None
    return wrap_int32(total), tr


def acc16_outlier_matmul(a: np.ndarray, split: OutlierSplit,
                         block_pairs: int = DEFAULT_BLOCK_PAIRS) -> np.ndarray:
    """(S1)-(S5) without zero-point terms: acc16(a, dense) + a @ outliers in int32."""
    acc, _ = acc16_matmul(a, split.dense, block_pairs)
    out = acc.astype(np.int64)
    if split.count:
        out += exact_matmul(a, split.outliers)
    return wrap_int32(out)


def zero_point_terms(a: np.ndarray, w: np.ndarray, x_zero_point: int,
                     w_zero_point: np.ndarray | int) -> np.ndarray:
    """(S6) corrections in int64: -zw * sum_k x_k - zx * sum_k w_k + K * zx * zw, (M, N)."""
    k = a.shape[1]
    zw = np.broadcast_to(np.asarray(w_zero_point, dtype=np.int64), (w.shape[1],))
    rows = a.astype(np.int64).sum(axis=1)[:, None]
    cols = w.astype(np.int64).sum(axis=0)[None, :]
    zx = int(x_zero_point)
    return -zw[None, :] * rows - zx * cols + k * zx * zw[None, :]


@dataclass(frozen=True, eq=False)
class SaturationReport:
    """Where and how often 16-bit accumulation saturated on some data.

    Attributes
    ----------
    outputs_per_channel
        Output elements computed per output channel.
    saturated_per_channel
        Output elements of each channel in which any pair sum or running sum saturated.
    events_per_channel
        Saturated pair sums plus saturated running sums, per channel.
    max_abs_error_per_channel
        Largest |acc16 result - int32 result| of each channel, in accumulator units.
    mask
        Boolean, the shape of the operator's output (channels where the output has them):
        True where the element saturated.
    """

    outputs_per_channel: int
    saturated_per_channel: np.ndarray
    events_per_channel: np.ndarray
    max_abs_error_per_channel: np.ndarray
    mask: np.ndarray

    @property
    def saturated_fraction(self) -> float:
        total = self.outputs_per_channel * self.saturated_per_channel.size
        return float(self.saturated_per_channel.sum()) / max(1, total)

    def summary(self) -> str:
        """One line per channel that saturated, worst first."""
        order = np.argsort(-self.saturated_per_channel, kind="stable")
        lines = [f"{self.saturated_fraction:.4%} of outputs saturated"]
        for c in order:
            if self.saturated_per_channel[c] == 0:
                break
            lines.append(f"channel {c}: {self.saturated_per_channel[c]} / "
                         f"{self.outputs_per_channel} outputs, {self.events_per_channel[c]} "
                         f"events, max error {self.max_abs_error_per_channel[c]}")
        return "\n".join(lines)


def saturation_stats(a: np.ndarray, split: OutlierSplit, block_pairs: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(saturated mask, events, |acc16 - exact|) per element of the (M, N) product."""
    acc, tr = acc16_matmul(a, split.dense, block_pairs, trace=True)
    assert tr is not None
    exact = exact_matmul(a, split.dense)
    events = tr.pair_events + tr.sum_events
    return events > 0, events, np.abs(acc.astype(np.int64) - exact)
