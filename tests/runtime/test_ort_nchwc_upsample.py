"""ONNX Runtime's NCHWc Upsample in linear mode mirrored (docs/operators.md (O320)): a float
linear Resize by whole factors of a value its layout transformer keeps in NCHWc (a Conv's
output) runs as MlasNchwcUpsampleLinear, whose weights and sums round in another order than
its NCHW bilinear kernel (the graph fuzzer's conv_act -> upsample graphs, 6e-8 apart)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import nchwc_conv
from tests.runtime.ort_agreement import assert_sessions_equal_onnxruntime, onnxruntime_optimized_ops

needs_blocks = pytest.mark.skipif(nchwc_conv.block_size() == 0,
                                  reason="ONNX Runtime keeps NCHW convolutions on this CPU")


def _conv_resize(opset: int, scales: tuple[float, ...], c: int, h: int, w: int,
                 batch: int | str, sizes: bool = False, **attrs: object) -> onnx.ModelProto:
    """x [batch, 3, h, w] -> Conv (3 -> c, 3 x 3) -> Sigmoid -> Resize(scales, attrs) -> y;
    with `sizes`, the Resize gets the sizes [2, c, h, w] times the scales instead (2: the
    batch fed), and one row more than that when the scales are fractional."""
    rng = np.random.default_rng(c * 100 + h * 10 + w)
    f = np.float32
    inits = [numpy_helper.from_array(rng.standard_normal((c, 3, 3, 3)).astype(f), "w"),
             numpy_helper.from_array(rng.standard_normal(c).astype(f), "b"),
             numpy_helper.from_array(np.zeros(0, f), "roi")]
    ins = ["s", "roi", "scales"]
    if sizes:
        whole = [int(v) for v in scales]
        size = [2, c, h * whole[2] + (whole[2] != scales[2]), w * whole[3]]
        inits.append(numpy_helper.from_array(np.asarray(size, np.int64), "sizes"))
        ins = ["s", "roi", "", "sizes"]
    else:
        inits.append(numpy_helper.from_array(np.asarray(scales, f), "scales"))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1] * 4),
             helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Resize", ins, ["y"], **attrs)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


LINEAR = {  # (opset, scales, attributes, whether ONNX Runtime makes it an NCHWc Upsample)
    "half_pixel_2x2": (20, (1, 1, 2, 2), {}, True),
    "half_pixel_3x2": (18, (1, 1, 3, 2), {}, True),
    "half_pixel_1x4": (13, (1, 1, 1, 4), {}, True),
    "unscaled": (13, (1, 1, 1, 1), {}, True),
    "asymmetric": (13, (1, 1, 2, 3), {"coordinate_transformation_mode": "asymmetric"}, True),
    "align_corners": (11, (1, 1, 3, 3), {"coordinate_transformation_mode": "align_corners"},
                      True),
    "antialias": (18, (1, 1, 2, 2), {"antialias": 1}, True),
    "pytorch_half_pixel": (18, (1, 1, 2, 2),
                           {"coordinate_transformation_mode": "pytorch_half_pixel"}, False),
    "half_pixel_symmetric": (19, (1, 1, 2, 2),
                             {"coordinate_transformation_mode": "half_pixel_symmetric"},
                             False),
    "fractional": (18, (1, 1, 1.5, 2), {}, False),
    # sizes: whole multiples of an input shape known in every dimension (not a free batch)
    "sizes_2x3": (18, (1, 1, 2, 3), {"sizes": True}, True),
    "sizes_align_corners": (13, (1, 1, 2, 2), {"sizes": True, "coordinate_transformation_mode":
                                               "align_corners"}, True),
    "sizes_not_whole": (18, (1, 1, 2.5, 2), {"sizes": True}, False),
}


@needs_blocks
@pytest.mark.parametrize("case", sorted(LINEAR))
@pytest.mark.parametrize(("c", "h", "w", "batch"), [(5, 4, 8, "N"), (16, 7, 3, 2)])
def test_linear_resize_of_an_nchwc_value_equals_onnxruntime(case, c, h, w, batch):
    opset, scales, attrs, nchwc = LINEAR[case]
    model = _conv_resize(opset, scales, c, h, w, batch, mode="linear", **attrs)
    free_batch_sizes = "sizes" in attrs and batch == "N"
    assert ("Upsample" in onnxruntime_optimized_ops(model)) == (nchwc and not free_batch_sizes)
    x = (np.random.default_rng(7).standard_normal((2, 3, h, w)) * 2).astype(np.float32)
    assert_sessions_equal_onnxruntime(model, x)


def _computed_reshape_conv_resize(opset: int, shape_of: str, rest: list[int]) -> onnx.ModelProto:
    """x [N, 120] -> Reshape(x, Concat(Unsqueeze(Gather(Shape(v), 0)), rest)) -> Conv (10 -> 8,
    3 x 3) -> linear Resize x2 -> y; v is x itself, Relu(x) (of x's inferred shape),
    ReduceMax(x, axis 1) ([N, 1]: the same first dimension) or, for "x_end1", x with a
    Shape(end=1)."""
    rng = np.random.default_rng(288)
    f = np.float32
    inits = [numpy_helper.from_array(rng.standard_normal((8, 10, 3, 3)).astype(f), "w"),
             numpy_helper.from_array(np.zeros(0, f), "roi"),
             numpy_helper.from_array(np.asarray([1, 1, 2, 2], f), "scales"),
             numpy_helper.from_array(np.asarray(0, np.int64), "first"),
             numpy_helper.from_array(np.asarray(rest, np.int64), "rest")]
    unsqueeze = (helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0]) if opset < 13 else
                 helper.make_node("Unsqueeze", ["n", "axis0"], ["n1"]))
    if opset >= 13:
        inits.append(numpy_helper.from_array(np.asarray([0], np.int64), "axis0"))
    made = {"x": [], "x_end1": [], "relu": [helper.make_node("Relu", ["x"], ["v"])],
            "reduced": [helper.make_node("ReduceMax", ["x"], ["v"], axes=[1])]}[shape_of]
    nodes = [*made,
             helper.make_node("Shape", ["x" if shape_of.startswith("x") else "v"], ["shape"],
                              **({"end": 1} if shape_of == "x_end1" else {})),
             helper.make_node("Gather", ["shape", "first"], ["n"], axis=0), unsqueeze,
             helper.make_node("Concat", ["n1", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["r"]),
             helper.make_node("Conv", ["r", "w"], ["c"], pads=[1] * 4),
             helper.make_node("Resize", ["c", "roi", "scales"], ["y"], mode="linear")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 120])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@needs_blocks
@pytest.mark.parametrize(("opset", "shape_of", "rest", "nchwc"), [
    (13, "reduced", [10, 3, 4], True),  # the graph fuzzer's Gather of another value: 0
    (13, "x", [10, 3, 4], True),        # [0, 10, 3, 4], Unsqueeze-13's axes an input
    (11, "x", [10, 3, 4], True),        # Unsqueeze-11's axes an attribute
    (11, "relu", [10, 3, 4], True),
    (18, "x", [-1, 3, 4], True),        # [0, -1, 3, 4]: the channels inferred all the same
    (18, "x_end1", [10, 3, 4], True),   # a Shape with an end: [-1, 10, 3, 4]
    (18, "x_end1", [-1, 3, 4], True),   # two -1: left as it is
])
def test_reshape_to_a_computed_target_before_an_nchwc_resize_equals_onnxruntime(
        opset, shape_of, rest, nchwc):
    # ONNX Runtime's ReshapeFusion makes the Concat a constant target (O343), so the Conv's
    # channels are known and its NCHWc transformer takes the Conv and the linear Resize
    model = _computed_reshape_conv_resize(opset, shape_of, rest)
    assert ("Upsample" in onnxruntime_optimized_ops(model)) == nchwc
    x = (np.random.default_rng(5).standard_normal((2, 120)) * 2).astype(np.float32)
    assert_sessions_equal_onnxruntime(model, x)
