"""MaxPool with auto_pad SAME_UPPER / SAME_LOWER where a kernel smaller than its stride
makes ONNX Runtime's pad negative ((O200)): its MaxPool loop (dilations, Indices,
storage_order, every integer MaxPool) and its NCHWc kernel still read the input elements
a negative end pad would drop, where a window reaches them; its MlasPool (float32, none of
those) refuses the node. lowp had cropped those elements (a 3-wide row, kernel 2 dilated
by 2, stride 3: ONNX Runtime's one window reads x[0] and x[2], lowp's x[0] only), refused
Indices, and ran what ONNX Runtime refuses."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.errors import NodeError
from lowp.runtime import Session

from .ort_agreement import assert_outputs_equal_onnxruntime_on_every_path


def _max_pool(shape: tuple[int, ...], attrs: dict[str, Any], *, outputs: int = 1,
              elem: int = TensorProto.FLOAT, qdq: bool = False) -> onnx.ModelProto:
    """One MaxPool named 'pool' (opset 13; `qdq`: between uint8 QuantizeLinear /
    DequantizeLinear pairs, which lowp runs as an integer MaxPool)."""
    names = ["y", "indices"][:outputs]
    pool = helper.make_node("MaxPool", ["a" if qdq else "x"], ["b" if qdq else names[0],
                                                                *names[1:]],
                            name="pool", **attrs)
    nodes, inits = [pool], []
    if qdq:
        inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
                 numpy_helper.from_array(np.array(128, np.uint8), "z")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["a"]), pool,
                 helper.make_node("QuantizeLinear", ["b", "s", "z"], ["qb"]),
                 helper.make_node("DequantizeLinear", ["qb", "s", "z"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", elem, shape)],
        [helper.make_tensor_value_info("y", elem, None),
         helper.make_tensor_value_info("indices", TensorProto.INT64, None)][:outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 9
    return model


def _same(nd: int, k: int, s: int, d: int, ceil: int, auto_pad: str,
          **more: Any) -> dict[str, Any]:
    return {"kernel_shape": [k] * nd, "strides": [s] * nd, "dilations": [d] * nd,
            "ceil_mode": ceil, "auto_pad": auto_pad, **more}


# (input shape, attributes, outputs, element type, QDQ): each has a negative SAME end
# pad whose dropped elements a window reads in ONNX Runtime
CASES = [
    ((1, 3, 3), _same(1, 2, 3, 2, 0, "SAME_UPPER"), 1, TensorProto.FLOAT, False),
    ((1, 3, 3, 3), _same(2, 2, 3, 2, 1, "SAME_LOWER"), 1, TensorProto.FLOAT, False),
    ((1, 3, 7, 7), _same(2, 2, 4, 2, 1, "SAME_UPPER"), 1, TensorProto.FLOAT, False),
    ((1, 2, 3, 3, 3), _same(3, 2, 3, 2, 0, "SAME_UPPER"), 1, TensorProto.FLOAT, False),
    ((1, 16, 3, 3), _same(2, 2, 3, 2, 0, "SAME_LOWER"), 1, TensorProto.FLOAT, False),  # NCHWc
    ((1, 3, 7, 7), _same(2, 2, 4, 1, 0, "SAME_UPPER"), 2, TensorProto.FLOAT, False),  # Indices
    ((1, 3, 7, 7), _same(2, 2, 4, 3, 1, "SAME_LOWER"), 2, TensorProto.FLOAT, False),
    ((1, 3, 7, 7), _same(2, 2, 4, 2, 1, "SAME_LOWER", storage_order=1), 1,
     TensorProto.FLOAT, False),
    ((1, 3, 3), _same(1, 2, 3, 2, 1, "SAME_LOWER"), 1, TensorProto.FLOAT, True),
    ((1, 16, 3, 3), _same(2, 2, 3, 2, 0, "SAME_UPPER"), 1, TensorProto.FLOAT, True),
    ((1, 3, 3, 3), _same(2, 2, 3, 2, 0, "SAME_UPPER"), 1, TensorProto.UINT8, False),
    ((1, 3, 3, 3, 3), _same(3, 2, 4, 2, 1, "SAME_LOWER"), 1, TensorProto.INT8, False),
]
NUMPY_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.UINT8: np.uint8,
               TensorProto.INT8: np.int8}


def _input(shape: tuple[int, ...], elem: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if elem == TensorProto.FLOAT:
        x = rng.standard_normal(shape).astype(np.float32) * 3
        nans = np.array([0x7FC00111, 0xFFC00222, 0x7FA00001], np.uint32).view(np.float32)
        return np.where(rng.random(shape) < 0.1, rng.choice(nans, size=shape), x)
    info = np.iinfo(NUMPY_TYPES[elem])
    return rng.integers(info.min, info.max, shape, endpoint=True, dtype=NUMPY_TYPES[elem])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("shape", "attrs", "outputs", "elem", "qdq"), CASES)
def test_negative_same_pad_reads_what_onnxruntime_reads(
        shape: tuple[int, ...], attrs: dict[str, Any], outputs: int, elem: int, qdq: bool,
        threads: int) -> None:
    model = _max_pool(shape, attrs, outputs=outputs, elem=elem, qdq=qdq)
    for seed in range(3):
        assert_outputs_equal_onnxruntime_on_every_path(model, {"x": _input(shape, elem, seed)},
                                                       threads)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize(("shape", "attrs"), [
    ((1, 3, 9), _same(1, 2, 3, 1, 0, "SAME_UPPER")),
    ((1, 3, 9, 9), _same(2, 1, 3, 1, 1, "SAME_LOWER")),
    ((1, 3, 5, 5, 5), _same(3, 1, 3, 1, 0, "SAME_LOWER")),
])
def test_negative_same_pad_is_refused_where_onnxruntime_refuses(
        shape: tuple[int, ...], attrs: dict[str, Any], backend: str) -> None:
    # float32, undilated, no Indices, channels unknown to the NCHWc transformer: MlasPool
    assert_refused_as_onnxruntime(_max_pool(shape, attrs), shape, backend)


def assert_refused_as_onnxruntime(model: onnx.ModelProto, shape: tuple[int, ...],
                                  backend: str) -> None:
    """ONNX Runtime's MlasPool refuses the pool's negative pads, and lowp refuses it too,
    naming the node."""
    x = np.ones(shape, np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    with pytest.raises(Exception, match="padding values must be non-negative"):
        ort.InferenceSession(model.SerializeToString(), options,
                             providers=["CPUExecutionProvider"]).run(None, {"x": x})
    with pytest.raises(NodeError, match="pool.*negative pads"):
        Session(model, backend=backend).run({"x": x})
