"""RotaryEmbedding (opset 23) gives ONNX Runtime's outputs bit for bit on both backends at 1
and 2 threads (docs/operators.md (O266)): MLAS's AVX2 kernel's fused multiply-adds, its NaN
order, 3-D and 4-D inputs, position ids or per-token caches, partial rotary dims, float16."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowp
from lowp.errors import UnsupportedOpError

from .one_node import assert_backends_give_onnxruntimes_bits, one_node_model


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), seq=st.integers(1, 4), heads=st.integers(1, 3),
       pairs=st.integers(1, 20), rotary_share=st.sampled_from([0, 1, 2]),
       interleaved=st.integers(0, 1), four_d=st.booleans(), with_positions=st.booleans(),
       nans=st.booleans(), dtype=st.sampled_from([np.float32, np.float16]),
       seed=st.integers(0, 2**32 - 1))
def test_rotations(batch: int, seq: int, heads: int, pairs: int, rotary_share: int,
                   interleaved: int, four_d: bool, with_positions: bool, nans: bool,
                   dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    if interleaved:
        pairs = 8 * (pairs % 3 + 1)              # whole 16-value blocks (see the refusal)
    size = 2 * pairs + 2 * rotary_share          # rotary_share: pairs left unrotated
    dim = 2 * pairs if rotary_share else 0
    shape = (batch, heads, seq, size) if four_d else (batch, seq, heads * size)
    x = rng.standard_normal(shape).astype(dtype)
    half = pairs
    cache_shape = (9, half) if with_positions else (batch, seq, half)
    cos = rng.standard_normal(cache_shape).astype(dtype)
    sin = rng.standard_normal(cache_shape).astype(dtype)
    if nans:
        x[rng.random(shape) < 0.1] = np.nan
        x[rng.random(shape) < 0.05] = np.inf
        cos[rng.random(cache_shape) < 0.1] = np.nan
        sin[rng.random(cache_shape) < 0.1] = -np.nan
        cos[rng.random(cache_shape) < 0.1] = 0
    feeds = {"x": x, "cos_cache": cos, "sin_cache": sin}
    if with_positions:
        feeds["position_ids"] = rng.integers(0, 9, (batch, seq)).astype(np.int64)
    attrs = {"interleaved": interleaved, "rotary_embedding_dim": dim}
    if not four_d or dim:
        attrs["num_heads"] = heads
    assert_backends_give_onnxruntimes_bits(one_node_model("RotaryEmbedding", feeds, **attrs),
                                           feeds)


def test_interleaved_with_a_partial_block_is_refused() -> None:
    feeds = {"x": np.zeros((1, 1, 2, 12), np.float32),
             "cos_cache": np.zeros((1, 2, 6), np.float32),
             "sin_cache": np.zeros((1, 2, 6), np.float32)}
    model = one_node_model("RotaryEmbedding", feeds, interleaved=1)
    with pytest.raises(UnsupportedOpError, match="RotaryEmbedding"):
        lowp.Session(model, backend="reference").run(feeds)
