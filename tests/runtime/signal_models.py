"""One-node models of the signal and normalization ops for the differential tests: their
inputs are graph inputs (fed) or initializers (constants), their output y."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper


def one_node(op: str, opset: int, inputs: Sequence[np.ndarray | None],
             attrs: Mapping[str, Any] | None = None, constants: Sequence[int] = ()
             ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model of one `op` node over `inputs` (None: omitted; positions in `constants`
    as initializers, the others as graph inputs) and its feeds."""
    names = ["" if v is None else f"in{i}" for i, v in enumerate(inputs)]
    while names and not names[-1]:
        names.pop()
    node = helper.make_node(op, names, ["y"], **dict(attrs or {}))
    graph_inputs, initializers, feeds = [], [], {}
    for i, (name, value) in enumerate(zip(names, inputs, strict=False)):
        if not name or value is None:
            continue
        if i in constants:
            initializers.append(numpy_helper.from_array(value, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape))
            feeds[name] = value
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_empty_tensor_value_info("y")],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset < 21 else 10
    return model, feeds


def with_nans(x: np.ndarray, rng: np.random.Generator, count: int,
              payload: bool = True) -> np.ndarray:
    """x with `count` values (at random places) NaN, one of them with a payload (float32,
    unless told not to)."""
    out = x.copy()
    flat = out.reshape(-1)
    if flat.size and count:
        places = rng.integers(0, flat.size, count)
        flat[places] = np.nan
        if payload and out.dtype == np.float32:
            flat.view(np.uint32)[places[0]] = 0x7FC01234
    return out
