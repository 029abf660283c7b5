"""LSTM and GRU nodes with any of ONNX Runtime's activations (docs/operators.md, (O62)):
one node drawn from a picker (hypothesis or a seeded numpy generator), and the check that
lowp's outputs equal ONNX Runtime 1.32's bit for bit (NaN positions equal).

    PYTHONPATH=src python -m tests.runtime.rnn_activation_cases [--cases 300]

counts the drawn cases whose outputs differ from ONNX Runtime's on each backend."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session

from .ort_agreement import onnxruntime_run

ACTIVATIONS = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
               "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"]
PARAMS = [0.1, 0.5, 1.5, -0.5, 2.0]


@dataclass
class Picker:
    """Draws from a hypothesis DataObject's strategies or from a numpy generator."""

    choice: Callable[[Sequence[Any]], Any]
    integer: Callable[[int, int], int]

    @classmethod
    def of_rng(cls, rng: np.random.Generator) -> Picker:
        return cls(lambda s: s[int(rng.integers(len(s)))],
                   lambda lo, hi: int(rng.integers(lo, hi + 1)))

    @classmethod
    def of_data(cls, data: Any) -> Picker:
        from hypothesis import strategies as st
        return cls(lambda s: data.draw(st.sampled_from(list(s))),
                   lambda lo, hi: data.draw(st.integers(lo, hi)))

    def boolean(self) -> bool:
        return bool(self.choice([False, True]))


def random_case(p: Picker, op: str | None = None, default_acts: bool = False,
                every: str | None = None) -> tuple[onnx.ModelProto, np.ndarray]:
    """An LSTM or GRU node (weights as initializers, as in a model file: both ONNX Runtime and
    lowp prepack them) and its input X; `every`: that activation in every slot."""
    op = op or p.choice(["LSTM", "GRU"])
    gates, per = (4, 3) if op == "LSTM" else (3, 2)
    direction = p.choice(["forward", "reverse", "bidirectional"])
    dirs = 2 if direction == "bidirectional" else 1
    seq, batch, inp, hidden = p.integer(1, 6), p.integer(1, 3), p.integer(1, 6), \
        p.choice([1, 2, 3, 5, 8, 17])
    seed = p.integer(0, 999)
    rng = np.random.default_rng(seed)
    attrs: dict[str, Any] = {"hidden_size": hidden, "direction": direction}
    if not default_acts:
        attrs["activations"] = [every or p.choice(ACTIVATIONS) for _ in range(per * dirs)]
        for key in ("activation_alpha", "activation_beta"):
            if p.boolean():
                attrs[key] = [p.choice(PARAMS) for _ in range(p.integer(1, per * dirs))]
    if p.boolean():
        attrs["clip"] = p.choice([0.5, 3.0])
    if op == "LSTM" and p.boolean():
        attrs["input_forget"] = 1
    if op == "GRU":
        attrs["linear_before_reset"] = int(p.boolean())
    inits = {"W": rng.standard_normal((dirs, gates * hidden, inp)),
             "R": rng.standard_normal((dirs, gates * hidden, hidden)) / np.sqrt(hidden)}
    names = ["X", "W", "R", "", "", "", "", ""]
    if p.boolean():
        inits["B"] = rng.standard_normal((dirs, 2 * gates * hidden)) * 0.5
        names[3] = "B"
    if p.boolean():
        inits["L"] = np.asarray([p.integer(0 if b else 1, seq) for b in range(batch)])
        names[4] = "L"
    if p.boolean():
        inits["H0"] = rng.standard_normal((dirs, batch, hidden))
        names[5] = "H0"
    if op == "LSTM" and p.boolean():
        inits["C0"] = rng.standard_normal((dirs, batch, hidden))
        names[6] = "C0"
    if op == "LSTM" and p.boolean():
        inits["P"] = rng.standard_normal((dirs, 3 * hidden))
        names[7] = "P"
    tensors = [numpy_helper.from_array(np.asarray(v, np.int32 if k == "L" else np.float32), k)
               for k, v in inits.items()]
    while names[-1] == "":
        names.pop()
    outs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    node = helper.make_node(op, names, outs, **attrs)
    shapes = {"Y": [seq, dirs, batch, hidden], "Y_h": [dirs, batch, hidden],
              "Y_c": [dirs, batch, hidden]}
    graph = helper.make_graph(
        [node], op.lower(), [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                           [seq, batch, inp])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outs],
        tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    x = (rng.standard_normal((seq, batch, inp)) * p.choice([0.5, 2.0, 8.0])).astype(np.float32)
    return model, x


def differences(model: onnx.ModelProto, x: np.ndarray,
                backends: Sequence[str] = ("reference", "native")) -> list[str]:
    """The backends and outputs that differ from ONNX Runtime's (NaN positions equal)."""
    theirs = onnxruntime_run(model, {"X": x})
    names = [o.name for o in model.graph.output]
    bad = []
    for backend in backends:
        ours = Session(model, backend=backend).run({"X": x})
        bad += [f"{backend} {n}" for n, want in zip(names, theirs, strict=True)
                if not np.array_equal(ours[n], want, equal_nan=True)]
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    count = {"reference": 0, "native": 0}
    for i in range(args.cases):
        model, x = random_case(Picker.of_rng(np.random.default_rng([args.seed, i])))
        for backend in count:
            count[backend] += bool(differences(model, x, [backend]))
    print(f"{args.cases} LSTM/GRU cases with drawn activations; differing from ONNX "
          f"Runtime: " + ", ".join(f"{k} {v}" for k, v in count.items()))


if __name__ == "__main__":
    main()
