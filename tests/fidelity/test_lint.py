"""Target lint on hand-made QDQ models: each violation and its exact message."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from lowp.passes.verify import lint
from lowp.targets import get_target

from .onnx_models import qdq_layer

F32 = np.float32


def _conv(w: np.ndarray | None = None, *, x_scale: float = 0.02, w_scale: object = 0.01,
          y_scale: float = 0.1, x_type: int = TensorProto.INT8,
          op: str = "Conv"):
    if w is None:
        w = np.array([[[[1, -127]]]], np.int8) if op != "MatMul" else np.ones((2, 3), np.int8)
    x_shape = (1, 1, 4, 4) if op != "MatMul" else (4, 2)
    return qdq_layer(op, w, None, x_scale=x_scale, x_zero_point=0,
                     w_scale=np.asarray(w_scale, F32), y_scale=y_scale, y_zero_point=0,
                     relu=False, x_shape=x_shape, x_type=x_type)


def _messages(model, target: str) -> list[str]:
    return [str(v) for v in lint(model, get_target(target))]


def test_clean_model_has_no_violations() -> None:
    assert _messages(_conv(), "xnnpack") == []


def test_weight_minus_128_under_xnnpack() -> None:
    model = _conv(np.array([[[[-128, 5]]]], np.int8))
    assert _messages(model, "xnnpack") == [
        "node 'dq_w', tensor 'w_f': weight value -128 outside [-127, 127] required by xnnpack"]


def test_scale_below_xnnpack_minimum() -> None:
    model = _conv(x_scale=2.0 ** -13, y_scale=0.01)
    assert _messages(model, "xnnpack") == [
        "node 'dq_x', tensor 'x_f': scale 0.000122 is below xnnpack's minimum 0.000244"]


def test_requantization_scale_out_of_bounds() -> None:
    model = _conv(x_scale=1.0, w_scale=1.0, y_scale=2.0 ** -10)
    assert _messages(model, "xnnpack") == [
        "node 'layer', tensor 'y_f': requantization scale 1.02e+03 outside "
        "[2.33e-10, 256) required by xnnpack"]


def test_weight_zero_point_must_be_zero() -> None:
    model = _conv()
    for init in model.graph.initializer:
        if init.name == "zw":
            init.raw_data = np.array(3, np.int8).tobytes()
    assert _messages(model, "xnnpack") == [
        "node 'dq_w', tensor 'w_f': weight zero point 3 must be 0 (xnnpack is symmetric)"]


def test_activation_type_under_xnnpack() -> None:
    model = _conv(x_type=TensorProto.UINT8)
    assert "node 'dq_x', tensor 'x_f': activation type uint8, xnnpack expects int8" in \
        _messages(model, "xnnpack")


def test_per_channel_conv_transpose_under_x86() -> None:
    w = np.ones((1, 2, 1, 1), np.int8)                # ConvTranspose weight: (C_in, C_out/g, k)
    model = qdq_layer("ConvTranspose", w, None, x_scale=0.02, x_zero_point=0,
                      w_scale=np.array([0.01, 0.02], F32), y_scale=0.1, y_zero_point=0,
                      relu=False, x_shape=(1, 1, 4, 4))
    for node in model.graph.node:
        if node.name == "dq_w":
            node.attribute[0].i = 1
    assert _messages(model, "x86") == [
        "node 'dq_w', tensor 'w_f': per-channel weights of ConvTranspose are not supported "
        "by x86"]
    assert _messages(model, "onnxruntime") == []
