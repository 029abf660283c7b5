"""lowp.runtime.conv_bias_fusion: TensorFlow's 1-D convolutions (Unsqueeze -> Conv without
bias -> Squeeze -> Add of a per-channel constant -> Relu, slovorez_morphemes) run as one
ConvBias step, the bias and Relu in the NCHWc kernel's write-out ((O164)); outputs bit for
bit ONNX Runtime's at 1 and 2 threads, on both backends, with the fusion on and off, and
the replayed run one Program."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from lowp import Session
from lowp.runtime import conv_bias_fusion, native_backend
from tests.runtime.ort_agreement import onnxruntime_run


def _model(m: int, c: int, k: int, relu: bool, bias_shape: tuple[int, ...],
           bias_first: bool = False, axis: int = 2, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w_shape = (m, c, 1, k) if axis == 2 else (m, c, k, 1)
    w = (rng.standard_normal(w_shape) * 0.2).astype(np.float32)
    b = rng.standard_normal(bias_shape).astype(np.float32)
    add_inputs = ["b", "s"] if bias_first else ["s", "b"]
    nodes = [helper.make_node("Unsqueeze", ["x", "ax"], ["u"]),
             helper.make_node("Conv", ["u", "w"], ["c"], kernel_shape=list(w_shape[2:]),
                              auto_pad="SAME_UPPER"),
             helper.make_node("Squeeze", ["c", "ax"], ["s"]),
             helper.make_node("Add", add_inputs, ["a"])]
    if relu:
        nodes.append(helper.make_node("Relu", ["a"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["a"], ["y"]))
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(np.array([axis], np.int64), "ax")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [None, c, None])],
                              [helper.make_tensor_value_info("y", 1, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(n: int, c: int, w: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, w)).astype(np.float32)
    x[0, :, 3] = np.nan                 # NaN columns: Relu keeps them
    x[-1, 1, -1] = np.inf
    return {"x": x}


def _fused(session: Session) -> bool:
    return any(s.op_type == conv_bias_fusion.OP_TYPE for s in session.steps)


CASES = [  # m, c, k, relu, bias shape, bias first, axis
    (192, 256, 5, True, (1, 192, 1), False, 2),
    (40, 33, 3, True, (40, 1), True, 2),
    (24, 16, 1, False, (1, 24, 1), False, 2),
    (20, 8, 3, True, (1,), False, 3),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_steps_equal_onnxruntime(case, threads):
    m, c, k, relu, bias_shape, bias_first, axis = case
    model = _model(m, c, k, relu, bias_shape, bias_first, axis)
    fast = Session(model, threads=threads)
    assert _fused(fast)
    with conv_bias_fusion.disabled():
        plain = Session(model, threads=threads)
    assert not _fused(plain)
    for run in range(4):
        feeds = _feeds(3, c, 37 + run, run)
        (want,) = onnxruntime_run(model, feeds, threads=threads)
        got = fast.run(feeds)["y"]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                      err_msg=f"run {run}")
        np.testing.assert_array_equal(plain.run(feeds)["y"].view(np.uint32),
                                      want.view(np.uint32))
    assert fast._replayer is not None
    for signature in fast._replayer._ready:
        assert fast._replayer.plain_steps(signature) == []


@pytest.mark.parametrize("path", native_backend.available_paths())
def test_fused_steps_equal_onnxruntime_on_every_path_and_the_reference(path):
    model = _model(48, 40, 5, True, (1, 48, 1), seed=3)
    feeds = _feeds(2, 40, 29, 4)
    (want,) = onnxruntime_run(model, feeds)
    with native_backend.use_path(path):
        got = Session(model, threads=2).run(feeds)["y"]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    from lowp.runtime import native_float
    with native_float.disabled():
        ref = Session(model, threads=1).run(feeds)["y"]
    np.testing.assert_array_equal(ref.view(np.uint32), want.view(np.uint32))


def test_not_fused_where_the_nodes_do_not_fit():
    """A bias per column (not per channel), a NaN in the bias, the Squeeze's result also a
    graph output, a Conv with a bias of its own: left as they are."""
    per_column = _model(8, 4, 3, True, (1, 1, 37))
    nan_bias = _model(8, 4, 3, True, (1, 8, 1))
    nan_bias.graph.initializer[1].CopyFrom(numpy_helper.from_array(
        np.full((1, 8, 1), np.nan, np.float32), "b"))
    exposed = _model(8, 4, 3, True, (1, 8, 1))
    exposed.graph.output.append(helper.make_tensor_value_info("s", 1, None))
    with_bias = _model(8, 4, 3, True, (1, 8, 1))
    with_bias.graph.node[1].input.append("b0")
    with_bias.graph.initializer.append(numpy_helper.from_array(np.ones(8, np.float32), "b0"))
    for model in (per_column, nan_bias, exposed, with_bias):
        assert conv_bias_fusion.apply(model) is model
        feeds = _feeds(2, 4, 37, 1)
        want = onnxruntime_run(model, feeds)
        got = Session(model, threads=1).run(feeds)
        for name, value in zip([o.name for o in model.graph.output], want, strict=True):
            np.testing.assert_array_equal(got[name].view(np.uint32), value.view(np.uint32))
