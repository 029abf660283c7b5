"""A shrinking cubic Resize between quantized convolutions: ONNX Runtime moves it to
channels-last, where it refuses to shrink in cubic mode ((O73), repro item 46). The file
lowp writes must run there, and give lowp's numbers."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.pipeline import quantize_model
from lowp.runtime import Session

CASE = Path(__file__).parents[2] / "evals/corpus/repro/cases/cubic_downscale_resize.onnx"


def _model(mode: str, out_hw: tuple[int, int], *, by_scales: bool, relu: bool,
           antialias: int = 0) -> onnx.ModelProto:
    """x (1, 2, 9, 8) -> Conv -> [Relu] -> Resize(mode, to out_hw) -> Conv -> y."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.normal(size=(4, 2, 1, 1)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(size=(3, 4, 3, 3)).astype(np.float32), "w2")]
    if by_scales:
        scales = np.array([1, 1, out_hw[0] / 9, out_hw[1] / 8], np.float32)
        init.append(numpy_helper.from_array(scales, "scales"))
        resize_inputs = ["r", "", "scales"]
    else:
        init.append(numpy_helper.from_array(np.array([1, 4, *out_hw], np.int64), "sizes"))
        resize_inputs = ["r", "", "", "sizes"]
    extra = {"antialias": antialias} if antialias else {}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="first"),
             helper.make_node("Relu" if relu else "Identity", ["a"], ["r"], name="act"),
             helper.make_node("Resize", resize_inputs, ["b"], name="resize", mode=mode, **extra),
             helper.make_node("Conv", ["b", "w2"], ["y"], name="second", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 9, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 3, *out_hw])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _feeds(name: str, shape: list[int]) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{name: rng.normal(size=shape).astype(np.float32)} for _ in range(4)]


def _quantize_and_compare(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]
                          ) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantize_model(model, feeds)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(q.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, feeds[0])
    ours = Session(q).run(feeds[0])
    for name, value in zip([o.name for o in q.graph.output], theirs, strict=True):
        np.testing.assert_array_equal(ours[name], value)
    return q


def _quantized_convs(q: onnx.ModelProto) -> set[str]:
    dequantized = {o for n in q.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in q.graph.node
            if n.op_type == "Conv" and n.input[0] in dequantized}


@pytest.mark.parametrize("by_scales", [False, True])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("out_hw", [(4, 8), (9, 5), (3, 3)])
def test_shrinking_cubic_resize_keeps_its_reader_float(out_hw, relu, by_scales):
    model = _model("cubic", out_hw, by_scales=by_scales, relu=relu)
    with pytest.warns(UserWarning, match="'second' left in float.*cubic Resize 'resize'"):
        quantize_model(model, _feeds("x", [1, 2, 9, 8]))
    q = _quantize_and_compare(model, _feeds("x", [1, 2, 9, 8]))
    assert "second" not in _quantized_convs(q)


@pytest.mark.parametrize(("mode", "out_hw", "antialias"), [
    ("cubic", (18, 16), 0), ("cubic", (9, 8), 0), ("cubic", (4, 4), 1),
    ("linear", (4, 4), 0), ("nearest", (4, 4), 0)])
def test_other_resizes_keep_both_convolutions_quantized(mode, out_hw, antialias):
    model = _model(mode, out_hw, by_scales=False, relu=True, antialias=antialias)
    q = _quantize_and_compare(model, _feeds("x", [1, 2, 9, 8]))
    assert "second" in _quantized_convs(q)


def test_fuzzer_case_runs_in_onnxruntime():
    model = onnx.load(CASE)
    q = _quantize_and_compare(model, _feeds(model.graph.input[0].name, [1, 2, 9, 1]))
    assert "Conv_13" not in _quantized_convs(q)
