"""Exactly representable inputs for the engine tests (scale 1, DNNLOWP test style)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowp.engines import Engine, EngineOptions, WeightQuant
from lowp.fixedpoint import RequantMode, quantize_multiplier


@dataclass(frozen=True)
class Problem:
    """Float tensors whose quantization is exact: x spans 256 integers, w likewise."""

    x: np.ndarray        # channels first (N, C, *spatial) or (M, K) for FC
    w: np.ndarray        # (M, C/group, *kernel) or (N, K)
    bias: np.ndarray     # integer-valued floats
    x_min: float
    w_min: float


def activation_min(preserve_sparsity: bool, pick: int) -> float:
    """x spans [x_min, x_min + 255]: scale 1 under (Q4)-(Q5) and under (S9)."""
    return float((0, -128)[pick % 2] if preserve_sparsity else (-77, 0, -128)[pick % 3])


def weight_min(preserve_sparsity: bool) -> float:
    """w spans [w_min, w_min + 255]: asymmetric int8 scale 1, or (S9) scale 1 zero point 0."""
    return -128.0 if preserve_sparsity else -100.0


def make_problem(rng: np.random.Generator, x_shape: tuple[int, ...],
                 w_shape: tuple[int, ...], preserve_activation: bool,
                 preserve_weight: bool, x_pick: int) -> Problem:
    """Mostly small raw values; the extremes of every weight row and of x are present.

    Raw (stored) activations are x - x_min and raw weights w - w_min - 128, so small raw
    values keep the 16-bit accumulation far from saturation except where the extremes meet.
    """
    x_min = activation_min(preserve_activation, x_pick)
    w_min = weight_min(preserve_weight)
    x = x_min + rng.integers(0, 4, size=x_shape).astype(np.float64)
    flat = x.reshape(-1)
    if flat.size >= 2:
        idx = rng.choice(flat.size, size=2, replace=False)
        flat[idx[0]], flat[idx[1]] = x_min, x_min + 255
    zw = -128 - w_min                     # raw = w + zw
    w = (rng.integers(-3, 4, size=w_shape) - zw).astype(np.float64)
    rows = w.reshape(w_shape[0], -1)
    for r in rows:
        if r.size >= 2:
            i, j = rng.choice(r.size, size=2, replace=False)
            r[i], r[j] = w_min, w_min + 255
    bias = rng.integers(-50, 51, size=w_shape[0]).astype(np.float64)
    return Problem(x.astype(np.float32), w.astype(np.float32), bias.astype(np.float32), x_min,
                   w_min)


def options_for(engine: Engine, weight_quant: WeightQuant, preserve_activation: bool,
                preserve_weight: bool, nbits: int, fixedpoint: bool = False) -> EngineOptions:
    return EngineOptions(engine=engine, weight_quant=weight_quant,
                         preserve_activation_sparsity=preserve_activation,
                         preserve_weight_sparsity=preserve_weight, nbits_in_non_outlier=nbits,
                         requant_mode=RequantMode.FIXEDPOINT
                         if fixedpoint and engine is not Engine.DNNLOWP_16
                         else RequantMode.FLOAT32)


def requant_error_steps(engine: Engine, fixedpoint: bool, y_scale: np.ndarray) -> float:
    """Largest requantization error in output steps: 1/2 for (R2); (R4) rounds twice.

    (R4) rounds to 31 bits (SRDHM) and then divides by 2^r, so a product just below a half
    can round up: the error is below 1/2 + 2^-(r+1). The 8-bit test inputs have
    s_x = s_w = 1, so M = float32(1 / s_y).
    """
    if not fixedpoint or engine is Engine.DNNLOWP_16:
        return 0.5
    _, exp = quantize_multiplier(np.float32(1) / np.float32(y_scale))
    return 0.5 + 2.0 ** -(max(-int(exp), 0) + 1)
