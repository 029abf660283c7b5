"""ONNX Runtime at one intra-op thread (the order lowp reproduces) and the check that both of
lowp's backends give its outputs bit for bit."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from lowp.runtime import Session, native_float
from lowp.runtime import native_backend as nb


def onnxruntime_run(model: onnx.ModelProto | bytes, feeds: Mapping[str, np.ndarray],
                    threads: int = 1) -> list[np.ndarray]:
    """The model's outputs from ONNX Runtime's CPU provider with `threads` intra-op threads
    (one unless told)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    data = model if isinstance(model, bytes) else model.SerializeToString()
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return list(session.run(None, dict(feeds)))


def assert_sessions_equal_onnxruntime(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """lowp's reference and native backends give ONNX Runtime's y for the one input x, at 1
    and 2 threads, recorded and replayed; returns ONNX Runtime's y (the last one)."""
    want = np.empty(0)
    for threads in (1, 2):
        want = onnxruntime_run(model, {"x": x}, threads)[0]
        for backend in ("reference", "native"):
            session = Session(model, backend=backend, threads=threads)
            for run in range(2):                     # recorded, then replayed
                got = session.run({"x": x})["y"]
                np.testing.assert_array_equal(got, want,
                                              err_msg=f"{backend} {threads} threads {run}")
    return want


def unary_model(op: str, elem_type: int) -> bytes:
    """One `op` node (opset 18) from a 1-D input x of `elem_type` to y."""
    node = helper.make_node(op, ["x"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", elem_type, ["n"])],
        [helper.make_tensor_value_info("y", elem_type, ["n"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def onnxruntime_optimized_ops(model: onnx.ModelProto) -> list[str]:
    """The operator types of ONNX Runtime's optimized graph of `model` (default level)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as d:
        options.optimized_model_filepath = os.path.join(d, "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]


def assert_engines_agree(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                         output: str = "y") -> None:
    """lowp's reference and native backends give ONNX Runtime's first output bit for bit."""
    theirs = onnxruntime_run(model, feeds)[0]
    for backend in ("reference", "native"):
        ours = Session(model, backend=backend).run(dict(feeds))[output]
        np.testing.assert_array_equal(ours, theirs, err_msg=backend)


def assert_bits_agree(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                      threads: int) -> None:
    """The numpy reference and the native kernels (recorded, then replayed) give ONNX
    Runtime's float32 output y bit for bit, NaN payloads included, at `threads` threads."""
    theirs = onnxruntime_run(model, feeds, threads)[0].view(np.uint32)
    with native_float.disabled():
        ours = Session(model, backend="reference", threads=threads).run(dict(feeds))["y"]
    np.testing.assert_array_equal(ours.view(np.uint32), theirs, err_msg="numpy")
    session = Session(model, backend="native", threads=threads)
    for run in range(2):
        ours = session.run(dict(feeds))["y"]
        np.testing.assert_array_equal(ours.view(np.uint32), theirs, err_msg=f"native {run}")


def assert_float_bits_agree(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                            threads: int) -> None:
    """The numpy reference and the native backend (recorded, then replayed) give ONNX
    Runtime's output y bit for bit at `threads` threads, whatever its float (or integer)
    type: compared as unsigned integers of its width, NaN payloads included."""
    theirs = onnxruntime_run(model, feeds, threads)[0]
    bits = np.dtype(f"u{theirs.dtype.itemsize}")
    with native_float.disabled():
        ours = Session(model, backend="reference", threads=threads).run(dict(feeds))["y"]
    np.testing.assert_array_equal(ours.view(bits), theirs.view(bits), err_msg="reference")
    session = Session(model, backend="native", threads=threads)
    for run in range(2):
        ours = session.run(dict(feeds))["y"]
        np.testing.assert_array_equal(ours.view(bits), theirs.view(bits), err_msg=f"native {run}")


def assert_outputs_equal_onnxruntime_on_every_path(model: onnx.ModelProto,
                                                   feeds: Mapping[str, np.ndarray],
                                                   threads: int) -> None:
    """Every output of the auto and reference backends equals ONNX Runtime's bit for bit
    (compared as unsigned integers of its width, NaN payloads included) at `threads`
    threads, on every native path this machine has."""
    names = [o.name for o in model.graph.output]
    want = dict(zip(names, onnxruntime_run(model, feeds, threads), strict=True))
    for path in nb.available_paths():
        with nb.use_path(path):
            for backend in ("auto", "reference"):
                got = Session(model, backend=backend, threads=threads).run(dict(feeds))
                for name, w in want.items():
                    bits = np.dtype(f"u{w.dtype.itemsize}")
                    np.testing.assert_array_equal(got[name].view(bits), w.view(bits),
                                                  err_msg=f"{name} {path} {backend}")
