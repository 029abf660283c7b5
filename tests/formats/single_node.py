"""One quantized operator as a model, run by lowp's Session (which reads it in its QDQ form)
and by ONNX Runtime (one thread): shared by tests/formats/test_contrib_ops.py and
tools/qoperator_agreement.py."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

import lowp

MS = "com.microsoft"


def init(name: str, value: object) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def codes(rng: np.random.Generator, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """Random integers over the whole range of `dtype`."""
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


def onnx_type(dtype: type) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def model(node: onnx.NodeProto, inits: list[onnx.TensorProto], feeds: dict[str, np.ndarray],
          out_type: int) -> onnx.ModelProto:
    """The model of the one node `node` (opset 17 and com.microsoft) writing 'y' of the
    rank of its first input."""
    rank = next(iter(feeds.values())).ndim
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(k, onnx_type(v.dtype), list(v.shape))
         for k, v in feeds.items()],
        [helper.make_tensor_value_info("y", out_type, [f"d{i}" for i in range(rank)])], inits)
    return helper.make_model(graph, ir_version=8, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])


def run_both(node: onnx.NodeProto, inits: list[onnx.TensorProto],
             feeds: dict[str, np.ndarray], out_type: int) -> tuple[np.ndarray, np.ndarray]:
    """(lowp, ONNX Runtime) outputs 'y' of the one-node model."""
    import onnxruntime as ort

    m = model(node, inits, feeds, out_type)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    want = ort.InferenceSession(m.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return lowp.Session(m).run(feeds)["y"], want
