"""ONNX RotaryEmbedding (opset 23) as ONNX Runtime 1.32 computes it on an AVX2 machine
(docs/operators.md, (O266)): MLAS's RopeKernel_Avx2 rotates each (real, imaginary) pair of
a head's first rotary_embedding_dim values by fused multiply-adds."""

from __future__ import annotations

from typing import Any

import numpy as np

from lowp.errors import NodeError
from lowp.fixedpoint import fma32
from lowp.runtime.float_registry import register, unsupported

# The pairs MLAS's interleaved kernel takes 8 at a time: its masked tail (dim not a multiple
# of 16) gives values lowp does not reproduce.
_INTERLEAVED_BLOCK = 16
_DEFAULT_NAN = np.array(0xFFC00000, np.uint32).view(np.float32)


def _fused(a: np.ndarray, b: np.ndarray, c: np.ndarray, *, subtract: bool) -> np.ndarray:
    """AVX2's fmadd (a * b + c) or fmsub (a * b - c), float32, rounded once; a NaN result
    is the first NaN of a, b, c quieted (fmsub keeps c's sign), else the default NaN."""
    y = fma32(a, b, -c if subtract else c)
    nan = np.isnan(y)
    if nan.any():
        y = y.copy()
        picked = np.zeros(y.shape, bool)
        for v in np.broadcast_arrays(a, b, c):
            take = nan & ~picked & np.isnan(v)
            y[take] = (v[take].view(np.uint32) | np.uint32(0x00400000)).view(np.float32)
            picked |= take
        y[nan & ~picked] = _DEFAULT_NAN
    return y


def _heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """x as (batch, sequence, heads, head_size): a 4-D x is (batch, heads, sequence, head
    size), a 3-D one (batch, sequence, heads * head_size) with `num_heads` heads."""
    if x.ndim == 4:
        return x.transpose(0, 2, 1, 3)
    if x.ndim != 3:
        raise NodeError(f"RotaryEmbedding takes a 3-D or 4-D input, got shape {list(x.shape)}")
    if num_heads <= 0 or x.shape[2] % num_heads:
        raise NodeError(f"a 3-D input of hidden size {x.shape[2]} needs num_heads dividing "
                        f"it, got {num_heads}")
    return x.reshape(x.shape[0], x.shape[1], num_heads, x.shape[2] // num_heads)


def _caches(cos_cache: np.ndarray, sin_cache: np.ndarray, position_ids: np.ndarray | None,
            batch: int, seq: int, half: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin for each (batch, position): (batch, sequence, half)."""
    if cos_cache.shape != sin_cache.shape:
        raise NodeError(f"cos_cache {list(cos_cache.shape)} and sin_cache "
                        f"{list(sin_cache.shape)} differ")
    if position_ids is None:
        if cos_cache.shape != (batch, seq, half):
            raise NodeError(f"without position_ids the caches must be {[batch, seq, half]}, "
                            f"got {list(cos_cache.shape)}")
        return cos_cache, sin_cache
    if cos_cache.ndim != 2 or cos_cache.shape[1] != half:
        raise NodeError(f"with position_ids the caches must be [max_position, {half}], got "
                        f"{list(cos_cache.shape)}")
    ids = np.asarray(position_ids)
    if ids.shape != (batch, seq):
        raise NodeError(f"position_ids must be {[batch, seq]}, got {list(ids.shape)}")
    if ids.size and (ids.min() < 0 or ids.max() >= cos_cache.shape[0]):
        raise NodeError(f"position_ids must be in [0, {cos_cache.shape[0] - 1}]")
    return cos_cache[ids], sin_cache[ids]


@register
def RotaryEmbedding(x: np.ndarray, cos_cache: np.ndarray, sin_cache: np.ndarray,
                    position_ids: np.ndarray | None = None, *, interleaved: int = 0,
                    num_heads: int = 0, rotary_embedding_dim: int = 0,
                    **_: Any) -> np.ndarray:
    """Each head's first rotary_embedding_dim (default: all) values as pairs (the halves,
    or neighbours with `interleaved`) rotated: real * cos - imag * sin and real * sin +
    imag * cos, each one float32 fused multiply-add of real onto the rounded product of
    imag; the rest copied. float16 computes in float32 and rounds once."""
    heads = _heads(x, int(num_heads))
    batch, seq, _, size = heads.shape
    dim = int(rotary_embedding_dim) or size
    if dim > size or dim % 2:
        raise NodeError(f"rotary_embedding_dim {dim} must be even and at most the head "
                        f"size {size}")
    if interleaved and dim % _INTERLEAVED_BLOCK:
        raise unsupported("RotaryEmbedding", f"interleaved with rotary_embedding_dim {dim}, "
                          f"not a multiple of {_INTERLEAVED_BLOCK}: lowp does not reproduce "
                          "ONNX Runtime's last partial block there")
    half = dim // 2
    cos, sin = _caches(cos_cache, sin_cache, position_ids, batch, seq, half)
    f = heads.astype(np.float32)
    c = cos.astype(np.float32)[:, :, None, :]
    s = sin.astype(np.float32)[:, :, None, :]
    if interleaved:
        real, imag = f[..., 0:dim:2], f[..., 1:dim:2]
    else:
        real, imag = f[..., :half], f[..., half:dim]
    with np.errstate(all="ignore"):
        real_out = _fused(real, c, np.multiply(imag, s, dtype=np.float32), subtract=True)
        imag_out = _fused(real, s, np.multiply(imag, c, dtype=np.float32), subtract=False)
    out = f.copy()
    if interleaved:
        out[..., 0:dim:2], out[..., 1:dim:2] = real_out, imag_out
    else:
        out[..., :half], out[..., half:dim] = real_out, imag_out
    y = out.astype(x.dtype) if x.dtype != np.float32 else out
    if x.dtype == np.float16:
        y[..., dim:] = heads[..., dim:]
    y = y.transpose(0, 2, 1, 3) if x.ndim == 4 else y.reshape(x.shape)
    return np.ascontiguousarray(y)
