"""Add and Mul of two NaNs on channels-last data in a replayed run give ONNX Runtime's NaN
(docs/operators.md (O197); repro item 170). Which of two NaNs they hand on depends on the
element's place in ONNX Runtime's channels-first run ((O116)); the native kernels took the
place in lowp's channels-last memory of two integer convolutions' outputs:
Add(Neg(Sqrt(a)), Sqrt(b)) over (1, 5, 5, 7) gave 0x7fc00000 at 139 and 0xffc00000 at
173, ONNX Runtime the other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.pipeline import quantize
from lowp.runtime import Session, native_float
from lowp.runtime import native_backend as nb
from lowp.runtime.backends import native_available

from .ort_agreement import onnxruntime_run


def _model(op: str, c: int, h: int, w: int, m: int, path: Path) -> onnx.ModelProto:
    """Two convolutions of x, quantized by lowp (integer convolutions, channels-last), then
    op(-Sqrt(first), Sqrt(second)): NaNs of both signs (the default NaN, negated) wherever
    both convolutions are negative."""
    rng = np.random.default_rng(c * h + w * m)
    inits = [numpy_helper.from_array(rng.standard_normal((m, c, 3, 3)).astype(np.float32), n)
             for n in ("w1", "w2")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("Conv", ["x", "w2"], ["c2"], pads=[1, 1, 1, 1]),
         helper.make_node("Sqrt", ["c1"], ["s1"]), helper.make_node("Sqrt", ["c2"], ["s2"]),
         helper.make_node("Neg", ["s1"], ["n1"]),
         helper.make_node(op, ["n1", "s2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m, h, w])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    data = {"x": rng.standard_normal((8, c, h, w)).astype(np.float32)}
    return quantize(path, data).model


@pytest.mark.skipif(not native_available(), reason="needs the native extension")
@pytest.mark.parametrize("op", ["Add", "Mul"])
@pytest.mark.parametrize("dims", [(4, 5, 7, 5), (3, 9, 9, 7), (3, 7, 5, 8), (4, 5, 5, 7)])
@pytest.mark.parametrize("threads", [1, 2])
def test_replayed_two_nans_of_channels_last_data_equal_onnxruntime(tmp_path, op, dims,
                                                                    threads):
    # before: 15-18 values apart over 4 inputs and 3 runs on three of the shapes (the
    # fourth, 8 channels, puts the same elements in the 4-float tails), both operators
    model = _model(op, *dims, tmp_path / "m.onnx")
    for path in nb.available_paths():
        with nb.use_path(path):
            session = Session(model, threads=threads)
            for seed in range(4):
                x = np.random.default_rng(seed).standard_normal((1, dims[0], *dims[1:3]))
                x = x.astype(np.float32)
                want = onnxruntime_run(model, {"x": x}, threads)[0].view(np.uint32)
                with native_float.disabled():
                    got = Session(model, backend="reference", threads=threads).run(
                        {"x": x})["y"].view(np.uint32)
                np.testing.assert_array_equal(got, want, err_msg=f"reference, seed {seed}")
                for run in range(3):        # recorded twice, then replayed
                    got = session.run({"x": x})["y"].view(np.uint32)
                    np.testing.assert_array_equal(got, want,
                                                  err_msg=f"{path} seed {seed}, run {run}")
