"""float32 Softmax / LogSoftmax rows holding NaNs give ONNX Runtime's NaN bits (docs/operators.md
(O127); evals/corpus/repro/README.md item 103): MLAS's row maximum keeps a NaN only from the
last value read into its place (vmaxps keeps its second operand), and a NaN maximum's
negation fills the row; lowp's maximum was NaN whenever the row held one, so its outputs
were the negated NaN. Rows along the last axis and along a leading one (native: the column
kernel), both backends, the default NaN only (rows with NaNs of several payloads: open)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import lowp
from lowp import ort_math

from .ort_agreement import onnxruntime_run

pytestmark = pytest.mark.skipif(not ort_math.mlas_has_avx512f(),
                                reason="ONNX Runtime's AVX-512F softmax order")


def _model(op: str, shape: list[int], axis: int) -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], ["y"], axis=axis)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_minimal_row(backend: str) -> None:
    model = _model("Softmax", [1, 4], -1)
    x = np.array([[1, 2, np.nan, 3]], np.float32)
    want = onnxruntime_run(model, {"x": x})[0]
    assert (want.view(np.uint32) == 0x7FC00000).all()            # lowp gave 0xffc00000
    got = lowp.Session(model, backend=backend).run({"x": x})["y"]
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("n", [1, 5, 16, 17, 40, 64, 69, 130])
def test_rows_with_nans(op: str, axis: int, n: int) -> None:
    shape = [3, n] if axis == -1 else [n, 19]
    model = _model(op, shape, axis)
    rng = np.random.default_rng(n * 3 + axis)
    sessions = [lowp.Session(model, backend=b) for b in ("reference", "native")]
    for _ in range(4):
        x = rng.standard_normal(shape).astype(np.float32)
        x[rng.random(shape) < 0.3] = np.nan
        want = onnxruntime_run(model, {"x": x})[0]
        for session in sessions:
            assert session.run({"x": x})["y"].tobytes() == want.tobytes()


@pytest.mark.parametrize(("first", "second"), [(1, 3), (3, 1)])
def test_a_nan_sum_fills_the_row(first: int, second: int) -> None:
    """MLAS multiplies 1 / sum by each exponential, the scale first: a NaN sum's NaN fills
    its row, the NaN elements' own too (numpy's product kept each element's). The numpy
    reference only: the native sums' NaN order with two payloads is left open."""
    x = (np.arange(5, dtype=np.float32) / 7)[None].copy()
    x[0, first] = np.uint32(0x7FC00123).view(np.float32)
    x[0, second] = np.uint32(0xFFD00001).view(np.float32)
    want = onnxruntime_run(_model("Softmax", [1, 5], -1), {"x": x})[0]
    assert len(set(want.view(np.uint32).ravel().tolist())) == 1
    assert ort_math.softmax_rows(x).tobytes() == want.tobytes()
