"""Verify a QDQ model: the ONNX checker, a lint against the Target, ONNX Runtime loads it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from ..errors import ModelError, QuantizationError
from ..fixedpoint import requant_scale
from ..ir.graph import Graph, checkable
from ..qparams import QType, quant_range
from ..targets import Target, WeightGranularity

WEIGHTED_OPS = {"Conv": (1, 0), "ConvTranspose": (1, 0), "Gemm": (1, 0), "MatMul": (1, 0)}


@dataclass(frozen=True)
class Violation:
    node: str
    tensor: str
    message: str

    def __str__(self) -> str:
        return f"node '{self.node}', tensor '{self.tensor}': {self.message}"


def lint(model: onnx.ModelProto, target: Target, *,
         allow_16bit: bool = False) -> list[Violation]:
    """Every way the QDQ model breaks `target`'s rules, one Violation each.

    With `allow_16bit`, 16-bit Q/DQ nodes (layers quantized with 16 bits on purpose) are
    checked against the target's 16-bit form instead.
    """
    base_target = target
    graph = Graph(model)
    out: list[Violation] = []
    dq_of: dict[str, onnx.NodeProto] = {}
    q_of: dict[str, onnx.NodeProto] = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear":
            dq_of[node.output[0]] = node
        elif node.op_type == "QuantizeLinear":
            q_of[node.input[0]] = node
    weights = set()
    weight_op: dict[str, str] = {}                    # weight tensor -> consuming op type
    for node in model.graph.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1:
            w = node.input[1]
            if w in dq_of and graph.is_constant(dq_of[w].input[0]):
                weights.add(w)
                weight_op.setdefault(w, node.op_type)

    def params(node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray | None, int | None]:
        scale = graph.constant(node.input[1]) if graph.is_constant(node.input[1]) else None
        if scale is None:
            raise ModelError(f"node '{node.name}': scale '{node.input[1]}' is not a constant")
        zp = (graph.constant(node.input[2]) if len(node.input) > 2 and node.input[2]
              and graph.is_constant(node.input[2]) else None)
        etype = (graph.value_elem_type(node.input[2]) if len(node.input) > 2 and node.input[2]
                 else onnx.TensorProto.UINT8)
        return scale, zp, etype

    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if not graph.is_constant(node.input[1]):
            continue                                  # dynamic: qparams chosen at run time
        scale, zp, etype = params(node)
        tensor = node.output[0] if node.op_type == "DequantizeLinear" else node.input[0]
        if etype == onnx.TensorProto.INT32:
            continue                                  # bias
        target = base_target
        if allow_16bit and etype in (onnx.TensorProto.UINT16, onnx.TensorProto.INT16):
            from .choose import widened
            target = widened(base_target)
        is_weight = tensor in weights or (
            # another constant (a BatchNormalization scale, an Add operand): a weight when
            # it is stored as one, else checked as an activation
            node.op_type == "DequantizeLinear" and graph.is_constant(node.input[0])
            and etype == target.weight_qtype.onnx_type)
        want, role = ((target.weight_qtype, "weight") if is_weight
                      else _activation_qtype(target, scale, node, tensor, out))
        if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
            out.append(Violation(node.name, tensor, f"scale {scale} is not finite and positive"))
        elif np.any(scale < np.float32(target.min_scale)):
            out.append(Violation(node.name, tensor, f"scale {float(np.min(scale)):.3g} is below "
                                 f"{target.name}'s minimum {target.min_scale:.3g}"))
        if etype != want.onnx_type:
            got = QType.from_onnx(etype).value if etype else "unknown"
            out.append(Violation(node.name, tensor, f"{role} type {got}, {target.name} "
                                 f"expects {want.value}"))
            continue
        symmetric = target.weight_symmetric if is_weight else target.activation_symmetric
        mid = 0 if want.signed else (want.qmin + want.qmax + 1) // 2
        if symmetric and zp is not None and np.any(zp != mid):
            out.append(Violation(node.name, tensor, f"{role} zero point {zp.tolist()} must "
                                 f"be {mid} ({target.name} is symmetric)"))
        qmin, qmax = quant_range(want, reduce_range=target.reduce_range and not is_weight,
                                 narrow_range=target.weight_narrow_range and is_weight)
        if zp is not None and (np.any(zp < qmin) or np.any(zp > qmax)):
            out.append(Violation(node.name, tensor, f"zero point {zp.tolist()} outside "
                                 f"[{qmin}, {qmax}]"))
        if is_weight and graph.is_constant(node.input[0]):
            q = graph.constant(node.input[0])
            if q.size and (q.min() < qmin or q.max() > qmax):
                bad = int(q.min()) if q.min() < qmin else int(q.max())
                out.append(Violation(node.name, tensor, f"weight value {bad} outside "
                                     f"[{qmin}, {qmax}] required by {target.name}"))
            if scale.size > 1 and (WeightGranularity.PER_CHANNEL
                                   not in target.weight_granularities):
                out.append(Violation(node.name, tensor,
                                     f"per-channel weights are not supported by {target.name}"))
            elif scale.size > 1 and WeightGranularity.PER_CHANNEL not in (
                    target.granularities_for(weight_op.get(tensor, ""))):
                out.append(Violation(node.name, tensor, f"per-channel weights of "
                                     f"{weight_op[tensor]} are not supported by {target.name}"))
    if target.requant_scale_bounds is not None:
        lo, hi = target.requant_scale_bounds
        for node in model.graph.node:
            if node.op_type not in WEIGHTED_OPS or len(node.input) < 2:
                continue
            x, w, y = node.input[0], node.input[1], node.output[0]
            qy = next((n for n in model.graph.node
                       if n.op_type == "QuantizeLinear" and n.input[0] == y), None)
            if x not in dq_of or w not in dq_of or qy is None:
                continue
            sx, sw, sy = params(dq_of[x])[0], params(dq_of[w])[0], params(qy)[0]
            m = requant_scale(sx, sw, sy)
            if np.any(m < lo) or np.any(m >= hi):
                worst = float(m.min()) if np.any(m < lo) else float(m.max())
                out.append(Violation(node.name, y, f"requantization scale {worst:.3g} outside "
                                     f"[{lo:.3g}, {hi:.3g}) required by {target.name}"))
    return out


def _activation_qtype(target: Target, scale: np.ndarray, node: onnx.NodeProto, tensor: str,
                      out: list[Violation]) -> tuple[QType, str]:
    """The storage type `target` wants for an activation, and its role's name: per tensor,
    or on one grid per channel (`Target.channel_activation_qtype`, a violation where the
    target takes none)."""
    if scale.size <= 1:
        return target.activation_qtype, "activation"
    if target.channel_activation_qtype is None:
        out.append(Violation(node.name, tensor, "per-channel activations are not supported "
                             f"by {target.name}"))
        return target.activation_qtype, "activation"
    return target.channel_activation_qtype, "per-channel activation"


def check_or_raise(model: onnx.ModelProto, target: Target, *,
                   allow_16bit: bool = False) -> None:
    violations = lint(model, target, allow_16bit=allow_16bit)
    if violations:
        lines = "\n  ".join(str(v) for v in violations[:20])
        more = f"\n  ... and {len(violations) - 20} more" if len(violations) > 20 else ""
        raise QuantizationError(f"the quantized model breaks target '{target.name}' "
                                f"({len(violations)} violations):\n  {lines}{more}")


def verify(model: onnx.ModelProto, target: Target,
           sample: Mapping[str, np.ndarray] | None = None, *,
           allow_16bit: bool = False, float_model: onnx.ModelProto | None = None) -> None:
    """Checker, target lint, and a run in ONNX Runtime on `sample` (if given): every float
    output finite, but where `float_model`'s own output is not (a masked position the model
    fills with NaN on purpose)."""
    try:
        # strict inference needs every input's rank; ONNX Runtime takes any shape for an
        # input declared without one (docs/operators.md (O106))
        ranked = all(i.type.WhichOneof("value") != "tensor_type"
                     or i.type.tensor_type.HasField("shape") for i in model.graph.input)
        onnx.checker.check_model(checkable(model), full_check=ranked)
    except Exception as e:
        raise ModelError(f"the quantized model fails the ONNX checker: "
                         f"{str(e).strip().splitlines()[0]}") from None
    check_or_raise(model, target, allow_16bit=allow_16bit)
    from .calibrate import float_session
    try:
        session = float_session(model)
        if sample is not None:
            outputs = session.run(None, dict(sample))
            expected: dict[str, np.ndarray] | None = None   # the float model's, when needed
            for info, value in zip(session.get_outputs(), outputs, strict=True):
                value = np.asarray(value)
                if value.dtype.kind != "f" or np.all(np.isfinite(value)):
                    continue
                if expected is None:
                    expected = _float_outputs(float_model, sample)
                own = expected.get(info.name)
                if (own is None or own.shape != value.shape
                        or np.any(~np.isfinite(value) & np.isfinite(own))):
                    raise ModelError(f"the quantized model's output '{info.name}' is not "
                                     "finite in ONNX Runtime")
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(f"ONNX Runtime cannot run the quantized model: "
                         f"{str(e).strip().splitlines()[0]}") from None


def _float_outputs(model: onnx.ModelProto | None, sample: Mapping[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """The float model's outputs on `sample` in ONNX Runtime (none without a model)."""
    if model is None:
        return {}
    from .calibrate import float_session
    session = float_session(model)
    names = [o.name for o in session.get_outputs()]
    return {n: np.asarray(v) for n, v in zip(names, session.run(None, dict(sample)),
                                              strict=True)}
