"""SmoothQuant-style scale migration: move activation outliers into the weights.

For a normalization whose output feeds only matrix products with constant weights, each
channel k gets s_k = max|X_k|^alpha / max|W_k|^(1 - alpha); the normalization's scale and
shift are divided by s and the weights' rows multiplied by it. The float model computes the
same function (up to float rounding); its activations have flatter channel ranges, so
per-tensor activation quantization loses less.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from ..inputs import InputSpec, batches
from ..ir.graph import Graph, attributes
from .calibrate import expose_tensors, float_session


def smooth(model: onnx.ModelProto,
           data: Mapping[str, np.ndarray] | Iterable[Mapping[str, np.ndarray]],
           inputs: list[InputSpec], alpha: float, batch_size: int) -> onnx.ModelProto:
    """Return a smoothed copy of `model`; channel maxima are measured on `data`: arrays with
    the samples on the first axis (cut into batches), or an iterable of feeds."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = Graph(out)
    sites = _sites(out, graph)
    if not sites:
        return out
    session = float_session(expose_tensors(out, list(sites)))
    amax: dict[str, np.ndarray] = {}
    feeds = batches(data, inputs, batch_size) if isinstance(data, Mapping) else data
    for feed in feeds:
        for name, value in zip(sites, session.run(list(sites), dict(feed)), strict=True):
            m = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            amax[name] = np.maximum(amax.get(name, m), m)
    inits = {t.name: t for t in out.graph.initializer}
    for tensor, (scale_name, shift_name, consumers) in sites.items():
        weights = [_weight_rows(n, graph) for n in consumers]
        w_max = np.max(np.stack([np.abs(w).max(axis=1) for w in weights]), axis=0)
        s = (np.maximum(amax[tensor], 1e-5) ** alpha
             / np.maximum(w_max, 1e-5) ** (1 - alpha)).astype(np.float32)
        s = np.where(np.isfinite(s) & (s > 0), s, np.float32(1))
        _replace(inits, scale_name, numpy_helper.to_array(inits[scale_name]) / s)
        if shift_name:
            _replace(inits, shift_name, numpy_helper.to_array(inits[shift_name]) / s)
        for node in consumers:
            w = graph.constant(node.input[1]).astype(np.float32)
            trans = node.op_type == "Gemm" and int(attributes(node).get("transB", 0))  # type: ignore[call-overload]
            scaled = w * (s[None, :] if trans else s[:, None])
            _replace(inits, node.input[1], scaled.astype(np.float32))
    return out


def _sites(model: onnx.ModelProto, graph: Graph) -> dict[str, tuple[str, str, list]]:
    """Normalization outputs that only feed weighted matrix products, with the names of the
    per-channel scale and shift initializers to divide."""
    sites: dict[str, tuple[str, str, list]] = {}
    for node in model.graph.node:
        found = _scale_shift(node, graph)
        if found is None:
            continue
        out = node.output[0]
        consumers = graph.consumers.get(out, [])
        if not consumers or out in graph.output_names or not all(
                c.op_type in ("MatMul", "Gemm") and c.input[0] == out
                and c.input[1] in graph.initializers and graph.constant(c.input[1]).ndim == 2
                and sum(1 for i in c.input if i == out) == 1 for c in consumers):
            continue
        shared = [n for n in (*found, *(c.input[1] for c in consumers))
                  if n and len(graph.consumers.get(n, [])) > 1]
        if shared:
            continue                 # an initializer read elsewhere cannot be rewritten
        sites[out] = (*found, consumers)
    return sites


def _scale_shift(node: onnx.NodeProto, graph: Graph) -> tuple[str, str] | None:
    """(scale initializer, shift initializer or '') of a normalization's affine tail."""
    def per_channel(name: str) -> bool:
        return bool(name) and name in graph.initializers and graph.constant(name).ndim == 1

    if node.op_type == "LayerNormalization" and int(attributes(node).get("axis", -1)) == -1:  # type: ignore[call-overload]
        if len(node.input) > 1 and per_channel(node.input[1]):
            shift = node.input[2] if len(node.input) > 2 and per_channel(node.input[2]) else ""
            if len(node.input) > 2 and node.input[2] and not shift:
                return None
            return node.input[1], shift
        return None
    if node.op_type == "Add" and per_channel(node.input[1]):       # decomposed: x * g + b
        mul = graph.producer.get(node.input[0])
        if (mul is not None and mul.op_type == "Mul" and per_channel(mul.input[1])
                and len(graph.consumers.get(mul.output[0], [])) == 1):
            return mul.input[1], node.input[1]
    return None


def _weight_rows(node: onnx.NodeProto, graph: Graph) -> np.ndarray:
    """The weight as (K, N): one row per input channel."""
    w = graph.constant(node.input[1]).astype(np.float32)
    if node.op_type == "Gemm" and int(attributes(node).get("transB", 0)):  # type: ignore[call-overload]
        return w.T
    return w


def _replace(inits: dict[str, onnx.TensorProto], name: str, value: np.ndarray) -> None:
    inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
