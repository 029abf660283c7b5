"""The tree ensembles' forests built at the session's build (float_registry.PREPARE,
ml_trees.prepare_forest): the first run walks trees already built, a node whose input is a
graph input keeps none of its attribute lists once built, and what the runs give is the
same bits as a forest built at the run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lowp.errors import LowpError, NodeError
from lowp.runtime import Session, ml_tree_ensemble, ml_trees
from lowp.runtime.float_registry import ARRAY_ATTRIBUTES, FLOAT_OPS, PREPARE, node_attributes
from tests.runtime.ort_agreement import onnxruntime_run
from tests.runtime.test_ml_trees import (
    _BRANCHES,
    _inputs,
    _one_split,
    _v5_model,
    random_forest,
    random_forest_v5,
    tree_model,
)


def _model(op: str, dtype: type, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    if op == "TreeEnsemble":
        return _v5_model(random_forest_v5(rng, trees=6, depth=4, features=3, targets=2,
                                          dtype=dtype, big_sets=False), dtype)
    prefix = "target" if op == "TreeEnsembleRegressor" else "class"
    attrs: dict[str, Any] = random_forest(rng, trees=6, depth=4, features=3, targets=3,
                                          prefix=prefix, modes=_BRANCHES, missing=True)
    if prefix == "target":
        attrs["n_targets"] = 3
    else:
        attrs["classlabels_int64s"] = [4, 5, 6]
    return tree_model(op, attrs, dtype)


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(f"u{a.dtype.itemsize}")


_OPS = [(op, t) for op in ("TreeEnsembleRegressor", "TreeEnsembleClassifier", "TreeEnsemble")
        for t in (np.float32, np.float64)]


@pytest.mark.parametrize(("op", "dtype"), _OPS)
def test_the_session_builds_the_forest_before_the_first_run(
        op: str, dtype: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the Session is built, its runs build no forest: they give ONNX Runtime's bits
    with the forest builders gone."""
    model = _model(op, dtype, 3)
    x = _inputs(np.random.default_rng(4), 20, 3, dtype, special=True)
    session = Session(model, threads=1)

    def gone(*_: Any) -> None:
        raise AssertionError("a forest built at the run")

    monkeypatch.setattr(ml_trees, "build_forest", gone)
    monkeypatch.setattr(ml_tree_ensemble, "build_forest_v5", gone)
    got = session.run({"x": x})
    want = onnxruntime_run(model, {"x": x}, 1)
    for o, w in zip(model.graph.output, want, strict=True):
        np.testing.assert_array_equal(_bits(got[o.name]), _bits(w))


@pytest.mark.parametrize(("op", "dtype"), _OPS)
def test_a_graph_input_node_drops_its_lists_once_built(op: str, dtype: type) -> None:
    """PREPARE with `fixed` (a graph input's type) leaves none of the lists; the op then
    gives the bits of a node that kept them, and refuses another input type naming itself."""
    node = _model(op, dtype, 7).graph.node[0]
    x = _inputs(np.random.default_rng(8), 30, 3, dtype, special=True)
    attrs = node_attributes(node)
    PREPARE[op](attrs, np.dtype(dtype), True)
    assert not set(attrs) & ARRAY_ATTRIBUTES[op]
    got, want = FLOAT_OPS[op](x, **attrs), FLOAT_OPS[op](x, **node_attributes(node))
    for g, w in zip(*[r if isinstance(r, tuple) else (r,) for r in (got, want)], strict=True):
        np.testing.assert_array_equal(_bits(g), _bits(w))
    other = np.float32 if dtype == np.float64 else np.float64
    with pytest.raises(NodeError, match=f"{op}: its trees were built for"):
        FLOAT_OPS[op](x.astype(other), **attrs)
    kept = node_attributes(node)
    PREPARE[op](kept, np.dtype(dtype), False)       # (not a graph input: the lists stay)
    assert set(attrs) < set(kept) and ARRAY_ATTRIBUTES[op] & set(kept)


@pytest.mark.parametrize("weights", [[0.25, 0.75], [-0.25, 0.75]])
@pytest.mark.parametrize("ids", [[0, 1], [1, 1]])
def test_two_classes_keep_their_rules_once_the_lists_are_dropped(weights: list[float],
                                                                 ids: list[int]) -> None:
    """The classifier's binary rules (one class id, negative weights) read from the lists
    at the build stay the same without them."""
    model = tree_model("TreeEnsembleClassifier", _one_split(class_weights=weights,
                                                            class_ids=ids))
    x = np.array([[0.0, 0.0], [1.0, 0.0], [np.nan, 0.0]], np.float32)
    got = Session(model, threads=1).run({"x": x})
    want = onnxruntime_run(model, {"x": x}, 1)
    for o, w in zip(model.graph.output, want, strict=True):
        np.testing.assert_array_equal(_bits(got[o.name]), _bits(w))


def test_a_model_the_runs_refuse_still_builds() -> None:
    """A refusal of the forest's build is the run's, as before: the Session builds."""
    model = tree_model("TreeEnsembleClassifier", _one_split(nodes_truenodeids=[7, 0, 0]))
    session = Session(model)
    with pytest.raises(NodeError, match="TreeEnsembleClassifier.*no valid true child"):
        session.run({"x": np.ones((2, 2), np.float32)})


@pytest.mark.parametrize("shape", ["wide", "deep"])
def test_depth_of_counts_the_longest_path(shape: str) -> None:
    """depth_of on a wide tree (levels of many nodes: marked) and a deep one (a few a level:
    sorted) equals the recursive count, and a cycle is refused."""
    if shape == "wide":     # a complete tree of depth 6, children 2k+1, 2k+2
        n = 2 ** 7 - 1
        true_child = np.array([2 * k + 1 if k < 63 else k for k in range(n)])
        false_child = np.array([2 * k + 2 if k < 63 else k for k in range(n)])
        branch = np.arange(n) < 63
    else:                   # a chain of 40 branches, each with a leaf on its false side
        n = 81
        true_child = np.array([k + 2 if k % 2 == 0 and k < 80 else k for k in range(n)])
        false_child = np.array([k + 1 if k % 2 == 0 and k < 80 else k for k in range(n)])
        branch = (np.arange(n) % 2 == 0) & (np.arange(n) < 80)

    def depth(k: int) -> int:
        if not branch[k]:
            return 0
        return 1 + max(depth(int(true_child[k])), depth(int(false_child[k])))

    roots = np.array([0])
    assert ml_trees.depth_of("T", roots, branch, true_child, false_child) == depth(0)
    cyclic = true_child.copy()
    cyclic[int(np.flatnonzero(branch)[-1])] = 0
    with pytest.raises(NodeError, match="cycle"):
        ml_trees.depth_of("T", roots, branch, cyclic, false_child)



@pytest.mark.parametrize("form", ["str", "bytes", "object"])
def test_node_modes_read_in_every_form(form: str) -> None:
    """nodes_modes as strings, as the bytes array the executor reads, or as Python objects:
    the codes of MODES, and an unknown name refused naming the first of them in order."""
    names = ["LEAF", "BRANCH_GT", "BRANCH_LEQ", "LEAF", "BRANCH_NEQ"]
    as_form = {"str": lambda v: list(v), "bytes": lambda v: np.array([m.encode() for m in v]),
               "object": lambda v: np.array([m.encode() for m in v], object)}[form]
    np.testing.assert_array_equal(ml_trees._mode_codes("T", as_form(names)),
                                  [ml_trees.MODES[m] for m in names])
    with pytest.raises(LowpError, match="T.*node mode 'BRANCH_X'"):
        ml_trees._mode_codes("T", as_form([*names, "LEAFY", "BRANCH_X"]))


@pytest.mark.parametrize("layout", ["dense", "shuffled", "gaps"])
def test_node_index_finds_each_pair_in_every_layout(layout: str) -> None:
    """_NodeIndex finds each (tree id, node id) pair at its position and -1 for pairs that
    name no node, whether the ids are the usual dense run (indexed without a sort), in
    another order, or with gaps."""
    rng = np.random.default_rng(11)
    counts = rng.integers(1, 9, 40)
    tree = np.repeat(np.arange(40) * 3 + 5, counts)
    node = np.concatenate([np.arange(c) for c in counts])
    if layout == "shuffled":
        perm = rng.permutation(tree.size)
        tree, node = tree[perm], node[perm]
    elif layout == "gaps":
        node = node * 2
    where = {(int(t), int(u)): k for k, (t, u) in enumerate(zip(tree, node, strict=True))}
    index = ml_trees._NodeIndex(tree, node)
    assert index.unique and (index.starts is not None) == (layout == "dense")
    q_tree = np.r_[tree, rng.integers(0, 130, 300)]
    q_node = np.r_[node, rng.integers(-2, 12, 300)]
    want = [where.get((int(t), int(u)), -1) for t, u in zip(q_tree, q_node, strict=True)]
    np.testing.assert_array_equal(index.find(q_tree, q_node), want)
