"""Lower a (QDQ) ONNX graph to steps: DQ -> op -> Q groups become integer operators,
everything else runs in float. The lowering functions live in lower_linear and
lower_elementwise and register themselves in lowering.LOWERINGS."""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..errors import InternalError, ModelError, NodeError, UnsupportedOpError, named
from ..fixedpoint import RequantMode
from ..ir.graph import Graph, attributes
from ..qparams import PerAxis, QParams, QType, dequantize
from . import (  # noqa: F401  (lower_*: the lowerings)
    lower_elementwise,
    lower_float_region,
    lower_linear,
    moves,
    nchwc_conv,
    per_token_fusion,
)
from .backends import ReferenceBackend
from .fastops import Arena
from .fastops import quantize as fast_quantize
from .float_nn import (
    global_average_pool_channels_last,
    global_max,
    max_pool_channels_last,
    resize_channels_last,
)
from .float_ops import FLOAT_OPS
from .float_registry import TensorSequence
from .fuse import fuse_tables
from .fuse_float import fuse_float_chains
from .fuse_moves import fuse_moves
from .lowering import LOWERINGS, LowerCtx
from .ml_ops import ML_OPS
from .plan import (
    CF,
    CL,
    Step,
    StepFn,
    channels_first_view,
    channels_last_result,
    channels_perm,
    through_channels_first,
)
from .replay import fixed_steps


def lower(model: onnx.ModelProto, backend: ReferenceBackend,
          requant_mode: RequantMode = RequantMode.FLOAT32,
          outer: frozenset[str] = frozenset(), arithmetic: Any = None,
          subgraph: bool = False, outer_constants: frozenset[str] = frozenset()
          ) -> list[Step]:
    """Steps in execution order; only those needed for the graph outputs are kept.

    `subgraph` marks an If/Loop body: its layers allocate outputs per call instead of
    reusing arena buffers.

    `outer` names values a subgraph reads from its enclosing scope, `outer_constants` those
    of them that are constants there (ONNX Runtime prepacks those weights too). `arithmetic`
    (optional, lowp.fidelity) computes Conv/MatMul/Gemm groups with a target engine's
    arithmetic.
    """
    graph = Graph(model)
    graph.outer_constants = outer_constants
    dq_nodes = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    q_nodes: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear":
            q_nodes.setdefault(n.input[0], []).append(n)
    absorbed: set[int] = set()
    steps: list[Step] = []
    lowered: dict[int, Step] = {}
    for node in model.graph.node:
        fn = LOWERINGS.get(node.op_type)
        if fn is None or node.domain not in ("", "ai.onnx"):
            continue
        ctx = LowerCtx(graph, node, dq_nodes, q_nodes, backend, requant_mode, arithmetic,
                       subgraph)
        with _naming(node):
            step = fn(ctx)
        if step is not None:
            lowered[id(node)] = step
            absorbed.update(id(n) for n in ctx.absorbed)
    for node in model.graph.node:
        if id(node) in absorbed:
            continue
        if id(node) in lowered:
            steps.append(lowered[id(node)])
        else:
            with _naming(node):
                steps.append(_float_step(node, graph, backend, requant_mode, subgraph))
    steps = fuse_tables(_prune(steps, graph, outer), set(graph.output_names),
                        reuse=not subgraph)
    if not subgraph:
        # (the one-value initializers: the exponents of Pow steps that chains may take)
        scalars = {n: numpy_helper.to_array(t) for n, t in graph.initializers.items()
                   if math.prod(t.dims) == 1}
        steps = fuse_float_chains(steps, set(graph.output_names), scalars,
                                  fixed_steps(steps, set(graph.initializers)))
        steps = fuse_moves(steps, set(graph.output_names))
    _transpose_where_consumers_want(steps)
    return steps


@contextlib.contextmanager
def _naming(node: onnx.NodeProto) -> Iterator[None]:
    """Errors while lowering `node` name it, as `execute` does for errors while running:
    a NodeError is the model's fault, anything but a LowpError is lowp's (InternalError)."""
    try:
        yield
    except Exception as e:
        failure = named(e, node.op_type, node.name)
        if failure is e:
            raise
        raise failure from (e if isinstance(failure, InternalError) else None)


def fold_constant_quantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """QuantizeLinear of constants (float weights quantized in the file, as some tools
    write them) computed once: its integers become an initializer, so the DequantizeLinear
    after it has constant input and the operator reading the weight lowers to an integer
    one, as ONNX Runtime folds and fuses it. The input model is not modified."""
    graph = Graph(model)
    outputs = set(graph.output_names)
    folded: dict[int, np.ndarray] = {}
    for k, node in enumerate(model.graph.node):
        if (node.op_type == "QuantizeLinear" and node.domain in ("", "ai.onnx")
                and node.output[0] not in outputs
                and all(graph.is_constant(i) for i in node.input if i)):
            step = _qdq_step(node, graph, quantizing=True, subgraph=True)
            values = [graph.constant(i) if i else None for i in node.input]
            folded[k] = np.array(step.fn(*values, layout=CF)[0])
    if not folded:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = list(out.graph.node)
    del out.graph.node[:]
    out.graph.node.extend(n for k, n in enumerate(nodes) if k not in folded)
    out.graph.initializer.extend(numpy_helper.from_array(v, nodes[k].output[0])
                                 for k, v in folded.items())
    return out


def _transpose_where_consumers_want(steps: list[Step]) -> None:
    """A step that can write channels-last itself (a quantize of the model's channels-first
    input, say) does so when every reader of its output takes channels-last data best
    (`_takes_channels_last`); an input that is channels-last already (element-wise float
    glue) it takes as it is."""
    readers: dict[str, list[Step]] = {}
    for s in steps:
        for k in s.act_inputs:
            if k < len(s.inputs) and s.inputs[k]:
                readers.setdefault(s.inputs[k], []).append(s)
    best: dict[int, bool] = {}        # id(step) -> it takes channels-last data best
    for s in reversed(steps):       # (a reader's own choice is made before its producer's)
        if s.channels_last_fn is not None:
            rs = readers.get(s.outputs[0], [])
            if rs and all(best.get(id(r), False) or r.op_type == "Shape" for r in rs) \
                    and any(r.op_type != "Shape" for r in rs):
                s.fn, s.layouts, s.output_layout = _to_channels_last(s), (CF, CL), CL
        best[id(s)] = _takes_channels_last(s, readers, best)


def _takes_channels_last(step: Step, readers: dict[str, list[Step]],
                         best: dict[int, bool]) -> bool:
    """Whether channels-last data suits `step` best: it runs only channels-last (a
    convolution), or writes channels-last from either (and is no Transpose moving the
    channels first, whose channels-first input is its result's memory), or is a Transpose
    moving the channels last (then a view), or runs in either layout and hands it on (a
    float Pad or MaxPool, one activation input) to readers that all take channels-last data
    best (a Shape of it aside, which reads either)."""
    if step.layouts == (CL,) or (step.moves_channels == "to_last" and CL in step.layouts):
        return True
    if step.output_layout is CL and CL in step.layouts:
        return step.moves_channels != "to_first"
    if step.output_layout is not None or CL not in step.layouts or step.kind != "float" \
            or len({step.inputs[k] for k in step.act_inputs if k < len(step.inputs)}) != 1 \
            or step.op_type not in _HANDS_LAYOUT_ON:
        return False
    rs = [r for o in step.outputs if o for r in readers.get(o, [])]
    return bool(rs) and all(best.get(id(r), False) or r.op_type == "Shape" for r in rs) \
        and any(r.op_type != "Shape" for r in rs)


# float steps that run on channels-last data as it is and keep it (one activation input):
# a TensorFlow-converted graph's explicit Pad and MaxPool between two transposes
_HANDS_LAYOUT_ON = frozenset({"Pad", "MaxPool"})


def _to_channels_last(step: Step) -> StepFn:
    """`step.channels_last_fn` on a channels-first input, `step.fn` on a channels-last one
    (the step's outputs are channels-last either way)."""
    same, transposing = step.fn, step.channels_last_fn
    assert transposing is not None

    def run(*vals: np.ndarray, layout: object) -> tuple[np.ndarray, ...]:
        return (same if layout is CL else transposing)(*vals, layout=layout)

    return run


# float operators of other domains that lowp runs (ONNX Runtime's fusions, lowp.runtime.ort_fusions;
# quantize_dynamic's LSTM, float in and out, lowp.runtime.quantized_lstm; ai.onnx.ml,
# lowp.runtime.ml_ops; lowp's fused per-token products, lowp.runtime.per_token_fusion)
_FOREIGN_FLOAT = ML_OPS | frozenset({("com.microsoft", "FusedMatMul"), ("com.microsoft", "Gelu"),
                            ("com.microsoft", "BiasGelu"), ("com.microsoft", "FastGelu"),
                            ("com.microsoft", "SkipLayerNormalization"),
                            ("com.microsoft", "DynamicQuantizeLSTM"),
                            ("com.microsoft", "MatMulIntegerToFloat"),
                            ("com.microsoft", "FusedConv"),
                            (per_token_fusion.DOMAIN, per_token_fusion.OP_TYPE)})


def _foreign_detail(domain: str) -> str:
    """Why an operator of another domain is refused, naming what lowp runs of that domain."""
    runs = sorted(op for d, op in _FOREIGN_FLOAT if d == domain)
    if not runs:
        return f"domain '{domain}' is not supported"
    return f"domain '{domain}' is not supported beyond {', '.join(runs)}"


def _label(node: onnx.NodeProto) -> str:
    """How a refusal names a node: its name, or its first output when it has none (skl2onnx
    and onnxmltools leave ai.onnx.ml nodes unnamed), as formats.rewrite.node_label does."""
    return node.name or (f"output {node.output[0]}" if node.output else "")


def _float_step(node: onnx.NodeProto, graph: Graph, backend: ReferenceBackend,
                requant_mode: RequantMode, subgraph: bool = False) -> Step:
    if node.op_type in ("If", "Loop") and node.domain in ("", "ai.onnx"):
        from .control import control_flow_step
        return control_flow_step(node, graph, backend, requant_mode)
    if node.domain not in ("", "ai.onnx") and (node.domain, node.op_type) not in _FOREIGN_FLOAT:
        raise UnsupportedOpError(node.op_type, _label(node), _foreign_detail(node.domain))
    if node.op_type == "DequantizeLinear":
        return _qdq_step(node, graph, quantizing=False)
    if node.op_type == "QuantizeLinear":
        return _qdq_step(node, graph, quantizing=True, subgraph=subgraph)
    return _float_op_step(node, graph, subgraph)


def _no_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    return {}


def _folded_constant(name: str, graph: Graph, depth: int = 6) -> bool:
    """Whether ONNX Runtime sees `name` as a constant initializer once its constant folding
    ran: an initializer no feed overrides, a Constant, or the output of a node whose inputs
    all are. Not a DequantizeLinear output: its constant folding skips DequantizeLinear
    (kept for its QDQ fusions), so a float Conv reading DequantizeLinear(weights) (a QDQ
    group it left unfused, or weight-only quantization) is not moved to NCHWc and sums in
    the plain Conv's order."""
    if name in graph.initializers:
        return name not in {i.name for i in graph.graph.input}
    if name in graph.outer_constants:
        return True
    node = graph.producer.get(name)
    if node is not None and node.op_type == "Constant":
        return True     # at any depth: ppocrv2_rec's LSTM weights are Concat(Slice(Concat(
        # Unsqueeze(Constant)))), folded by ONNX Runtime and prepacked, not by lowp before
    if node is None or depth == 0 or node.op_type in ("If", "Loop", "Scan"):
        return False
    if node.op_type == "DequantizeLinear":          # of any domain (com.microsoft too)
        return False
    return all(_folded_constant(i, graph, depth - 1) for i in node.input if i)


def _matmul_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime prepacks a MatMul's B when it is a constant 2-D matrix; its product then
    sums in other K blocks (lowp.mlas_sgemm). The rank of a B that is no initializer comes
    from its Constant's value or from shape inference (ppocrv4_rec's weights are Constant
    nodes and the file lists no shapes: lowp summed their K = 240 products in two blocks,
    ONNX Runtime in one)."""
    b = node.input[1]
    if not _folded_constant(b, graph):
        return {"b_packed": False}
    made = graph.producer.get(b)
    if b in graph.initializers:
        rank: int | None = len(graph.initializers[b].dims)
    elif made is not None and made.op_type == "Constant" and made.attribute and \
            made.attribute[0].name == "value":
        rank = len(made.attribute[0].t.dims)
    else:
        shape = graph.inferred_shape(b)
        rank = None if shape is None else len(shape)
    return {"b_packed": rank == 2}


def _conv_transpose_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime transposes a constant ConvTranspose filter once (unless one of its
    per-group dimensions is 1); the GEMM then reads A untransposed."""
    return {"w_constant": _folded_constant(node.input[1], graph)}


def _gemm_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime prepacks a Gemm's constant B; its product then sums in other K blocks."""
    return {"b_packed": _folded_constant(node.input[1], graph)}


def _conv_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime's layout transformer moves a 2-D Conv with constant weights and bias to
    its NCHWc kernels, which sum in another order (lowp.runtime.nchwc_conv)."""
    has_bias = len(node.input) > 2 and bool(node.input[2])
    return {"w_constant": _folded_constant(node.input[1], graph),
            "b_constant": not has_bias or _folded_constant(node.input[2], graph)}


def _pool_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime's layout transformer moves a float 2-D pool to its NCHWc kernels when
    its shape inference knows the channel count (and the block divides it); a global pool
    only when its input is in that layout already (or is a graph input). The count is the
    inferred shape's (the file need not list the shapes of its values), else that of the
    Conv weights the value comes from (`_channels`)."""
    channels = _nchwc_channels(node.input[0], graph)
    if node.op_type in ("GlobalAveragePool", "GlobalMaxPool") and channels and not (
            node.input[0] not in graph.producer or _ort_nchwc(node.input[0], graph)):
        channels = 0
    return {"nchwc_channels": channels}


def _nchwc_channels(name: str, graph: Graph) -> int:
    """The channel count of 4-D `name` when shape inference knows it and MLAS's NCHWc block
    divides it, else 0."""
    block = nchwc_conv.block_size()
    shape = graph.inferred_shape(name)
    channels = (shape[1] if len(shape) == 4 else None) if shape is not None else \
        _channels(name, graph)
    return channels if (isinstance(channels, int) and channels > 0 and block
                        and channels % block == 0) else 0


# activations ONNX Runtime fuses into the convolution before them (ConvActivationFusion),
# which then writes them in its layout (HardSwish too, in ONNX Runtime 1.32)
_CONV_ACTIVATIONS = frozenset({"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "HardSigmoid",
                               "HardSwish"})


def _ort_nchwc(name: str, graph: Graph, depth: int = 256) -> bool:
    """Whether ONNX Runtime's layout transformer (NchwcTransformer) leaves the float value
    `name` in its NCHWc layout: the output of a 2-D Conv it moves there (nchwc_conv.plan),
    of a MaxPool or AveragePool of a block multiple of channels, of the activations fused
    into such a Conv, and of the nodes it carries the layout through when all their inputs
    have it (Relu, Sigmoid, Tanh, BatchNormalization, global pools, Add and Sum, Mul of
    equal shapes, Concat of whole blocks on the channel axis)."""
    node = graph.producer.get(name)
    if node is None or depth == 0 or not (node.domain in ("", "ai.onnx") or _is_fused_conv(node)):
        return False
    op, ins = node.op_type, [i for i in node.input if i]
    if op in ("Conv", "FusedConv"):
        x = graph.inferred_shape(node.input[0])
        if x is None and _channels(node.input[0], graph) is not None:
            x = [0, 0, 0, 0]        # no inferred shape, but the layer before it is known
        w = _constant_shape(node.input[1], graph)
        if x is None or w is None or not all(isinstance(d, int) for d in w):
            return False
        ctx = _conv_context(node, graph)
        group = int(attributes(node).get("group", 1))  # type: ignore[call-overload]
        return nchwc_conv.plan([d if isinstance(d, int) else 0 for d in x],
                               [int(d) for d in w if isinstance(d, int)], group,
                               bool(ctx["w_constant"]), bool(ctx["b_constant"])) is not None
    if op in ("MaxPool", "AveragePool"):
        dilations = attributes(node).get("dilations", [])
        dilated = any(v != 1 for v in dilations)  # type: ignore[attr-defined]
        return (len(node.output) < 2 or not node.output[1]) and not dilated and bool(
            _nchwc_channels(node.input[0], graph))
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return bool(_pool_context(node, graph)["nchwc_channels"])
    if op in ("Relu", "Sigmoid", "Tanh") or _eliminated_identity(node, graph):
        return _ort_nchwc(node.input[0], graph, depth - 1)
    if op == "BatchNormalization":          # rewritten as a 1x1 depthwise NCHWc Conv
        return bool(_batch_norm_context(node, graph)["nchwc"])
    if op in _CONV_ACTIVATIONS:      # fused into a Conv that only it reads
        conv = graph.producer.get(node.input[0])
        return (conv is not None and conv.op_type == "Conv" and conv.domain in ("", "ai.onnx")
                and len(graph.consumers.get(node.input[0], [])) == 1
                and node.input[0] not in graph.output_names
                and _ort_nchwc(node.input[0], graph, depth - 1))
    if op in ("Add", "Sum", "Mul", "Concat") and len(ins) >= 2:
        if not all(_ort_nchwc(i, graph, depth - 1) for i in ins):
            return False
        if op in ("Add", "Sum"):
            return len({_nchwc_channels(i, graph) for i in ins}) == 1
        if op == "Mul":
            shapes = [graph.inferred_shape(i) for i in ins]
            return shapes[0] is not None and all(s == shapes[0] for s in shapes)
        if op == "Concat":
            return int(attributes(node).get("axis", 0)) == 1 and all(  # type: ignore[call-overload]
                _nchwc_channels(i, graph) for i in ins)
        return True
    return False


def _eliminated_identity(node: onnx.NodeProto, graph: Graph) -> bool:
    """An Identity that ONNX Runtime's IdentityElimination (level 1) removes before its
    layout transformer runs: its readers read its input (one not written as a graph
    output)."""
    return (node.op_type == "Identity" and node.domain in ("", "ai.onnx")
            and len(node.input) == 1 and bool(node.input[0])
            and node.output[0] not in graph.output_names)


def _is_fused_conv(node: onnx.NodeProto) -> bool:
    """A com.microsoft FusedConv (lowp.runtime.ort_conv_add, ort_nchwc_add): laid out as
    the Conv it is."""
    return node.op_type == "FusedConv" and node.domain == "com.microsoft"


# An NCHWc value's shape as ONNX Runtime's layout transformer tracks it when shape inference
# cannot (dynamic sizes): per dimension, the value it comes from unchanged and, for the two
# spatial ones, how many stride-2 halvings since.
NchwcDims = tuple[tuple[str, int], ...]


def _ort_nchwc_dims(name: str, graph: Graph, depth: int = 256) -> NchwcDims:
    """The symbolic shape (NchwcDims) of NCHWc value `name` (`_ort_nchwc`): a Conv or pool
    keeps its input's batch and, when its padding keeps a spatial size (before a stride of 1
    or 2), that size; elementwise nodes, BatchNormalization and an Add or Sum of matching
    inputs keep their (first) input's; a Concat its first input's but the channels; every
    other dimension is the value's own."""
    memo = _NCHWC_DIMS.setdefault(graph, {})
    if name not in memo:
        memo[name] = _nchwc_dims_of(name, graph, depth)
    return memo[name]


# _ort_nchwc_dims of each graph's values, once (residual blocks reach a value many ways)
_NCHWC_DIMS: weakref.WeakKeyDictionary[Graph, dict[str, NchwcDims]] = \
    weakref.WeakKeyDictionary()


def _nchwc_dims_of(name: str, graph: Graph, depth: int) -> NchwcDims:
    own: NchwcDims = ((name, 0),) * 4
    node = graph.producer.get(name)
    if node is None or depth == 0:
        return own
    op = node.op_type
    if op in _CONV_ACTIVATIONS and op not in ("Relu", "Sigmoid", "Tanh"):
        node, op = graph.producer[node.input[0]], "Conv"    # the Conv it is fused into
    if op in ("Conv", "FusedConv", "MaxPool", "AveragePool"):
        x = node.input[0]
        if not _ort_nchwc(x, graph) or (op != "MaxPool" and op != "AveragePool"
                                        and _conv_reads_nchw(node, graph)):
            return own
        return _pooled_dims(node, _ort_nchwc_dims(x, graph, depth - 1), own, graph)
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return (_ort_nchwc_dims(node.input[0], graph, depth - 1)[0], *own[1:])
    if op in ("Relu", "Sigmoid", "Tanh", "BatchNormalization") or _eliminated_identity(
            node, graph):
        return _ort_nchwc_dims(node.input[0], graph, depth - 1)
    if op in ("Add", "Sum", "Mul"):
        ins = [i for i in node.input if i]
        return _ort_nchwc_dims(ins[0], graph, depth - 1) if _nchwc_same_shapes(
            ins, graph) or op == "Mul" else own
    if op == "Concat":
        first = _ort_nchwc_dims(node.input[0], graph, depth - 1)
        return (first[0], own[1], *first[2:])
    return own


def _conv_reads_nchw(node: onnx.NodeProto, graph: Graph) -> bool:
    """Whether an NCHWc Conv reads its input in NCHW (fewer input channels than a block,
    no groups: MLAS's NCHW kernel), so that the transformer infers none of its output's
    dimensions."""
    w = _constant_shape(node.input[1], graph)
    group = int(attributes(node).get("group", 1))  # type: ignore[call-overload]
    return (group == 1 and w is not None and isinstance(w[1], int)
            and w[1] < nchwc_conv.block_size())


def _pooled_dims(node: onnx.NodeProto, x: NchwcDims, own: NchwcDims,
                 graph: Graph) -> NchwcDims:
    """ONNX Runtime's ConvPoolShapeInference: the batch from the input; a spatial dimension
    from it when the padding keeps its size (pads summing to kernel - 1, or SAME auto
    padding) with a stride of 1 or 2 (a stride of 2 one more halving), no dilation."""
    a = attributes(node)
    dims = [x[0], *own[1:]]
    pads, strides, dilations = (a.get(k) for k in ("pads", "strides", "dilations"))
    if any(v is not None and len(v) != n  # type: ignore[arg-type]
           for v, n in ((pads, 4), (strides, 2), (dilations, 2))):
        return tuple(dims)
    if node.op_type in ("Conv", "FusedConv"):
        w = _constant_shape(node.input[1], graph)
        kernel = list(w[2:]) if w is not None else [None, None]
    else:
        kernel = list(a.get("kernel_shape", []))  # type: ignore[call-overload]
        if len(kernel) != 2:
            return tuple(dims)
    auto_pad = a.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    same = auto_pad in ("SAME_UPPER", "SAME_LOWER")
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        return tuple(dims)
    if auto_pad != "NOTSET":
        pads = None
    for i in range(2):
        if dilations is not None and dilations[i] != 1:  # type: ignore[index]
            continue
        stride = int(strides[i]) if strides is not None else 1  # type: ignore[index]
        if stride not in (1, 2):
            continue
        padding = int(pads[i]) + int(pads[i + 2]) if pads is not None else 0  # type: ignore[index]
        if padding + 1 == kernel[i] or same:
            dims[2 + i] = (x[2 + i][0], x[2 + i][1] + stride - 1)
    return tuple(dims)


def _nchwc_same_shapes(names: Sequence[str], graph: Graph) -> bool:
    """ONNX Runtime's test that the NCHWc inputs of an Add, Sum or Mul have one shape
    (NchwcTransformerImpl::TransformBinary): every dimension tracked to the same value
    (`_ort_nchwc_dims`), or inferred as the same positive size or the same name."""
    first = _ort_nchwc_dims(names[0], graph)
    s0 = graph.inferred_shape(names[0])
    for name in names[1:]:
        dims = _ort_nchwc_dims(name, graph)
        sn = graph.inferred_shape(name)
        for i in range(4):
            if first[i] == dims[i]:
                continue
            if s0 is None or sn is None or len(s0) != 4 or len(sn) != 4:
                return False
            d0, dn = s0[i], sn[i]
            if isinstance(d0, int) and d0 > 0 and d0 == dn:
                continue
            if isinstance(d0, str) and d0 == dn:
                continue
            return False
    return True


def _constant_shape(name: str, graph: Graph) -> list[int | str | None] | None:
    if name in graph.initializers:
        return list(graph.initializers[name].dims)
    if graph.is_constant(name):
        return list(graph.constant(name).shape)
    return graph.inferred_shape(name)


def _lstm_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime prepacks constant LSTM and GRU weights (W and R separately); the
    products then sum in K blocks of 256 (lowp.mlas_sgemm)."""
    return {"w_packed": _folded_constant(node.input[1], graph),
            "r_packed": _folded_constant(node.input[2], graph)}


def _quantized_lstm_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """What a finished batch entry feeds ONNX Runtime's recurrent product depends on whether
    the node writes Y (lowp.runtime.quantized_lstm)."""
    return {"with_y": bool(node.output) and bool(node.output[0])}


def _resize_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime's layout transformer runs a quantized Conv channels-last and pushes the
    layout through the Identity, MaxPool and Resize nodes after it (and their quantizers);
    there a Resize of 8-bit data is its integer bilinear kernel (float_nn._bilinear_integer,
    (O41))."""
    name, quantized = node.input[0], False
    for _ in range(64):
        p = graph.producer.get(name)
        if p is None or p.domain not in ("", "ai.onnx") or not p.input:
            break
        if p.op_type == "Conv":
            return {"channels_last_integer": quantized}
        if p.op_type not in ("QuantizeLinear", "DequantizeLinear", "Identity", "MaxPool",
                             "Resize"):
            break
        quantized = quantized or p.op_type == "QuantizeLinear"
        name = p.input[0]
    return {"channels_last_integer": False}


# operators whose output has their first input's channel count (`_channels` walks them)
_CHANNEL_KEEPING = frozenset({"MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool",
                              "Relu", "Sigmoid", "Tanh", "HardSigmoid", "BatchNormalization",
                              "Add", "Sum", "Identity"})


def _channels(name: str, graph: Graph, depth: int = 16) -> int | None:
    """The channel count of 4-D `name`: from its listed shape, else (a model without
    value_info) from the weights of the Conv it comes from through channel-keeping
    operators, as ONNX Runtime's own shape inference knows it."""
    shape = graph.value_shape(name)
    if shape is not None:
        ok = len(shape) == 4 and isinstance(shape[1], int) and shape[1] > 0
        return shape[1] if ok else None  # type: ignore[return-value]
    node = graph.producer.get(name)
    if node is None or depth == 0:
        return None
    if (node.op_type == "Conv" or _is_fused_conv(node)) and len(node.input) > 1 \
            and node.input[1] in graph.initializers:
        dims = list(graph.initializers[node.input[1]].dims)
        return dims[0] if len(dims) == 4 else None
    if node.op_type in _CHANNEL_KEEPING:
        return _channels(node.input[0], graph, depth - 1)
    return None


def _batch_norm_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime's NCHWc transformer runs a BatchNormalization of an NCHWc value as a
    1x1 depthwise NCHWc Conv with its own folded constants, scale / sqrt(var + epsilon)
    (not times 1 / sqrt): its four parameters float32 constants of the channel count, no
    training outputs (an absent epsilon is its default there too) ((O52n))."""
    c = _channels(node.input[0], graph)
    attrs = {a.name: a for a in node.attribute}
    spatial = attrs.get("spatial")
    ok = (c is not None and len(node.output) == 1 and len(node.input) == 5
          and (spatial is None or spatial.i == 1)
          and all(i in graph.initializers and i not in {v.name for v in graph.graph.input}
                  and graph.initializers[i].data_type == onnx.TensorProto.FLOAT
                  and list(graph.initializers[i].dims) == [c] for i in node.input[1:]))
    return {"nchwc": ok and _ort_nchwc(node.input[0], graph)}


# what a float operator needs to know of the graph to round as ONNX Runtime does
_ORT_CONTEXT = {"BatchNormalization": _batch_norm_context, "Resize": _resize_context,
                "MatMul": _matmul_context, "FusedMatMul": _matmul_context,
                "ConvTranspose": _conv_transpose_context, "Conv": _conv_context,
                "FusedConv": _conv_context,
                "AveragePool": _pool_context, "GlobalAveragePool": _pool_context,
                "Gemm": _gemm_context,
                "LSTM": _lstm_context,
                "GRU": _lstm_context,
                "DynamicQuantizeLSTM": _quantized_lstm_context}


def _float_op_step(node: onnx.NodeProto, graph: Graph, subgraph: bool = False) -> Step:
    """`node` run by its numpy operator (lowp.runtime.float_ops)."""
    fn = FLOAT_OPS.get(node.op_type)
    if fn is None:
        raise UnsupportedOpError(node.op_type, _label(node), "lowp's engine has no "
                                 "implementation of this operator")
    attrs = attributes(node)
    attrs["opset"] = graph.opset
    attrs["num_outputs"] = len(node.output)
    attrs.update(_ORT_CONTEXT.get(node.op_type, _no_context)(node, graph))
    n_out = len(node.output)
    name, op_type = node.name, node.op_type

    def run(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        try:
            result = fn(*vals, **attrs)
        except UnsupportedOpError as e:
            raise UnsupportedOpError(op_type, name, str(e).split(": ", 1)[-1]) from None
        if not isinstance(result, tuple):
            result = (result,)
        # (a sequence operator's TensorSequence is handed on as it is: a value of the
        # run's tensor dict, which only the sequence operators read)
        return tuple(r if isinstance(r, TensorSequence) else np.asarray(r)  # type: ignore[misc]
                     for r in result[:n_out])

    if node.op_type in LAYOUT_FREE_UNARY and len(node.input) == 1:
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output), run,
                    layouts=(CF, CL), elementwise=True)
    if node.op_type == "Shape":
        # (the shape of channels-last data in ONNX terms)
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    channels_first_view(run), layouts=(CF, CL), output_layout=CF)
    if node.op_type in CHANNEL_VIEW_MOVES or (
            node.op_type == "Resize" and str(attrs.get("mode", "nearest")) == "nearest"):
        # copies or views of input elements: convolutions on both sides of them keep their
        # channels-last layout (a nearest Resize in detectors' necks, through a Concat; the
        # Slice and Squeeze of a 1-D convolution written as a 2-D one)
        perm = attrs.get("perm") if node.op_type == "Transpose" else None
        moving = channels_perm(perm)  # type: ignore[arg-type]
        if moving == "to_last":
            # (channels-last data moved channels-last in ONNX terms, as a TensorFlow-
            # converted graph does after each convolution: the input's memory as it is)
            return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                        channels_first_view(run), layouts=(CF, CL), output_layout=CF,
                        moves_channels=moving)
        step = Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    through_channels_first(run), layouts=(CF, CL), moves_channels=moving)
        if node.op_type == "Transpose":
            # (a transpose of channels-first data whose readers take channels-last data,
            # such as a Quantize before a convolution: one permutation, often none)
            step.channels_last_fn = channels_last_result(run)
        return step
    if node.op_type == "Concat" and node.domain in ("", "ai.onnx"):
        # parts in either layout, all in the same one (execute converts to the first part's):
        # a circular padding (Slice, x, Slice along time) between channels-last convolutions
        # is joined as it is, not converted to channels-first and back
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    _concat_any_layout(fn, attrs, n_out), layouts=(CF, CL),
                    act_inputs=tuple(range(len(node.input))))
    if node.op_type in ("ReduceMean", "ReduceSum") and attrs.get("keepdims", 1) != 0 \
            and _reaches_convolution(graph, node.output[0]):
        # ONNX Runtime's transpose optimizer pushes the channels-last layout of its
        # convolutions through such a reduction when its result goes on to a convolution
        # (a squeeze-excitation mean), so it sums channels-last data in its memory order
        # (docs/operators.md (O18)); lowp then reduces its channels-last data as it is
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    _reduce_channels_last(run, fn, attrs), layouts=(CF, CL))
    if node.op_type == "GlobalMaxPool":
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    _global_max_pool(run), layouts=(CF, CL))
    if node.op_type == "GlobalAveragePool":
        # a dequantized convolution's channels-last output (a squeeze-excitation's mean) is
        # pooled as it is, each channel in MLAS's order, not converted to channels-first
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    _global_average_pool_channels_last(run, attrs), layouts=(CF, CL))
    if node.op_type == "MaxPool" and n_out == 1:
        # a dequantized convolution's channels-last output is pooled as it is, and stays
        # channels-last (docs/native.md, "Float MaxPool on channels-last data")
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    _max_pool_channels_last(run, attrs), layouts=(CF, CL))
    if node.op_type == "BatchNormalization" and n_out == 1:
        # per-channel x * scale + offset: the same two roundings on channels-last data
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    _batch_norm_channels_last(run, attrs), layouts=(CF, CL))
    if node.op_type == "ConvTranspose":
        # channels-last data (a dequantized convolution output) is read in place through a
        # channels-first view: the float GEMM takes its operand with any strides, with the
        # same flags and so the same sums; the result is channels-first
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    channels_first_view(run), layouts=(CF, CL), output_layout=CF)
    if node.op_type == "Resize" and attrs.get("channels_last_integer"):
        # ONNX Runtime's integer bilinear Resize runs on channels-last data: so does lowp's,
        # between the channels-last convolutions (no transposes on either side of it)
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    _resize_channels_last(run, attrs), layouts=(CF, CL))
    if node.op_type == "Split" and node.domain in ("", "ai.onnx"):
        # parts in buffers of its own by native copies (strided views of the input would
        # keep their readers, an LSTM cell's gate activations, from replaying)
        splitter = moves.SplitCopies(n_out, reuse=not subgraph)

        def run_split(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
            return splitter(lambda *a: run(*a, layout=layout), list(vals))

        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    run_split, replayable=True)
    return Step(node.name, node.op_type, "float", list(node.input), list(node.output), run)


# float data movement whose parameters name channels-first axes, run on channels-last data
# through a channels-first view of it (lowp.runtime.plan.through_channels_first)
CHANNEL_VIEW_MOVES = frozenset({"Slice", "Squeeze", "Unsqueeze", "Transpose", "Pad"})


def _concat_any_layout(fn: Any, attrs: dict[str, Any], n_out: int) -> StepFn:
    """Concat whose axis, named in channels-first order, is mapped to the channels-last one
    when its parts are channels-last (rank 3 or more): the same elements in the same
    places of the channels-last result."""
    def concat(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        parts = [v for v in vals if v is not None]
        rank = parts[0].ndim if parts else 0
        axis = int(attrs["axis"])
        if layout is CL and rank >= 3:
            axis = axis + rank if axis < 0 else axis
            axis = 0 if axis == 0 else rank - 1 if axis == 1 else axis - 1
        return (np.asarray(fn(*vals, **{**attrs, "axis": axis})),)[:n_out]

    return concat


def _resize_channels_last(run: StepFn, attrs: dict[str, Any]) -> StepFn:
    """Resize that takes channels-last data as it is where it is the integer bilinear kernel
    (float_nn.resize_channels_last), and through a channels-first view of it otherwise."""
    through = through_channels_first(run)

    def resize(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        x = vals[0]
        if layout is CL and x is not None and x.ndim == 4:
            y = resize_channels_last(x, *vals[1:], **attrs)
            if y is not None:
                return (y,)
        return through(*vals, layout=layout)

    return resize


def _reaches_convolution(graph: Graph, tensor: str, depth: int = 4) -> bool:
    """Whether `tensor` is read by a Conv directly or through Quantize/DequantizeLinear and
    element-wise activations (at most `depth` steps)."""
    for reader in graph.consumers.get(tensor, []):
        if reader.op_type in ("Conv", "QLinearConv"):
            return True
        if depth > 1 and reader.op_type in _TO_CONVOLUTION and reader.output and \
                _reaches_convolution(graph, reader.output[0], depth - 1):
            return True
    return False


def _reduce_channels_last(run: StepFn, fn: Any, attrs: dict[str, Any]) -> StepFn:
    """ReduceSum / ReduceMean (keepdims) that takes channels-last data as it is: its axes
    named in channels-first order are mapped to the channels-last ones and the data reduced
    in its own memory order; the result (reduced axes kept) is channels-last."""
    def reduce(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        x = vals[0]
        if layout is not CL or x is None or x.ndim < 3:
            return run(*vals, layout=layout)
        given = vals[1] if len(vals) > 1 and vals[1] is not None else attrs.get("axes")
        axes = [] if given is None else [int(a) for a in np.asarray(given).reshape(-1)]
        rank = x.ndim
        cl = [0 if a == 0 else rank - 1 if a == 1 else a - 1
              for a in (a + rank if a < 0 else a for a in axes)]
        rest = {k: v for k, v in attrs.items() if k != "axes"}
        return (np.asarray(fn(x, np.asarray(cl, np.int64), **rest)),)

    return reduce


def _global_max_pool(run: StepFn) -> StepFn:
    """GlobalMaxPool that takes channels-last data as it is: the maximum over its spatial
    axes (float_nn.global_max: the same rule as on channels-first data), channels-last."""
    def pool(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        x = vals[0]
        if layout is not CL or x is None or x.ndim < 3:
            return run(*vals, layout=layout)
        return (global_max(x, tuple(range(1, x.ndim - 1))),)

    return pool


def _global_average_pool_channels_last(run: StepFn, attrs: dict[str, Any]) -> StepFn:
    """Float GlobalAveragePool that takes channels-last data as it is (float_nn.
    global_average_pool_channels_last), channels-last; channels-first data, and data the
    native kernel does not take, as `run` computes it."""
    channels = int(attrs.get("nchwc_channels", 0))  # type: ignore[call-overload]
    plain = through_channels_first(run)

    def pool(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        x = vals[0]
        if layout is not CL or x is None:
            return run(*vals, layout=layout)
        y = global_average_pool_channels_last(x, channels)
        return (y,) if y is not None else plain(*vals, layout=layout)

    return pool


def _max_pool_channels_last(run: StepFn, attrs: dict[str, Any]) -> StepFn:
    """Float MaxPool that takes 2-D channels-last data as it is (float_nn.
    max_pool_channels_last); other ranks through a channels-first view."""
    plain = through_channels_first(run)

    def pool(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        x = vals[0]
        if layout is not CL or x is None or x.ndim != 4:
            return plain(*vals, layout=layout)
        return (max_pool_channels_last(x, **attrs),)

    return pool


def _batch_norm_channels_last(run: StepFn, attrs: dict[str, Any]) -> StepFn:
    """Float BatchNormalization that takes channels-last data as it is (the per-channel
    parameters along the last axis), channels-last."""
    def norm(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        if layout is not CL or vals[0] is None or vals[0].ndim < 3:
            return run(*vals, layout=layout)
        return (np.asarray(FLOAT_OPS["BatchNormalization"](*vals, **attrs,
                                                           channels_last=True)),)

    return norm


# float operators of one input that map each element to one element: they run on a
# channels-last value as it is (no conversion to channels-first and back around them)
LAYOUT_FREE_UNARY = frozenset({
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Erf", "Gelu", "Elu",
    "Selu", "Softplus", "Softsign", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal",
})

# what lies between a reduction and the convolution it feeds in a squeeze-excitation block
_TO_CONVOLUTION = frozenset({"QuantizeLinear", "DequantizeLinear", "Clip"}) | LAYOUT_FREE_UNARY


# the stored types of Quantize/DequantizeLinear that run as lowp's integer steps
_INTEGER_QDQ_TYPES = frozenset({TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16,
                                TensorProto.INT16, TensorProto.INT32})


def _qdq_step(node: onnx.NodeProto, graph: Graph, *, quantizing: bool,
              subgraph: bool = False) -> Step:
    attrs = attributes(node)
    axis = int(attrs.get("axis", 1))  # type: ignore[call-overload]
    out_type = None
    if quantizing and len(node.input) > 2 and node.input[2]:
        out_type = graph.value_elem_type(node.input[2])
    elif quantizing and "output_dtype" in attrs and int(attrs["output_dtype"]):  # type: ignore[call-overload]
        out_type = int(attrs["output_dtype"])  # type: ignore[call-overload]
    stored = out_type if quantizing else graph.value_elem_type(node.input[0])
    if int(attrs.get("block_size", 0)) or (  # type: ignore[call-overload]
            stored is not None and stored not in _INTEGER_QDQ_TYPES):
        # blocked, sub-byte and float8/float4 quantization: the operator's float semantics
        return _float_op_step(node, graph)

    def qparams(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None) -> QParams:
        scale = np.asarray(scale, np.float32)
        if zp is not None and np.size(zp) != scale.size:
            raise NodeError(f"zero point of shape {list(np.shape(zp))} for a scale of shape "
                            f"{list(scale.shape)}")
        if zp is None:
            qtype = QType.from_onnx(out_type) if out_type else (
                QType.UINT8 if quantizing else QType.from_numpy(x.dtype))
            zp = np.zeros(scale.shape, qtype.numpy_dtype)
        qtype = QType.from_numpy(zp.dtype)
        if scale.ndim == 0 or scale.size == 1 and scale.ndim <= 1 and x.ndim == 0:
            return QParams(scale.reshape(()), zp.reshape(()), qtype, qtype.qmin, qtype.qmax)
        return QParams(scale.reshape(-1), zp.reshape(-1), qtype, qtype.qmin, qtype.qmax,
                       PerAxis(axis % max(x.ndim, 1)))

    # constant per-tensor qparams (the usual case) are built once, not on every run
    fixed: QParams | None = None
    if (_per_tensor_node(node, graph) and len(node.input) > 2 and node.input[2]
            and graph.is_constant(node.input[2])):
        fixed = qparams(np.zeros(1, np.float32), graph.constant(node.input[1]),
                        graph.constant(node.input[2]))

    arena = Arena(reuse=not subgraph)
    per_tensor = _per_tensor_node(node, graph)

    def run(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None, *,
            layout: object) -> tuple[np.ndarray, ...]:
        qp = fixed if fixed is not None else qparams(x, scale, zp)
        if quantizing:
            return (fast_quantize(x, qp, arena=arena),)
        return (dequantize(x, qp),)

    def run_to_channels_last(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None,
                             *, layout: object) -> tuple[np.ndarray, ...]:
        qp = fixed if fixed is not None else qparams(x, scale, zp)
        return (fast_quantize(x, qp, arena=arena, channels_last=x.ndim >= 3),)

    return Step(node.name, node.op_type, "quantize" if quantizing else "dequantize",
                list(node.input), list(node.output), run,
                layouts=(CF, CL) if per_tensor else (CF,), replayable=quantizing,
                channels_last_fn=run_to_channels_last if quantizing and per_tensor else None)


def _per_tensor_node(node: onnx.NodeProto, graph: Graph) -> bool:
    return graph.is_constant(node.input[1]) and graph.constant(node.input[1]).size == 1


def _prune(steps: list[Step], graph: Graph, outer: frozenset[str]) -> list[Step]:
    needed = set(graph.output_names)
    keep = []
    for step in reversed(steps):
        if any(o in needed for o in step.outputs):
            keep.append(step)
            needed.update(i for i in step.inputs if i)
    keep.reverse()
    produced = {o for s in keep for o in s.outputs} | set(graph.initializers) | set(
        graph.input_names) | set(graph._constants) | outer
    for s in keep:
        for i in s.inputs:
            if i and i not in produced:
                raise ModelError(f"node '{s.name}' reads '{i}', which nothing produces")
    return keep
