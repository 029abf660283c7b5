"""One ONNX node with every input a graph input, and the check that both of lowp's backends
give ONNX Runtime's outputs byte for byte (NaN payloads and signed zeros included) at 1 and
2 threads."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper
from onnxruntime.capi.onnxruntime_pybind11_state import Fail

from lowp.errors import NodeError
from lowp.runtime import Session

from .ort_agreement import onnxruntime_run


def node_model(op: str, inputs: list[np.ndarray | None], attrs: dict[str, Any],
               opset: int) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The node (omitted inputs as "") from inputs in0.. to y, and its feeds."""
    names = ["" if x is None else f"in{i}" for i, x in enumerate(inputs)]
    while names and not names[-1]:
        names.pop()
    feeds = {n: x for n, x in zip(names, inputs, strict=False) if n and x is not None}
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], **attrs)], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)
         for n, x in feeds.items()],
        [helper.make_empty_tensor_value_info("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset < 21 else 10
    return model, feeds


def assert_node_agrees(op: str, inputs: list[np.ndarray | None], attrs: dict[str, Any],
                       opset: int) -> np.ndarray:
    """lowp's reference and native backends give ONNX Runtime's y byte for byte at 1 and 2
    threads; returns ONNX Runtime's y."""
    model, feeds = node_model(op, inputs, attrs, opset)
    want = np.empty(0)
    for threads in (1, 2):
        want = onnxruntime_run(model, feeds, threads)[0]
        for backend in ("reference", "native"):
            got = Session(model, backend=backend, threads=threads).run(feeds)["y"]
            assert got.dtype == want.dtype and got.shape == want.shape, (backend, threads)
            assert got.tobytes() == want.tobytes(), (backend, threads, got, want)
    return want


def assert_node_agrees_or_both_refuse(op: str, inputs: list[np.ndarray | None],
                                      attrs: dict[str, Any], opset: int) -> None:
    """assert_node_agrees, or, where ONNX Runtime fails on the node's values, both backends
    refuse them with a NodeError."""
    model, feeds = node_model(op, inputs, attrs, opset)
    try:
        onnxruntime_run(model, feeds)
    except Fail:
        for backend in ("reference", "native"):
            with pytest.raises(NodeError):
                Session(model, backend=backend).run(feeds)
        return
    assert_node_agrees(op, inputs, attrs, opset)
