"""ONNX Runtime's double QDQ pair removal mirrored at load (lowp.runtime.ort_double_qdq):
Q1 -> DQ1 [-> Identity | Cast to float | Dropout] -> Q2 -> DQ2 runs as one pair with the
merged range, as in ONNX Runtime, and the file's double rounding is what ONNX Runtime does
not compute."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, ort_double_qdq


def _chain(s1: float, z1: int, s2: float, z2: int, identity: bool | str,
           signed: bool = False, middle_out: bool = False,
           zt: type | None = None) -> onnx.ModelProto:
    """`identity`: False, True (an Identity between DQ1 and Q2), "Cast" (a Cast to float,
    the type DQ1 already gives) or "Dropout"; `middle_out` lists that node's output as a
    graph output; `zt` the zero points' type (int8 or uint8 by `signed` if None)."""
    zt = zt or (np.int8 if signed else np.uint8)
    inits = [numpy_helper.from_array(np.array(s1, np.float32), "s1"),
             numpy_helper.from_array(np.array(z1, zt), "z1"),
             numpy_helper.from_array(np.array(s2, np.float32), "s2"),
             numpy_helper.from_array(np.array(z2, zt), "z2")]
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "s1", "z1"], ["q1"]),
             helper.make_node("DequantizeLinear", ["q1", "s1", "z1"], ["d1"])]
    mid = "d1"
    if identity == "Cast":
        nodes.append(helper.make_node("Cast", ["d1"], ["i"], to=TensorProto.FLOAT))
        mid = "i"
    elif identity == "Dropout":
        nodes.append(helper.make_node("Dropout", ["d1"], ["i"]))
        mid = "i"
    elif identity:
        nodes.append(helper.make_node("Identity", ["d1"], ["i"]))
        mid = "i"
    nodes += [helper.make_node("QuantizeLinear", [mid, "s2", "z2"], ["q2"]),
              helper.make_node("DequantizeLinear", ["q2", "s2", "z2"], ["d2"]),
              helper.make_node("Sigmoid", ["d2"], ["y"])]
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 256])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 256])]
                              + ([helper.make_tensor_value_info("i", TensorProto.FLOAT, [4, 256])]
                                 if middle_out else []),
                              inits)
    opset = 21 if np.dtype(zt).itemsize == 2 else 13     # 16-bit QuantizeLinear: opset 21
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10 if opset == 21 else 8
    onnx.checker.check_model(model)
    return model


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(["y"], {"x": x})[0]


@pytest.mark.parametrize("identity", [False, True, "Cast", "Dropout"])
@pytest.mark.parametrize("params", [(0.02, 0, 0.03, 10), (0.031, 3, 0.017, 0),
                                    (0.05, 0, 0.05, 0), (0.01, -20, 0.013, 5)])
def test_equal_to_onnxruntime_on_double_pairs(identity: bool | str, params: tuple) -> None:
    signed = params[1] < 0
    model = _chain(*params, identity=identity, signed=signed)
    x = np.random.default_rng(0).uniform(-1, 6, (4, 256)).astype(np.float32)
    np.testing.assert_array_equal(Session(model).run({"x": x})["y"], _ort(model, x))


@pytest.mark.parametrize(("zt", "params"), [
    (np.uint16, (1.5259022e-05, 0, 1.3430613e-05, 0)),     # ppocrv6_rec_small's Softmax
    (np.uint16, (2.1e-4, 1000, 3.3e-4, 30000)), (np.int16, (1.1e-4, -300, 0.7e-4, 20))])
def test_sixteen_bit_double_pairs_equal_onnxruntime(zt: type, params: tuple) -> None:
    """ONNX Runtime merges 16-bit pairs too (ppocrv6_rec_small under its quantizer with
    uint16 activations: a Softmax -> Q -> DQ -> Identity -> Q -> DQ chain, up to 7182
    units apart before)."""
    model = _chain(*params, identity=True, zt=zt)
    x = np.random.default_rng(1).uniform(-1, 6, (4, 256)).astype(np.float32)
    assert sum(n.op_type == "QuantizeLinear" for n in ort_double_qdq.apply(model).graph.node) == 1
    np.testing.assert_array_equal(Session(model).run({"x": x})["y"], _ort(model, x))


@pytest.mark.parametrize("identity", [True, "Cast", "Dropout"])
def test_a_middle_node_that_is_a_graph_output_stays(identity: bool | str) -> None:
    """ONNX Runtime removes neither node then: no chain, the file's double rounding."""
    model = _chain(0.02, 0, 0.03, 10, identity=identity, middle_out=True)
    x = np.random.default_rng(0).uniform(-1, 6, (4, 256)).astype(np.float32)
    assert ort_double_qdq.apply(model) is model
    np.testing.assert_array_equal(Session(model).run({"x": x})["y"], _ort(model, x))


def test_a_cast_to_another_type_stays() -> None:
    model = _chain(0.02, 0, 0.03, 10, identity="Cast")
    model.graph.node[3].attribute[0].i = TensorProto.DOUBLE
    assert ort_double_qdq.apply(model) is model


@pytest.mark.parametrize("mode", ["mask", "training"])
def test_a_dropout_with_its_mask_read_or_a_training_mode_stays(mode: str) -> None:
    model = _chain(0.02, 0, 0.03, 10, identity="Dropout")
    drop = model.graph.node[3]
    if mode == "mask":
        drop.output.append("mask")
        model.graph.output.append(helper.make_tensor_value_info("mask", TensorProto.BOOL,
                                                                [4, 256]))
    else:
        model.graph.initializer.append(numpy_helper.from_array(np.array(True), "train"))
        drop.input.extend(["", "train"])
    assert ort_double_qdq.apply(model) is model
    if mode == "mask":      # (a training Dropout draws its own mask in each engine)
        x = np.random.default_rng(0).uniform(-1, 6, (4, 256)).astype(np.float32)
        np.testing.assert_array_equal(Session(model).run({"x": x})["y"], _ort(model, x))


def _dropout_with_ratio(ratio: str) -> onnx.ModelProto:
    """The Dropout chain with a ratio input: "dequantized" (a Constant quantized and
    dequantized, as ONNX Runtime's quantize_static writes a Dropout's ratio), "computed"
    (a ReduceMin of the Relu before Q1: 0), "constant" (a Constant node), "folded" (a Mul
    of a Constant node and an initializer, which ONNX Runtime's ConstantFolding computes
    first) or "initializer"."""
    model = _chain(0.02, 0, 0.03, 10, identity="Dropout")
    nodes = list(model.graph.node)
    drop = nodes[3]
    value = helper.make_tensor("ratio_value", TensorProto.FLOAT, [], [0.1])
    extra: list[onnx.NodeProto] = []
    if ratio == "initializer":
        model.graph.initializer.append(numpy_helper.from_array(np.array(0.1, np.float32),
                                                               "ratio"))
    elif ratio == "constant":
        extra = [helper.make_node("Constant", [], ["ratio"], value=value)]
    elif ratio == "folded":
        model.graph.initializer.append(numpy_helper.from_array(np.array(1, np.float32), "one"))
        extra = [helper.make_node("Constant", [], ["ratio_c"], value=value),
                 helper.make_node("Mul", ["ratio_c", "one"], ["ratio"])]
    elif ratio == "computed":
        extra = [helper.make_node("ReduceMin", ["r"], ["ratio"], keepdims=0)]
    else:
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array(0.0004, np.float32), "rs"),
            numpy_helper.from_array(np.array(0, np.uint8), "rz")])
        extra = [helper.make_node("Constant", [], ["ratio_f"], value=value),
                 helper.make_node("QuantizeLinear", ["ratio_f", "rs", "rz"], ["ratio_q"]),
                 helper.make_node("DequantizeLinear", ["ratio_q", "rs", "rz"], ["ratio"])]
    drop.input.append("ratio")
    del model.graph.node[:]
    model.graph.node.extend(nodes[:1] + extra + nodes[1:])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("ratio", ["dequantized", "computed", "constant", "folded",
                                   "initializer"])
def test_a_dropout_whose_ratio_a_node_computes_stays(ratio: str, backend: str,
                                                     threads: int) -> None:
    """ONNX Runtime removes a node with at most one input edge: a Dropout whose ratio comes
    from a DequantizeLinear (ONNX Runtime's QDQ file of an opset 7 LeakyRelu -> Dropout ->
    Relu: 2 of 2 outputs apart before) or any other node stays, and the file's two pairs
    round twice; a Constant node's, a constant-folded or an initializer's ratio does not
    keep it."""
    model = _dropout_with_ratio(ratio)
    removed = ratio in ("constant", "folded", "initializer")
    merged = ort_double_qdq.apply(model)
    assert [n.op_type for n in merged.graph.node].count("Dropout") == (0 if removed else 1)
    x = np.random.default_rng(0).uniform(-1, 6, (4, 256)).astype(np.float32)
    got = Session(model, backend=backend, threads=threads).run({"x": x})["y"]
    np.testing.assert_array_equal(got, _ort(model, x))


def test_the_files_double_rounding_is_not_what_onnxruntime_runs() -> None:
    """Without the mirror the two differ: the test above checks something."""
    model = _chain(0.02, 0, 0.03, 10, identity=True)
    x = np.random.default_rng(0).uniform(-1, 6, (4, 256)).astype(np.float32)
    merged = ort_double_qdq.apply(model)
    assert [n.op_type for n in merged.graph.node].count("QuantizeLinear") == 1
    twice = np.clip(np.rint(np.maximum(x, 0) / np.float32(0.02)), 0, 255) * np.float32(0.02)
    twice = (np.clip(np.rint(twice.astype(np.float32) / np.float32(0.03)) + 10, 0, 255)
             - 10) * np.float32(0.03)
    y_file = 1 / (1 + np.exp(-twice.astype(np.float64)))
    assert np.abs(y_file - _ort(model, x)).max() > 1e-3


def test_models_without_chains_are_returned_as_they_are() -> None:
    model = _chain(0.02, 0, 0.03, 10, identity=False)
    del model.graph.node[2:4]                 # Q1 -> DQ1 -> ... no second pair
    model.graph.node[1].output[0] = "q1"
    model.graph.node[-2].input[0] = "q1"
    assert ort_double_qdq.apply(model) is model


def _noop_chain(op: str, const: np.ndarray, const_first: bool) -> onnx.ModelProto:
    """Q1 -> DQ1 -> `op` with the constant `const` -> Q2 -> DQ2 (the pairs differ)."""
    model = _chain(0.02, 0, 0.03, 10, identity=True)
    model.graph.initializer.append(numpy_helper.from_array(const, "c"))
    middle = model.graph.node[3]
    middle.op_type = op
    middle.input[:] = ["c", "d1"] if const_first else ["d1", "c"]
    return model


@pytest.mark.parametrize(("op", "const", "const_first", "dropped"), [
    ("Add", np.array(0, np.float32), False, True),
    ("Add", np.array(0, np.float32), True, True),
    ("Add", np.array(-0.0, np.float32), False, True),
    ("Add", np.zeros(1, np.float32), False, True),
    ("Add", np.zeros((1, 1), np.float32), False, True),
    ("Add", np.zeros((1, 1, 1), np.float32), False, False),   # a rank above the data's
    ("Add", np.zeros(256, np.float32), False, False),         # more than one element
    ("Add", np.array(1e-30, np.float32), False, False),
    ("Sub", np.array(0, np.float32), False, True),
    ("Sub", np.array(0, np.float32), True, False),
    ("Mul", np.array(1, np.float32), False, True),
    ("Mul", np.array(1, np.float32), True, True),
    ("Mul", np.ones(256, np.float32), False, False),
    ("Div", np.array(1, np.float32), False, True),
    ("Div", np.array(1, np.float32), True, False),
])
def test_noop_arithmetic_opens_a_chain_as_in_onnxruntime(op: str, const: np.ndarray,
                                                          const_first: bool,
                                                          dropped: bool) -> None:
    """ONNX Runtime's NoopElimination (which cases it drops: read from its optimized
    models) runs before the pair removal."""
    model = _noop_chain(op, const, const_first)
    assert (ort_double_qdq.apply(model) is not model) == dropped
    x = np.random.default_rng(0).uniform(-1, 6, (4, 256)).astype(np.float32)
    with np.errstate(divide="ignore"):      # 1 / 0 in the Div with the constant first
        got = Session(model).run({"x": x})["y"]
    np.testing.assert_array_equal(got, _ort(model, x))


@pytest.mark.parametrize(("target", "dims", "dropped"), [
    ([4, 256], (4, 256), True), ([1, 256], (4, 256), True), ([256], (4, 256), True),
    ([1], (4, 256), True), ([4, 1], (4, 256), True),
    ([1, 1, 256], (4, 256), False), ([2, 4, 256], (4, 256), False),   # a rank above
    ([1, 256], ("n", "c"), False), ([1, 1], ("n", "c"), True), ([4, 256], ("n", 256), False),
])
def test_an_expand_that_changes_nothing_opens_a_chain_as_in_onnxruntime(
        target: list[int], dims: tuple, dropped: bool) -> None:
    """ONNX Runtime's ExpandElimination (cases read from its optimized models): the target,
    aligned from the last axis, is 1 or a known equal dimension, and no longer."""
    model = _chain(0.02, 0, 0.03, 10, identity=True)
    model.graph.initializer.append(numpy_helper.from_array(np.array(target, np.int64), "t"))
    middle = model.graph.node[3]
    middle.op_type = "Expand"
    middle.input.append("t")
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                list(dims)))
    rank = max(len(target), len(dims))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, [f"d{i}" for i in range(rank)]))
    assert (ort_double_qdq.apply(model) is not model) == dropped
    x = np.random.default_rng(0).uniform(-1, 6, (4, 256)).astype(np.float32)
    np.testing.assert_array_equal(Session(model).run({"x": x})["y"], _ort(model, x))
