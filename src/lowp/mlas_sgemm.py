"""ONNX Runtime's float32 matrix product (MLAS SGEMM on x86-64), reproduced bit for bit.

A float MatMul left between dequantized tensors (an attention's Q·Kᵀ and P·V, a layer kept
float) is rounded in whatever order the engine sums. ONNX Runtime's CPU MatMul, Gemm and
FusedMatMul call MLAS, whose order is fixed by the kernel family and the matrix shapes; a
quantizer after the product rounds two orders differently near a half-way point, so lowp
sums in MLAS's order wherever it evaluates a float32 MatMul (docs/operators.md, (O21)).

Per output element C[m, n] (alpha is FusedMatMul's scale, 1 for MatMul):

* general kernel: K is cut into blocks of `stride_k` (128, widened or narrowed with N: see
  `_stride_k`; 256 when B is a prepacked constant); within a block the products are summed
  by a chain of fused multiply-adds from zero in k order; the first block gives
  C = acc * alpha, every later one C = fma(acc, alpha, C);
* M = 1 (alpha 1, B not prepacked): products rounded, summed in groups of four k, each group
  added to C (AVX kernel, no FMA);
* N = 1 (alpha 1, B not prepacked): eight lanes of rounded products per row, folded in an
  order that depends on the row's position in groups of four, two and one rows;
* Gemm's beta other than 0 and 1: C is first multiplied by beta (rounded), and neither the
  M = 1 nor the N = 1 kernel runs: the general kernel accumulates into C from the first K
  block (docs/operators.md, (O145)).

With several threads MLAS cuts M or N between them first, and the cut changes N (hence the
K blocking) or M (hence the M = 1 path) seen by each part: `threads` models that.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .fixedpoint import fma32
from .ort_math import sse_op

_F = np.float32
_STRIDE_N = 128
_STRIDE_K = 128
_PACKED_STRIDE_K = 256
_THREAD_ALIGN_N = 16
_THREAD_COMPLEXITY = 64 * 1024


def _stride_k(n: int, k: int, trans_a: bool) -> int:
    """MlasSgemmOperation's K block: halved while it still covers K (N >= K), or doubled
    while the N panel can shrink (N < K, A not transposed); the panel stays 128 x 128."""
    stride_n, stride_k = _STRIDE_N, _STRIDE_K
    if n >= k:
        while stride_k // 2 >= k:
            stride_n, stride_k = stride_n * 2, stride_k // 2
    elif not trans_a:
        while stride_n > 16 and stride_n // 2 >= n:
            stride_n, stride_k = stride_n // 2, stride_k * 2
    return stride_k


def _blocked(a: np.ndarray, b: np.ndarray, alpha: np.float32, stride_k: int,
             c: np.ndarray | None = None) -> np.ndarray:
    """The general kernel on a[m, k] @ b[k, n] (also batched on leading axes); with `c`
    (beta = 1) every block accumulates into it."""
    k = a.shape[-1]
    alpha = _F(alpha)
    for k0 in range(0, k, stride_k):
        acc = np.zeros(a.shape[:-1] + b.shape[-1:], _F)
        for kk in range(k0, min(k, k0 + stride_k)):
            acc = fma32(a[..., :, kk:kk + 1], b[..., kk:kk + 1, :], acc)
        c = (acc * alpha).astype(_F) if c is None else fma32(acc, alpha, c)
    assert c is not None
    return c


Arithmetic = tuple[Callable[[np.ndarray, np.ndarray], np.ndarray],
                   Callable[[np.ndarray, np.ndarray], np.ndarray]]


def _plain_add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x + y).astype(_F)


def _plain_mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x * y).astype(_F)


def _first_nan_add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return sse_op(np.add, x, y).astype(_F)


def _first_nan_mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return sse_op(np.multiply, x, y).astype(_F)


# (add, multiply): numpy's, or with x86's NaN of each operation in the kernels' operand
# order (docs/operators.md (O223)), run where the first gave a NaN
_PLAIN: Arithmetic = (_plain_add, _plain_mul)
_FIRST_NAN: Arithmetic = (_first_nan_add, _first_nan_mul)


def _with_kernel_nans(kernel: Callable[[Arithmetic], np.ndarray]) -> np.ndarray:
    """`kernel` with numpy's arithmetic, or (a NaN came out) with the assembly's NaNs."""
    with np.errstate(invalid="ignore", over="ignore"):
        out = kernel(_PLAIN)
        return kernel(_FIRST_NAN) if np.isnan(out).any() else out


def _m1(a: np.ndarray, b: np.ndarray, c0: np.ndarray | None = None) -> np.ndarray:
    """MlasSgemmKernelM1Avx: a[1, k] @ b[k, n]; rounded products a * b, groups of 4, 2, 1 k
    (t + p), each group's t added to c as t + c (zeros, or `c0` [..., 1, n] with beta = 1);
    of two NaNs the first operand's."""
    k = a.shape[-1]

    def kernel(ops: Arithmetic) -> np.ndarray:
        add, mul = ops
        p = mul(a[..., 0, :, None], b)                   # [..., k, n] rounded products
        c = np.zeros(p.shape[:-2] + p.shape[-1:], _F) if c0 is None else \
            np.array(c0[..., 0, :], _F)
        k0 = 0
        for size in [4] * (k // 4) + ([2] if k % 4 >= 2 else []) + ([1] if k % 2 else []):
            t = p[..., k0, :]
            for j in range(1, size):
                t = add(t, p[..., k0 + j, :])
            c = add(t, c)
            k0 += size
        return c[..., None, :]

    return _with_kernel_nans(kernel)


def _m1_transposed(x: np.ndarray, rows: np.ndarray, c0: np.ndarray | None = None
                   ) -> np.ndarray:
    """MlasSgemmKernelM1TransposeBAvx: out[r] = x · rows[r] for a vector x[k] and rows[r, k].
    Eight lane accumulators (lane j takes k = j mod 8; acc + x * row), then a fold that
    depends on whether the row was computed in a group of four, two or one rows (the pair's
    unpckhps lanes 2, 3, 6, 7 first); then + c0[r] (beta = 1) or + 0; of two NaNs the first
    operand's."""
    k = x.shape[-1]
    r = rows.shape[-2]
    pad = (-k) % 8
    group = np.full(r, 4)
    tail = r % 4
    if tail >= 2:
        group[r - tail:r - tail + 2] = 2
    if tail % 2:
        group[r - 1] = 1

    def kernel(ops: Arithmetic) -> np.ndarray:
        add, mul = ops
        p = mul(x[..., None, :], rows)
        if pad:
            p = np.concatenate([p, np.zeros(p.shape[:-1] + (pad,), _F)], axis=-1)
        lanes = np.zeros(p.shape[:-1] + (8,), _F)
        for k0 in range(0, p.shape[-1], 8):
            lanes = add(lanes, p[..., k0:k0 + 8])
        v = [lanes[..., j] for j in range(8)]
        four = add(add(add(add(v[0], v[1]), v[2]), v[3]),
                   add(add(add(v[4], v[5]), v[6]), v[7]))
        two = add(add(add(v[2], v[0]), add(v[6], v[4])), add(add(v[3], v[1]), add(v[7], v[5])))
        one = add(add(add(v[0], v[1]), add(v[2], v[3])), add(add(v[4], v[5]), add(v[6], v[7])))
        out = np.where(group == 4, four, np.where(group == 2, two, one)).astype(_F)
        return add(out, np.broadcast_to(_F(0) if c0 is None else np.asarray(c0, _F),
                                        out.shape))

    return _with_kernel_nans(kernel)


def _operation(a: np.ndarray, b: np.ndarray, alpha: float, trans_a: bool, trans_b: bool,
               packed: bool, c: np.ndarray | None = None, column_kernel: bool = True,
               beta: float = 1.0) -> np.ndarray:
    """MlasSgemmOperation / MlasSgemmPackedOperation on one part: a is [m, k] (already
    untransposed), b is [k, n]; the flags pick the path as MLAS does; `c` [m, n] is
    multiplied by `beta` (unless 1) and accumulated into, else the product is written
    (beta = 0). `column_kernel`: B's and C's leading dimensions are 1 (MLAS's N = 1 kernel
    reads B and C as contiguous columns only: a part of a wider product, or a batch-moved B,
    is not)."""
    m, k = a.shape[-2:]
    n = b.shape[-1]
    small = c is None or beta == 1.0                 # MLAS's M = 1 and N = 1 kernels
    if c is not None and beta != 1.0:
        c = (np.asarray(c, _F) * _F(beta)).astype(_F)   # MlasSgemmMultiplyBeta
    if k == 0:
        return np.zeros(a.shape[:-1] + (n,), _F) if c is None else np.array(c, _F)
    if packed:
        return _blocked(a, b, _F(alpha), _PACKED_STRIDE_K, c)
    if m == 1 and not trans_a and alpha == 1.0 and small:
        if trans_b:
            c0 = None if c is None else c[..., 0, :]
            return _m1_transposed(a[..., 0, :], np.swapaxes(b, -1, -2), c0)[..., None, :]
        return _m1(a, b, c)
    if n == 1 and alpha == 1.0 and column_kernel and small:
        if not trans_a:
            c0 = None if c is None else c[..., :, 0]
            return _m1_transposed(b[..., :, 0], a, c0)[..., :, None]
        c1 = None if c is None else np.swapaxes(c, -1, -2)
        return _m1(np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2), c1).swapaxes(-1, -2)
    return _blocked(a, b, _F(alpha), _stride_k(n, k, trans_a), c)


def _partition(index: int, count: int, total: int) -> tuple[int, int]:
    """MlasPartitionWork: the first total % count parts get one more."""
    per, extra = divmod(total, count)
    if index < extra:
        return index * (per + 1), per + 1
    return index * per + extra, per


def thread_parts(m: int, n: int, k: int, threads: int, batch: int = 1
                 ) -> list[tuple[slice, slice]]:
    """MlasGemmBatch's cut of one (m x k) by (k x n) product of a batch of `batch` between
    `threads` intra-op threads: (rows, columns) of each part. The target thread count
    grows by one per 64 Ki multiply-adds of the product, is shared by the batch's
    products, and cuts N in blocks of 16 columns when N > M, else M, each by
    MlasPartitionWork (the first parts one block longer)."""
    target = min(int(m * n * k / _THREAD_COMPLEXITY) + 1, max(1, threads))
    per_gemm = -(-target // max(1, batch))
    cuts: list[tuple[slice, slice]] = []
    if n > m:
        blocks = -(-n // _THREAD_ALIGN_N)
        parts = min(per_gemm, blocks)
        for t in range(parts):
            start, count = _partition(t, parts, blocks)
            lo, hi = start * _THREAD_ALIGN_N, min(n, (start + count) * _THREAD_ALIGN_N)
            if lo < hi:
                cuts.append((slice(0, m), slice(lo, hi)))
    else:
        parts = min(per_gemm, m)
        for t in range(parts):
            start, count = _partition(t, parts, m)
            if count:
                cuts.append((slice(start, start + count), slice(0, n)))
    return cuts


def conv_parts(filters: int, size: int, k: int, threads: int, batch_groups: int,
               direct: bool) -> list[tuple[slice, slice]]:
    """How MlasConv cuts one image's and group's product of the filters (filters x k) by
    the im2col columns (k x size) between `threads` intra-op threads, `batch_groups`
    images times groups in all: (rows, columns) of each part, each its own MLAS operation.
    A pointwise Conv (`direct`: 1 x ... x 1 kernel, strides 1, no pads) is MlasGemm of the
    input itself, cut as `thread_parts` when it is the only product, else one operation per
    product; more filters than output positions expand the whole columns and call MlasGemm
    (`thread_parts`, every product); otherwise, for a single product, the output positions
    are cut in segments of ceil(size / T) rounded up to 16 columns (T as `thread_parts`
    counts it), and each segment chooses its own K block from its width; with several
    products, each one is a single operation."""
    whole = [(slice(0, filters), slice(0, size))]
    if direct:
        return thread_parts(filters, size, k, threads) if batch_groups == 1 else whole
    if filters > size:
        return thread_parts(filters, size, k, threads)
    target = min(int(filters * size * k / _THREAD_COMPLEXITY) + 1, max(1, threads))
    if batch_groups > 1 or target == 1:
        return whole
    stride = -(-size // target)
    stride = -(-stride // _THREAD_ALIGN_N) * _THREAD_ALIGN_N
    if stride >= size:
        return whole
    return [(slice(0, filters), slice(lo, min(size, lo + stride)))
            for lo in range(0, size, stride)]


def conv_whole_axis(spatial: tuple[int, ...], kernel: list[int], strides: list[int],
                    dilations: list[int], pads: list[int], channels: int) -> str | None:
    """MlasConvPrepare's GemmDirect for a kernel over a whole axis of a 1-D or 2-D input
    (1-D promoted to one row) with one input channel per group, unit strides and dilations
    and no padding, the kernel more than one tap: "rows" when it spans the whole width
    (MlasGemm with B transposed, read in place: B's row r is the input from r * width on,
    K long, one row per output position), "columns" when it spans the whole height and is
    one wide (B is the input itself, K rows of the width); None for every other
    convolution (the pointwise one included: GemmDirect too, `conv_parts`' `direct`)."""
    if len(spatial) not in (1, 2) or channels != 1 or any(v != 1 for v in strides + dilations) \
            or any(pads) or int(np.prod(kernel)) == 1:
        return None
    (h, w), (kh, kw) = ((1, *spatial), (1, *kernel)) if len(spatial) == 1 else (spatial, kernel)
    if kw == w:
        return "rows"
    return "columns" if kh == h and kw == 1 else None


def gemm(a: np.ndarray, b: np.ndarray, alpha: float = 1.0, trans_a: bool = False,
         trans_b: bool = False, packed: bool = False, threads: int = 1,
         batch: int = 1, c: np.ndarray | None = None, ldb: int | None = None,
         parts: list[tuple[slice, slice]] | None = None, beta: float = 1.0) -> np.ndarray:
    """MlasGemmBatch for one matrix of a batch of `batch`: a is [m, k] ([k, m] with
    trans_a), b is [k, n] ([n, k] with trans_b); float32 out [m, n], accumulated into `c`
    (ONNX Runtime's recurrent step), multiplied by `beta` first (Gemm's), when given.
    `ldb`: B's leading dimension as MLAS is handed it (n, or k with trans_b, unless B is
    read in place inside a larger array: FusedMatMul's transBatchB). `parts`: the (rows,
    columns) MLAS operations the product is cut into (default `thread_parts`; `conv_parts`
    for MlasConv's)."""
    a = np.asarray(a, _F)
    b = np.asarray(b, _F)
    am = np.swapaxes(a, -1, -2) if trans_a else a
    bm = np.swapaxes(b, -1, -2) if trans_b else b
    m, k = am.shape
    n = bm.shape[1]
    lead_b = (k if trans_b else n) if ldb is None else ldb
    column_kernel = n == 1 and lead_b == 1        # B and C single contiguous columns
    out = np.empty((m, n), _F)
    for rows, cols in thread_parts(m, n, k, threads, batch) if parts is None else parts:
        out[rows, cols] = _operation(am[rows], bm[:, cols], alpha, trans_a, trans_b, packed,
                                     None if c is None else c[rows, cols], column_kernel,
                                     beta)
    return out


# one 2-D product of logical operands am (m x k) and bm (k x n) into out (m x n), with
# MLAS's flags (trans_a, trans_b, packed), the batch count (MLAS splits threads by it) and
# B's leading dimension as MLAS is handed it (its N = 1 kernel needs 1)
Product = Callable[[np.ndarray, np.ndarray, np.ndarray, bool, bool, bool, int, int], None]


def folds_batch_into_m(a_shape: tuple[int, ...], b_shape: tuple[int, ...], trans_a: bool,
                       trans_batch: bool) -> bool:
    """MatMulComputeHelper's flattening: A's batch axes become rows of one product when A
    is not transposed, no batch axis is moved, both have rank >= 2, A's rank is at least B's
    and B's batch axes are all 1 (B 2-D, or [1, ..., 1, K, N])."""
    return (not trans_a and not trans_batch and len(a_shape) >= 2 and
            2 <= len(b_shape) <= len(a_shape) and int(np.prod(b_shape[:-2])) == 1)


def batched(a: np.ndarray, b: np.ndarray, product: Product,
            alloc: Callable[[tuple[int, ...]], np.ndarray], *, trans_a: bool = False,
            trans_b: bool = False, b_packed: bool = False, trans_batch: bool = False,
            ldb_factor: int = 1, alpha: float = 1.0) -> np.ndarray:
    """ONNX Runtime's MatMul / FusedMatMul batching (its MatMulComputeHelper) over numpy
    broadcasting of the batch axes: a 1-D operand is a row (A) or a column (B) and keeps no
    transpose; `folds_batch_into_m` makes one product of A's rows; a 1-D B against a matrix
    is one 1 x K product per row of A (ONNX Runtime pads B to [K, 1] and A to [..., M, 1,
    K]); otherwise one product per batch entry, B prepacked only when it is 2-D.
    `trans_batch`: FusedMatMul moved a batch axis (no flattening); `ldb_factor`: B's
    leading dimension is its row length times this (transBatchB reads B in place);
    `alpha` (the products') picks the kernel of a 1-D B's rows. `alloc(shape)` gives the
    float32 output."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    ta, tb = trans_a and a.ndim > 1, trans_b and b.ndim > 1
    am = np.swapaxes(a2, -1, -2) if ta else a2
    bm = np.swapaxes(b2, -1, -2) if tb else b2
    ldb = (bm.shape[-2] if tb else bm.shape[-1]) * ldb_factor
    if b.ndim == 1 and a.ndim >= 2 and not ta:
        rows = am.reshape(-1, am.shape[-1])
        y = alloc(am.shape[:-1] + (1,))
        out = y.reshape(-1, 1)
        if alpha == 1.0:
            # each row's M = 1 kernel, as one M = 1 call of B's row by the rows as columns
            # (the same products, summed in the same groups of k, columns independent)
            product(b2.T, rows.T, out.T, False, False, False, 1, rows.shape[0])
        else:
            # each row's general kernel (K block of one column), rows independent
            product(rows, b2, out, False, False, False, 1, 1)
    elif b2.ndim == 2 and not ta or folds_batch_into_m(a.shape, b.shape, ta, trans_batch):
        b_mat = bm.reshape(bm.shape[-2:])
        y = alloc(am.shape[:-1] + (bm.shape[-1],))
        product(am.reshape(-1, am.shape[-1]), b_mat, y.reshape(-1, bm.shape[-1]), False, tb,
                b_packed and b2.ndim == 2, 1, ldb)
    else:
        lead = np.broadcast_shapes(am.shape[:-2], bm.shape[:-2])
        y = alloc(lead + (am.shape[-2], bm.shape[-1]))
        aa = np.broadcast_to(am, lead + am.shape[-2:])
        bb = np.broadcast_to(bm, lead + bm.shape[-2:])
        count = int(np.prod(lead))
        for idx in np.ndindex(*lead):
            product(aa[idx], bb[idx], y[idx], ta, tb, b_packed and b2.ndim == 2, count, ldb)
    if a.ndim == 1:
        y = y[..., 0, :]
    if b.ndim == 1:
        y = y[..., 0]
    return y


def matmul(a: np.ndarray, b: np.ndarray, alpha: float = 1.0, trans_a: bool = False,
           trans_b: bool = False, b_packed: bool = False, threads: int = 1,
           trans_batch: bool = False, ldb_factor: int = 1) -> np.ndarray:
    """ONNX Runtime's MatMul / FusedMatMul on float32 (`batched`); `b_packed` is true when B
    is a constant ONNX Runtime prepacks (2-D initializer); `threads`: ONNX Runtime's
    intra-op threads, between which MLAS cuts each product (`thread_parts`)."""

    def product(am: np.ndarray, bm: np.ndarray, out: np.ndarray, ta: bool, tb: bool,
                packed: bool, count: int, ldb: int) -> None:
        out[...] = gemm(am.T if ta else am, bm.T if tb else bm, alpha, ta, tb, packed,
                        threads, count, ldb=ldb)

    return batched(np.asarray(a, _F), np.asarray(b, _F), product,
                   lambda shape: np.empty(shape, _F), trans_a=trans_a, trans_b=trans_b,
                   b_packed=b_packed, trans_batch=trans_batch, ldb_factor=ldb_factor,
                   alpha=alpha)
