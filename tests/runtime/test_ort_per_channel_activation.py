"""QDQ files with per-channel activations (QuantizeLinear / DequantizeLinear with an axis on
an activation, as NNCF writes at depthwise inputs and lowp's `per_channel_chains` along
pointwise Conv -> HardSwish -> depthwise Conv): ONNX Runtime's Conv selector fuses a uint8
group without looking at the activations' parameters and its QLinearConv then refuses a
per-channel input or output, which lowp refuses as well, naming the node; every other form
runs unfused there, and lowp gives its bits (docs/operators.md (O239), (O240))."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.errors import NodeError
from lowp.runtime import Session
from lowp.runtime import native_backend as nb

from .ort_agreement import (
    assert_outputs_equal_onnxruntime_on_every_path,
    assert_sessions_equal_onnxruntime,
    onnxruntime_run,
)

CIN = 4


def _chain_model(channels: int, seed: int, *, conv_qtype: type = np.int8,
                 act_qtype: type = np.int8, conv_per_channel: bool = True,
                 act_per_channel: bool = True, depthwise_bias: bool = True,
                 act: str = "HardSwish") -> onnx.ModelProto:
    """x (uint8) -> pointwise Conv -> Q/DQ -> `act` -> Q/DQ -> depthwise Conv ->
    Q/DQ (uint8 per tensor) -> y; each middle pair per channel or per tensor, of its type."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray | np.generic) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def qparams(name: str, ranges: np.ndarray, qtype: type, per_channel: bool) -> list[str]:
        info = np.iinfo(qtype)
        zero = rng.integers(info.min + 40, info.max - 40, channels)
        if not per_channel:
            return [const(f"{name}_s", np.float32(ranges.max() / 255)),
                    const(f"{name}_z", qtype(zero[0]))]
        return [const(f"{name}_s", (ranges / 255).astype(np.float32)),
                const(f"{name}_z", zero.astype(qtype))]

    def pair(src: str, name: str, params: list[str], per_channel: bool) -> list[onnx.NodeProto]:
        axis = {"axis": 1} if per_channel else {}
        return [helper.make_node("QuantizeLinear", [src, *params], [f"{name}_q"],
                                 name=f"{name}_Q", **axis),
                helper.make_node("DequantizeLinear", [f"{name}_q", *params], [name],
                                 name=f"{name}_DQ", **axis)]

    sx = np.float32(0.02)
    w1s, w2s = rng.uniform(2e-3, 2e-2, channels), rng.uniform(5e-3, 2e-2, channels)
    ranges = rng.uniform(0.05, 4.0, channels)         # wide and narrow channels
    nodes = [
        helper.make_node("DequantizeLinear", ["x", const("xs", sx), const("xz", np.uint8(128))],
                         ["xd"], name="x_DQ"),
        helper.make_node("DequantizeLinear", [
            const("w1", rng.integers(-127, 128, (channels, CIN, 1, 1), np.int8)),
            const("w1s", w1s.astype(np.float32)), const("w1z", np.zeros(channels, np.int8))],
            ["w1d"], axis=0),
        helper.make_node("DequantizeLinear", [
            const("b1", rng.integers(-2000, 2000, channels, np.int32)),
            const("b1s", (sx * w1s).astype(np.float32)),
            const("b1z", np.zeros(channels, np.int32))],
            ["b1d"], axis=0),
        helper.make_node("Conv", ["xd", "w1d", "b1d"], ["c1"], name="pointwise"),
        *pair("c1", "c1d", qparams("c1", ranges, conv_qtype, conv_per_channel), conv_per_channel),
        helper.make_node(act, ["c1d"], ["a"], name="act"),
        *pair("a", "ad", qparams("a", ranges * 0.8, act_qtype, act_per_channel), act_per_channel),
        helper.make_node("DequantizeLinear", [
            const("w2", rng.integers(-127, 128, (channels, 1, 3, 3), np.int8)),
            const("w2s", w2s.astype(np.float32)), const("w2z", np.zeros(channels, np.int8))],
            ["w2d"], axis=0),
    ]
    dw_inputs = ["ad", "w2d"]
    if depthwise_bias:
        nodes.append(helper.make_node("DequantizeLinear", [
            const("b2", rng.integers(-2000, 2000, channels, np.int32)),
            const("b2s", (np.float32(0.01) * w2s).astype(np.float32)),
            const("b2z", np.zeros(channels, np.int32))], ["b2d"], axis=0))
        dw_inputs.append("b2d")
    nodes += [helper.make_node("Conv", dw_inputs, ["c2"], name="depthwise", group=channels,
                               pads=[1, 1, 1, 1]),
              *pair("c2", "y", [const("ys", np.float32(0.05)), const("yz", np.uint8(128))],
                    False)]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, CIN, 7, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, 7, 7])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _feeds(seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).integers(0, 256, (1, CIN, 7, 7), np.uint8)}


def _onnxruntime_refuses(model: onnx.ModelProto) -> bool:
    try:
        onnxruntime_run(model, _feeds())
    except ort.capi.onnxruntime_pybind11_state.Fail:
        return True
    return False


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("form", [
    # a uint8 per-channel output of the pointwise group: QLinearConv refuses Y's zero point
    {"conv_qtype": np.uint8, "act_qtype": np.uint8, "act_per_channel": False},
    {"conv_qtype": np.uint8, "act_qtype": np.uint8, "act": "Relu"},
    # a uint8 per-channel input of a depthwise group without bias: X's zero point
    {"conv_qtype": np.uint8, "act_qtype": np.uint8, "conv_per_channel": False,
     "depthwise_bias": False},
    # QLinearSigmoid / QLinearLeakyRelu refuse a per-channel input or output
    {"act": "Sigmoid"},
    {"act": "LeakyRelu", "conv_qtype": np.uint8, "act_qtype": np.uint8, "conv_per_channel": False},
])
def test_a_fused_group_with_per_channel_activations_is_refused(
        backend: str, form: dict[str, object]) -> None:
    model = _chain_model(8, 0, **form)  # type: ignore[arg-type]
    assert _onnxruntime_refuses(model)
    with pytest.raises(NodeError, match="per-channel scale or zero point"):
        Session(model, backend=backend).run(_feeds())


FORMS_RUN = [
    {},                                                       # lowp's per_channel_chains
    {"act": "Relu"},
    {"depthwise_bias": False},
    {"conv_qtype": np.uint8, "act_qtype": np.uint8, "conv_per_channel": False},  # NNCF's
    {"conv_per_channel": False, "conv_qtype": np.uint8},
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("form", FORMS_RUN)
def test_per_channel_activations_onnxruntime_runs_give_its_bits(
        threads: int, form: dict[str, object]) -> None:
    model = _chain_model(8, 0, **form)  # type: ignore[arg-type]
    assert not _onnxruntime_refuses(model)
    assert_outputs_equal_onnxruntime_on_every_path(model, _feeds(), threads)


@settings(max_examples=12, deadline=None)
@given(channels=st.integers(2, 40), seed=st.integers(0, 2**16),
       act=st.sampled_from(["HardSwish", "Relu", "Clip", "HardSigmoid", "Tanh"]))
def test_per_channel_chains_equal_onnxruntime(channels: int, seed: int, act: str) -> None:
    model = _chain_model(channels, seed, act=act)
    assert_sessions_equal_onnxruntime(model, _feeds(seed + 1)["x"])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("form", [{}, {"conv_qtype": np.uint8, "act_qtype": np.uint8,
                                       "conv_per_channel": False}])
def test_per_channel_dequantize_replays_natively(threads: int, form: dict[str, object]) -> None:
    """A per-channel DequantizeLinear (axis 1, int8 or uint8) is a native step of the
    replayed Program (one table lookup per image and channel plane, each channel's table
    its own results on the 256 codes): ONNX Runtime's bits on every run and native path,
    and no step of the chain is left to Python."""
    model = _chain_model(16, 3, **form)  # type: ignore[arg-type]
    for path in nb.available_paths():
        with nb.use_path(path):
            session = Session(model, threads=threads)
            for run in range(4):
                feeds = _feeds(run + 10)
                np.testing.assert_array_equal(session.run(feeds)["y"],
                                              onnxruntime_run(model, feeds, threads)[0],
                                              err_msg=f"{path} run {run}")
            replayer = session._replayer
            assert replayer is not None
            signature = (("x", (1, CIN, 7, 7), "|u1"),)
            assert replayer.plain_steps(signature) == [], path
