"""Table fusion (lowp.runtime.fuse) is exact by construction: a fused step gives what its
steps give one after the other, on tables, on the fallbacks (channels-first data, single
elements) and through the composition of a per-channel table with the unary tables after
it (a QOperator file's unfolded BatchNormalization and written-out hard-swish)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp.runtime.fastops import lookup
from lowp.runtime.fuse import fuse_tables
from lowp.runtime.plan import CF, CL, Step


def _per_channel(table: np.ndarray) -> Step:
    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        if layout is CL and xv.shape[-1] == table.shape[0]:
            return (lookup(xv, table),)
        cl = np.moveaxis(xv, 1, -1)                      # the region on channels-first data
        return (np.ascontiguousarray(np.moveaxis(lookup(np.ascontiguousarray(cl), table),
                                                 -1, 1)),)
    return Step("bn", "BatchNormalization", "int", ["x"], ["b"], run, layouts=(CL,),
                replayable=True, channel_table=table)


def _unary(name: str, x: str, out: str, table: np.ndarray) -> Step:
    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        return (table[xv.view(np.uint8)],)
    return Step(name, name, "int", [x], [out], run, layouts=(CF, CL), elementwise=True,
                table_dtype=np.dtype(np.uint8), replayable=True)


def _mul(x: str, t: str, out: str) -> Step:
    def run(a: np.ndarray, b: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        return (((a.astype(np.int32) * b.astype(np.int32)) // 255).astype(np.uint8),)
    return Step("mul", "Mul", "int", [x, t], [out], run, layouts=(CF, CL), act_inputs=(0, 1),
                elementwise=True, replayable=True)


@given(st.integers(1, 6), st.integers(0, 10**6))
def test_per_channel_table_then_hard_swish_fuses_into_one_exact_table(channels, seed):
    rng = np.random.default_rng(seed)
    pc = rng.integers(0, 256, (channels, 256)).astype(np.uint8)
    plus, div = (rng.integers(0, 256, 256).astype(np.uint8) for _ in range(2))
    steps = [_per_channel(pc), _unary("add", "b", "a", plus), _mul("b", "a", "m"),
             _unary("div", "m", "y", div)]
    fused = fuse_tables(list(steps), {"y"})
    assert len(fused) == 1 and fused[0].channel_table is not None
    x = rng.integers(0, 256, (2, 3, 4, channels)).astype(np.uint8)

    def unfused(xv: np.ndarray, layout: object) -> np.ndarray:
        (b,) = steps[0].fn(xv, layout=layout)
        (a,) = steps[1].fn(b, layout=layout)
        (m,) = steps[2].fn(b, a, layout=layout)
        return steps[3].fn(m, layout=layout)[0]

    np.testing.assert_array_equal(fused[0].fn(x, layout=CL)[0], unfused(x, CL))
    cf = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    np.testing.assert_array_equal(fused[0].fn(cf, layout=CF)[0], unfused(cf, CF))


def test_a_per_channel_table_read_twice_is_not_fused():
    """Its output feeds two steps: composing would lose the one the other step reads."""
    pc = np.tile(np.arange(256, dtype=np.uint8), (3, 1))
    steps = [_per_channel(pc), _unary("add", "b", "a", np.arange(256, dtype=np.uint8)),
             _unary("neg", "b", "c", 255 - np.arange(256, dtype=np.uint8))]
    assert len(fuse_tables(list(steps), {"a", "c"})) == 3


@pytest.mark.parametrize("size", [1, 2, 5])
def test_fused_table_of_tiny_inputs_runs_the_steps(size):
    """x * table(x) fused: one-element inputs go through the steps themselves."""
    t = np.arange(256, dtype=np.uint8)[::-1].copy()
    steps = [_unary("t", "x", "a", t), _mul("x", "a", "y")]
    (fused,) = fuse_tables(list(steps), {"y"})
    x = np.arange(size, dtype=np.uint8) * 37
    want = steps[1].fn(x, steps[0].fn(x, layout=CF)[0], layout=CF)[0]
    np.testing.assert_array_equal(fused.fn(x, layout=CF)[0], want)
