"""ONNX Runtime's QDQ propagation, applied before lowering.

At load ONNX Runtime's QDQPropagationTransformer inserts QuantizeLinear -> DequantizeLinear
pairs, with the parameters of a QuantizeLinear (or DequantizeLinear) that has one constant
scale and zero point, across the data movement next to it:

- *Q backward*: from a QuantizeLinear up through MaxPool, Reshape, Transpose, Squeeze,
  Unsqueeze and Slice (each the only reader of its input, which is no graph output), a pair
  on each such node's input, until a DequantizeLinear produces it;
- *DQ forward*: from a DequantizeLinear whose output has one reader, down through the same
  operators, a QuantizeLinear after each and a DequantizeLinear before each of its readers
  that is not a QuantizeLinear.

The pairs change no value by themselves (those operators only move or select values), but
they make new QDQ groups that ONNX Runtime then runs as integer operators: a float
AveragePool whose output reaches a QuantizeLinear through a Reshape and a Transpose becomes
DequantizeLinear -> AveragePool -> QuantizeLinear, and its QLinearAveragePool sums in
another order than a float AveragePool (docs/operators.md (O8a)). lowp makes the same pairs,
so that its lowering finds the same groups. Only the top-level graph is rewritten.
"""

from __future__ import annotations

import itertools

import onnx
from onnx import defs, helper, numpy_helper

from ..ir.graph import ONNX_DOMAINS, subgraph_reads

# CanNodePropagate: the operator at these versions (the schema's since-version)
_PROPAGATING = {"MaxPool": {12}, "Reshape": {5, 13, 14, 19}, "Transpose": {1, 13},
                "Squeeze": {1, 11, 13}, "Unsqueeze": {1, 11, 13}, "Slice": {1, 10, 11, 13}}


class QdqGraph:
    """Index of a top-level graph's nodes for the ONNX Runtime load-time rewrites (QDQ
    propagation here, double QDQ pairs in ort_double_qdq)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.nodes = list(g.node)
        self.inputs = {i.name for i in g.input}
        self.outputs = {o.name for o in g.output}
        self.subgraph_reads = {name for node in g.node for name in subgraph_reads(node)}
        self.inits = {t.name: t for t in g.initializer if t.name not in self.inputs}
        self.opset = next((int(o.version) for o in model.opset_import
                           if o.domain in ONNX_DOMAINS), 0)
        self.counter = itertools.count()
        self.used = {n for node in g.node for n in (*node.input, *node.output)} | self.inputs \
            | set(self.inits)
        self.added: dict[int, list[onnx.NodeProto]] = {}    # new nodes after node id()
        self._index: tuple[int, dict[str, onnx.NodeProto],
                           dict[str, list[tuple[onnx.NodeProto, int]]]] | None = None

    @classmethod
    def editable_copy(cls, model: onnx.ModelProto) -> tuple[onnx.ModelProto, QdqGraph]:
        """A copy of `model` to rewrite and its index, where a tensor a subgraph reads
        counts as a graph output (it must stay as it is)."""
        out = onnx.ModelProto()
        out.CopyFrom(model)
        g = cls(out)
        g.outputs |= {name for node in g.nodes for name in subgraph_reads(node)}
        return out, g

    def write_nodes(self, out: onnx.ModelProto) -> onnx.ModelProto:
        """`out` with its top-level nodes replaced by this index's, in order."""
        del out.graph.node[:]
        out.graph.node.extend(self.nodes)
        return out

    def edited(self) -> None:
        """To call after changing a node's inputs or outputs, or the node list without
        changing its length: the producer and reader index is built again when next used."""
        self._index = None

    def _indexed(self) -> tuple[dict[str, onnx.NodeProto],
                                dict[str, list[tuple[onnx.NodeProto, int]]]]:
        """Producer and readers of each tensor over `nodes`, in their order (a scan per
        lookup would be quadratic in the graph's size: the rewrites ask of every tensor)."""
        if self._index is None or self._index[0] != len(self.nodes):
            producers: dict[str, onnx.NodeProto] = {}
            readers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
            for n in self.nodes:
                for o in n.output:
                    producers.setdefault(o, n)
                for k, i in enumerate(n.input):
                    readers.setdefault(i, []).append((n, k))
            self._index = (len(self.nodes), producers, readers)
        return self._index[1], self._index[2]

    def producer(self, name: str) -> onnx.NodeProto | None:
        return self._indexed()[0].get(name)

    def readers(self, name: str) -> list[tuple[onnx.NodeProto, int]]:
        return list(self._indexed()[1].get(name, ()))

    def scalar_parameters(self, node: onnx.NodeProto) -> list[str] | None:
        """QOrDQNodeHasConstantScalarScaleAndZeroPoint: the scale (and zero point) inputs,
        each one constant value (a node that picks its type or blocks by attribute, which
        the pairs would not carry, is left alone)."""
        names = [i for i in node.input[1:3] if i]
        if not names or len(node.input) < 2 or not node.input[1]:
            return None
        for name in names:
            t = self.inits.get(name)
            if t is None or numpy_helper.to_array(t).size != 1:
                return None
        if any(a.name in ("output_dtype", "block_size") and helper.get_attribute_value(a)
               for a in node.attribute):
            return None
        return names

    def propagates(self, node: onnx.NodeProto) -> bool:
        versions = _PROPAGATING.get(node.op_type)
        if versions is None or node.domain not in ONNX_DOMAINS:
            return False
        try:
            since = defs.get_schema(node.op_type, self.opset).since_version
        except Exception:
            return False
        return since in versions

    def fresh(self, base: str) -> str:
        while True:
            name = f"{base}_{next(self.counter)}"
            if name not in self.used:
                self.used.add(name)
                return name

    def pair(self, source: str, params: list[str], readers: list[tuple[onnx.NodeProto, int]],
             after: onnx.NodeProto | None) -> list[str]:
        """A QuantizeLinear of `source` and a DequantizeLinear per reader (which then reads
        it); returns the DequantizeLinear outputs. The nodes go after `after` (the
        producer of `source`; None: first).

        As InsertQDQPairs does, the producer's output becomes a new tensor,
        `{source}_pre_q`, unless `source` is a graph input or initializer: the tensors
        around the pair are new to ONNX Runtime, and their shapes are only what its
        inference computes, never what the file declares for `source` (a shape the fusions
        read: docs/operators.md (O99)). `readers` are all of `source`'s readers (both
        propagations pair every edge or none); a tensor a subgraph reads keeps its name."""
        data = source
        if after is not None and source not in self.subgraph_reads:
            data = self.fresh(f"{source}_pre_q")
            after.output[list(after.output).index(source)] = data
        q_out = self.fresh(f"{source}_q_to_dq")
        new = [helper.make_node("QuantizeLinear", [data, *params], [q_out],
                                name=self.fresh(f"{source}_q"))]
        outs = []
        for node, slot in readers:
            dq_out = self.fresh(f"{source}_post_dq")
            new.append(helper.make_node("DequantizeLinear", [q_out, *params], [dq_out],
                                        name=self.fresh(f"{source}_dq")))
            node.input[slot] = dq_out
            outs.append(dq_out)
        self.added.setdefault(-1 if after is None else id(after), []).extend(new)
        self.nodes.extend(new)
        self.edited()
        return outs

    def single_reader(self, name: str) -> onnx.NodeProto | None:
        """The one node reading `name` when it is no graph output (GetPreviousEdge /
        GetNextEdge's single edge)."""
        readers = self.readers(name)
        if name in self.outputs or len(readers) != 1:
            return None
        return readers[0][0]


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with ONNX Runtime's propagated QDQ pairs (a new model), or `model` itself
    when it gets none."""
    if not any(n.op_type in _PROPAGATING for n in model.graph.node):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = QdqGraph(out)
    original = list(g.nodes)
    changed = False
    for q in [n for n in original if n.op_type == "QuantizeLinear" and n.domain in ONNX_DOMAINS]:
        changed |= _q_backward(g, q)
    for dq in [n for n in original if n.op_type == "DequantizeLinear" and n.domain in ONNX_DOMAINS]:
        changed |= _dq_forward(g, dq)
    if not changed:
        return model
    del out.graph.node[:]
    out.graph.node.extend(g.added.get(-1, []))
    for node in original:
        out.graph.node.append(node)
        pending = [node]
        while pending:                       # nodes added after added nodes, in order
            extra = g.added.get(id(pending.pop()), [])
            out.graph.node.extend(extra)
            pending.extend(reversed(extra))
    return out


def _q_backward(g: QdqGraph, q: onnx.NodeProto) -> bool:
    params = g.scalar_parameters(q)
    if params is None or not q.input or not q.input[0]:
        return False
    name = q.input[0]
    if name in g.inputs or name in g.inits or g.single_reader(name) is not q:
        return False
    node = g.producer(name)
    changed = False
    while node is not None and g.propagates(node) and node.input and node.input[0]:
        before = node.input[0]
        source = None if before in g.inputs or before in g.inits else g.producer(before)
        if source is not None and g.single_reader(before) is not node:
            break
        if source is not None and source.op_type == "DequantizeLinear" and \
                source.domain in ONNX_DOMAINS:
            break
        g.pair(before, params, [(node, 0)], source)
        changed = True
        node = source
    return changed


def _dq_forward(g: QdqGraph, dq: onnx.NodeProto) -> bool:
    params = g.scalar_parameters(dq)
    if params is None or not dq.output or dq.output[0] in g.outputs:
        return False
    readers = g.readers(dq.output[0])
    if len(readers) != 1:
        return False
    changed = False
    pending = [readers[0][0]]
    while pending:
        node = pending.pop()
        if not g.propagates(node) or not node.output or not node.output[0]:
            continue
        name = node.output[0]
        if name in g.outputs:
            continue        # (an edge to the graph output: left as it is)
        edges = g.readers(name)
        if not edges or any(r.op_type == "QuantizeLinear" and r.domain in ONNX_DOMAINS
                            for r, _ in edges):
            continue        # (a QuantizeLinear among the readers: ONNX Runtime 1.32 stops)
        g.pair(name, params, edges, node)
        changed = True
        pending.extend(r for r, _ in edges)
    return changed
