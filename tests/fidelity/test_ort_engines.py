"""Engine model 'onnxruntime' vs ONNX Runtime: QLinearConv, QLinearMatMul, QDQ Conv/MatMul."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp.fidelity import run_as
from lowp.fidelity.engines import LayerQParams
from lowp.fidelity.engines import conv as model_conv
from lowp.fidelity.engines import matmul as model_matmul
from tests.strategies import conv_cases

from .onnx_models import qdq_layer, qlinear_layer, run_ort

pytest.importorskip("onnxruntime")
F32 = np.float32
TALLY: dict[str, list[int]] = {}


@st.composite
def layer_cases(draw: st.DrawFn, op: str) -> dict[str, object]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    per_channel = draw(st.booleans())
    if op == "Conv":
        c = draw(conv_cases(rank=draw(st.integers(1, 3))))
        g = c.geometry
        m = c.group * c.out_per_group
        x = rng.integers(0, 256, (max(c.batch, 1), c.group * c.in_per_group) + g.spatial
                         ).astype(np.uint8)
        w = rng.integers(-128, 128, (m, c.in_per_group) + g.kernel).astype(np.int8)
        attrs = dict(strides=list(g.strides), pads=list(g.pads), dilations=list(g.dilations),
                     group=c.group)
        k_terms = c.in_per_group * int(np.prod(g.kernel))
    else:
        k_terms, m = draw(st.integers(1, 40)), draw(st.integers(1, 12))
        lead = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
        x = rng.integers(0, 256, lead + (k_terms,)).astype(np.uint8)
        w = rng.integers(-128, 128, (k_terms, m)).astype(np.int8)
        attrs = {}
    x_scale = float(F32(2.0 ** draw(st.floats(-10, -3))))
    w_scale = (np.array([2.0 ** draw(st.floats(-10, -3)) for _ in range(m)], F32)
               if per_channel else np.asarray(F32(2.0 ** draw(st.floats(-10, -3)))))
    y_scale = float(F32(k_terms * 255 * 128 / 4 * x_scale * float(np.max(w_scale)) / 255
                        * draw(st.floats(0.05, 2.0))))
    bias = (rng.integers(-3000, 3000, m).astype(np.int32)
            if draw(st.booleans()) and op == "Conv" else None)
    # ONNX Runtime folds a Relu between the op and its QuantizeLinear only when the output
    # zero point is 0 (the Relu is then the clamp); otherwise it runs the op in float.
    relu = draw(st.booleans())
    return dict(x=x, w=w, bias=bias, x_scale=x_scale, x_zero_point=draw(st.integers(0, 255)),
                w_scale=w_scale, y_scale=y_scale,
                y_zero_point=0 if relu else draw(st.integers(0, 255)), relu=relu, attrs=attrs)


def _tally(kind: str, got: np.ndarray, want: np.ndarray) -> None:
    t = TALLY.setdefault(kind, [0, 0, 0])
    t[0] += 1
    t[1] += want.size
    t[2] += int(np.count_nonzero(got != want))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def _qparams(case: dict[str, object], relu: bool) -> LayerQParams:
    zy = int(case["y_zero_point"])  # type: ignore[call-overload]
    w_scale = np.asarray(case["w_scale"])
    return LayerQParams(float(case["x_scale"]), int(case["x_zero_point"]),  # type: ignore[arg-type, call-overload]
                        w_scale, np.zeros(w_scale.shape, np.int64), float(case["y_scale"]),  # type: ignore[arg-type]
                        zy, zy if relu else 0, 255)


@given(layer_cases("Conv"))
def test_qlinearconv(case: dict[str, object]) -> None:
    model = qlinear_layer("QLinearConv", case["w"], case["bias"], x_scale=case["x_scale"],  # type: ignore[arg-type]
                          x_zero_point=case["x_zero_point"], w_scale=case["w_scale"],  # type: ignore[arg-type]
                          y_scale=case["y_scale"], y_zero_point=case["y_zero_point"],  # type: ignore[arg-type]
                          attrs=case["attrs"])  # type: ignore[arg-type]
    want = run_ort(model, case["x"])  # type: ignore[arg-type]
    a = case["attrs"]
    got = model_conv(case["x"], case["w"], case["bias"], _qparams(case, False),  # type: ignore[arg-type]
                     "onnxruntime", strides=a["strides"], pads=a["pads"],  # type: ignore[index]
                     dilations=a["dilations"], group=a["group"])  # type: ignore[index]
    _tally("QLinearConv", got.astype(np.uint8), want)


@given(layer_cases("MatMul"))
def test_qlinearmatmul(case: dict[str, object]) -> None:
    model = qlinear_layer("QLinearMatMul", case["w"], None, x_scale=case["x_scale"],  # type: ignore[arg-type]
                          x_zero_point=case["x_zero_point"], w_scale=case["w_scale"],  # type: ignore[arg-type]
                          y_scale=case["y_scale"], y_zero_point=case["y_zero_point"])  # type: ignore[arg-type]
    want = run_ort(model, case["x"])  # type: ignore[arg-type]
    got = model_matmul(case["x"], case["w"], None, _qparams(case, False), "onnxruntime")  # type: ignore[arg-type]
    _tally("QLinearMatMul", got.astype(np.uint8), want)


@pytest.mark.parametrize("op", ["Conv", "MatMul"])
def test_qdq_layer_through_run_as(op: str) -> None:
    @given(layer_cases(op))
    def inner(case: dict[str, object]) -> None:
        x = case["x"]
        model = qdq_layer(op, case["w"], case["bias"], x_scale=case["x_scale"],  # type: ignore[arg-type]
                          x_zero_point=case["x_zero_point"], w_scale=case["w_scale"],  # type: ignore[arg-type]
                          y_scale=case["y_scale"], y_zero_point=case["y_zero_point"],  # type: ignore[arg-type]
                          relu=case["relu"], x_shape=x.shape, attrs=case["attrs"])  # type: ignore[arg-type, union-attr]
        want = run_ort(model, x)  # type: ignore[arg-type]
        got = run_as(model, {"x": x}, "onnxruntime")["y"]  # type: ignore[dict-item]
        _tally(f"QDQ {op}", got, want)
    inner()


@pytest.mark.parametrize("per_channel", [False, True])
def test_wide_layers(per_channel: bool) -> None:
    """Realistic sizes: QLinearConv and QDQ Conv / MatMul with thousands of outputs."""
    rng = np.random.default_rng(21 + per_channel)
    for op, x_shape, w_shape, attrs in [
            ("Conv", (2, 16, 14, 14), (32, 16, 3, 3), dict(pads=[1, 1, 1, 1])),
            ("Conv", (2, 32, 12, 12), (32, 1, 3, 3), dict(pads=[1, 1, 1, 1], group=32)),
            ("MatMul", (64, 256), (256, 64), {})]:
        m = w_shape[0] if op == "Conv" else w_shape[1]
        x = rng.integers(0, 256, x_shape).astype(np.uint8)
        w = rng.integers(-128, 128, w_shape).astype(np.int8)
        w_scale = (rng.uniform(2e-3, 2e-2, m).astype(F32) if per_channel
                   else np.asarray(F32(0.01)))
        terms = int(np.prod(w_shape[1:])) if op == "Conv" else w_shape[0]
        case = dict(x=x, w=w, bias=rng.integers(-5000, 5000, m).astype(np.int32)
                    if op == "Conv" else None, x_scale=0.02, x_zero_point=128,
                    w_scale=w_scale, y_scale=float(F32(terms ** 0.5 * 255 * 128 * 0.02
                                                       * float(np.max(w_scale)) / 80)),
                    y_zero_point=100, relu=per_channel, attrs=attrs)
        model = qdq_layer(op, w, case["bias"], x_scale=0.02, x_zero_point=128,  # type: ignore[arg-type]
                          w_scale=w_scale, y_scale=case["y_scale"], y_zero_point=100,  # type: ignore[arg-type]
                          relu=per_channel, x_shape=x_shape, attrs=attrs)
        _tally(f"QDQ {op}", run_as(model, {"x": x}, "onnxruntime")["y"], run_ort(model, x))
        if op == "Conv":
            ql = qlinear_layer("QLinearConv", w, case["bias"], x_scale=0.02,  # type: ignore[arg-type]
                               x_zero_point=128, w_scale=w_scale,
                               y_scale=case["y_scale"], y_zero_point=100, attrs=attrs)  # type: ignore[arg-type]
            got = model_conv(x, w, case["bias"], _qparams(case, False), "onnxruntime",  # type: ignore[arg-type]
                             pads=attrs["pads"], group=int(attrs.get("group", 1)))  # type: ignore[arg-type, call-overload]
            _tally("QLinearConv", got.astype(np.uint8), run_ort(ql, x))


def test_report() -> None:
    for kind, (layers, elements, bad) in sorted(TALLY.items()):
        print(f"onnxruntime {kind}: {layers} layers, {elements} elements, {bad} mismatches")
