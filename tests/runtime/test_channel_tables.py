"""A quantized Add or Mul with a per-channel constant (an unfolded BatchNormalization after a
convolution) runs as one 256-entry table per channel on channels-last data, and the Mul then
Add as one composed table: bit for bit what ONNX Runtime computes, on every shape where the
table holds and on the shapes that run the steps themselves (spatial size 1, where ONNX
Runtime's broadcasting hands its kernel no scalar span (O10a))."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session
from lowp.runtime.backends import native_available

from .ort_agreement import onnxruntime_run

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")


def _qdq(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], name: str, scale: float,
         zero: int, dtype: int) -> str:
    inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
              helper.make_tensor(f"{name}_z", dtype, [], [zero])]
    nodes += [helper.make_node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
              helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"],
                               [f"{name}_dq"])]
    return f"{name}_dq"


def _model(rank: int, channels: int, dtype: int, const_rank: int, const_first: bool,
           seed: int) -> onnx.ModelProto:
    """x -> Q/DQ -> Conv -> Q/DQ -> Mul(per-channel) -> Q/DQ -> Add(per-channel) -> Q/DQ ->
    Relu -> Q/DQ -> y."""
    rng = np.random.default_rng(seed)
    zero = 128 if dtype == TensorProto.UINT8 else 0
    spatial = rank - 2
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    x = _qdq(nodes, inits, "x", 0.05, zero, dtype)
    w = rng.integers(-100, 100, (channels, 3) + (3,) * spatial).astype(np.int8)
    inits += [numpy_helper.from_array(w, "w_q"),
              numpy_helper.from_array(np.array(0.01, np.float32), "w_s"),
              numpy_helper.from_array(np.array(0, np.int8), "w_z")]
    nodes += [helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"]),
              helper.make_node("Conv", [x, "w"], ["conv"], pads=[1, 1] * spatial)]
    h = _qdq(nodes, inits, "conv", 0.2, zero, dtype)
    # the constants' shape: (1, C, 1, ...) of the data's rank, or (C, 1, ...) of one less
    shape = (1, channels) + (1,) * spatial if const_rank == rank else (channels,) + (1,) * spatial
    for op, lo, hi in (("Mul", 0.2, 3.0), ("Add", -2.0, 2.0)):
        c = rng.uniform(lo, hi, shape).astype(np.float32)
        inits.append(numpy_helper.from_array(c, f"{op}_c"))
        cq = _qdq(nodes, inits, f"{op}_c", float(np.abs(c).max()) / 100, zero, dtype)
        nodes.append(helper.make_node(op, [cq, h] if const_first else [h, cq], [op]))
        h = _qdq(nodes, inits, op, 0.15, zero, dtype)
    nodes.append(helper.make_node("Relu", [h], ["relu"]))
    y = _qdq(nodes, inits, "relu", 0.1, zero, dtype)
    nodes.append(helper.make_node("Identity", [y], ["y"]))
    graph = helper.make_graph(
        nodes, "channel_tables",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3] + [None] * spatial)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       ["n", channels] + [None] * spatial)],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("dtype", [TensorProto.UINT8, TensorProto.INT8])
@pytest.mark.parametrize(("rank", "const_rank"), [(4, 4), (4, 3), (3, 3), (3, 2)])
@pytest.mark.parametrize("const_first", [False, True])
def test_per_channel_add_and_mul_equal_onnxruntime(dtype, rank, const_rank, const_first):
    model = _model(rank, 16, dtype, const_rank, const_first, seed=rank + const_rank)
    rng = np.random.default_rng(0)
    # spatial size above 1 (the table), exactly 1 (the steps themselves), and an empty batch
    for shape in [(2, 3) + (5,) * (rank - 2), (2, 3) + (1,) * (rank - 2),
                  (0, 3) + (4,) * (rank - 2)]:
        x = rng.normal(0, 3, shape).astype(np.float32)
        theirs = onnxruntime_run(model, {"x": x})[0] if shape[0] else None
        for backend in ("reference", "native"):
            session = Session(model, backend=backend)
            for _ in range(3):          # recorded twice, then replayed
                ours = session.run({"x": x})["y"]
                if theirs is None:
                    assert ours.shape[0] == 0
                else:
                    np.testing.assert_array_equal(ours, theirs, err_msg=f"{backend} {shape}")


def test_mul_then_add_is_one_per_channel_table():
    model = _model(4, 8, TensorProto.UINT8, 4, False, seed=1)
    steps = Session(model).steps
    assert [s.op_type for s in steps if s.kind == "int"] == ["Conv", "Mul+Add+Relu"]
    assert steps[2].channel_table is not None and steps[2].channel_table.shape == (8, 256)


def _last_axis_model(rank: int, channels: int, dtype: int, const_first: bool, seed: int
                     ) -> onnx.ModelProto:
    """x (..., C) -> Q/DQ -> Mul((C,)) -> Q/DQ -> Add((C,)) -> Q/DQ -> Relu -> Q/DQ -> y: a
    batch norm written out on (time, frequency, channels) data (madmom_chords_cnn)."""
    rng = np.random.default_rng(seed)
    zero = 128 if dtype == TensorProto.UINT8 else 0
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    h = _qdq(nodes, inits, "x", 0.05, zero, dtype)
    for op, lo, hi in (("Mul", -3.0, 3.0), ("Add", -2.0, 2.0)):
        c = rng.uniform(lo, hi, channels).astype(np.float32)
        inits.append(numpy_helper.from_array(c, f"{op}_c"))
        cq = _qdq(nodes, inits, f"{op}_c", float(np.abs(c).max()) / 100, zero, dtype)
        nodes.append(helper.make_node(op, [cq, h] if const_first else [h, cq], [op]))
        h = _qdq(nodes, inits, op, 0.15, zero, dtype)
    nodes.append(helper.make_node("Relu", [h], ["relu"]))
    y = _qdq(nodes, inits, "relu", 0.1, zero, dtype)
    nodes.append(helper.make_node("Identity", [y], ["y"]))
    graph = helper.make_graph(
        nodes, "last_axis_tables",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None] * rank)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * rank)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("dtype", [TensorProto.UINT8, TensorProto.INT8])
@pytest.mark.parametrize("const_first", [False, True])
def test_last_axis_add_and_mul_are_one_table_equal_to_onnxruntime(dtype, const_first):
    """A (C,) constant broadcast over the last axis: one table per position of that axis,
    looked up along the last axis in memory of channels-first data (the Mul, Add and Relu
    composed); every rank from 2 to 4, one row and several: ONNX Runtime's values."""
    rng = np.random.default_rng(1)
    for shape in [(7, 12), (1, 12), (5, 9, 12), (1, 1, 12), (1, 4, 3, 12), (3, 12, 12)]:
        model = _last_axis_model(len(shape), 12, dtype, const_first, seed=3)
        steps = Session(model).steps
        tables = [s for s in steps if s.channel_table is not None]
        if dtype == TensorProto.UINT8:  # (int8 Mul and Add of these stay float here)
            assert [s.op_type for s in tables] == ["Mul+Add+Relu"]
            assert tables[0].channel_table_last
        x = rng.normal(0, 3, shape).astype(np.float32)
        theirs = onnxruntime_run(model, {"x": x})[0]
        for backend in ("reference", "native"):
            session = Session(model, backend=backend)
            for _ in range(3):          # recorded twice, then replayed
                np.testing.assert_array_equal(session.run({"x": x})["y"], theirs,
                                              err_msg=f"{backend} {shape}")
