"""Per-tensor weights measured on the default's folds (`Config.measure_weight_granularity`,
`PerTensorWeightsStep`): kept only where the mean output SQNR rises and no fold loses."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.config import Config, WeightGranularity
from lowp.errors import QuantizationError
from lowp.passes.method_choice import PerTensorWeightsStep, candidate_config
from lowp.pipeline import quantize

MEASURED = Config(measure_weight_granularity=True)


def _two_convs(channel_scales: np.ndarray) -> onnx.ModelProto:
    """x -> Conv (output channel o scaled by channel_scales[o]) -> Relu -> Conv -> y."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(4, 2, 3, 3)) * channel_scales[:, None, None, None]
    w2 = rng.normal(size=(3, 4, 3, 3)) / channel_scales[None, :, None, None]
    init = [numpy_helper.from_array(w1.astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32) * 0.1, "b1"),
            numpy_helper.from_array(w2.astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 3, 8, 8])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _calib() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).normal(size=(16, 2, 8, 8)).astype(np.float32)}


def _fixed(choice, per_tensor: bool) -> Config:
    """The config that gives the measured default's model without measuring."""
    granularity = WeightGranularity.PER_TENSOR if per_tensor else WeightGranularity.PER_CHANNEL
    return dataclasses.replace(
        candidate_config(Config(), choice.chosen), weight_granularity=granularity,
        exclude_nodes=tuple(choice.kept_float),
        absorb_activations=choice.absorb is not None and choice.absorb.kept,
        bias_correction=choice.bias_correction is not None and choice.bias_correction.kept)


def test_per_tensor_weights_that_lose_on_a_fold_are_not_kept():
    """Output channels whose weights differ 1000-fold: one weight scale for all rounds the
    small channels to a few steps, the folds see it, the model keeps per-channel weights."""
    model = _two_convs(np.array([1e-3, 1e-2, 0.1, 1.0]))
    result = quantize(model, _calib(), MEASURED)
    choice = result.method_choice
    assert choice is not None and choice.per_tensor is not None
    step = choice.per_tensor
    assert len(step.with_db) == len(step.without_db) == 2
    assert step.gain_db is not None and step.gain_db < -3.0, step
    assert not step.kept and "--per-tensor" not in choice.flags()
    assert "per-tensor weights: -" in choice.format()
    assert choice.to_dict()["per_tensor"]["kept"] is False
    assert "weight_granularity" not in result.table.settings
    assert (quantize(model, _calib(), _fixed(choice, per_tensor=False)).model
            .SerializeToString() == result.model.SerializeToString())


def test_kept_per_tensor_weights_give_the_model_of_the_flags_and_of_the_table(
        tmp_path, monkeypatch):
    """Where the step is kept (forced here: it keeps what its folds say), the model is the
    per-tensor one its flags name, bias correction is measured on it, and its calibration
    table gives the same model without measuring."""
    monkeypatch.setattr(PerTensorWeightsStep, "kept", property(lambda self: True))
    model = _two_convs(np.array([0.5, 1.0, 1.5, 2.0]))
    result = quantize(model, _calib(), MEASURED)
    choice = result.method_choice
    assert choice is not None and choice.per_tensor is not None and choice.per_tensor.kept
    assert choice.flags().split().count("--per-tensor") == 1
    if choice.bias_correction is not None and choice.bias_correction.with_db:
        # measured on the per-tensor model: its "without" figures are the step's "with"
        assert choice.bias_correction.without_db == choice.per_tensor.with_db
    fixed = quantize(model, _calib(), _fixed(choice, per_tensor=True)).model
    assert fixed.SerializeToString() == result.model.SerializeToString()
    scales = {i.name: numpy_helper.to_array(i) for i in result.model.graph.initializer}
    assert scales["w1_scale"].size == scales["w2_scale"].size == 1
    assert result.table.settings.get("weight_granularity") == WeightGranularity.PER_TENSOR.value
    result.table.save(tmp_path / "t.json")
    again = quantize(model, _calib(), MEASURED, calib_table=tmp_path / "t.json")
    assert again.model.SerializeToString() == result.model.SerializeToString()


def test_the_step_is_off_by_default_and_not_measured_without_per_channel_weights():
    model = _two_convs(np.array([1e-3, 1e-2, 0.1, 1.0]))
    for config in (Config(), dataclasses.replace(
            MEASURED, weight_granularity=WeightGranularity.PER_TENSOR)):
        choice = quantize(model, _calib(), config).method_choice
        assert choice is not None and choice.per_tensor is None
        assert "per-tensor weights" not in choice.format()
    with pytest.raises(QuantizationError, match="True or False"):
        Config(measure_weight_granularity=1)  # type: ignore[arg-type]


def test_the_step_line():
    step = PerTensorWeightsStep((20.0, 22.0), (20.5, 22.0))
    assert step.kept
    assert step.line() == "  per-tensor weights: +0.25 dB (+0.50 +0.00) < kept"
    assert not PerTensorWeightsStep((20.0, 22.0), (25.0, 21.9)).kept
