"""Accuracy-budget fallback (passes.fallback, passes.sensitivity): the budget is met when it
can be, moves follow the measured sensitivity, an impossible budget names the layers that
block it and still gives a valid model, and a user metric can set the goal."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.data import demo_model_path, load_demo_calibration
from lowp.errors import QuantizationError
from lowp.passes.fallback import (
    BudgetNotMetWarning,
    evaluation_feeds,
    load_metric,
    parse_budget,
    parse_tolerance,
)
from lowp.pipeline import quantize
from lowp.report.analysis import sqnr_of_energies
from lowp.runtime import Session


def _sqnr(model: onnx.ModelProto, float_model: onnx.ModelProto, feeds) -> float:
    """Minimum over outputs of lowp's engine against ONNX Runtime float, energies summed."""
    ref = ort.InferenceSession(float_model.SerializeToString(),
                               providers=["CPUExecutionProvider"])
    names = [o.name for o in ref.get_outputs()]
    session = Session(model)
    energy = {n: [0.0, 0.0] for n in names}
    for feed in feeds:
        got = session.run(feed)
        for name, r in zip(names, ref.run(None, feed), strict=True):
            energy[name][0] += float(np.sum(r.astype(np.float64) ** 2))
            energy[name][1] += float(np.sum((r.astype(np.float64) - got[name]) ** 2))
    return min(sqnr_of_energies(s, n) for s, n in energy.values())


def _chain(path, outlier_layer: int = 2) -> tuple[str, dict[str, np.ndarray]]:
    """x -> MatMul -> MatMul -> MatMul -> y, where one weight has an outlier row (one large
    element in every output channel, so per-channel int8 flushes the rest of the column)
    that makes that layer the one to keep float."""
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.3, (16, 16)).astype(np.float32) for _ in range(3)]
    weights[outlier_layer][0, :] = 40.0
    if outlier_layer:                    # the outlier row meets a small input channel
        weights[outlier_layer - 1][:, 0] *= 0.01
    names = ["x", "h1", "h2", "y"]
    nodes = [helper.make_node("MatMul", [names[i], f"w{i}"], [names[i + 1]], name=f"mm{i}")
             for i in range(3)]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])],
        [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    x = rng.normal(0, 1, (64, 16)).astype(np.float32)
    if not outlier_layer:
        x[:, 0] *= 0.01
    return str(path), {"x": x}


@pytest.fixture(scope="module")
def demo():
    return demo_model_path(), load_demo_calibration()


def test_an_achievable_budget_is_met_as_measured_again(demo):
    path, data = demo
    plain = quantize(path, data)
    result = quantize(path, data, lowp.Config(accuracy_budget=40.0))
    fb = result.fallback
    assert fb is not None and fb.met and fb.steps
    assert fb.initial.min_sqnr_db < 40.0 <= fb.final.min_sqnr_db
    feeds = evaluation_feeds(result.feeds, 32)
    assert _sqnr(result.model, result.float_model, feeds) == pytest.approx(
        fb.final.min_sqnr_db, abs=1e-6)
    assert _sqnr(plain.model, plain.float_model, feeds) < 40.0
    wide = {qp.qtype.bits for qp in result.plan.activations.values()}
    assert 16 in wide or fb.float_nodes           # something was actually moved


def test_a_budget_already_met_moves_nothing(demo):
    path, data = demo
    plain = lowp.quantize_model(path, data)
    result = quantize(path, data, lowp.Config(accuracy_budget=20.0))
    assert result.fallback is not None and result.fallback.met and not result.fallback.steps
    assert result.model.SerializeToString() == plain.SerializeToString()
    assert any(c.gain_db is not None for c in result.fallback.layers)   # still measured


def test_greedy_order_follows_measured_sensitivity(tmp_path):
    path, data = _chain(tmp_path / "chain.onnx")
    result = quantize(path, data, lowp.Config(accuracy_budget=60.0, fallback_samples=64))
    fb = result.fallback
    assert fb is not None
    single = [c for c in fb.layers if not c.is_group and c.gain_db is not None]
    assert [c.node for c in single][0] == "mm2"          # the layer with the outlier row
    gains = [c.gain_db for c in fb.layers if c.gain_db is not None]
    assert gains == sorted(gains, reverse=True)
    order = [c.node for c in fb.layers if c.gain_db is not None]
    first_phase = []
    for step in fb.steps:
        if step.node in first_phase:
            break                                        # phase 2 starts again from the top
        first_phase.append(step.node)
    positions = [order.index(n) for n in first_phase]
    assert positions == sorted(positions) and positions[0] == 0
    assert fb.met and fb.final.min_sqnr_db >= 60.0


def test_an_impossible_budget_names_the_blocking_layers_and_writes_a_valid_model(demo):
    path, data = demo
    with pytest.warns(BudgetNotMetWarning, match="accuracy budget not met"):
        result = quantize(path, data, lowp.Config(accuracy_budget=150.0,
                                                  fallback_candidates=1))
    fb = result.fallback
    assert fb is not None and not fb.met
    assert fb.blockers and fb.unmeasured_quantized > 0
    quantized = set(result.annotation.nodes)
    assert {b.node for b in fb.blockers} <= quantized
    assert fb.blockers[0].node in fb.warning()
    onnx.checker.check_model(result.model, full_check=True)
    sess = ort.InferenceSession(result.model.SerializeToString(),
                                providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": data["input"][:8]})[0]
    assert out.shape == (8, 10) and np.all(np.isfinite(out))
    record = fb.to_dict()
    assert record["met"] is False and record["blockers"]


def test_a_metric_sets_the_goal(demo):
    path, data = demo
    seen = []

    def top1(float_outputs, quantized_outputs):
        seen.append({k: v.shape for k, v in float_outputs.items()})
        ref = float_outputs["logits"].argmax(-1)
        return float(np.mean(quantized_outputs["logits"].argmax(-1) == ref))

    result = quantize(path, data, lowp.Config(metric=top1, metric_tolerance=0.0,
                                              fallback_samples=64))
    fb = result.fallback
    assert fb is not None and fb.metric_reference == 1.0
    assert seen[0] == {"logits": (64, 10)}               # outputs of all feeds, stacked
    assert fb.met and fb.final.metric == 1.0
    assert "top1" in fb.goal()


def test_budget_and_tolerance_are_checked():
    assert parse_budget("30dB") == 30.0
    assert parse_budget(" 32.5 dB") == 32.5
    for bad in ("30", "abc", "0dB", "-3dB", "inf dB", "30 db"):
        with pytest.raises(QuantizationError, match="--accuracy-budget"):
            parse_budget(bad)
    assert parse_tolerance("0.01") == 0.01
    for bad in ("-1", "abc", "nan"):
        with pytest.raises(QuantizationError, match="--tolerance"):
            parse_tolerance(bad)
    with pytest.raises(QuantizationError, match="go together"):
        lowp.Config(metric=lambda a, b: 0.0)
    with pytest.raises(QuantizationError, match="finite"):
        lowp.Config(accuracy_budget=float("nan"))
    with pytest.raises(QuantizationError, match="static"):
        lowp.Config(mode=lowp.QuantMode.DYNAMIC, accuracy_budget=30.0)


def test_load_metric(tmp_path):
    file = tmp_path / "scores.py"
    file.write_text("def agree(f, q):\n    return 1.0\n")
    assert load_metric(f"{file}:agree")({}, {}) == 1.0
    assert load_metric("math:fsum") is __import__("math").fsum
    for bad, msg in ((f"{file}:nope", "no function 'nope'"), ("nope_module_x:f", "cannot import"),
                     ("agree", "module:function"), (f"{tmp_path}/x.py:f", "does not exist")):
        with pytest.raises(QuantizationError, match=msg):
            load_metric(bad)


def test_a_failing_metric_is_named(demo):
    path, data = demo

    def broken(f, q):
        raise KeyError("logitz")

    with warnings.catch_warnings(), pytest.raises(lowp.DataError, match="metric broken failed"):
        quantize(path, data, lowp.Config(metric=broken, metric_tolerance=0.0))


def _conv_with_bias(path, bias: float) -> tuple[str, dict[str, np.ndarray]]:
    """One Conv whose int32 bias fits at 8 bits and not at 16 (s_x * s_w shrinks ~2^16)."""
    rng = np.random.default_rng(1)
    w = rng.uniform(-1e-3, 1e-3, (4, 1, 3, 3)).astype(np.float32)
    b = np.full(4, bias, np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 4, 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path), {"x": rng.uniform(-1, 1, (16, 1, 6, 6)).astype(np.float32)}


def test_a_bias_that_would_saturate_at_16_bits_gets_a_coarser_weight_scale(tmp_path):
    # at 16 bits s_x * s_w is so small that this bias would leave int32; choose raises the
    # weight scale of those channels instead (passes.choose), so the layer can move to 16
    # bits rather than to float (saturated_bias stays the fallback's guard)
    from lowp.feeds import as_feeds
    from lowp.inputs import model_inputs
    from lowp.passes.sensitivity import Evaluator, Precision, saturated_bias

    path, data = _conv_with_bias(tmp_path / "conv.onnx", 0.5)
    base = quantize(path, data)
    inputs = model_inputs(base.float_model)
    feeds = as_feeds(data, inputs, 16)
    ev = Evaluator(base.float_model, base.table, evaluation_feeds(feeds, 16), feeds, inputs,
                   lowp.Config())
    assert not saturated_bias(ev.build({}), "conv")
    wide = ev.build({"conv": Precision.INT16})
    assert not saturated_bias(wide, "conv")
    assert ev.measure(wide).min_sqnr_db > ev.measure(ev.build({})).min_sqnr_db
