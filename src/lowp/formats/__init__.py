"""Quantized model formats: QDQ (lowp's own, DequantizeLinear -> op -> QuantizeLinear) and
QOperator (QLinearConv, QLinearMatMul, ONNX Runtime's com.microsoft QLinear* operators), and
lossless conversion between them."""

from __future__ import annotations

import enum
import os

import onnx

from .qoperator import has_qoperator_nodes, to_qdq
from .to_qoperator import to_qoperator


class Format(enum.Enum):
    """How a quantized ONNX model writes its quantized operators."""

    QDQ = "qdq"
    QOPERATOR = "qoperator"


def convert(model: str | os.PathLike[str] | onnx.ModelProto | bytes,
            to: Format | str) -> onnx.ModelProto:
    """The model in format `to`, checked by onnx.checker.

    A QOperator model is read as QDQ (every quantized operator converted, or
    UnsupportedOpError naming the first that cannot be); `Format.QOPERATOR` then turns the
    groups that have a quantized operator into it.

    Examples
    --------
    A float model has no quantized groups, and comes back as it is:

    >>> import lowp, onnx
    >>> from lowp.data import demo_model_path
    >>> qop = lowp.convert(demo_model_path(), "qoperator")
    >>> qop.graph.node == onnx.load(demo_model_path()).graph.node
    True
    """
    from ..ir.graph import load_model

    target = Format(to)
    qdq = load_model(model)        # QOperator nodes become QDQ while loading
    out = to_qoperator(qdq) if target is Format.QOPERATOR else qdq
    if out is not qdq or target is Format.QDQ:
        _check(out)
    return out


def _check(model: onnx.ModelProto) -> None:
    from ..errors import InternalError

    try:
        onnx.checker.check_model(model)
    except Exception as e:   # a converter that writes an invalid graph is lowp's bug
        raise InternalError("convert", model.graph.name, e) from None


__all__ = ["Format", "convert", "has_qoperator_nodes", "to_qdq", "to_qoperator"]
