"""The outputs the measured choices score: named by the user, or the float outputs but
recurrent state (passes.scored_outputs)."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.cli import EXIT_OK, main
from lowp.config import CalibMethod, Config, QuantMode
from lowp.errors import DataError, QuantizationError
from lowp.passes.scored_outputs import recurrent_state, scored_outputs
from lowp.passes.sensitivity import Measurement
from lowp.pipeline import quantize

CLIPPING = Config(method=CalibMethod.MEASURED, percentile=99.0)


def _v(name: str, shape: list[int | str], dtype: int = TensorProto.FLOAT
       ) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _io(inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
        initializers: list[onnx.TensorProto] | None = None) -> onnx.ModelProto:
    return helper.make_model(helper.make_graph([], "g", inputs, outputs, initializers or []))


def _recurrent(seed: int = 0) -> onnx.ModelProto:
    """A recurrent cell as VADs export it: the prediction `y` = Tanh(x @ I) @ w, and the
    state the caller feeds back, `stateN` = state + x @ I. x has a Cauchy tail: a range
    that clips it is nearly free for `y` (Tanh saturates the tail) and ruins `stateN`
    (linear in x), so the method that suits the prediction is not the one that suits the
    state."""
    w = np.random.default_rng(seed).normal(0, 0.3, (64, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "eye"], ["h"], name="mm0"),
         helper.make_node("Tanh", ["h"], ["t"], name="tanh"),
         helper.make_node("MatMul", ["t", "w"], ["y"], name="mm"),
         helper.make_node("Add", ["state", "h"], ["stateN"], name="accumulate")], "g",
        [_v("x", ["n", 64]), _v("state", ["n", 64])],
        [_v("y", ["n", 16]), _v("stateN", ["n", 64])],
        [numpy_helper.from_array(np.eye(64, dtype=np.float32), "eye"),
         numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _data(samples: int = 32) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).standard_cauchy((samples, 64)).astype(np.float32),
            "state": np.random.default_rng(5).normal(0, 1, (samples, 64)).astype(np.float32)}


@pytest.mark.parametrize(("fed", "returned"), [
    ("state", "stateN"), ("h", "hn"), ("h0", "hn"), ("c0", "cn"), ("in_cache0", "out_cache0"),
    ("cache_k", "new_cache_k"), ("past_key_values.0.key", "present.0.key"),
    ("state_in", "state_out"), ("prev_h", "next_h"), ("hidden_0", "hidden_n")])
def test_state_is_found_by_its_name_pair(fed, returned):
    model = _io([_v("x", [1, 4]), _v(fed, [1, 8])], [_v("y", [1, 2]), _v(returned, [1, 8])])
    assert recurrent_state(model) == {returned: fed}
    s = scored_outputs(model)
    assert s.scored == ("y",) and list(s.left_out) == [returned]
    assert fed in s.left_out[returned] and "recurrent state" in s.left_out[returned]


def test_a_state_input_frozen_to_a_constant_is_found_as_an_initializer():
    """The corpus (and users) freeze the state input of a streaming model to zeros."""
    zeros = numpy_helper.from_array(np.zeros((2, 1, 128), np.float32), "state")
    model = _io([_v("input", [1, 576])], [_v("output", [1, 1]), _v("stateN", [2, "b", 128])],
                [zeros])
    assert scored_outputs(model).scored == ("output",)


@pytest.mark.parametrize(("fed", "returned"), [
    (_v("h0", [1, 8]), _v("hn", [1, 9])),                      # another shape
    (_v("h0", [1, 8]), _v("hn", [1, 8, 1])),                   # another rank
    (_v("h0", [1, 8], TensorProto.DOUBLE), _v("hn", [1, 8])),  # another type
    (_v("input", [1, 8]), _v("output", [1, 8])),               # not a state name pair
    (_v("x", [1, 8]), _v("y", [1, 8]))])
def test_outputs_that_do_not_pair_with_an_input_are_scored(fed, returned):
    model = _io([fed], [_v("pred", [1, 2]), returned])
    assert recurrent_state(model) == {}
    assert scored_outputs(model).scored == ("pred", returned.name)


def test_when_every_output_looks_like_state_all_are_scored():
    """x -> xn (a normalization, say): nothing would be left to score."""
    model = _io([_v("x", [1, 8])], [_v("xn", [1, 8])])
    assert recurrent_state(model) == {"xn": "x"}
    s = scored_outputs(model)
    assert s.scored == ("xn",) and not s.left_out


def test_outputs_that_are_not_float_are_not_scored():
    model = _io([_v("x", [1, 4]), _v("mask", [1, 4], TensorProto.BOOL)],
                [_v("y", [1, 4]), _v("mask_out", [1, 4], TensorProto.BOOL)])
    s = scored_outputs(model)
    assert s.scored == ("y",) and not s.left_out


def test_named_outputs_are_scored_and_checked():
    model = _io([_v("x", [1, 4]), _v("state", [1, 8])],
                [_v("y", [1, 2]), _v("stateN", [1, 8]), _v("ids", [1], TensorProto.INT64)])
    s = scored_outputs(model, ["stateN", "y"])
    assert s.scored == ("stateN", "y") and s.named and not s.left_out
    assert scored_outputs(model, ["stateN"]).left_out == {"y": "not named"}
    with pytest.raises(DataError, match="'z'.*not an output.*y, stateN, ids"):
        scored_outputs(model, ["z"])
    with pytest.raises(DataError, match="'ids'.*not a float output.*INT64"):
        scored_outputs(model, ["ids"])
    with pytest.raises(QuantizationError, match="tuple of output names"):
        Config(score_outputs="y")  # type: ignore[arg-type]


def test_the_model_sqnr_is_the_minimum_over_the_scored_outputs():
    m = Measurement({"y": 30.0, "stateN": 3.0}, scored=("y",))
    assert m.min_sqnr_db == 30.0
    assert Measurement({"y": 30.0, "stateN": 3.0}).min_sqnr_db == 3.0
    assert Measurement({"y": 30.0}, scored=("gone",)).min_sqnr_db == 30.0
    assert Measurement({}).min_sqnr_db == math.inf


def test_the_choice_scores_the_prediction_and_not_the_state():
    """Fails when the state is scored: its error (a clipped tail, linear in the state) then
    decides, and the choice keeps minmax with the first MatMul in float, where the
    prediction wants percentile's clipping (21 dB on the folds against 1 dB)."""
    model, data = _recurrent(), _data()
    result = quantize(model, data, CLIPPING)
    choice = result.method_choice
    assert choice is not None and result.scored_outputs is not None
    assert choice.chosen == "percentile" and not choice.kept_float
    sqnr = {c.method: c.sqnr_db for c in choice.candidates}
    assert sqnr["percentile"] > sqnr["minmax"] + 10          # measured on y alone
    assert choice.scored_outputs == ["y"] and list(choice.outputs_left_out) == ["stateN"]
    assert "left out: stateN (recurrent state, fed back as 'state')" in choice.format()
    both = quantize(model, data, Config(method=CalibMethod.MEASURED, percentile=99.0,
                                        score_outputs=("y", "stateN"))).method_choice
    assert both is not None and both.chosen == "minmax" and both.kept_float == ["mm0"]
    assert both.scored_outputs == ["y", "stateN"] and not both.outputs_left_out
    assert "scored on" not in both.format()


def test_without_state_the_choice_is_the_one_over_every_output():
    """A model with no state output scores all its float outputs, as before."""
    model, data = _recurrent(), _data()
    model.graph.input[1].name = "memory"              # no longer pairs with stateN
    model.graph.node[3].input[0] = "memory"
    data["memory"] = data.pop("state")
    choice = quantize(model, data, CLIPPING).method_choice
    assert choice is not None and choice.scored_outputs == ["y", "stateN"]
    assert choice.chosen == "minmax" and not choice.outputs_left_out


def test_cli_score_outputs_is_used_and_recorded(tmp_path):
    model_path, calib_path = tmp_path / "m.onnx", tmp_path / "c.npz"
    onnx.save(_recurrent(), str(model_path))
    np.savez(calib_path, **_data())
    args = ["quantize", str(model_path), "--calib", str(calib_path), "--percentile", "99",
            "--no-report", "--quiet"]
    out = tmp_path / "q.onnx"
    assert main([*args, "-o", str(out)]) == EXIT_OK
    d = json.loads(out.with_suffix(".method.json").read_text())
    assert d["chosen"] == "percentile" and d["scored_outputs"] == ["y"]
    assert d["outputs_left_out"] == {"stateN": "recurrent state, fed back as 'state'"}
    out2 = tmp_path / "q2.onnx"
    assert main([*args, "-o", str(out2), "--score-outputs", "y", "stateN"]) == EXIT_OK
    d2 = json.loads(out2.with_suffix(".method.json").read_text())
    assert d2["chosen"] == "minmax" and d2["scored_outputs"] == ["y", "stateN"]
    assert d2["kept_float"] == ["mm0"]


def test_mode_auto_scores_the_same_outputs_and_records_them():
    """Mode AUTO's record names the outputs left out, as the method choice's does."""
    model = _recurrent()
    rng = np.random.default_rng(1)
    data = {"x": rng.normal(0, 1, (32, 64)).astype(np.float32),
            "state": rng.normal(0, 1, (32, 64)).astype(np.float32)}
    result = quantize(model, data, Config(mode=QuantMode.AUTO, method=CalibMethod.MINMAX))
    choice = result.mode_choice
    assert choice is not None and choice.candidates
    assert choice.scored_outputs == ["y"] and list(choice.outputs_left_out) == ["stateN"]
    assert "left out: stateN" in choice.format()
    assert choice.to_dict()["outputs_left_out"] == {
        "stateN": "recurrent state, fed back as 'state'"}
