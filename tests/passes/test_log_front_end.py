"""The log-magnitude front end (passes.log_front_end) and its float candidate in the measured
method choice (passes.method_choice.measure_float_layers)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lowp.config import CalibMethod, Config
from lowp.passes.log_front_end import log_front_end
from lowp.passes.method_choice import (
    DOMINANT_GAIN_DB,
    LOG_FRONT_END,
    FloatCandidate,
    MethodCandidate,
    MethodChoice,
    candidate_config,
)
from lowp.pipeline import quantize


def _octaves(head: bool = True, seed: int = 0) -> onnx.ModelProto:
    """A two-octave filter bank and its log power, as a constant-Q transform computes it:
    `band0` filters x, `low` low-passes it and `band1` filters that (a cascade), then
    log(|bands|^2 + 1e-6) -> `head`. Every front-end layer rounds on the loudest sample's
    grid."""
    rng = np.random.default_rng(seed)
    mats = {"l": rng.normal(0, 0.2, (64, 64)), "b0": rng.normal(0, 0.2, (64, 16)),
            "b1": rng.normal(0, 0.2, (64, 16)), "w2": rng.normal(0, 0.3, (32, 8))}
    nodes = [helper.make_node("MatMul", ["x", "l"], ["a"], name="low"),
             helper.make_node("MatMul", ["x", "b0"], ["c0"], name="band0"),
             helper.make_node("MatMul", ["a", "b1"], ["c1"], name="band1"),
             helper.make_node("Concat", ["c0", "c1"], ["c"], name="bands", axis=1),
             helper.make_node("Mul", ["c", "c"], ["p"], name="power"),
             helper.make_node("Add", ["p", "eps"], ["q"], name="floor"),
             helper.make_node("Log", ["q"], ["lg"], name="log")]
    out = helper.make_tensor_value_info("lg", TensorProto.FLOAT, ["n", 32])
    if head:
        nodes.append(helper.make_node("MatMul", ["lg", "w2"], ["y"], name="head"))
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])], [out],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in mats.items()]
        + [numpy_helper.from_array(np.array(1e-6, np.float32), "eps")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _loud(samples: int = 32) -> dict[str, np.ndarray]:
    """Signals whose loudness spans four decades from sample to sample."""
    rng = np.random.default_rng(3)
    loudness = 10.0 ** rng.uniform(-3, 1, (samples, 1))
    return {"x": (rng.normal(0, 1, (samples, 64)) * loudness).astype(np.float32)}


def _graph(nodes: list[onnx.NodeProto], consts: tuple[str, ...] = ()) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.ones((4, 4), np.float32), c) for c in consts]
    return helper.make_model(helper.make_graph(nodes, "g", [], [], inits))


def test_the_front_end_is_every_matrix_product_a_log_reads_through_magnitude_arithmetic():
    assert log_front_end(_octaves()) == ("low", "band0", "band1")


def test_the_walk_stops_at_a_trained_nonlinearity():
    """A written-out LogSoftmax after a network: Softmax (and Relu) end the front end."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w"], ["z"], name="fc2"),
             helper.make_node("Softmax", ["z"], ["s"], name="softmax"),
             helper.make_node("Log", ["s"], ["y"], name="log")]
    assert log_front_end(_graph(nodes, ("w",))) == ()
    nodes[3] = helper.make_node("Abs", ["z"], ["s"], name="abs")
    assert log_front_end(_graph(nodes, ("w",))) == ("fc2",)


def test_no_log_no_front_end():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
             helper.make_node("Sqrt", ["h"], ["y"], name="sqrt")]
    assert log_front_end(_graph(nodes, ("w",))) == ()


def test_a_layer_after_the_log_is_not_front_end():
    assert "head" not in log_front_end(_octaves())


def test_the_front_end_is_left_in_float_when_no_single_layer_dominates():
    """Fails without the front-end candidate: no one of its three layers gains
    DOMINANT_GAIN_DB in float, so every layer stayed quantized (under 5 dB)."""
    model, calib = _octaves(), _loud()
    result = quantize(model, calib, Config(method=CalibMethod.MEASURED))
    choice = result.method_choice
    assert choice is not None and max(c.sqnr_db or 0.0 for c in choice.candidates) < 10
    singles = [f for f in choice.float_layers if not f.twins]
    assert singles and all((f.gain_db or 0.0) < DOMINANT_GAIN_DB for f in singles)
    front = [f for f in choice.float_layers if f.why == LOG_FRONT_END]
    assert len(front) == 1 and front[0].nodes == ("low", "band0", "band1")
    assert front[0].gain_db is not None and front[0].gain_db >= DOMINANT_GAIN_DB + 10
    assert len(front[0].folds_db) == 2
    assert choice.kept_float == ["low", "band0", "band1"]
    assert "head" in result.annotation.nodes
    fixed = quantize(model, calib, dataclasses.replace(
        candidate_config(Config(), choice.chosen), exclude_nodes=("low", "band0", "band1")))
    assert result.model.SerializeToString() == fixed.model.SerializeToString()
    text = choice.format()
    assert "low + band0 + band1 (MatMul, log front end) in float" in text
    assert choice.flags().endswith("--exclude low band0 band1")
    assert choice.to_dict()["float_layers"][-1]["why"] == LOG_FRONT_END


def test_a_model_that_is_only_a_front_end_is_not_measured_wholly_in_float():
    """Without `head` every matrix product is front end: in float nothing would be left
    quantized, so the group is no candidate (the single layers still are)."""
    choice = quantize(_octaves(head=False), _loud(),
                      Config(method=CalibMethod.MEASURED)).method_choice
    assert choice is not None and choice.float_layers
    assert all(f.why != LOG_FRONT_END for f in choice.float_layers)


def test_only_the_kept_candidate_is_marked_when_candidates_overlap():
    """A single layer that is also part of the kept front end is not marked kept."""
    choice = MethodChoice("minmax", "r", [MethodCandidate("minmax", 3.0, "", (3.0,))],
                          float_layers=[FloatCandidate("a", "Conv", 4.0, (4.0,)),
                                        FloatCandidate("a", "Conv", 20.0, (20.0,),
                                                       twins=("b",), why=LOG_FRONT_END)],
                          kept_float=["a", "b"])
    marked = [line for line in choice.format().splitlines() if "< left in float" in line]
    assert marked == ["  a + b (Conv, log front end) in float: +20.00 dB (+20.00) "
                      "< left in float"]
