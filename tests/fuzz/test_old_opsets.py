"""Operator forms of opsets 8-12, which the fuzzers (opset 13-21) never draw but older
exports write (attributes where later opsets take inputs, Upsample, Dropout's ratio,
BatchNormalization's spatial, Softmax over the coerced 2-D view): a Conv, the form, a Conv,
quantized by lowp and run on lowp and ONNX Runtime (check_graph)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from .graphs import Builder, FuzzGraph, Image, conv
from .harness import COMBOS, Quantizer, check_graph

logging.getLogger().setLevel(logging.ERROR)

Form = Callable[[Builder, Image], Image]


def _upsample(b: Builder, x: Image) -> Image:
    y = b.one("Upsample", [x.name, b.floats([1, 1, 2, 2])], mode="nearest")
    return Image(y, x.c, 2 * x.h, 2 * x.w)


def _resize_10(b: Builder, x: Image) -> Image:
    y = b.one("Resize", [x.name, b.floats([1, 1, 2, 2])], mode="linear")
    return Image(y, x.c, 2 * x.h, 2 * x.w)


def _clip_6(b: Builder, x: Image) -> Image:
    return Image(b.one("Clip", [x.name], min=0.0, max=6.0), x.c, x.h, x.w)


def _squeeze_axes(b: Builder, x: Image) -> Image:
    y = b.one("Relu", [b.one("Unsqueeze", [x.name], axes=[2])])
    return Image(b.one("Squeeze", [y], axes=[2]), x.c, x.h, x.w)


def _split_sizes(b: Builder, x: Image) -> Image:
    a, rest = b.node("Split", [x.name], 2, axis=1, split=[2, x.c - 2])
    return Image(b.one("Concat", [b.one("Relu", [rest]), a], axis=1), x.c, x.h, x.w)


def _pad_2(b: Builder, x: Image) -> Image:
    y = b.one("Pad", [x.name], pads=[0, 0, 1, 2, 0, 0, 2, 1], mode="reflect")
    return Image(y, x.c, x.h + 3, x.w + 3)


def _reduce_axes(b: Builder, x: Image) -> Image:
    mean = b.one("ReduceMean", [x.name], axes=[2, 3], keepdims=1)
    return Image(b.one("Mul", [x.name, b.one("Sigmoid", [mean])]), x.c, x.h, x.w)


def _softmax_2d(b: Builder, x: Image) -> Image:
    """axis 1 of a 4-D tensor before opset 13: over C * H * W together."""
    return Image(b.one("Softmax", [x.name], axis=1), x.c, x.h, x.w)


def _log_softmax_2d(b: Builder, x: Image) -> Image:
    return Image(b.one("LogSoftmax", [x.name], axis=2), x.c, x.h, x.w)


def _slice_attrs(b: Builder, x: Image) -> Image:
    y = b.one("Slice", [x.name], starts=[1, 0], ends=[x.h, 1000], axes=[2, 3])
    return Image(y, x.c, x.h - 1, x.w)


def _dropout_ratio(b: Builder, x: Image) -> Image:
    return Image(b.one("Dropout", [x.name], ratio=0.5), x.c, x.h, x.w)


def _batch_norm_spatial(b: Builder, x: Image) -> Image:
    stats = [np.ones(x.c), np.zeros(x.c), np.full(x.c, 0.1), np.ones(x.c)]
    y = b.one("BatchNormalization", [x.name] + [b.const(s.astype(np.float32), "bn")
                                                for s in stats], epsilon=1e-3, spatial=1)
    return Image(y, x.c, x.h, x.w)


# form -> the opsets it is written at
FORMS: dict[Form, tuple[int, ...]] = {
    _upsample: (9,), _resize_10: (10,), _clip_6: (9, 10), _squeeze_axes: (11, 12),
    _split_sizes: (11, 12), _pad_2: (9, 10), _reduce_axes: (11, 12), _softmax_2d: (11, 12),
    _log_softmax_2d: (11, 12), _slice_attrs: (9,), _dropout_ratio: (10, 11),
    _batch_norm_spatial: (8,)}
CASES = [(form, opset) for form, opsets in FORMS.items() for opset in opsets]


def _graph(form: Form, opset: int, batch: int = 2) -> FuzzGraph:
    b = Builder(opset, batch, np.random.default_rng(opset))
    x = form(b, conv(b, Image("input", 4, 6, 6), 6, 3, pad=1))
    y = conv(b, x, 3)
    graph = helper.make_graph(
        b.nodes, form.__name__, [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                               [batch, 4, 6, 6])],
        [helper.make_tensor_value_info(y.name, TensorProto.FLOAT, [batch, 3, y.h, y.w])],
        b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 6
    return FuzzGraph(onnx.shape_inference.infer_shapes(model), "input", (4, 6, 6), (batch,),
                     opset, (form.__name__,))


@pytest.mark.parametrize(("form", "opset"), CASES,
                         ids=[f"{f.__name__.strip('_')}-{o}" for f, o in CASES])
def test_old_opset_form_equals_onnxruntime(form: Form, opset: int) -> None:
    quantizers = [Quantizer("lowp", per_channel=True),
                  Quantizer("lowp", per_channel=False, policy="all")]
    bad = check_graph(_graph(form, opset), quantizers, [COMBOS[0], COMBOS[-1]])
    assert not bad, "\n".join(f"{m.where} {m.output}: {m.detail}" for m in bad)
