"""TfIdfVectorizer on int32 / int64 tokens gives ONNX Runtime's outputs bit for bit on both
backends at 1 and 2 threads (docs/operators.md (O267)): drawn pools of 1- to 3-grams, gram
length ranges, skip counts, the three modes with and without weights, [C] and [B, C]."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowp
from lowp.errors import UnsupportedOpError

from .one_node import assert_backends_give_onnxruntimes_bits, one_node_model


@settings(max_examples=50, deadline=None)
@given(grams=st.lists(st.integers(0, 4), min_size=1, max_size=3), data=st.data(),
       skip=st.integers(0, 3), mode=st.sampled_from(["TF", "IDF", "TFIDF"]),
       weighted=st.booleans(), shape=st.sampled_from([(7,), (1, 9), (3, 6), (2, 0), (0,)]),
       dtype=st.sampled_from([np.int64, np.int32]), seed=st.integers(0, 2**32 - 1))
def test_counts(grams: list[int], data: st.DataObject, skip: int, mode: str, weighted: bool,
                shape: tuple[int, ...], dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pool: list[int] = []
    counts: list[int] = []
    for size, how_many in enumerate(grams, start=1):
        counts.append(len(pool))
        seen: set[tuple[int, ...]] = set()
        for _ in range(how_many):
            gram = tuple(int(v) for v in rng.integers(0, 4, size))
            if gram not in seen:
                seen.add(gram)
                pool.extend(gram)
    n_grams = sum(len(pool[c:e]) // (k + 1) for k, (c, e) in enumerate(
        zip(counts, [*counts[1:], len(pool)], strict=True)))
    if n_grams == 0:
        pool, counts, n_grams = [1], [0], 1
    lo = data.draw(st.integers(1, len(counts)))
    hi = data.draw(st.integers(lo, len(counts)))
    indexes = [int(v) for v in rng.permutation(n_grams + 2)[:n_grams]]
    attrs = {"mode": mode, "min_gram_length": lo, "max_gram_length": hi,
             "max_skip_count": skip, "ngram_counts": counts, "ngram_indexes": indexes,
             "pool_int64s": pool}
    if weighted:
        attrs["weights"] = [float(v) for v in rng.standard_normal(n_grams).astype(np.float32)]
    feeds = {"x": rng.integers(0, 4, shape).astype(dtype)}
    model = one_node_model("TfIdfVectorizer", feeds, opset=9, **attrs)
    assert_backends_give_onnxruntimes_bits(model, feeds)


def test_string_pools_are_refused() -> None:
    feeds = {"x": np.zeros(3, np.int64)}
    model = one_node_model("TfIdfVectorizer", feeds, opset=9, mode="TF", min_gram_length=1,
                           max_gram_length=1, max_skip_count=0, ngram_counts=[0],
                           ngram_indexes=[0], pool_strings=["a"])
    with pytest.raises(UnsupportedOpError, match="TfIdfVectorizer"):
        lowp.Session(model, backend="reference").run(feeds)
