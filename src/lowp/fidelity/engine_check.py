"""Run a QDQ model's integer layers on PyTorch's actual quantized engine and sort the outputs.

The engine models in lowp.fidelity.engines say what an engine computes; this module asks the
engine itself, on this CPU, layer by layer: every Conv / Gemm / MatMul whose input, weights
and output are quantized (DequantizeLinear -> op [-> Relu] -> QuantizeLinear, constant int8
weights, uint8 activations) is rebuilt as a torch.ao quantized module, run on the integer
input the model produced, and compared with the engine model; lowp.fidelity.agreement sorts
every differing output (tie residual, engine defect, model error). An engine defect gets a
reproducer: the layer and one input sample that shows it, as an .npz that
`python -m lowp.fidelity.engine_check FILE.npz` runs again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..atomic import open_atomic
from ..errors import LowpError
from .agreement import Agreement, classify, cpu_kernel_family
from .torch_import import LayerKind, TorchLayer, require_torch

#: lowp target names that are PyTorch quantized engines
TORCH_ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")


@dataclass(frozen=True)
class QdqLayer:
    """One quantized Conv / Gemm / MatMul of a QDQ model, as a PyTorch layer."""

    node: str
    x_name: str            # the uint8 tensor the input DequantizeLinear reads
    x_scale: float
    x_zero_point: int
    layer: TorchLayer


@dataclass
class EngineCheck:
    """One layer's outputs from the actual engine against its model."""

    node: str
    engine: str
    agreement: Agreement
    reproducer: str = ""

    def describe(self) -> str:
        a = self.agreement
        parts = [f"{self.engine} on this CPU ({cpu_kernel_family()}): {a.equal} of "
                 f"{a.elements} outputs as modelled"]
        if a.tie_residuals:
            parts.append(f"{a.tie_residuals} tie residuals")
        if a.engine_defects:
            parts.append(f"{a.engine_defects} ENGINE DEFECTS (no rounding of the exact "
                         "value: the engine's error, not lowp's)")
        if a.model_errors:
            parts.append(f"{a.model_errors} model errors (lowp's model of {self.engine} is "
                         "wrong here: please report)")
        if self.reproducer:
            parts.append(f"reproducer: python -m lowp.fidelity.engine_check "
                         f"{self.reproducer}")
        return "; ".join(parts)


def _const(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def qdq_layers(model: onnx.ModelProto) -> list[QdqLayer]:
    """The model's quantized Conv / Gemm / MatMul layers that PyTorch's modules can express.

    Skipped: int8 activations, asymmetric or auto pads, Gemm with alpha/beta or a transposed
    A, MatMul of two activations, outputs not requantized by one QuantizeLinear.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    out = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        dq = [producer.get(i) for i in node.input]
        if any(d is None or d.op_type != "DequantizeLinear" for d in dq):
            continue
        x_dq, w_dq = dq[0], dq[1]
        assert x_dq is not None and w_dq is not None
        x_scale = _const(model, x_dq.input[1])
        x_zp = _const(model, x_dq.input[2]) if len(x_dq.input) > 2 else None
        w = _const(model, w_dq.input[0])
        w_scale = _const(model, w_dq.input[1])
        w_zp = _const(model, w_dq.input[2]) if len(w_dq.input) > 2 else None
        if (x_scale is None or x_scale.size != 1 or x_zp is None or x_zp.dtype != np.uint8
                or w is None or w.dtype != np.int8 or w_scale is None):
            continue
        bias = None
        if len(node.input) > 2 and node.input[2]:
            b_dq = dq[2]
            assert b_dq is not None
            b = _const(model, b_dq.input[0])
            if b is None or b.dtype != np.int32:
                continue
            bias = (b.astype(np.float32) * np.float32(x_scale) *
                    np.asarray(w_scale, np.float32)).astype(np.float32)
        y = node.output[0]
        relu = False
        nxt = readers.get(y, [])
        if len(nxt) == 1 and nxt[0].op_type == "Relu":
            relu, nxt = True, readers.get(nxt[0].output[0], [])
        if len(nxt) != 1 or nxt[0].op_type != "QuantizeLinear" or len(nxt[0].input) < 3:
            continue
        y_scale, y_zp = _const(model, nxt[0].input[1]), _const(model, nxt[0].input[2])
        if y_scale is None or y_zp is None or y_zp.dtype != np.uint8:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        w_zp_arr = np.zeros_like(w_scale, np.int64) if w_zp is None else w_zp.astype(np.int64)
        common = dict(w_scale=np.asarray(w_scale, np.float32), w_zero_point=w_zp_arr,
                      bias=bias, y_scale=float(y_scale), y_zero_point=int(y_zp), relu=relu)
        if node.op_type == "Conv":
            rank = w.ndim - 2
            pads = tuple(int(p) for p in attrs.get("pads", [0] * 2 * rank))
            if (attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
                    or pads[:rank] != pads[rank:] or not 1 <= rank <= 3):
                continue
            layer = TorchLayer(LayerKind.CONV, weight=w,
                               strides=tuple(attrs.get("strides", [1] * rank)), pads=pads,
                               dilations=tuple(attrs.get("dilations", [1] * rank)),
                               group=int(attrs.get("group", 1)), **common)  # type: ignore[arg-type]
        else:
            if node.op_type == "Gemm" and (attrs.get("transA", 0) or
                                           attrs.get("alpha", 1.0) != 1.0 or
                                           attrs.get("beta", 1.0) != 1.0):
                continue
            if w.ndim != 2 or w_scale.ndim > 1:
                continue
            wt = w if node.op_type == "Gemm" and attrs.get("transB", 0) else w.T
            layer = TorchLayer(LayerKind.LINEAR, weight=np.ascontiguousarray(wt),
                               **common)  # type: ignore[arg-type]
        out.append(QdqLayer(node.name or y, x_dq.input[0], float(x_scale), int(x_zp), layer))
    return out


def torch_module(layer: TorchLayer) -> Any:
    """The torch.ao quantized module holding `layer` (the inverse of torch_import.from_torch),
    its weights prepacked for the quantized engine selected now."""
    import warnings

    torch = require_torch()
    from torch.ao.nn import quantized as nnq
    from torch.ao.nn.intrinsic import quantized as nniq

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = torch.from_numpy(np.ascontiguousarray(layer.weight))
        if layer.w_scale.ndim:
            qw = torch._make_per_channel_quantized_tensor(
                w, torch.from_numpy(layer.w_scale.astype(np.float64)),
                torch.from_numpy(layer.w_zero_point.astype(np.int64)), 0)
        else:
            qw = torch._make_per_tensor_quantized_tensor(w, float(layer.w_scale),
                                                         int(layer.w_zero_point))
        m: Any
        if layer.kind is LayerKind.LINEAR:
            cls = nniq.LinearReLU if layer.relu else nnq.Linear
            m = cls(layer.weight.shape[1], layer.weight.shape[0])
        else:
            rank = layer.weight.ndim - 2
            plain: Any = {1: nnq.Conv1d, 2: nnq.Conv2d, 3: nnq.Conv3d}[rank]
            fused: Any = {1: nniq.ConvReLU1d, 2: nniq.ConvReLU2d, 3: nniq.ConvReLU3d}[rank]
            m = (fused if layer.relu else plain)(
                layer.weight.shape[1] * layer.group, layer.weight.shape[0],
                tuple(layer.weight.shape[2:]), stride=layer.strides,
                padding=layer.pads[:rank], dilation=layer.dilations, groups=layer.group)
        bias = None if layer.bias is None else torch.from_numpy(layer.bias)
        m.set_weight_bias(qw, bias)
        m.scale, m.zero_point = float(layer.y_scale), int(layer.y_zero_point)
    return m


def run_engine(layer: TorchLayer, x: np.ndarray, x_scale: float, x_zero_point: int,
               engine: str) -> np.ndarray:
    """The layer's uint8 outputs computed by PyTorch's quantized engine `engine`."""
    import warnings

    torch = require_torch()
    if engine not in torch.backends.quantized.supported_engines:
        raise LowpError(f"PyTorch has no quantized engine '{engine}' on this machine")
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        m = torch_module(layer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qx = torch._make_per_tensor_quantized_tensor(
                torch.from_numpy(np.ascontiguousarray(x)), float(x_scale), int(x_zero_point))
            return np.asarray(m(qx).int_repr().numpy())
    finally:
        torch.backends.quantized.engine = previous


def check_layer(q: QdqLayer, x: np.ndarray, engine: str) -> tuple[Agreement, np.ndarray]:
    """The actual engine's outputs on `x` sorted against the engine model; and those outputs."""
    got = run_engine(q.layer, x, q.x_scale, q.x_zero_point, engine)
    model = q.layer.run(x, q.x_scale, q.x_zero_point, engine)
    real = q.layer.real_outputs(x, q.x_scale, q.x_zero_point)
    return classify(got, model, real, q.layer.qparams(q.x_scale, q.x_zero_point)), got


def save_reproducer(path: str | os.PathLike[str], q: QdqLayer, x: np.ndarray,
                    engine: str) -> None:
    """Write the layer and its input as an .npz (written atomically)."""
    L = q.layer
    arrays = dict(x=x, weight=L.weight, w_scale=L.w_scale, w_zero_point=L.w_zero_point,
                  x_scale=np.float64(q.x_scale), x_zero_point=np.int64(q.x_zero_point),
                  y_scale=np.float64(L.y_scale), y_zero_point=np.int64(L.y_zero_point),
                  relu=np.bool_(L.relu), kind=np.str_(L.kind.value), engine=np.str_(engine),
                  node=np.str_(q.node), strides=np.asarray(L.strides, np.int64),
                  pads=np.asarray(L.pads, np.int64), dilations=np.asarray(L.dilations, np.int64),
                  group=np.int64(L.group))
    if L.bias is not None:
        arrays["bias"] = L.bias
    with open_atomic(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


def load_reproducer(path: str | os.PathLike[str]) -> tuple[QdqLayer, np.ndarray, str]:
    """The layer, its input and the engine name saved by save_reproducer."""
    with np.load(path, allow_pickle=False) as z:
        layer = TorchLayer(LayerKind(str(z["kind"])), weight=z["weight"], w_scale=z["w_scale"],
                           w_zero_point=z["w_zero_point"],
                           bias=z["bias"] if "bias" in z else None,
                           y_scale=float(z["y_scale"]), y_zero_point=int(z["y_zero_point"]),
                           relu=bool(z["relu"]), strides=tuple(int(s) for s in z["strides"]),
                           pads=tuple(int(p) for p in z["pads"]),
                           dilations=tuple(int(d) for d in z["dilations"]),
                           group=int(z["group"]))
        q = QdqLayer(str(z["node"]), "x", float(z["x_scale"]), int(z["x_zero_point"]), layer)
        return q, z["x"], str(z["engine"])


def check_engine(model: onnx.ModelProto, values: Mapping[str, np.ndarray], engine: str,
                 reproducers: str | os.PathLike[str] | None = None) -> list[EngineCheck]:
    """Every layer of `qdq_layers(model)` whose input is in `values`, on `engine`.

    `values` maps tensor names to the integer tensors the model produced (channels-first, the
    first axis the samples). With `reproducers`, a layer with engine defects gets an .npz
    there holding the first sample that shows one.
    """
    checks = []
    for q in qdq_layers(model):
        x = values.get(q.x_name)
        if x is None or np.asarray(x).dtype != np.uint8:
            continue
        x = np.asarray(x)
        a, _ = check_layer(q, x, engine)
        check = EngineCheck(q.node, engine, a)
        if a.engine_defects and reproducers is not None:
            sample = a.defect_at[0] // max(1, a.elements // max(1, x.shape[0]))
            xs = x[sample:sample + 1]
            if check_layer(q, xs, engine)[0].engine_defects:
                safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in q.node)
                path = Path(reproducers) / f"{engine}-{safe}.npz"
                Path(reproducers).mkdir(parents=True, exist_ok=True)
                save_reproducer(path, q, xs, engine)
                check.reproducer = str(path)
        checks.append(check)
    return checks


def main(argv: list[str] | None = None) -> int:
    """Run a saved reproducer: the engine's outputs against exact arithmetic."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lowp.fidelity.engine_check REPRODUCER.npz", file=sys.stderr)
        return 2
    try:
        q, x, engine = load_reproducer(args[0])
    except (OSError, ValueError, KeyError) as e:
        print(f"{args[0]}: not a reproducer written by lowp compare --run-engines ({e})",
              file=sys.stderr)
        return 2
    a, got = check_layer(q, x, engine)
    model = q.layer.run(x, q.x_scale, q.x_zero_point, engine)
    real = q.layer.real_outputs(x, q.x_scale, q.x_zero_point)
    print(f"{q.node}: {q.layer.kind.value}, x {x.shape}, w {q.layer.weight.shape}, strides "
          f"{q.layer.strides}, pads {q.layer.pads}, dilations {q.layer.dilations}, group "
          f"{q.layer.group}; engine {engine} on {cpu_kernel_family()}")
    print(f"{a.engine_defects} engine defects, {a.tie_residuals} tie residuals, "
          f"{a.model_errors} model errors of {a.elements} outputs")
    for i in a.defect_at:
        at = tuple(int(k) for k in np.unravel_index(i, got.shape))
        print(f"  output {at}: engine {int(got.ravel()[i])}, "
              f"exact {float(real.ravel()[i]):.4f}, model {int(model.ravel()[i])}")
    return 1 if a.engine_defects or a.model_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
