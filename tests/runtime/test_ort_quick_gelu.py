"""ONNX Runtime's QuickGeluFusion of x * Sigmoid(x) (lowp.runtime.ort_quick_gelu, (O322)):
its QuickGelu keeps the logistic at most 1, so near x = 18, where MLAS's Sigmoid gives
1 + 2^-23, the fused SiLU is x and the unfused one a unit above (slider_yolov8_seg's first
SiLU). lowp's Session gives ONNX Runtime's bits on both backends, 1 and 2 threads, plain,
recorded and replayed runs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp import Session
from lowp.runtime import ort_quick_gelu
from lowp.runtime.backends import native_available

from .ort_agreement import onnxruntime_run

F32 = TensorProto.FLOAT
BACKENDS = ["reference", "native"] if native_available() else ["reference"]


def _silu(order: str = "xs", opset: int = 19, extra_reader: bool = False,
          conv: bool = False) -> onnx.ModelProto:
    """x (N, 4, 5, 6) -> [Conv 4 -> 4, 3x3] -> Sigmoid -> Mul(x, s) (or Mul(s, x)) -> y;
    `extra_reader`: s is also an output (no fusion then)."""
    inits = []
    nodes = []
    x = "x"
    if conv:
        w = np.random.default_rng(5).standard_normal((4, 4, 3, 3)).astype(np.float32)
        inits += [numpy_helper.from_array(w, "w"),
                  numpy_helper.from_array(np.full(4, 9.0, np.float32), "b")]
        nodes.append(helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]))
        x = "c"
    nodes.append(helper.make_node("Sigmoid", [x], ["s"]))
    nodes.append(helper.make_node("Mul", [x, "s"] if order == "xs" else ["s", x], ["y"]))
    outputs = [helper.make_tensor_value_info("y", F32, None)]
    if extra_reader:
        outputs.append(helper.make_tensor_value_info("s", F32, None))
    g = helper.make_graph(nodes, "silu", [helper.make_tensor_value_info("x", F32, ["N", 4, 5, 6])],
                          outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _near_eighteen(n: int) -> np.ndarray:
    """n x 120 float32 values: every 97th float of [17, 18.5] (the 20 where MLAS's logistic
    exceeds 1 among them, x = 17.959602 first), quiet NaNs with payloads, +-inf, +-0."""
    lo, hi = np.float32(17.0).view(np.int32), np.float32(18.5).view(np.int32)
    dense = np.arange(lo, hi, dtype=np.int32).view(np.float32)
    special = np.array([17.959602, 17.959604, -17.959602, np.inf, -np.inf, 0.0, -0.0, 1e-40],
                       np.float32)
    nans = np.array([0x7FC00001, 0xFFC12345, 0x7FC00000], np.uint32).view(np.float32)
    picks = np.concatenate([special, nans, dense[::97]])
    return np.resize(picks, n * 120).reshape(n, 4, 5, 6)


def _bits_equal(model: onnx.ModelProto, x: np.ndarray) -> None:
    for threads in (1, 2):
        want = onnxruntime_run(model, {"x": x}, threads)
        names = [o.name for o in model.graph.output]
        for backend in BACKENDS:
            session = Session(model, backend=backend, threads=threads)
            for run in range(3):                 # plain, recorded, replayed
                got = session.run({"x": x})
                for name, w in zip(names, want, strict=True):
                    assert got[name].dtype == w.dtype and got[name].shape == w.shape
                    diff = np.flatnonzero(got[name].view(np.uint32) != w.view(np.uint32))
                    assert diff.size == 0, (backend, threads, run, name,
                                            x.reshape(-1)[diff[:4]], got[name].reshape(-1)[
                                                diff[:4]], w.reshape(-1)[diff[:4]])


def test_all_float32_between_17_and_18_5_are_silu_of_onnxruntime() -> None:
    """Every float32 in [17, 18.5] (393,216 values) through a bare SiLU: ONNX Runtime's
    QuickGelu bits (20 differed before, by one unit)."""
    lo, hi = np.float32(17.0).view(np.int32), np.float32(18.5).view(np.int32)
    x = np.arange(lo, hi, dtype=np.int32).view(np.float32)
    x = x[: x.size // 120 * 120].reshape(-1, 4, 5, 6)
    _bits_equal(_silu(), x)


@pytest.mark.parametrize("order", ["xs", "sx"])
@pytest.mark.parametrize("opset", [19, 13, 10])
def test_silu_near_eighteen_nans_and_infinities(order: str, opset: int) -> None:
    _bits_equal(_silu(order, opset), _near_eighteen(3))


def test_conv_silu_is_onnxruntime_nchwc_quick_gelu() -> None:
    """A Conv (biased to about 9, its outputs reach 18) then a SiLU: ONNX Runtime's NCHWc
    Conv and QuickGelu."""
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 6)).astype(np.float32) * 4
    _bits_equal(_silu(conv=True), x)


def test_a_sigmoid_read_twice_is_not_fused() -> None:
    """The Sigmoid's output is a graph output too: ONNX Runtime keeps Sigmoid and Mul (the
    one unit above x stays), and so does lowp."""
    model = _silu(extra_reader=True)
    assert ort_quick_gelu.apply(model) is model
    _bits_equal(model, _near_eighteen(2))


def test_the_rewrite_puts_a_clip_between_sigmoid_and_mul() -> None:
    fused = ort_quick_gelu.apply(_silu("sx"))
    ops = [n.op_type for n in fused.graph.node]
    assert ops == ["Sigmoid", "Clip", "Mul"]
    assert ort_quick_gelu.quick_gelu_clip(fused.graph.node[1])
    assert list(fused.graph.node[2].input) == ["x", fused.graph.node[1].output[0]]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-40, 40, width=32), min_size=120, max_size=120),
       st.integers(0, 2**31 - 1))
def test_random_values_against_onnxruntime(values: list[float], seed: int) -> None:
    x = np.asarray(values, np.float32).reshape(1, 4, 5, 6)
    rng = np.random.default_rng(seed)
    x.reshape(-1)[rng.integers(0, 120, 3)] = np.float32(17.959602)
    _bits_equal(_silu(), x)


def test_silu_inside_an_if_branch_and_the_top_graph() -> None:
    """ONNX Runtime fuses inside subgraphs too: a SiLU in an If's then-branch (reading the
    outer x) and one at the top level, each clamped, their bounds named apart."""
    then_nodes = [helper.make_node("Sigmoid", ["x"], ["ts"]),
                  helper.make_node("Mul", ["x", "ts"], ["tb"])]
    then_g = helper.make_graph(then_nodes, "then", [],
                               [helper.make_tensor_value_info("tb", F32, None)])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["eb"])], "else", [],
                               [helper.make_tensor_value_info("eb", F32, None)])
    nodes = [helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
             helper.make_node("Greater", ["m", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["b"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Sigmoid", ["b"], ["s"]),
             helper.make_node("Mul", ["s", "b"], ["y"])]
    g = helper.make_graph(nodes, "if_silu",
                          [helper.make_tensor_value_info("x", F32, ["N", 4, 5, 6])],
                          [helper.make_tensor_value_info("y", F32, None)],
                          [numpy_helper.from_array(np.float32(0.0), "zero")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    x = np.abs(_near_eighteen(2))
    _bits_equal(model, x)
