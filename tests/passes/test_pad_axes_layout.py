"""A Pad with an `axes` input, or a CenterCropPad with `axes` (which ONNX Runtime inlines
into one), between quantized convolutions: ONNX Runtime's transpose optimizer moves it to
channels-last and permutes its pads as if they covered every axis, and the file stops in a
Gather ((O356), repro item 296). The file lowp writes must run there, and give lowp's
numbers."""

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

# the QDQ fuzzer's graph (seed 20261428): Conv -> BatchNormalization -> Relu ->
# CenterCropPad(axes -2, -1) -> Conv -> ..., input (3, 2, 16, 3)
CASE = Path(__file__).parents[2] / "evals/corpus/repro/cases/center_crop_pad_axes_layout.onnx"


def _model(kind: str) -> onnx.ModelProto:
    """x (1, 3, 16, 16) -> Conv 'first' -> Relu -> kind -> Conv 'second' -> y."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array((rng.normal(size=(4, 3, 3, 3)) * 0.3).astype(np.float32),
                                    "w1"),
            numpy_helper.from_array((rng.normal(size=(4, 4, 3, 3)) * 0.3).astype(np.float32),
                                    "w2")]
    if kind == "pad_axes":
        init += [numpy_helper.from_array(np.array([1, 2, 1, 2], np.int64), "pads"),
                 numpy_helper.from_array(np.array([-2, -1], np.int64), "axes")]
        middle = helper.make_node("Pad", ["r", "pads", "", "axes"], ["p"], name="middle")
    elif kind == "pad":
        init.append(numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 1, 2], np.int64),
                                            "pads"))
        middle = helper.make_node("Pad", ["r", "pads"], ["p"], name="middle")
    else:  # CenterCropPad, with or without axes
        axes = kind == "crop_axes"
        shape = [10, 12] if axes else [1, 4, 10, 12]
        init.append(numpy_helper.from_array(np.array(shape, np.int64), "shape"))
        middle = helper.make_node("CenterCropPad", ["r", "shape"], ["p"], name="middle",
                                  **({"axes": [-2, -1]} if axes else {}))
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="first", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"], name="act"), middle,
             helper.make_node("Conv", ["p", "w2"], ["y"], name="second")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 16, 16])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _feeds(shape: list[int]) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.normal(size=shape).astype(np.float32)} for _ in range(4)]


def _runs_as_lowp(q: onnx.ModelProto, feed: dict[str, np.ndarray]) -> None:
    """ONNX Runtime (every optimization, 1 thread) runs `q` and gives lowp's numbers."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(q.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, feed)
    ours = Session(q).run(feed)
    for name, value in zip([o.name for o in q.graph.output], theirs, strict=True):
        np.testing.assert_array_equal(ours[name], value)


def _quantized_convs(q: onnx.ModelProto) -> set[str]:
    dequantized = {o for n in q.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in q.graph.node if n.op_type == "Conv" and n.input[0] in dequantized}


@pytest.mark.parametrize("kind", ["pad_axes", "crop_axes"])
def test_pad_of_chosen_axes_keeps_its_reader_float(kind: str) -> None:
    feeds = _feeds([1, 3, 16, 16])
    with pytest.warns(UserWarning, match="'second' left in float.*'middle' of chosen axes"):
        q = quantize_model(_model(kind), feeds)
    assert _quantized_convs(q) == {"first"}
    _runs_as_lowp(q, feeds[0])


@pytest.mark.parametrize("kind", ["pad", "crop"])
def test_pad_of_every_axis_keeps_both_quantized(kind: str) -> None:
    feeds = _feeds([1, 3, 16, 16])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        q = quantize_model(_model(kind), feeds)
    assert _quantized_convs(q) == {"first", "second"}
    _runs_as_lowp(q, feeds[0])


def test_the_fuzzer_graph_quantizes_and_runs() -> None:
    rng = np.random.default_rng(0)
    feeds = [{"input": rng.normal(size=(3, 2, 16, 3)).astype(np.float32)} for _ in range(4)]
    with pytest.warns(UserWarning, match="left in float.*CenterCropPad"):
        q = quantize_model(onnx.load(CASE), feeds)
    _runs_as_lowp(q, feeds[0])
