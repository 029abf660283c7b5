"""ONNX Runtime's Eigen element-wise functors at several intra-op threads: each runs in the
blocks of `TryParallelFor` (lowp.eigen_math.ort_parallel_blocks), and every block's
unaligned head and its tail take the C library's functions, so lowp's threads=T gives ONNX
Runtime's T-thread bits (evals/corpus/repro/README.md item 63)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto

import lowp
from lowp import eigen_math

from .ort_agreement import onnxruntime_run, unary_model

# ONNX Runtime's Cost() of each functor (compute cycles per element)
OPS = {"Softplus": 15.0, "Elu": 30.0, "Log": 15.0, "Selu": 4.0, "Celu": 1.0, "Mish": 15.0}


def test_blocks_of_the_repro_sizes() -> None:
    assert eigen_math.ort_parallel_blocks(1_000_003, 15.0, 2)[:2] == [(0, 125_001),
                                                                      (125_001, 250_002)]
    assert eigen_math.ort_parallel_blocks(262_147, 15.0, 2)[1] == (32_769, 65_538)
    assert eigen_math.ort_parallel_blocks(4_099, 15.0, 2) == [(0, 4_099)]
    assert eigen_math.ort_parallel_blocks(1_000_003, 15.0, 1) == [(0, 1_000_003)]
    assert eigen_math.assignment_runs(1_000_000, 15.0, 2) == [(0, 1_000_000)]


@given(st.integers(0, 3_000_000), st.sampled_from(sorted(set(OPS.values()))),
       st.integers(1, 8))
def test_blocks_cover_the_vector_in_order(n: int, cost: float, threads: int) -> None:
    blocks = eigen_math.ort_parallel_blocks(n, cost, threads)
    assert blocks[0][0] == 0 and blocks[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
    assert len(blocks) <= max(1, 4 * threads)
    runs = eigen_math.assignment_runs(n, cost, threads)
    assert runs[0][0] == 0 and runs[-1][1] == n


SIZES = st.one_of(st.integers(1, 80_000), st.integers(100_000, 1_100_000))


@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=6, deadline=None)
@given(n=SIZES, threads=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**32 - 1))
def test_threads_give_onnxruntimes_bits(op: str, n: int, threads: int, seed: int) -> None:
    x = (np.random.default_rng(seed).standard_normal(n) * 3).astype(np.float32)
    if op == "Log":
        x = np.abs(x)
    model = unary_model(op, TensorProto.FLOAT)
    expected = onnxruntime_run(model, {"x": x}, threads)[0]
    got = lowp.Session(model, threads=threads).run({"x": x})["y"]
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("op", sorted(OPS))
def test_a_million_at_two_threads(op: str) -> None:
    x = (np.random.default_rng(63).standard_normal(1_000_003) * 3).astype(np.float32)
    if op == "Log":
        x = np.abs(x)
    model = unary_model(op, TensorProto.FLOAT)
    for threads in (2, 4):
        got = lowp.Session(model, threads=threads).run({"x": x})["y"]
        want = onnxruntime_run(model, {"x": x}, threads)[0]
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("op", ["Elu", "Log"])
def test_runs_repeat_on_later_runs(op: str) -> None:
    """The native kernel's call (every run of a block in one) repeats when the session
    replays."""
    model = unary_model(op, TensorProto.FLOAT)
    session = lowp.Session(model, threads=2)
    for seed in range(4):
        x = np.abs(np.random.default_rng(seed).standard_normal(1_000_003) * 3).astype(np.float32)
        x[::7] *= -1 if op == "Elu" else 1
        got = session.run({"x": x})["y"]
        want = onnxruntime_run(model, {"x": x}, 2)[0]
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("op", ["Elu", "Log"])
def test_every_run_in_one_native_call(op: str) -> None:
    """At 2 threads a million values are 13 runs (8 blocks, the unaligned ones with a head of
    their own): one native call evaluates them all, each as its own assignment, rather than
    a call per run."""
    from lowp.runtime import tape
    x = np.abs(np.random.default_rng(1).standard_normal(1_000_003) * 3).astype(np.float32)
    x[::5] *= -1 if op == "Elu" else 1
    model = unary_model(op, TensorProto.FLOAT)
    session = lowp.Session(model, threads=2, replay=False)
    assert len(eigen_math.assignment_runs(x.size, OPS[op], 2)) > 8
    with tape.recording() as calls:
        session.run({"x": x})
    assert [fn.__name__ for fn, _ in calls].count(f"float_{op.lower()}") == 1
    got = session.run({"x": x})["y"]
    want = onnxruntime_run(model, {"x": x}, 2)[0]
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
