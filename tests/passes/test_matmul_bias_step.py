"""MatMul -> Add(bias) as one Gemm measured on the default's folds
(`Config.measure_matmul_bias`, `MatMulBiasStep`): kept only where the mean output SQNR rises
and no fold loses; the kept model is that of its flags and of its calibration table."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

import lowp
from lowp.cli import _config, build_parser
from lowp.config import Config
from lowp.errors import QuantizationError
from lowp.passes.method_choice import MatMulBiasStep, candidate_config
from lowp.pipeline import quantize
from tests.passes.test_matmul_bias import _dense, biased_head

MEASURED = Config(measure_matmul_bias=True)


def _fixed(choice, fused: bool) -> Config:
    """The config that gives the measured default's model without measuring."""
    return dataclasses.replace(
        candidate_config(Config(), choice.chosen), fuse_matmul_bias=fused,
        exclude_nodes=tuple(choice.kept_float),
        absorb_activations=choice.absorb is not None and choice.absorb.kept,
        bias_correction=choice.bias_correction is not None and choice.bias_correction.kept)


def test_the_gemm_that_gains_on_every_fold_is_kept(tmp_path):
    """The head whose bias cancels its inputs' mean product (26.6 against 18.4 dB with
    minmax ranges): every fold gains, the model has the Gemm, equals the model of the
    record's flags, and its calibration table gives it again without measuring."""
    model, calib, x = biased_head()
    result = quantize(model, calib, MEASURED)
    choice = result.method_choice
    assert choice is not None and choice.matmul_bias is not None
    step = choice.matmul_bias
    assert len(step.with_db) == len(step.without_db) == 2
    assert step.kept and step.gain_db is not None and step.gain_db > 3.0, step
    assert "--fuse-matmul-bias" in choice.flags()
    assert "MatMul bias as a Gemm bias: +" in choice.format()
    assert choice.to_dict()["matmul_bias"]["kept"] is True
    assert "Gemm" in {n.op_type for n in result.model.graph.node}
    assert (quantize(model, calib, _fixed(choice, fused=True)).model.SerializeToString()
            == result.model.SerializeToString())
    assert result.table.settings.get("fuse_matmul_bias") is True
    result.table.save(tmp_path / "t.json")
    again = quantize(model, calib, MEASURED, calib_table=tmp_path / "t.json")
    assert again.model.SerializeToString() == result.model.SerializeToString()
    # lowp's engine computes ONNX Runtime's outputs on the kept file, on both backends
    run = ort.InferenceSession(result.model.SerializeToString(),
                               providers=["CPUExecutionProvider"])
    (want,) = run.run(None, {"x": x})
    for backend in ("native", "reference"):
        ours = lowp.Session(result.model, backend=backend).run({"x": x})
        got = next(iter(ours.values())) if isinstance(ours, dict) else ours[0]
        np.testing.assert_array_equal(np.asarray(got), want)


def test_the_step_is_not_kept_where_a_fold_loses():
    assert not MatMulBiasStep((20.0, 22.0), (25.0, 21.9)).kept
    step = MatMulBiasStep((20.0, 22.0), (20.5, 22.0))
    assert step.kept
    assert step.line() == "  MatMul bias as a Gemm bias: +0.25 dB (+0.50 +0.00) < kept"


def test_the_step_is_not_measured_without_a_pair_or_when_off():
    model, calib, _ = biased_head()
    choice = quantize(model, calib, Config(measure_matmul_bias=False)).method_choice
    assert choice is not None and choice.matmul_bias is None
    # a 3-D input: the rewrite takes 2-D inputs only, nothing to measure
    rng = np.random.default_rng(0)
    deep = _dense([2, 3, 8], 8, 4, (4,))
    data = {"x": rng.normal(size=(16, 3, 8)).astype(np.float32)}
    choice = quantize(deep, data, MEASURED).method_choice
    assert choice is not None and choice.matmul_bias is None
    with pytest.raises(QuantizationError, match="True or False"):
        Config(measure_matmul_bias=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("flags, fused, measured", [
    ([], False, Config.measure_matmul_bias),
    (["--fuse-matmul-bias"], True, False),
    (["--no-fuse-matmul-bias"], False, False),
])
def test_cli_flags_reach_the_config(flags, fused, measured):
    args = build_parser().parse_args(["quantize", "m.onnx", "--calib", "c.npz", "-o", "q.onnx",
                                      *flags])
    config = _config(args)
    assert config.fuse_matmul_bias is fused
    assert config.measure_matmul_bias is measured
