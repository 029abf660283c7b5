"""Per-channel chains measured on the default's folds (`ChannelChainsStep`, docs/operators.md
(O282)): kept where the folds gain, left out where they lose, recorded in the choice and in
the calibration table, and the kept file runs in lowp's engine as in ONNX Runtime."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.config import Config
from lowp.passes.channel_chains import chain_pairs
from lowp.passes.method_choice import ChannelChainsStep, candidate_config
from lowp.pipeline import quantize

from ..runtime.ort_agreement import assert_sessions_equal_onnxruntime
from .test_channel_chains import C, _float_model, _per_channel_pairs

MEASURED = Config(measure_per_channel_chains=True)


def _spread_model(spread: float = 100.0) -> onnx.ModelProto:
    """x -> 1x1 Conv (channel ranges `spread` times apart) -> HardSwish -> depthwise 3x3
    Conv -> 1x1 Conv weighting every channel back by its range -> y: the output depends
    on the small channels as much as on the large ones."""
    rng = np.random.default_rng(0)
    scales = np.geomspace(1.0 / spread, 1.0, C)
    w1 = rng.standard_normal((C, 3, 1, 1)) * scales[:, None, None, None]
    w3 = rng.standard_normal((4, C, 1, 1)) / scales[None, :, None, None] / C
    inits = [numpy_helper.from_array(w1.astype(np.float32), "w1"),
             numpy_helper.from_array((rng.standard_normal(C) * 0.1 * scales)
                                     .astype(np.float32), "b1"),
             numpy_helper.from_array((rng.standard_normal((C, 1, 3, 3)) * 0.3)
                                     .astype(np.float32), "w2"),
             numpy_helper.from_array(w3.astype(np.float32), "w3")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="pointwise"),
             helper.make_node("HardSwish", ["c1"], ["a"], name="act"),
             helper.make_node("Conv", ["a", "w2"], ["d"], name="depthwise", group=C,
                              pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["d", "w3"], ["y"], name="mix")]
    graph = helper.make_graph(
        nodes, "spread", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def _spread_calibration() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).standard_normal((16, 3, 8, 8)).astype(np.float32)}


def _routing_model() -> onnx.ModelProto:
    """x -> 1x1 Conv (channel k copies input channel k % 3) -> HardSwish -> depthwise 3x3
    Conv -> y."""
    rng = np.random.default_rng(0)
    w1 = np.zeros((C, 3, 1, 1), np.float32)
    w1[np.arange(C), np.arange(C) % 3] = 1.0
    inits = [numpy_helper.from_array(w1, "w1"),
             numpy_helper.from_array((rng.standard_normal((C, 1, 3, 3)) * 0.3)
                                     .astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="pointwise"),
             helper.make_node("HardSwish", ["c1"], ["a"], name="act"),
             helper.make_node("Conv", ["a", "w2"], ["y"], name="depthwise", group=C,
                              pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "routing", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def _shifting_calibration() -> dict[str, np.ndarray]:
    """Input channel 2 is 100 times narrower in the first 8 samples than in the last 8: a
    fold calibrated on the first half puts its chain channels on grids the held-out half
    overflows; one grid per tensor has the other channels' room."""
    x = np.random.default_rng(1).standard_normal((16, 3, 8, 8))
    x[:8, 2] *= 0.01
    return {"x": x.astype(np.float32)}


def test_the_default_keeps_per_channel_chains_where_the_folds_gain(tmp_path):
    """The chain's channels differ in range 100 times: every fold gains (+1.38 +1.11 dB);
    the model is that of the record's flags, and the calibration table gives it again
    without measuring."""
    model, calib = _spread_model(), _spread_calibration()
    result = quantize(model, calib, MEASURED)
    choice = result.method_choice
    assert choice is not None and choice.channel_chains is not None
    step = choice.channel_chains
    assert step.kept and step.gain_db is not None and step.gain_db > 0.5, step
    assert len(step.with_db) == len(step.without_db) == 2
    assert choice.flags().endswith("--per-channel-chains")
    assert "per-channel chains: +" in choice.format() and "< kept" in choice.format()
    assert choice.to_dict()["channel_chains"]["kept"] is True
    assert len(_per_channel_pairs(result.model)) == 4 and chain_pairs(result.model) == []
    fixed = dataclasses.replace(candidate_config(MEASURED, choice.chosen),
                                per_channel_chains=True,
                                bias_correction=choice.bias_correction is not None
                                and choice.bias_correction.kept)
    assert (quantize(model, calib, fixed).model.SerializeToString()
            == result.model.SerializeToString())
    assert result.table.settings.get("per_channel_chains") is True
    result.table.save(tmp_path / "t.json")
    again = quantize(model, calib, MEASURED, calib_table=tmp_path / "t.json")
    assert again.model.SerializeToString() == result.model.SerializeToString()


def test_the_kept_file_runs_in_lowp_as_in_onnxruntime():
    result = quantize(_spread_model(), _spread_calibration(), MEASURED)
    assert result.method_choice is not None and result.method_choice.channel_chains is not None
    assert result.method_choice.channel_chains.kept
    x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert_sessions_equal_onnxruntime(result.model, x)


def test_the_default_leaves_per_channel_chains_out_where_a_fold_loses():
    """A channel narrow on one fold's calibration half and wide on its held-out half: that
    fold loses (-29.73 dB, the other -0.34); the file is the one without the change."""
    model, calib = _routing_model(), _shifting_calibration()
    result = quantize(model, calib, MEASURED)
    choice = result.method_choice
    assert choice is not None and choice.channel_chains is not None
    step = choice.channel_chains
    assert step.gain_db is not None and not step.kept, step
    assert "--per-channel-chains" not in choice.flags()
    assert choice.to_dict()["channel_chains"]["kept"] is False
    assert _per_channel_pairs(result.model) == {} and chain_pairs(result.model)
    assert "per_channel_chains" not in result.table.settings
    off = quantize(model, calib, Config())
    assert off.model.SerializeToString() == result.model.SerializeToString()
    x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert_sessions_equal_onnxruntime(result.model, x)


@pytest.mark.parametrize("why", ["no chain", "off", "forced on", "target"])
def test_the_step_is_not_measured_where_it_cannot_change_the_model(why):
    model = _float_model(depthwise=why != "no chain")     # a dense 3x3 Conv: no chain
    config = {"no chain": MEASURED, "off": Config(),
              "forced on": Config(per_channel_chains=True, measure_per_channel_chains=True),
              "target": Config(target="qnnpack", measure_per_channel_chains=True)}[why]
    choice = quantize(model, _spread_calibration(), config).method_choice
    assert choice is not None and choice.channel_chains is None
    assert "per-channel chains" not in choice.format()


def test_a_frame_agreement_lower_on_one_fold_leaves_the_chains_out():
    assert ChannelChainsStep((20.0, 22.0), (21.0, 22.5)).kept
    assert not ChannelChainsStep((20.0, 22.0), (21.0, 22.5), "", (95.0, 96.0),
                                 (95.5, 95.9)).kept
    assert ChannelChainsStep((20.0, 22.0), (21.0, 22.5), "", (95.0, 96.0), (95.0, 96.5)).kept
    assert ChannelChainsStep((20.0, 22.0), (21.0, 22.5), "", (95.0, 96.0),
                             (95.0, 96.5)).line() == (
        "  per-channel chains: +0.75 dB (+1.00 +0.50), frames +0.00 +0.50 points < kept")


@pytest.mark.parametrize("flags, on, measured", [
    ([], False, False),
    (["--per-channel-chains"], True, False),
    (["--no-per-channel-chains"], False, False),
])
def test_cli_flags_reach_the_config(flags, on, measured):
    from lowp.cli import _config, build_parser

    args = build_parser().parse_args(["quantize", "m.onnx", "--calib", "c.npz", "-o", "q.onnx",
                                      *flags])
    config = _config(args)
    assert config.per_channel_chains is on
    assert config.measure_per_channel_chains is measured
