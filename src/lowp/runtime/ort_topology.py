"""The order in which ONNX Runtime's graph transformers visit a graph's nodes.

A transformer walks GraphViewer::GetNodesInTopologicalOrder: a reverse depth-first search
(Graph::ReverseDFSFrom) from the nodes no other node reads, taken in node-index order,
each node's producers pushed in increasing index order (so the one of highest index is
explored first), a node placed when all its producers are. Where two matches compete for
one node, the match met first wins: of two single-use MatMuls feeding one Add, ONNX
Runtime's MatMulAddFusion fuses the one written later into the Gemm (tf2onnx's Keras
LSTM, x_t · W + h · R: Gemm(x_t, W, h · R) when h · R is written first), not the first one
in the file. Node indices are the file order, and a node a rewrite adds comes after every
node there is (Graph::AddNode).
"""

from __future__ import annotations

import onnx

from ..ir.graph import node_reads


def topological(nodes: list[onnx.NodeProto], index: dict[int, int]) -> list[onnx.NodeProto]:
    """`nodes` in ONNX Runtime's visiting order; `index` maps id(node) to its node index."""
    producer = {o: n for n in nodes for o in n.output if o}
    inputs = {id(n): sorted({id(producer[i]): producer[i] for i in node_reads(n)
                             if i in producer and producer[i] is not n}.values(),
                            key=lambda p: index[id(p)]) for n in nodes}
    read = {id(p) for ps in inputs.values() for p in ps}
    stack = [(n, False) for n in sorted(nodes, key=lambda n: index[id(n)]) if id(n) not in read]
    seen: set[int] = set()
    order: list[onnx.NodeProto] = []
    while stack:
        node, leave = stack.pop()
        if leave:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in inputs[id(node)])
    return order
