"""float64 LayerNormalization as ONNX Runtime's double kernel computes it (O352): every row
in its generic loop's order (Welford's running mean and sum of squared deviations, in
double), epsilon the float32 attribute widened, Mean and InvStdDev float32 (stash_type 1).
lowp took numpy's mean and variance: 654 of 1125 values a unit in the last place apart on
the graph fuzzer's [3, 15, 5, 5] (other_types block, seed 51, repro item 284)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session

from .ort_agreement import onnxruntime_run


def _model(shape: list[int], axis: int, bias: bool) -> onnx.ModelProto:
    n = int(np.prod(shape[axis:]))
    rng = np.random.default_rng(n)
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, shape[axis:]), "g")]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, shape[axis:]), "b"))
    node = helper.make_node("LayerNormalization", ["x", "g"] + (["b"] if bias else []),
                            ["y", "mean", "inv"], axis=axis, epsilon=1e-3)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, shape)],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None),
         helper.make_tensor_value_info("mean", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("inv", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("shape", "axis"), [([3, 15, 5, 5], -1), ([2, 7], 1), ([4, 64], -1),
                                             ([2, 3, 4, 6], 2), ([5, 1], -1)])
def test_float64_layer_norm_matches_onnxruntime(shape: list[int], axis: int,
                                                bias: bool) -> None:
    model = _model(shape, axis, bias)
    rng = np.random.default_rng(len(shape) * 10 + shape[-1])
    x = 1 / (1 + np.exp(-rng.standard_normal(shape) * 3))
    want = onnxruntime_run(model, {"x": x})
    for backend in ("reference", "native"):
        got = Session(model, backend=backend).run({"x": x})
        for name, theirs in zip(("y", "mean", "inv"), want, strict=True):
            assert got[name].dtype == theirs.dtype, (backend, name)
            np.testing.assert_array_equal(got[name].view(np.uint8), theirs.view(np.uint8),
                                          err_msg=f"{backend} {name}")
