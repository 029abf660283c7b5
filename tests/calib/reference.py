"""Straightforward loop implementation of the entropy calibration, the oracle for kl_divergences.

A literal transcription of MXNet's `_get_optimal_threshold` loop (python version), in float64,
with one explicit rule: a candidate whose smoothing fails (all zeros, or an entry that would
become non-positive) has divergence +inf.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-4


def smooth(p: list[float]) -> list[float] | None:
    n_zeros = sum(1 for v in p if v == 0)
    n_nonzeros = len(p) - n_zeros
    if n_nonzeros == 0:
        return None
    eps1 = EPS * n_zeros / n_nonzeros
    out = [EPS if v == 0 else v - eps1 for v in p]
    if any(v <= 0 for v in out):
        return None
    return out


def kl(p: list[float], q: list[float]) -> float:
    sp, sq = math.fsum(p), math.fsum(q)
    return math.fsum(a / sp * math.log((a / sp) / (b / sq)) for a, b in zip(p, q, strict=True))


def kl_divergences_loop(hist: np.ndarray, num_quantized_bins: int,
                        candidates: list[int] | None = None) -> np.ndarray:
    """Divergence per candidate half-width i (all of them, or only `candidates`)."""
    hist = [float(v) for v in hist]
    num_bins = len(hist)
    zero_bin_idx = num_bins // 2
    odd = num_bins % 2                # odd: zero in the middle bin; even: the middle edge
    half = (num_quantized_bins - odd + 1) // 2
    out = []
    for i in (range(half, zero_bin_idx + 1) if candidates is None else candidates):
        start, stop = zero_bin_idx - i, zero_bin_idx + i + odd
        sliced = hist[start:stop]
        p = list(sliced)
        p[0] += math.fsum(hist[:start])
        p[-1] += math.fsum(hist[stop:])
        is_nonzero = [1 if v != 0 else 0 for v in p]
        num_merged = len(sliced) // num_quantized_bins
        quantized = []
        for j in range(num_quantized_bins):
            quantized.append(math.fsum(sliced[j * num_merged:(j + 1) * num_merged]))
        quantized[-1] += math.fsum(sliced[num_quantized_bins * num_merged:])
        q = [0.0] * len(p)
        for j in range(num_quantized_bins):
            lo = j * num_merged
            hi = len(p) if j == num_quantized_bins - 1 else lo + num_merged
            norm = sum(is_nonzero[lo:hi])
            if norm:
                for k in range(lo, hi):
                    q[k] = quantized[j] / norm
        q = [0.0 if pv == 0 else qv for pv, qv in zip(p, q, strict=True)]
        ps, qs = smooth(p), smooth(q)
        out.append(math.inf if ps is None or qs is None else kl(ps, qs))
    return np.array(out)


def mse_loop(hist: np.ndarray, edges: np.ndarray, levels: int, zeros: int = 0) -> np.ndarray:
    """Expected squared error for each candidate threshold (the bin edges right of zero)."""
    mid = len(hist) // 2
    centers = 0.5 * (edges[:-1] + edges[1:])
    out = []
    for t in edges[mid + 1:]:
        step = 2 * t / levels
        err = 0.0
        for c, n in zip(centers, hist, strict=True):
            err += n * (abs(c) - t) ** 2 if abs(c) > t else n * step * step / 12
        err -= zeros * step * step / 12
        out.append(err)
    return np.array(out)
