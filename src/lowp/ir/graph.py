"""Load, check and index an ONNX model; save it atomically."""

from __future__ import annotations

import heapq
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
import onnx.defs
from onnx import external_data_helper, helper, numpy_helper, shape_inference

from ..atomic import write_bytes
from ..errors import ModelError

# the domain names of the default operator set
ONNX_DOMAINS = ("", "ai.onnx")

MIN_OPSET = 13          # per-axis QuantizeLinear/DequantizeLinear need opset 13
# operators whose output is a sequence of tensors
SEQUENCE_MAKERS = frozenset({"SequenceEmpty", "SequenceConstruct", "SequenceInsert",
                             "SequenceErase", "SplitToSequence"})


def load_model(model: str | os.PathLike[str] | onnx.ModelProto | bytes, *,
               check: bool = True) -> onnx.ModelProto:
    """Read a model from a path, bytes or a ModelProto and check it.

    Raises ModelError naming the file when it is missing, not ONNX, its external data is
    missing or lies outside the model's folder, or it fails the checker. Nothing else
    escapes: a corrupted file gives a ModelError, never a decoding error or a traceback.
    A QOperator model comes back in QDQ form (lowp.formats.to_qdq); a quantized operator
    with no conversion raises UnsupportedOpError naming the node.
    """
    if isinstance(model, onnx.ModelProto):
        proto, where = model, "model"
    elif isinstance(model, bytes):
        proto, where = _parse(model, "model bytes"), "model bytes"
        _refuse_external_data(proto, where)
    else:
        path = Path(model)
        where = str(path)
        proto = _parse(_read(path), where)
        _load_external_data(proto, path, where)
    proto = _negative_dims_unknown(_ir_of_unlisted_initializers(_sorted_nodes(proto)))
    proto = _undeclared_outputs_inferred(proto)
    if check:
        _check(proto, where)
        _check_tensors(proto, where)
        _check_qdq_params(proto, where)
        _check_shapes(proto, where)
    # QOperator files (QLinearConv, com.microsoft QLinearAdd, ...) are read as their
    # lossless QDQ form, the one format the passes and the engine know
    from ..formats.qoperator import to_qdq

    return to_qdq(proto)


def free_names(graph: onnx.GraphProto) -> set[str]:
    """Values a (sub)graph reads but does not define: they come from enclosing scopes."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(i for i in node.input if i)
        used |= subgraph_reads(node)
        defined.update(node.output)
    return used - defined


def node_reads(node: onnx.NodeProto) -> set[str]:
    """Every value `node` reads: its inputs and its subgraphs' outer-scope reads."""
    return {i for i in node.input if i} | subgraph_reads(node)


def subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Outer-scope values read by the subgraphs (If branches, Loop bodies) of `node`."""
    reads: set[str] = set()
    for a in node.attribute:
        for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            reads |= free_names(sub)
    return reads


def read_counts(graph: onnx.GraphProto) -> Counter[str]:
    """How many times each value is read in `graph`: node inputs, and the subgraphs' reads
    of outer values (an If branch's or a Loop body's read is an edge too)."""
    reads = Counter(i for n in graph.node for i in n.input if i)
    for n in graph.node:
        reads.update(subgraph_reads(n))
    return reads


def constant_tensors(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """The graph's constants as ONNX Runtime sees them at load: initializers no input
    overrides, and the values of Constant nodes given as `value` (it makes them
    initializers), by the name they are read by (a Constant's tensor as the node holds it)."""
    fed = {i.name for i in graph.input}
    out = {t.name: t for t in graph.initializer if t.name not in fed}
    for node in graph.node:
        if (node.op_type == "Constant" and node.domain in ONNX_DOMAINS
                and len(node.attribute) == 1 and node.attribute[0].name == "value"):
            out[node.output[0]] = node.attribute[0].t
    return out


def with_nodes(model: onnx.ModelProto, nodes: Iterable[onnx.NodeProto],
               initializers: Iterable[onnx.TensorProto] = (),
               domains: Iterable[str] = ()) -> onnx.ModelProto:
    """A copy of `model` whose top-level graph has `nodes` instead of its own, with
    `initializers` added and an opset import (version 1) for each of `domains` it lacks."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(initializers)
    for domain in domains:
        if not any(o.domain == domain for o in out.opset_import):
            out.opset_import.append(helper.make_opsetid(domain, 1))
    return out


def _ir_of_unlisted_initializers(proto: onnx.ModelProto) -> onnx.ModelProto:
    """An IR < 4 model with initializers, raised to the IR version of its opsets without
    the graph inputs that name an initializer (a copy); any other model as it is (the same
    object).

    IR 3 wants every initializer listed as a graph input; some tools (OnnxMLTools 1.8 at
    opset 8) write IR 3 without those inputs, which the checker refuses and ONNX Runtime
    runs. Either way ONNX Runtime takes an IR < 4 initializer as a constant: it cannot be
    fed (no overridable initializers before IR 4; "Invalid input name"), so its rewrites
    that need constant weights (WeightBiasQuantization, the fusions) take it. Listed as an
    input it would look overridable to lowp's mirrors of those rewrites, which then left a
    float Conv of ONNX Runtime's quantize_static's IR 3 files unquantized (docs/operators.md
    (O351), repro item 302).
    At IR 4 without those inputs the model means the same. IR 0 is no version at all and
    stays for the checker to refuse. Domains onnx does not version (com.microsoft, which
    ONNX Runtime's quantizer adds to such a file) do not count."""
    if not 1 <= proto.ir_version < 4 or not proto.graph.initializer:
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    inits = {t.name for t in out.graph.initializer}
    real = [i for i in out.graph.input if i.name not in inits]
    del out.graph.input[:]
    out.graph.input.extend(real)
    out.ir_version = max(4, helper.find_min_ir_version_for(list(out.opset_import),
                                                           ignore_unknown=True))
    return out


def _negative_dims_unknown(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every negative dim_value of its top-level inputs, outputs and value
    infos made an unknown dimension (a copy); a model without one as it is (the same
    object).

    paddle2onnx (PP-OCRv2) writes a dynamic axis as dim_value -1; ONNX Runtime takes it as
    any size, while onnx's shape inference computes with the -1 and refuses a Reshape
    downstream ("Invalid Target shape product of 0")."""
    def negative(vi: onnx.ValueInfoProto) -> bool:
        t = vi.type.tensor_type
        return vi.type.HasField("tensor_type") and t.HasField("shape") and any(
            d.HasField("dim_value") and d.dim_value < 0 for d in t.shape.dim)

    graph = proto.graph
    if not any(negative(v) for v in (*graph.input, *graph.output, *graph.value_info)):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    for v in (*g.input, *g.output, *g.value_info):
        if negative(v):
            for d in v.type.tensor_type.shape.dim:
                if d.HasField("dim_value") and d.dim_value < 0:
                    d.ClearField("dim_value")
    return out


def _undeclared(vi: onnx.ValueInfoProto) -> bool:
    """A graph output declared without a type, or as a tensor without a shape."""
    kind = vi.type.WhichOneof("value")
    return kind is None or (kind == "tensor_type" and not vi.type.tensor_type.HasField("shape"))


def _undeclared_outputs_inferred(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The model with each top-level output declared without a type or a shape given the
    type and shape onnx's inference computes for it (a copy); a model without one as it is
    (the same object). An output whose rank inference does not know keeps what it has
    (`checkable` stands in for it before the checker).

    onnx's checker wants both for a main graph's outputs; ONNX Runtime takes a missing one
    as unknown and runs the model (docs/operators.md (O106))."""
    if not any(_undeclared(o) for o in proto.graph.output):
        return proto
    inferred = {o.name: o.type for o in inferred_values(proto).output}
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for o in out.graph.output:
        known = inferred.get(o.name)
        if _undeclared(o) and known is not None and known.WhichOneof("value") is not None:
            o.type.CopyFrom(known)
    return out


def checkable(proto: onnx.ModelProto) -> onnx.ModelProto:
    """What onnx's checker is given for `proto`: the model itself, or, where a top-level
    output has no type or shape, a copy with what inference computes for it and, where
    inference does not know the rank (it depends on the data), rank 0 for the check only;
    a top-level tensor input without a shape (any shape, for ONNX Runtime) likewise. The
    checker does not compare declared shapes with the nodes', and strict inference has no
    rank to compare it with."""
    out = _undeclared_outputs_inferred(proto)

    def shapeless(vi: onnx.ValueInfoProto) -> bool:
        return vi.type.WhichOneof("value") == "tensor_type" and _undeclared(vi)

    if not any(shapeless(v) for v in (*out.graph.input, *out.graph.output)):
        return out
    if out is proto:
        out = onnx.ModelProto()
        out.CopyFrom(proto)
    for v in (*out.graph.input, *out.graph.output):
        if shapeless(v):
            v.type.tensor_type.shape.SetInParent()
    return out


def _sorted_nodes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its top-level nodes in an order where every node comes after the
    producers of what it reads, its subgraphs' outer-scope reads included.

    ONNX Runtime sorts the graph itself, and some tools write nodes out of order (its own
    quantizer places an If before the producer of a value its branches read); the checker
    refuses such a file. Nodes already in order are returned as they are (the same object);
    otherwise a sorted copy, stable (the first node that is ready goes first). A cycle is
    left for the checker to report."""
    nodes = list(proto.graph.node)
    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    deps = [{producer[v] for v in node_reads(n) if v in producer} - {k}
            for k, n in enumerate(nodes)]
    if all(d < k for k, ds in enumerate(deps) for d in ds):
        return proto
    readers: dict[int, list[int]] = defaultdict(list)
    for k, ds in enumerate(deps):
        for d in ds:
            readers[d].append(k)
    waiting = [len(ds) for ds in deps]
    ready = [k for k in range(len(nodes)) if waiting[k] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for r in readers[k]:
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready, r)
    if len(order) != len(nodes):
        return proto
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    del copy.graph.node[:]
    copy.graph.node.extend(nodes[k] for k in order)
    return copy


def _read(path: Path) -> bytes:
    """The bytes of a model file; a ModelError for anything that is not a readable file."""
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, expected an .onnx file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror or e})") from None


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    if not data:
        raise ModelError(f"{where}: not an ONNX model (empty file)")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception:
        raise ModelError(f"{where}: not an ONNX model (cannot parse the protobuf)") from None
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        raise ModelError(f"{where}: not an ONNX model (no graph)")
    return proto


def _external_tensors(proto: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in external_data_helper._get_all_tensors(proto)
            if external_data_helper.uses_external_data(t)]


def _refuse_external_data(proto: onnx.ModelProto, where: str) -> None:
    external = _external_tensors(proto)
    if external:
        raise ModelError(f"{where}: tensor '{external[0].name}' is stored in an external "
                         "file; load the model from its path instead")


def _load_external_data(proto: onnx.ModelProto, path: Path, where: str) -> None:
    """Read external tensors from the model's folder (onnx refuses paths leaving it)."""
    if not _external_tensors(proto):
        return
    try:
        onnx.load_external_data_for_model(proto, str(path.parent))
    except Exception as e:
        raise ModelError(f"{where}: cannot read external data: {_one_line(e)}") from None


def _check(proto: onnx.ModelProto, where: str) -> None:
    """The default-domain opset is one onnx knows, then onnx.checker; whatever the checker
    raises (a ValidationError, or a decoding error on a corrupted name) becomes one
    ModelError line."""
    newest = onnx.defs.onnx_opset_version()
    for imp in proto.opset_import:
        if imp.domain in ONNX_DOMAINS and imp.version > newest:
            raise ModelError(f"{where}: opset {imp.version} is newer than any this onnx "
                             f"package knows (up to {newest}); ONNX Runtime refuses it too")
    try:
        onnx.checker.check_model(checkable(proto))
    except UnicodeDecodeError:
        raise ModelError(f"{where}: fails the ONNX checker: a name or string is not valid "
                         "UTF-8 (corrupted file?)") from None
    except Exception as e:
        raise ModelError(f"{where}: fails the ONNX checker: {_one_line(e)}") from None


def _check_tensors(proto: onnx.ModelProto, where: str) -> None:
    """Every stored tensor decodes to an array of its declared type and shape (the checker
    lets through an unknown data type or more bytes than the shape needs)."""
    for t in external_data_helper._get_all_tensors(proto):
        try:
            numpy_helper.to_array(t)
        except Exception as e:
            raise ModelError(f"{where}: tensor '{t.name}' cannot be decoded (data type "
                             f"{t.data_type}, shape {list(t.dims)}): {_one_line(e)}") from None


def _check_qdq_params(proto: onnx.ModelProto, where: str) -> None:
    """Constant scales and zero points of QuantizeLinear / DequantizeLinear have the shapes
    the operator allows (ONNX Runtime refuses the others when it runs the node): a scalar
    or a non-empty 1-D tensor (or one element of any rank), and a zero point shaped like
    its scale."""
    dims = {t.name: list(t.dims) for t in proto.graph.initializer}
    for n in proto.graph.node:
        for a in n.attribute:
            if n.op_type == "Constant" and n.output and a.name == "value":
                dims[n.output[0]] = list(a.t.dims)
    for n in proto.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or n.domain not in \
                ONNX_DOMAINS or any(a.name == "block_size" and a.i for a in n.attribute):
            continue
        scale = dims.get(n.input[1]) if len(n.input) > 1 else None
        zp = dims.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        problem = ""
        if scale is not None and (int(np.prod(scale)) == 0 or (
                len(scale) > 1 and int(np.prod(scale)) > 1)):
            problem = f"scale '{n.input[1]}' has shape {scale}, not a scalar or a 1-D tensor"
        elif scale is not None and zp is not None and zp != scale and not (
                int(np.prod(scale)) == int(np.prod(zp)) == 1):
            problem = (f"zero point '{n.input[2]}' has shape {zp}, its scale "
                       f"'{n.input[1]}' {scale}")
        elif scale is not None and len(scale) == 1 and scale[0] > 1 and n.input[0] in dims:
            problem = _axis_problem(n, dims[n.input[0]], scale[0])
        if problem:
            raise ModelError(f"{where}: node '{n.name}' ({n.op_type}): {problem}")


def _axis_problem(node: onnx.NodeProto, shape: list[int], channels: int) -> str:
    """Why a per-axis scale of `channels` entries does not fit a constant of `shape`."""
    axis = next((int(a.i) for a in node.attribute if a.name == "axis"), 1)
    if not -len(shape) <= axis < len(shape):
        return f"axis {axis} is out of range for '{node.input[0]}' of shape {shape}"
    if shape[axis] != channels:
        return (f"axis {axis} of '{node.input[0]}' (shape {shape}) has {shape[axis]} "
                f"entries, the scale '{node.input[1]}' {channels}")
    return ""


_INLINE_BYTES = 1 << 16   # initializers up to this size keep their values for inference


def _check_shapes(proto: onnx.ModelProto, where: str) -> None:
    """Strict shape and type inference on what the nodes define: a node whose inputs cannot
    fit together (a weight of the wrong shape, a stride per missing axis) is the model's
    fault and is reported now, not as a crash of the operator at run time.

    Declared intermediate and output shapes are dropped first (ONNX Runtime treats them as
    hints), and large initializers become typed graph inputs, so the check neither copies
    the weights nor refuses a model with stale shape annotations."""
    try:
        # (onnx's C++ inference on the bytes: its inferred model, which is not needed, is
        # not parsed back into a Python copy)
        shape_inference.C.infer_shapes(_shape_skeleton_bytes(proto), True, True, False)
    except shape_inference.InferenceError as e:
        raise ModelError(f"{where}: fails ONNX shape inference: {_one_line(e)}") from None
    except Exception:   # noqa: BLE001 (a model onnx cannot infer at all is not refused here)
        return


# field numbers of ModelProto.graph and GraphProto.node (onnx.proto)
_MODEL_GRAPH_FIELD, _GRAPH_NODE_FIELD = 7, 1


def _length_delimited(field: int, payload: bytes) -> bytes:
    """One protobuf field of wire type 2 (an embedded message): tag, length, payload."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        low, v = v & 0x7F, v >> 7
        out.append(low | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _shape_skeleton_bytes(proto: onnx.ModelProto, *, for_check: bool = True) -> bytes:
    """The model shape inference checks, serialized: proto's nodes, inputs and outputs
    (for the check, outputs without shapes), small initializers, the large ones as typed
    graph inputs. The nodes are written as proto serializes them instead of copied into a
    second ModelProto (a tree ensemble's attributes are hundreds of megabytes): a message's
    fields may come in any order, and a graph field given twice is one merged graph. Not
    for the check (`inferred_values`), a fused convolution is given as its Conv
    (`infer_shapes`)."""
    nodes = b"".join(
        _length_delimited(_GRAPH_NODE_FIELD, _inferable(n, not for_check).SerializeToString())
        for n in proto.graph.node)
    bare = _nodeless_skeleton(proto, as_declared=not for_check).SerializeToString()
    return bare + _length_delimited(_MODEL_GRAPH_FIELD, nodes)


# field numbers of GraphProto's input, output and value_info (onnx.proto)
_GRAPH_VALUE_FIELDS = frozenset({11, 12, 13})


def inferred_values(model: onnx.ModelProto) -> onnx.GraphProto:
    """A graph of only the top-level inputs, outputs and value_info of `infer_shapes(model)`
    (the declared ones where inference fails), for the rewrites that want types and shapes.
    onnx's C++ inference runs on `_shape_skeleton_bytes` and only those fields of its result
    are parsed: a whole inferred copy would hold every node again (a tree ensemble's
    attributes: a second gigabyte)."""
    try:
        data = shape_inference.C.infer_shapes(_shape_skeleton_bytes(model, for_check=False),
                                              False, False, True)
    except Exception:   # noqa: BLE001 (as infer_shapes: what is declared is still useful)
        graph = onnx.GraphProto()
        graph.input.extend(model.graph.input)
        graph.output.extend(model.graph.output)
        graph.value_info.extend(model.graph.value_info)
        return graph
    kept = b"".join(bytes(field) for number, _, graph in _wire_fields(data)
                    if number == _MODEL_GRAPH_FIELD
                    for inner, field, _ in _wire_fields(graph)
                    if inner in _GRAPH_VALUE_FIELDS)
    graph = onnx.GraphProto.FromString(kept)
    # (the skeleton's large initializers, typed graph inputs there, are not the model's)
    declared = {v.name for v in model.graph.input}
    if len(graph.input) > len(declared):
        inputs = [v for v in graph.input if v.name in declared]
        del graph.input[:]
        graph.input.extend(inputs)
    return graph


def _wire_fields(data: bytes | memoryview) -> Iterator[tuple[int, memoryview, memoryview]]:
    """(number, the whole field: key and value, the value's bytes) of each field of a
    serialized message, in order; a length-delimited value (an embedded message) is
    skipped over, not decoded."""
    view = memoryview(data)
    i = 0
    while i < len(view):
        start = i
        key, i = _read_varint(view, i)
        wire = key & 7
        if wire == 0:
            _, end = _read_varint(view, i)
        elif wire == 2:
            length, i = _read_varint(view, i)
            end = i + length
        elif wire in (1, 5):
            end = i + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"protobuf wire type {wire} (groups) in an ONNX message")
        yield key >> 3, view[start:end], view[i:end]
        i = end


def _read_varint(view: memoryview, i: int) -> tuple[int, int]:
    """The varint at view[i], and the index after it."""
    value = shift = 0
    while True:
        byte = view[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


# attribute defaults that onnx's inference of the op's function body needs written out
# (MeanVarianceNormalization's body reads `axes` into a Constant, which fails when omitted)
_INFERENCE_DEFAULTS: dict[str, tuple[str, list[int]]] = {
    "MeanVarianceNormalization": ("axes", [0, 2, 3])}


def _inferable(node: onnx.NodeProto, fused_as_conv: bool = False) -> onnx.NodeProto:
    """`node`, or a copy with the attribute default shape inference needs spelled out (with
    `fused_as_conv`, a FusedConv the Conv it stands for)."""
    if fused_as_conv and node.op_type == "FusedConv" and node.domain == "com.microsoft":
        return _as_conv(node)
    default = _INFERENCE_DEFAULTS.get(node.op_type)
    if default is None or node.domain not in ("", "ai.onnx") or \
            any(a.name == default[0] for a in node.attribute):
        return node
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.attribute.append(onnx.helper.make_attribute(*default))
    return copy


def _nodeless_skeleton(proto: onnx.ModelProto, as_declared: bool = False) -> onnx.ModelProto:
    bare = onnx.ModelProto(ir_version=proto.ir_version)
    bare.opset_import.extend(proto.opset_import)
    bare.functions.extend(proto.functions)
    graph, g = proto.graph, bare.graph
    g.name = graph.name
    g.input.extend(graph.input)
    g.output.extend(graph.output)
    if as_declared:   # as declared, with the intermediate values' declarations
        g.value_info.extend(graph.value_info)
    for o in g.output:
        if o.type.HasField("tensor_type") and not as_declared:
            o.type.tensor_type.ClearField("shape")
    declared = {i.name for i in graph.input}
    for t in graph.initializer:
        if t.ByteSize() <= _INLINE_BYTES:
            g.initializer.append(t)
        elif t.name not in declared:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims))
    return bare


def _one_line(e: BaseException, limit: int = 300) -> str:
    """The message on one line (onnx's span several: "...of node: \\nname: mm ...")."""
    text = " ".join(str(e).split())
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text or type(e).__name__


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shape inference that never fails: an incomplete result is still useful. ONNX Runtime's
    fused convolutions (com.microsoft FusedConv, which its rewrites and lowp's make) are
    inferred as the Conv they stand for: onnx does not know them, and without a shape there
    every value after the first one would have none, where ONNX Runtime's own inference
    knows them all."""
    try:
        return shape_inference.infer_shapes(_convolutions_as_conv(model), check_type=False,
                                            strict_mode=False, data_prop=True)
    except Exception:
        return model


#: the attributes of an ONNX Conv (what a fused convolution keeps of them)
CONV_ATTRIBUTES = frozenset({"auto_pad", "dilations", "group", "kernel_shape", "pads",
                             "strides"})


def is_onnx_op(node: onnx.NodeProto | None, op_type: str) -> bool:
    """`node` is the standard ONNX operator `op_type` (default domain)."""
    return node is not None and node.op_type == op_type and node.domain in ONNX_DOMAINS


def _convolutions_as_conv(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model`, each top-level FusedConv (X, W, B, Z) an ONNX Conv (X, W, B) of its geometry
    (the same output shape); `model` itself when it has none."""
    fused = [k for k, n in enumerate(model.graph.node)
             if n.op_type == "FusedConv" and n.domain == "com.microsoft"]
    if not fused:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for k in fused:
        copy.graph.node[k].CopyFrom(_as_conv(copy.graph.node[k]))
    return copy


def _as_conv(node: onnx.NodeProto) -> onnx.NodeProto:
    """The ONNX Conv (X, W, B) of a FusedConv's geometry (the same output shape)."""
    conv = helper.make_node("Conv", list(node.input[:3]), list(node.output), node.name)
    conv.attribute.extend(a for a in node.attribute if a.name in CONV_ATTRIBUTES)
    return conv


def opset_of(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ONNX_DOMAINS:
            return int(imp.version)
    return 1


def save_model(model: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Write atomically (`lowp.atomic`), making missing folders."""
    write_bytes(path, model.SerializeToString())


class Graph:
    """Index over a GraphProto: initializers, producers and consumers of each tensor."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.opset = opset_of(model)
        self.initializers: dict[str, onnx.TensorProto] = {
            t.name: t for t in self.graph.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.graph.node:
            for o in node.output:
                if o:
                    self.producer[o] = node
            for i in node.input:
                if i:
                    self.consumers[i].append(node)
            # an If/Loop reads what its branches read from this scope too
            for i in sorted(subgraph_reads(node) - set(node.input)):
                self.consumers[i].append(node)
        self.input_names = [i.name for i in self.graph.input if i.name not in self.initializers]
        # a subgraph's reads of constants of its enclosing graphs (set by the lowering)
        self.outer_constants: frozenset[str] = frozenset()
        self.output_names = [o.name for o in self.graph.output]
        self._constants: dict[str, np.ndarray] = {}
        self._inferred: dict[str, onnx.ValueInfoProto] | None = None
        self._value_index: tuple[tuple[int, int, int],
                                 dict[str, tuple[onnx.ValueInfoProto, ...]]] | None = None
        for node in self.graph.node:
            if node.op_type == "Constant" and len(node.output) == 1:
                value = _constant_value(node)
                if value is not None:
                    self._constants[node.output[0]] = value

    def is_constant(self, name: str) -> bool:
        return name in self.initializers or name in self._constants

    def constant(self, name: str) -> np.ndarray:
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        return self._constants[name]

    def _values(self, name: str) -> tuple[onnx.ValueInfoProto, ...]:
        """The value infos named `name`, in the order value_info, inputs, outputs.

        The index is built on first use (a lookup per tensor would otherwise scan every
        value info: quadratic in the graph's size) and built again when the three lists
        change length (a pass that appends an output to the model it indexes)."""
        g = self.graph
        key = (len(g.value_info), len(g.input), len(g.output))
        if self._value_index is None or self._value_index[0] != key:
            index: dict[str, tuple[onnx.ValueInfoProto, ...]] = {}
            for v in (*g.value_info, *g.input, *g.output):
                index[v.name] = (*index.get(v.name, ()), v)
            self._value_index = (key, index)
        return self._value_index[1].get(name, ())

    def value_shape(self, name: str) -> list[int | str | None] | None:
        for v in self._values(name):
            if v.type.HasField("tensor_type"):
                tt = v.type.tensor_type
                if not tt.HasField("shape"):
                    return None
                return [d.dim_value if d.HasField("dim_value") else
                        (d.dim_param or None) for d in tt.shape.dim]
        return None

    def inferred_shape(self, name: str) -> list[int | str | None] | None:
        """`value_shape`, else the shape onnx's shape inference gives `name` (run once, when
        first needed): ONNX Runtime infers every value's shape as it loads a model, so its
        graph rewrites see shapes that the file does not list (most exporters list none)."""
        shape = self.value_shape(name)
        if shape is not None:
            return shape
        if self._inferred is None:
            self._inferred = {v.name: v for v in inferred_values(self.model).value_info}
        v = self._inferred.get(name)
        if v is None or not v.type.HasField("tensor_type") or not (
                v.type.tensor_type.HasField("shape")):
            return None
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in v.type.tensor_type.shape.dim]

    def is_tensor(self, name: str) -> bool:
        """`name` is not known to be a sequence, map or optional value: its declared type
        (shape inference's value_info) is a tensor or unknown, and no sequence operator
        makes it."""
        if name in self.initializers or name in self._constants:
            return True
        for v in self._values(name):
            if v.type.WhichOneof("value") not in ("tensor_type", None):
                return False
        producer = self.producer.get(name)
        return producer is None or producer.op_type not in SEQUENCE_MAKERS

    def value_elem_type(self, name: str) -> int | None:
        if name in self.initializers:
            return self.initializers[name].data_type
        for v in self._values(name):
            if v.type.HasField("tensor_type"):
                return v.type.tensor_type.elem_type
        return None


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
    return None


def cast_to(node: onnx.NodeProto) -> int | None:
    """The element type a Cast writes (its `to`), None when it names none."""
    return next((a.i for a in node.attribute if a.name == "to"), None)


# the list attribute types that `attributes` can read as numpy arrays, and their dtypes
_ARRAY_LISTS = {onnx.AttributeProto.INTS: (np.int64, "ints"),
                onnx.AttributeProto.FLOATS: (np.float32, "floats"),
                onnx.AttributeProto.STRINGS: (np.bytes_, "strings")}


def attributes(node: onnx.NodeProto, arrays: Iterable[str] = ()) -> dict[str, object]:
    """Node attributes as Python values (strings decoded, tensors as numpy arrays); the
    list attributes named in `arrays` as numpy arrays (int64, float32, or bytes for
    strings) read straight from the protobuf, without a Python object per entry (a tree
    ensemble's lists hold millions)."""
    out: dict[str, object] = {}
    as_arrays = frozenset(arrays)
    for a in node.attribute:
        listed = _ARRAY_LISTS.get(a.type) if a.name in as_arrays else None
        if listed is not None:
            dtype, field = listed
            values = getattr(a, field)
            out[a.name] = (np.array(values, dtype) if dtype is np.bytes_
                           else np.fromiter(values, dtype, count=len(values)))
            continue
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode() for x in v]
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out
