"""Float32 average pooling sums in MLAS's order, so it equals ONNX Runtime bit for bit: the
NCHWc kernels (channels filling the block) add the window row-major, the NCHW kernels add
each window column and then the columns; global pooling adds one value after another
(NCHWc) or in four lanes (NCHW)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from lowp.runtime import Session, nchwc_conv


def _run_both(op: str, x: np.ndarray, opset: int = 17,
              **attrs: object) -> tuple[np.ndarray, np.ndarray]:
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    dims = [f"d{i}" for i in range(x.ndim)]
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_tensor_value_info("y", 1, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    return Session(model).run({"x": x})["y"], theirs


@pytest.mark.parametrize("c", [20, 32, 48, 8])
@pytest.mark.parametrize("spatial", [(1, 1), (1, 5), (4, 4), (17, 1), (33, 31)])
def test_global_average_pool_equals_onnxruntime(c: int, spatial: tuple[int, int]) -> None:
    x = np.random.default_rng(c + spatial[0]).standard_normal((2, c) + spatial)
    ours, theirs = _run_both("GlobalAveragePool", x.astype(np.float32))
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("opset", [17, 19])
@pytest.mark.parametrize("c", [20, 32, 4])
@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("kernel,strides,pads,ceil", [
    ([3, 3], [2, 2], [1, 1, 1, 1], 0), ([2, 3], [1, 2], [0, 1, 0, 1], 0),
    ([3, 3], [2, 2], [0, 0, 0, 0], 1), ([3, 3], [2, 2], [1, 1, 1, 1], 1)])
def test_average_pool_equals_onnxruntime(opset: int, c: int, include_pad: int,
                                         kernel: list[int], strides: list[int],
                                         pads: list[int], ceil: int) -> None:
    x = np.random.default_rng(c).standard_normal((1, c, 10, 9)).astype(np.float32)
    ours, theirs = _run_both("AveragePool", x, opset, kernel_shape=kernel, strides=strides,
                             pads=pads, count_include_pad=include_pad, ceil_mode=ceil)
    np.testing.assert_array_equal(ours, theirs)


@settings(max_examples=60, deadline=None)
@given(opset=st.sampled_from([11, 19, 22]), rank=st.integers(1, 3), c=st.sampled_from([3, 16]),
       kernel=st.integers(1, 3), stride=st.integers(1, 3), pad=st.integers(0, 1),
       include_pad=st.integers(0, 1), ceil=st.integers(0, 1), seed=st.integers(0, 99))
def test_average_pool_of_every_opset_equals_onnxruntime(
        opset: int, rank: int, c: int, kernel: int, stride: int, pad: int, include_pad: int,
        ceil: int, seed: int) -> None:
    """AveragePool-19 and later run ONNX Runtime's generic loop for every geometry (a 3x3
    pool of an opset-20 file differed on nearly every element); earlier versions MLAS."""
    pad = min(pad, kernel - 1)
    x = np.random.default_rng(seed).standard_normal((1, c) + (7,) * rank).astype(np.float32)
    ours, theirs = _run_both("AveragePool", x, opset, kernel_shape=[kernel] * rank,
                             strides=[stride] * rank, pads=[pad] * 2 * rank,
                             count_include_pad=include_pad, ceil_mode=ceil)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("c", [20, 32])
def test_dilated_average_pool_equals_onnxruntime(c: int) -> None:
    x = np.random.default_rng(c).standard_normal((1, c, 10, 9)).astype(np.float32)
    ours, theirs = _run_both("AveragePool", x, opset=19, kernel_shape=[3, 3], strides=[1, 1],
                             pads=[1, 1, 1, 1], dilations=[2, 2])
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.skipif(nchwc_conv._native_isa() is None, reason="native module not built")
@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 20), n=st.integers(1, 70), lanes=st.sampled_from([1, 4]),
       seed=st.integers(0, 2**16), zeros=st.booleans())
def test_native_pool_sums_equal_their_numpy_form(rows: int, n: int, lanes: int, seed: int,
                                                 zeros: bool) -> None:
    x = (np.random.default_rng(seed).standard_normal((rows, n)) * 100).astype(np.float32)
    if zeros:
        x[0] = -0.0
    got = nchwc_conv.pool_sums(x, lanes)
    want = nchwc_conv.pool_sums_reference(x, lanes)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))



def _conv(name: str, x: str, out: str, c: int, seed: int) -> tuple[onnx.NodeProto, list]:
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array((rng.standard_normal((c, c, 3, 3)) / c).astype(np.float32),
                                f"{name}_w")
    b = numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), f"{name}_b")
    node = helper.make_node("Conv", [x, w.name, b.name], [out], pads=[1, 1, 1, 1], name=name)
    return node, [w, b]


# what feeds the pool: (nodes from "x" to "p", whether ONNX Runtime pools p NCHWc)
_PRODUCERS = {
    "input": ([], True),                         # no input edge: it reorders the input
    "MaxPool": ([("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]})], True),
    "Relu of the input": ([("Relu", {})], False),
    "Conv, Relu": ([("Conv", {}), ("Relu", {})], True),
    "Conv, HardSwish": ([("Conv", {}), ("HardSwish", {})], True),
    "Conv, Exp": ([("Conv", {}), ("Exp", {})], False),
    "two Conv, Relu added": ([("Conv", {}), ("Relu", {}), ("Conv+", {})], True),
}


@pytest.mark.parametrize("producer", list(_PRODUCERS))
@pytest.mark.parametrize("pool,attrs", [
    ("GlobalAveragePool", {}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})])
def test_pool_of_an_unlisted_shape_equals_onnxruntime(pool: str, attrs: dict[str, object],
                                                      producer: str, tmp_path: Path) -> None:
    # orinet_deskew (torch.onnx, no value_info): its GlobalAveragePool reads a MaxPool whose
    # shape the file does not list; ONNX Runtime infers the 256 channels and pools NCHWc
    # (one value after another) where lowp took the count as unknown (four lanes). A global
    # pool goes NCHWc only when its input already is (or is a graph input), AveragePool
    # whenever the channels fill blocks.
    c = 32
    nodes: list[onnx.NodeProto] = []
    inits: list = []
    cur = "x"
    for k, (op, a) in enumerate(_PRODUCERS[producer][0]):
        out = f"t{k}"
        if op == "Conv":
            node, ws = _conv(f"conv{k}", cur, out, c, k)
            nodes.append(node)
            inits += ws
        elif op == "Conv+":             # a second Conv, Relu of the same input, added
            node, ws = _conv(f"conv{k}", "x", f"{out}c", c, k)
            nodes += [node, helper.make_node("Relu", [f"{out}c"], [f"{out}r"]),
                      helper.make_node("Add", [cur, f"{out}r"], [out])]
            inits += ws
        else:
            nodes.append(helper.make_node(op, [cur], [out], **a))
        cur = out
    nodes.append(helper.make_node(pool, [cur], ["y"], **attrs))
    graph = helper.make_graph(nodes, pool,
                              [helper.make_tensor_value_info("x", 1, ["n", c, 20, 20])],
                              [helper.make_tensor_value_info("y", 1, ["n", c, "h", "w"])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert not model.graph.value_info
    x = np.abs(np.random.default_rng(c).standard_normal((2, c, 20, 20))).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    theirs = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    if nchwc_conv.block_size():     # the case is the one named
        ran = onnx.load(options.optimized_model_filepath).graph.node
        nchwc = any(n.op_type == pool and n.domain == "com.microsoft.nchwc" for n in ran)
        assert nchwc == (_PRODUCERS[producer][1] or pool == "AveragePool")
    np.testing.assert_array_equal(Session(model).run({"x": x})["y"], theirs)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "AveragePool"])
def test_pool_of_a_conv_without_listed_shapes_is_nchwc(op: str) -> None:
    # ONNX Runtime's shape inference knows a Conv's output channels from its weights, so its
    # NCHWc transformer takes the pool after it even when the file lists no shapes
    # (vietcombank_captcha, tf2onnx: its GlobalAveragePool differed by an ulp)
    from onnx import numpy_helper

    rng = np.random.default_rng(5)
    w = (rng.standard_normal((32, 16, 3, 3)) * 0.2).astype(np.float32)
    attrs = {"kernel_shape": [3, 3]} if op == "AveragePool" else {}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node(op, ["r"], ["y"], **attrs)]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", 1, [1, 16, 23, 23])],
                              [helper.make_tensor_value_info("y", 1, ["n", "c", "h", "w"])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = (rng.standard_normal((1, 16, 23, 23)) * 3).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(Session(model).run({"x": x})["y"], theirs)


@pytest.mark.parametrize("c", [4, 20])
@pytest.mark.parametrize("spatial", [(3, 5), (7, 9), (12,), (2, 3, 4), (1, 1)])
@pytest.mark.parametrize("strides", [1, 2])
def test_average_pool_over_the_whole_image_equals_onnxruntime(c: int, spatial: tuple[int, ...],
                                                               strides: int) -> None:
    # MlasPool runs a window that is the whole unpadded image, with unit strides, as a
    # global pool (four lanes), not with its vector kernel (docs/operators.md (O59c));
    # with another stride it stays the vector (or generic) kernel
    x = (np.random.default_rng(c + len(spatial)).standard_normal((2, c) + spatial)
         * 10 ** np.random.default_rng(1).uniform(-3, 3, (2, c) + spatial)).astype(np.float32)
    ours, theirs = _run_both("AveragePool", x, kernel_shape=list(spatial),
                             strides=[strides] * len(spatial))
    np.testing.assert_array_equal(ours, theirs)
