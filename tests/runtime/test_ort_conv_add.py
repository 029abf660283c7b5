"""ONNX Runtime's ConvAddActivationFusion mirrored at load (lowp.runtime.ort_conv_add): a float
Conv read only by an Add of a same-shaped tensor (then an activation) runs as one FusedConv
whose SGEMM starts from the Add's other input (found on centerface, whose float run differed
from ONNX Runtime's in the last bits: evals/corpus/repro/float_divergence.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, native_float, ort_conv_add
from lowp.runtime import native_backend as nb
from lowp.runtime.backends import native_available
from lowp.runtime.float_nn import FusedConv
from tests.runtime.ort_agreement import onnxruntime_run

BACKENDS = ["reference"] + (["native"] if native_available() else [])
ACTIVATIONS = [None, ("Relu", {}), ("Sigmoid", {}), ("Tanh", {}),
               ("LeakyRelu", {"alpha": 0.07}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
               ("Clip", {})]


def _model(c_in: int, c_out: int, k: int, *, activation: tuple[str, dict] | None = None,
           conv_first: bool = True, group: int = 1, bias: bool = True,
           weights_fed: bool = False, two_convs: bool = False, opset: int = 13,
           hw: int = 11, seed: int = 0) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x -> Conv -> Add(., z) [-> activation] -> y; with `two_convs`, z is a second Conv
    (without a bias, so only the first fuses) of x."""
    rng = np.random.default_rng(seed)
    f = np.float32
    n = 2
    w = (rng.standard_normal((c_out, c_in // group, k, k)) * 0.3).astype(f)
    inits = [] if weights_fed else [numpy_helper.from_array(w, "w")]
    conv_in = ["x", "w", "b"] if bias else ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_out).astype(f), "b"))
    nodes = [helper.make_node("Conv", conv_in, ["c"], pads=[k // 2] * 4, group=group)]
    if two_convs:
        w2 = (rng.standard_normal((c_out, c_in // group, k, k)) * 0.3).astype(f)
        inits.append(numpy_helper.from_array(w2, "w2"))
        nodes.insert(0, helper.make_node("Conv", ["x", "w2"], ["z"], pads=[k // 2] * 4,
                                         group=group))
    add_out = "y" if activation is None else "s"
    nodes.append(helper.make_node("Add", ["c", "z"] if conv_first else ["z", "c"], [add_out]))
    if activation is not None:
        op, attrs = activation
        ins = ["s"]
        if op == "Clip":
            inits += [numpy_helper.from_array(np.array(-0.5, f), "lo"),
                      numpy_helper.from_array(np.array(1.25, f), "hi")]
            ins += ["lo", "hi"]
        nodes.append(helper.make_node(op, ins, ["y"], **attrs))
    shape = [n, c_out, hw, hw]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c_in, hw, hw])]
    feeds = {"x": rng.standard_normal((n, c_in, hw, hw)).astype(f)}
    if not two_convs:
        inputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, shape))
        feeds["z"] = (rng.standard_normal(shape) * 3).astype(f)
    if weights_fed:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w.shape)))
        feeds["w"] = w
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    return model, feeds


def _fused(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in ort_conv_add.apply(model).graph.node if n.op_type == "FusedConv"]


def _agree(model: onnx.ModelProto, feeds: dict[str, np.ndarray], backend: str) -> None:
    theirs = onnxruntime_run(model, feeds)[0]
    ours = Session(model, backend=backend).run(feeds)["y"]
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("k", [1, 3])
def test_conv_add_activation_equals_onnxruntime(backend: str, activation: tuple | None,
                                                k: int) -> None:
    # 18 input channels: not a multiple of 4, so ONNX Runtime keeps the Conv in NCHW
    # (im2col SGEMM; 18 x 3 x 3 = 162 > 128: the product sums in two K blocks)
    model, feeds = _model(18, 8, k, activation=activation)
    fused = _fused(model)
    assert len(fused) == 1
    assert dict((a.name, helper.get_attribute_value(a)) for a in fused[0].attribute).get(
        "activation", b"") == (b"" if activation is None else activation[0].encode())
    _agree(model, feeds, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["sum_first", "depthwise", "weights_fed", "two_convs"])
def test_conv_add_variants_equal_onnxruntime(backend: str, case: str) -> None:
    kw: dict = {"sum_first": {"conv_first": False}, "depthwise": {"group": 6},
                "weights_fed": {"weights_fed": True}, "two_convs": {"two_convs": True}}[case]
    c_in, c_out = (6, 6) if case == "depthwise" else (18, 8)
    model, feeds = _model(c_in, c_out, 3, activation=("Relu", {}), **kw)
    assert len(_fused(model)) == 1
    _agree(model, feeds, backend)


def test_conv_without_bias_is_not_fused() -> None:
    model, _ = _model(18, 8, 3, bias=False)
    assert _fused(model) == []


@pytest.mark.parametrize("opset", [7, 11, 22])
def test_opsets_onnxruntime_fuses(opset: int) -> None:
    # ONNX Runtime 1.32 fuses Conv 22 too (its rule's list reads 1 and 11)
    model, feeds = _model(18, 8, 3, activation=("Relu", {}), opset=opset)
    assert len(_fused(model)) == 1
    _agree(model, feeds, "reference")


@pytest.mark.parametrize("backend", BACKENDS)
def test_nchwc_conv_is_left_to_the_layout_transformer(backend: str) -> None:
    # 16 input channels: MLAS's NCHWc kernels take this Conv, ConvAddActivationFusion does
    # not see it, and Sum (a graph input, not NCHWc) is added after it
    model, feeds = _model(16, 8, 3, activation=("Relu", {}))
    assert _fused(model) == []
    _agree(model, feeds, backend)


@pytest.mark.skipif(not native_available(), reason="needs the native extension")
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("k", [1, 3])
def test_fused_conv_replays_natively(activation: tuple | None, k: int) -> None:
    """The FusedConv (Sum, then any activation) runs as recorded native calls from the
    third run on (centerface's float model ran each from Python), with ONNX Runtime's
    outputs on every run and every instruction-set path."""
    model, feeds = _model(18, 8, k, activation=activation)
    for path in nb.available_paths():
        with nb.use_path(path):
            session = Session(model)
            rng = np.random.default_rng(5)
            for run in range(4):
                new = {name: (rng.standard_normal(v.shape) * 2).astype(np.float32)
                       for name, v in feeds.items()}
                np.testing.assert_array_equal(session.run(new)["y"],
                                              onnxruntime_run(model, new)[0],
                                              err_msg=f"{path}, run {run}")
            replayer = session._replayer
            assert replayer is not None and len(replayer._ready) == 1
            (signature,) = replayer._ready
            assert "FusedConv" in [s.op_type for s in replayer.steps]
            assert replayer.plain_steps(signature) == [], path


@pytest.mark.skipif(not native_available(), reason="needs the native extension")
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 9), m=st.integers(1, 9), k=st.integers(1, 3),
       hw=st.integers(1, 9), group=st.sampled_from([1, 3]), seed=st.integers(0, 2**32 - 1))
def test_native_conv_with_sum_equals_its_reference(n: int, c: int, m: int, k: int, hw: int,
                                                   group: int, seed: int) -> None:
    """float_conv_im2col's `sum`: the products start from it, bit for bit with the numpy
    form (lowp.mlas_sgemm onto the Sum, the bias after) on every instruction-set path."""
    c, m = c * group, m * group
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((m, c // group, k, k)) * 0.3).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    z = (rng.standard_normal((n, m, hw, hw)) * 3).astype(np.float32)
    z.flat[::7] = -0.0
    attrs = {"pads": [k // 2, k // 2, (k - 1) // 2, (k - 1) // 2], "group": group}
    with native_float.disabled():
        want = FusedConv(x, w, b, z, **attrs)
    for path in nb.available_paths():
        with nb.use_path(path):
            got = FusedConv(x, w, b, z, **attrs)
        assert got.view(np.uint32).tobytes() == want.view(np.uint32).tobytes(), path
