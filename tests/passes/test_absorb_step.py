"""A Relu read only by float operators, absorbed into its convolution's output quantization:
the rule (`Config.absorb_activations`, docs/operators.md (O125)) and its measurement on the
default's folds (`AbsorbStep`, (O126))."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.config import Config
from lowp.errors import QuantizationError
from lowp.passes.annotate import annotate
from lowp.passes.method_choice import AbsorbStep, candidate_config
from lowp.pipeline import quantize


def _conv_relu_float_reader(reader: str = "Mul") -> onnx.ModelProto:
    """x -> Conv -> Relu -> a float reader -> y (Mul by a constant, or Softplus)."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu")]
    if reader == "Mul":
        init.append(numpy_helper.from_array(np.array(1.5, np.float32), "k"))
        nodes.append(helper.make_node("Mul", ["r", "k"], ["y"], name="reader"))
    else:
        nodes.append(helper.make_node(reader, ["r"], ["y"], name="reader"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4, 8, 8])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _calib() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).normal(size=(16, 2, 8, 8)).astype(np.float32)}


def _sqnr(model: onnx.ModelProto, q: onnx.ModelProto, x: np.ndarray) -> float:
    run = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    qrun = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"])
    (ref,), (got,) = run.run(None, {"x": x}), qrun.run(None, {"x": x})
    ref = ref.astype(np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / np.sum((ref - got) ** 2)))


@pytest.mark.parametrize("reader", ["Mul", "Softplus"])
def test_a_relu_read_by_float_operators_is_absorbed_only_with_the_option(reader):
    model = _conv_relu_float_reader(reader)
    default = annotate(model, Config())
    assert "relu" not in default.nodes and not default.fused and "c" in default.activations
    ann = annotate(model, Config(absorb_activations=True))
    assert ann.fused == {"relu": "c"} and "reader" not in ann.nodes
    assert "r" in ann.activations and "c" not in ann.activations


def test_the_absorbed_relu_rounds_the_convolution_once_on_its_own_range():
    """The Conv writes int8 either way; absorbed, its output is rounded on [0, max] and the
    float reader gets the DequantizeLinear of that; lowp's engine gives ONNX Runtime's bits."""
    model = _conv_relu_float_reader()
    x = np.random.default_rng(2).normal(size=(1, 2, 8, 8)).astype(np.float32)
    minmax = Config(method=lowp.CalibMethod.MINMAX)
    before = quantize(model, _calib(), minmax).model
    q = quantize(model, _calib(), dataclasses.replace(minmax, absorb_activations=True)).model
    assert "Relu" in {n.op_type for n in before.graph.node}
    assert "Relu" not in {n.op_type for n in q.graph.node}
    assert _sqnr(model, q, x) > _sqnr(model, before, x) + 0.5     # 39.16 against 38.27 dB
    qrun = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"])
    ours = lowp.Session(q).run({"x": x})
    got = np.asarray(next(iter(ours.values())) if isinstance(ours, dict) else ours[0])
    np.testing.assert_array_equal(got, qrun.run(None, {"x": x})[0])


def test_the_measured_default_keeps_the_absorption_where_every_fold_gains(tmp_path):
    """The default measures the option on its folds, keeps it here, and the model is that of
    its flags; its calibration table gives the same model without measuring."""
    model = _conv_relu_float_reader()
    result = quantize(model, _calib(), Config())
    choice = result.method_choice
    assert choice is not None and choice.absorb is not None
    step = choice.absorb
    assert step.kept and step.gain_db is not None and step.gain_db > 0.5, step
    assert len(step.with_db) == len(step.without_db) == 2
    assert "--absorb-activations" in choice.flags()
    assert "activations absorbed: +" in choice.format()
    assert choice.to_dict()["absorb"]["kept"] is True
    fixed = dataclasses.replace(candidate_config(Config(), choice.chosen),
                                absorb_activations=True,
                                bias_correction=choice.bias_correction is not None
                                and choice.bias_correction.kept)
    assert (quantize(model, _calib(), fixed).model.SerializeToString()
            == result.model.SerializeToString())
    assert result.table.settings.get("absorb_activations") is True
    result.table.save(tmp_path / "t.json")
    again = quantize(model, _calib(), Config(), calib_table=tmp_path / "t.json")
    assert again.model.SerializeToString() == result.model.SerializeToString()


def test_the_step_is_not_measured_where_the_option_changes_nothing_or_is_off():
    # a Relu writing a graph output is absorbed by (O112) already
    rng = np.random.default_rng(0)
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1])
    relu = helper.make_node("Relu", ["c"], ["y"], name="relu")
    graph = helper.make_graph([conv, relu], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4, 8, 8])], [numpy_helper.from_array(
                rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "w")])
    plain = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    choice = quantize(plain, _calib(), Config()).method_choice
    assert choice is not None and choice.absorb is None
    model = _conv_relu_float_reader()
    off = quantize(model, _calib(), Config(measure_absorbed_activations=False))
    assert off.method_choice is not None and off.method_choice.absorb is None
    assert "absorb_activations" not in off.table.settings
    with pytest.raises(QuantizationError, match="True or False"):
        Config(absorb_activations=1)  # type: ignore[arg-type]


def test_a_change_that_loses_on_one_fold_is_not_kept():
    assert not AbsorbStep((20.0, 22.0), (25.0, 21.9)).kept
    assert AbsorbStep((20.0, 22.0), (20.5, 22.0)).kept
    assert AbsorbStep((20.0, 22.0), (20.5, 22.0)).line() == (
        "  activations absorbed: +0.25 dB (+0.50 +0.00) < kept")


@pytest.mark.parametrize("flags, absorb, measured", [
    ([], False, True),
    (["--absorb-activations"], True, False),
    (["--no-absorb-activations"], False, False),
])
def test_cli_flags_reach_the_config(flags, absorb, measured):
    from lowp.cli import _config, build_parser

    args = build_parser().parse_args(["quantize", "m.onnx", "--calib", "c.npz", "-o", "q.onnx",
                                      *flags])
    config = _config(args)
    assert config.absorb_activations is absorb
    assert config.measure_absorbed_activations is measured
