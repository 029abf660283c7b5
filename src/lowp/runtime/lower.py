"""Lower a (QDQ) ONNX graph to steps: DQ -> op -> Q groups become integer operators,
everything else runs in float. The lowering functions live in lower_linear and
lower_elementwise and register themselves in lowering.LOWERINGS."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..errors import InternalError, ModelError, NodeError, UnsupportedOpError, named
from ..fixedpoint import RequantMode
from ..ir.graph import ONNX_DOMAINS, Graph, attributes
from ..qparams import PerAxis, QParams, QType, dequantize
from . import (  # noqa: F401  (lower_*: the lowerings)
    conv_bias_fusion,
    conv_integer_fusion,
    lower_elementwise,
    lower_float_region,
    lower_linear,
    moves,
    ort_context,
    per_token_fusion,
)
from .backends import ReferenceBackend
from .control import CONTROL_FLOW_OPS, control_flow_step
from .fastops import Arena
from .fastops import quantize as fast_quantize
from .float_nn import (
    global_average_pool_channels_last,
    global_max,
    max_pool_channels_last,
    resize_channels_last,
)
from .float_ops import FLOAT_OPS, rounds_quotient_to_half
from .float_registry import PREPARE, MapSequence, NoElement, TensorSequence, node_attributes
from .fuse import fuse_tables
from .fuse_float import fuse_float_chains
from .fuse_moves import fuse_moves
from .lowering import LOWERINGS, LowerCtx
from .ml_ops import ML_OPS, zipmap_keys
from .ort_context import fused_into_conv
from .ort_fusions import TRANSPOSE_HANDLED, transpose_perm
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
    for node in model.graph.node:
        _check_qdq_scale(node, graph)
        _check_clip_attribute_bounds(node, graph)
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


_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})


def _check_qdq_scale(node: onnx.NodeProto, graph: Graph) -> None:
    """A QuantizeLinear / DequantizeLinear with a constant scale that is not finite and
    positive is refused at load, naming the node and the scale (docs/operators.md (O69)).
    ONNX Runtime's quantize_static writes +inf for a tensor whose calibrated range is
    infinite (scores plus a -inf attention mask) and runs the file, but with such a scale
    every finite value quantizes to the zero point and dequantizes to NaN (0 * inf): the
    tensor's values are gone, and its fused operators' results rest on NaN reaching float
    to integer conversions."""
    if node.op_type not in _QDQ or len(node.input) < 2 or not graph.is_constant(node.input[1]):
        return
    scale = np.asarray(graph.constant(node.input[1]), np.float32)
    if np.all(np.isfinite(scale)) and np.all(scale > 0):
        return
    bad = scale[~(np.isfinite(scale) & (scale > 0))].reshape(-1)[0]
    why = (" (ONNX Runtime's quantize_static writes it for a tensor whose calibrated range "
           "is infinite, such as scores plus a -inf attention mask; with it every finite "
           "value quantizes to the zero point and dequantizes to NaN, so the tensor's "
           "values are lost: quantize the float model with lowp, which never writes such a "
           "scale, or keep that node out of quantization)"
           if np.isinf(bad) else "")
    raise NodeError(f"scale '{node.input[1]}' is {float(bad)}: scales must be finite and "
                    f"positive{why}", node.op_type, node.name or node.output[0])


def _check_clip_attribute_bounds(node: onnx.NodeProto, graph: Graph) -> None:
    """A Clip of opset 6 to 10 (bounds as the attributes min and max) whose min <= max does
    not hold, min above max or either one NaN, is refused at load, naming the node and its
    bounds, as ONNX Runtime refuses the file (its Clip kernel checks min <= max when it is
    created, whether or not the node's value is read). One that ONNX Runtime fuses into the
    float Conv before it first (ConvActivationFusion: the Clip the Conv's one reader, the
    Conv's output no graph output) is no Clip kernel there and runs in both engines, as
    x < min ? min : x, then max < y ? max : y: docs/operators.md (O101)."""
    if node.op_type != "Clip" or node.domain not in ONNX_DOMAINS:
        return
    attrs = {a.name: a.f for a in node.attribute if a.name in ("min", "max")}
    if not attrs:
        return
    info = np.finfo(np.float32)
    lo = np.float32(attrs.get("min", info.min))
    hi = np.float32(attrs.get("max", info.max))
    if lo <= hi or fused_into_conv(node, graph):
        return
    raise NodeError(f"Clip bounds min={float(lo)} and max={float(hi)} (attributes): min must "
                    "be at most max and neither NaN (ONNX Runtime refuses such a Clip too)",
                    node.op_type, node.name or node.output[0])


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
    float Pad or MaxPool, a quantized MaxPool, one activation input) to readers that all
    take channels-last data best (a Shape of it aside, which reads either)."""
    if step.layouts == (CL,) or (step.moves_channels == "to_last" and CL in step.layouts):
        return True
    if step.output_layout is CL and CL in step.layouts:
        return step.moves_channels != "to_first"
    if step.output_layout is not None or CL not in step.layouts \
            or len({step.inputs[k] for k in step.act_inputs if k < len(step.inputs)}) != 1 \
            or (step.kind, step.op_type) not in _HANDS_LAYOUT_ON:
        return False
    rs = [r for o in step.outputs if o for r in readers.get(o, [])]
    return bool(rs) and all(best.get(id(r), False) or r.op_type == "Shape" for r in rs) \
        and any(r.op_type != "Shape" for r in rs)


# steps that run on channels-last data as it is and keep it (one activation input): a
# TensorFlow-converted graph's explicit Pad and MaxPool between two transposes, float, or
# a quantized MaxPool (natively on channels-last bytes only; madmom_chords_cnn's pools
# between its NHWC <-> NCHW transposes ran numpy's strided maxima on channels-first data)
_HANDS_LAYOUT_ON = frozenset({("float", "Pad"), ("float", "MaxPool"), ("int", "MaxPool")})


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
# lowp.runtime.ml_ops; lowp's fused per-token products, lowp.runtime.per_token_fusion; its
# ConvInteger, Add and Cast, lowp.runtime.conv_integer_fusion)
_FOREIGN_FLOAT = ML_OPS | frozenset({("com.microsoft", "FusedMatMul"), ("com.microsoft", "Gelu"),
                            ("com.microsoft", "BiasGelu"), ("com.microsoft", "FastGelu"),
                            ("com.microsoft", "SkipLayerNormalization"),
                            ("com.microsoft", "DynamicQuantizeLSTM"),
                            ("com.microsoft", "MatMulIntegerToFloat"),
                            ("com.microsoft", "FusedConv"),
                            (per_token_fusion.DOMAIN, per_token_fusion.OP_TYPE),
                            (conv_integer_fusion.DOMAIN, conv_integer_fusion.OP_TYPE),
                            (conv_bias_fusion.DOMAIN, conv_bias_fusion.OP_TYPE)})


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
    if node.op_type in CONTROL_FLOW_OPS and node.domain in ("", "ai.onnx"):
        return control_flow_step(node, graph, backend, requant_mode)
    if node.domain not in ("", "ai.onnx") and (node.domain, node.op_type) not in _FOREIGN_FLOAT:
        raise UnsupportedOpError(node.op_type, _label(node), _foreign_detail(node.domain))
    if node.op_type == "DequantizeLinear":
        return _qdq_step(node, graph, quantizing=False)
    if node.op_type == "QuantizeLinear":
        return _qdq_step(node, graph, quantizing=True, subgraph=subgraph)
    step = _float_op_step(node, graph, subgraph)
    if node.op_type in ("Add", "Sum"):
        step.nchwc_block = int(ort_context.context(node, graph).get(  # type: ignore[call-overload]
            "nchwc_block", 0))
    return step


# step results that are not arrays, handed on as they are (`_float_op_step`)
_HANDED_ON = (TensorSequence, MapSequence, NoElement)


def _float_op_step(node: onnx.NodeProto, graph: Graph, subgraph: bool = False) -> Step:
    """`node` run by its numpy operator (lowp.runtime.float_ops)."""
    fn = FLOAT_OPS.get(node.op_type)
    if fn is None:
        raise UnsupportedOpError(node.op_type, _label(node), "lowp's engine has no "
                                 "implementation of this operator")
    attrs = node_attributes(node)
    attrs["opset"] = graph.opset
    attrs["num_outputs"] = len(node.output)
    attrs.update(ort_context.context(node, graph))
    prepare = PREPARE.get(node.op_type)
    elem = graph.value_elem_type(node.input[0]) if prepare and node.input else None
    if prepare is not None and elem:
        prepare(attrs, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem)),
                not subgraph and node.input[0] in graph.input_names)
    n_out = len(node.output)
    name, op_type = node.name, node.op_type
    map_keys = _zipmap_scores_keys(node, graph, attrs, subgraph)
    if map_keys is not None:
        attrs["scores_only"] = True

    def run(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        try:
            result = fn(*vals, **attrs)
        except UnsupportedOpError as e:
            raise UnsupportedOpError(op_type, name, str(e).split(": ", 1)[-1]) from None
        if type(result) is np.ndarray and n_out:
            return (result,)
        if not isinstance(result, tuple):
            result = (result,)
        # (a sequence operator's TensorSequence, ZipMap's MapSequence and an empty optional
        # are handed on as they are: values of the run's tensor dict, which only the
        # sequence and optional operators read)
        return tuple([r if type(r) is np.ndarray or isinstance(r, _HANDED_ON)  # type: ignore[misc]
                      else np.asarray(r) for r in result[:n_out]])

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
    if node.op_type in ("ReduceMean", "ReduceSum") \
            and _leads_to_convolution(graph, _reduction_reach(graph, node)):
        # ONNX Runtime's transpose optimizer pushes the channels-last layout of its
        # convolutions through such a reduction when the value it reads goes on to a
        # quantized convolution or a Transpose through operators it has handlers for (a
        # squeeze-excitation mean; a LayerNorm over channels written out; a mean that drops
        # its axis before a Transpose, (O60), (O316)), so it sums channels-last data in its
        # memory order (docs/operators.md (O18)); lowp then reduces its channels-last data
        # as it is (without keepdims the result is channels-first)
        keep = attrs.get("keepdims", 1) != 0
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    _reduce_channels_last(run, fn, attrs,
                                          _from_convolution(graph, node.input[0], set())),
                    layouts=(CF, CL), output_layout=None if keep else CF)
    if node.op_type == "GlobalMaxPool":
        return Step(node.name, node.op_type, "float", list(node.input), list(node.output),
                    _global_max_pool(run, attrs), layouts=(CF, CL))
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
    if node.op_type == "Resize" and (attrs.get("channels_last_integer") or str(
            attrs.get("mode", "nearest")) == "linear"):
        # ONNX Runtime's integer bilinear Resize runs on channels-last data: so does lowp's,
        # between the channels-last convolutions (no transposes on either side of it); its
        # float32 bilinear one too (a dequantized convolution output upsampled into a
        # Concat, a text detector's neck): each output is a function of its own channel
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
    return Step(node.name, node.op_type, "float", list(node.input), list(node.output), run,
                map_keys=map_keys)


def _zipmap_scores_keys(node: onnx.NodeProto, graph: Graph, attrs: dict[str, Any],
                        subgraph: bool) -> list[Any] | None:
    """The keys of an ai.onnx.ml ZipMap of the top-level graph whose output is a graph
    output that no node reads (every ZipMap of a classifier file): its step then gives the
    scores in the keys' order, a native step, and the Session makes the maps after the run
    (Step.map_keys); None for any other node, and for a ZipMap whose labels are the model's
    error (it raises that when it runs)."""
    if (node.domain, node.op_type) != ("ai.onnx.ml", "ZipMap") or subgraph \
            or node.output[0] not in graph.output_names or graph.consumers.get(node.output[0]):
        return None
    return zipmap_keys(attrs.get("classlabels_int64s", ()), attrs.get("classlabels_strings", ()))


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
    """Resize that takes channels-last data as it is where it is the integer or the float32
    bilinear kernel (float_nn.resize_channels_last), and through a channels-first view of it
    otherwise."""
    through = through_channels_first(run)

    def resize(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        x = vals[0]
        if layout is CL and x is not None and x.ndim == 4:
            y = resize_channels_last(x, *vals[1:], **attrs)
            if y is not None:
                return (y,)
        return through(*vals, layout=layout)

    return resize


def _reduction_reach(graph: Graph, node: onnx.NodeProto) -> list[str]:
    """Where the value a reduction reads goes on in ONNX Runtime's graph: from the reduction's
    result when it reads a DequantizeLinear (EnsureUniqueDQForNodeUnit gives each reader of a
    DequantizeLinear its own copy, so the copy the reduction reads goes nowhere else), from
    its input otherwise."""
    producer = graph.producer.get(node.input[0])
    if producer is not None and producer.op_type == "DequantizeLinear":
        return [o for o in node.output if o]
    return [node.input[0]]


def _leads_to_convolution(graph: Graph, tensors: list[str]) -> bool:
    """Whether one of `tensors` reaches the input of a quantized convolution (a Conv reading a
    DequantizeLinear, or a QLinearConv) or of a Transpose through operators ONNX Runtime's
    transpose optimizer has handlers for: its `outputs_leading_to_transpose` (the
    channels-last convolutions' inputs are Transposes there), towards which it pushes a
    Transpose whatever the cost ((O60))."""
    seen = set(tensors)
    todo = list(tensors)
    partners: set[str] = set()
    while todo:
        for reader in graph.consumers.get(todo.pop(), []):
            if reader.domain not in ONNX_DOMAINS:
                continue
            if reader.op_type == "Transpose" and reader.name not in partners:
                ends = _cancelled(graph, reader)
                if ends is None:
                    return True
                partners.update(ends)   # the pair cancels: neither end stays
            if reader.op_type == "QLinearConv" or _ort_qlinear_conv(graph, reader):
                return True
            if reader.op_type in TRANSPOSE_HANDLED or _quantized_pool(graph, reader):
                fresh = [o for o in reader.output if o and o not in seen]
                seen.update(fresh)
                todo += fresh
    return False


def _dequantized(graph: Graph, tensor: str) -> bool:
    producer = graph.producer.get(tensor)
    return producer is not None and producer.op_type == "DequantizeLinear"


def _quantized_pool(graph: Graph, node: onnx.NodeProto) -> bool:
    """A pool between a DequantizeLinear and QuantizeLinears only, of the 8-bit types ONNX
    Runtime runs on the integers (QLinearAveragePool, QLinearGlobalAveragePool: the same
    uint8 / int8 type in and out; MaxPool of uint8 / int8: the same scale, positive, and
    zero point in and out), whose handlers pass a Transpose on; a float pool (16-bit
    types, its QDQ selectors' other cases) has none ((O170))."""
    if node.op_type not in ("AveragePool", "GlobalAveragePool", "MaxPool") \
            or not node.output or not _dequantized(graph, node.input[0]):
        return False
    readers = graph.consumers.get(node.output[0], [])
    if not readers or any(r.op_type != "QuantizeLinear" for r in readers):
        return False
    dq = graph.producer[node.input[0]]
    code = _code_type(graph, dq)
    if code not in (TensorProto.UINT8, TensorProto.INT8) \
            or any(_code_type(graph, q) != code for q in readers):
        return False
    return node.op_type != "MaxPool" or all(_same_positive_qparams(graph, dq, q) for q in readers)


def _same_positive_qparams(graph: Graph, dq: onnx.NodeProto, q: onnx.NodeProto) -> bool:
    """Whether `dq` and `q` have the same constant scalar scale, above zero, and zero point
    (ONNX Runtime's QDQ selector that drops them around a MaxPool)."""
    values = []
    for node in (dq, q):
        names = [node.input[1], node.input[2] if len(node.input) > 2 else ""]
        if not all(n == "" or graph.is_constant(n) for n in names):
            return False
        values.append([np.asarray(graph.constant(n)) if n else None for n in names])
    (s_dq, z_dq), (s_q, z_q) = values
    if s_dq is None or s_q is None or s_dq.size != 1 or s_q.size != 1:
        return False
    zeros = [np.zeros(1) if z is None else z.reshape(-1) for z in (z_dq, z_q)]
    return bool(s_dq.reshape(-1)[0] > 0 and s_dq.reshape(-1)[0] == s_q.reshape(-1)[0]
                and zeros[0].size == 1 and zeros[1].size == 1
                and int(zeros[0][0]) == int(zeros[1][0]))


def _code_type(graph: Graph, qdq: onnx.NodeProto) -> int | None:
    """The integer element type of a QuantizeLinear / DequantizeLinear: its constant zero
    point's, else the declared `output_dtype` (QuantizeLinear) or the codes' listed type
    (DequantizeLinear), uint8 by default; None when the zero point is not a constant."""
    if len(qdq.input) > 2 and qdq.input[2]:
        if not graph.is_constant(qdq.input[2]):
            return None
        return int(onnx.helper.np_dtype_to_tensor_dtype(graph.constant(qdq.input[2]).dtype))
    declared = int(attributes(qdq).get("output_dtype", 0))  # type: ignore[call-overload]
    if qdq.op_type == "DequantizeLinear":
        declared = graph.value_elem_type(qdq.input[0]) or 0
    return declared or TensorProto.UINT8


def _ort_qlinear_conv(graph: Graph, conv: onnx.NodeProto) -> bool:
    """Whether ONNX Runtime's x86 QDQ selector makes `conv` a QLinearConv, which its layout
    transformer moves channels-last: a Conv reading a uint8 DequantizeLinear and an 8-bit
    weight DequantizeLinear, whose QuantizeLinear (when it is the only reader) has the
    activation's type. A group with 16-bit or int8 activations, 16-bit weights or another
    output type stays a float Conv in the channels-first layout ((O5a), (O128))."""
    if conv.op_type != "Conv" or len(conv.input) < 2:
        return False
    x, w = (graph.producer.get(i) for i in conv.input[:2])
    if x is None or w is None or x.op_type != "DequantizeLinear" \
            or w.op_type != "DequantizeLinear":
        return False
    x_type = _code_type(graph, x)
    if x_type != TensorProto.UINT8 or \
            _code_type(graph, w) not in (TensorProto.UINT8, TensorProto.INT8):
        return False
    readers = graph.consumers.get(conv.output[0], [])
    return not (len(readers) == 1 and readers[0].op_type == "QuantizeLinear"
                and _code_type(graph, readers[0]) != x_type)


def _cancelled(graph: Graph, transpose: onnx.NodeProto) -> set[str] | None:
    """The Transposes that cancel the model's own `transpose` in ONNX Runtime's transpose
    optimizer (level 1, before the layout pass): every path from it through operators it has
    handlers for ends at a Transpose with the inverse permutation (a tf2onnx Transpose pair
    around element-wise operators), so neither is left for the layout pass's pushes to lead
    to; None when it stays ((O60))."""
    perm = transpose_perm(transpose)
    if not perm or sorted(perm) != list(range(len(perm))):
        return None
    inverse = [perm.index(k) for k in range(len(perm))]
    seen: set[str] = set()
    ends = {transpose.name}
    todo = [transpose.output[0]]
    while todo:
        tensor = todo.pop()
        readers = graph.consumers.get(tensor, [])
        if not readers or tensor in graph.output_names:
            return None
        for reader in readers:
            if reader.op_type == "Transpose" and reader.domain in ONNX_DOMAINS:
                if transpose_perm(reader) != inverse:
                    return None
                ends.add(reader.name)
                continue
            if reader.domain not in ONNX_DOMAINS or reader.op_type not in TRANSPOSE_HANDLED:
                return None
            fresh = [o for o in reader.output if o and o not in seen]
            seen.update(fresh)
            todo += fresh
    return ends


def _from_convolution(graph: Graph, tensor: str, seen: set[str]) -> bool:
    """Whether `tensor` comes from a quantized convolution (Conv -> QuantizeLinear, or
    QLinearConv) through operators with transpose handlers (any of their inputs; Q/DQ's
    first): where ONNX Runtime holds it channels-last even if lowp does not ((O60))."""
    if tensor in seen:
        return False
    seen.add(tensor)
    node = graph.producer.get(tensor)
    if node is None or node.domain not in ONNX_DOMAINS:
        return False
    if node.op_type == "QLinearConv" or (node.op_type == "QuantizeLinear" and
                                         graph.producer.get(node.input[0]) is not None and
                                         _ort_qlinear_conv(graph, graph.producer[node.input[0]])):
        return True
    if node.op_type not in TRANSPOSE_HANDLED or node.op_type == "Transpose":
        return False
    inputs = node.input[:1] if node.op_type in ("QuantizeLinear", "DequantizeLinear") \
        else node.input
    return any(_from_convolution(graph, i, seen) for i in inputs
               if i and not graph.is_constant(i))


def _reduce_channels_last(run: StepFn, fn: Any, attrs: dict[str, Any],
                          channels_first_too: bool = True) -> StepFn:
    """ReduceSum / ReduceMean that sums in channels-last memory order, as ONNX Runtime does
    there: its axes named in channels-first order are mapped to the channels-last ones and
    channels-last data reduced as it is, the result (reduced axes kept) channels-last; data
    lowp holds channels-first is made channels-last first, its result channels-first again,
    when `channels_first_too` (ONNX Runtime holds it channels-last: it comes from a
    quantized convolution), else summed as it is. Without keepdims the same sums, the
    result channels-first with the reduced axes dropped ((O316))."""
    keep = attrs.get("keepdims", 1) != 0

    def reduce(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        x = vals[0]
        if x is None or x.ndim < 3:
            return run(*vals, layout=layout)
        if layout is not CL and not channels_first_too:
            return run(*vals, layout=layout)
        given = vals[1] if len(vals) > 1 and vals[1] is not None else attrs.get("axes")
        axes = [] if given is None else [int(a) for a in np.asarray(given).reshape(-1)]
        if not axes and attrs.get("noop_with_empty_axes", 0):
            return run(*vals, layout=layout)
        rank = x.ndim
        axes = sorted({a + rank if a < 0 else a for a in axes} if axes else range(rank))
        if layout is not CL:    # data lowp holds channels-first (an element-wise chain's)
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        cl = [0 if a == 0 else rank - 1 if a == 1 else a - 1 for a in axes]
        rest = {k: v for k, v in attrs.items() if k not in ("axes", "keepdims")}
        y = np.asarray(fn(x, np.asarray(cl, np.int64), keepdims=1, **rest))
        if keep and layout is CL:
            return (y,)
        y = np.ascontiguousarray(np.moveaxis(y, -1, 1))
        return (y if keep else y.reshape([d for a, d in enumerate(y.shape) if a not in axes]),)

    return reduce


def _global_max_pool(run: StepFn, attrs: dict[str, Any]) -> StepFn:
    """GlobalMaxPool that takes channels-last data as it is: the maximum over its spatial
    axes (float_nn.global_max: the same rule as on channels-first data), channels-last."""
    channels = int(attrs.get("nchwc_channels", 0))  # type: ignore[call-overload]

    def pool(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        x = vals[0]
        if layout is not CL or x is None or x.ndim < 3:
            return run(*vals, layout=layout)
        return (global_max(x, tuple(range(1, x.ndim - 1)), channels),)

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
    opset = graph.opset if node.domain in ("", "ai.onnx") else 0

    def half_quotient(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None,
                      qp: QParams) -> np.ndarray | None:
        # float16 x from opset 23 on: the quotient is rounded to float16 first ((O358)), the
        # operator's own form
        if not (quantizing and rounds_quotient_to_half(x.dtype, qp.qtype.numpy_dtype, opset)):
            return None
        return FLOAT_OPS["QuantizeLinear"](x, scale, zp, axis=axis, output_dtype=out_type or 0,
                                           opset=opset)

    def run(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None, *,
            layout: object) -> tuple[np.ndarray, ...]:
        qp = fixed if fixed is not None else qparams(x, scale, zp)
        if quantizing:
            half = half_quotient(x, scale, zp, qp)
            return (fast_quantize(x, qp, arena=arena) if half is None else half,)
        # the output has the scale's type: a float16 one rounds the float32 product ((O146))
        return (dequantize(x, qp).astype(np.asarray(scale).dtype, copy=False),)

    def run_to_channels_last(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None,
                             *, layout: object) -> tuple[np.ndarray, ...]:
        qp = fixed if fixed is not None else qparams(x, scale, zp)
        half = half_quotient(x, scale, zp, qp)
        if half is not None:
            return (np.ascontiguousarray(np.moveaxis(half, 1, -1)) if x.ndim >= 3 else half,)
        return (fast_quantize(x, qp, arena=arena, channels_last=x.ndim >= 3),)

    return Step(node.name, node.op_type, "quantize" if quantizing else "dequantize",
                list(node.input), list(node.output), run,
                layouts=(CF, CL) if per_tensor else (CF,), replayable=quantizing,
                channels_last_fn=run_to_channels_last if quantizing and per_tensor else None,
                qdq_axis=axis)


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
