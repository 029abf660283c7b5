"""One-node models of any op over named feeds, and the check that both of lowp's backends
give every output of ONNX Runtime's bit for bit at 1 and 2 threads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import helper

import lowp

from .ort_agreement import onnxruntime_run


def one_node_model(op: str, feeds: Mapping[str, np.ndarray], n_out: int = 1,
                   opset: int = 23, **attrs: Any) -> onnx.ModelProto:
    """`op` from the graph inputs `feeds` (in order; "" for an omitted one) to y0, y1, ..."""
    names = list(feeds)
    node = helper.make_node(op, names, [f"y{k}" for k in range(n_out)], **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in feeds.items() if n],
        [helper.make_empty_tensor_value_info(f"y{k}") for k in range(n_out)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def assert_backends_give_onnxruntimes_bits(model: onnx.ModelProto,
                                           feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Every output of the reference and native backends, at 1 and 2 threads, equals ONNX
    Runtime's (shape, dtype and bits: NaN payloads and signed zeros included); returns
    ONNX Runtime's outputs."""
    feeds = {n: v for n, v in feeds.items() if n}
    names = [o.name for o in model.graph.output]
    want: list[np.ndarray] = []
    for threads in (1, 2):
        want = onnxruntime_run(model, feeds, threads)
        for backend in ("reference", "native"):
            got = lowp.Session(model, backend=backend, threads=threads).run(dict(feeds))
            for name, w in zip(names, want, strict=True):
                g = got[name]
                where = f"{name} {backend} {threads} threads"
                assert g.shape == w.shape and g.dtype == w.dtype, (where, g.shape, w.shape,
                                                                   g.dtype, w.dtype)
                bits = np.dtype(f"u{w.dtype.itemsize}") if w.dtype.kind in "fc" else w.dtype
                np.testing.assert_array_equal(g.view(bits), w.view(bits), err_msg=where)
    return want
