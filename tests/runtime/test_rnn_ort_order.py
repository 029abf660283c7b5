"""The float32 RNN operator in ONNX Runtime's order (docs/operators.md, (O58)): Y and Y_h
equal ONNX Runtime's bit for bit on both backends, for every direction, activation (with
alpha and beta consumed in order, ONNX Runtime's defaults), clip, sequence_lens and
initial_h."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session

from .ort_agreement import onnxruntime_run

ACTIVATIONS = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
               "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"]


def _rnn(x_shape: tuple[int, int, int], hidden: int, direction: str, seed: int,
         bias: bool = True, lens: list[int] | None = None, initial: bool = False,
         **attrs: object) -> onnx.ModelProto:
    seq, batch, inp = x_shape
    dirs = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(seed)
    inits = {"W": rng.standard_normal((dirs, hidden, inp)),
             "R": rng.standard_normal((dirs, hidden, hidden)) / np.sqrt(hidden)}
    names = ["X", "W", "R", "", "", ""]
    if bias:
        inits["B"] = rng.standard_normal((dirs, 2 * hidden))
        names[3] = "B"
    if initial:
        inits["H0"] = rng.standard_normal((dirs, batch, hidden))
        names[5] = "H0"
    tensors = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()]
    if lens is not None:
        tensors.append(numpy_helper.from_array(np.asarray(lens, np.int32), "L"))
        names[4] = "L"
    while names[-1] == "":
        names.pop()
    node = helper.make_node("RNN", names, ["Y", "Y_h"], hidden_size=hidden,
                            direction=direction, **attrs)
    graph = helper.make_graph(
        [node], "rnn", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [seq, dirs, batch, hidden]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [dirs, batch, hidden])],
        tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def _assert_identical(model: onnx.ModelProto, x: np.ndarray) -> None:
    theirs = onnxruntime_run(model, {"X": x})
    for backend in ("reference", "native"):
        ours = Session(model, backend=backend).run({"X": x})
        for name, want in zip(("Y", "Y_h"), theirs, strict=True):
            np.testing.assert_array_equal(ours[name], want, err_msg=f"{backend} {name}")


@settings(max_examples=40, deadline=None)
@given(seq=st.integers(1, 8), batch=st.integers(1, 3), inp=st.integers(1, 8),
       hidden=st.integers(1, 8), direction=st.sampled_from(["forward", "reverse",
                                                             "bidirectional"]),
       data=st.data())
def test_rnn_equals_onnxruntime(seq: int, batch: int, inp: int, hidden: int, direction: str,
                                data: st.DataObject) -> None:
    dirs = 2 if direction == "bidirectional" else 1
    attrs: dict[str, object] = {}
    if data.draw(st.booleans()):
        attrs["activations"] = data.draw(st.lists(st.sampled_from(ACTIVATIONS),
                                                  min_size=dirs, max_size=dirs))
    for key in ("activation_alpha", "activation_beta"):
        if data.draw(st.booleans()):
            attrs[key] = data.draw(st.lists(st.sampled_from([0.1, 0.5, 1.5]), min_size=1,
                                            max_size=2))
    if data.draw(st.booleans()):
        attrs["clip"] = data.draw(st.sampled_from([0.5, 2.0]))
    lens = (data.draw(st.lists(st.integers(1, seq), min_size=batch, max_size=batch))
            if data.draw(st.booleans()) else None)
    model = _rnn((seq, batch, inp), hidden, direction, data.draw(st.integers(0, 99)),
                 bias=data.draw(st.booleans()), lens=lens, initial=data.draw(st.booleans()),
                 **attrs)
    x = np.random.default_rng(seq * batch).standard_normal((seq, batch, inp)) * 2
    _assert_identical(model, x.astype(np.float32))


def test_rnn_tanh_is_onnxruntime_sigmoid_form() -> None:
    """The default Tanh is 2 sigmoid(2x) - 1 with the C library's expf, not tanhf: a numpy
    tanh and product differed from ONNX Runtime in the last bits on most steps."""
    x = np.random.default_rng(1).standard_normal((20, 2, 16)).astype(np.float32) * 2
    _assert_identical(_rnn((20, 2, 16), 16, "forward", 3), x)


def test_rnn_activation_defaults_are_onnxruntime_ones() -> None:
    """ONNX Runtime's Affine and ScaledTanh without alpha and beta give 0 (its defaults are
    0 but for LeakyRelu, HardSigmoid and Elu), and an alpha list is consumed in order by
    the activations that take one: Relu in the first direction leaves 0.5 to LeakyRelu in
    the second, whose beta-free form leaves the betas alone."""
    x = np.random.default_rng(2).standard_normal((3, 2, 4)).astype(np.float32)
    for attrs in ({"activations": ["Affine"]}, {"activations": ["ScaledTanh"]},
                  {"activations": ["Affine"], "activation_beta": [0.5]},
                  {"activations": ["ThresholdedRelu"]}):
        _assert_identical(_rnn((3, 2, 4), 4, "forward", 0, **attrs), x)
    _assert_identical(_rnn((3, 2, 4), 4, "bidirectional", 0,
                           activations=["Relu", "LeakyRelu"], activation_alpha=[0.5]), x)
    _assert_identical(_rnn((3, 2, 4), 4, "bidirectional", 0,
                           activations=["HardSigmoid", "HardSigmoid"],
                           activation_alpha=[0.5], activation_beta=[0.1]), x)


def test_recurrent_layers_take_an_empty_batch() -> None:
    """An empty batch (or no steps) through RNN, LSTM and GRU: empty Y, and Y_h empty (or
    zeros without steps). ONNX Runtime 1.32 aborts the process on LSTM and GRU with an empty
    batch and on GRU without steps (evals/corpus/repro/README.md, "Not lowp bugs"), so only
    RNN is compared with it."""
    for op, gates in (("RNN", 1), ("LSTM", 4), ("GRU", 3)):
        w = np.full((1, gates * 3, 2), 0.1, np.float32)
        r = np.full((1, gates * 3, 3), 0.1, np.float32)
        node = helper.make_node(op, ["X", "W", "R"], ["Y", "Y_h"], hidden_size=3)
        graph = helper.make_graph(
            [node], "empty", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                            ["T", "N", 2])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", 1, "N", 3]),
             helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "N", 3])],
            [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
        model.ir_version = 8
        for steps, batch in ((4, 0), (0, 2)):
            x = np.zeros((steps, batch, 2), np.float32)
            if op == "RNN":
                _assert_identical(model, x)
                continue
            for backend in ("reference", "native"):
                out = Session(model, backend=backend).run({"X": x})
                assert out["Y"].shape == (steps, 1, batch, 3)
                np.testing.assert_array_equal(out["Y_h"], np.zeros((1, batch, 3), np.float32))
