"""Mode AUTO (passes.mode_choice): the measured candidates, the rule, the record."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import lowp
from lowp.cli import EXIT_OK, EXIT_USER, main
from lowp.config import QuantMode
from lowp.data import demo_model_path, load_demo_calibration
from lowp.errors import QuantizationError
from lowp.passes import mode_choice
from lowp.passes.mode_choice import PER_TENSOR, PER_TOKEN, STATIC, ModeCandidate, pick
from lowp.pipeline import quantize
from tests.passes.token_models import token_model

AUTO = lowp.Config(mode=QuantMode.AUTO)


def _kind(model: onnx.ModelProto) -> str:
    ops = {n.op_type for n in model.graph.node}
    if "MatMulInteger" in ops:
        return PER_TOKEN
    if "DynamicQuantizeLinear" in ops:
        return PER_TENSOR
    return STATIC


def _fake_latency(ms: dict[str, float]):
    def latencies(models, feed):
        assert all(_kind(m) == name for name, m in models.items())
        return {name: ms[name] for name in models}
    return latencies


def test_per_token_is_chosen_where_token_scales_differ():
    model, data = token_model()
    result = quantize(model, data, AUTO)
    choice = result.mode_choice
    assert choice is not None and choice.chosen == PER_TOKEN
    assert _kind(result.model) == PER_TOKEN
    sqnr = {c.name: c.sqnr_db for c in choice.candidates}
    assert [c.name for c in choice.candidates] == [STATIC, PER_TOKEN, PER_TENSOR]
    assert sqnr[PER_TOKEN] > sqnr[STATIC] + 10 and sqnr[PER_TOKEN] > sqnr[PER_TENSOR] + 5
    assert all(c.latency_ms is not None and c.latency_ms > 0 for c in choice.candidates)
    assert choice.dynamic_layers == 2 and choice.samples == 16 and not choice.note
    assert "the last 1 of 4 calibration feeds" in choice.data


def test_static_kept_is_the_static_model_on_all_data(monkeypatch):
    """Every candidate counted as equally accurate (tolerance 100 dB) and static, with the
    timings fixed, 20 times faster: static is kept, and the model is exactly the one of
    mode STATIC calibrated on all the data (the held-out feed, which widens the ranges,
    included), not the candidate calibrated without it."""
    monkeypatch.setattr(mode_choice, "latencies_ms",
                        _fake_latency({STATIC: 0.025, PER_TOKEN: 0.5, PER_TENSOR: 0.2}))
    model, data = token_model(spread=0.0)
    data["x"][-16:] *= 1.5             # the held-out feed widens the ranges
    result = quantize(model, data, dataclasses.replace(AUTO, auto_tolerance_db=100.0))
    assert result.mode_choice is not None and result.mode_choice.chosen == STATIC
    static = lowp.quantize_model(model, data, lowp.Config())
    assert result.model.SerializeToString() == static.SerializeToString()
    held_in = lowp.quantize_model(model, {"x": data["x"][:48]}, lowp.Config())
    assert held_in.SerializeToString() != static.SerializeToString()


def test_cnn_stays_static():
    result = quantize(str(demo_model_path()), load_demo_calibration(), AUTO)
    choice = result.mode_choice
    assert choice is not None and choice.chosen == STATIC and not choice.candidates
    assert "convolution" in choice.reason and choice.dynamic_layers >= 1
    static = lowp.quantize_model(str(demo_model_path()), load_demo_calibration())
    assert result.model.SerializeToString() == static.SerializeToString()


def test_no_matrix_product_is_static_with_a_note():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"),
         helper.make_node("Add", ["r", "x"], ["y"], name="add")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    choice = quantize(model, {"x": x}, AUTO).mode_choice
    assert choice is not None and choice.chosen == STATIC
    assert "no MatMul/Gemm" in choice.reason


def test_slowdown_rule_flips_the_choice(monkeypatch):
    """Every candidate counted as equally accurate (tolerance 100 dB): per-token, the most
    accurate, is kept while at most `auto_max_slowdown` times slower than the fastest."""
    model, data = token_model()
    monkeypatch.setattr(mode_choice, "latencies_ms",
                        _fake_latency({STATIC: 1.0, PER_TOKEN: 3.0, PER_TENSOR: 2.0}))
    loose = dataclasses.replace(AUTO, auto_tolerance_db=100.0)
    slow = quantize(model, data, dataclasses.replace(loose, auto_max_slowdown=2.9))
    assert slow.mode_choice is not None and slow.mode_choice.chosen == STATIC
    assert _kind(slow.model) == STATIC and "3.00x slower" in slow.mode_choice.reason
    fine = quantize(model, data, dataclasses.replace(loose, auto_max_slowdown=3.0))
    assert fine.mode_choice is not None and fine.mode_choice.chosen == PER_TOKEN
    # the default tolerance: static is far less accurate, so speed does not matter
    strict = quantize(model, data, AUTO)
    assert strict.mode_choice is not None and strict.mode_choice.chosen == PER_TOKEN


def test_pick_rule():
    c = [ModeCandidate(STATIC, 30.0, 1.0), ModeCandidate(PER_TOKEN, 30.5, 2.0),
         ModeCandidate(PER_TENSOR, 29.0, 1.2)]
    assert pick(c, 1.5, 1.0)[0] == STATIC         # per-token 2x slower than static
    assert pick(c, 2.0, 1.0)[0] == PER_TOKEN
    assert pick(c, 1.5, 0.4)[0] == PER_TOKEN      # static no longer counts as equal
    # the fastest near-equal one is kept, not the fastest overall
    assert pick(c, 1.5, 1.6)[0] == STATIC
    ties = [ModeCandidate(STATIC, math.inf, 1.0), ModeCandidate(PER_TOKEN, math.inf, 1.0)]
    assert pick(ties, 1.5, 0.0)[0] == STATIC
    failed = [ModeCandidate(STATIC, None, None, "boom"), ModeCandidate(PER_TOKEN, 10.0, 5.0)]
    assert pick(failed, 1.5, 1.0)[0] == PER_TOKEN
    with pytest.raises(lowp.LowpError, match="boom"):
        pick(failed[:1], 1.5, 1.0)


def test_deterministic():
    model, data = token_model(seed=3)
    a = quantize(model, data, AUTO)
    b = quantize(model, data, AUTO)
    assert a.mode_choice is not None and b.mode_choice is not None
    assert a.mode_choice.chosen == b.mode_choice.chosen
    assert ([c.sqnr_db for c in a.mode_choice.candidates]
            == [c.sqnr_db for c in b.mode_choice.candidates])
    assert a.model.SerializeToString() == b.model.SerializeToString()


def test_too_few_feeds_are_all_used_and_said(monkeypatch):
    model, data = token_model(samples=32)          # 2 feeds of 16
    choice = quantize(model, data, AUTO).mode_choice
    assert choice is not None and choice.samples == 32
    assert "only 2 calibration feeds" in choice.note


@pytest.mark.parametrize("value", [0.5, 0.0, -1.0, math.nan, math.inf])
def test_bad_max_slowdown(value):
    with pytest.raises(QuantizationError, match=r"auto_max_slowdown=.*finite number >= 1"):
        lowp.Config(mode=QuantMode.AUTO, auto_max_slowdown=value)


def test_bad_tolerance_and_budget():
    with pytest.raises(QuantizationError, match="auto_tolerance_db"):
        lowp.Config(mode=QuantMode.AUTO, auto_tolerance_db=-1.0)
    with pytest.raises(QuantizationError, match="mode static, not auto"):
        lowp.Config(mode=QuantMode.AUTO, accuracy_budget=30.0)


def test_needs_data():
    model, _ = token_model()
    with pytest.raises(lowp.LowpError, match="mode auto measures"):
        quantize(model, None, AUTO)


def test_cli_writes_the_record_and_prints_the_table(tmp_path, capsys):
    model, data = token_model()
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", **data)
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "calib.npz"),
                 "-o", str(out), "--quiet", "--mode", "auto", "--no-report"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "Mode auto: dynamic per-token chosen" in text
    for name in (STATIC, PER_TOKEN, PER_TENSOR):
        assert name in text
    record = json.loads((tmp_path / "q.mode.json").read_text())
    assert record["format"] == "lowp.mode" and record["chosen"] == PER_TOKEN
    assert record["flags"] == "--mode dynamic --activations per-token"
    assert [c["name"] for c in record["candidates"]] == [STATIC, PER_TOKEN, PER_TENSOR]
    assert all(c["sqnr_db"] > 0 and c["latency_ms"] > 0 for c in record["candidates"])
    # the recorded flags give the same model without measuring
    again = tmp_path / "again.onnx"
    assert main(["quantize", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "calib.npz"),
                 "-o", str(again), "--quiet", "--no-report",
                 *record["flags"].split()]) == EXIT_OK
    assert onnx.load(str(again)).SerializeToString() == onnx.load(str(out)).SerializeToString()


def test_cli_bad_max_slowdown_is_one_error_line(tmp_path, capsys):
    np.savez(tmp_path / "calib.npz", **load_demo_calibration())
    assert main(["quantize", str(demo_model_path()), "--calib", str(tmp_path / "calib.npz"),
                 "-o", str(tmp_path / "q.onnx"), "--quiet", "--mode", "auto",
                 "--auto-max-slowdown", "0.9"]) == EXIT_USER
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "auto_max_slowdown=0.9" in err[0]
