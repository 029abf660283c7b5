"""The lookup indexes of lowp.ir.graph.Graph (value infos) and of the load-time rewrites'
QdqGraph (producers and readers) answer as the linear scans they replace did, in the
graph's order, and follow the edits made through them (a scan per lookup made both
quadratic in the graph's size: 7 s of each Session load of a 1337-node QDQ model)."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.ir.graph import Graph
from lowp.runtime.ort_qdq_propagation import QdqGraph


def _chain(n: int, readers: list[int]) -> onnx.ModelProto:
    """x -> Relu t0 -> ... -> t{n-1}; node i also adds t{readers[i]} when it is earlier."""
    nodes, prev = [], "x"
    for i in range(n):
        extra = readers[i % len(readers)] if readers else 0
        if 0 < extra <= i:
            nodes.append(helper.make_node("Add", [prev, f"t{extra - 1}"], [f"t{i}"],
                                          name=f"n{i}"))
        else:
            nodes.append(helper.make_node("Relu", [prev], [f"t{i}"], name=f"n{i}"))
        prev = f"t{i}"
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(0.1, np.float32), "s")])
    graph.value_info.extend([helper.make_tensor_value_info("t0", TensorProto.FLOAT16, [2]),
                             helper.make_tensor_value_info("t0", TensorProto.FLOAT, [3]),
                             helper.make_tensor_sequence_value_info("t1", TensorProto.FLOAT,
                                                                    None)])
    return helper.make_model(graph)


def _scan_elem_type(g: onnx.GraphProto, name: str) -> int | None:
    for v in (*g.value_info, *g.input, *g.output):
        if v.name == name and v.type.HasField("tensor_type"):
            return v.type.tensor_type.elem_type
    return None


def test_value_lookups_match_a_scan_and_follow_appended_outputs() -> None:
    model = _chain(6, [])
    graph = Graph(model)
    names = ["x", "s", *(f"t{i}" for i in range(6)), "missing"]
    for name in names:
        assert graph.value_elem_type(name) == (
            TensorProto.FLOAT if name == "s" else _scan_elem_type(model.graph, name))
    assert graph.value_elem_type("t0") == TensorProto.FLOAT16     # the first one listed
    assert graph.value_shape("t0") == [2]
    assert not graph.is_tensor("t1") and graph.is_tensor("t2")
    assert graph.value_elem_type("t3") is None
    model.graph.output.append(helper.make_tensor_value_info("t3", TensorProto.INT8, [2]))
    assert graph.value_elem_type("t3") == TensorProto.INT8


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.lists(st.integers(0, 12), max_size=6))
def test_qdq_graph_index_matches_a_scan_through_edits(n: int, readers: list[int]) -> None:
    model = _chain(n, readers)
    g = QdqGraph(model)

    def check() -> None:
        names = {t for node in g.nodes for t in (*node.input, *node.output)}
        for name in names:
            assert g.readers(name) == [(node, k) for node in g.nodes
                                       for k, i in enumerate(node.input) if i == name]
            assert g.producer(name) is next((node for node in g.nodes
                                             if name in node.output), None)

    check()
    for node in list(g.nodes)[::2]:      # a pair before every other node's first input
        g.pair(node.input[0], ["s"], [(node, 0)], None)
        check()
    g.nodes.remove(g.nodes[0])
    g.edited()
    check()
    g.nodes[0].input[0] = "x"
    g.edited()
    check()
