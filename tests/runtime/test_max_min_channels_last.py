"""Max and Min of channels-last data in a replayed run give ONNX Runtime's zeros
(docs/operators.md (O155); repro item 133). Which zero a tie of +0 and -0 keeps depends
on the element's place in ONNX Runtime's run ((O105): E2 in its packets, E1 in the tail);
a replay ran the native kernel on the channels-last memory of two integer convolutions'
outputs, where other elements stand in the tail: Max(-Relu(a), Relu(b)) over (1, 5, 5, 7)
gave -0 at 104, ONNX Runtime +0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.pipeline import quantize
from lowp.runtime import Session
from lowp.runtime.backends import native_available

from .ort_agreement import onnxruntime_run


def _model(op: str, c: int, h: int, w: int, m: int, path: Path) -> onnx.ModelProto:
    """Two convolutions of x, quantized by lowp (integer convolutions, channels-last), then
    op(-Relu(first), Relu(second)): ties of -0 and +0 wherever both Relus are 0."""
    rng = np.random.default_rng(c * h + w * m)
    inits = [numpy_helper.from_array(rng.standard_normal((m, c, 3, 3)).astype(np.float32), n)
             for n in ("w1", "w2")] + [numpy_helper.from_array(np.array(-1.0, np.float32), "neg")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("Conv", ["x", "w2"], ["c2"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"]), helper.make_node("Relu", ["c2"], ["r2"]),
         helper.make_node("Mul", ["r1", "neg"], ["n1"]),
         helper.make_node(op, ["n1", "r2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m, h, w])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    data = {"x": rng.standard_normal((8, c, h, w)).astype(np.float32)}
    return quantize(path, data).model


@pytest.mark.skipif(not native_available(), reason="needs the native extension")
@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("dims", [(4, 5, 7, 5), (3, 9, 9, 7), (3, 7, 5, 8)])
def test_replayed_max_min_of_channels_last_data_keep_onnxruntimes_zero(tmp_path, op, dims):
    model = _model(op, *dims, tmp_path / "m.onnx")
    session = Session(model, threads=1)
    for seed in range(6):
        x = np.random.default_rng(seed).standard_normal((1, dims[0], *dims[1:3]))
        x = x.astype(np.float32)
        want = onnxruntime_run(model, {"x": x})[0].view(np.uint32)
        for run in range(3):        # recorded twice, then replayed
            got = session.run({"x": x})["y"].view(np.uint32)
            np.testing.assert_array_equal(got, want, err_msg=f"seed {seed}, run {run}")
