"""evals/corpus/repro/float_divergence.py's search for the first differing cut: it searches
the tensors the differing one is computed from, not every tensor in graph order (where an
agreeing value of another branch before a differing one stops the search too late)."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.corpus.repro import float_divergence  # noqa: E402


def _branches() -> tuple[onnx.ModelProto, list[str]]:
    """x -> a -> b -> c and x -> s1 -> s2 written a, b, s1, s2, c, then e = Add(c, s2)."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Neg", ["a"], ["b"]),
             helper.make_node("Abs", ["x"], ["s1"]),
             helper.make_node("Sigmoid", ["s1"], ["s2"]),
             helper.make_node("Exp", ["b"], ["c"]),
             helper.make_node("Add", ["c", "s2"], ["e"])]
    value = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])]
    graph = helper.make_graph(nodes, "g", value,
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [4])])
    return helper.make_model(graph), ["a", "b", "s1", "s2", "c", "e"]


def test_first_differing_cut_follows_what_the_difference_is_computed_from() -> None:
    model, names = _branches()
    differ = {"b", "c", "e"}                 # b's producer is where the engines part
    asked: list[str] = []

    def differs(name: str) -> bool:
        asked.append(name)
        return name in differ

    assert float_divergence.first_differing_cut(model, names, differs) == "b"
    assert len(asked) == len(set(asked))     # each cut run once


def test_first_differing_cut_of_agreeing_models_is_none() -> None:
    model, names = _branches()
    assert float_divergence.first_differing_cut(model, names, lambda name: False) is None
    assert float_divergence.first_differing_cut(model, names, lambda name: name == "e") == "e"
    assert float_divergence.ancestors(model, "c") == {"x", "a", "b", "c"}
