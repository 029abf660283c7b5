"""Insert QuantizeLinear / DequantizeLinear: mechanical, names from one allocator."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir.graph import Graph, node_reads
from ..ir.names import NameAllocator
from ..qparams import QParams, quantize
from .annotate import Annotation
from .choose import QuantPlan
from .close_propagation import close_propagation


def insert_qdq(model: onnx.ModelProto, ann: Annotation, plan: QuantPlan) -> onnx.ModelProto:
    """Return the QDQ model: every quantized tensor t becomes Q(t) -> DQ -> t."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    graph = Graph(out)
    names = NameAllocator.for_model(out)
    fused_nodes = set(ann.fused)
    new_inits: list[onnx.TensorProto] = []
    replaced_inits: set[str] = set()

    def qparam_inits(t: str, qp: QParams) -> tuple[str, str]:
        s = names.fresh(f"{t}_scale")
        z = names.fresh(f"{t}_zero_point")
        new_inits.append(numpy_helper.from_array(qp.scale.astype(np.float32), s))
        zp = qp.zero_point.astype(qp.qtype.numpy_dtype)
        zt = numpy_helper.from_array(zp, z)
        zt.data_type = qp.qtype.onnx_type
        new_inits.append(zt)
        return s, z

    def dq_node(inputs: list[str], output: str, axis: int | None) -> onnx.NodeProto:
        node = helper.make_node("DequantizeLinear", inputs, [output],
                                name=names.fresh(f"{output}_DequantizeLinear"))
        if axis is not None:
            node.attribute.append(helper.make_attribute("axis", axis))
        return node

    def dq_of_constant(t: str, q: np.ndarray, qp: QParams) -> onnx.NodeProto:
        qname = names.fresh(f"{t}_quantized")
        qt = numpy_helper.from_array(q.astype(qp.qtype.numpy_dtype), qname)
        qt.data_type = qp.qtype.onnx_type
        new_inits.append(qt)
        s, z = qparam_inits(t, qp)
        replaced_inits.add(t)
        axis = None if qp.is_per_tensor else getattr(qp.granularity, "axis", None)
        return dq_node([qname, s, z], t, axis)

    head: list[onnx.NodeProto] = []
    after: dict[str, list[onnx.NodeProto]] = {}     # tensor -> Q/DQ nodes placed after it
    renames: dict[str, str] = {}                    # producer output -> new float name

    for w, (q, qp) in plan.weights.items():
        head.append(dq_of_constant(w, q, qp))
    for b, (bq, bscale) in plan.biases.items():
        zp = np.zeros(bscale.shape if bscale.ndim else (), np.int32)
        bqp_scale = bscale if bq.size > 1 and bscale.ndim else np.float32(bscale.flat[0])
        qname = names.fresh(f"{b}_quantized")
        new_inits.append(numpy_helper.from_array(bq.astype(np.int32), qname))
        s, z = names.fresh(f"{b}_scale"), names.fresh(f"{b}_zero_point")
        new_inits.append(numpy_helper.from_array(np.asarray(bqp_scale, np.float32), s))
        new_inits.append(numpy_helper.from_array(
            zp if np.ndim(bqp_scale) else np.int32(0), z))
        replaced_inits.add(b)
        head.append(dq_node([qname, s, z], b, 0 if np.ndim(bqp_scale) else None))

    graph_inputs = {i.name for i in g.input}
    fused_out = {n.output[0]: n.input[0] for n in g.node if n.name in fused_nodes}
    for t in ann.quantized_tensors():
        qp = plan.activations[t]
        if graph.is_constant(t) and t in graph.initializers:
            head.append(dq_of_constant(t, quantize(graph.constant(t), qp), qp))
            continue
        s, z = qparam_inits(t, qp)
        qname = names.fresh(f"{t}_quantized")
        if t in fused_out:                          # Relu/Clip absorbed: quantize its input
            src, anchor = fused_out[t], fused_out[t]
        elif t in graph_inputs:
            src, anchor = t, t
        else:
            src = names.fresh(f"{t}_float")
            renames[t] = src
            anchor = src
        qnode = helper.make_node("QuantizeLinear", [src, s, z], [qname],
                                 name=names.fresh(f"{t}_QuantizeLinear"))
        dq_out = t if t not in graph_inputs else names.fresh(f"{t}_dequantized")
        dqnode = helper.make_node("DequantizeLinear", [qname, s, z], [dq_out],
                                  name=names.fresh(f"{t}_DequantizeLinear"))
        if t in graph_inputs:
            for n in g.node:
                for k, i in enumerate(n.input):
                    if i == t:
                        n.input[k] = dq_out
        after.setdefault(anchor, []).extend([qnode, dqnode])

    nodes: list[onnx.NodeProto] = list(head)
    for i in g.input:                     # in the graph's order, not a set's (hash seed)
        nodes.extend(after.pop(i.name, []))
    for n in g.node:
        if n.name in fused_nodes:
            continue
        for k, o in enumerate(n.output):
            if o in renames:
                n.output[k] = renames[o]
        nodes.append(n)
        for o in n.output:
            nodes.extend(after.pop(o, []))
    if after:
        raise AssertionError(f"Q/DQ nodes without an anchor: {sorted(after)}")
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in nodes for i in node_reads(n)} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name not in replaced_inits and t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    inputs = [i for i in g.input if i.name not in replaced_inits]
    del g.input[:]
    g.input.extend(inputs)
    vi = [v for v in g.value_info if v.name not in renames]
    del g.value_info[:]
    g.value_info.extend(vi)
    return close_propagation(out)
