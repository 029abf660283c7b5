"""Config(per_channel_chains=True): the activations of Conv -> HardSwish/Relu -> depthwise
Conv chains on one int8 grid per channel (passes.channel_chains, docs/operators.md (O240))."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.config import CalibMethod, Config
from lowp.errors import QuantizationError
from lowp.passes.channel_chains import chain_pairs

from ..runtime.ort_agreement import assert_sessions_equal_onnxruntime

C = 12


def _float_model(act: str = "HardSwish", depthwise: bool = True, seed: int = 0
                 ) -> onnx.ModelProto:
    """x -> 1x1 Conv (channels of very different ranges) -> `act` -> 3x3 Conv (depthwise,
    or dense) -> y."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((C, 3, 1, 1)) * np.geomspace(0.02, 2.0, C)[:, None, None, None])
    w2 = rng.standard_normal((C, 1 if depthwise else C, 3, 3)) * 0.3
    inits = [numpy_helper.from_array(w1.astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal(C).astype(np.float32) * 0.1, "b1"),
             numpy_helper.from_array(w2.astype(np.float32), "w2"),
             numpy_helper.from_array(rng.standard_normal(C).astype(np.float32) * 0.1, "b2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="pointwise"),
             helper.make_node(act, ["c1"], ["a"], name="act"),
             helper.make_node("Conv", ["a", "w2", "b2"], ["y"], name="depthwise",
                              group=C if depthwise else 1, pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def _calibration(seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((8, 3, 8, 8)).astype(np.float32)}


def _quantized(model: onnx.ModelProto, **options: object) -> onnx.ModelProto:
    return lowp.quantize_model(model, _calibration(),
                               Config(method=CalibMethod.MINMAX, **options))  # type: ignore[arg-type]


def _per_channel_pairs(model: onnx.ModelProto) -> dict[str, tuple[str, ...]]:
    """Each Q/DQ node with an axis: its op type and the types of its zero point."""
    inits = {t.name: t for t in model.graph.initializer}
    return {n.name: (n.op_type, TensorProto.DataType.Name(inits[n.input[2]].data_type))
            for n in model.graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear")
            and n.input[0] not in inits and any(a.name == "axis" for a in n.attribute)}


@pytest.mark.parametrize("act", ["HardSwish", "Relu"])
def test_chain_activations_get_per_channel_int8_grids(act: str) -> None:
    q = _quantized(_float_model(act), per_channel_chains=True)
    onnx.checker.check_model(q, full_check=True)
    pairs = _per_channel_pairs(q)
    # HardSwish: the Conv's output and the HardSwish's; Relu: absorbed into the Conv's
    assert len(pairs) == (4 if act == "HardSwish" else 2)
    assert set(pairs.values()) == {("QuantizeLinear", "INT8"), ("DequantizeLinear", "INT8")}
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    q_nodes = [n for n in q.graph.node if n.name in pairs and n.op_type == "QuantizeLinear"]
    for node in q_nodes:
        assert inits[node.input[1]].shape == (C,) and inits[node.input[2]].shape == (C,)
    assert chain_pairs(q) == []          # nothing left on one grid per tensor


@pytest.mark.parametrize("act", ["HardSwish", "Relu"])
def test_per_channel_chains_run_in_lowp_as_in_onnxruntime(act: str) -> None:
    q = _quantized(_float_model(act), per_channel_chains=True)
    x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert_sessions_equal_onnxruntime(q, x)


def test_per_channel_chains_are_closer_to_the_float_model() -> None:
    model = _float_model()
    x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
    want = lowp.passes.calibrate.float_session(model).run(None, {"x": x})[0]
    errors = [np.abs(lowp.Session(_quantized(model, per_channel_chains=on)).run({"x": x})["y"]
                     - want).mean() for on in (False, True)]
    assert errors[1] < errors[0]


@pytest.mark.parametrize("act", ["HardSwish", "Sigmoid"])
def test_a_model_without_a_chain_is_unchanged(act: str) -> None:
    # a dense 3x3 Conv reads the activation, or the operator between is not one of the chain's
    model = _float_model(act, depthwise=act == "Sigmoid")
    plain = _quantized(model)
    assert _quantized(model, per_channel_chains=True).SerializeToString() == \
        plain.SerializeToString()


def test_a_target_without_per_channel_activations_refuses_the_option() -> None:
    with pytest.raises(QuantizationError, match="takes no per-channel activations"):
        _quantized(_float_model(), per_channel_chains=True, target="qnnpack")


@pytest.mark.parametrize("flags,on", [([], False), (["--per-channel-chains"], True),
                                      (["--no-per-channel-chains"], False)])
def test_the_cli_flag_sets_the_option(flags: list[str], on: bool) -> None:
    from lowp.cli import _config, build_parser
    args = build_parser().parse_args(["quantize", "m.onnx", "--calib", "c.npz", "-o", "q.onnx",
                                      *flags])
    assert _config(args).per_channel_chains is on
