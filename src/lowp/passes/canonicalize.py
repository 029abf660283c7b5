"""Canonicalize a float model: opset >= 13, constants as initializers, constant folding,
BatchNormalization folded into the preceding Conv/Gemm."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference, version_converter

from ..errors import ModelError
from ..ir.graph import (
    MIN_OPSET,
    ONNX_DOMAINS,
    Graph,
    attributes,
    infer_shapes,
    node_reads,
    opset_of,
)
from ..ir.names import NameAllocator

_NOT_FOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                 "Multinomial", "Bernoulli", "If", "Loop", "Scan"}
_MAX_FOLD_ELEMENTS = 1 << 24


def canonicalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a canonical copy of `model` (the input is not modified)."""
    model = upgrade_opset(model)
    initializers_are_not_inputs(model)
    model = name_nodes(model)
    remove_identities(model)
    model = constants_to_initializers(model)
    model = fold_constants(model)
    model = fold_batch_norm(model)
    unshare_biases(model)
    drop_contradicted_shapes(model)
    return infer_shapes(model)


def drop_contradicted_shapes(model: onnx.ModelProto) -> None:
    """Clear the declared shape of every graph output and value info that the model's own
    nodes contradict (in place; the element type stays).

    ONNX Runtime only warns when an output's computed shape is not the declared one (madmom's
    converter declares its outputs as rank 1; the RNNs' are rank 2), while onnx's strict
    shape inference refuses such a model: a quantized copy keeping the declaration failed
    `verify`'s checker. Nothing is done when strict inference passes (the common case)."""
    try:
        shape_inference.infer_shapes(model, check_type=False, strict_mode=True,
                                     data_prop=True)
        return
    except Exception:
        pass
    g = model.graph
    declared = [v for v in (*g.output, *g.value_info)
                if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for v in (*probe.graph.output, *probe.graph.value_info):
        if v.type.HasField("tensor_type"):
            v.type.tensor_type.ClearField("shape")
    done = infer_shapes(probe).graph
    inferred = {v.name: v.type.tensor_type for v in (*done.output, *done.value_info)
                if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")}
    for v in declared:
        mine, theirs = v.type.tensor_type.shape.dim, inferred.get(v.name)
        if theirs is None:
            continue
        dims = theirs.shape.dim
        if len(dims) != len(mine) or any(
                a.HasField("dim_value") and b.HasField("dim_value")
                and a.dim_value != b.dim_value for a, b in zip(mine, dims, strict=True)):
            v.type.tensor_type.ClearField("shape")


# op type -> input position of the bias, which is quantized at s_x * s_w of its node
_BIAS_INPUT = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2}


def unshare_biases(model: onnx.ModelProto) -> None:
    """Give every node its own copy of a bias initializer that several nodes read (in place).

    A quantized bias has the scale s_x * s_w of its node; nodes sharing one float bias (the
    two branches of a siamese network) have different input scales, so one int32 bias cannot
    serve them all: ONNX Runtime's fused kernels take the int32 values as they are, whatever
    scale the file gives them.
    """
    inits = {t.name: t for t in model.graph.initializer}
    names = NameAllocator.for_model(model)
    seen: set[str] = set()
    for node in model.graph.node:
        k = _BIAS_INPUT.get(node.op_type)
        if k is None or node.domain not in ("", "ai.onnx") or len(node.input) <= k:
            continue
        bias = node.input[k]
        if bias not in inits:
            continue
        if bias in seen:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[bias])
            copy.name = names.fresh(bias)
            model.graph.initializer.append(copy)
            node.input[k] = copy.name
        seen.add(bias)


def upgrade_opset(model: onnx.ModelProto, opset: int = MIN_OPSET) -> onnx.ModelProto:
    """A copy of `model` at `opset` or above (13 for per-channel QDQ, 21 for 16-bit QDQ)."""
    if opset_of(model) >= opset:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        return out
    if not any(imp.domain in ONNX_DOMAINS for imp in model.opset_import) \
            and not any(n.domain in ONNX_DOMAINS for n in model.graph.node):
        # a file of other domains' nodes only (OnnxMLTools' LinearClassifier -> ZipMap)
        # imports no default-domain opset: nothing to convert, the import is added
        out = onnx.ModelProto()
        out.CopyFrom(model)
        out.opset_import.append(helper.make_opsetid("", opset))
        return out
    try:
        return version_converter.convert_version(model, opset)
    except Exception as e:
        raise ModelError(f"cannot upgrade the model from opset {opset_of(model)} to "
                         f"{opset}: {str(e).strip().splitlines()[0]}") from None


def initializers_are_not_inputs(model: onnx.ModelProto) -> None:
    """Raise an IR < 4 model (in place) to the IR version of its opsets.

    Before IR 4 every initializer had to be listed as a graph input too; such an input is
    a weight, not a real input. Dropping those inputs lets later passes add, fold and drop
    initializers freely (IR >= 4 needs no matching input) and leaves only real inputs.
    Domains onnx does not version (com.microsoft) do not count in the IR chosen.
    """
    if model.ir_version >= 4:
        return
    inits = {t.name for t in model.graph.initializer}
    real = [i for i in model.graph.input if i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(real)
    model.ir_version = max(4, helper.find_min_ir_version_for(list(model.opset_import),
                                                             ignore_unknown=True))


def remove_identities(model: onnx.ModelProto) -> None:
    """Drop Identity nodes (in place) whose output is not a graph output; readers of the
    output read the input instead."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    dropped = []
    for k, node in enumerate(graph.node):
        if (node.op_type == "Identity" and node.domain in ("", "ai.onnx")
                and node.output[0] not in outputs):
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
            dropped.append(k)
    drop_nodes(graph, dropped)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]


def drop_nodes(graph: onnx.GraphProto, dropped: list[int]) -> None:
    """Remove the nodes at positions `dropped` in place, the others left where they are
    (emptying the list and extending it with the kept nodes copies each of them: a tree
    ensemble's attributes are hundreds of megabytes)."""
    for k in sorted(set(dropped), reverse=True):
        del graph.node[k]


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every unnamed node a unique name: errors and reports refer to nodes by name."""
    names = NameAllocator.for_model(model)
    seen: set[str] = set()
    for node in model.graph.node:
        if not node.name or node.name in seen:
            node.name = names.fresh(f"{node.op_type}_{len(seen)}")
        seen.add(node.name)
    return model


def constants_to_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    g = Graph(model)
    dropped = []
    for k, node in enumerate(model.graph.node):
        if node.op_type == "Constant" and g.is_constant(node.output[0]):
            model.graph.initializer.append(
                numpy_helper.from_array(g.constant(node.output[0]), node.output[0]))
            dropped.append(k)
    drop_nodes(model.graph, dropped)
    return model


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Evaluate nodes whose inputs are all initializers, once, and store their outputs."""
    from onnx.reference import ReferenceEvaluator

    inits = {t.name for t in model.graph.initializer}
    graph_outputs = {o.name for o in model.graph.output}
    folded = []
    for k, node in enumerate(model.graph.node):
        ins = [i for i in node.input if i]
        if (node.domain not in ("", "ai.onnx") or node.op_type in _NOT_FOLDABLE or not ins
                or not all(i in inits for i in ins)
                or any(o in graph_outputs for o in node.output)):
            continue
        values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer
                  if t.name in ins}
        if sum(v.size for v in values.values()) > _MAX_FOLD_ELEMENTS:
            continue
        try:
            sub = helper.make_model(
                helper.make_graph(
                    [node], "fold", [],
                    [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
                     for o in node.output if o],
                    initializer=[numpy_helper.from_array(v, k) for k, v in values.items()]),
                opset_imports=list(model.opset_import))
            results = ReferenceEvaluator(sub).run(None, {})
        except Exception:
            continue
        if any(isinstance(r, list) or r is None for r in results):
            continue                # a sequence (a list) or optional is no initializer
        for name, value in zip([o for o in node.output if o], results, strict=True):
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
            inits.add(name)
        folded.append(k)
    drop_nodes(model.graph, folded)
    return drop_unused_initializers(model)


def fold_batch_norm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Conv / ConvTranspose -> BatchNormalization (inference) becomes one node with adjusted
    weights and bias."""
    g = Graph(model)
    inits = {t.name: t for t in model.graph.initializer}
    removed: set[int] = set()
    renames: dict[str, str] = {}
    for bn in model.graph.node:
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        conv = g.producer.get(bn.input[0])
        if (conv is None or conv.op_type not in ("Conv", "ConvTranspose")
                or len(g.consumers[bn.input[0]]) != 1
                or bn.input[0] in g.output_names
                or not all(i in inits for i in bn.input[1:5])
                or conv.input[1] not in inits
                or (len(conv.input) > 2 and conv.input[2] and conv.input[2] not in inits)):
            continue
        eps = float(attributes(bn).get("epsilon", 1e-5))  # type: ignore[arg-type]
        gamma, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float32)
                                  for i in bn.input[1:5])
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float32)
        factor = (gamma / np.sqrt(var + np.float32(eps))).astype(np.float32)
        b = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float32)
             if len(conv.input) > 2 and conv.input[2] else np.zeros(factor.size, np.float32))
        w_new = _scale_output_channels(w, factor, conv.op_type,
                                       int(attributes(conv).get("group", 1)))  # type: ignore[call-overload]
        b_new = ((b - mean) * factor + beta).astype(np.float32)
        w_name = conv.input[1] + "_bnfold"
        b_name = (conv.input[2] if len(conv.input) > 2 and conv.input[2]
                  else conv.name + "_bias") + "_bnfold"
        model.graph.initializer.append(numpy_helper.from_array(w_new, w_name))
        model.graph.initializer.append(numpy_helper.from_array(b_new, b_name))
        inits[w_name] = model.graph.initializer[-2]
        inits[b_name] = model.graph.initializer[-1]
        new_inputs = [conv.input[0], w_name, b_name]
        del conv.input[:]
        conv.input.extend(new_inputs)
        renames[bn.input[0]] = bn.output[0]
        removed.add(id(bn))
    if not removed:
        return model
    keep = [n for n in model.graph.node if id(n) not in removed]
    for n in keep:
        for k, o in enumerate(n.output):
            if o in renames:
                n.output[k] = renames[o]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return drop_unused_initializers(model)


def _scale_output_channels(w: np.ndarray, factor: np.ndarray, op_type: str,
                           group: int) -> np.ndarray:
    """Multiply each output channel's weights by factor[channel].

    Conv weights are (C_out, C_in/group, *k); ConvTranspose weights are
    (C_in, C_out/group, *k), output channel g * (C_out/group) + j being column j of group g.
    """
    if op_type == "Conv":
        return (w * factor.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
    c_in, per_group = w.shape[0], w.shape[1]
    grouped = w.reshape((group, c_in // group, per_group) + w.shape[2:])
    f = factor.reshape((group, 1, per_group) + (1,) * (w.ndim - 2))
    return (grouped * f).reshape(w.shape).astype(np.float32)


def drop_unused_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    used = {i for n in model.graph.node for i in node_reads(n)}
    used |= {o.name for o in model.graph.output}
    initializer_names = {t.name for t in model.graph.initializer}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    # IR < 4 lists every initializer as a graph input too: such an input goes with its
    # initializer (it is a default value, not a real input); real inputs always stay
    graph_inputs = [i for i in model.graph.input
                    if i.name in used or i.name not in initializer_names]
    del model.graph.input[:]
    model.graph.input.extend(graph_inputs)
    # value_info of folded-away tensors is harmless; shape inference refreshes it
    return model


