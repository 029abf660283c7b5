"""A Session bounds numpy's BLAS pool to its thread count for the length of a run, and
gives the pool its own count back afterwards."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, blas_threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def _pool_threads() -> list[int]:
    return [int(i["num_threads"]) for i in threadpoolctl.ThreadpoolController().info()]


def _identity_matmul_session() -> Session:
    """One float MatMul by the identity, on 1 thread."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        [numpy_helper.from_array(np.eye(8, dtype=np.float32), "w")])
    return Session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                   threads=1)


def _pool_threads_at_calls(step: Any) -> list[list[int]]:
    """The BLAS pool's thread counts at each call of `step`'s function, from now on."""
    seen: list[list[int]] = []
    inner = step.fn

    def spy(*args: object, **kw: object) -> object:
        seen.append(_pool_threads())
        return inner(*args, **kw)

    step.fn = spy
    return seen


def test_blas_pool_is_bounded_during_a_run_and_restored():
    before = _pool_threads()
    if not before or max(before) <= 1:
        pytest.skip("no BLAS pool with more than one thread")
    s = _identity_matmul_session()
    assert s._blas is not None
    seen = _pool_threads_at_calls(s.steps[0])
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    for _ in range(3):
        np.testing.assert_array_equal(s.run({"x": x})["y"], x)
    assert seen and all(max(t) == 1 for t in seen)
    assert _pool_threads() == before


def test_a_run_replayed_by_native_programs_only_skips_the_bound(monkeypatch):
    """Once a feed signature replays as native Programs only, no step runs from Python and
    none can call BLAS: the run leaves the pools as they are (bounding costs ~3 us)."""
    s = _identity_matmul_session()
    if s._blas is None:
        pytest.skip("no BLAS pool with more than one thread")
    bounded = []
    real = blas_threads.bounded

    def counting(found: object, threads: int) -> object:
        bounded.append(threads)
        return real(found, threads)

    monkeypatch.setattr(blas_threads, "bounded", counting)
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    for _ in range(4):
        np.testing.assert_array_equal(s.run({"x": x})["y"], x)
    assert s._replayer is not None
    assert s._replayer.native_only((("x", (4, 8), x.dtype.str),))
    assert bounded == [1, 1]                 # the two recording runs only
    s.run({"x": x}, capture=True)            # a step-by-step run is bounded again
    assert bounded == [1, 1, 1]


def test_pools_at_or_below_the_bound_are_left_alone():
    found = threadpoolctl.ThreadpoolController()
    before = _pool_threads()
    with blas_threads.bounded(found, max(before, default=1) + 1):
        assert _pool_threads() == before
    assert _pool_threads() == before


def test_a_ready_run_with_steps_from_python_is_bounded():
    """A ready signature whose replayed run also runs a step from Python (Hardmax) in a
    Session with a BLAS step (MatMul) takes the ready run inside the bound, every run."""
    before = _pool_threads()
    if not before or max(before) <= 1:
        pytest.skip("no BLAS pool with more than one thread")
    maps = helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]),
         helper.make_node("ZipMap", ["y"], ["maps"], domain="ai.onnx.ml",
                          classlabels_int64s=list(range(8))),
         helper.make_node("Hardmax", ["y"], ["h"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8]),
         helper.make_value_info("maps", maps),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, [4, 8])],
        [numpy_helper.from_array(np.eye(8, dtype=np.float32), "w")])
    s = Session(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)]), threads=1)
    assert s._blas is not None
    seen = _pool_threads_at_calls(next(t for t in s.steps if t.op_type == "Hardmax"))
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    for _ in range(5):
        got = s.run({"x": x})
        np.testing.assert_array_equal(got["y"], x)
        assert got["maps"] == [dict(enumerate(row)) for row in x.tolist()]
        np.testing.assert_array_equal(got["h"], np.eye(8, dtype=np.float32)[[7] * 4])
    assert s._ready_run is not None and s._ready_run.bounds_blas
    assert len(seen) == 5 and all(max(t) == 1 for t in seen)
    assert _pool_threads() == before
