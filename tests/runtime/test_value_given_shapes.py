"""Operators whose output shape is given by an input's value, fed rather than constant: a
replayed signature (the feeds' shapes) must not fix that shape, so a Shape of the output
follows the value from run to run, as in plain runs and in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import NodeProto, TensorProto, helper, numpy_helper

from lowp.runtime import Session

I64 = TensorProto.INT64


def _model(node: NodeProto, fed: str, data: list, consts: dict[str, np.ndarray],
           opset: int) -> bytes:
    inputs = [helper.make_tensor_value_info(n, t, s) for n, t, s in data]
    inputs.append(helper.make_tensor_value_info(fed, I64, None))
    graph = helper.make_graph(
        [node, helper.make_node("Shape", ["y"], ["s"])], "value_shape", inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("s", I64, None)],
        [numpy_helper.from_array(v, n) for n, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]
                             ).SerializeToString()


SIGNAL = [("x", TensorProto.FLOAT, [1, 64])]
COMPLEX = [("x", TensorProto.FLOAT, [1, 16, 2])]
CASES = {
    "STFT frame_step": (helper.make_node("STFT", ["x", "v", "", "len"], ["y"]), SIGNAL,
                        {"len": np.array(16, np.int64)}, 17, [4, 8, 3]),
    "STFT frame_length": (helper.make_node("STFT", ["x", "step", "", "v"], ["y"]), SIGNAL,
                          {"step": np.array(4, np.int64)}, 17, [16, 8, 12]),
    "DFT dft_length": (helper.make_node("DFT", ["x", "v"], ["y"], axis=1), COMPLEX, {}, 17,
                       [16, 8, 12]),
    "DFT axis": (helper.make_node("DFT", ["x", "", "v"], ["y"], onesided=1),
                 [("x", TensorProto.FLOAT, [1, 16, 8, 1])], {}, 20, [1, 2, -2]),
    **{f"{op} axes": (helper.make_node(op, ["x", "v"], ["y"]),
                      [("x", TensorProto.FLOAT, [2, 3, 4])], {}, 18, [[1], [0], [-1, 0]])
       for op in ("ReduceL1", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
                  "ReduceL2", "ReduceMean")},
    "HannWindow size": (helper.make_node("HannWindow", ["v"], ["y"]), [], {}, 17, [8, 5, 12]),
    "MelWeightMatrix bins": (
        helper.make_node("MelWeightMatrix", ["v", "n", "rate", "lo", "hi"], ["y"]), [],
        {"n": np.array(32, np.int64), "rate": np.array(16000, np.int64),
         "lo": np.array(0.0, np.float32), "hi": np.array(8000.0, np.float32)}, 17, [4, 6, 3]),
}


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_fed_value_giving_the_output_shape_is_not_fixed_by_the_signature(name, backend):
    node, data, consts, opset, values = CASES[name]
    model = _model(node, "v", data, consts, opset)
    ours = Session(model, backend=backend)
    theirs = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, _, s in data}
    for v in [values[0]] * 3 + values[1:] + [values[0]] * 2 + values[1:]:
        feeds["v"] = np.array(v, np.int64)
        got = ours.run(feeds)
        want = dict(zip(["y", "s"], theirs.run(None, feeds), strict=True))
        np.testing.assert_array_equal(got["s"], want["s"], err_msg=f"{name} = {v}")
        assert got["y"].tobytes() == want["y"].tobytes(), f"{name} = {v}"


FED = {
    "Slice starts": (helper.make_node("Slice", ["x", "v", "e"], ["y"]), [[1], [0], [2]],
                     {"e": np.array([3], np.int64)}),
    "Split split": (helper.make_node("Split", ["x", "v"], ["y", "z"], axis=1),
                    [[10, 22], [30, 2], [1, 31]], {}),
    "ReduceMax axes": (helper.make_node("ReduceMax", ["x", "v"], ["y"]), [[0], [1], [0, 1]],
                       {}),
}


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", list(FED))
def test_a_step_reading_fed_starts_or_sizes_is_not_repeated(name, backend, threads):
    """A data-movement or reduction step whose starts, split or axes are fed keeps them as
    numbers in its recorded calls: repeating those calls would read the first runs' values,
    so the step runs the plain way, with the output shapes and bytes of a plain run."""
    node, values, consts = FED[name]
    outs = [o for o in node.output]
    graph = helper.make_graph(
        [node], "fed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32]),
                        helper.make_tensor_value_info("v", I64, None)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
        [numpy_helper.from_array(v, n) for n, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]
                              ).SerializeToString()
    fast = Session(model, backend=backend, threads=threads)
    plain = Session(model, backend=backend, threads=threads, replay=False)
    x = np.random.default_rng(1).standard_normal((4, 32)).astype(np.float32)
    for v in [values[0]] * 3 + values[1:] + [values[0]] * 2 + values[1:]:
        feeds = {"x": x, "v": np.array(v, np.int64)}
        got, want = fast.run(feeds), plain.run(feeds)
        for o in outs:
            assert got[o].shape == want[o].shape and got[o].tobytes() == want[o].tobytes(), \
                f"{name} = {v}: {o}"
