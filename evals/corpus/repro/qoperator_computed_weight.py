"""Reproducer: a QOperator file whose QLinearConv weight a QLinearMul computes from
constants (ppocrv6_rec_tiny quantized by ONNX Runtime's quantizer in QOperator form; repro
item 199).

    python evals/corpus/repro/qoperator_computed_weight.py [--activation-type u8|s8]

The float model holds its convolution weight weight-only int8: Conv(x, Mul(Cast(w_int8),
w_scale)). quantize_static (QOperator, per channel) quantizes the Mul like any other:
QuantizeLinear of the Cast, the scale as a quantized initializer, a com.microsoft QLinearMul
whose output is the QLinearConv weight (per tensor, of the activation type). ONNX Runtime
computes the chain once and convolves; lowp refused the file ("'..._quantized' is not a
constant") before it computed the chain at load (docs/operators.md (O222)). Printed: the
QLinearConv's weight producer, and lowp's share of outputs equal to ONNX Runtime's at 1 and
2 threads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))


def build_float(seed: int = 0, channels: int = 8) -> onnx.ModelProto:
    """x [1, 3, 12, 20] -> Conv(3x3, weight Mul(Cast(int8), per-channel scale)) -> Relu ->
    Conv(1x1, the same form) -> y; no biases (ONNX Runtime's quantizer fails on a bias
    beside a computed weight, and the ppocr model's convolutions have none)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    src, in_ch = "x", 3
    for k, (out_ch, size) in enumerate(((channels, 3), (channels, 1))):
        stored = rng.integers(-127, 128, (out_ch, in_ch, size, size)).astype(np.int8)
        scale = (rng.random((out_ch, 1, 1, 1)) * 0.01 + 0.001).astype(np.float32)
        inits += [numpy_helper.from_array(stored, f"w{k}_int8"),
                  numpy_helper.from_array(scale, f"w{k}_per_channel")]
        nodes += [helper.make_node("Cast", [f"w{k}_int8"], [f"w{k}_cast"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [f"w{k}_cast", f"w{k}_per_channel"], [f"w{k}"]),
                  helper.make_node("Conv", [src, f"w{k}"], [f"conv{k}"],
                                   pads=[size // 2] * 4)]
        if k == 0:
            nodes.append(helper.make_node("Relu", ["conv0"], ["relu0"]))
            src = "relu0"
        in_ch = out_ch
    graph = helper.make_graph(
        nodes, "weight_only_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 20])],
        [helper.make_tensor_value_info("conv1", TensorProto.FLOAT, [1, channels, 12, 20])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def feeds(seed: int, count: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 3, 12, 20)).astype(np.float32)}
            for _ in range(count)]


def build(activation_type: str = "u8") -> onnx.ModelProto:
    """The float model quantized by ONNX Runtime's quantize_static in QOperator form, per
    channel, uint8 (`u8`) or int8 (`s8`) activations, min/max on 4 batches."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(feeds(0, 4))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "float.onnx", Path(tmp) / "qoperator.onnx"
        onnx.save(build_float(), src)
        quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QOperator,
                        per_channel=True,
                        activation_type=QuantType.QInt8 if activation_type == "s8"
                        else QuantType.QUInt8, weight_type=QuantType.QInt8)
        return onnx.load(out)


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from lowp import Session

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--activation-type", choices=("u8", "s8"), default="u8")
    args = p.parse_args(argv)
    model = build(args.activation_type)
    producer = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == "QLinearConv":
            w = producer.get(node.input[3])
            print(f"{node.name}: weight {node.input[3]!r} from "
                  f"{w.op_type if w is not None else 'an initializer'}")
    for threads in (1, 2):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        runtime = ort.InferenceSession(model.SerializeToString(), opts,
                                       providers=["CPUExecutionProvider"])
        try:
            session = Session(model, threads=threads)
        except Exception as e:  # noqa: BLE001 - the refusal is the finding
            print(f"{threads} thread(s): lowp refuses: {e}")
            continue
        same = total = 0
        for f in feeds(1, 4):
            want, got = runtime.run(None, f)[0], session.run(f)["conv1"]
            same += int(np.sum(want.view(np.uint32) == got.view(np.uint32)))
            total += want.size
        print(f"{threads} thread(s): {100 * same / total:.2f}% of {total} outputs identical")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
