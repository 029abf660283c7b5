"""Quantized Softmax (O17) and ONNX Runtime's float32 tanh/logistic, against ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp import Session, ort_math
from lowp.ops import softmax
from lowp.ops.softmax import row_sums

ONNX_DTYPE = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 4
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _qparams(dtype: np.dtype, xs: float, xz: int, ys: float, yz: int) -> list[onnx.TensorProto]:
    t = ONNX_DTYPE[dtype]
    return [helper.make_tensor("xs", TensorProto.FLOAT, [], [xs]),
            helper.make_tensor("xz", t, [], [xz]),
            helper.make_tensor("ys", TensorProto.FLOAT, [], [ys]),
            helper.make_tensor("yz", t, [], [yz])]


def qlinear_softmax_model(shape: tuple[int, ...], axis: int, opset: int, dtype: np.dtype,
                          xs: float, xz: int, ys: float, yz: int) -> onnx.ModelProto:
    """ONNX Runtime's com.microsoft QLinearSoftmax, alone."""
    t = ONNX_DTYPE[dtype]
    node = helper.make_node("QLinearSoftmax", ["x", "xs", "xz", "ys", "yz"], ["y"],
                            domain="com.microsoft", axis=axis, opset=opset)
    graph = helper.make_graph([node], "qsoftmax",
                              [helper.make_tensor_value_info("x", t, list(shape))],
                              [helper.make_tensor_value_info("y", t, list(shape))],
                              _qparams(dtype, xs, xz, ys, yz))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                   helper.make_opsetid("com.microsoft", 1)])


def qdq_model(op: str, shape: tuple[int, ...], dtype: np.dtype, xs: float, xz: int, ys: float,
              yz: int, opset: int = 13, **attrs: int) -> onnx.ModelProto:
    """DequantizeLinear -> op -> QuantizeLinear."""
    t = ONNX_DTYPE[dtype]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node(op, ["xf"], ["yf"], **attrs),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "qdq",
                              [helper.make_tensor_value_info("x", t, list(shape))],
                              [helper.make_tensor_value_info("y", t, list(shape))],
                              _qparams(dtype, xs, xz, ys, yz))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


dtypes = st.sampled_from([np.dtype(np.uint8), np.dtype(np.int8)])
# the output scales quantizers write for softmax (1/255, 1/256) and arbitrary ones
y_scales = st.sampled_from([1 / 255, 1 / 256]) | st.floats(0.002, 0.05)


@st.composite
def softmax_cases(draw: st.DrawFn) -> tuple:
    dtype = draw(dtypes)
    rank = draw(st.integers(1, 4))
    # short rows, rows around 16 and 32, long rows
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=rank - 1, max_size=rank - 1)))
    axis = draw(st.integers(-rank, rank - 1))
    opset = draw(st.sampled_from([11, 12, 13, 17]))
    length = draw(st.integers(1, 5) | st.integers(14, 40) | st.integers(60, 300))
    shape = list(shape)
    shape.insert(axis % rank, length)
    info = np.iinfo(dtype)
    seed = draw(st.integers(0, 2**31 - 1))
    x = np.random.default_rng(seed).integers(info.min, info.max + 1, size=shape).astype(dtype)
    xs = draw(st.floats(0.005, 2.0))
    xz = draw(st.integers(info.min, info.max))
    ys = draw(y_scales)
    yz = draw(st.sampled_from([int(info.min), 0]) | st.integers(info.min, info.max))
    return x, axis, opset, xs, xz, ys, yz


@settings(max_examples=60, deadline=None)
@given(case=softmax_cases())
def test_reference_equals_ort_qlinear_softmax(case: tuple) -> None:
    x, axis, opset, xs, xz, ys, yz = case
    model = qlinear_softmax_model(x.shape, axis, opset, x.dtype, xs, xz, ys, yz)
    expected = _ort(model, {"x": x})
    got = softmax(x, axis=axis, x_scale=xs, y_scale=ys, y_zero_point=yz,
                  coerce_2d=opset < 13)
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=30, deadline=None)
@given(case=softmax_cases())
def test_qdq_group_runs_as_ort_fuses_it(case: tuple) -> None:
    """lowp's engine on DQ -> Softmax -> Q equals ONNX Runtime on the same file."""
    x, axis, opset, xs, xz, ys, yz = case
    model = qdq_model("Softmax", x.shape, x.dtype, xs, xz, ys, yz, opset=opset, axis=axis)
    sess = Session(model)
    assert [s.kind for s in sess.steps] == ["int"]
    np.testing.assert_array_equal(sess.run({"x": x})["y"], _ort(model, {"x": x}))


def test_floor_of_the_inverse_output_scale_is_kept() -> None:
    """s_y = 1/255: a one-hot row reads 254 (ONNX Runtime's floor(1 / s_y)), not 255."""
    x = np.array([[255, 0, 0, 0]], np.uint8)
    y = softmax(x, axis=1, x_scale=0.5, y_scale=np.float32(1 / 255), y_zero_point=0)
    assert y.tolist() == [[254, 0, 0, 0]]


def test_row_sums_add_in_order() -> None:
    # float32 sums that depend on the order: one large value among small ones
    e = np.full((1, 70), np.float32(1e-8), np.float32)
    e[0, 5] = np.float32(1.0)
    total = np.float32(0)
    for v in e[0]:
        total = np.float32(total + v)
    assert row_sums(e)[0, 0] == total


# rows of real transformers' attention (a word segmenter, a ViT) where a float64 logarithm in
# the table, a lane-wise sum or another order of the final product and division lands on the
# other side of a half-way point
NEAR_TIES = np.load(Path(__file__).parent / "data" / "softmax_near_ties.npz")


@pytest.mark.parametrize("k", range(3))
def test_near_ties_of_real_models(k: int) -> None:
    x = NEAR_TIES[f"row{k}"][None, :]
    x_scale = float(NEAR_TIES[f"scale{k}"])
    ys = float(np.float32(1 / 255))
    model = qlinear_softmax_model(x.shape, -1, 13, x.dtype, x_scale, 0, ys, 0)
    got = softmax(x, axis=-1, x_scale=x_scale, y_scale=ys, y_zero_point=0)
    np.testing.assert_array_equal(got, _ort(model, {"x": x}))


def test_empty_and_rejected_inputs() -> None:
    x = np.zeros((0, 4), np.uint8)
    assert softmax(x, axis=1, x_scale=0.1, y_scale=1 / 256, y_zero_point=0).shape == (0, 4)
    with pytest.raises(ValueError, match="8-bit"):
        softmax(np.zeros((2, 2), np.int16), axis=1, x_scale=0.1, y_scale=1 / 256,
                y_zero_point=0)


@pytest.mark.parametrize(("op", "fn"), [("Tanh", ort_math.tanh), ("Sigmoid", ort_math.logistic)])
def test_ort_math_equals_ort_kernels(op: str, fn: object) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 6, 50_000), np.linspace(-25, 25, 20_001),
                        [np.nan, np.inf, -np.inf, 0.0, -0.0, 17.844]]).astype(np.float32)
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], op,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    expected = _ort(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
                    {"x": x})
    got = fn(x)  # type: ignore[operator]
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["Sigmoid", "Tanh"]), dtype=dtypes,
       xs=st.floats(0.003, 0.5), ys=st.floats(1 / 300, 1 / 100), data=st.data())
def test_activation_tables_equal_ort(op: str, dtype: np.dtype, xs: float, ys: float,
                                     data: st.DataObject) -> None:
    """Sigmoid (ONNX Runtime's QLinearSigmoid table) and Tanh (run unfused there)."""
    info = np.iinfo(dtype)
    xz = data.draw(st.integers(info.min, info.max))
    yz = data.draw(st.integers(info.min, info.max))
    x = np.arange(info.min, info.max + 1).astype(dtype)
    model = qdq_model(op, x.shape, dtype, xs, xz, ys, yz)
    np.testing.assert_array_equal(Session(model).run({"x": x})["y"], _ort(model, {"x": x}))


def test_two_maxima_on_a_half_way_point() -> None:
    # found by the hypothesis test above: e * floor(1 / s_y) / S is exactly 249.5 for the
    # two maxima, which round to even (250) only when the quotient is formed in float64
    row = np.array([162, 191, 99, 97, 40, 247, 85, 32, 42, 198, 108, 57, 138, 228, 141, 187,
                    48, 247], np.uint8)[None, :]
    model = qlinear_softmax_model(row.shape, -1, 13, row.dtype, 2.0, 0, 0.002, 0)
    got = softmax(row, axis=-1, x_scale=2.0, y_scale=0.002, y_zero_point=0)
    np.testing.assert_array_equal(got, _ort(model, {"x": row}))
    assert got[0, 5] == got[0, 17] == 250
