"""Small QDQ and QLinear ONNX models of one Conv / MatMul layer, for ONNX Runtime checks."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32


def _init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def qdq_layer(op: str, w: np.ndarray, bias_q: np.ndarray | None, *, x_scale: float,
              x_zero_point: int, w_scale: np.ndarray, y_scale: float, y_zero_point: int,
              relu: bool, x_shape: tuple[int | str, ...], attrs: dict[str, object] | None = None,
              opset: int = 21, x_type: int = TensorProto.UINT8) -> onnx.ModelProto:
    """x (integer) -> DQ -> Conv/MatMul(DQ(w)[, DQ(bias)]) [-> Relu] -> Q -> y (integer)."""
    per_channel = np.asarray(w_scale).ndim == 1
    x_np = np.uint8 if x_type == TensorProto.UINT8 else np.int8
    inits = [_init("sx", F32(x_scale)), _init("zx", x_np(x_zero_point)), _init("w_q", w),
             _init("sw", np.asarray(w_scale, F32)),
             _init("zw", np.zeros(np.shape(w_scale), w.dtype)),
             _init("sy", F32(y_scale)), _init("zy", x_np(y_zero_point))]
    waxis = {"axis": 0 if op == "Conv" else 1} if per_channel else {}
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["x_f"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w_f"], name="dq_w",
                              **waxis)]
    ins = ["x_f", "w_f"]
    if bias_q is not None:
        bscale = (F32(x_scale) * np.asarray(w_scale, F32)).astype(F32)
        inits += [_init("b_q", bias_q.astype(np.int32)), _init("sb", bscale),
                  _init("zb", np.zeros(np.shape(bscale), np.int32))]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "sb", "zb"], ["b_f"],
                                      name="dq_b", **({"axis": 0} if per_channel else {})))
        ins.append("b_f")
    nodes.append(helper.make_node(op, ins, ["y_f"], name="layer", **(attrs or {})))
    last = "y_f"
    if relu:
        nodes.append(helper.make_node("Relu", ["y_f"], ["y_r"], name="relu"))
        last = "y_r"
    nodes.append(helper.make_node("QuantizeLinear", [last, "sy", "zy"], ["y"], name="q_y"))
    graph = helper.make_graph(nodes, "layer", [helper.make_tensor_value_info("x", x_type,
                                                                             list(x_shape))],
                              [helper.make_tensor_value_info(
                                  "y", x_type, [f"y{i}" for i in range(len(x_shape))])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def qlinear_layer(op: str, w: np.ndarray, bias_q: np.ndarray | None, *, x_scale: float,
                  x_zero_point: int, w_scale: np.ndarray, y_scale: float, y_zero_point: int,
                  attrs: dict[str, object] | None = None) -> onnx.ModelProto:
    """One QLinearConv or QLinearMatMul node on uint8 input."""
    inits = [_init("sx", F32(x_scale)), _init("zx", np.uint8(x_zero_point)), _init("w", w),
             _init("sw", np.asarray(w_scale, F32)),
             _init("zw", np.zeros(np.shape(w_scale), w.dtype)),
             _init("sy", F32(y_scale)), _init("zy", np.uint8(y_zero_point))]
    ins = ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy"]
    if bias_q is not None:
        inits.append(_init("b", bias_q.astype(np.int32)))
        ins.append("b")
    node = helper.make_node(op, ins, ["y"], name="layer", **(attrs or {}))
    graph = helper.make_graph([node], "layer",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, None)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def run_ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    return np.asarray(s.run(None, {"x": x})[0])
