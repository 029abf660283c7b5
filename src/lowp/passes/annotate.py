"""Annotate: decide WHAT to quantize — which nodes, and a spec per tensor.

Rules are data: one `OpRule` per operator type in `RULES`. Output qparams are either the
operator's own (calibrated) or shared with its first input (pure data movement, max pooling),
so that those operators run on integers with no requantization at all.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx
from onnx import TensorProto

from ..config import COMPUTE_HEAVY, Config, QuantPolicy
from ..ir.graph import ONNX_DOMAINS, Graph, attributes
from ..runtime.ort_fusions import TRANSPOSE_HANDLED


class OutputQParams(enum.Enum):
    OWN = "own"          # calibrated for this tensor
    SHARED = "shared"    # same as the first activation input (exact integer data movement)


@dataclass(frozen=True)
class OpRule:
    """How one operator type is quantized."""

    activation_inputs: tuple[int, ...] | None = (0,)   # None: every input
    weight_input: int | None = None
    weight_axis: Callable[[onnx.NodeProto, Graph], int | None] | None = None
    bias_input: int | None = None
    output: OutputQParams = OutputQParams.OWN
    applies: Callable[[onnx.NodeProto, Graph], bool] = lambda node, graph: True


def _conv_axis(node: onnx.NodeProto, graph: Graph) -> int | None:
    return 0


def _conv_transpose_axis(node: onnx.NodeProto, graph: Graph) -> int | None:
    # per tensor: targets (x86, fbgemm) refuse per-channel ConvTranspose weights
    return None


def _gemm_axis(node: onnx.NodeProto, graph: Graph) -> int | None:
    return 0 if attributes(node).get("transB", 0) else 1


def _matmul_axis(node: onnx.NodeProto, graph: Graph) -> int | None:
    return -1 if graph.constant(node.input[1]).ndim >= 2 else None


def _gemm_plain(node: onnx.NodeProto, graph: Graph) -> bool:
    a = attributes(node)
    return float(a.get("alpha", 1.0)) == 1.0 and float(a.get("beta", 1.0)) == 1.0  # type: ignore[arg-type]


def _nearest_resize(node: onnx.NodeProto, graph: Graph) -> bool:
    return attributes(node).get("mode", "nearest") == "nearest"


def _zero_pad(node: onnx.NodeProto, graph: Graph) -> bool:
    a = attributes(node)
    if a.get("mode", "constant") != "constant":
        return True
    if len(node.input) > 2 and node.input[2]:
        return graph.is_constant(node.input[2]) and float(graph.constant(node.input[2])) == 0.0
    return float(a.get("value", 0.0)) == 0.0  # type: ignore[arg-type]


_SHARED = OpRule(output=OutputQParams.SHARED)
_UNARY = OpRule()

RULES: dict[str, OpRule] = {
    "Conv": OpRule(weight_input=1, weight_axis=_conv_axis, bias_input=2),
    "ConvTranspose": OpRule(weight_input=1, weight_axis=_conv_transpose_axis, bias_input=2),
    "Gemm": OpRule(weight_input=1, weight_axis=_gemm_axis, bias_input=2, applies=_gemm_plain),
    "MatMul": OpRule(weight_input=1, weight_axis=_matmul_axis),
    "Add": OpRule(activation_inputs=None),
    "Mul": OpRule(activation_inputs=None),
    "Concat": OpRule(activation_inputs=None),
    "AveragePool": _UNARY,
    "GlobalAveragePool": _UNARY,
    "MaxPool": _SHARED,
    "GlobalMaxPool": _SHARED,
    "Reshape": _SHARED,
    "Flatten": _SHARED,
    "Transpose": _SHARED,
    "Squeeze": _SHARED,
    "Unsqueeze": _SHARED,
    "Slice": _SHARED,
    "Split": _SHARED,
    "Gather": OpRule(output=OutputQParams.SHARED,
                     applies=lambda node, graph: not graph.is_constant(node.input[0])),
    "Resize": OpRule(output=OutputQParams.SHARED, applies=_nearest_resize),
    "Pad": OpRule(output=OutputQParams.SHARED, applies=_zero_pad),
    "Sigmoid": _UNARY, "Tanh": _UNARY, "HardSwish": _UNARY, "HardSigmoid": _UNARY,
    "LeakyRelu": _UNARY, "Gelu": _UNARY, "Relu": _UNARY, "Clip": _UNARY, "Elu": _UNARY,
    "Softplus": _UNARY,
}

# Activations that vanish into the producer's output quantization (zero point == qmin).
_FUSABLE_ACTIVATIONS = {"Relu", "Clip"}
_FUSING_PRODUCERS = {"Conv", "Gemm", "MatMul", "Add"}


@dataclass(frozen=True)
class WeightSpec:
    node: str
    axis: int | None            # None: per tensor
    groups: int = 1             # convolution groups (for per-group weights)


@dataclass(frozen=True)
class BiasSpec:
    node: str
    input: str                  # activation tensor whose scale multiplies
    weight: str                 # weight tensor whose scale multiplies


@dataclass
class Annotation:
    """The decision of what is quantized and how; produced once, read by later passes."""

    nodes: list[str] = field(default_factory=list)          # quantized node names
    activations: list[str] = field(default_factory=list)    # tensors with their own qparams
    shared: dict[str, str] = field(default_factory=dict)    # tensor -> tensor it copies
    weights: dict[str, WeightSpec] = field(default_factory=dict)
    biases: dict[str, BiasSpec] = field(default_factory=dict)
    fused: dict[str, str] = field(default_factory=dict)     # removed act node -> its input

    def qparams_source(self, tensor: str) -> str:
        """The tensor whose calibrated qparams `tensor` uses."""
        seen = set()
        while tensor in self.shared and tensor not in seen:
            seen.add(tensor)
            tensor = self.shared[tensor]
        return tensor

    def quantized_tensors(self) -> list[str]:
        return list(dict.fromkeys([*self.activations, *self.shared]))


def annotate(model: onnx.ModelProto, config: Config) -> Annotation:
    """Decide which nodes and tensors are quantized under `config`."""
    graph = Graph(model)
    candidates = [n for n in model.graph.node if _eligible(n, graph, config)]
    candidates = _without_ort_channels_last_refusals(graph, candidates)
    if config.policy is QuantPolicy.CONNECTED:
        candidates = _connected(candidates, graph,
                                absorbs=not config.resolved_target().activation_symmetric,
                                any_reader=config.absorb_activations)
    ann = Annotation()
    act: dict[str, None] = {}
    for node in candidates:
        rule = RULES[node.op_type]
        act_inputs, weight = _roles(node, rule, graph)
        ann.nodes.append(node.name)
        for t in act_inputs:
            act.setdefault(t)
        if weight is not None:
            axis = rule.weight_axis(node, graph) if rule.weight_axis else None
            groups = int(attributes(node).get("group", 1)) if node.op_type == "Conv" else 1  # type: ignore[call-overload]
            ann.weights[weight] = WeightSpec(node.name, axis, groups)
            if rule.bias_input is not None and rule.bias_input < len(node.input):
                bias = node.input[rule.bias_input]
                if bias and graph.is_constant(bias) and graph.constant(bias).ndim == 1:
                    ann.biases[bias] = BiasSpec(node.name, node.input[0], weight)
        if rule.output is OutputQParams.SHARED and act_inputs:
            for out in node.output:
                ann.shared[out] = act_inputs[0]
        else:
            act.setdefault(node.output[0])
    if not config.resolved_target().activation_symmetric:
        _fuse_activations(model, graph, ann, act)
    ann.activations = [t for t in act if t not in ann.shared]
    return ann


# Operators ONNX Runtime's NhwcTransformer runs channels-last once quantized; a Transpose it
# pushes towards one of them from another cancels there.
_CHANNELS_LAST_WHEN_QUANTIZED = frozenset({"Conv", "AveragePool", "GlobalAveragePool",
                                           "MaxPool"})


def _without_ort_channels_last_refusals(graph: Graph, candidates: list[onnx.NodeProto]
                                        ) -> list[onnx.NodeProto]:
    """Leave float the quantized operators that would move to channels-last in ONNX Runtime
    an operator it cannot run there ((O73), (O356)).

    ONNX Runtime (1.32) runs a quantized convolution or pool channels-last, with a Transpose
    on each side, and its transpose optimizer pushes such a Transpose through the operators
    between two of them to cancel it with the other's: a 4-D Resize included whatever its
    mode, whose CPU kernel then refuses a cubic mode that shrinks the height or width
    without antialias (evals/corpus/repro item 46), and a Pad with an `axes` input (opset
    18; CenterCropPad with `axes` is inlined into one), whose pads it permutes as if they
    covered every axis, so that its Gather of them reads out of bounds (item 296). The file
    does not run, and ONNX Runtime's own quantizer writes such files too. So the quantized
    operators that such an operator's output reaches through operators the optimizer moves
    Transposes through stay float: nothing channels-last follows it, and no Transpose is
    pushed through it."""
    kept = {n.name for n in candidates}
    refused: dict[str, str] = {}
    for node in graph.graph.node:
        why = _ort_channels_last_refusal(node, graph) if node.domain in ONNX_DOMAINS else None
        if why is not None:
            for reader in _channels_last_readers(graph, node.output[0]):
                if reader.name in kept:
                    refused.setdefault(reader.name, why)
    for name, why in refused.items():
        warnings.warn(f"node '{name}' left in float: quantized, ONNX Runtime would run it "
                      f"channels-last and move {why}", UserWarning, stacklevel=3)
    return [n for n in candidates if n.name not in refused]


def _ort_channels_last_refusal(node: onnx.NodeProto, graph: Graph) -> str | None:
    """Why ONNX Runtime cannot run `node` once its transpose optimizer has moved it to
    channels-last (the rest of a warning), or None."""
    if node.op_type == "Resize" and _cubic_shrink(node, graph):
        return (f"the cubic Resize '{node.name}' (which shrinks the image) to that layout, "
                "where its Resize refuses to shrink in cubic mode")
    axes = (node.op_type == "Pad" and len(node.input) > 3 and bool(node.input[3])) or (
        node.op_type == "CenterCropPad" and "axes" in attributes(node))
    if axes:
        return (f"the {node.op_type} '{node.name}' of chosen axes to that layout, where its "
                "transpose optimizer permutes the pads as if they covered every axis and the "
                "run stops")
    return None


def _cubic_shrink(node: onnx.NodeProto, graph: Graph) -> bool:
    """A 4-D cubic Resize without antialias whose height or width scale is below 1, or not
    known before the run."""
    a = attributes(node)
    if a.get("mode", "nearest") != "cubic" or a.get("antialias", 0) or "axes" in a:
        return False
    shape = graph.inferred_shape(node.input[0])
    if shape is None or len(shape) != 4:
        return shape is None
    inputs = [*node.input, "", "", ""]
    if inputs[2] and graph.is_constant(inputs[2]) and graph.constant(inputs[2]).size == 4:
        return bool((graph.constant(inputs[2])[2:] < 1).any())
    if inputs[3] and graph.is_constant(inputs[3]) and graph.constant(inputs[3]).size == 4:
        sizes = graph.constant(inputs[3])[2:]
        return any(not isinstance(d, int) or d == 0 or int(s) < d
                   for s, d in zip(sizes, shape[2:], strict=True))
    return True


def _channels_last_readers(graph: Graph, tensor: str) -> list[onnx.NodeProto]:
    """The operators of `_CHANNELS_LAST_WHEN_QUANTIZED` that `tensor` reaches through
    operators ONNX Runtime's transpose optimizer moves a Transpose through (Resize too)."""
    seen, todo, found = {tensor}, [tensor], []
    while todo:
        for reader in graph.consumers.get(todo.pop(), []):
            if reader.domain not in ONNX_DOMAINS:
                continue
            if reader.op_type in _CHANNELS_LAST_WHEN_QUANTIZED:
                found.append(reader)
            elif reader.op_type in TRANSPOSE_HANDLED or reader.op_type == "Resize":
                fresh = [o for o in reader.output if o and o not in seen]
                seen.update(fresh)
                todo += fresh
    return found


def _roles(node: onnx.NodeProto, rule: OpRule, graph: Graph) -> tuple[list[str], str | None]:
    """(activation inputs, constant weight input or None) of a node under its rule."""
    act_idx = (range(len(node.input)) if rule.activation_inputs is None
               else rule.activation_inputs)
    act_inputs = [node.input[i] for i in act_idx if i < len(node.input) and node.input[i]]
    weight = (node.input[rule.weight_input]
              if rule.weight_input is not None and rule.weight_input < len(node.input)
              else None)
    if weight is not None and not graph.is_constant(weight):
        act_inputs.append(weight)          # e.g. MatMul of two activations
        weight = None
    return act_inputs, weight


def _eligible(node: onnx.NodeProto, graph: Graph, config: Config) -> bool:
    """The node's type has a rule, the config allows it, and its tensors (inputs to quantize
    and every output) are float."""
    rule = RULES.get(node.op_type)
    if (rule is None or node.domain not in ("", "ai.onnx")
            or node.op_type not in config.quantize_op_types
            or node.op_type in config.exclude_op_types
            or node.name in config.exclude_nodes
            or not node.output or not rule.applies(node, graph)):
        return False
    act_inputs, weight = _roles(node, rule, graph)
    if weight is not None and graph.value_elem_type(weight) != TensorProto.FLOAT:
        return False
    # every output: a MaxPool's Indices (int64) would otherwise share its input's qparams
    return all(_is_float(graph, t) for t in [*act_inputs, *(o for o in node.output if o)])


def _connected(nodes: list[onnx.NodeProto], graph: Graph, *, absorbs: bool = True,
               any_reader: bool = False) -> list[onnx.NodeProto]:
    """Keep compute-heavy nodes; keep a cheap node only while integers flow through it.

    A product of two activations (attention's Q K^T and P V) counts as cheap: it has no
    weight to store in int8, and on lowp's engine its integer form is the same float32 BLAS
    product plus the conversions around it. Measured on the BERT-style family
    (evals/run_families.py, batch 8, one thread): int8 with the attention products in
    integers 3.25 ms, with them in float 2.76 ms, float 4.49 ms (docs/engines.md).

    A cheap node (element-wise, pooling, data movement, lookup table) stays quantized while
    (a) none of its outputs is a graph output, (b) every activation input comes from a
    quantized node (or is a constant) and (c) some consumer of its output is quantized;
    removing one node may remove others, so this runs to a fixed point. Quantizing a cheap
    node anywhere else adds a rounding and a conversion without saving one
    (docs/architecture.md).

    Except, where activations are asymmetric (`absorbs`), a Relu or Clip(0, b) writing a
    graph output that its weighted producer's output quantization absorbs
    (`_absorbed_activation`): it stays whatever else reads its output. The producer's output
    is rounded anyway; absorbed, the graph output is rounded on the activation's range,
    whose negative half is not spent, and the activation is not run (docs/operators.md
    (O112)). With `any_reader` (`Config.absorb_activations`) such an activation stays
    whatever reads it, float operators only included ((O125)).
    """
    kept = {n.name for n in nodes}
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node.name not in kept or (node.op_type in COMPUTE_HEAVY
                                         and not _activation_product(node, graph)):
                continue
            if absorbs and _absorbed_activation(node, graph, kept, any_reader=any_reader):
                continue
            act_inputs, _ = _roles(node, RULES[node.op_type], graph)
            outs = [o for o in node.output if o]
            from_quantized = bool(act_inputs) and all(
                graph.is_constant(t) or (graph.producer.get(t) is not None
                                         and graph.producer[t].name in kept)
                for t in act_inputs) and not all(graph.is_constant(t) for t in act_inputs)
            to_quantized = any(c.name in kept for o in outs for c in graph.consumers.get(o, []))
            if (any(o in graph.output_names for o in outs) or not from_quantized
                    or not to_quantized):
                kept.discard(node.name)
                changed = True
    return [n for n in nodes if n.name in kept]


def _absorbed_activation(node: onnx.NodeProto, graph: Graph, kept: set[str], *,
                         any_reader: bool = False) -> bool:
    """A Relu / Clip(0, b) writing a graph output that `_fuse_activations` absorbs into a
    quantized Conv, Gemm or MatMul with a constant weight: that producer is always quantized
    (its output rounded), and this activation is its output's only reader. Not one read by
    float operators only, unless `any_reader` ((O125)): measured on the corpus as a fixed
    rule, that costs the float step its layer on silero_vad_op15 and silero_vad_v6_fw 1.3 dB
    (docs/accuracy.md); the measured default takes it per model on its folds ((O126))."""
    if (node.op_type not in _FUSABLE_ACTIVATIONS
            or (node.output[0] not in graph.output_names and not any_reader)
            or (node.op_type == "Clip" and not _clip_from_zero(node, graph))):
        return False
    src = node.input[0]
    producer = graph.producer.get(src)
    return (producer is not None and producer.name in kept
            and producer.op_type in _FUSING_PRODUCERS and producer.op_type in COMPUTE_HEAVY
            and not _activation_product(producer, graph)
            and len(graph.consumers[src]) == 1 and src not in graph.output_names)


def _activation_product(node: onnx.NodeProto, graph: Graph) -> bool:
    """A MatMul whose operands are both computed (no constant weight)."""
    return node.op_type == "MatMul" and _roles(node, RULES["MatMul"], graph)[1] is None


def _fuse_activations(model: onnx.ModelProto, graph: Graph, ann: Annotation,
                      act: dict[str, None]) -> None:
    """Relu / Clip(0, b) after a quantized producer are absorbed by its output's Q node."""
    quantized = set(ann.nodes)
    for node in model.graph.node:
        if node.op_type not in _FUSABLE_ACTIVATIONS or node.name not in quantized:
            continue
        if node.op_type == "Clip" and not _clip_from_zero(node, graph):
            continue
        src = node.input[0]
        producer = graph.producer.get(src)
        if (producer is None or producer.op_type not in _FUSING_PRODUCERS
                or producer.name not in quantized or len(graph.consumers[src]) != 1
                or src in graph.output_names or src in ann.shared):
            continue
        ann.fused[node.name] = src
        ann.nodes.remove(node.name)
        act.pop(src, None)         # the producer's output takes the activation's qparams


def _clip_from_zero(node: onnx.NodeProto, graph: Graph) -> bool:
    a = attributes(node)
    if len(node.input) > 1 and node.input[1]:
        return graph.is_constant(node.input[1]) and float(graph.constant(node.input[1])) == 0.0
    return float(a.get("min", float("-inf"))) == 0.0  # type: ignore[arg-type]


def _is_float(graph: Graph, name: str) -> bool:
    """A float tensor (or of unknown type); never a sequence, which is not quantized."""
    t = graph.value_elem_type(name)
    return (t is None or t == TensorProto.FLOAT) and graph.is_tensor(name)
