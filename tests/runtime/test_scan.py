"""Scan (opset 9 on) against ONNX Runtime: a running state over the slices of the scan
inputs along any axis, either direction, outputs stacked on any axis (O212)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.errors import UnsupportedOpError
from lowp.runtime import Session

from .ort_agreement import assert_float_bits_agree, assert_outputs_equal_onnxruntime_on_every_path

F = TensorProto.FLOAT


def _scan_model(in_axes: list[int], in_dirs: list[int], out_axes: list[int],
                out_dirs: list[int], opset: int = 16, length: int = 5) -> onnx.ModelProto:
    """x [2, 3, length, 4]: the state starts as the mean of x over the scanned axis; each
    step s' = tanh(0.5 s + row_a * row_b + k) with k read from the enclosing graph; the
    outputs are the state and two scan outputs (s' and row_a - s')."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["s", "half"], ["sh"]),
         helper.make_node("Mul", ["ra", "rb"], ["p"]),
         helper.make_node("Add", ["sh", "p"], ["a"]),
         helper.make_node("Add", ["a", "k"], ["ak"]),
         helper.make_node("Tanh", ["ak"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["y1"]),
         helper.make_node("Sub", ["ra", "s_out"], ["y2"])],
        "body",
        [helper.make_tensor_value_info(n, F, None) for n in ("s", "ra", "rb")],
        [helper.make_tensor_value_info(n, F, None) for n in ("s_out", "y1", "y2")],
        [numpy_helper.from_array(np.float32(0.5), "half")])
    rng = np.random.default_rng(5)
    scan = helper.make_node("Scan", ["s0", "x", "x2"], ["s_last", "y1", "y2"], body=body,
                            num_scan_inputs=2, scan_input_axes=in_axes,
                            scan_input_directions=in_dirs, scan_output_axes=out_axes,
                            scan_output_directions=out_dirs)
    axis = in_axes[0] % 4
    nodes = [helper.make_node("ReduceMean", ["x"], ["s0"], axes=[axis], keepdims=0)
             if opset < 18 else
             helper.make_node("ReduceMean", ["x", "ax"], ["s0"], keepdims=0),
             helper.make_node("Neg", ["x"], ["x2"]), scan,
             helper.make_node("Identity", ["y1"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [2, 3, length, 4])],
        [helper.make_tensor_value_info(n, F, None) for n in ("y", "s_last", "y2")],
        [numpy_helper.from_array(rng.normal(0, 0.3, 1).astype(np.float32), "k"),
         numpy_helper.from_array(np.array([axis], np.int64), "ax")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=8)


FORMS = [([2, 2], [0, 0], [0, 0], [0, 0]), ([2, -2], [1, 0], [2, -1], [0, 1]),
         ([-1, 3], [0, 1], [1, 3], [1, 1]), ([0, 0], [1, 1], [0, 2], [0, 0])]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("form", FORMS, ids=str)
def test_scan_matches_onnxruntime(form: tuple[list[int], ...], threads: int) -> None:
    model = _scan_model(*form)
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4)).astype(np.float32)
    assert_float_bits_agree(model, {"x": x}, threads)
    assert_outputs_equal_onnxruntime_on_every_path(model, {"x": x}, threads)


def test_scan_of_an_empty_sequence_keeps_the_initial_state() -> None:
    """No iteration: the states as given and scan outputs of length 0 on their axis, the
    rest of their shape by shape inference (ONNX Runtime 1.32 ends the process with SIGFPE
    on such a Scan, evals/corpus/repro/README.md "Not lowp bugs": not compared)."""
    model = _scan_model([2, 2], [0, 0], [1, -1], [0, 0], length=0)
    x = np.zeros((2, 3, 0, 4), np.float32)
    for backend in ("reference", "native"):
        got = Session(model, backend=backend).run({"x": x})
        assert got["y"].shape == (2, 0, 3, 4)
        assert got["y2"].shape == (2, 3, 4, 0)
        assert got["s_last"].shape == (2, 3, 4)


def test_scan_before_opset_9_is_refused_by_name() -> None:
    """Scan-8 (a batch axis first, an optional sequence_lens input) is refused, naming it."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "r"], ["s2"]),
         helper.make_node("Identity", ["s2"], ["y"])], "body",
        [helper.make_tensor_value_info(n, F, None) for n in ("s", "r")],
        [helper.make_tensor_value_info(n, F, None) for n in ("s2", "y")])
    graph = helper.make_graph(
        [helper.make_node("Scan", ["", "s0", "x"], ["s_last", "y"], name="scan8", body=body,
                          num_scan_inputs=1)], "g",
        [helper.make_tensor_value_info("s0", F, [2, 4]),
         helper.make_tensor_value_info("x", F, [2, 3, 4])],
        [helper.make_tensor_value_info(n, F, None) for n in ("s_last", "y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)], ir_version=4)
    with pytest.raises(UnsupportedOpError, match="Scan.*scan8"):
        Session(model, backend="reference")
