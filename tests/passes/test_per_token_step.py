"""The per-token step of the measured method choice (passes.per_token_step): measured only
below its bound, kept only when clearly more accurate, the model it keeps, the record, the
CLI, and that it can be turned off."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.cli import EXIT_OK, EXIT_USER, main
from lowp.config import ActivationGranularity, Config, QuantMode
from lowp.errors import QuantizationError
from lowp.passes.method_choice import CANDIDATES, candidate_config
from lowp.passes.per_token_step import (
    FLAGS,
    PER_TOKEN_GAIN_DB,
    PerTokenStep,
    decide,
    static_db,
    wanted,
)
from lowp.pipeline import quantize
from tests.passes.token_models import token_model

PER_TOKEN_CONFIG = Config(mode=QuantMode.DYNAMIC,
                          activation_granularity=ActivationGranularity.PER_TOKEN)


def _conv_then_matmul(seed: int = 0, samples: int = 64
                      ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A 1x1 Conv -> Relu -> Flatten -> MatMul on images whose scale differs by exp(N(0, 2))
    from sample to sample: static is poor, and dynamic mode would leave the Conv in float."""
    rng = np.random.default_rng(seed)
    wc = rng.normal(0, 0.3, (8, 4, 1, 1)).astype(np.float32)
    wm = rng.normal(0, 0.2, (8 * 4 * 4, 10)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "wc"], ["c"], name="conv"),
         helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
         helper.make_node("MatMul", ["f", "wm"], ["y"], name="head")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
        [numpy_helper.from_array(wc, "wc"), numpy_helper.from_array(wm, "wm")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(0, 1, (samples, 4, 4, 4)).astype(np.float32)
    x *= np.exp(rng.normal(0, 2.0, (samples, 1, 1, 1))).astype(np.float32)
    return model, {"x": x}


def _ops(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


def test_low_static_sqnr_keeps_per_token_the_model_of_its_flags():
    model, data = token_model(spread=1.5)
    result = quantize(model, data, Config())
    choice = result.method_choice
    assert choice is not None and choice.per_token is not None
    step = choice.per_token
    assert step.kept and step.static_db < Config().per_token_below_db
    assert step.sqnr_db is not None and step.sqnr_db >= step.static_db + PER_TOKEN_GAIN_DB
    assert len(step.folds_db) == 2 and step.sqnr_db == pytest.approx(sum(step.folds_db) / 2)
    # the static model's value is the chosen method's mean over the folds
    chosen = next(c for c in choice.candidates if c.method == choice.chosen)
    assert step.static_db == chosen.sqnr_db and not choice.kept_float
    assert choice.flags() == FLAGS
    assert "MatMulInteger" in _ops(result.model)
    same = quantize(model, data, PER_TOKEN_CONFIG).model
    assert result.model.SerializeToString() == same.SerializeToString()


def test_off_gives_the_static_model_of_the_chosen_method():
    model, data = token_model(spread=1.5)
    result = quantize(model, data, Config(per_token_below_db=None))
    choice = result.method_choice
    assert choice is not None and choice.per_token is None
    assert "MatMulInteger" not in _ops(result.model)
    assert choice.flags() == CANDIDATES[choice.chosen].flags()
    fixed = quantize(model, data, candidate_config(Config(), choice.chosen)).model
    assert result.model.SerializeToString() == fixed.SerializeToString()


def test_above_the_bound_nothing_is_measured():
    model, data = token_model(spread=0.0)
    result = quantize(model, data, Config())
    choice = result.method_choice
    assert choice is not None and choice.per_token is None
    assert min(c.sqnr_db or 0.0 for c in choice.candidates) > Config().per_token_below_db
    # a bound above the static SQNR measures it; per-token is not 3 dB better here
    raised = quantize(model, data, Config(per_token_below_db=80.0)).method_choice
    assert raised is not None and raised.per_token is not None
    assert raised.per_token.sqnr_db is not None


def test_a_convolution_left_in_float_is_not_measured():
    model, data = _conv_then_matmul()
    result = quantize(model, data, Config())
    choice = result.method_choice
    assert choice is not None and choice.per_token is not None
    step = choice.per_token
    assert not step.kept and step.sqnr_db is None and "1 convolution in float" in step.reason
    assert "not measured" in step.line() and "MatMulInteger" not in _ops(result.model)


def test_an_accuracy_budget_takes_no_step():
    model, data = token_model(spread=1.5)
    result = quantize(model, data, Config(accuracy_budget=10.0))
    assert result.method_choice is not None and result.method_choice.per_token is None
    assert "MatMulInteger" not in _ops(result.model)


def test_rule():
    assert decide(10.0, [13.0, 13.0]).kept                      # exactly the gain
    assert not decide(10.0, [12.9, 13.0]).kept
    assert decide(10.0, [13.0, 13.0]).sqnr_db == 13.0
    assert static_db(8.0, 3.5) == 11.5 and static_db(8.0, None) == 8.0
    assert wanted(Config(per_token_below_db=12.0), 11.9)
    assert not wanted(Config(per_token_below_db=12.0), 12.0)
    step = PerTokenStep(7.0, None, False, "no MatMul/Gemm")
    assert step.line() == "  per-token activations: not measured (no MatMul/Gemm)"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "20"])
def test_bad_bound(value):
    with pytest.raises(QuantizationError, match="per_token_below_db"):
        Config(per_token_below_db=value)


def test_cli_prints_records_and_turns_off(tmp_path, capsys):
    model, data = token_model(spread=1.5)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", **data)
    args = ["quantize", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "calib.npz"),
            "--quiet", "--no-report"]
    out = tmp_path / "q.onnx"
    assert main([*args, "-o", str(out)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "Activations: dynamic per-token kept" in text
    assert "per-token activations (--mode dynamic --activations per-token)" in text
    record = json.loads((tmp_path / "q.method.json").read_text())
    assert record["flags"] == FLAGS and record["per_token"]["kept"] is True
    assert len(record["per_token"]["folds_db"]) == 2
    again = tmp_path / "again.onnx"
    assert main([*args, "-o", str(again), *record["flags"].split()]) == EXIT_OK
    assert onnx.load(str(again)).SerializeToString() == onnx.load(str(out)).SerializeToString()
    off = tmp_path / "off.onnx"
    assert main([*args, "-o", str(off), "--per-token-below", "off"]) == EXIT_OK
    assert "per-token" not in capsys.readouterr().out
    assert "MatMulInteger" not in _ops(onnx.load(str(off)))
    assert json.loads((tmp_path / "off.method.json").read_text())["per_token"] is None
    assert main([*args, "-o", str(off), "--per-token-below", "x"]) == EXIT_USER
    assert "--per-token-below" in capsys.readouterr().err
