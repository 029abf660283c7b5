"""Independent oracles for the operator tests (torch in float64, brute-force loops)."""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from tests.strategies import WindowGeometry


def torch_conv_acc(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, zx: int,
                   zw: np.ndarray, geom: WindowGeometry, group: int) -> np.ndarray:
    """Channels-first conv accumulators from torch in float64 (exact for 8-bit data)."""
    r = geom.rank
    xt = torch.from_numpy(x.astype(np.float64) - zx)
    zw = np.asarray(zw, dtype=np.float64).reshape((-1,) + (1,) * (w.ndim - 1))
    wt = torch.from_numpy(w.astype(np.float64) - zw)
    # F.pad takes (last-axis begin, last-axis end, previous axis begin, ...)
    tp: list[int] = []
    for i in reversed(range(r)):
        tp += [geom.pads[i], geom.pads[i + r]]
    xt = F.pad(xt, tp)
    bt = None if bias is None else torch.from_numpy(bias.astype(np.float64))
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[r]
    y = fn(xt, wt, bt, stride=geom.strides, dilation=geom.dilations, groups=group)
    return y.numpy().astype(np.int64)


def brute_pool(x: np.ndarray, geom: WindowGeometry, out_shape: tuple[int, ...], *,
               include_pad: bool) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """Per output position: the in-bounds taps (arrays over N, C) and the divisor.

    Loops over output positions and kernel offsets one by one; channels first. The
    divisor counts taps inside the input, or (include_pad) inside [-pad_begin, in+pad_end).
    """
    r = geom.rank
    taps_all: list[list[np.ndarray]] = []
    counts = []
    for o in itertools.product(*(range(n) for n in out_shape)):
        taps = []
        count = 0
        for k in itertools.product(*(range(n) for n in geom.kernel)):
            pos = [o[i] * geom.strides[i] + k[i] * geom.dilations[i] - geom.pads[i]
                   for i in range(r)]
            inside = all(0 <= pos[i] < geom.spatial[i] for i in range(r))
            in_padded = all(-geom.pads[i] <= pos[i] < geom.spatial[i] + geom.pads[i + r]
                            for i in range(r))
            if inside:
                taps.append(x[(slice(None), slice(None), *pos)])
            if inside or (include_pad and in_padded):
                count += 1
        taps_all.append(taps)
        counts.append(count)
    return taps_all, np.array(counts, dtype=np.int64).reshape(out_shape)
