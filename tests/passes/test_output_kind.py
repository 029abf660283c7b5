"""Class-score maps (passes.output_kind): found in the graph or named, scored by the share of
frames whose best class is the float model's, which decides the range-method choice before
the SQNR, and recorded."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.cli import EXIT_OK, main
from lowp.config import Config
from lowp.errors import DataError, QuantizationError
from lowp.feeds import as_feeds
from lowp.inputs import model_inputs
from lowp.passes import method_choice
from lowp.passes.method_choice import AGREEMENT_TIE_POINTS, MethodCandidate, pick
from lowp.passes.output_kind import class_maps, detected_class_maps, frame_agreement
from lowp.pipeline import quantize

T, C = 12, 7


def _v(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _tail(nodes: list[onnx.NodeProto], out_shape: list[int | str], opset: int = 17
          ) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [_v("x", ["n", T, C])], [_v("y", out_shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize(("nodes", "shape"), [
    ([helper.make_node("Softmax", ["x"], ["y"], axis=2)], ["n", T, C]),
    ([helper.make_node("LogSoftmax", ["x"], ["y"], axis=-1)], ["n", T, C]),
    ([helper.make_node("Softmax", ["x"], ["p"], axis=-1),
      helper.make_node("Identity", ["p"], ["i"]),
      helper.make_node("Cast", ["i"], ["y"], to=TensorProto.FLOAT)], ["n", T, C]),
    ([helper.make_node("Softmax", ["x"], ["p"], axis=2),         # [N, T, C] -> [T, N, C]
      helper.make_node("Transpose", ["p"], ["y"], perm=[1, 0, 2])], [T, "n", C]),
])
def test_a_softmax_over_the_last_axis_of_a_rank_3_output_is_a_class_map(nodes, shape):
    assert detected_class_maps(_tail(nodes, shape)) == ("y",)


@pytest.mark.parametrize(("nodes", "shape", "opset"), [
    ([helper.make_node("Softmax", ["x"], ["y"], axis=1)], ["n", T, C], 17),
    ([helper.make_node("Softmax", ["x"], ["y"])], ["n", T, C], 11),   # over T and C at 11
    ([helper.make_node("Softmax", ["x"], ["p"], axis=2),            # classes moved
      helper.make_node("Transpose", ["p"], ["y"], perm=[0, 2, 1])], ["n", C, T], 17),
    ([helper.make_node("Relu", ["x"], ["y"])], ["n", T, C], 17),     # logits: not detected
    ([helper.make_node("Softmax", ["x"], ["p"], axis=2),
      helper.make_node("Reshape", ["p", "s"], ["y"])], ["n", T * C], 17),
])
def test_other_outputs_are_no_class_map(nodes, shape, opset):
    model = _tail(nodes, shape, opset)
    if any(n.op_type == "Reshape" for n in nodes):
        model.graph.initializer.append(numpy_helper.from_array(np.array([-1, T * C]), "s"))
    assert detected_class_maps(model) == ()


def test_class_maps_named_found_or_none():
    model = _tail([helper.make_node("Softmax", ["x"], ["y"], axis=2)], ["n", T, C])
    assert class_maps(model, None, ["y"]) == ("y",)
    assert class_maps(model, None, []) == ()                  # found, but not scored
    assert class_maps(model, (), ["y"]) == ()
    assert class_maps(model, ("y", "y"), ["y"]) == ("y",)
    with pytest.raises(DataError, match="'z' given in class_maps"):
        class_maps(model, ("z",), ["y"])
    with pytest.raises(QuantizationError, match="class_maps="):
        Config(class_maps="y")  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(2, 6), st.integers(0, 2 ** 16))
def test_frame_agreement_counts_the_frames_whose_best_class_is_kept(n, t, c, seed):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, t, c))
    got = ref + rng.normal(0, 0.5, size=ref.shape)
    same, total = frame_agreement(ref, got)
    assert total == n * t
    assert same == int(np.sum(np.argmax(ref, -1) == np.argmax(got, -1)))
    assert frame_agreement(ref, ref) == (total, total)
    with pytest.raises(DataError):
        frame_agreement(ref, got[:, :0])


def test_pick_compares_the_agreement_first_and_the_sqnr_between_near_equals():
    a = MethodCandidate("minmax", 30.0, agreement=90.0)
    b = MethodCandidate("mse", 20.0, agreement=95.0)
    assert pick([a, b])[0] == "mse"
    c = MethodCandidate("percentile", 25.0, agreement=95.0 - AGREEMENT_TIE_POINTS)
    chosen, reason = pick([a, b, c])
    assert chosen == "percentile" and "within 0.5 points of the highest for 2" in reason
    d = MethodCandidate("percentile", 25.0, agreement=95.0 - 2 * AGREEMENT_TIE_POINTS)
    assert pick([a, b, d])[0] == "mse"


# --- a map where the SQNR and the frame agreement disagree --------------------------------
# The float model is Softmax(x) over the classes. Candidate "near" adds a small offset that
# swaps the two best classes of the frames whose margin is tiny (high SQNR, frames lost);
# candidate "far" adds a large offset to the best class of every frame (a lower SQNR, no
# frame lost).

def _softmax_model(offset: np.ndarray | None = None) -> onnx.ModelProto:
    nodes, inits = [], []
    source = "x"
    if offset is not None:
        nodes.append(helper.make_node("Add", ["x", "offset"], ["xo"]))
        inits.append(numpy_helper.from_array(offset.astype(np.float32), "offset"))
        source = "xo"
    nodes.append(helper.make_node("Softmax", [source], ["y"], axis=-1))
    graph = helper.make_graph(nodes, "g", [_v("x", [4, T, C])], [_v("y", [4, T, C])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _near_tie_logits() -> np.ndarray:
    """Logits whose best class is 0, a margin of 0.01 over class 1 on even frames."""
    x = np.zeros((4, T, C), np.float32)
    x[..., 0] = 4.0
    x[:, ::2, 1] = 3.99
    return x


def test_a_map_where_sqnr_and_agreement_disagree_is_chosen_by_agreement():
    """Fails with the SQNR alone: "near" has the higher SQNR and loses half the frames."""
    x = _near_tie_logits()
    near = np.zeros((1, T, C), np.float32)
    near[0, ::2, 1] = 0.05                          # class 1 overtakes class 0 on even frames
    far = np.zeros((1, T, C), np.float32)
    far[..., 0] = 1.5                               # the best class, only sharper
    float_model = _softmax_model()
    feeds = as_feeds({"x": np.concatenate([x, x])}, model_inputs(float_model), 4)
    models: dict[str, onnx.ModelProto | str] = {"minmax": _softmax_model(near),
                                                "mse": _softmax_model(far)}
    by_sqnr, _ = method_choice.measure(float_model, models, feeds, feeds,
                                       model_inputs(float_model), Config(class_maps=()))
    by_frames, _ = method_choice.measure(float_model, models, feeds, feeds,
                                         model_inputs(float_model), Config(class_maps=("y",)))
    sqnr = {c.method: c.sqnr_db for c in by_frames}
    frames = {c.method: c.agreement for c in by_frames}
    assert sqnr["minmax"] > sqnr["mse"] + 10        # type: ignore[operator]
    assert frames == {"minmax": 50.0, "mse": 100.0}
    assert all(c.agreement is None for c in by_sqnr)
    assert pick(by_sqnr)[0] == "minmax"
    chosen, reason = pick(by_frames)
    assert chosen == "mse" and reason.startswith("highest frame argmax agreement, 50.00")


# --- the pipeline: found, used and recorded ----------------------------------------------

def _recogniser(seed: int = 0) -> onnx.ModelProto:
    """x [n, T, 16] @ w1 -> Relu -> @ w2 -> Softmax over C classes: a CTC-like head."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (16, 32)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (32, C)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
         helper.make_node("Relu", ["h"], ["r"], name="relu"),
         helper.make_node("MatMul", ["r", "w2"], ["logits"], name="mm2"),
         helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=2)], "g",
        [_v("x", ["n", T, 16])], [_v("probs", ["n", T, C])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _frames(samples: int = 16) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).normal(size=(samples, T, 16)).astype(np.float32)}


def test_the_choice_scores_a_found_class_map_by_frames_and_records_it(tmp_path):
    choice = quantize(_recogniser(), _frames()).method_choice
    assert choice is not None and choice.class_maps == ["probs"]
    assert choice.measure == "frame argmax agreement on the class maps, then output SQNR"
    assert all(c.agreement is not None and len(c.folds_agreement) == 2
               for c in choice.candidates)
    best = max(c.agreement for c in choice.candidates if c.agreement is not None)
    assert next(c for c in choice.candidates if c.method == choice.chosen).agreement == best
    text = choice.format()
    assert "frames (%)" in text and "class maps: probs" in text
    path = tmp_path / "m.method.json"
    choice.save(path)
    d = json.loads(path.read_text())
    assert d["class_maps"] == ["probs"] and d["measure"] == choice.measure
    assert all(isinstance(c["agreement"], float) for c in d["candidates"])


def test_no_class_maps_scores_the_sqnr_alone():
    choice = quantize(_recogniser(), _frames(), Config(class_maps=())).method_choice
    assert choice is not None and choice.class_maps == [] and choice.measure == "output SQNR"
    assert all(c.agreement is None for c in choice.candidates)
    assert "frames (%)" not in choice.format()


def test_cli_names_or_turns_off_the_class_maps(tmp_path, capsys):
    model_path, calib_path = tmp_path / "m.onnx", tmp_path / "c.npz"
    onnx.save(_recogniser(), str(model_path))
    np.savez(calib_path, **_frames())
    for flag, maps in ((["--class-maps", "none"], []), (["--class-maps", "probs"], ["probs"])):
        out = tmp_path / "q.onnx"
        assert main(["quantize", str(model_path), "--calib", str(calib_path), "-o", str(out),
                     "--no-report", "--quiet", *flag]) == EXIT_OK
        d = json.loads(out.with_suffix(".method.json").read_text())
        assert d["class_maps"] == maps
    capsys.readouterr()
