"""Backend "dnnlowp-acc16": runs a QDQ model's conv/FC groups with DNNLOWP_ACC16 accumulation.

Registered with lowp.runtime.backends so that ``Session(model, backend="dnnlowp-acc16")``
works once lowp.engines is imported. Operators that acc16 cannot take (16-bit or signed
activations) fall back to the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..fixedpoint import Requant
from ..ops.layout import Layout, channel_axis, to_channels_first
from ..runtime.backends import ConvFn, MatMulFn, ReferenceBackend, register_backend
from .ops import acc16_accumulate, conv_patches
from .pack import Acc16Weights, Impl, weight_matrices
from .types import DEFAULT_BLOCK_PAIRS

BACKEND_NAME = "dnnlowp-acc16"
DEFAULT_NBITS_IN_NON_OUTLIER = 7     # pairs of u8 x s7 products never saturate (S1)


class Acc16Backend(ReferenceBackend):
    """Conv and MatMul/Gemm through (S1)-(S6), requantized by the lowering's Requant."""

    name = BACKEND_NAME
    conv_layouts: tuple[Layout, ...] = (Layout.CHANNELS_LAST, Layout.CHANNELS_FIRST)

    def __init__(self, threads: int = 0, *,
                 nbits_in_non_outlier: int = DEFAULT_NBITS_IN_NON_OUTLIER,
                 block_pairs: int = DEFAULT_BLOCK_PAIRS, impl: Impl = "auto") -> None:
        super().__init__(threads)
        self.nbits_in_non_outlier = nbits_in_non_outlier
        self.block_pairs = block_pairs
        self.impl = impl

    def _takes(self, x_dtype: np.dtype, w: np.ndarray) -> bool:
        return np.dtype(x_dtype) == np.uint8 and w.dtype == np.int8

    def conv(self, w: np.ndarray, bias: np.ndarray | None, *, x_zero_point: int,
             x_dtype: np.dtype, w_zero_point: int | np.ndarray, requant: Requant,
             strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
             group: int) -> ConvFn:
        if not self._takes(x_dtype, w):
            return super().conv(w, bias, x_zero_point=x_zero_point, x_dtype=x_dtype,
                                w_zero_point=w_zero_point, requant=requant, strides=strides,
                                pads=pads, dilations=dilations, group=group)
        weights = Acc16Weights.build(weight_matrices(w, group), np.asarray(w_zero_point),
                                     self.nbits_in_non_outlier, self.block_pairs, self.impl)
        kernel = w.shape[2:]
        m = w.shape[0]

        def run(x: np.ndarray, layout: Layout) -> np.ndarray:
            xc = to_channels_first(x, layout)
            cols, out_shape = conv_patches(xc, x_zero_point, kernel, strides, pads, dilations,
                                           group)
            acc = acc16_accumulate(cols, weights, x_zero_point, bias, self.impl)
            acc = acc.reshape((xc.shape[0], *out_shape, m))
            if layout is Layout.CHANNELS_FIRST:
                acc = np.ascontiguousarray(np.moveaxis(acc, -1, 1))
            return requant.apply(acc, channel_axis=channel_axis(layout, acc.ndim))
        return run

    def matmul(self, b: np.ndarray, bias: np.ndarray | None, *, a_zero_point: int,
               a_dtype: np.dtype, b_zero_point: int | np.ndarray, requant: Requant
               ) -> MatMulFn:
        if not self._takes(a_dtype, b):
            return super().matmul(b, bias, a_zero_point=a_zero_point, a_dtype=a_dtype,
                                  b_zero_point=b_zero_point, requant=requant)
        weights = Acc16Weights.build(np.ascontiguousarray(b)[None], np.asarray(b_zero_point),
                                     self.nbits_in_non_outlier, self.block_pairs, self.impl)

        def run(a: np.ndarray) -> np.ndarray:
            lead = a.shape[:-1]
            a2 = np.ascontiguousarray(a).reshape(-1, a.shape[-1])
            acc = acc16_accumulate(a2[None], weights, a_zero_point, bias, self.impl)
            return requant.apply(acc.reshape((*lead, acc.shape[-1])), channel_axis=-1)
        return run


def acc16_backend_factory(nbits_in_non_outlier: int = DEFAULT_NBITS_IN_NON_OUTLIER,
                          block_pairs: int = DEFAULT_BLOCK_PAIRS, impl: Impl = "auto"
                          ) -> Callable[[int], ReferenceBackend]:
    """A backend factory for `register_backend` with other acc16 settings.

    Examples
    --------
    >>> from lowp.runtime.backends import register_backend
    >>> register_backend("dnnlowp-acc16-nbits5", acc16_backend_factory(5))
    """
    def factory(threads: int) -> ReferenceBackend:
        return Acc16Backend(threads, nbits_in_non_outlier=nbits_in_non_outlier,
                            block_pairs=block_pairs, impl=impl)
    return factory


register_backend(BACKEND_NAME, acc16_backend_factory())
