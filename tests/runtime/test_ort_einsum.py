"""Float32 two-operand Einsum contractions equal ONNX Runtime bit for bit (O39): one MLAS
SGEMM per batch entry."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from .ort_agreement import assert_engines_agree


@pytest.mark.parametrize("equation,a_shape,b_shape", [
    ("bij,bjk->bik", (2, 8, 160), (2, 160, 12)),
    ("bhqd,bhkd->bhqk", (1, 4, 10, 64), (1, 4, 12, 64)),
    ("ik,jk->ij", (7, 300), (9, 300)),
    ("ijk,jkl->il", (5, 20, 15), (20, 15, 6)),
    ("i,i->", (500,), (500,)),
    ("i,j->ij", (5,), (7,)),
    ("nchw,ck->nkhw", (1, 64, 5, 6), (64, 32)),
])
def test_einsum_equals_onnxruntime(equation: str, a_shape: tuple[int, ...],
                                   b_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(equation))
    feeds = {"a": rng.standard_normal(a_shape).astype(np.float32),
             "b": rng.standard_normal(b_shape).astype(np.float32)}
    out = np.einsum(equation, feeds["a"], feeds["b"]).shape
    graph = helper.make_graph(
        [helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)], "einsum",
        [helper.make_tensor_value_info("a", 1, a_shape),
         helper.make_tensor_value_info("b", 1, b_shape)],
        [helper.make_tensor_value_info("y", 1, out)])
    assert_engines_agree(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
                         feeds)
