"""EyeLike, CumProd, Compress, ReverseSequence, BitShift and BitwiseNot give ONNX Runtime's
outputs bit for bit on both backends at 1 and 2 threads (docs/operators.md (O258)-(O261),
(O263)), over drawn shapes, attributes and types, NaNs and empty tensors included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto

import lowp
from lowp.errors import NodeError

from .one_node import assert_backends_give_onnxruntimes_bits, one_node_model

SHAPES = st.lists(st.integers(0, 5), min_size=1, max_size=4)
SEEDS = st.integers(0, 2**32 - 1)


def _floats(rng: np.random.Generator, shape: list[int], dtype: type) -> np.ndarray:
    """Values of `dtype`: floats with NaNs, -0 and infinities, or small integers."""
    if np.dtype(dtype).kind != "f":
        return (rng.standard_normal(shape) * 20).astype(np.int64).astype(dtype)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    x[rng.random(shape) < 0.1] = np.nan
    x[rng.random(shape) < 0.1] = -0.0
    x[rng.random(shape) < 0.05] = np.inf
    return x


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 6), cols=st.integers(0, 6), k=st.integers(-7, 7),
       dtype=st.sampled_from([None, TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT32,
                              TensorProto.INT64]),
       x_type=st.sampled_from([np.float32, np.float64, np.int32, np.int64]))
def test_eye_like(rows: int, cols: int, k: int, dtype: int | None, x_type: type) -> None:
    attrs = {"k": k} if dtype is None else {"k": k, "dtype": dtype}
    feeds = {"x": np.zeros((rows, cols), x_type)}
    assert_backends_give_onnxruntimes_bits(one_node_model("EyeLike", feeds, **attrs), feeds)


@settings(max_examples=40, deadline=None)
@given(shape=SHAPES, data=st.data(), exclusive=st.integers(0, 1), reverse=st.integers(0, 1),
       dtype=st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.int64,
                              np.uint32, np.uint64]),
       axis_type=st.sampled_from([np.int32, np.int64]), seed=SEEDS)
def test_cum_prod(shape: list[int], data: st.DataObject, exclusive: int, reverse: int,
                  dtype: type, axis_type: type, seed: int) -> None:
    """Products a step at a time (float16 as float32 between casts; integers wrap)."""
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = _floats(np.random.default_rng(seed), shape, dtype)
    feeds = {"x": x, "axis": np.array(axis, axis_type)}
    model = one_node_model("CumProd", feeds, opset=26, exclusive=exclusive, reverse=reverse)
    assert_backends_give_onnxruntimes_bits(model, feeds)


def test_exclusive_cum_prod_quiets_a_signalling_nan() -> None:
    # the first output is the input itself; an exclusive one multiplies 1 by it (quieted)
    snan = np.array([0x7F800001, 0x3F800000], np.uint32).view(np.float32)
    for exclusive in (0, 1):
        feeds = {"x": np.concatenate([snan, snan]), "axis": np.array(0, np.int64)}
        model = one_node_model("CumProd", feeds, opset=26, exclusive=exclusive)
        assert_backends_give_onnxruntimes_bits(model, feeds)


@settings(max_examples=40, deadline=None)
@given(shape=SHAPES, data=st.data(), with_axis=st.booleans(), extra=st.integers(-3, 3),
       dtype=st.sampled_from([np.float32, np.float16, np.int64, np.bool_, np.uint8]),
       seed=SEEDS)
def test_compress(shape: list[int], data: st.DataObject, with_axis: bool, extra: int,
                  dtype: type, seed: int) -> None:
    """Conditions shorter than the axis (the rest false) and longer (the rest ignored)."""
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1)) if with_axis else None
    length = int(np.prod(shape)) if axis is None else shape[axis]
    condition = rng.random(max(0, length + extra)) < 0.5
    feeds = {"x": _floats(rng, shape, dtype), "condition": condition}
    attrs = {} if axis is None else {"axis": axis}
    assert_backends_give_onnxruntimes_bits(one_node_model("Compress", feeds, **attrs), feeds)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), batch_axis=st.integers(0, 1),
       dtype=st.sampled_from([np.float32, np.float64, np.int8, np.bool_]), seed=SEEDS)
def test_reverse_sequence(shape: list[int], batch_axis: int, dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    time_axis = 1 - batch_axis
    lens = rng.integers(0, shape[time_axis] + 1, shape[batch_axis]).astype(np.int64)
    feeds = {"x": _floats(rng, shape, dtype), "sequence_lens": lens}
    model = one_node_model("ReverseSequence", feeds, batch_axis=batch_axis, time_axis=time_axis)
    assert_backends_give_onnxruntimes_bits(model, feeds)


def test_reverse_sequence_refuses_lengths_past_the_time_axis() -> None:
    feeds = {"x": np.zeros((3, 2), np.float32), "sequence_lens": np.array([1, 4], np.int64)}
    session = lowp.Session(one_node_model("ReverseSequence", feeds), backend="reference")
    with pytest.raises(NodeError, match=r"sequence_lens.*\[0, 3\]"):
        session.run(feeds)


@settings(max_examples=30, deadline=None)
@given(dtype=st.sampled_from([np.uint8, np.uint16, np.uint32, np.uint64]),
       direction=st.sampled_from(["LEFT", "RIGHT"]),
       form=st.sampled_from(["same", "scalar-x", "scalar-y", "rows"]), seed=SEEDS)
def test_bit_shift(dtype: type, direction: str, form: str, seed: int) -> None:
    """Shifts past the type's width give 0 (C++'s shift would be undefined there)."""
    rng = np.random.default_rng(seed)
    bits = np.dtype(dtype).itemsize * 8
    shape_x, shape_y = {"same": ((7,), (7,)), "scalar-x": ((1,), (9,)),
                        "scalar-y": ((9,), (1,)), "rows": ((3, 1), (1, 4))}[form]
    x = rng.integers(0, np.iinfo(dtype).max, shape_x, dtype=dtype, endpoint=True)
    y = rng.integers(0, 2 * bits + 3, shape_y).astype(dtype)
    feeds = {"x": x, "y": y}
    model = one_node_model("BitShift", feeds, direction=direction)
    assert_backends_give_onnxruntimes_bits(model, feeds)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                   np.uint32, np.uint64])
def test_bitwise_not(dtype: type) -> None:
    info = np.iinfo(dtype)
    x = np.array([info.min, info.max, 0, 1, info.max // 3], dtype)
    feeds = {"x": x.reshape(5, 1)}
    assert_backends_give_onnxruntimes_bits(one_node_model("BitwiseNot", feeds, opset=18), feeds)


@settings(max_examples=30, deadline=None)
@given(shape=SHAPES, data=st.data(), exclusive=st.integers(0, 1), reverse=st.integers(0, 1),
       dtype=st.sampled_from([np.float32, np.float64, np.int32, np.int64]), seed=SEEDS)
def test_cum_sum_in_onnxruntimes_order(shape: list[int], data: st.DataObject, exclusive: int,
                                       reverse: int, dtype: type, seed: int) -> None:
    """CumSum shares CumProd's loop: an exclusive sum after an infinity is no longer NaN
    (it subtracted each input from the inclusive sum), nor -0 where ONNX Runtime adds."""
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    feeds = {"x": _floats(np.random.default_rng(seed), shape, dtype),
             "axis": np.array(axis, np.int64)}
    model = one_node_model("CumSum", feeds, opset=14, exclusive=exclusive, reverse=reverse)
    assert_backends_give_onnxruntimes_bits(model, feeds)


def test_exclusive_cum_sum_after_an_infinity() -> None:
    feeds = {"x": np.array([np.inf, 1, -0.0], np.float32), "axis": np.array(0, np.int64)}
    (y,) = assert_backends_give_onnxruntimes_bits(
        one_node_model("CumSum", feeds, opset=14, exclusive=1), feeds)
    assert y.tolist() == [0.0, np.inf, np.inf]
