"""AveragePool and LpPool with auto_pad SAME_UPPER / SAME_LOWER where a kernel smaller than
its stride makes ONNX Runtime's end pad negative ((O218)). Its LpPool loops and MLAS's
NCHWc AveragePool kernel read the input elements that pad would drop where a dilated
window reaches them (as (O200)'s MaxPool); its AveragePool-19 loop stops at the pad; its
float32 MlasPool refuses the node. lowp had cropped the elements everywhere and run what
ONNX Runtime refuses: LpPool-18 of x = [[[a, b, c]]], kernel 2 dilated by 2, stride 3,
SAME_UPPER (pads 0 and -1, one window) is sqrt(a^2 + c^2) in ONNX Runtime, |a| in lowp."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from .ort_agreement import assert_outputs_equal_onnxruntime_on_every_path
from .test_max_pool_negative_same_pad import assert_refused_as_onnxruntime


def _pool(op: str, opset: int, shape: tuple[int, ...], attrs: dict[str, Any]
          ) -> onnx.ModelProto:
    """One float32 pool named 'pool' of a static input (so that ONNX Runtime's NCHWc
    transformer knows its channels)."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], name="pool", **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _same(nd: int, k: int, s: int, d: int, auto_pad: str, **more: Any) -> dict[str, Any]:
    return {"kernel_shape": [k] * nd, "strides": [s] * nd, "dilations": [d] * nd,
            "auto_pad": auto_pad, **more}


# (operator, opset, input shape, attributes): each has a negative SAME end pad whose
# dropped elements a dilated window reads in ONNX Runtime
CASES = [
    ("AveragePool", 19, (1, 16, 3, 3), _same(2, 2, 3, 2, "SAME_UPPER")),            # NCHWc
    ("AveragePool", 19, (1, 16, 3, 3), _same(2, 2, 3, 2, "SAME_LOWER", count_include_pad=1)),
    ("AveragePool", 19, (2, 16, 7, 7), _same(2, 2, 4, 3, "SAME_UPPER", count_include_pad=1)),
    ("AveragePool", 19, (1, 16, 6, 3), _same(2, 2, 3, 2, "SAME_LOWER")),
    ("LpPool", 18, (1, 3, 3), _same(1, 2, 3, 2, "SAME_UPPER", p=2)),
    ("LpPool", 18, (1, 3, 3, 3), _same(2, 2, 3, 2, "SAME_LOWER", p=1, ceil_mode=1)),
    ("LpPool", 18, (1, 16, 7, 7), _same(2, 2, 4, 2, "SAME_UPPER", p=3)),
    ("LpPool", 22, (1, 2, 3, 3, 3), _same(3, 2, 3, 2, "SAME_UPPER", p=2)),
]


def _input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32) * 3
    nans = np.array([0x7FC00111, 0xFFC00222], np.uint32).view(np.float32)
    return np.where(rng.random(shape) < 0.1, rng.choice(nans, size=shape), x)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("op", "opset", "shape", "attrs"), CASES)
def test_negative_same_pad_reads_what_onnxruntime_reads(
        op: str, opset: int, shape: tuple[int, ...], attrs: dict[str, Any],
        threads: int) -> None:
    model = _pool(op, opset, shape, attrs)
    for seed in range(3):
        assert_outputs_equal_onnxruntime_on_every_path(model, {"x": _input(shape, seed)},
                                                       threads)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize(("shape", "attrs"), [
    ((1, 3, 9), _same(1, 2, 3, 1, "SAME_UPPER")),
    ((1, 3, 9, 9), _same(2, 1, 3, 1, "SAME_LOWER", count_include_pad=1)),
    ((1, 3, 5, 5, 5), _same(3, 1, 3, 1, "SAME_LOWER")),
])
def test_negative_same_pad_is_refused_where_onnxruntime_refuses(
        shape: tuple[int, ...], attrs: dict[str, Any], backend: str) -> None:
    # float32 AveragePool-11 (no dilations), channels unknown to no NCHWc block: MlasPool
    attrs = {key: value for key, value in attrs.items() if key != "dilations"}
    assert_refused_as_onnxruntime(_pool("AveragePool", 11, shape, attrs), shape, backend)
