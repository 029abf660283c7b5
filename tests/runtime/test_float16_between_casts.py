"""float16 operators ONNX Runtime's CPU provider has no kernel for run as float32's between
Casts (docs/operators.md (O187)): its outputs equal those of the explicit Cast -> op ->
Cast graph, and lowp's now equal both, NaN payloads included, on both backends at 1 and 2
threads. lowp computed them its own float16 way (numpy's order and rounding, the NaN as it
is): 1 to 6 of 6 random inputs apart per operator before."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from .ort_agreement import assert_float_bits_agree, onnxruntime_run

SPECIALS = np.array([0x7E11, 0x7E22, 0xFE33, 0x7D01, 0xFC44, 0x7C00, 0xFC00, 0x8000, 0x0000,
                     0x7BFF, 0xFBFF], np.uint16).view(np.float16)
_NO_NAN = SPECIALS[~np.isnan(SPECIALS)]
# (op, attributes, NaNs in the data: not where lowp's float32 kernels are left apart over
# NaNs, docs/operators.md (O187))
_OPS: list[tuple[str, dict[str, Any], bool]] = [
    ("GlobalMaxPool", {}, True), ("GlobalAveragePool", {}, False),
    ("AveragePool", {"kernel_shape": [2, 2]}, False),
    ("LpPool", {"kernel_shape": [2, 2]}, False), ("GlobalLpPool", {}, False),
    ("ReduceL1", {}, True), ("ReduceL2", {}, True),
    ("ReduceSumSquare", {}, True), ("ReduceLogSum", {}, True), ("ReduceProd", {}, True),
    ("Elu", {}, True), ("LeakyRelu", {}, True), ("HardSigmoid", {}, True),
    ("Hardmax", {}, True)]


def _model(op: str, shape: tuple[int, ...], attrs: dict[str, Any], casts: bool
           ) -> onnx.ModelProto:
    nodes = [helper.make_node(op, ["x"], ["y"], **attrs)]
    if casts:
        nodes = [helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT),
                 helper.make_node(op, ["x32"], ["y32"], **attrs),
                 helper.make_node("Cast", ["y32"], ["y"], to=TensorProto.FLOAT16)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize(("op", "attrs", "nans"), _OPS)
@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 16, 3, 3), (1, 1, 9, 9)])
def test_float16_operator_is_float32s_between_casts(op, attrs, nans, shape):
    # before: float16 ReduceL2 and GlobalMaxPool over NaNs gave the NaN as it is where
    # ONNX Runtime's Cast back gives 0x7e00 with its sign
    rng = np.random.default_rng(len(op) + sum(shape))
    for _ in range(3):
        x = rng.standard_normal(shape).astype(np.float16)
        x = np.where(rng.random(shape) < 0.2, rng.choice(SPECIALS if nans else _NO_NAN, shape),
                     x).astype(np.float16)
        theirs = onnxruntime_run(_model(op, shape, attrs, False), {"x": x})[0]
        if "kernel_shape" not in attrs or shape[1] != 16:   # (the explicit graph's NCHWc)
            cast = onnxruntime_run(_model(op, shape, attrs, True), {"x": x})[0]
            assert theirs.view(np.uint16).tolist() == cast.view(np.uint16).tolist()
        for threads in (1, 2):
            assert_float_bits_agree(_model(op, shape, attrs, False), {"x": x}, threads)
