"""CalibMethod.MEASURED (passes.method_choice): the held-out split, the choice, the layer
left in float when its rounding dominates, the record, and that a fixed method gives the
model it always gave."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.calib import CalibrationTable
from lowp.cli import EXIT_OK, main
from lowp.config import CalibMethod, Config
from lowp.errors import DataError, LowpError
from lowp.feeds import as_feeds
from lowp.inputs import InputSpec, model_inputs
from lowp.passes import method_choice
from lowp.passes.calibrate import calibrate
from lowp.passes.fallback import BudgetNotMetWarning
from lowp.passes.method_choice import (
    CANDIDATES,
    DOMINANT_BELOW_DB,
    DOMINANT_GAIN_DB,
    FORMAT,
    FloatCandidate,
    MethodCandidate,
    MethodChoice,
    RangeRule,
    candidate_config,
    candidate_names,
    folds,
    measure_float_layers,
    pick,
    pick_float,
    wants_float_layers,
    weight_twins,
)
from lowp.pipeline import quantize

MEASURED = Config(method=CalibMethod.MEASURED)
# percentile at 99% clips the Cauchy tail of `_outlier_data` (at 99.99% it keeps the tail,
# as mse does: their own criteria do not see that Tanh saturates it)
CLIPPING = Config(method=CalibMethod.MEASURED, percentile=99.0)


def _matmul_relu(seed: int = 0) -> onnx.ModelProto:
    """x (n, 64) @ w -> Relu -> @ w2: every activation is quantized."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (64, 32)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (32, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
         helper.make_node("Relu", ["h"], ["r"], name="relu"),
         helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _tanh_matmul(seed: int = 0) -> onnx.ModelProto:
    """x (n, 64) @ I -> Tanh -> @ w: every activation quantized, and a saturating Tanh, so
    that a huge x hardly moves y."""
    w = np.random.default_rng(seed).normal(0, 0.3, (64, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "eye"], ["h"], name="mm0"),
         helper.make_node("Tanh", ["h"], ["t"], name="tanh"),
         helper.make_node("MatMul", ["t", "w"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])],
        [numpy_helper.from_array(np.eye(64, dtype=np.float32), "eye"),
         numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _power_log(seed: int = 0) -> onnx.ModelProto:
    """x (n, 32) @ w (non-negative) -> Clip(1e-3) -> Log -> @ w2, a mel filter bank on a
    power spectrum and its log: the rounded output of `power` goes into the Log."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0, 1, (32, 16)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["p"], name="power"),
         helper.make_node("Clip", ["p", "eps"], ["c"], name="floor"),
         helper.make_node("Log", ["c"], ["l"], name="log"),
         helper.make_node("MatMul", ["l", "w2"], ["y"], name="head")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w2, "w2"),
         numpy_helper.from_array(np.array(1e-3, np.float32), "eps")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _siamese(seed: int = 0) -> onnx.ModelProto:
    """Two inputs through one embedding (`embed` and `embed_1` read the same weight `w`),
    their difference -> a head: the rounding of the two close embeddings is what the
    difference keeps, so the pair dominates the output error and neither twin alone does."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.3, (32, 16)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (16, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x1", "w"], ["a"], name="embed"),
         helper.make_node("MatMul", ["x2", "w"], ["b"], name="embed_1"),
         helper.make_node("Sub", ["a", "b"], ["d"], name="diff"),
         helper.make_node("MatMul", ["d", "w2"], ["y"], name="head")], "g",
        [helper.make_tensor_value_info("x1", TensorProto.FLOAT, ["n", 32]),
         helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["n", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _pairs(samples: int = 32, spread: float = 0.1) -> dict[str, np.ndarray]:
    """Pairs of close inputs: x2 is x1 moved by `spread`."""
    rng = np.random.default_rng(4)
    x1 = rng.normal(0, 1, (samples, 32)).astype(np.float32)
    return {"x1": x1, "x2": (x1 + rng.normal(0, spread, x1.shape)).astype(np.float32)}


def _loudness_data(samples: int = 32) -> dict[str, np.ndarray]:
    """Spectra whose loudness spans six decades from sample to sample: on the loudest
    sample's grid the quiet samples' powers round to zero, and their logs to log(1e-3)."""
    rng = np.random.default_rng(3)
    loudness = 10.0 ** rng.uniform(-3, 3, (samples, 1))
    return {"x": (np.abs(rng.normal(0, 1, (samples, 32))) * loudness).astype(np.float32)}


def _outlier_data(samples: int = 32) -> dict[str, np.ndarray]:
    """Cauchy inputs: a long tail of rare huge values makes the minmax range of x far too
    wide for the bulk (thousands for a bulk within a few units); a range that clips the tail
    costs almost nothing, since Tanh saturates it anyway."""
    return {"x": np.random.default_rng(1).standard_cauchy((samples, 64)).astype(np.float32)}


def _uniform_data(samples: int = 32) -> dict[str, np.ndarray]:
    """Uniform inputs: no tail to clip; any clipping only adds error."""
    return {"x": np.random.default_rng(2).uniform(-1, 1, (samples, 64)).astype(np.float32)}


def _sqnr(choice: MethodChoice) -> dict[str, float]:
    return {c.method: c.sqnr_db for c in choice.candidates if c.sqnr_db is not None}


def test_a_clipping_method_is_chosen_when_a_long_tail_spoils_minmax():
    result = quantize(_tanh_matmul(), _outlier_data(), CLIPPING)
    choice = result.method_choice
    assert choice is not None
    sqnr = _sqnr(choice)
    assert [c.method for c in choice.candidates] == list(CANDIDATES)
    assert choice.chosen == "percentile"
    assert sqnr["percentile"] > max(sqnr["minmax"], sqnr["mse"],
                                    sqnr["percentile_99.999"]) + 10
    assert choice.samples == 32 and "2-fold" in choice.data and not choice.note
    assert all(len(c.folds_db) == 2 for c in choice.candidates)


def test_minmax_is_kept_on_uniform_data():
    choice = quantize(_matmul_relu(), _uniform_data(), MEASURED).method_choice
    assert choice is not None
    sqnr = _sqnr(choice)
    assert choice.chosen == "minmax" and sqnr["minmax"] == max(sqnr.values())


@pytest.mark.parametrize("data", [_outlier_data, _uniform_data])
def test_the_kept_model_is_the_fixed_methods_model_on_all_data(data):
    """The choice only names a method: the model is exactly `Config(method=<chosen>)`'s,
    calibrated on all the data (the held-out samples included)."""
    model, calib = _tanh_matmul(), data()
    measured = quantize(model, calib, CLIPPING)
    assert measured.method_choice is not None
    chosen = measured.method_choice.chosen
    fixed = quantize(model, calib, candidate_config(CLIPPING, chosen))
    assert measured.model.SerializeToString() == fixed.model.SerializeToString()
    assert measured.table.settings["method"] == CANDIDATES[chosen].method.value


@pytest.mark.parametrize("method", [m for m in CalibMethod if m is not CalibMethod.MEASURED])
def test_a_fixed_method_measures_nothing_and_uses_its_own_ranges(method):
    """An explicit method is today's path: no record, and the ranges are the ones that
    `calibrate` chooses with that method on all the data."""
    model, calib = _matmul_relu(), _outlier_data()
    result = quantize(model, calib, Config(method=method))
    assert result.method_choice is None
    config = Config(method=method)
    table = calibrate(result.float_model, list(result.table.ranges), as_feeds(
        calib, model_inputs(result.float_model), config.batch_size),
        model_inputs(result.float_model), config, progress=False)
    assert table.ranges == result.table.ranges


def test_the_choice_is_saved_and_formatted(tmp_path):
    choice = quantize(_tanh_matmul(), _outlier_data(), CLIPPING).method_choice
    assert choice is not None
    path = tmp_path / "m.method.json"
    choice.save(path)
    d = json.loads(path.read_text())
    assert d["format"] == FORMAT and d["version"] == 1 and d["chosen"] == choice.chosen
    assert d["flags"] == f"--method {choice.chosen}"
    assert [c["method"] for c in d["candidates"]] == list(CANDIDATES)
    assert all(isinstance(c["sqnr_db"], float) and len(c["folds_db"]) == 2
               for c in d["candidates"])
    text = choice.format()
    assert f"{choice.chosen} chosen" in text and "--method" in text
    assert sum(line.endswith(" <") for line in text.splitlines()) == 1


def test_a_layer_whose_rounding_dominates_the_output_error_is_left_in_float(tmp_path):
    """Fails without the float step: every method keeps `power` quantized (2.4 dB)."""
    model, calib = _power_log(), _loudness_data()
    result = quantize(model, calib, MEASURED)
    choice = result.method_choice
    assert choice is not None and choice.kept_float == ["power"]
    assert max(_sqnr(choice).values()) < 10
    gains = {f.node: f.gain_db for f in choice.float_layers}
    assert gains["power"] is not None and gains["power"] >= DOMINANT_GAIN_DB + 10
    assert "power" not in result.annotation.nodes and "head" in result.annotation.nodes
    fixed = quantize(model, calib, dataclasses.replace(candidate_config(Config(), choice.chosen),
                                                       exclude_nodes=("power",)))
    assert result.model.SerializeToString() == fixed.model.SerializeToString()
    assert choice.flags() == f"{CANDIDATES[choice.chosen].flags()} --exclude power"
    assert "power (MatMul) in float" in choice.format() and "< left in float" in choice.format()
    choice.save(tmp_path / "m.method.json")
    d = json.loads((tmp_path / "m.method.json").read_text())
    assert d["kept_float"] == ["power"] and d["flags"].endswith("--exclude power")
    assert {f["node"] for f in d["float_layers"]} >= {"power"}


def test_with_an_accuracy_budget_its_fallback_decides_what_leaves_int8():
    """The budget's fallback tries 16 bits before float: the float step stays out of it."""
    with pytest.warns(BudgetNotMetWarning):
        choice = quantize(_power_log(), _loudness_data(), dataclasses.replace(
            MEASURED, accuracy_budget=60.0, fallback_candidates=1)).method_choice
    assert choice is not None and choice.float_layers == [] and choice.kept_float == []


def test_no_layer_is_measured_in_float_on_a_good_model():
    choice = quantize(_matmul_relu(), _uniform_data(), MEASURED).method_choice
    assert choice is not None and min(_sqnr(choice).values()) > 20
    assert choice.float_layers == [] and choice.kept_float == []


def test_the_candidates_table():
    """Four range rules: the second percentile level keeps ONNX Runtime's default share and
    comes last (ties keep the rules measured before it); a level equal to Config.percentile
    is measured once; each rule's config and CLI flags."""
    assert list(CANDIDATES) == ["minmax", "percentile", "mse", "percentile_99.999"]
    assert candidate_names(Config(percentile=99.999)) == ["minmax", "percentile", "mse"]
    assert candidate_names(Config(percentile=99.0)) == list(CANDIDATES)
    second = candidate_config(Config(percentile=99.0), "percentile_99.999")
    assert (second.method, second.percentile) == (CalibMethod.PERCENTILE, 99.999)
    first = candidate_config(Config(percentile=99.0), "percentile")
    assert (first.method, first.percentile) == (CalibMethod.PERCENTILE, 99.0)
    assert RangeRule(CalibMethod.PERCENTILE, 99.999).flags() == \
        "--method percentile --percentile 99.999"
    assert CANDIDATES["mse"].flags() == "--method mse"
    choice = MethodChoice("percentile_99.999", "r", [MethodCandidate("percentile_99.999", 9.0)])
    assert choice.flags() == "--method percentile --percentile 99.999"


def test_the_second_percentile_level_has_its_own_ranges_and_is_measured_once():
    """At Config.percentile 99.0 the 99.999 level is a candidate of its own (it keeps the
    Cauchy tail that 99.0 clips); at Config.percentile 99.999 the two levels are one rule,
    and the kept model is still the chosen rule's fixed model (with the layer the float step
    keeps)."""
    model, calib = _tanh_matmul(), _outlier_data()
    choice = quantize(model, calib, CLIPPING).method_choice
    assert choice is not None
    sqnr = _sqnr(choice)
    assert set(sqnr) == set(CANDIDATES)
    assert sqnr["percentile_99.999"] < sqnr["percentile"] - 10
    config = dataclasses.replace(CLIPPING, percentile=99.999)
    again = quantize(model, calib, config)
    assert again.method_choice is not None
    assert [c.method for c in again.method_choice.candidates] == ["minmax", "percentile", "mse"]
    fixed = quantize(model, calib, dataclasses.replace(
        candidate_config(config, again.method_choice.chosen),
        exclude_nodes=tuple(again.method_choice.kept_float)))
    assert again.model.SerializeToString() == fixed.model.SerializeToString()


def test_nodes_that_share_their_weights_are_twins():
    """Conv, Gemm and MatMul nodes reading one weight initializer are one layer; a weight
    read once, a MatMul of two activations and a shared non-weight input are not."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 1, shape).astype(np.float32), name)
             for name, shape in [("k", (4, 3, 3, 3)), ("g", (8, 12)), ("m", (12, 8)),
                                 ("once", (8, 8))]]
    nodes = [helper.make_node("Conv", ["x", "k"], ["c0"], name="conv_left"),
             helper.make_node("Conv", ["y", "k"], ["c1"], name="conv_right"),
             helper.make_node("Gemm", ["f0", "g"], ["g0"], name="gemm_0"),
             helper.make_node("Gemm", ["f1", "g"], ["g1"], name="gemm_1"),
             helper.make_node("Gemm", ["f2", "g"], ["g2"], name="gemm_2"),
             helper.make_node("MatMul", ["g0", "m"], ["m0"], name="matmul_a"),
             helper.make_node("MatMul", ["m0", "once"], ["m1"], name="matmul_once"),
             helper.make_node("MatMul", ["m", "m1"], ["m2"], name="m_as_activation"),
             helper.make_node("MatMul", ["g1", "g2"], ["m3"], name="two_activations")]
    model = helper.make_model(helper.make_graph(nodes, "g", [], [], inits))
    twins = weight_twins(model)
    assert twins["conv_left"] == twins["conv_right"] == ("conv_left", "conv_right")
    assert twins["gemm_1"] == ("gemm_0", "gemm_1", "gemm_2")
    assert set(twins) == {"conv_left", "conv_right", "gemm_0", "gemm_1", "gemm_2"}


def test_twins_are_measured_and_left_in_float_together(tmp_path):
    """Fails when each node is its own layer: either twin alone in float leaves the other's
    rounding in the difference; the pair is one layer, built, reported and kept as one."""
    model, calib = _siamese(), _pairs()
    result = quantize(model, calib, MEASURED)
    choice = result.method_choice
    assert choice is not None and choice.kept_float == ["embed", "embed_1"]
    pair = next(f for f in choice.float_layers if f.node == "embed")
    assert pair.twins == ("embed_1",) and pair.nodes == ("embed", "embed_1")
    assert pair.gain_db is not None and pair.gain_db >= DOMINANT_GAIN_DB
    assert not any(f.node == "embed_1" for f in choice.float_layers)    # one layer, once
    assert {"embed", "embed_1"}.isdisjoint(result.annotation.nodes)
    fixed = quantize(model, calib, dataclasses.replace(
        candidate_config(Config(), choice.chosen), exclude_nodes=("embed", "embed_1")))
    assert result.model.SerializeToString() == fixed.model.SerializeToString()
    assert choice.flags().endswith("--exclude embed embed_1")
    lines = [line for line in choice.format().splitlines() if "in float:" in line]
    assert sum("embed" in line for line in lines) == 1
    assert "embed + embed_1 (MatMul, shared weights) in float:" in choice.format()
    choice.save(tmp_path / "m.method.json")
    d = json.loads((tmp_path / "m.method.json").read_text())
    assert d["kept_float"] == ["embed", "embed_1"]
    assert [(f["node"], f["twins"]) for f in d["float_layers"] if f["twins"]] == \
        [("embed", ["embed_1"])]


def test_one_twin_alone_gains_less_than_the_pair():
    """What the grouping is for, measured: `embed` alone in float against both twins."""
    from lowp.passes.sensitivity import Evaluator, Precision
    model, calib = _siamese(), _pairs()
    config = candidate_config(Config(), "minmax")
    result = quantize(model, {k: v[:16] for k, v in calib.items()}, config)
    held = as_feeds({k: v[16:] for k, v in calib.items()}, model_inputs(model), 8)
    fit = as_feeds({k: v[:16] for k, v in calib.items()}, model_inputs(model), 8)
    ev = Evaluator(result.float_model, result.table, list(held), fit, model_inputs(model),
                   config)
    base = ev.measure(ev.build({})).min_sqnr_db
    one = ev.measure(ev.build({"embed": Precision.FLOAT})).min_sqnr_db - base
    both = ev.measure(ev.build({"embed": Precision.FLOAT,
                                "embed_1": Precision.FLOAT})).min_sqnr_db - base
    assert both >= DOMINANT_GAIN_DB and both > one + DOMINANT_GAIN_DB


def test_the_float_step_stays_out_of_a_model_above_20_db_even_with_twins(monkeypatch):
    """The rule measured on the corpus (docs/accuracy.md, "Layers that share their weights,
    and the float step above 20 dB"): above DOMINANT_BELOW_DB nothing is measured, twins or
    not, and the model is the chosen method's. Fails when the step runs above 20 dB: on
    these independent pairs the twins in float gain 4 dB, and lifting the bound keeps them."""
    model, calib = _siamese(), _pairs(spread=10.0)
    result = quantize(model, calib, MEASURED)
    choice = result.method_choice
    assert choice is not None
    assert _sqnr(choice)[choice.chosen] >= DOMINANT_BELOW_DB
    assert choice.float_layers == [] and choice.kept_float == []
    fixed = quantize(model, calib, candidate_config(Config(), choice.chosen))
    assert result.model.SerializeToString() == fixed.model.SerializeToString()
    monkeypatch.setattr(method_choice, "DOMINANT_BELOW_DB", np.inf)
    lifted = quantize(model, calib, MEASURED).method_choice
    assert lifted is not None and lifted.kept_float == ["embed", "embed_1"]


def test_cli_names_the_twins_as_one_layer(tmp_path, capsys):
    model_path, calib_path = tmp_path / "m.onnx", tmp_path / "c.npz"
    onnx.save(_siamese(), str(model_path))
    np.savez(calib_path, **_pairs())
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(model_path), "--calib", str(calib_path), "-o", str(out),
                 "--no-report", "--quiet"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "embed + embed_1 (MatMul, shared weights) in float:" in text
    assert "< left in float" in text and "--exclude embed embed_1" in text
    d = json.loads(out.with_suffix(".method.json").read_text())
    assert d["kept_float"] == ["embed", "embed_1"]


class _FoldEvaluator:
    """A stand-in for one fold's passes.sensitivity.Evaluator: a built model is the set of
    nodes left in float, its SQNR the base plus those nodes' gains; every measurement is
    counted."""

    def __init__(self, base_db: float, gains: dict[str, float], noise_db: dict[str, float]):
        self.base_db, self.gains, self.noise_db = base_db, gains, noise_db
        self.float_model = helper.make_model(helper.make_graph(
            [helper.make_node("Relu", ["x"], ["x"], name=n) for n in noise_db], "g", [], []))
        self.measured: list[frozenset[str]] = []

    def build(self, levels: dict) -> frozenset[str]:
        return frozenset(levels)

    def measure(self, built: frozenset[str]):
        self.measured.append(built)
        return type("Measured", (), {"min_sqnr_db": self.base_db + sum(
            self.gains[n] for n in built)})()

    def local_errors(self, built: frozenset[str]) -> dict[str, float]:
        return dict(self.noise_db)


def test_the_second_fold_measures_only_a_layer_that_gains_on_the_first():
    """Fails when the float step measures every layer on both folds: `b` gains 1 dB on the
    first fold and is never built on the second; `a` gains 5 dB and is."""
    noise = {"a": 10.0, "b": 12.0, "c": 30.0}            # the noisiest two: a, b
    first = _FoldEvaluator(8.0, {"a": 5.0, "b": 1.0, "c": 0.0}, noise)
    second = _FoldEvaluator(9.0, {"a": 4.0, "b": 9.0, "c": 0.0}, noise)
    layers = measure_float_layers([first, second], k=2)
    assert [(f.node, f.folds_db) for f in layers] == [("a", (5.0, 4.0)), ("b", (1.0,))]
    assert [f.gain_db for f in layers] == [4.5, 1.0]
    assert first.measured == [frozenset(), frozenset({"a"}), frozenset({"b"})]
    assert second.measured == [frozenset(), frozenset({"a"})]
    assert pick_float(layers) == ["a"]


def test_twins_are_ranked_by_their_summed_noise_and_built_together():
    """Each twin adds less noise than `a`, the pair more: with one layer to measure, the
    pair is it, built in float as one on both folds, and kept as one."""
    noise = {"a": 11.0, "t0": 13.0, "t1": 13.0}       # 0.079 against 0.050 + 0.050
    folds_ = [_FoldEvaluator(20.0, {"a": 0.0, "t0": 2.0, "t1": 2.0}, noise) for _ in range(2)]
    shared = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    for ev in folds_:
        ev.float_model = helper.make_model(helper.make_graph(
            [helper.make_node("MatMul", [x, "w"], [f"y{x}"], name=n)
             for n, x in [("t0", "x0"), ("t1", "x1")]]
            + [helper.make_node("Relu", ["x"], ["r"], name="a")], "g", [], [], [shared]))
    layers = measure_float_layers(folds_, k=1)
    assert [(f.nodes, f.op_type, f.folds_db) for f in layers] == [
        (("t0", "t1"), "MatMul", (4.0, 4.0))]
    assert [ev.measured for ev in folds_] == [[frozenset(), frozenset({"t0", "t1"})]] * 2
    assert pick_float(layers) == ["t0", "t1"]


def test_nothing_is_measured_on_the_second_fold_when_no_layer_gains_on_the_first():
    noise = {"a": 10.0, "b": 12.0}
    first = _FoldEvaluator(8.0, {"a": 2.9, "b": -1.0}, noise)
    second = _FoldEvaluator(9.0, {"a": 30.0, "b": 30.0}, noise)
    layers = measure_float_layers([first, second], k=2)
    assert second.measured == []                # not even the fully quantized model
    assert len(first.measured) == 3 and pick_float(layers) == []


def test_float_rule():
    assert pick_float([FloatCandidate("a", "Conv", 2.9), FloatCandidate("b", "Conv", None)]) == []
    assert pick_float([FloatCandidate("a", "Conv", 3.0), FloatCandidate("b", "Conv", 3.0)]
                      ) == ["a"]                            # ties go to the earlier
    assert pick_float([FloatCandidate("a", "Conv", 4.0), FloatCandidate("b", "Gemm", 9.0)]
                      ) == ["b"]
    assert wants_float_layers([MethodCandidate("minmax", 19.9)], "minmax")
    assert not wants_float_layers([MethodCandidate("minmax", 20.0),
                                   MethodCandidate("mse", 5.0)], "minmax")


def test_pick_rule():
    assert pick([MethodCandidate("minmax", 20.0), MethodCandidate("mse", 20.0)])[0] == "minmax"
    assert pick([MethodCandidate("minmax", None, "boom"),
                 MethodCandidate("mse", 3.0)]) == ("mse", "the only candidate measured")
    assert pick([MethodCandidate("minmax", float("inf")), MethodCandidate("mse", 250.0)]
                )[0] == "minmax"                              # both capped at 200 dB
    with pytest.raises(LowpError, match="minmax: boom"):
        pick([MethodCandidate("minmax", None, "boom")])


def test_folds_cut_one_stacked_feed_into_samples():
    spec = [InputSpec("x", np.dtype(np.float32), (None, 64))]
    x = np.arange(16 * 64, dtype=np.float32).reshape(16, 64)
    feeds = as_feeds({"x": x}, spec, 16)
    assert feeds.num_feeds == 1
    cut = folds(feeds, 2)
    assert len(cut.pairs) == 2 and "2-fold" in cut.data and not cut.note
    held = [np.concatenate([f["x"] for f in h]) for _, h in cut.pairs]
    fit = [np.concatenate([f["x"] for f in f_]) for f_, _ in cut.pairs]
    np.testing.assert_array_equal(np.concatenate(held), x)     # every sample held out once
    for f, h in zip(fit, held, strict=True):
        assert len(f) == len(h) == 8 and not set(f[:, 0]) & set(h[:, 0])


def test_folds_say_when_nothing_can_be_held_out():
    spec = [InputSpec("x", np.dtype(np.float32), (16, 64))]          # the batch is fixed
    feeds = as_feeds({"x": np.zeros((16, 64), np.float32)}, spec, 16)
    cut = folds(feeds, 2)
    assert cut.pairs == [(feeds, feeds)] and "cannot be cut" in cut.note


def test_a_calibration_table_needs_a_fixed_method(tmp_path):
    model, calib = _matmul_relu(), _uniform_data()
    table = quantize(model, calib, Config(method=CalibMethod.PERCENTILE)).table
    given = quantize(model, calib, MEASURED, calib_table=table)
    assert given.method_choice is None                 # the table's ranges, nothing measured
    fixed = quantize(model, calib, Config(method=CalibMethod.PERCENTILE),
                     calib_table=CalibrationTable.from_dict(table.to_dict()))
    assert given.model.SerializeToString() == fixed.model.SerializeToString()
    with pytest.raises(DataError, match="needs a fixed method"):
        table.choose_ranges(CalibMethod.MEASURED)


def test_cli_writes_the_method_json(tmp_path):
    model_path, calib_path = tmp_path / "m.onnx", tmp_path / "c.npz"
    onnx.save(_tanh_matmul(), str(model_path))
    np.savez(calib_path, **_outlier_data())
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(model_path), "--calib", str(calib_path), "-o", str(out),
                 "--method", "measured", "--percentile", "99", "--no-report",
                 "--quiet"]) == EXIT_OK
    d = json.loads(out.with_suffix(".method.json").read_text())
    assert d["format"] == FORMAT and d["chosen"] == "percentile"
    out2 = tmp_path / "q2.onnx"
    assert main(["quantize", str(model_path), "--calib", str(calib_path), "-o", str(out2),
                 "--method", "minmax", "--no-report", "--quiet"]) == EXIT_OK
    assert not out2.with_suffix(".method.json").exists()
