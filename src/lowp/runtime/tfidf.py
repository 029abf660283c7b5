"""ONNX TfIdfVectorizer (opset 9) on integer tokens, as ONNX Runtime's kernel counts
(docs/operators.md, (O267)): the pool's n-grams of the sizes [min_gram_length,
max_gram_length], counted in each row at every skip distance up to max_skip_count + 1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lowp.errors import NodeError
from lowp.runtime.float_registry import register, unsupported


def _pool(pool: Sequence[int], ngram_counts: Sequence[int], lo: int,
          hi: int) -> dict[tuple[int, ...], int]:
    """Each n-gram of the pool (sizes lo to hi) -> its n-gram id (the running count of
    the pool's n-grams of every size, loaded or not)."""
    ids: dict[tuple[int, ...], int] = {}
    ngram_id = 0
    for k, start in enumerate(ngram_counts):
        size = k + 1
        end = ngram_counts[k + 1] if k + 1 < len(ngram_counts) else len(pool)
        if not start <= end <= len(pool) or (end - start) % size:
            raise NodeError(f"ngram_counts {list(ngram_counts)} do not split the pool into "
                            f"whole {size}-grams")
        for first in range(start, end, size):
            if lo <= size <= hi:
                gram = tuple(pool[first:first + size])
                if gram in ids:
                    raise NodeError(f"the pool lists the {size}-gram {list(gram)} twice")
                ids[gram] = ngram_id
            ngram_id += 1
    return ids


def _count_row(row: list[int], ids: dict[tuple[int, ...], int], lo: int, hi: int,
               max_skip: int, counts: np.ndarray, index: np.ndarray) -> None:
    start_size = lo
    if lo == 1:
        for token in row:
            hit = ids.get((token,))
            if hit is not None:
                counts[index[hit]] += 1
        start_size = 2
        if start_size > hi:
            return
    n = len(row)
    for skip in range(1, max_skip + 2):
        for first in range(n):
            if first + skip * (start_size - 1) >= n:
                break
            gram: tuple[int, ...] = ()
            for size, at in enumerate(range(first, n, skip), start=1):
                if size > hi:
                    break
                gram = (*gram, row[at])
                if size >= start_size:
                    hit = ids.get(gram)
                    if hit is not None:
                        counts[index[hit]] += 1


@register
def TfIdfVectorizer(x: np.ndarray, *, mode: str, min_gram_length: int, max_gram_length: int,
                    max_skip_count: int, ngram_counts: Sequence[int],
                    ngram_indexes: Sequence[int], pool_int64s: Sequence[int] = (),
                    pool_strings: Sequence[Any] = (), weights: Sequence[float] = (),
                    **_: Any) -> np.ndarray:
    """Per row of x ([C] or [B, C] int32 / int64 tokens) the count of each pool n-gram at
    output position ngram_indexes[id], as float32: TF the counts, IDF weights[id] (1
    without weights) where the count is positive, TFIDF count * weights[id] (float32)
    there; +0 where nothing was counted."""
    if len(pool_strings):
        raise unsupported("TfIdfVectorizer", "string tokens (pool_strings): lowp's engine "
                          "runs numeric tensors only")
    if mode not in ("TF", "IDF", "TFIDF"):
        raise NodeError(f"mode {mode!r} is not TF, IDF or TFIDF")
    lo, hi, max_skip = int(min_gram_length), int(max_gram_length), int(max_skip_count)
    if not 0 < lo <= hi <= len(ngram_counts) or max_skip < 0:
        raise NodeError(f"n-gram lengths [{lo}, {hi}] and max_skip_count {max_skip} do not "
                        f"fit ngram_counts {list(ngram_counts)}")
    index = np.asarray(ngram_indexes, np.int64)
    if not len(pool_int64s) or not index.size or index.min() < 0:
        raise NodeError("TfIdfVectorizer needs pool_int64s and non-negative ngram_indexes")
    w = np.asarray(weights, np.float32)
    if w.size and w.size != index.size:
        raise NodeError(f"{w.size} weights for {index.size} ngram_indexes")
    if x.dtype not in (np.int32, np.int64):
        raise NodeError(f"TfIdfVectorizer takes int32 or int64 tokens, got {x.dtype}")
    if x.ndim > 2 or (x.ndim == 2 and x.shape[0] < 1):
        raise NodeError(f"the input must be [C] or [B, C] with B > 0, got {list(x.shape)}")
    ids = _pool([int(v) for v in pool_int64s], [int(v) for v in ngram_counts], lo, hi)
    width = int(index.max()) + 1
    if w.size:
        # weights[id] scales n-gram id's count, at output position ngram_indexes[id]
        w_at = np.zeros(width, np.float32)
        w_at[index] = w
        w = w_at
    rows = x.reshape(1 if x.ndim < 2 else x.shape[0], -1)
    counts = np.zeros((rows.shape[0], width), np.uint32)
    for r in range(rows.shape[0]):
        _count_row(rows[r].tolist(), ids, lo, hi, max_skip, counts[r], index)
    if mode == "TF" or (mode == "TFIDF" and not w.size):
        y = counts.astype(np.float32)
    elif mode == "IDF":
        y = np.where(counts > 0, w if w.size else np.float32(1), np.float32(0))
    else:
        # (a position no n-gram hit stays +0, also under a negative weight)
        y = np.where(counts > 0, counts.astype(np.float32) * w, np.float32(0))
    y = y.astype(np.float32)
    return y if x.ndim == 2 else y.reshape(width)
