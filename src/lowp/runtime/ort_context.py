"""What a float operator needs to know of its graph to round as ONNX Runtime does: whether
ONNX Runtime folds a value into a constant (and so prepacks a product's B or moves a Conv to
its NCHWc kernels), which values its layout transformer keeps in the NCHWc layout and the
shapes it can prove for them, and the other per-operator facts (`context`). Lowering
(lowp.runtime.lower) passes `context(node, graph)` to a float operator as attributes; the
load-time rewrite of ONNX Runtime's NCHWc Add fusion (lowp.runtime.ort_nchwc_add) asks the
same questions."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np
import onnx

from ..ir.graph import Graph, attributes
from . import nchwc_conv
from .ort_insert_cast import float16_pool
from .ort_quick_gelu import quick_gelu_clip


def context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """The attributes `node`'s float operator takes from its graph (none for most)."""
    return _CONTEXTS.get(node.op_type, _no_context)(node, graph)


def _no_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    return {}


def folded_constant(name: str, graph: Graph, depth: int = 6) -> bool:
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
    return all(folded_constant(i, graph, depth - 1) for i in node.input if i)


def _matmul_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime prepacks a MatMul's B when it is a constant 2-D matrix; its product then
    sums in other K blocks (lowp.mlas_sgemm). The rank of a B that is no initializer comes
    from its Constant's value or from shape inference (ppocrv4_rec's weights are Constant
    nodes and the file lists no shapes: lowp summed their K = 240 products in two blocks,
    ONNX Runtime in one)."""
    b = node.input[1]
    if not folded_constant(b, graph):
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
    return {"w_constant": folded_constant(node.input[1], graph)}


def _gemm_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime prepacks a Gemm's constant B; its product then sums in other K blocks."""
    return {"b_packed": folded_constant(node.input[1], graph)}


def _conv_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime's layout transformer moves a 2-D Conv with constant weights and bias to
    its NCHWc kernels, which sum in another order (lowp.runtime.nchwc_conv)."""
    has_bias = len(node.input) > 2 and bool(node.input[2])
    return {"w_constant": folded_constant(node.input[1], graph),
            "b_constant": not has_bias or folded_constant(node.input[2], graph)}


def _pool_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime's layout transformer moves a float 2-D pool to its NCHWc kernels when
    its shape inference knows the channel count (and the block divides it); a global pool
    only when its input is in that layout already (or is a graph input). The count is the
    inferred shape's (the file need not list the shapes of its values), else that of the
    Conv weights the value comes from (`channel_count`)."""
    if float16_pool(node):      # ONNX Runtime's layout transformer saw a float16 pool
        return {"nchwc_channels": 0}
    channels = _nchwc_channels(node.input[0], graph)
    if node.op_type in ("GlobalAveragePool", "GlobalMaxPool") and channels and not (
            node.input[0] not in graph.producer or ort_nchwc(node.input[0], graph)):
        channels = 0
    return {"nchwc_channels": channels}


def _nchwc_channels(name: str, graph: Graph) -> int:
    """The channel count of 4-D `name` when shape inference knows it and MLAS's NCHWc block
    divides it, else 0."""
    block = nchwc_conv.block_size()
    shape = graph.inferred_shape(name)
    channels = (shape[1] if len(shape) == 4 else None) if shape is not None else \
        channel_count(name, graph)
    return channels if (isinstance(channels, int) and channels > 0 and block
                        and channels % block == 0) else 0


# activations ONNX Runtime fuses into the convolution before them (ConvActivationFusion),
# which then writes them in its layout (HardSwish too, in ONNX Runtime 1.32)
_CONV_ACTIVATIONS = frozenset({"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "HardSigmoid",
                               "HardSwish"})


def ort_nchwc(name: str, graph: Graph, depth: int = 256) -> bool:
    """Whether ONNX Runtime's layout transformer (NchwcTransformer) leaves the float value
    `name` in its NCHWc layout: the output of a 2-D Conv it moves there (nchwc_conv.plan),
    of a MaxPool or AveragePool of a block multiple of channels, of the activations fused
    into such a Conv, and of the nodes it carries the layout through when all their inputs
    have it (Relu, Sigmoid, Tanh, BatchNormalization, global pools, Add and Sum, Mul of
    equal shapes, Concat of whole blocks on the channel axis, a nearest Resize or Upsample
    by whole spatial factors: `nchwc_upsample`)."""
    node = graph.producer.get(name)
    if node is None or depth == 0 or not (node.domain in ("", "ai.onnx") or _is_fused_conv(node)):
        return False
    op, ins = node.op_type, [i for i in node.input if i]
    if op in ("Conv", "FusedConv"):
        x = graph.inferred_shape(node.input[0])
        if x is None and channel_count(node.input[0], graph) is not None:
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
        # (dilated ones too: the NCHWc pools take dilations, docs/operators.md (O151))
        return (len(node.output) < 2 or not node.output[1]) and bool(
            _pool_context(node, graph)["nchwc_channels"])
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return bool(_pool_context(node, graph)["nchwc_channels"])
    if op in ("Relu", "Sigmoid", "Tanh") or eliminated_identity(node, graph) or \
            quick_gelu_clip(node):
        return ort_nchwc(node.input[0], graph, depth - 1)
    if op in ("Resize", "Upsample"):
        return nchwc_upsample(node, graph) and ort_nchwc(node.input[0], graph, depth - 1)
    if op == "BatchNormalization":          # rewritten as a 1x1 depthwise NCHWc Conv
        return bool(batch_norm_context(node, graph)["nchwc"])
    if op in _CONV_ACTIVATIONS:
        return fused_into_conv(node, graph) and ort_nchwc(node.input[0], graph, depth - 1)
    if op in ("Add", "Sum", "Mul", "Concat") and len(ins) >= 2:
        if not all(ort_nchwc(i, graph, depth - 1) for i in ins):
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


def nchwc_upsample(node: onnx.NodeProto, graph: Graph) -> bool:
    """Whether ONNX Runtime's layout transformer runs this Resize or Upsample (of an NCHWc
    input) as its NCHWc Upsample (NchwcTransformerImpl::TransformResize, every Resize
    version and Upsample-9 in ONNX Runtime 1.32): mode "nearest"; from Resize-11 on exactly
    three inputs (no `sizes`) and the attributes coordinate_transformation_mode "asymmetric"
    and nearest_mode "floor" written out; scales a constant 1-D float32 tensor of 4 whole
    positive factors, 1 on batch and channels. The copy rounds nothing, but its output stays
    in the layout (an Add of it and a Conv output becomes the Conv's Sum,
    lowp.runtime.ort_nchwc_add). From Resize-11 on, mode "linear" too, with the coordinate
    mode half_pixel (the default), asymmetric or align_corners, and, either mode, constant
    `sizes` in place of the scales (`_whole_sizes`; probed on ONNX Runtime 1.32's optimized
    graphs); linear rounds in its own order ((O320), float_nn._nchwc_linear)."""
    attrs = attributes(node)
    mode = str(attrs.get("mode", "nearest"))
    if mode != "nearest" and not (mode == "linear" and node.op_type == "Resize"
                                  and graph.opset >= 11):
        return False
    if node.op_type == "Resize" and graph.opset >= 11:
        coordinates = str(attrs.get("coordinate_transformation_mode", "half_pixel"))
        if mode == "linear" and coordinates not in ("half_pixel", "asymmetric",
                                                    "align_corners"):
            return False
        if mode == "nearest" and (str(attrs.get("coordinate_transformation_mode"))
                                  != "asymmetric" or str(attrs.get("nearest_mode")) != "floor"):
            return False
        if len(node.input) == 4 and not node.input[2] and "axes" not in attrs:
            return _whole_sizes(node, graph) is not None
        if len(node.input) != 3:
            return False
        scales = node.input[2]
    elif graph.opset >= 9 and len(node.input) == 2:     # Upsample-9, Resize-10
        scales = node.input[1]
    else:
        return False
    if not scales or not graph.is_constant(scales) or not folded_constant(scales, graph):
        return False
    value = graph.constant(scales)
    if value.dtype != np.float32 or value.shape != (4,) or not np.isfinite(value).all():
        return False
    whole = value.astype(np.int64)
    return bool((whole > 0).all() and (whole.astype(np.float32) == value).all()
                and whole[0] == whole[1] == 1)


def _whole_sizes(node: onnx.NodeProto, graph: Graph) -> list[int] | None:
    """A Resize's constant `sizes` (its fourth input) as whole factors of its input's shape,
    known in every dimension, as ONNX Runtime 1.32's layout transformer takes them (probed
    on its optimized graphs: a free batch, a size not a multiple, `axes` keep it NCHW);
    None otherwise."""
    sizes, shape = node.input[3], graph.inferred_shape(node.input[0])
    if not sizes or not graph.is_constant(sizes) or not folded_constant(sizes, graph) or \
            shape is None or len(shape) != 4 or not all(isinstance(d, int) and d > 0
                                                         for d in shape):
        return None
    value = graph.constant(sizes)
    if value.shape != (4,) or value.dtype != np.int64:
        return None
    dims = [int(d) for d in shape if isinstance(d, int)]
    if any(int(v) <= 0 or int(v) % d for v, d in zip(value, dims, strict=True)):
        return None
    factors = [int(v) // d for v, d in zip(value, dims, strict=True)]
    return factors if factors[0] == factors[1] == 1 else None


def _nchwc_binary_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """An Add or two-input Sum that ONNX Runtime's layout transformer runs on its NCHWc
    layout (NchwcTransformerImpl::TransformBinary, onnxruntime/core/optimizer/
    nchwc_transformer.cc): the block size, whose blocked places decide which of two NaNs it
    hands on (float_ops._two_nans, docs/operators.md (O196)); 0 otherwise."""
    ins = [i for i in node.input if i]
    nchwc = (len(ins) == 2 and len(node.output) == 1 and node.domain in ("", "ai.onnx")
             and ort_nchwc(node.output[0], graph))
    return {"nchwc_block": nchwc_conv.block_size() if nchwc else 0}


def fused_into_conv(node: onnx.NodeProto, graph: Graph) -> bool:
    """Whether ONNX Runtime's ConvActivationFusion takes activation `node` into the float
    Conv that writes its input: one of _CONV_ACTIVATIONS, the Conv's only reader, the Conv's
    output no graph output."""
    if node.op_type not in _CONV_ACTIVATIONS or node.domain not in ("", "ai.onnx"):
        return False
    conv = graph.producer.get(node.input[0])
    return (conv is not None and conv.op_type == "Conv" and conv.domain in ("", "ai.onnx")
            and len(graph.consumers.get(node.input[0], [])) == 1
            and node.input[0] not in graph.output_names)


def eliminated_identity(node: onnx.NodeProto, graph: Graph) -> bool:
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
    """The symbolic shape (NchwcDims) of NCHWc value `name` (`ort_nchwc`): a Conv or pool
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
    if quick_gelu_clip(node):           # (part of ONNX Runtime's QuickGelu, (O322))
        return _ort_nchwc_dims(node.input[0], graph, depth - 1)
    if op in _CONV_ACTIVATIONS and op not in ("Relu", "Sigmoid", "Tanh"):
        node, op = graph.producer[node.input[0]], "Conv"    # the Conv it is fused into
    if op in ("Conv", "FusedConv", "MaxPool", "AveragePool"):
        x = node.input[0]
        if not ort_nchwc(x, graph) or (op != "MaxPool" and op != "AveragePool"
                                        and _conv_reads_nchw(node, graph)):
            return own
        return _pooled_dims(node, _ort_nchwc_dims(x, graph, depth - 1), own, graph)
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return (_ort_nchwc_dims(node.input[0], graph, depth - 1)[0], *own[1:])
    if op in ("Relu", "Sigmoid", "Tanh", "BatchNormalization") or eliminated_identity(
            node, graph):
        return _ort_nchwc_dims(node.input[0], graph, depth - 1)
    if op in ("Add", "Sum", "Mul"):
        ins = [i for i in node.input if i]
        return _ort_nchwc_dims(ins[0], graph, depth - 1) if nchwc_same_shapes(
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


def nchwc_same_shapes(names: Sequence[str], graph: Graph) -> bool:
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
    return {"w_packed": folded_constant(node.input[1], graph),
            "r_packed": folded_constant(node.input[2], graph)}


def _quantized_lstm_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """What a finished batch entry feeds ONNX Runtime's recurrent product depends on whether
    the node writes Y (lowp.runtime.quantized_lstm)."""
    return {"with_y": bool(node.output) and bool(node.output[0])}


def _resize_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime's layout transformer runs a quantized Conv channels-last and pushes the
    layout through the Identity, MaxPool and Resize nodes after it (and their quantizers);
    there a Resize of 8-bit data is its integer bilinear kernel (float_nn._bilinear_integer,
    (O41)). A float linear Resize of a value ONNX Runtime keeps in its NCHWc layout runs
    as its NCHWc Upsample, which rounds in its own order (`nchwc_linear`, (O320))."""
    linear = (str(attributes(node).get("mode", "nearest")) == "linear"
              and nchwc_upsample(node, graph) and ort_nchwc(node.input[0], graph))
    name, quantized = node.input[0], False
    for _ in range(64):
        p = graph.producer.get(name)
        if p is None or p.domain not in ("", "ai.onnx") or not p.input:
            break
        if p.op_type == "Conv":
            return {"channels_last_integer": quantized, "nchwc_linear": linear}
        if p.op_type not in ("QuantizeLinear", "DequantizeLinear", "Identity", "MaxPool",
                             "Resize"):
            break
        quantized = quantized or p.op_type == "QuantizeLinear"
        name = p.input[0]
    return {"channels_last_integer": False, "nchwc_linear": linear}


# operators whose output has their first input's channel count (`channel_count` walks them)
_CHANNEL_KEEPING = frozenset({"MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool",
                              "Relu", "Sigmoid", "Tanh", "HardSigmoid", "BatchNormalization",
                              "Add", "Sum", "Identity"})


def channel_count(name: str, graph: Graph, depth: int = 16) -> int | None:
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
    if node.op_type in _CHANNEL_KEEPING or quick_gelu_clip(node):
        return channel_count(node.input[0], graph, depth - 1)
    return None


def batch_norm_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """ONNX Runtime's NCHWc transformer runs a BatchNormalization of an NCHWc value as a
    1x1 depthwise NCHWc Conv with its own folded constants, scale / sqrt(var + epsilon)
    (not times 1 / sqrt): its four parameters float32 constants of the channel count, no
    training outputs (an absent epsilon is its default there too) ((O52n))."""
    c = channel_count(node.input[0], graph)
    attrs = {a.name: a for a in node.attribute}
    spatial = attrs.get("spatial")
    ok = (c is not None and len(node.output) == 1 and len(node.input) == 5
          and (spatial is None or spatial.i == 1)
          and all(i in graph.initializers and i not in {v.name for v in graph.graph.input}
                  and graph.initializers[i].data_type == onnx.TensorProto.FLOAT
                  and list(graph.initializers[i].dims) == [c] for i in node.input[1:]))
    return {"nchwc": ok and ort_nchwc(node.input[0], graph)}


# what a float operator needs to know of the graph to round as ONNX Runtime does
def _attention_context(node: onnx.NodeProto, graph: Graph) -> dict[str, object]:
    """Which of Attention's outputs the node names: ONNX Runtime adds the mask after Q·Kᵀ's
    product instead of inside it when the raw product is an output (lowp.runtime.
    float_attention)."""
    return {"outputs": tuple(bool(o) for o in node.output)}


_CONTEXTS = {"BatchNormalization": batch_norm_context, "Resize": _resize_context,
                "MatMul": _matmul_context, "FusedMatMul": _matmul_context,
                "ConvTranspose": _conv_transpose_context, "Conv": _conv_context,
                "FusedConv": _conv_context, "ConvBias": _conv_context,
                "AveragePool": _pool_context, "GlobalAveragePool": _pool_context,
                "MaxPool": _pool_context, "GlobalMaxPool": _pool_context,
                "Gemm": _gemm_context,
                "Add": _nchwc_binary_context, "Sum": _nchwc_binary_context,
                "LSTM": _lstm_context,
                "GRU": _lstm_context,
                "DynamicQuantizeLSTM": _quantized_lstm_context,
                "Attention": _attention_context}
