"""ONNX Runtime's GemmTransposeFusion and MatmulTransposeFusion (lowp.runtime.ort_transpose_fold,
(O33t)): a Transpose read by a product becomes the product's transpose flag, which changes
MLAS's kernel and K blocking; lowp's outputs equal ONNX Runtime's bit for bit."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from evals.corpus.repro import transposed_layer_norm
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, ort_fusions
from tests.runtime.ort_agreement import assert_bits_agree, assert_engines_agree, onnxruntime_run

F = TensorProto.FLOAT


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, tuple[int, ...]],
           outputs: dict[str, tuple[int, ...]], inits: dict[str, np.ndarray] | None = None,
           opset: int = 13) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, F, list(v)) for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, F, list(v)) for k, v in outputs.items()],
        [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _swap_last_two(rank: int) -> list[int]:
    return [*range(rank - 2), rank - 1, rank - 2]


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in ort_fusions.apply(model).graph.node]


@given(m=st.integers(1, 4), k=st.sampled_from([7, 64, 129, 256, 300]),
       n=st.sampled_from([1, 3, 20, 96]), batch=st.sampled_from([(), (1,), (2,)]),
       which=st.sampled_from(["a", "b", "ab"]), seed=st.integers(0, 2**16))
@settings(max_examples=25, deadline=None)
def test_matmul_of_a_transpose_is_ort_fused_matmul(m, k, n, batch, which, seed):
    # slanet_table's attention: Transpose(softmax [1, T, 1], [0, 2, 1]) -> MatMul with the
    # features [1, T, 96]: ONNX Runtime reads A transposed (no M = 1 kernel, K blocks of
    # 128), lowp multiplied the transposed copy by the M = 1 kernel (93% of values 1 ulp off)
    rank = len(batch) + 2
    a_shape = (*batch, k, m) if "a" in which else (*batch, m, k)
    b_shape = (*batch, n, k) if "b" in which else (*batch, k, n)
    nodes, names = [], ["a", "b"]
    for i, side in enumerate("ab"):
        if side in which:
            nodes.append(helper.make_node("Transpose", [side], [side + "t"],
                                          perm=_swap_last_two(rank)))
            names[i] = side + "t"
    nodes.append(helper.make_node("MatMul", names, ["y"]))
    model = _model(nodes, {"a": a_shape, "b": b_shape}, {"y": (*batch, m, n)})
    assert _ops(model) == ["FusedMatMul"]
    rng = np.random.default_rng(seed)
    assert_engines_agree(model, {"a": rng.standard_normal(a_shape).astype(np.float32),
                                 "b": rng.standard_normal(b_shape).astype(np.float32)})


@given(m=st.integers(1, 3), k=st.sampled_from([5, 64, 130, 300]), n=st.sampled_from([1, 8, 33]),
       trans_a=st.booleans(), opset=st.sampled_from([13, 21]), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_gemm_of_a_transpose_is_ort_gemm_with_flag(m, k, n, trans_a, opset, seed):
    # slanet_table's GRU cell: MatMul(h, Transpose(W)) + b (W a Loop-carried weight):
    # MatMulAddFusion makes the Gemm, GemmTransposeFusion reads W with transB, and at one row
    # MLAS's M = 1 kernel with B transposed sums in eight lanes, not in groups of four k
    a_shape = (k, m) if trans_a else (m, k)
    nodes = [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
             helper.make_node("MatMul", ["x", "wt"], ["p"]),
             helper.make_node("Add", ["p", "c"], ["y"])]
    if trans_a:
        nodes.insert(0, helper.make_node("Transpose", ["xt"], ["x"], perm=[1, 0]))
    model = _model(nodes, {"xt" if trans_a else "x": a_shape, "w": (n, k)}, {"y": (m, n)},
                   {"c": np.linspace(-1, 1, n).astype(np.float32)}, opset=opset)
    fused = ort_fusions.apply(model).graph.node
    assert [x.op_type for x in fused] == ["Gemm"]
    assert {a.name: a.i for a in fused[0].attribute if a.name.startswith("trans")} == \
        {"transA": int(trans_a), "transB": 1}
    rng = np.random.default_rng(seed)
    assert_engines_agree(model, {"xt" if trans_a else "x": rng.standard_normal(a_shape).astype(
        np.float32), "w": rng.standard_normal((n, k)).astype(np.float32)})


def test_transpose_with_another_reader_is_kept_for_it() -> None:
    # MatmulTransposeFusion folds it into the MatMul and keeps it for the Relu;
    # GemmTransposeFusion needs it read by the Gemm alone
    nodes = [helper.make_node("Transpose", ["a"], ["at"], perm=[1, 0]),
             helper.make_node("MatMul", ["at", "b"], ["y"]),
             helper.make_node("Relu", ["at"], ["r"])]
    model = _model(nodes, {"a": (200, 1), "b": (200, 40)}, {"y": (1, 40), "r": (1, 200)})
    assert _ops(model) == ["Transpose", "FusedMatMul", "Relu"]
    gemm = [helper.make_node("Transpose", ["a"], ["at"], perm=[1, 0]),
            helper.make_node("Gemm", ["at", "b"], ["y"]),
            helper.make_node("Relu", ["at"], ["r"])]
    model = _model(gemm, {"a": (200, 1), "b": (200, 40)}, {"y": (1, 40), "r": (1, 200)})
    assert _ops(model) == ["Transpose", "Gemm", "Relu"]
    rng = np.random.default_rng(3)
    feeds = {"a": rng.standard_normal((200, 1)).astype(np.float32),
             "b": rng.standard_normal((200, 40)).astype(np.float32)}
    assert_engines_agree(model, feeds)


@pytest.mark.parametrize("case", ["graph output", "constant", "batch axes"])
def test_transposes_onnxruntime_does_not_fold(case: str) -> None:
    inputs = {"a": (1, 200, 3), "b": (1, 200, 40)}
    perm = [0, 2, 1]
    outputs = {"y": (1, 3, 40)}
    inits: dict[str, np.ndarray] = {}
    if case == "graph output":
        outputs["at"] = (1, 3, 200)
    elif case == "constant":        # constant-folded first: the MatMul reads an initializer
        inits["a"] = np.linspace(-1, 1, 600, dtype=np.float32).reshape(1, 200, 3)
        del inputs["a"]
    else:
        # the last axis moved first (batch flags take only the first axis moved)
        inputs, perm, outputs = {"a": (3, 200, 1), "b": (1, 200, 40)}, [2, 0, 1], {"y": (1, 3, 40)}
    nodes = [helper.make_node("Transpose", ["a"], ["at"], perm=perm),
             helper.make_node("MatMul", ["at", "b"], ["y"])]
    model = _model(nodes, inputs, outputs, inits)
    assert _ops(model) == ["Transpose", "MatMul"]
    rng = np.random.default_rng(4)
    feeds = {k: rng.standard_normal(v).astype(np.float32) for k, v in inputs.items()}
    theirs = onnxruntime_run(model, feeds)[0]
    np.testing.assert_array_equal(Session(model).run(feeds)["y"], theirs)


def test_fused_matmul_keeps_its_scale_and_flips_its_flag() -> None:
    # MatMulScaleFusion's FusedMatMul (alpha 0.125) reading a Transpose: still one FusedMatMul
    nodes = [helper.make_node("Transpose", ["b"], ["bt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["a", "bt"], ["p"]),
             helper.make_node("Mul", ["p", "s"], ["y"])]
    model = _model(nodes, {"a": (2, 1, 150), "b": (2, 24, 150)}, {"y": (2, 1, 24)},
                   {"s": np.array(0.125, np.float32)})
    (node,) = ort_fusions.apply(model).graph.node
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert (node.op_type, attrs["transA"], attrs["transB"], attrs["alpha"]) == \
        ("FusedMatMul", 0, 1, 0.125)
    rng = np.random.default_rng(5)
    assert_engines_agree(model, {"a": rng.standard_normal((2, 1, 150)).astype(np.float32),
                                 "b": rng.standard_normal((2, 24, 150)).astype(np.float32)})


def _attention_loop(t: int, c: int, steps: int) -> onnx.ModelProto:
    """slanet_table's decoder step in a Loop: scores = softmax over T of feats · v, then
    Transpose(scores) · feats (the context) mixed into the carried state through a
    Transpose'd carried weight: both Transposes fold in ONNX Runtime's body."""
    vi = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("MatMul", ["feats", "v"], ["e"]),
         helper.make_node("Add", ["e", "h_in"], ["eh"]),
         helper.make_node("Softmax", ["eh"], ["p"], axis=1),
         helper.make_node("Transpose", ["p"], ["pt"], perm=[0, 2, 1]),
         helper.make_node("MatMul", ["pt", "feats"], ["ctx3"]),
         helper.make_node("Squeeze", ["ctx3", "one"], ["ctx"]),
         helper.make_node("Transpose", ["w_in"], ["wt"], perm=[1, 0]),
         helper.make_node("MatMul", ["ctx", "wt"], ["hw"]),
         helper.make_node("Add", ["hw", "bias"], ["h_new"]),
         helper.make_node("Tanh", ["h_new"], ["h_out"]),
         helper.make_node("Identity", ["w_in"], ["w_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []),
                 vi("h_in", F, [1, 1]), vi("w_in", F, [1, c])],
        [vi("cond_out", TensorProto.BOOL, []), vi("h_out", F, [1, 1]), vi("w_out", F, [1, c]),
         vi("ctx", F, [1, c])])
    rng = np.random.default_rng(t + c)
    graph = helper.make_graph(
        [helper.make_node("Loop", ["steps", "", "h0", "w0"], ["h_end", "w_end", "ctxs"],
                          body=body)], "g",
        [vi("feats", F, [1, t, c]), vi("h0", F, [1, 1])],
        [vi("h_end", F, [1, 1]), vi("w_end", F, [1, c]), vi("ctxs", F, [steps, 1, c])],
        [numpy_helper.from_array((rng.standard_normal((c, 1)) * 0.2).astype(np.float32), "v"),
         numpy_helper.from_array((rng.standard_normal((1, c)) * 0.2).astype(np.float32), "w0"),
         numpy_helper.from_array(np.array([0.1], np.float32), "bias"),
         numpy_helper.from_array(np.array([1], np.int64), "one"),
         numpy_helper.from_array(np.int64(steps), "steps")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@given(t=st.sampled_from([40, 129, 256]), c=st.sampled_from([24, 96]), seed=st.integers(0, 999))
@settings(max_examples=6, deadline=None)
def test_loop_body_transposes_fold_as_onnxruntime(t, c, seed):
    model = _attention_loop(t, c, steps=4)
    rng = np.random.default_rng(seed)
    feeds = {"feats": rng.standard_normal((1, t, c)).astype(np.float32),
             "h0": rng.standard_normal((1, 1)).astype(np.float32)}
    theirs = onnxruntime_run(model, feeds)
    for replay in (True, False):
        session = Session(model, replay=replay)
        (loop,) = session.model.graph.node
        body_ops = [n.op_type for n in loop.attribute[0].g.node]
        assert "Transpose" not in body_ops and "FusedMatMul" in body_ops
        for _ in range(2):      # recorded, then replayed
            ours = session.run(feeds)
            for name, value in zip(("h_end", "w_end", "ctxs"), theirs, strict=True):
                np.testing.assert_array_equal(ours[name], value, err_msg=name)


# the permutations ONNX Runtime folds as a batch flag: the first axis moved just before the
# last two ([1, ..., rank - 2, 0, rank - 1]: transBatch) or last ([1, ..., rank - 1, 0]:
# transBatch and trans)
def _batch_perm(rank: int, trans: bool) -> list[int]:
    return [*range(1, rank), 0] if trans else [*range(1, rank - 1), 0, rank - 1]


@given(batch=st.sampled_from([(1,), (4,), (3, 2), (1, 2)]),
       m=st.sampled_from([1, 3, 8]), k=st.sampled_from([1, 16, 129]),
       n=st.sampled_from([1, 8, 20]), side=st.sampled_from(["a", "b", "ab"]),
       trans=st.tuples(st.booleans(), st.booleans()), scaled=st.booleans(),
       seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_matmul_of_a_batch_transpose_is_ort_fused_matmul(batch, m, k, n, side, trans, scaled,
                                                         seed):
    # g2p_id_tiny_pron's attention (nn.MultiheadAttention, heads [L, N*H, d]): MatMul(q,
    # Transpose(k, [1, 2, 0])) and MatMul(p, Transpose(v, [1, 0, 2])); ONNX Runtime reads
    # k and v in place with transBatchB (and transB), lowp multiplied the transposed copies
    # with other MLAS flags (out_probs one ulp apart); `scaled`: MatMulScaleFusion's alpha
    rank = len(batch) + 2
    inputs: dict[str, tuple[int, ...]] = {}
    names = ["a", "b"]
    nodes = []
    logical = {"a": (m, k), "b": (k, n)}
    for i, name in enumerate("ab"):
        rows, cols = logical[name]
        if name not in side:
            inputs[name] = (*batch, rows, cols)
            continue
        t = trans[i]
        # the Transpose's output is [*batch, rows, cols]; its input is the moved layout
        inputs[name] = (cols, *batch, rows) if t else (rows, *batch, cols)
        nodes.append(helper.make_node("Transpose", [name], [name + "t"],
                                      perm=_batch_perm(rank, t)))
        names[i] = name + "t"
    nodes.append(helper.make_node("MatMul", names, ["p" if scaled else "y"]))
    if scaled:
        nodes.append(helper.make_node("Mul", ["p", "s"], ["y"]))
    model = _model(nodes, inputs, {"y": (*batch, m, n)},
                   {"s": np.array(0.125, np.float32)} if scaled else None)
    (node,) = ort_fusions.apply(model).graph.node
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert node.op_type == "FusedMatMul"
    assert (attrs["transBatchA"], attrs["transBatchB"]) == ("a" in side, "b" in side)
    assert attrs["alpha"] == (0.125 if scaled else 1.0)
    rng = np.random.default_rng(seed)
    assert_engines_agree(model, {k_: rng.standard_normal(v).astype(np.float32)
                                 for k_, v in inputs.items()})


@given(between=st.sampled_from(["", "Concat", "Identity"]), t=st.integers(1, 3),
       heads=st.sampled_from([1, 6]), d=st.sampled_from([16, 64]), seed=st.integers(0, 2**16))
@settings(max_examples=25, deadline=None)
def test_two_transposes_before_a_matmul_merge_first(between, t, heads, d, seed):
    # traceforge's T5 decoder: keys Transpose [0, 2, 1, 3] -> Concat (one input) ->
    # Transpose [0, 1, 3, 2] -> MatMul. ONNX Runtime's transpose optimizer merges the two
    # Transposes into [0, 2, 3, 1], which MatmulTransposeFusion does not fold; lowp folded
    # the second into transB, and a one-row product (t = 1) ran MLAS's transposed-B M = 1
    # kernel where ONNX Runtime runs the plain one (1 ulp apart on most scores) ((O81))
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1, 3])]
    src = "kt"
    if between == "Concat":
        nodes.append(helper.make_node("Concat", ["kt"], ["kc"], axis=-2))
        src = "kc"
    elif between == "Identity":
        nodes.append(helper.make_node("Identity", ["kt"], ["kc"]))
        src = "kc"
    nodes += [helper.make_node("Transpose", [src], ["kT"], perm=[0, 1, 3, 2]),
              helper.make_node("MatMul", ["q", "kT"], ["y"])]
    model = _model(nodes, {"q": (1, heads, t, d), "k": (1, t, heads, d)},
                   {"y": (1, heads, t, t)}, opset=17)
    rng = np.random.default_rng(seed)
    feeds = {"q": rng.standard_normal((1, heads, t, d)).astype(np.float32),
             "k": rng.standard_normal((1, t, heads, d)).astype(np.float32)}
    assert_engines_agree(model, feeds)


@given(n=st.sampled_from([10, 37, 64]), c=st.sampled_from([3, 5, 16]),
       keep=st.booleans(), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_variance_written_out_over_a_transposed_tensor(n, c, keep, seed):
    # the graph fuzzer's layer norm over [1, n, c] data transposed to [1, c, n] (repro item
    # 53): ONNX Runtime pushes the Transpose through the first ReduceMean, the Sub, the Mul
    # and the second ReduceMean, so both means sum over axis 1 of the untransposed data;
    # lowp summed the second over the contiguous last axis (0-100% of variances equal)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
             helper.make_node("ReduceMean", ["t"], ["m"], axes=[-1]),
             helper.make_node("Sub", ["t", "m"], ["d"]),
             helper.make_node("Mul", ["d", "d"], ["d2"]),
             helper.make_node("ReduceMean", ["d2"], ["v"], axes=[-1]),
             helper.make_node("Add", ["v", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["d", "sd"], ["y"])]
    outputs = {"y": (1, c, n)}
    if keep:      # the variance read by the graph too
        outputs["v"] = (1, c, 1)
    model = _model(nodes, {"x": (1, n, c)}, outputs, {"eps": np.float32(1e-5)})
    x = np.random.default_rng(seed).standard_normal((1, n, c)).astype(np.float32)
    assert_engines_agree(model, {"x": x})


@pytest.mark.parametrize("last_perm", [[0, 2, 1, 3], [0, 3, 1, 2]])
@pytest.mark.parametrize("seed", range(6))
def test_transposed_layer_norm_sums_its_variance_as_onnxruntime(last_perm, seed):
    # ONNX Runtime moves the first Transpose through the Sub and the Pow, so the variance
    # sums over axes [1, 3] of x, only when the last Transpose cancels it: the centred
    # values have two readers (Pow and Div), and a Transpose put after the Sub that would
    # only merge with a later one is not pushed ((O215)). lowp kept the Sub transposed in
    # both cases and summed the variance over the contiguous [2, 3] (1 to 3 ulp apart on
    # GTCRN's intra-frame norms)
    rng = np.random.default_rng(seed)
    feeds = {"x": (rng.standard_normal((1, 33, 1, 16)) * 3).astype(np.float32),
             "r": rng.standard_normal((1, 1, 33, 16)).astype(np.float32)}
    # (GTCRN's layer norm over x [1, 33, 1, 16] read through a Transpose (0, 2, 1, 3), written
    # out, then a residual Add and a Transpose back: repro item 184's model)
    model = transposed_layer_norm.build(last_perm)
    for threads in (1, 2):
        theirs = onnxruntime_run(model, feeds, threads)[0]
        for backend in ("reference", "native"):
            ours = Session(model, backend=backend, threads=threads).run(dict(feeds))["y"]
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{backend} {threads}")


_P, _O = [0, 2, 1, 3], [0, 3, 1, 2]


def _tr(i: str, o: str, perm: list[int]) -> onnx.NodeProto:
    return helper.make_node("Transpose", [i], [o], perm=perm)


# what reads the centred values d = Sub(Transpose(x), mean): ONNX Runtime moves the
# Transpose through the Sub when one node reads d and leads to any Transpose, or when a
# Transpose down the graph cancels it (not through a graph output); two readers that only
# meet a Transpose that merges keep it before the Sub
_AFTER_SUB = {
    "one Transpose, not cancelling": ([_tr("d", "y1", _O)], ["y1"]),
    "two Transposes, neither cancelling": ([_tr("d", "y1", _O), _tr("d", "y2", _O)],
                                           ["y1", "y2"]),
    "two Transposes, one cancelling": ([_tr("d", "y1", _P), _tr("d", "y2", _O)],
                                       ["y1", "y2"]),
    "cancelling, but also a graph output": ([_tr("d", "y1", _P)], ["y1", "d"]),
    "Pow and Div, cancelled": ([helper.make_node("Pow", ["d", "two"], ["p"]),
                                helper.make_node("Div", ["d", "p"], ["n"]),
                                _tr("n", "y1", _P)], ["y1"]),
    "Pow and Div, merged": ([helper.make_node("Pow", ["d", "two"], ["p"]),
                             helper.make_node("Div", ["d", "p"], ["n"]),
                             _tr("n", "y1", _O)], ["y1"]),
    "one Relu, then two readers": ([helper.make_node("Relu", ["d"], ["e"]),
                                    helper.make_node("Sigmoid", ["e"], ["f"]),
                                    helper.make_node("Add", ["e", "f"], ["g"]),
                                    _tr("g", "y1", _O)], ["y1"]),
    "cancelled past a graph output": ([helper.make_node("Relu", ["d"], ["e"]),
                                       helper.make_node("Sigmoid", ["d"], ["f"]),
                                       _tr("e", "y1", _P)], ["y1", "e", "f"]),
    "cancelled past a reduction": ([helper.make_node("ReduceMean", ["d"], ["e"], axes=[-1]),
                                    helper.make_node("Sigmoid", ["d"], ["f"]),
                                    _tr("e", "y1", _P)], ["y1", "f"]),
    "no Transpose after": ([helper.make_node("Relu", ["d"], ["e"])], ["e"]),
}


def _ort_optimized(model: onnx.ModelProto, path: str) -> onnx.ModelProto:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = path
    ort.InferenceSession(model.SerializeToString(), options,
                         providers=["CPUExecutionProvider"])
    return onnx.load(path)


@pytest.mark.parametrize("case", sorted(_AFTER_SUB))
def test_transpose_moves_through_the_sub_when_onnxruntime_moves_it(case, tmp_path):
    tail, outputs = _AFTER_SUB[case]
    nodes = [_tr("x", "t", _P), helper.make_node("ReduceMean", ["t"], ["m"], axes=[-2, -1]),
             helper.make_node("Sub", ["t", "m"], ["d"]), *tail]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [1, 33, 1, 16])],
        [helper.make_tensor_value_info(o, F, None) for o in outputs],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])

    def moved(m: onnx.ModelProto) -> bool:
        return not any(n.op_type == "Transpose" and n.input[0] == "x" for n in m.graph.node)

    theirs = moved(_ort_optimized(model, str(tmp_path / "ort.onnx")))
    assert moved(ort_fusions.apply(model)) == theirs
    x = np.random.default_rng(1).standard_normal((1, 33, 1, 16)).astype(np.float32)
    expected = onnxruntime_run(model, {"x": x})
    for backend in ("reference", "native"):
        ours = Session(model, backend=backend).run({"x": x})
        for name, value in zip(outputs, expected, strict=True):
            np.testing.assert_array_equal(ours[name], value, err_msg=f"{backend} {name}")


@pytest.mark.parametrize("last", [[0, 1, 2, 3], [0, 2, 3, 1], [0, 3, 1, 2], [0, 3, 2, 1],
                                  [2, 3, 0, 1], [3, 2, 1, 0]])
def test_a_transpose_cancels_only_by_its_inverse(last, tmp_path):
    # first Transpose (0, 2, 3, 1), not its own inverse: the Sub's output, read by a Pow
    # and a Div, takes it only when the last Transpose is (0, 3, 1, 2) (O215)
    nodes = [_tr("x", "t", [0, 2, 3, 1]),
             helper.make_node("ReduceMean", ["t"], ["m"], axes=[-2, -1]),
             helper.make_node("Sub", ["t", "m"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["p"]),
             helper.make_node("ReduceMean", ["p"], ["v"], axes=[-2, -1]),
             helper.make_node("Div", ["d", "v"], ["n"]), _tr("n", "y", last)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [1, 16, 1, 33])],
        [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])

    def moved(m: onnx.ModelProto) -> bool:
        return not any(n.op_type == "Transpose" and n.input[0] == "x" for n in m.graph.node)

    assert moved(ort_fusions.apply(model)) == moved(
        _ort_optimized(model, str(tmp_path / "ort.onnx"))) == (last == [0, 3, 1, 2])
    x = (np.random.default_rng(3).standard_normal((1, 16, 1, 33)) * 3).astype(np.float32)
    assert_engines_agree(model, {"x": x})


@pytest.mark.parametrize("op", ["Mul", "Sub", "Pow"])
def test_a_constant_of_the_same_shape_is_transposed_when_the_transpose_moves(op):
    # Transpose (0, 1, 3, 2) of a square map, an element-wise op with a full-rank constant
    # whose shape the permutation keeps, then the inverse Transpose: the Transpose moves
    # after the op (O214) and cancels, so the constant's values must be transposed too
    w = np.random.default_rng(5).uniform(0.5, 2.0, (1, 1, 16, 16)).astype(np.float32)
    nodes = [_tr("x", "t", [0, 1, 3, 2]), helper.make_node(op, ["t", "w"], ["u"]),
             helper.make_node("ReduceMean", ["u"], ["s"], axes=[-1]),
             helper.make_node("Add", ["u", "s"], ["a"]), _tr("a", "y", [0, 1, 3, 2])]
    model = _model(nodes, {"x": (1, 1, 16, 16)}, {"y": (1, 1, 16, 16)}, {"w": w})
    moved = ort_fusions.apply(model).graph.node
    assert [n.op_type for n in moved if n.op_type == op and n.input[0] == "x"] == [op]
    x = np.random.default_rng(6).uniform(0.5, 2.0, (1, 1, 16, 16)).astype(np.float32)
    assert_engines_agree(model, {"x": x})


def _tokens_round_trip(c: int, h: int, w: int, twice: bool, batch: int | str = 1
                       ) -> onnx.ModelProto:
    """The graph fuzzer's attention block after another: tokens [N, L, C] back to an image
    (Transpose, Reshape [0, C, H, W]) and to tokens again (Reshape [0, C, -1], Transpose),
    then a layer norm's centring and variance written out. `twice` False: one Reshape."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1])]
    if twice:
        nodes += [helper.make_node("Reshape", ["t", "image"], ["r1"]),
                  helper.make_node("Reshape", ["r1", "tokens"], ["r2"])]
    else:
        nodes.append(helper.make_node("Reshape", ["t", "tokens"], ["r2"]))
    nodes += [helper.make_node("Transpose", ["r2"], ["t2"], perm=[0, 2, 1]),
              helper.make_node("ReduceMean", ["t2"], ["m"], axes=[-1]),
              helper.make_node("Sub", ["t2", "m"], ["d"]),
              helper.make_node("Mul", ["d", "d"], ["d2"]),
              helper.make_node("ReduceMean", ["d2"], ["v"], axes=[-1]),
              helper.make_node("Div", ["d", "v"], ["y"])]
    inits = {"image": np.asarray([0, c, h, w], np.int64),
             "tokens": np.asarray([0, c, -1], np.int64)}
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [batch, h * w, c])],
        [helper.make_tensor_value_info("y", F, [batch, h * w, c])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


@pytest.mark.parametrize("twice", [True, False])
@pytest.mark.parametrize("shape", [(4, 4, 4), (16, 2, 8), (5, 3, 1)])
def test_reshape_between_transposes_cancels_as_onnxruntime(twice, shape):
    # ONNX Runtime's ReshapeFusion merges the two Reshapes (their shapes all known) into one
    # Reshape [1, C, L], which changes nothing; its transpose optimizer's Reshape handler
    # merges the first Transpose into it, and the Transpose after it cancels, so the layer
    # norm reads the tokens in their own layout and its means sum along memory. lowp kept
    # the Reshapes, pushed the second Transpose through the ReduceMean and summed across
    # rows (the fuzzer's attention blocks: up to 1.1e-6 apart; (O307))
    c, h, w = shape
    model = _tokens_round_trip(c, h, w, twice=twice)
    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((1, h * w, c)).astype(np.float32)
        assert_engines_agree(model, {"x": x})
    assert "Transpose" not in _ops(model)


def test_reshape_with_a_free_batch_keeps_its_transposes():
    # a batch dimension not known: ReshapeFusion leaves the Reshapes and the handler does not
    # apply (it needs every dimension), in ONNX Runtime as in lowp
    model = _tokens_round_trip(4, 4, 4, twice=True, batch="N")
    assert _ops(model).count("Reshape") == 2
    x = np.random.default_rng(0).standard_normal((2, 16, 4)).astype(np.float32)
    assert_engines_agree(model, {"x": x})


def _class_token_after_round_trip(c: int, h: int, w: int, n: int = 2) -> onnx.ModelProto:
    """The graph fuzzer's recurrent block before a class token: an LSTM's sequence [L, N, C]
    to an image (Transpose [1, 2, 0], Reshape [N, C, H, W]) and to tokens again (Reshape
    [N, C, L], Transpose [0, 2, 1]), a class token Expand'ed to Gather(Shape(image), 0)
    put first, a layer norm's centring and variance written out, the token sliced off and
    the tokens transposed back."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 2, 0]),
             helper.make_node("Reshape", ["t", "image"], ["r1"]),
             helper.make_node("Reshape", ["r1", "tokens"], ["r2"]),
             helper.make_node("Transpose", ["r2"], ["t2"], perm=[0, 2, 1]),
             helper.make_node("Shape", ["r1"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]),
             helper.make_node("Concat", ["b1", "rest"], ["size"], axis=0),
             helper.make_node("Expand", ["cls", "size"], ["token"]),
             helper.make_node("Concat", ["token", "t2"], ["z"], axis=1),
             helper.make_node("ReduceMean", ["z"], ["m"], axes=[-1]),
             helper.make_node("Sub", ["z", "m"], ["d"]),
             helper.make_node("Mul", ["d", "d"], ["d2"]),
             helper.make_node("ReduceMean", ["d2"], ["v"], axes=[-1]),
             helper.make_node("Div", ["d", "v"], ["q"]),
             helper.make_node("Slice", ["q", "one", "end", "one"], ["sliced"]),
             helper.make_node("Transpose", ["sliced"], ["y"], perm=[0, 2, 1])]
    inits = {"image": np.asarray([n, c, h, w], np.int64),
             "tokens": np.asarray([n, c, h * w], np.int64), "zero": np.asarray(0, np.int64),
             "axes": np.asarray([0], np.int64), "rest": np.asarray([1, c], np.int64),
             "one": np.asarray([1], np.int64), "end": np.asarray([h * w + 1], np.int64),
             "cls": np.random.default_rng(9).standard_normal((1, 1, c)).astype(np.float32)}
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [h * w, n, c])],
        [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


@pytest.mark.parametrize("shape", [(5, 4, 4), (4, 4, 4), (16, 2, 8), (7, 3, 5)])
def test_shape_of_the_first_reshape_folds_before_the_reshapes_merge(shape):
    # ONNX Runtime's ConstantFolding makes the Shape of the image a constant, so the first
    # Reshape has one reader, ReshapeFusion merges the two, the Transposes become one and
    # the layer norm sums along memory; lowp counted the Shape as a second reader, kept the
    # Reshapes and pushed the last Transpose up through the ReduceMeans, which then summed
    # across rows (the graph fuzzer's seed 26: up to 1.8e-7 apart; (O344))
    c, h, w = shape
    model = _class_token_after_round_trip(c, h, w)
    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((h * w, 2, c)).astype(np.float32)
        assert_engines_agree(model, {"x": x})
    assert "Reshape" not in _ops(model) and "Shape" not in _ops(model)


def _tokens_to_image(x_shape: tuple[int, ...], perm: list[int], target: list[int],
                     tail: str = "mean") -> onnx.ModelProto:
    """Transpose(x, perm) -> Reshape(target) -> a tail: the graph fuzzer's attention block
    ending its tokens [N, L, C] as an image [N, C, H, W] that a broadcasts block reads with
    a ReduceMean over the channels (then Greater, Where), or a Relu."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=perm),
             helper.make_node("Reshape", ["t", "shape"], ["r"])]
    if tail == "mean":
        nodes += [helper.make_node("ReduceMean", ["r"], ["m"], axes=[1], keepdims=1),
                  helper.make_node("Greater", ["r", "m"], ["g"]),
                  helper.make_node("Where", ["g", "m", "r"], ["y"])]
    else:
        nodes.append(helper.make_node("Relu", ["r"], ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, list(x_shape))],
        [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(np.asarray(target, np.int64), "shape")])
    return onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]))


def _moved_transpose(model: onnx.ModelProto) -> tuple[list[int], list[int]] | None:
    """The shape of the Reshape that reads x and the perm of the Transpose after it, when
    the Transpose moved after the Reshape (None when a Transpose still reads x)."""
    if any(n.op_type == "Transpose" and n.input[0] == "x" for n in model.graph.node):
        return None
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    consts.update((n.output[0], numpy_helper.to_array(n.attribute[0].t))
                  for n in model.graph.node if n.op_type == "Constant")
    (reshape,) = [n for n in model.graph.node if n.op_type == "Reshape" and n.input[0] == "x"]
    after = [list(helper.get_attribute_value(a)) for n in model.graph.node
             if n.op_type == "Transpose" for a in n.attribute if a.name == "perm"]
    return [int(v) for v in consts[reshape.input[1]]], after[0] if after else []


# (x, perm, Reshape target): ONNX Runtime 1.32 moves the Transpose after a Reshape to
# another rank that splits dimensions in place (ones before a part), not one that merges
# dimensions or leaves a one after the last part (probed on its optimized graphs)
_SPLITS = [((2, 56, 15), [0, 2, 1], [0, 15, 8, 7]), ((2, 15, 56), [0, 2, 1], [0, 8, 7, 15]),
           ((2, 56, 15), [0, 2, 1], [0, 15, 2, 4, 7]), ((2, 56, 15), [0, 2, 1], [0, 3, 5, 56]),
           ((2, 56, 15), [0, 2, 1], [0, 15, 1, 56]), ((2, 56, 15), [0, 2, 1], [1, 2, 15, 56]),
           ((2, 56, 15), [0, 2, 1], [2, 15, 1, 8, 1, 7]), ((2, 1, 15), [0, 2, 1], [2, 3, 5, 1]),
           ((2, 56, 15), [2, 0, 1], [15, 2, 8, 7]), ((2, 56, 15), [1, 0, 2], [8, 7, 2, 15]),
           ((2, 15, 8, 7), [0, 2, 3, 1], [0, 8, 7, 3, 5]), ((4, 56, 15), [0, 2, 1], [2, 2, 15, 56]),
           ((2, 56, 15), [0, 2, 1], [0, 15, 56, 1]), ((2, 56, 15), [0, 2, 1], [2, 15, 8, 7, 1]),
           ((2, 56, 15), [0, 2, 1], [0, 840]), ((2, 15, 8, 7), [0, 2, 3, 1], [0, 56, 15]),
           ((2, 1, 15), [0, 2, 1], [2, 15, 1, 1]), ((1, 56, 15), [0, 2, 1], [15, 8, 7])]


@pytest.mark.parametrize(("x_shape", "perm", "target"), _SPLITS)
def test_transpose_moves_after_a_splitting_reshape_as_onnxruntime(x_shape, perm, target,
                                                                  tmp_path):
    # Transpose -> Reshape to another rank: ONNX Runtime writes Reshape(x) -> Transpose
    # when the Reshape splits dimensions in place, the same Reshape shape and perm (O319)
    model = _tokens_to_image(x_shape, perm, target, tail="relu")
    theirs = _moved_transpose(_ort_optimized(model, str(tmp_path / "ort.onnx")))
    assert _moved_transpose(ort_fusions.apply(model)) == theirs
    x = np.random.default_rng(2).standard_normal(x_shape).astype(np.float32)
    assert_engines_agree(model, {"x": x})


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("c", "h", "w"), [(15, 8, 7), (24, 4, 4), (33, 5, 3), (7, 16, 9)])
def test_channel_mean_after_tokens_to_image_sums_as_onnxruntime(c, h, w, threads):
    # the graph fuzzer's attention block then a broadcasts block (seed 1, graph 83): tokens
    # [N, L, C] -> Transpose [0, 2, 1] -> Reshape [0, C, H, W] -> ReduceMean over the
    # channels. ONNX Runtime makes it Reshape [N, H, W, C] -> ReduceMean over the last axis
    # -> Transpose [0, 3, 1, 2], so the mean sums contiguous channels; lowp summed over
    # axis 1 of the image (1.2e-7 apart; O319)
    model = _tokens_to_image((2, h * w, c), [0, 2, 1], [0, c, h, w])
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((2, h * w, c)).astype(np.float32)
        assert_bits_agree(model, {"x": x}, threads)


def _class_token_block(n: int, c: int, length: int, token: str) -> onnx.ModelProto:
    """The graph fuzzer's class-token block over x [n, c, length]: Transpose [0, 2, 1] ->
    Concat of a token [n, 1, c] (an initializer, or `token` "expanded": the token Expand'ed
    to the batch read from Shape(x)) -> positional Add -> layer norm written out over the
    last axis -> Slice of the tokens -> Transpose [0, 2, 1]."""
    rng = np.random.default_rng(n * 100 + c)
    inits = {"pos": rng.standard_normal((1, length + 1, c)).astype(np.float32),
             "eps": np.float32(1e-5), "starts": np.array([1], np.int64),
             "ends": np.array([length + 1], np.int64), "axes": np.array([1], np.int64)}
    cls = rng.standard_normal((1, 1, c)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1])]
    if token == "expanded":
        inits.update(cls=cls, zero=np.array(0, np.int64), one=np.array([0], np.int64),
                     rest=np.array([1, c], np.int64))
        nodes += [helper.make_node("Shape", ["x"], ["shape"]),
                  helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
                  helper.make_node("Unsqueeze", ["batch", "one"], ["batch1"]),
                  helper.make_node("Concat", ["batch1", "rest"], ["to"], axis=0),
                  helper.make_node("Expand", ["cls", "to"], ["token"])]
    else:
        inits["token"] = np.repeat(cls, n, axis=0)
    nodes += [helper.make_node("Concat", ["token", "t"], ["tokens"], axis=1),
              helper.make_node("Add", ["tokens", "pos"], ["a"]),
              helper.make_node("ReduceMean", ["a"], ["m"], axes=[-1]),
              helper.make_node("Sub", ["a", "m"], ["d"]),
              helper.make_node("Mul", ["d", "d"], ["d2"]),
              helper.make_node("ReduceMean", ["d2"], ["v"], axes=[-1]),
              helper.make_node("Add", ["v", "eps"], ["ve"]),
              helper.make_node("Sqrt", ["ve"], ["sd"]),
              helper.make_node("Div", ["d", "sd"], ["nrm"]),
              helper.make_node("Slice", ["nrm", "starts", "ends", "axes"], ["s"]),
              helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 1])]
    return _model(nodes, {"x": (n, c, length)}, {"y": (n, c, length)}, inits)


@pytest.mark.parametrize("token", ["constant", "expanded"])
@pytest.mark.parametrize(("n", "c", "length"), [(1, 16, 9), (3, 24, 6), (2, 7, 12)])
def test_class_token_transpose_cancels_through_concat_and_slice(token, n, c, length):
    # the graph fuzzer's class-token block (repro item 270): ONNX Runtime pushes the first
    # Transpose through the Concat (axis 1 -> 2; the token, constant once folded, costs
    # nothing), the Add, the layer norm and the Slice, where it cancels the last one, so
    # both means sum over axis 1 of [n, c, length + 1]; lowp kept both Transposes and
    # summed along the contiguous last axis (6e-8 to 4.8e-7 apart)
    model = _class_token_block(n, c, length, token)
    fused = ort_fusions.apply(model)
    assert "Transpose" not in [k.op_type for k in fused.graph.node if list(k.input) != ["token"]]
    means = [k for k in fused.graph.node if k.op_type == "ReduceMean"]
    assert [list(helper.get_attribute_value(k.attribute[0])) for k in means] == [[1], [1]]
    rng = np.random.default_rng(c)
    for seed in range(3):
        x = (rng.standard_normal((n, c, length)) * (seed + 1)).astype(np.float32)
        for threads in (1, 2):
            assert_bits_agree(model, {"x": x}, threads)


def test_slice_keeps_a_transpose_it_cannot_remove():
    # a Transpose also read by a Conv stays (CanLikelyRemoveTranspose: a Conv has no
    # handler), so the Slice reading it is left as it is, in ONNX Runtime's graph too
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Slice", ["t", "starts", "ends", "axes"], ["y"]),
             helper.make_node("Conv", ["t", "w"], ["z"])]
    model = _model(nodes, {"x": (2, 4, 6)}, {"y": (2, 5, 4), "z": (2, 3, 4)},
                   {"starts": np.array([1], np.int64), "ends": np.array([6], np.int64),
                    "axes": np.array([1], np.int64), "w": np.ones((3, 6, 1), np.float32)})
    assert [k.op_type for k in ort_fusions.apply(model).graph.node
            if k.op_type != "Constant"] == ["Transpose", "Slice", "Conv"]
    x = np.random.default_rng(0).standard_normal((2, 4, 6)).astype(np.float32)
    assert_bits_agree(model, {"x": x}, 1)
