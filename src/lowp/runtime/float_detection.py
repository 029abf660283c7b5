"""Numpy float implementations of the ONNX detection and geometry ops: NonMaxSuppression,
RoiAlign, GridSample, AffineGrid, MaxUnpool, Col2Im, CenterCropPad.

Registered into FLOAT_OPS (see float_registry for the calling convention). Each follows ONNX
Runtime's CPU kernel step for step (docs/operators.md (O242)-(O249)): the same float
operations in the same order, so the outputs are its bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lowp.errors import NodeError
from lowp.ort_math import first_nan_add
from lowp.runtime import native_float
from lowp.runtime.float_registry import register, unsupported

# --- NonMaxSuppression ------------------------------------------------------------------


def _first(v: np.ndarray | None, name: str) -> Any:
    """The first element of an optional scalar input (ONNX Runtime reads only that one)."""
    if v is None:
        return None
    if v.size == 0:
        raise NodeError(f"{name} is an empty tensor")
    return v.reshape(-1)[0]


def _corners(boxes: np.ndarray, center_point_box: int) -> tuple[np.ndarray, ...]:
    """x_min, x_max, y_min, y_max (float32) of each box, as ONNX Runtime's SuppressByIOU
    forms them: corners ordered by >=, or center -/+ half the size (size / 2)."""
    if center_point_box == 0:
        y1, x1, y2, x2 = (boxes[..., i] for i in range(4))
        x_swap, y_swap = ~(x1 >= x2), ~(y1 >= y2)
        return (np.where(x_swap, x1, x2), np.where(x_swap, x2, x1),
                np.where(y_swap, y1, y2), np.where(y_swap, y2, y1))
    xc, yc, w, h = (boxes[..., i] for i in range(4))
    half_w, half_h = w / np.float32(2), h / np.float32(2)
    return xc - half_w, xc + half_w, yc - half_h, yc + half_h


def _overlaps(c: tuple[np.ndarray, ...], j: np.ndarray, k: np.ndarray,
              iou_threshold: np.float32) -> np.ndarray:
    """Whether candidate boxes j overlap kept boxes k (index arrays that broadcast) by
    more than iou_threshold: nms_helpers::SuppressByIOU(j, k), float32 throughout."""
    x_min, x_max, y_min, y_max = c
    # std::max(a, b) is (a < b) ? b : a, std::min(a, b) is (b < a) ? b : a; a is box j
    ix_min = np.where(x_min[j] < x_min[k], x_min[k], x_min[j])
    ix_max = np.where(x_max[k] < x_max[j], x_max[k], x_max[j])
    iy_min = np.where(y_min[j] < y_min[k], y_min[k], y_min[j])
    iy_max = np.where(y_max[k] < y_max[j], y_max[k], y_max[j])
    with np.errstate(all="ignore"):
        inter = (ix_max - ix_min) * (iy_max - iy_min)
        area_k = (x_max[k] - x_min[k]) * (y_max[k] - y_min[k])
        area_j = (x_max[j] - x_min[j]) * (y_max[j] - y_min[j])
        union = area_j + area_k - inter
        iou = inter / union
    # (each test is written as ONNX Runtime's early `return false`, negated: NaN passes it)
    return np.asarray(~(ix_max <= ix_min) & ~(iy_max <= iy_min) & ~(inter <= 0)
                      & ~(area_k <= 0) & ~(area_j <= 0) & ~(union <= 0)
                      & (iou > iou_threshold))


# candidates weighed at once against the kept boxes and each other
_NMS_CHUNK = 256


def _select(c: tuple[np.ndarray, ...], order: list[int], limit: int,
            iou_threshold: np.float32) -> list[int]:
    """The boxes kept from candidates in pop order: each one not overlapping a kept box,
    until `limit` are kept. Chunks of candidates are checked against the boxes kept
    before them and against each other in one go, then walked in order."""
    kept: list[int] = []
    for start in range(0, len(order), _NMS_CHUNK):
        chunk = np.asarray(order[start:start + _NMS_CHUNK])
        dead = np.zeros(len(chunk), bool)
        if kept:
            dead |= _overlaps(c, chunk[:, None], np.asarray(kept)[None, :],
                              iou_threshold).any(axis=1)
        among = _overlaps(c, chunk[:, None], chunk[None, :], iou_threshold)
        for i in range(len(chunk)):
            if dead[i]:
                continue
            if len(kept) >= limit:
                return kept
            kept.append(int(chunk[i]))
            dead[i + 1:] |= among[i + 1:, i]
    return kept


Item = tuple[float, int]


def _before(a: Item, b: Item) -> bool:
    """ONNX Runtime's BoxInfoPtr::operator<: a lower score, or an equal one and a higher
    index (NaN compares neither way, so it leaves the order to the heap)."""
    return a[0] < b[0] or (a[0] == b[0] and a[1] > b[1])


def _heap_order(scores: np.ndarray, candidates: np.ndarray) -> list[int]:
    """Box indices in the order ONNX Runtime's std::priority_queue pops them: built from
    the candidates in index order by libstdc++'s make_heap, popped by its pop_heap."""
    heap: list[Item] = [(float(scores[i]), int(i)) for i in candidates.tolist()]
    n = len(heap)
    for parent in range((n - 2) // 2, -1, -1):
        _adjust_heap(heap, parent, n, heap[parent])
    order = []
    while heap:
        order.append(heap[0][1])
        last = heap.pop()
        if heap:
            _adjust_heap(heap, 0, len(heap), last)
    return order


def _sift_up(heap: list[Item], hole: int, top: int, item: Item) -> None:
    parent = (hole - 1) // 2
    while hole > top and _before(heap[parent], item):
        heap[hole] = heap[parent]
        hole = parent
        parent = (hole - 1) // 2
    heap[hole] = item


def _adjust_heap(heap: list[Item], hole: int, n: int, item: Item) -> None:
    top = hole
    child = hole
    while child < (n - 1) // 2:
        child = 2 * (child + 1)
        if _before(heap[child], heap[child - 1]):
            child -= 1
        heap[hole] = heap[child]
        hole = child
    if n % 2 == 0 and child == (n - 2) // 2:
        child = 2 * (child + 1)
        heap[hole] = heap[child - 1]
        hole = child - 1
    _sift_up(heap, hole, top, item)


def _pop_order(scores: np.ndarray, candidates: np.ndarray) -> list[int]:
    """The order the candidates leave ONNX Runtime's priority queue: by descending score,
    equal scores by ascending index; the heap itself decides only where a NaN is."""
    picked = scores[candidates]
    if np.isnan(picked).any():
        return _heap_order(scores, candidates)
    return [int(i) for i in candidates[np.argsort(-picked, kind="stable")]]


@register
def NonMaxSuppression(boxes: np.ndarray, scores: np.ndarray,
                      max_output_boxes_per_class: np.ndarray | None = None,
                      iou_threshold: np.ndarray | None = None,
                      score_threshold: np.ndarray | None = None, *,
                      center_point_box: int = 0, **_: Any) -> np.ndarray:
    """(selected, 3) int64 rows (batch, class, box), batch by batch and class by class, each
    class's boxes in the order they were kept ((O242), (O243)); natively
    `native_float.non_max_suppression` ((O313)), this numpy selection its reference."""
    if boxes.dtype != np.float32 or scores.dtype != np.float32:
        raise unsupported("NonMaxSuppression", f"{boxes.dtype} boxes or {scores.dtype} "
                          "scores: ONNX Runtime runs it on float32 only")
    if boxes.ndim != 3 or scores.ndim != 3:
        raise NodeError(f"boxes {list(boxes.shape)} and scores {list(scores.shape)} must "
                        "both be 3-D")
    if boxes.shape[0] != scores.shape[0] or boxes.shape[1] != scores.shape[2] \
            or boxes.shape[2] != 4:
        raise NodeError(f"boxes {list(boxes.shape)} must be (batches, boxes, 4) and scores "
                        f"{list(scores.shape)} (batches, classes, boxes)")
    if center_point_box not in (0, 1):
        raise NodeError(f"center_point_box={center_point_box} is not 0 or 1")
    limit = _first(max_output_boxes_per_class, "max_output_boxes_per_class")
    limit = 0 if limit is None else max(int(limit), 0)
    iou = _first(iou_threshold, "iou_threshold")
    iou = np.float32(0) if iou is None else np.float32(iou)
    if not 0 <= iou <= 1:
        raise NodeError(f"iou_threshold {iou} is not in [0, 1]")
    floor = _first(score_threshold, "score_threshold")
    rows: list[tuple[int, int, int]] = []
    if limit == 0:
        return np.zeros((0, 3), np.int64)
    native = native_float.non_max_suppression(
        boxes, scores, limit, iou, None if floor is None else np.float32(floor),
        center_point_box)
    if native is not None:
        return native
    for b in range(boxes.shape[0]):
        corners = _corners(boxes[b], center_point_box)
        for c in range(scores.shape[1]):
            s = scores[b, c]
            candidates = (np.flatnonzero(s > np.float32(floor)) if floor is not None
                          else np.arange(s.shape[0]))
            for j in _select(corners, _pop_order(s, candidates), limit, iou):
                rows.append((b, c, j))
    return np.array(rows, np.int64).reshape(-1, 3)


# --- RoiAlign ---------------------------------------------------------------------------


def _roi_samples(start: Any, bin_size: Any, pooled: int, grid: int, size: int,
                 t: Any) -> tuple[np.ndarray, ...]:
    """Along one axis, for the pooled x grid sample points (shape (pooled, grid)): the
    low and high indices, the low-side weight (1 - l) and high-side weight l, and whether
    the point is outside [-1, size] (roialign.cc PreCalcForBilinearInterpolate)."""
    p: np.ndarray = np.arange(pooled, dtype=t)[:, None]
    frac = np.arange(grid, dtype=np.float32)[None, :] + np.float32(0.5)
    pos = start + p * bin_size + frac.astype(t) * bin_size / t(grid)
    outside = (pos < -1.0) | (pos > size)
    pos = np.where(pos <= 0, t(0), pos)
    with np.errstate(invalid="ignore"):
        low = np.where(outside, 0, pos).astype(np.int64)
    edge = low >= size - 1
    low = np.where(edge, size - 1, low)
    high = np.where(edge, low, low + 1)
    pos = np.where(edge, low.astype(t), pos)
    frac_l: np.ndarray = (pos - low.astype(t)).astype(t)
    return low, high, (t(1) - frac_l).astype(t), frac_l, outside


def _roi_values(x: np.ndarray, roi: np.ndarray, spatial_scale: float, height: int,
                width: int, pooled_h: int, pooled_w: int, sampling_ratio: int,
                half_pixel: bool, mode: str) -> np.ndarray:
    """One roi's (C, pooled_h, pooled_w) output from its batch image x (C, H, W); avg
    mode's sums hand on the first operand's NaN where two meet, as ONNX Runtime's."""
    t = x.dtype.type
    offset = t(0.5) if half_pixel else t(0)
    start_w, start_h, end_w, end_h = (t(roi[i] * t(spatial_scale)) - offset for i in range(4))
    roi_w, roi_h = t(end_w - start_w), t(end_h - start_h)
    if not half_pixel:
        roi_w, roi_h = max(roi_w, t(1)), max(roi_h, t(1))
    bin_h, bin_w = t(roi_h / t(pooled_h)), t(roi_w / t(pooled_w))
    grid_h = sampling_ratio if sampling_ratio > 0 else int(np.ceil(t(roi_h / t(pooled_h))))
    grid_w = sampling_ratio if sampling_ratio > 0 else int(np.ceil(t(roi_w / t(pooled_w))))
    count = grid_h * grid_w
    channels = x.shape[0]
    if grid_h <= 0 or grid_w <= 0:
        if count * pooled_h * pooled_w < 0:
            raise NodeError(f"roi {roi.tolist()} has a negative extent on one axis only")
        # no sample: the average divides +0 by max(count, 1), the maximum stays +0
        return np.zeros((channels, pooled_h, pooled_w), x.dtype)
    ylo, yhi, hy, ly, yout = _roi_samples(start_h, bin_h, pooled_h, grid_h, height, t)
    xlo, xhi, hx, lx, xout = _roi_samples(start_w, bin_w, pooled_w, grid_w, width, t)
    # (pooled_h, pooled_w, grid_h, grid_w) sample tables
    out = yout[:, None, :, None] | xout[None, :, None, :]
    y_low, y_high = ylo[:, None, :, None], yhi[:, None, :, None]
    x_low, x_high = xlo[None, :, None, :], xhi[None, :, None, :]
    zero = t(0)
    w1 = np.where(out, zero, hy[:, None, :, None] * hx[None, :, None, :])
    w2 = np.where(out, zero, hy[:, None, :, None] * lx[None, :, None, :])
    w3 = np.where(out, zero, ly[:, None, :, None] * hx[None, :, None, :])
    w4 = np.where(out, zero, ly[:, None, :, None] * lx[None, :, None, :])
    flat = x.reshape(channels, height * width)

    def at(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        pos = np.where(out, 0, yi * width + xi)
        return flat[:, pos.reshape(-1)].reshape(channels, pooled_h, pooled_w, count)

    shape = (pooled_h, pooled_w, count)
    with np.errstate(all="ignore"):
        t1 = w1.reshape(shape) * at(y_low, x_low)
        t2 = w2.reshape(shape) * at(y_low, x_high)
        t3 = w3.reshape(shape) * at(y_high, x_low)
        t4 = w4.reshape(shape) * at(y_high, x_high)
        if mode == "avg":
            terms = first_nan_add(first_nan_add(first_nan_add(t1, t2), t3), t4)
            total = zero + terms[..., 0]         # the sum starts from +0
            for k in range(1, count):
                total = first_nan_add(total, terms[..., k])
            return total / t(count)
        # ONNX Runtime's max mode: the largest weighted corner, not the interpolated value
        vals = np.where(t1 < t2, t2, t1)
        vals = np.where(vals < t3, t3, vals)
        vals = np.where(vals < t4, t4, vals)
        best = vals[..., 0]
        for k in range(1, count):
            best = np.where(best < vals[..., k], vals[..., k], best)
        return best


@register
def RoiAlign(x: np.ndarray, rois: np.ndarray, batch_indices: np.ndarray, *,
             coordinate_transformation_mode: str = "half_pixel", mode: str = "avg",
             output_height: int = 1, output_width: int = 1, sampling_ratio: int = 0,
             spatial_scale: float = 1.0, opset: int = 16, **_: Any) -> np.ndarray:
    """(rois, C, output_height, output_width): each roi's bins averaged (or, mode max, the
    maximum of) bilinear samples ((O244), (O245)); float32 natively,
    `native_float.roi_align` ((O314)), this numpy form its reference."""
    if x.dtype not in (np.float32, np.float64):
        raise unsupported("RoiAlign", f"{x.dtype} input: ONNX Runtime runs it on float32 "
                          "and float64 only")
    mode = mode.lower()
    if mode not in ("avg", "max"):
        raise NodeError(f"mode {mode!r} is not avg or max")
    if sampling_ratio < 0:
        raise NodeError(f"sampling_ratio {sampling_ratio} is negative")
    # before opset 16 the attribute does not exist and rois are output_half_pixel's
    half_pixel = opset >= 16 and coordinate_transformation_mode == "half_pixel"
    if x.ndim != 4:
        raise NodeError(f"input of shape {list(x.shape)} is not 4-D")
    if rois.ndim != 2 or rois.shape[1] != 4 or batch_indices.ndim != 1 \
            or batch_indices.shape[0] != rois.shape[0]:
        raise NodeError(f"rois {list(rois.shape)} must be (num_rois, 4) and batch_indices "
                        f"{list(batch_indices.shape)} (num_rois,)")
    if rois.dtype != x.dtype:
        raise NodeError(f"rois are {rois.dtype}, the input {x.dtype}")
    bad = (batch_indices < 0) | (batch_indices >= x.shape[0])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NodeError(f"batch_indices value {int(batch_indices[i])} at index {i} is out of "
                        f"range [0, {x.shape[0]})")
    if not np.isfinite(rois).all():
        raise NodeError("rois hold NaN or infinity: no sample position (ONNX Runtime "
                        "reads outside the input)")
    n, channels, height, width = x.shape
    if x.dtype == np.float32 and rois.shape[0] and output_height > 0 and output_width > 0:
        native = native_float.roi_align(x, rois, batch_indices, output_height, output_width,
                                        sampling_ratio, spatial_scale, half_pixel,
                                        mode == "max")
        if native is not None:
            return native
    y = np.empty((rois.shape[0], channels, output_height, output_width), x.dtype)
    for r in range(rois.shape[0]):
        y[r] = _roi_values(x[int(batch_indices[r])], rois[r], spatial_scale, height, width,
                           output_height, output_width, sampling_ratio, half_pixel, mode)
    return y


# --- GridSample -------------------------------------------------------------------------

_GRID_MODES = {16: {"bilinear": "linear", "nearest": "nearest", "bicubic": "cubic"},
               20: {"linear": "linear", "nearest": "nearest", "cubic": "cubic"}}


def _denormalize(v: np.ndarray, length: int, align_corners: bool) -> np.ndarray:
    """Grid coordinates in [-1, 1] to input positions (grid_sample.cc GsDenormalize)."""
    t = v.dtype.type
    if align_corners:
        return (v + t(1)) / t(2) * t(length - 1)
    return ((v + t(1)) * t(length) - t(1)) / t(2)


def _to_index(v: np.ndarray) -> np.ndarray:
    """C's static_cast<int64_t> of float positions (x86: NaN and overflow give INT64_MIN)."""
    with np.errstate(invalid="ignore"):
        return v.astype(np.int64)


def _reflect(i: np.ndarray, low: Any, high: Any, size: int) -> np.ndarray:
    """Integer positions reflected at the borders until inside (GsReflect), truncated."""
    t = type(low)
    f = i.astype(t)
    span = t(high - low)
    below, above = f < low, f > high
    dx = np.where(below, low - f, np.where(above, f - high, t(0)))
    with np.errstate(all="ignore"):
        q = dx / span
        n = np.where(np.abs(q) < 2.0 ** 31, q, np.nan)
        n = np.where(np.isnan(n), -2 ** 31, n).astype(np.int64)
        r = dx - n.astype(t) * span
    even = n % 2 == 0
    f = np.where(below, np.where(even, low + r, high - r),
                 np.where(above, np.where(even, high - r, low + r), f))
    out = _to_index(f)
    if span == 0:                   # an axis of length 1 with align_corners: its one entry
        return np.zeros_like(out)
    if ((out < 0) | (out >= size)).any():
        raise NodeError("reflection padding maps a sample outside the input; ONNX "
                        "Runtime reads outside the input there")
    return out


def _gather(image: np.ndarray, index: list[np.ndarray], sizes: list[int], padding: str,
            borders: list[tuple[Any, Any]]) -> np.ndarray:
    """(C, points) input values at integer positions `index` (one array per axis, outer
    first) with the padding of grid_sample.cc PixelAtGrid: 0 outside, the nearest edge, or
    reflected."""
    inside = np.ones(index[0].shape, bool)
    flat = np.zeros(index[0].shape, np.int64)
    for i, size, (low, high) in zip(index, sizes, borders, strict=True):
        if padding == "zeros":
            inside &= (i >= 0) & (i < size)
            i = np.clip(i, 0, size - 1)
        elif padding == "border":
            i = np.clip(i, 0, size - 1)
        else:
            i = _reflect(i, low, high, size)
        flat = flat * size + i
    values = image[:, flat]
    return values if padding != "zeros" else np.where(inside, values, image.dtype.type(0))


def _cubic_coeffs(x: np.ndarray) -> list[np.ndarray]:
    """Keys' cubic convolution weights at alpha -0.75 (GsGetCubicCoeffs), as written."""
    t = x.dtype.type
    a = t(-0.75)
    x = np.abs(x)
    one, two = t(1), t(2)
    xp, xm, xt = x + one, one - x, two - x
    return [((a * xp - t(5) * a) * xp + t(8) * a) * xp - t(4) * a,
            ((a + two) * x - (a + t(3))) * x * x + one,
            ((a + two) * xm - (a + t(3))) * xm * xm + one,
            ((a * xt - t(5) * a) * xt + t(8) * a) * xt - t(4) * a]


def _grid_sample_image(image: np.ndarray, grid: np.ndarray, mode: str, padding: str,
                       align_corners: bool) -> np.ndarray:
    """One batch entry: image (C, *spatial), grid (points, rank) -> (C, points)."""
    t = image.dtype.type
    sizes = list(image.shape[1:])
    rank = len(sizes)
    flat = image.reshape(image.shape[0], -1)
    # the grid's last axis is x (innermost) first; positions here are outer axis first
    with np.errstate(all="ignore"):
        pos = [_denormalize(grid[:, rank - 1 - a], sizes[a], align_corners)
               for a in range(rank)]
    borders = [(t(0), t(s - 1)) if align_corners else (t(-0.5), t(s - 0.5)) for s in sizes]
    with np.errstate(invalid="ignore"):
        wild = [~(np.abs(p) < 2.0 ** 62) for p in pos]
    if any(w.any() for w in wild):
        raise NodeError("the grid holds NaN, infinity or a position past 2**62: ONNX "
                        "Runtime's conversion of it to an index is undefined")

    def at(index: list[np.ndarray]) -> np.ndarray:
        return _gather(flat, index, sizes, padding, borders)

    with np.errstate(all="ignore"):
        if mode == "nearest":
            return at([_to_index(np.rint(p)) for p in pos])
        if mode == "linear":
            low = [_to_index(np.floor(p)) for p in pos]
            d2 = [(lo + 1).astype(t) - p for lo, p in zip(low, pos, strict=True)]
            d1 = [p - lo.astype(t) for lo, p in zip(low, pos, strict=True)]
            if rank == 2 and padding == "zeros" and not align_corners:
                return _bilinear_zeros(flat, low, d1, d2, sizes)

            # of two NaNs a 2-D sum hands on the first's, a 3-D one the second's ((O354))
            add = first_nan_add if rank == 2 else _second_nan_add

            def lerp(axis: int, prefix: list[np.ndarray]) -> np.ndarray:
                # dy2 * (dx2 * p11 + dx1 * p12) + dy1 * (dx2 * p21 + dx1 * p22), nested
                if axis == rank:
                    return at(prefix)
                return add(d2[axis] * lerp(axis + 1, prefix + [low[axis]]),
                           d1[axis] * lerp(axis + 1, prefix + [low[axis] + 1]))
            return lerp(0, [])
        y0, x0 = (_to_index(np.floor(p)) - 1 for p in pos)
        dy, dx = (p - o.astype(t) - t(1) for p, o in zip(pos, (y0, x0), strict=True))
        cx, cy = _cubic_coeffs(dx), _cubic_coeffs(dy)
        row_firsts, column_firsts = _CUBIC_NAN_FIRSTS[image.dtype.type]
        rows = [_cubic_sum(cx, [at([y0 + h, x0 + w]) for w in range(4)], row_firsts[h])
                for h in range(4)]
        return _cubic_sum(cy, rows, column_firsts)


def _second_nan_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b handing on, of two NaNs, b's (quieted)."""
    return first_nan_add(b, a)


# Of two NaNs, whether each of a cubic sum's three additions ((c0 * p0 + c1 * p1) + c2 * p2)
# + c3 * p3 hands on its first operand's, as ONNX Runtime 1.32's compiled
# GsBicubicInterpolate does (probed over every pair of the 16 pixels, (O354)): per row of
# pixels, then the sum over the rows.
_CUBIC_NAN_FIRSTS = {
    np.float32: (((True, False, False), (True, False, False), (False, False, False),
                  (True, True, True)), (True, False, True)),
    np.float64: (((True, False, False), (True, False, False), (False, False, False),
                  (True, True, True)), (True, True, True)),
}


def _cubic_sum(c: list[np.ndarray], p: list[np.ndarray], firsts: tuple[bool, ...]
               ) -> np.ndarray:
    """((c0 * p0 + c1 * p1) + c2 * p2) + c3 * p3, each addition's NaN by `firsts`."""
    total = c[0] * p[0]
    for k in range(1, 4):
        total = (first_nan_add if firsts[k - 1] else _second_nan_add)(total, c[k] * p[k])
    return total


def _bilinear_zeros(flat: np.ndarray, low: list[np.ndarray], d1: list[np.ndarray],
                    d2: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """2-D bilinear with zeros padding, not align_corners: ONNX Runtime's sample plan
    (grid_sample.cc PrecomputeBilinearSamplePlan2D, EvaluatePlanForChannel): four weights
    w11 = dy2 * dx2 ..., summed w11 * p11 + w12 * p12 + w21 * p21 + w22 * p22, a point
    whose four neighbours are all outside is +0; of two NaNs each sum hands on the first's."""
    (y1, x1), (dy1, dx1), (dy2, dx2) = low, d1, d2
    t = flat.dtype.type
    zero = np.zeros(1, flat.dtype)
    h, w = sizes
    corners, inside_any = [], np.zeros(y1.shape, bool)
    for yi in (y1, y1 + 1):
        for xi in (x1, x1 + 1):
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            inside_any |= inside
            idx = np.clip(yi, 0, h - 1) * w + np.clip(xi, 0, w - 1)
            corners.append(np.where(inside, flat[:, idx], zero[0]))
    p11, p12, p21, p22 = corners
    with np.errstate(all="ignore"):
        terms = [(dy2 * dx2) * p11, (dy2 * dx1) * p12, (dy1 * dx2) * p21, (dy1 * dx1) * p22]
    y = first_nan_add(first_nan_add(first_nan_add(terms[0], terms[1]), terms[2]), terms[3])
    return np.where(inside_any, y, t(0))


@register
def GridSample(x: np.ndarray, grid: np.ndarray, *, align_corners: int = 0,
               mode: str | None = None, padding_mode: str = "zeros", opset: int = 16,
               **_: Any) -> np.ndarray:
    """(N, C, *grid spatial): the input sampled at the grid's normalized positions
    ((O246), (O247)); 2-D float32 linear and nearest with zeros or border padding natively,
    `native_float.grid_sample` ((O314)), this numpy form its reference."""
    if x.dtype not in (np.float32, np.float64):
        raise unsupported("GridSample", f"{x.dtype} input: ONNX Runtime runs it on float32 "
                          "and float64 only")
    if opset < 20 and x.dtype != np.float32:
        raise unsupported("GridSample", f"{x.dtype} input before opset 20: ONNX Runtime "
                          "runs GridSample-16 on float32 only")
    modes = _GRID_MODES[16 if opset < 20 else 20]
    name = mode if mode is not None else ("bilinear" if opset < 20 else "linear")
    if name not in modes:
        raise NodeError(f"mode {name!r} is not one of {sorted(modes)} at opset {opset}")
    kind = modes[name]
    if padding_mode not in ("zeros", "border", "reflection"):
        raise NodeError(f"padding_mode {padding_mode!r} is not zeros, border or reflection")
    if x.ndim not in (4, 5) or grid.ndim != x.ndim or grid.shape[-1] != x.ndim - 2 \
            or grid.shape[0] != x.shape[0]:
        raise NodeError(f"input {list(x.shape)} must be 4-D or 5-D and the grid "
                        f"{list(grid.shape)} (N, *out, {x.ndim - 2}) with the same N")
    if x.ndim == 5 and kind == "cubic":
        raise NodeError("cubic mode samples 4-D inputs only")
    if grid.dtype != x.dtype:
        raise NodeError(f"the grid is {grid.dtype}, the input {x.dtype}")
    n, c = x.shape[:2]
    out_sp = grid.shape[1:-1]
    if n * c * int(np.prod(out_sp)) and kind != "cubic" and padding_mode != "reflection":
        native = native_float.grid_sample(x, grid, kind == "nearest",
                                          padding_mode == "border", bool(align_corners))
        if native is not None:
            return native
    y = np.zeros((n, c, *out_sp), x.dtype)
    if y.size == 0:
        return y
    for b in range(n):
        y[b] = _grid_sample_image(x[b], grid[b].reshape(-1, x.ndim - 2), kind, padding_mode,
                                  bool(align_corners)).reshape(c, *out_sp)
    return y


# --- MaxUnpool, CenterCropPad -----------------------------------------------------------


@register
def MaxUnpool(x: np.ndarray, indices: np.ndarray, output_shape: np.ndarray | None = None, *,
              kernel_shape: list[int], pads: list[int] | None = None,
              strides: list[int] | None = None, **_: Any) -> np.ndarray:
    """Zeros with each x value put at its flat index into the whole output, in x's order
    (a later value at a repeated index wins) ((O248); ONNX Runtime's Unpool.cc)."""
    if x.dtype != np.float32:
        raise unsupported("MaxUnpool", f"{x.dtype} input: ONNX Runtime runs it on float32 "
                          "only")
    nd = x.ndim - 2
    if nd < 1 or nd > 3 or len(kernel_shape) != nd:
        raise NodeError(f"input {list(x.shape)} and kernel_shape {list(kernel_shape)} do "
                        "not give 1 to 3 pooled axes")
    if indices.shape != x.shape:
        raise NodeError(f"indices {list(indices.shape)} are not the input's shape "
                        f"{list(x.shape)}")
    s = list(strides) if strides else [1] * nd
    p = list(pads) if pads else [0] * (2 * nd)
    if len(s) != nd or len(p) != 2 * nd or min(kernel_shape) <= 0 or min(p) < 0 \
            or any(p[a] >= kernel_shape[a] or p[nd + a] >= kernel_shape[a] for a in range(nd)):
        raise NodeError(f"kernel_shape {list(kernel_shape)}, strides {s} and pads {p} do not "
                        "fit: positive kernel lengths, each pad below its kernel length")
    shape = list(x.shape[:2])
    for a in range(nd):
        size = (x.shape[a + 2] - 1) * s[a] - (p[a] + p[nd + a]) + kernel_shape[a]
        if size <= 0:
            raise NodeError(f"the output length of axis {a + 2} is {size}")
        shape.append(size)
    if output_shape is not None:
        given = [int(v) for v in output_shape.reshape(-1)]
        if output_shape.ndim != 1 or len(given) != x.ndim or given[:2] != shape[:2] \
                or int(np.prod(given)) < int(np.prod(shape)):
            raise NodeError(f"output_shape {given} is not a shape of rank {x.ndim}, the "
                            f"input's batch and channels, with at least the "
                            f"{int(np.prod(shape))} elements of {shape}")
        shape = given
    y = np.zeros(int(np.prod(shape)), np.float32)
    flat = indices.reshape(-1)
    bad = (flat < 0) | (flat >= y.size)
    if bad.any():
        raise NodeError(f"index {int(flat[np.flatnonzero(bad)[0]])} is outside the output's "
                        f"{y.size} elements")
    y[flat] = x.reshape(-1)
    return y.reshape(shape)


@register
def CenterCropPad(x: np.ndarray, shape: np.ndarray, *, axes: list[int] | None = None,
                  **_: Any) -> np.ndarray:
    """Each axis cropped to, or zero-padded to, its length in `shape`, centred: an odd
    difference leaves the extra element at the end ((O249))."""
    rank = x.ndim
    picked = list(range(rank)) if not axes else [a + rank if a < 0 else a for a in axes]
    lengths = [int(v) for v in shape.reshape(-1)]
    if len(lengths) != len(picked) or any(not 0 <= a < rank for a in picked) \
            or len(set(picked)) != len(picked) or any(v < 0 for v in lengths):
        raise NodeError(f"shape {lengths} does not fit axes {picked} of a rank-{rank} input")
    crop = [slice(None)] * rank
    widths = [(0, 0)] * rank
    for a, want in zip(picked, lengths, strict=True):
        have = x.shape[a]
        if want < have:
            start = (have - want) // 2
            crop[a] = slice(start, start + want)
        elif want > have:
            before = (want - have) // 2
            widths[a] = (before, want - have - before)
    return np.pad(x[tuple(crop)], widths)


# --- AffineGrid -------------------------------------------------------------------------


def _base_coords(n: int, align_corners: bool, t: Any) -> np.ndarray:
    """Positions (of type t) of n samples over [-1, 1] (ONNX Runtime's
    generate_base_grid_*: Eigen's LinSpaced, -1 + i * (2 / (n - 1)) and the last exactly
    1, one sample at 1; without align_corners scaled by (n - 1) / n, multiplied and then
    divided)."""
    if n == 1:
        v: np.ndarray = np.ones(1, t)
    else:
        step = t(2) / t(n - 1)
        v = t(-1) + np.arange(n, dtype=t) * step
        v[-1] = 1
    if not align_corners:
        v = v * t(n - 1) / t(n)
    return v


@register
def AffineGrid(theta: np.ndarray, size: np.ndarray, *, align_corners: int = 0,
               **_: Any) -> np.ndarray:
    """(N, H, W, 2) or (N, D, H, W, 3): theta's affine map of the base grid, each output
    coordinate theta[r, 0] * x + theta[r, 1] * y (+ theta[r, 2] * z, in Eigen's order),
    then + the translation ((O248))."""
    if theta.dtype not in (np.float32, np.float64):
        raise unsupported("AffineGrid", f"{theta.dtype} theta: ONNX Runtime runs it on "
                          "float32 and float64 only")
    dims = [int(v) for v in size.reshape(-1)]
    if size.ndim != 1 or len(dims) not in (4, 5) or min(dims) < 0:
        raise NodeError(f"size {dims} is not (N, C, H, W) or (N, C, D, H, W)")
    rank = len(dims) - 2
    if theta.shape != (dims[0], rank, rank + 1):
        raise NodeError(f"theta {list(theta.shape)} is not ({dims[0]}, {rank}, {rank + 1}) "
                        f"for size {dims}")
    t = theta.dtype.type
    spatial = dims[2:]
    # base coordinates, x (innermost axis) first
    base = [_base_coords(n, bool(align_corners), t) for n in reversed(spatial)]
    mesh = np.meshgrid(*reversed(base), indexing="ij")[::-1]   # x, y(, z), output-shaped
    out = np.empty((dims[0], *spatial, rank), t)
    for r in range(rank):
        for b in range(dims[0]):
            terms = [theta[b, r, k] * mesh[k] for k in range(rank)]
            # Eigen's unrolled dot product: p0 + p1; of three, float32 halves the terms,
            # p0 + (p1 + p2), float64 adds a two-lane packet first, (p0 + p1) + p2
            acc = terms[0] + terms[1]
            if rank == 3:
                acc = acc + terms[2] if t is np.float64 else terms[0] + (terms[1] + terms[2])
            out[b, ..., r] = acc + theta[b, r, rank]
    return out


# --- Col2Im -----------------------------------------------------------------------------


def _col2im_rows(col: np.ndarray, rows: int, image: list[int], blocks: list[int],
                 kernel: list[int], strides: list[int], dilations: list[int], pads: list[int],
                 channels: int) -> np.ndarray:
    """One image's flat columns added into a zeroed flat image, row by row in order (each
    row's positions are distinct, so a row adds at once): row r, the prod(blocks) values
    from r * prod(blocks), is kernel offset r mod prod(kernel) of channel
    r // prod(kernel); its block at position d of axis i lands at d * stride - pad +
    offset * dilation, outside the image dropped."""
    nd = len(image)
    size = int(np.prod(kernel))
    out = np.zeros(channels * int(np.prod(image)), col.dtype)
    grids = np.meshgrid(*[np.arange(b) for b in blocks], indexing="ij")
    count = int(np.prod(blocks))
    for r in range(rows):
        offsets = np.unravel_index(r % size, kernel)
        inside = np.ones(grids[0].shape, bool) if nd else np.ones((), bool)
        index = np.full(grids[0].shape, r // size, np.int64)
        for a in range(nd):
            at = grids[a] * strides[a] - pads[a] + int(offsets[a]) * dilations[a]
            inside &= (at >= 0) & (at < image[a])
            index = index * image[a] + at
        taken = index[inside]
        row = col[r * count:(r + 1) * count].reshape(blocks)
        out[taken] = out[taken] + row[inside]
    return out


@register
def Col2Im(col: np.ndarray, image_shape: np.ndarray, block_shape: np.ndarray, *,
           dilations: list[int] | None = None, pads: list[int] | None = None,
           strides: list[int] | None = None, **_: Any) -> np.ndarray:
    """(N, C, *image_shape): each column added back where im2col took it from, in row
    order ((O249); ONNX Runtime's math::Col2im for 2-D images, math::Col2imNd for the
    others, which it calls with the dilated block as the kernel: its results, which
    differ from the operator's definition where a dilation is above 1)."""
    if col.dtype != np.float32:
        raise unsupported("Col2Im", f"{col.dtype} input: ONNX Runtime runs it on float32 "
                          "only")
    image = [int(v) for v in image_shape.reshape(-1)]
    kernel = [int(v) for v in block_shape.reshape(-1)]
    nd = len(image)
    d = list(dilations) if dilations else [1] * nd
    p = list(pads) if pads else [0] * (2 * nd)
    s = list(strides) if strides else [1] * nd
    if nd == 0 or len(kernel) != nd or len(d) != nd or len(p) != 2 * nd or len(s) != nd \
            or min(kernel) <= 0 or min(s) <= 0 or min(d) <= 0 or min(image) < 0:
        raise NodeError(f"image_shape {image}, block_shape {kernel}, dilations {d}, pads {p} "
                        f"and strides {s} do not fit together")
    if col.ndim != 3 or col.shape[1] % int(np.prod(kernel)):
        raise NodeError(f"input {list(col.shape)} is not (N, C * {int(np.prod(kernel))}, L)")
    extent = [d[a] * (kernel[a] - 1) + 1 for a in range(nd)]
    blocks = [int((image[a] + p[a] + p[nd + a] - extent[a]) / s[a]) + 1 for a in range(nd)]
    # math::Col2imNd, called for the other ranks, is handed the dilated block as its
    # kernel (and the dilations besides)
    kern = kernel if nd == 2 else extent
    if min(blocks) <= 0 or int(np.prod(blocks)) != col.shape[2]:
        raise NodeError(f"{col.shape[2]} blocks per column, where image_shape {image}, "
                        f"block_shape {kernel} and the attributes give {blocks}")
    channels = col.shape[1] // int(np.prod(kernel))
    y = np.empty((col.shape[0], channels, *image), np.float32)
    for n in range(col.shape[0]):
        y[n] = _col2im_rows(col[n].reshape(-1), col.shape[1], image, blocks, kern, s, d, p,
                            channels).reshape(y.shape[1:])
    return y
