"""ONNX Attention (opset 23 and 24, float32 and float16) as ONNX Runtime 1.32's CPU kernel
computes it
(docs/operators.md, (O303)): per batch entry and query head, one MLAS SGEMM of the scaled
Q·Kᵀ (the mask preloaded into C and accumulated onto), MLAS's softmax of its rows, and one
MLAS SGEMM of the probabilities by V; natively the whole node is one call
(native_float.attention, (O311)), this loop its reference."""

from __future__ import annotations

from typing import Any

import numpy as np

from lowp import libm, mlas_sgemm, ort_math
from lowp.errors import NodeError
from lowp.runtime import native_float
from lowp.runtime.float_registry import register, unsupported
from lowp.runtime.switch import Switch

_F = np.float32
#: On: a node runs as one native call where it can; `whole.off()` runs the loop below (its
#: SGEMMs and softmaxes still native), the reference the native call is tested against.
whole = Switch()


def _heads(x: np.ndarray, num_heads: int, name: str) -> np.ndarray:
    """x as (batch, heads, sequence, head size): 4-D x as it is, 3-D (batch, sequence,
    heads * head size) split into `num_heads` heads."""
    if x.ndim == 4:
        return x
    if num_heads <= 0 or x.shape[2] % num_heads:
        raise NodeError(f"Attention: a 3-D {name} of hidden size {x.shape[2]} needs "
                        f"{'q' if name == 'Q' else 'kv'}_num_heads dividing it, got {num_heads}")
    return x.reshape(x.shape[0], x.shape[1], num_heads, -1).transpose(0, 2, 1, 3)


def _mask_shape(attn_mask: np.ndarray, seq: int, total: int, q_heads: int, batch: int,
                dtype: np.dtype) -> tuple[int, ...]:
    """attn_mask's shape as (mask batch, mask heads, seq, total), checked against what ONNX
    Runtime reads (and its type against the inputs' `dtype`)."""
    if not 2 <= attn_mask.ndim <= 4:
        raise NodeError(f"Attention: attn_mask must be 2-D to 4-D, got shape "
                        f"{list(attn_mask.shape)}")
    shape = (1,) * (4 - attn_mask.ndim) + attn_mask.shape
    if shape[2:] != (seq, total) or shape[1] not in (1, q_heads) or shape[0] not in (1, batch):
        raise unsupported("Attention", f"attn_mask of shape {list(attn_mask.shape)}: lowp "
                          f"runs masks of shape [{seq}, {total}] with leading axes 1, "
                          f"{q_heads} heads or {batch} batch entries, as ONNX Runtime "
                          "reads them")
    if attn_mask.dtype not in (np.bool_, dtype):
        raise NodeError(f"Attention: attn_mask of type {attn_mask.dtype} with inputs of type "
                        f"{dtype}")
    return shape


def _mask_slices(attn_mask: np.ndarray | None, shape: tuple[int, ...],
                 dtype: np.dtype) -> np.ndarray | None:
    """attn_mask as additive (mask batch, mask heads, seq, total) float32 values of `dtype`
    (the inputs'): a boolean mask is 0 where true, the lowest `dtype` value where false.
    None: no mask."""
    if attn_mask is None:
        return None
    if attn_mask.dtype == np.bool_:
        return np.where(attn_mask.reshape(shape), _F(0), _F(np.finfo(dtype).min))
    return np.asarray(attn_mask.reshape(shape), _F)


def _batch_mask(base: np.ndarray | None, b: int, causal: bool, offset: int, seq: int,
                total: int, low: np.float32) -> np.ndarray | None:
    """Batch entry b's additive mask (mask heads, seq, total), None for none: the attn_mask's
    slice, and with `causal` every position t > s + offset of query s set to `low`
    (zeros first without attn_mask)."""
    if not causal:
        return None if base is None else base[b % base.shape[0]]
    m = np.zeros((1, seq, total), _F) if base is None else np.array(base[b % base.shape[0]])
    s = np.arange(seq)[:, None]
    t = np.arange(total)[None, :]
    m[..., t > s + offset] = low
    return m


def _product(a: np.ndarray, b: np.ndarray, alpha: float, trans_b: bool,
             c: np.ndarray | None, ldb: int) -> np.ndarray:
    """alpha * a·b (b [n, k] with `trans_b`), accumulated onto `c` when given: one MLAS
    SGEMM on one thread (ONNX Runtime's Attention runs each without its thread pool),
    natively where it can; `ldb`: B's leading dimension as MLAS reads it."""
    bm = b.T if trans_b else b
    out = np.empty((a.shape[0], bm.shape[1]), _F)
    if native_float.single_sgemm(a, bm, out, alpha=alpha, trans_b=trans_b, init=c,
                                 unit_ldb=ldb == 1):
        return out
    return mlas_sgemm.gemm(a, b, alpha=alpha, trans_b=trans_b, c=c, ldb=ldb)


def _softmax(s: np.ndarray) -> np.ndarray:
    """MlasComputeSoftmax of every row (one thread: rows are independent), natively where
    it runs."""
    if not s.size:
        return s
    p = native_float.softmax_rows(s)
    return np.array(p) if p is not None else ort_math.softmax_rows(s)


def _native(q: np.ndarray, k: np.ndarray, v: np.ndarray,
            past: tuple[np.ndarray, np.ndarray] | None, attn_mask: np.ndarray | None,
            valid: np.ndarray | None, shape: native_float.AttentionShape,
            flags: native_float.AttentionFlags) -> tuple[np.ndarray | None, ...] | None:
    """The node's outputs by one native call (native_float.attention, (O311)), None where
    it does not run natively. float32 operands are read where they are; float16 ones
    widened to float32 first (each step rounded to float16 inside) and the results
    narrowed."""
    def wide(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, _F)

    mask = None if attn_mask is None else np.ascontiguousarray(attn_mask) \
        if attn_mask.dtype == np.bool_ else wide(attn_mask)
    out = native_float.attention(
        wide(q), wide(k), wide(v), None if past is None else (wide(past[0]), wide(past[1])),
        mask, None if valid is None else np.ascontiguousarray(valid), shape, flags)
    if out is None or not flags.half:
        return out
    with np.errstate(over="ignore"):
        return tuple(None if x is None else x.astype(np.float16) for x in out)


@register
def Attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, attn_mask: np.ndarray | None = None,
              past_key: np.ndarray | None = None, past_value: np.ndarray | None = None,
              nonpad_kv_seqlen: np.ndarray | None = None, *, is_causal: int = 0,
              kv_num_heads: int = 0, q_num_heads: int = 0, qk_matmul_output_mode: int = 0,
              scale: float | None = None, softcap: float = 0.0, softmax_precision: int = 0,
              outputs: tuple[bool, ...] = (True,), opset: int = 23,
              **_: Any) -> tuple[np.ndarray | None, ...]:
    """softmax(scale * Q·Kᵀ + mask)·V per batch entry and query head; query head i reads
    key/value head i * kv_heads // q_heads. `outputs`: which of the node's outputs exist
    (Y, present_key, present_value, qk)."""
    if opset > 24:
        raise unsupported("Attention", f"opset {opset} (its window attributes): lowp runs "
                          "Attention-23 and -24")
    dtype = q.dtype
    if dtype not in (np.float32, np.float16) or k.dtype != dtype or v.dtype != dtype:
        raise unsupported("Attention", f"inputs of types {q.dtype}, {k.dtype}, {v.dtype}: "
                          "lowp runs float32 and float16")
    if not ort_math.mlas_has_avx512f():
        raise unsupported("Attention", "lowp reproduces ONNX Runtime's softmax on AVX-512F "
                          "machines only")
    if q.ndim not in (3, 4) or k.ndim != q.ndim or v.ndim != q.ndim:
        raise NodeError(f"Attention: Q, K and V must all be 3-D or all 4-D, got "
                        f"{q.ndim}, {k.ndim}, {v.ndim}")
    if (past_key is None) != (past_value is None):
        raise NodeError("Attention: past_key and past_value must both be given or neither")
    outputs = tuple(outputs) + (False,) * (4 - len(outputs))
    if past_key is not None and not (outputs[1] and outputs[2]):
        raise NodeError("Attention: past_key and past_value need present_key and "
                        "present_value outputs (ONNX Runtime refuses them without)")
    batch = q.shape[0]
    if k.shape[0] != batch or v.shape[0] != batch:
        raise NodeError("Attention: Q, K and V have different batch sizes")
    if batch == 0:
        raise NodeError("Attention: batch size must be greater than 0")
    qh = _heads(q, int(q_num_heads), "Q")
    kh = _heads(k, int(kv_num_heads), "K")
    vh = _heads(v, int(kv_num_heads), "V")
    nq, seq, head = qh.shape[1:]
    nkv, kv_seq = kh.shape[1:3]
    if q.ndim == 4 and (q_num_heads and q_num_heads != nq or kv_num_heads and kv_num_heads != nkv):
        raise NodeError("Attention: q_num_heads / kv_num_heads differ from the inputs' heads")
    if kh.shape[3] != head or vh.shape[1] != nkv or vh.shape[2] != kv_seq:
        raise NodeError(f"Attention: K {list(k.shape)} and V {list(v.shape)} do not fit Q "
                        f"{list(q.shape)}")
    if nq % nkv:
        raise NodeError(f"Attention: q heads {nq} are not a multiple of kv heads {nkv}")
    v_head = vh.shape[3]
    past = 0
    if past_key is not None and past_value is not None:
        past = past_key.shape[2] if past_key.ndim == 4 else -1
        if past_key.shape != (batch, nkv, past, head) or \
                past_value.shape != (batch, nkv, past, v_head):
            raise NodeError(f"Attention: past_key {list(past_key.shape)} / past_value "
                            f"{list(past_value.shape)} do not fit")
        if past_key.dtype != dtype or past_value.dtype != dtype:
            raise NodeError(f"Attention: past_key and past_value must be {dtype} like Q")
    total = past + kv_seq
    valid = None
    if nonpad_kv_seqlen is not None:
        valid = np.asarray(nonpad_kv_seqlen).reshape(-1)
        if nonpad_kv_seqlen.ndim != 1 or valid.shape[0] != batch or past:
            raise NodeError(f"Attention: nonpad_kv_seqlen must be [{batch}] and comes "
                            "without a past")
        if valid.size and (valid.min() < 0 or valid.max() > total):
            raise NodeError(f"Attention: nonpad_kv_seqlen must be in [0, {total}]")
    scale_f = _F(1.0 / np.sqrt(float(head))) if scale is None else _F(scale)
    if not scale_f > 0:
        raise NodeError(f"Attention: scale must be positive, got {scale}")
    if total == 0:
        raise unsupported("Attention", "an empty key sequence")
    # the decode step (one query after a past) sees every position: no causal pattern
    causal = bool(is_causal) and not (seq == 1 and past > 0)
    mask_shape = None if attn_mask is None else \
        _mask_shape(attn_mask, seq, total, nq, batch, dtype)
    mode = int(qk_matmul_output_mode) if outputs[3] else -1
    if outputs[3] and mode not in (0, 1, 2, 3):
        raise NodeError(f"Attention: qk_matmul_output_mode must be 0 to 3, got {mode}")
    # ONNX Runtime folds the mask into Q·Kᵀ's SGEMM unless softcap comes between or the
    # raw product is asked for
    fold = mode not in (0, 1) and not softcap
    cap = _F(dtype.type(softcap))
    low = _F(np.finfo(dtype).min)                # ONNX Runtime's masked value
    half = dtype == np.float16
    # K's and V's leading dimensions as MLAS reads them: a 3-D input in place (its rows
    # hold every head) unless the node outputs its present copy, which is read instead
    k_ld = head * (nkv if q.ndim == 3 and not outputs[1] else 1)
    v_ld = v_head * (nkv if q.ndim == 3 and not outputs[2] else 1)
    y_ld = v_head * (nq if q.ndim == 3 else 1)
    # (a softcap that rounds to 0 in the inputs' type stays in the loop)
    if whole and q.size and (cap or not softcap):
        mask_batch, mask_heads = (1, 1) if mask_shape is None else mask_shape[:2]
        shape = native_float.AttentionShape(batch, nq, nkv, seq, kv_seq, past, head, v_head,
                                            mask_batch, mask_heads, q.ndim == 3)
        flags = native_float.AttentionFlags(
            float(scale_f), float(cap) if softcap else 0.0, float(low), mode, causal, fold,
            half, k_ld == 1, v_ld * y_ld == 1, bool(outputs[1] or outputs[2]))
        pasts = None if past_key is None or past_value is None or not past else \
            (past_key, past_value)
        native = _native(q, k, v, pasts, attn_mask, valid, shape, flags)
        if native is not None:
            return native
    if past_key is not None and past_value is not None:
        kh = np.concatenate([past_key, kh], axis=2)
        vh = np.concatenate([past_value, vh], axis=2)
    base = _mask_slices(attn_mask, mask_shape or (), dtype)
    # float16: every stage in float32 (MLAS's SGEMM on the widened operands, the softmax
    # of the widened scores), its result rounded to float16 as ONNX Runtime stores it
    rounded = (lambda x: x.astype(np.float16).astype(_F)) if half else (lambda x: x)
    qh, kh, vh = (x.astype(_F, copy=False) for x in (qh, kh, vh))
    y = np.empty((batch, nq, seq, v_head), _F)
    qk = np.empty((batch, nq, seq, total), _F)
    with np.errstate(all="ignore"):              # inf and NaN pass on as in MLAS
        for b in range(batch):
            # query s sees positions up to past + s, or with nonpad_kv_seqlen up to
            # valid - seq + s (the diagonal ends at the last valid position)
            end = total if valid is None else int(valid[b])
            offset = past if valid is None else end - seq
            mask = _batch_mask(base, b, causal, offset, seq, total, low)
            hidden = None if mask is None else mask <= low
            if valid is not None:
                cut = np.arange(total) >= end
                hidden = np.broadcast_to(cut, (1, seq, total)) if hidden is None \
                    else hidden | cut
            # rows hidden whole (by values at most the lowest float32, a NaN not, the causal
            # pattern or nonpad_kv_seqlen) give zeros whatever their scores
            hidden_rows = None if hidden is None else np.all(hidden, axis=-1)
            for h in range(nq):
                hk = h * nkv // nq
                m = None if mask is None else mask[h % mask.shape[0]]
                c = None if m is None or not fold else np.array(m, _F)
                s = rounded(_product(qh[b, h], kh[b, hk], float(scale_f), True, c, k_ld))
                if mode == 0:
                    qk[b, h] = s
                if softcap:                      # MlasComputeSoftcap: the C library's tanhf
                    s = rounded((libm.tanhf((s / cap).astype(_F)) * cap).astype(_F))
                if mode == 1:
                    qk[b, h] = s
                if m is not None and not fold:
                    # MlasEltwiseAdd (mask + scores); float16 adds scores + mask in float32
                    s = rounded(ort_math.sse_op(np.add, *((s, m) if half else (m, s)))
                                .astype(_F))
                if valid is not None:
                    s[:, int(valid[b]):] = low
                if mode == 2:
                    qk[b, h] = s
                p = rounded(_softmax(s))
                if hidden_rows is not None:
                    p[hidden_rows[h % hidden_rows.shape[0]]] = 0
                if mode == 3:
                    qk[b, h] = p
                # MLAS's N = 1 kernel needs B's and C's leading dimensions both 1 (their
                # product stands for both here)
                y[b, h] = rounded(_product(p, vh[b, hk], 1.0, False, None, v_ld * y_ld))
    out = y if q.ndim == 4 else y.transpose(0, 2, 1, 3).reshape(batch, seq, nq * v_head)
    with np.errstate(over="ignore"):
        return tuple(np.ascontiguousarray(x.astype(dtype, copy=False))
                     for x in (out, kh, vh, qk))
