"""ONNX Runtime's ConvMulFusion and ConvAddFusion mirrored at load (lowp.runtime.ort_conv_scale):
a float Conv read only by a Mul or an Add of a per-channel constant runs as one Conv with the
constant folded into its weights and bias (found on captcha_crnn, whose float model writes
each BatchNormalization as a Mul and an Add: evals/corpus/repro/float_divergence.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, ort_conv_scale
from lowp.runtime.backends import native_available
from tests.runtime.ort_agreement import onnxruntime_run

BACKENDS = ["reference"] + (["native"] if native_available() else [])


def _model(ops: list[tuple[str, tuple[int, ...]]], *, bias: bool = True, opset: int = 13,
           c_in: int = 6, c_out: int = 8, k: int = 3, constant_first: bool = False,
           conv_out: bool = False, seed: int = 0
           ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x -> Conv -> op(., constant of shape) -> ... -> y for each (op, shape) of `ops`."""
    rng = np.random.default_rng(seed)
    f = np.float32
    inits = [numpy_helper.from_array(
        (rng.standard_normal((c_out, c_in, k, k)) * 0.3).astype(f), "w")]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_out).astype(f), "b"))
    nodes = [helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["t0"],
                              pads=[k // 2] * 4)]
    for i, (op, shape) in enumerate(ops):
        name = f"k{i}"
        inits.append(numpy_helper.from_array(rng.uniform(0.3, 2.5, shape).astype(f), name))
        ins = [name, f"t{i}"] if constant_first else [f"t{i}", name]
        out = "y" if i == len(ops) - 1 else f"t{i + 1}"
        nodes.append(helper.make_node(op, ins, [out]))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, 9, 9])]
    if conv_out:
        outputs.append(helper.make_tensor_value_info("t0", TensorProto.FLOAT,
                                                     [1, c_out, 9, 9]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, 9, 9])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    return model, {"x": rng.standard_normal((1, c_in, 9, 9)).astype(f)}


def _ort_ops(model: onnx.ModelProto) -> list[str]:
    """The operator types of ONNX Runtime's optimized graph (level 1, where the rules run)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "opt.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(path)
        ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(str(path)).graph.node]


CASES = {
    "mul_channel": [("Mul", (8, 1, 1))],
    "mul_1c11": [("Mul", (1, 8, 1, 1))],
    "mul_scalar": [("Mul", ())],
    "add_channel": [("Add", (8, 1, 1))],
    "add_1c11": [("Add", (1, 8, 1, 1))],
    "mul_then_add": [("Mul", (8, 1, 1)), ("Add", (8, 1, 1))],
    "add_then_mul": [("Add", (1, 8, 1, 1)), ("Mul", (1, 8, 1, 1))],
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("bias", [True, False])
def test_folded_conv_equals_onnxruntime(backend: str, case: str, bias: bool) -> None:
    model, feeds = _model(CASES[case], bias=bias)
    folded = ort_conv_scale.apply(model)
    assert [n.op_type for n in folded.graph.node] == ["Conv"] == _ort_ops(model)
    theirs = onnxruntime_run(model, feeds)[0]
    np.testing.assert_array_equal(Session(model, backend=backend).run(feeds)["y"], theirs)


@pytest.mark.parametrize("opset", [7, 14, 21, 22])
def test_versions_fold_as_onnxruntime(opset: int) -> None:
    # ONNX Runtime 1.32 takes Add and Mul of versions 7, 13 and 14, Conv 1, 11 and 22
    model, feeds = _model(CASES["mul_then_add"], opset=opset)
    assert [n.op_type for n in ort_conv_scale.apply(model).graph.node] == ["Conv"] == \
        _ort_ops(model)
    theirs = onnxruntime_run(model, feeds)[0]
    np.testing.assert_array_equal(Session(model).run(feeds)["y"], theirs)


@pytest.mark.parametrize("kw", [{"ops": [("Add", ())]}, {"ops": [("Mul", (9,))]},
                                {"ops": [("Mul", (8, 1, 9))]},
                                {"ops": [("Mul", (8, 1, 1))], "constant_first": True},
                                {"ops": [("Mul", (8, 1, 1))], "conv_out": True}],
                         ids=["add_scalar", "mul_rank1", "mul_not_channel", "constant_first",
                              "conv_output"])
def test_left_unfolded_as_onnxruntime(kw: dict) -> None:
    ops = kw.pop("ops")
    model, feeds = _model(ops, **kw)
    expected = ["Conv", ops[0][0]]
    assert _ort_ops(model) == expected
    assert [n.op_type for n in ort_conv_scale.apply(model).graph.node] == expected
    theirs = onnxruntime_run(model, feeds)[0]
    np.testing.assert_array_equal(Session(model).run(feeds)["y"], theirs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_nodes_fold_as_initializers(backend: str) -> None:
    # torch.onnx writes the Mul and Add constants as Constant nodes (captcha_crnn); ONNX
    # Runtime makes them initializers first, so the Mul still has one input edge
    model, feeds = _model(CASES["mul_then_add"])
    g = model.graph
    consts = [t for t in g.initializer if t.name.startswith("k")]
    nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in consts]
    kept = [t for t in g.initializer if not t.name.startswith("k")]
    del g.initializer[:]
    g.initializer.extend(kept)
    rest = list(g.node)
    del g.node[:]
    g.node.extend(nodes + rest)
    assert [n.op_type for n in ort_conv_scale.apply(model).graph.node
            if n.op_type != "Constant"] == ["Conv"]
    theirs = onnxruntime_run(model, feeds)[0]
    np.testing.assert_array_equal(Session(model, backend=backend).run(feeds)["y"], theirs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reshaped_constant_folds(backend: str) -> None:
    # paddle2onnx writes each Conv bias as Reshape(b, [1, M, 1, 1]) after the Conv; ONNX
    # Runtime folds the Reshape first, then the Add into the Conv (its bias b + t)
    model, feeds = _model([("Add", (8,))])
    g = model.graph
    nodes = list(g.node)
    nodes[1].input[1] = "k0_4d"
    g.initializer.append(numpy_helper.from_array(np.array([1, 8, 1, 1], np.int64), "k0_shape"))
    del g.node[:]
    g.node.extend([helper.make_node("Reshape", ["k0", "k0_shape"], ["k0_4d"])] + nodes)
    assert [n.op_type for n in ort_conv_scale.apply(model).graph.node] == ["Reshape", "Conv"]
    assert _ort_ops(model) == ["Conv"]
    theirs = onnxruntime_run(model, feeds)[0]
    np.testing.assert_array_equal(Session(model, backend=backend).run(feeds)["y"], theirs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opset", [11, 13])
def test_unsqueezed_constant_folds(backend: str, opset: int) -> None:
    # the same with Unsqueeze(b) to (M, 1, 1): axes an attribute before opset 13, an input
    # from it
    model, feeds = _model([("Mul", (8,))], opset=opset)
    g = model.graph
    nodes = list(g.node)
    nodes[1].input[1] = "k0_3d"
    if opset < 13:
        unsqueeze = helper.make_node("Unsqueeze", ["k0"], ["k0_3d"], axes=[1, -1])
    else:
        g.initializer.append(numpy_helper.from_array(np.array([1, -1], np.int64), "k0_axes"))
        unsqueeze = helper.make_node("Unsqueeze", ["k0", "k0_axes"], ["k0_3d"])
    del g.node[:]
    g.node.extend([unsqueeze] + nodes)
    assert [n.op_type for n in ort_conv_scale.apply(model).graph.node] == ["Unsqueeze", "Conv"]
    assert _ort_ops(model) == ["Conv"]
    theirs = onnxruntime_run(model, feeds)[0]
    np.testing.assert_array_equal(Session(model, backend=backend).run(feeds)["y"], theirs)
