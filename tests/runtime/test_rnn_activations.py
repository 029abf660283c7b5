"""LSTM and GRU with any of ONNX Runtime's activations (docs/operators.md, (O62)): both
backends equal ONNX Runtime 1.32 bit for bit (the DeepCPU kernels' MLAS logistic and tanh,
fused Relu, rational sigmoid and tanh of the GRU's reset and output gates, the functors
element by element), and the native recurrence equals the numpy reference on every
instruction-set path; empty sequences end with zero states ((O62b))."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, native_rnn
from lowp.runtime import native_backend as nb

from .rnn_activation_cases import ACTIVATIONS, Picker, differences, random_case

PATHS = nb.available_paths()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_drawn_activations_equal_onnxruntime(data: st.DataObject) -> None:
    model, x = random_case(Picker.of_data(data))
    assert differences(model, x) == []


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_each_activation_in_every_slot(op: str, name: str) -> None:
    """One activation in every slot, alpha and beta consumed in order (before (O62) 24 of
    200 drawn nodes matched ONNX Runtime)."""
    for seed in range(6):
        rng = np.random.default_rng([seed, ACTIVATIONS.index(name)])
        model, x = random_case(Picker.of_rng(rng), op, every=name)
        assert differences(model, x) == [], (op, name, seed)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_native_equals_reference_on_every_path(op: str) -> None:
    for seed in range(12):
        model, x = random_case(Picker.of_rng(np.random.default_rng([seed, 99])), op)
        with native_rnn.disabled():
            want = Session(model, backend="native").run({"X": x})
        for path in PATHS:
            with nb.use_path(path):
                got = Session(model, backend="native").run({"X": x})
            for key, value in want.items():
                assert np.array_equal(got[key], value, equal_nan=True), (seed, path, key)


def test_empty_sequences_end_with_zero_states() -> None:
    """A sequence of length 0 with initial states: ONNX Runtime's Y_h (and LSTM's Y_c) row is
    0, where lowp kept the initial state (O62b)."""
    for op in ("LSTM", "GRU"):
        found = 0
        for seed in range(60):
            model, x = random_case(Picker.of_rng(np.random.default_rng([seed, 5])), op,
                                   default_acts=seed % 2 == 0)
            names = list(model.graph.node[0].input)
            if "L" in names and "H0" in names:
                found += 1
                assert differences(model, x) == [], seed
        assert found >= 3


@pytest.mark.parametrize("op,acts", [
    ("LSTM", ["Relu", "Relu", "Relu"]), ("LSTM", ["Relu", "Tanh", "Softsign"]),
    ("GRU", ["Relu", "Relu"]), ("GRU", ["Elu", "Sigmoid"]), ("GRU", ["Tanh", "Relu"])])
def test_non_finite_inputs_keep_onnxruntime_nans(op: str, acts: list[str]) -> None:
    """NaN and infinite inputs without a bias (no clip turns a NaN into the bound): the f and
    g Relu is MLAS's maxps(0, x), which keeps a NaN (v > 0 ? v : 0 lost 24 of 24 NaNs of Y),
    the fused ones turn it into 0."""
    rng = np.random.default_rng(0)
    gates, hidden, inp = (4 if op == "LSTM" else 3), 5, 3
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("W", (1, gates * hidden, inp)), ("R", (1, gates * hidden, hidden)))]
    node = helper.make_node(op, ["X", "W", "R"], ["Y", "Y_h"], hidden_size=hidden,
                            activations=acts)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [3, 3, inp])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [3, 1, 3, hidden]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 3, hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    x = rng.standard_normal((3, 3, inp)).astype(np.float32)
    x[0, 1, 0], x[1, 2, :], x[2, 0, 1] = np.nan, np.inf, -np.inf
    with np.errstate(all="ignore"):
        assert differences(model, x) == []
