"""Float conv nets quantized by ONNX Runtime's quantize_static in both formats, and a
structural fingerprint of a graph (names ignored, initializer values compared)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
import onnx.defs
from onnx import TensorProto, helper, numpy_helper

from lowp.ir.graph import attributes

F32 = np.float32
INPUT_SHAPE = (3, 16, 16)


def float_net(seed: int = 0, opset: int = 17) -> onnx.ModelProto:
    """Conv + Relu, a residual Add, Sigmoid * x (Mul), MaxPool, LeakyRelu, AveragePool,
    Concat, GlobalAveragePool, Flatten, Gemm (transB), MatMul, Softmax."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, shape: tuple[int, ...], std: float) -> str:
        inits.append(numpy_helper.from_array(rng.normal(0, std, shape).astype(F32), name))
        return name

    def conv(x: str, y: str, cin: int, cout: int, k: int = 3) -> None:
        nodes.append(helper.make_node(
            "Conv", [x, const(f"{y}_w", (cout, cin, k, k), 0.3), const(f"{y}_b", (cout,), 0.1)],
            [y], name=y, pads=[k // 2] * 4))

    conv("x", "c1", 3, 8)
    nodes += [helper.make_node("Relu", ["c1"], ["r1"], name="relu")]
    conv("r1", "c2", 8, 8)
    nodes += [helper.make_node("Add", ["c2", "r1"], ["a1"], name="add"),
              helper.make_node("Sigmoid", ["a1"], ["s1"], name="sigmoid"),
              helper.make_node("Mul", ["a1", "s1"], ["m1"], name="mul"),
              helper.make_node("MaxPool", ["m1"], ["p1"], name="maxpool", kernel_shape=[2, 2],
                               strides=[2, 2])]
    conv("p1", "c3", 8, 8)
    nodes += [helper.make_node("LeakyRelu", ["c3"], ["l1"], name="leaky", alpha=0.1),
              helper.make_node("AveragePool", ["l1"], ["ap"], name="avgpool",
                               kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    conv("p1", "c4", 8, 8, k=1)
    nodes += [helper.make_node("Concat", ["ap", "c4"], ["cat"], name="concat", axis=1),
              helper.make_node("GlobalAveragePool", ["cat"], ["g"], name="gap"),
              helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
              helper.make_node("Gemm", ["f", const("fc_w", (12, 16), 0.3),
                                        const("fc_b", (12,), 0.1)], ["fc"], name="fc",
                               transB=1),
              helper.make_node("MatMul", ["fc", const("mm_w", (12, 10), 0.3)], ["mm"],
                               name="matmul"),
              helper.make_node("Softmax", ["mm"], ["y"], name="softmax", axis=-1)]
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                     ["N", *INPUT_SHAPE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def batches(seed: int, n: int = 4, batch: int = 8) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(0, 1, (batch, *INPUT_SHAPE)).astype(F32)} for _ in range(n)]


def ort_quantize(src: str | Path, out: str | Path, calib: Iterable[dict[str, np.ndarray]], *,
                 fmt: str = "QOperator", activations: str = "u8", per_channel: bool = True,
                 contrib_qdq: bool = False) -> Path:
    """ONNX Runtime's quantize_static of the float model file `src` into `out`: fmt
    'QOperator' or 'QDQ', activations 'u8' or 's8', int8 weights (per channel or per
    tensor), calibrated on the feeds of `calib`; with `contrib_qdq`, its com.microsoft
    QuantizeLinear / DequantizeLinear (UseQDQContribOps). The one place tests, tools,
    evals and benchmarks call ONNX Runtime's static quantizer for format work."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)          # the quantizer's advice, per call
    try:
        quantize_static(str(src), str(out), Reader(), quant_format=getattr(QuantFormat, fmt),
                        activation_type=QuantType.QUInt8 if activations == "u8"
                        else QuantType.QInt8, weight_type=QuantType.QInt8,
                        per_channel=per_channel,
                        extra_options={"UseQDQContribOps": contrib_qdq})
    finally:
        logging.getLogger().setLevel(level)
    return Path(out)


def ort_quantized(folder: Path, fmt: str, activations: str, per_channel: bool,
                  opset: int = 17, contrib_qdq: bool = False,
                  net: tuple[str, onnx.ModelProto] | None = None) -> Path:
    """`ort_quantize` of `float_net` at `opset` (or of `net`, a name and a model with
    float_net's input), calibrated on `batches(seed=1)`, written in `folder`."""
    stem = "float" if net is None else net[0]
    src = folder / f"{stem}_{opset}.onnx"
    if not src.exists():
        onnx.save(float_net(opset=opset) if net is None else net[1], src)
    out = folder / (f"{'' if net is None else stem + '_'}{fmt}_{activations}_"
                    f"{'pc' if per_channel else 'pt'}_{opset}{'_ms' if contrib_qdq else ''}.onnx")
    return ort_quantize(src, out, batches(seed=1), fmt=fmt, activations=activations,
                        per_channel=per_channel, contrib_qdq=contrib_qdq)


def fingerprint(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """The graph up to names: every node as (op type, domain, attributes other than those
    at their schema default, what each input is), a tensor being a graph input (by name),
    an initializer (dtype, shape, bytes) or the output of such a node; and what each graph
    output is."""
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    producer = {o: (n, k) for n in g.node for k, o in enumerate(n.output)}
    memo: dict[str, str] = {}

    def tensor(name: str) -> str:
        if not name:
            return "-"
        if name not in memo:
            if name in inits:
                a = inits[name]
                memo[name] = f"init {a.dtype} {a.shape} {hashlib.sha1(a.tobytes()).hexdigest()}"
            elif name in producer:
                n, k = producer[name]
                memo[name] = hashlib.sha1(f"{node(n)} #{k}".encode()).hexdigest()
            else:
                memo[name] = f"input {name}"
        return memo[name]

    def node(n: onnx.NodeProto) -> str:
        attrs = sorted((k, repr(v)) for k, v in attributes(n).items()
                       if not _is_default(n, k, v))
        return repr((n.op_type, n.domain or "", attrs, [tensor(i) for i in n.input]))

    return sorted(node(n) for n in g.node), [tensor(o.name) for o in g.output]


def _is_default(node: onnx.NodeProto, name: str, value: object) -> bool:
    """An attribute written with its schema's default value (Gemm's beta=1.0, say) means
    the same as one left out."""
    try:
        schema = onnx.defs.get_schema(node.op_type, domain=node.domain)
    except onnx.defs.SchemaError:
        return False
    attr = schema.attributes.get(name)
    if attr is None or not attr.default_value.name:
        return False
    return onnx.helper.get_attribute_value(attr.default_value) == value
