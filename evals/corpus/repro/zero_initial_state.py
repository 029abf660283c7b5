"""Reproducer: the default quantization fails on an unrolled LSTM whose initial state is
ConstantOfShape zeros (captcha_crnn, '/lstm_fwd/ConstantOfShape').

    python evals/corpus/repro/zero_initial_state.py

A torch export of an LSTM cell loop starts from ``h0 = ConstantOfShape(shape, value=0)`` and
computes ``Gemm(h0, W_hh)``. Under the default policy the Gemm is quantized, so h0 is a
quantized activation whose calibrated range is [0, 0] on any data, and `quantize_model`
raises QuantizationError ("is zero on all calibration data ... exclude that node").
The tensor is zero by construction, not for lack of data: it could take scale 1 / zero
point 0 (or stay float, or be folded, since Gemm(0, W) + b is the constant b), as ONNX
Runtime's quantizer does without complaint.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w_ih"),
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w_hh"),
        numpy_helper.from_array(np.zeros(8, np.float32), "b"),
        numpy_helper.from_array(np.array([8], np.int64), "hidden"),
    ]
    nodes = [
        helper.make_node("Shape", ["x"], ["x_shape"], start=0, end=1),
        helper.make_node("Concat", ["x_shape", "hidden"], ["h_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["h_shape"], ["h0"],
                         value=numpy_helper.from_array(np.zeros(1, np.float32))),
        helper.make_node("Gemm", ["x", "w_ih", "b"], ["xi"]),
        helper.make_node("Gemm", ["h0", "w_hh"], ["hh"]),
        helper.make_node("Add", ["xi", "hh"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["h1"]),
    ]
    graph = helper.make_graph(
        nodes, "zero_state", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("h1", TensorProto.FLOAT, ["n", 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> int:
    import lowp

    calib = {"x": np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)}
    try:
        lowp.quantize_model(build(), calib)
    except Exception as e:
        print(f"FAIL {type(e).__name__}: {str(e).splitlines()[0]}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
