"""Pow by 2 and 3 where ONNX Runtime's broadcast loop sees the exponent as one value per span
(x * x, x * x * x in the base's type: an integer wraps) and std::pow elsewhere (a
one-element base, a base whose innermost axis is 1): docs/operators.md (O107)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.ort_math import scalar_operand
from lowp.runtime import Session
from tests.runtime.ort_agreement import onnxruntime_run

_TYPES = {np.int32: TensorProto.INT32, np.int64: TensorProto.INT64,
          np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}

# (base shape, exponent shape): the exponent one value per span, the base one value per
# span, both spans
_SHAPES = [((6,), ()), ((6,), (1,)), ((2, 3), (2, 1)), ((3,), (1, 1)), ((1,), (1,)),
           ((), ()), ((4, 1), (1,)), ((4, 1), ()), ((1,), (3,)), ((2, 3), (2, 3)),
           ((3, 1), (3, 2)), ((1, 1), (1, 1)), ((2, 1, 3), (2, 1, 1))]


def _model(xt: type, yt: type, y: np.ndarray | None, x_shape: tuple[int, ...],
           y_shape: tuple[int, ...], chain: bool) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", _TYPES[xt], x_shape)]
    inits = []
    if y is None:
        inputs.append(helper.make_tensor_value_info("e", _TYPES[yt], y_shape))
    else:
        inits.append(numpy_helper.from_array(y, "e"))
    if chain:   # an element-wise chain around the Pow (fused into one native call)
        inits += [numpy_helper.from_array(np.array(1, xt), "one"),
                  numpy_helper.from_array(np.array(2, xt), "two")]
        nodes = [helper.make_node("Add", ["x", "one"], ["a"]),
                 helper.make_node("Pow", ["a", "e"], ["p"]),
                 helper.make_node("Mul", ["p", "two"], ["y"])]
    else:
        nodes = [helper.make_node("Pow", ["x", "e"], ["y"])]
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info("y", _TYPES[xt], None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def _bases(xt: type, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(xt).kind == "i":
        pool = np.array([0, 1, -1, 3, -7, 1290, 46340, 46341, 65536, -65536, 2097152,
                         3037000500, 2**31 - 1, -2**31], np.int64)
        return rng.choice(pool, shape).astype(xt)      # wraps the int64 ones for int32
    return (rng.standard_normal(shape) * 7).astype(xt)


def _bits(v: np.ndarray) -> np.ndarray:
    return v.view(np.int32 if v.dtype == np.float32 else np.int64) if v.dtype.kind == "f" \
        else v


@settings(max_examples=60, deadline=None, derandomize=True)
@given(xt=st.sampled_from(sorted(_TYPES, key=str)),
       yt=st.sampled_from(sorted(_TYPES, key=str)),
       shapes=st.sampled_from(_SHAPES), constant=st.booleans(), chain=st.booleans(),
       values=st.lists(st.sampled_from([2, 3, 2, 3, 0, 1, 5, -1]), min_size=6, max_size=6),
       seed=st.integers(0, 2**16))
def test_pow_by_2_and_3_as_onnxruntime(xt, yt, shapes, constant, chain, values, seed):
    x_shape, y_shape = shapes
    size = int(np.prod(y_shape, dtype=np.int64))
    e = np.array(values[:size], yt).reshape(y_shape)
    model = _model(xt, yt, e if constant else None, x_shape, y_shape, chain)
    x = _bases(xt, x_shape, seed)
    feeds = {"x": x} if constant else {"x": x, "e": e}
    theirs = onnxruntime_run(model, feeds)[0]
    for backend in ("reference", "native"):
        ours = Session(model, backend=backend).run(dict(feeds))["y"]
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_array_equal(_bits(ours), _bits(theirs), err_msg=backend)


@pytest.mark.parametrize(("shape0", "shape1", "which"), [
    ((6,), (), 1), ((), (6,), 0), ((), (), 0), ((1,), (1,), 0), ((6,), (1,), 1),
    ((4, 1), (1,), 0), ((4, 1), (), 0), ((2, 3), (2, 1), 1), ((3,), (1, 1), 1),
    ((1, 1), (1, 1), 0), ((2, 3), (2, 3), None), ((3, 1), (3, 2), 0), ((2, 1, 3), (2, 1, 1), 1),
    ((5, 1, 1), (1, 1), 0), ((1, 5), (5, 5), None)])
def test_scalar_operand(shape0, shape1, which):
    assert scalar_operand(shape0, shape1) == which


def test_int32_square_wraps_and_one_element_base_is_pow():
    """65536 ** 2 by a one-value exponent: 0 (the product wraps); a one-element base by a
    one-element exponent: std::pow's 2^32 cast to int32, the lowest value."""
    e = np.array([2], np.int64)
    for x, want in ((np.array([65536, 3], np.int32), [0, 9]),
                    (np.array([65536], np.int32), [-2**31])):
        model = _model(np.int32, np.int64, e, x.shape, e.shape, chain=False)
        assert onnxruntime_run(model, {"x": x})[0].tolist() == want
        for backend in ("reference", "native"):
            assert Session(model, backend=backend).run({"x": x})["y"].tolist() == want
