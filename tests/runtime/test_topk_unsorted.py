"""TopK with sorted = 0 returns ONNX Runtime's own order (docs/operators.md (O127);
evals/corpus/repro/README.md item 103): its heap left in heap order (k < 4, or log2(k) /
log2(n) < 0.725), else the first k after libstdc++'s nth_element (ONNX Runtime's Linux
build); lowp returned them sorted. float32, float64, int32, int64, ties and NaNs."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import lowp

from .ort_agreement import onnxruntime_run

TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE,
         np.int32: TensorProto.INT32, np.int64: TensorProto.INT64}


def _model(shape: list[int], k: int, axis: int, largest: int, dtype: type) -> onnx.ModelProto:
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest,
                            sorted=0)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TYPES[dtype], shape)],
        [helper.make_tensor_value_info("v", TYPES[dtype], None),
         helper.make_tensor_value_info("i", TensorProto.INT64, None)],
        initializer=[helper.make_tensor("k", TensorProto.INT64, [1], [k])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_minimal_row() -> None:
    model = _model([1, 5], 3, -1, 1, np.float32)
    x = np.array([[1, 5, 3, 4, 2]], np.float32)
    v, i = onnxruntime_run(model, {"x": x})
    assert i.tolist() == [[2, 1, 3]] and v.tolist() == [[3, 5, 4]]    # lowp: [1, 3, 2]
    out = lowp.Session(model).run({"x": x})
    assert np.array_equal(out["i"], i) and np.array_equal(out["v"], v)


@pytest.mark.parametrize("n", [3, 9, 40, 150])
@pytest.mark.parametrize("dtype", list(TYPES))
@pytest.mark.parametrize("axis", [-1, 0])
def test_unsorted_order(n: int, dtype: type, axis: int) -> None:
    rng = np.random.default_rng(n + 7 * (axis + 1))
    shape = [4, n] if axis == -1 else [n, 3]
    ks = sorted(k for k in {2, 3, 4, n // 2, n} if 2 <= k <= n)
    # both of ONNX Runtime's paths: its heap, and nth_element (log2(k) / log2(n) >= 0.725)
    assert any(k >= 4 and math.log2(k) / math.log2(n) >= 0.725 for k in ks) or n < 4
    for k in ks:
        for largest in (0, 1):
            model = _model(shape, k, axis, largest, dtype)
            for backend in ("reference", "native"):
                session = lowp.Session(model, backend=backend)
                for ties in (False, True):
                    x = (rng.integers(-3, 4, shape) if ties else
                         rng.standard_normal(shape) * 5).astype(dtype)
                    if np.issubdtype(dtype, np.floating) and ties:
                        x[rng.random(shape) < 0.15] = np.nan
                    v, i = onnxruntime_run(model, {"x": x})
                    out = session.run({"x": x})
                    assert np.array_equal(out["i"], i), (k, largest, backend)
                    assert out["v"].tobytes() == v.tobytes()
