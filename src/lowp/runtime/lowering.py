"""The lowering context: what a lowering function may ask about its node's QDQ
neighbourhood, and the table of lowering functions (one per op type)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ..errors import NodeError
from ..fixedpoint import Requant, RequantMode
from ..ir.graph import Graph, attributes
from ..qparams import PerAxis, PerTensor, QParams, QType, quantize
from .backends import ReferenceBackend
from .plan import Step

# Node metadata that lowp.formats.to_qdq writes on the float operator of a group the model
# file held as one quantized operator (value: that operator, e.g. "QLinearAdd"). ONNX
# Runtime runs such a file's int8 groups in its integer kernels as it does uint8 ones,
# whereas it runs the int8 Conv, MatMul and AveragePool groups of a QDQ file that keep int8
# after its int8 -> uint8 pair conversion (ort_s8_to_u8) in float.
QOPERATOR_KEY = "lowp.qoperator"


@dataclass
class Quantized:
    """An integer tensor feeding or leaving a lowered operator, with its qparams."""

    name: str
    qparams: QParams


class LowerCtx:
    """What a lowering function may ask about its node's QDQ neighbourhood."""

    def __init__(self, graph: Graph, node: onnx.NodeProto, dq_nodes: dict[str, onnx.NodeProto],
                 q_nodes: dict[str, list[onnx.NodeProto]], backend: ReferenceBackend,
                 requant_mode: RequantMode, arithmetic: Any = None,
                 subgraph: bool = False) -> None:
        self.graph = graph
        self.subgraph = subgraph          # inside If/Loop: no arena buffers
        self.node = node
        self.attrs = attributes(node)
        self._dq = dq_nodes
        self._q = q_nodes
        self.backend = backend
        self.requant_mode = requant_mode
        # optional engine arithmetic for Conv/MatMul/Gemm (lowp.fidelity.session.EngineHook)
        self.arithmetic = arithmetic
        self.absorbed: list[onnx.NodeProto] = []      # Q / fused activation nodes replaced

    @property
    def from_qoperator(self) -> bool:
        """The node was one quantized operator in the file (QOPERATOR_KEY)."""
        return any(p.key == QOPERATOR_KEY for p in self.node.metadata_props)

    def qparams_of(self, qdq: onnx.NodeProto, int_tensor: str) -> QParams | None:
        g = self.graph
        if not g.is_constant(qdq.input[1]):
            return None
        scale = g.constant(qdq.input[1]).astype(np.float32)
        if len(qdq.input) > 2 and qdq.input[2]:
            if not g.is_constant(qdq.input[2]):
                return None
            zp = g.constant(qdq.input[2])
            if zp.dtype.name in ("int4", "uint4"):   # no integer kernel takes 4-bit values
                return None
            qtype = QType.from_numpy(zp.dtype)
        else:
            zp = np.zeros(scale.shape, np.int32)
            et = g.value_elem_type(int_tensor)
            qtype = QType.from_onnx(et) if et else QType.UINT8
        if scale.ndim == 0 or scale.size == 1 and "axis" not in attributes(qdq):
            return QParams(scale.reshape(()), zp.reshape(()).astype(np.int32), qtype,
                           qtype.qmin, qtype.qmax, PerTensor())
        if "block_size" in attributes(qdq) and int(attributes(qdq)["block_size"]):  # type: ignore[call-overload]
            return None
        axis = int(attributes(qdq).get("axis", 1))  # type: ignore[call-overload]
        return QParams(scale.reshape(-1), zp.reshape(-1).astype(np.int32), qtype,
                       qtype.qmin, qtype.qmax, PerAxis(axis))

    def act_input(self, i: int) -> Quantized | None:
        """Input i as a per-tensor integer activation (it must come from a DequantizeLinear)."""
        qp = self.dq_input_qparams(i)
        if qp is None or not qp.is_per_tensor:
            return None
        return Quantized(self._dq[self.node.input[i]].input[0], qp)

    def dq_input_qparams(self, i: int) -> QParams | None:
        """The qparams of input i's DequantizeLinear, of any granularity, or None."""
        if i >= len(self.node.input) or not self.node.input[i]:
            return None
        dq = self._dq.get(self.node.input[i])
        return None if dq is None else self.qparams_of(dq, dq.input[0])

    def refuse_per_channel_activations(self, kernel: str, x: QParams, y: QParams) -> None:
        """Raise where the group's input `x` or output `y` (its DequantizeLinear's and
        QuantizeLinear's qparams) has more than one scale or zero point: ONNX Runtime fuses
        the group into `kernel`, which refuses them (docs/operators.md (O239))."""
        per_channel = [name for name, qp in (("input", x), ("output", y))
                       if np.size(qp.scale) > 1 or np.size(qp.zero_point) > 1]
        if per_channel:
            raise NodeError(f"ONNX Runtime fuses this QDQ {self.node.op_type} into {kernel}, "
                            "which refuses the per-channel scale or zero point of its "
                            f"{' and '.join(per_channel)} activation; quantize it per tensor")

    def sole_q_output_qparams(self) -> QParams | None:
        """The qparams, of any granularity, of the QuantizeLinear that alone reads the
        node's first output (not a graph output), or None."""
        out = self.node.output[0]
        consumers = self.graph.consumers.get(out, [])
        if (len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear"
                or out in self.graph.output_names):
            return None
        return self.qparams_of(consumers[0], consumers[0].output[0])

    def const_input(self, i: int) -> tuple[np.ndarray, QParams] | None:
        """Input i as constant integers + qparams (a weight or bias behind a DQ)."""
        if i >= len(self.node.input) or not self.node.input[i]:
            return None
        dq = self._dq.get(self.node.input[i])
        if dq is None or not self.graph.is_constant(dq.input[0]):
            return None
        qp = self.qparams_of(dq, dq.input[0])
        if qp is None:
            return None
        return self.graph.constant(dq.input[0]), qp

    def output(self) -> tuple[Quantized, int, int] | None:
        """The output's Q node (through a fused Relu/Clip): (tensor, qmin, qmax) or None."""
        out = self.node.output[0]
        absorbed = []
        consumers = self.graph.consumers.get(out, [])
        clamp_lo, clamp_hi = -np.inf, np.inf
        if (len(consumers) == 1 and consumers[0].op_type in ("Relu", "Clip")
                and out not in self.graph.output_names):
            act = consumers[0]
            if act.op_type == "Relu":
                clamp_lo = 0.0
            else:
                lo, hi = clip_bounds(act, self.graph)
                if lo is None:
                    return None
                clamp_lo, clamp_hi = lo, hi  # type: ignore[assignment]
            absorbed.append(act)
            out = act.output[0]
            consumers = self.graph.consumers.get(out, [])
        if (len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear"
                or out in self.graph.output_names):
            return None
        q = consumers[0]
        qp = self.qparams_of(q, q.output[0])
        if qp is None or not qp.is_per_tensor:
            return None
        if absorbed and self._ort_arithmetic and not ort_removes_activation(
                absorbed[0], q, self.graph):
            # ONNX Runtime keeps the activation, so its selector does not match the group:
            # DequantizeLinear -> float op -> activation -> QuantizeLinear, as lowp then
            return None
        qmin, qmax = qp.qmin, qp.qmax
        if clamp_lo > -np.inf:
            qmin = max(qmin, int(quantize(np.float32(clamp_lo), qp)))
        if clamp_hi < np.inf:
            qmax = min(qmax, int(quantize(np.float32(clamp_hi), qp)))
        absorbed.append(q)
        self.absorbed = absorbed
        return Quantized(q.output[0], qp), qmin, qmax

    @property
    def _ort_arithmetic(self) -> bool:
        """ONNX Runtime's arithmetic on a QDQ file (not a QOperator file's operator, not
        another requantization mode or engine arithmetic)."""
        return (self.requant_mode is RequantMode.FLOAT32 and self.arithmetic is None
                and not self.from_qoperator)

    def requant(self, m: np.ndarray, y: QParams, qmin: int, qmax: int) -> Requant:
        return Requant(m, int(y.zero_point), qmin, qmax, self.requant_mode,
                       y.qtype.numpy_dtype)

    def step(self, inputs: list[str], outputs: list[str],
             fn: Callable[..., tuple[np.ndarray, ...]], **kw: object) -> Step:
        return Step(self.node.name, self.node.op_type, "int", inputs, outputs, fn,
                    **kw)  # type: ignore[arg-type]


def clip_bounds(node: onnx.NodeProto, graph: Graph) -> tuple[float | None, float]:
    a = attributes(node)
    lo: float | None = float(a.get("min", -np.inf))  # type: ignore[arg-type]
    hi = float(a.get("max", np.inf))  # type: ignore[arg-type]
    for idx in (1, 2):
        if len(node.input) > idx and node.input[idx]:
            if not graph.is_constant(node.input[idx]):
                return None, hi
            v = float(graph.constant(node.input[idx]))
            if idx == 1:
                lo = v
            else:
                hi = v
    return lo, hi


def ort_removes_activation(act: onnx.NodeProto, q: onnx.NodeProto, graph: Graph) -> bool:
    """Whether ONNX Runtime removes the Relu or Clip `act` before QuantizeLinear `q`
    (ReluQuantFusion, ClipQuantFusion), so that its QDQ selectors see the operator before it
    feed `q` directly (docs/operators.md (O102)). 8-bit outputs only; others keep lowp's
    fused activation. A Relu goes when q's zero point is constant, one value, and the
    type's lowest (0 for uint8, -128 for int8). A Clip goes when its bounds are constant
    (absent: unbounded), q's scale and zero point are constant scalars (0-d), and the bounds
    hold every value that quantizes inside the type's range: min <= MinUpper and MaxLower <=
    max (`_q_domain`). In every other case the Relu or Clip stays, the group does not match,
    and ONNX Runtime runs the operator in float."""
    if len(q.input) < 3 or not q.input[2] or not graph.is_constant(q.input[2]):
        return False
    zp = np.asarray(graph.constant(q.input[2]))
    if zp.dtype not in (np.uint8, np.int8) or zp.size != 1:
        return False
    lowest = int(np.iinfo(zp.dtype).min)
    if act.op_type == "Relu":
        return int(zp.reshape(())) == lowest
    lo, hi = clip_bounds(act, graph)
    if lo is None or any(len(act.input) > i and act.input[i]
                         and not graph.is_constant(act.input[i]) for i in (1, 2)):
        return False
    if not graph.is_constant(q.input[1]):
        return False
    scale = np.asarray(graph.constant(q.input[1]))
    if scale.ndim != 0 or scale.dtype != np.float32 or zp.ndim != 0:
        return False
    lower, upper = _q_domain(np.float32(scale), int(zp), lowest, int(np.iinfo(zp.dtype).max))
    return bool(np.float32(lo) <= lower and upper <= np.float32(hi))


def _q_domain(scale: np.float32, zp: int, qmin: int, qmax: int) -> tuple[np.float32,
                                                                          np.float32]:
    """The range a Clip before a QuantizeLinear must cover for ONNX Runtime 1.32 to remove
    it: the largest float32 that quantizes to qmin and the smallest that quantizes to qmax,
    by QuantizeLinear's own arithmetic (x / scale in float32, rounded half to even). This
    is what 1.32 measures (QuantizeDomain's half-way points, times scale, miss it by a
    float32 step at some scales: uint8 zero point 1, scale 0.375 removes
    Clip(-0.18750001, ...); zero point 0, scale 0.31728178 keeps Clip(..., 80.748215),
    whose quotient 254.49998 rounds to 254)."""
    def q(x: np.float32) -> int:
        return int(np.rint(np.float32(x / scale))) + zp
    lower = np.float32(np.float32(np.float32(qmin - zp) + np.float32(0.5)) * scale)
    while q(lower) > qmin:
        lower = np.nextafter(lower, np.float32(-np.inf))
    while q(np.nextafter(lower, np.float32(np.inf))) <= qmin:
        lower = np.nextafter(lower, np.float32(np.inf))
    upper = np.float32(np.float32(np.float32(qmax - zp) - np.float32(0.5)) * scale)
    while q(upper) < qmax:
        upper = np.nextafter(upper, np.float32(np.inf))
    while q(np.nextafter(upper, np.float32(-np.inf))) >= qmax:
        upper = np.nextafter(upper, np.float32(-np.inf))
    return lower, upper


Lowering = Callable[[LowerCtx], Step | None]
LOWERINGS: dict[str, Lowering] = {}


def lowering(*op_types: str) -> Callable[[Lowering], Lowering]:
    def deco(fn: Lowering) -> Lowering:
        for op in op_types:
            LOWERINGS[op] = fn
        return fn
    return deco


def plain_output(ctx: LowerCtx, index: int = 0) -> Quantized | None:
    """Output `index`'s Q node with no fused activation (it would change a table's meaning).

    The Q node is added to the nodes this lowering absorbs.
    """
    name = ctx.node.output[index]
    consumers = ctx.graph.consumers.get(name, [])
    if (len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear"
            or name in ctx.graph.output_names):
        return None
    q = consumers[0]
    qp = ctx.qparams_of(q, q.output[0])
    if qp is None or not qp.is_per_tensor:
        return None
    ctx.absorbed = [*ctx.absorbed, q] if index else [q]
    return Quantized(q.output[0], qp)
