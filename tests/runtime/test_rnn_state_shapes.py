"""RNN, GRU, LSTM and DynamicQuantizeLSTM refuse an initial state or sequence_lens whose
shape does not fit X, as ONNX Runtime's DeepCPU kernels do ((O165)): numpy would broadcast
a state of batch 1 over any batch (Silero VAD's default file with its state frozen at batch
1 and a batch of 4: ONNX Runtime refuses it, lowp gave a batch-1 result)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType

import lowp
from lowp.errors import NodeError
from lowp.runtime.backends import native_available
from tests.runtime.test_quantized_lstm import _quantized_lstm

BACKENDS = ["reference"] + (["native"] if native_available() else [])
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
SEQ, BATCH, INP, HID = 5, 3, 4, 6


def _recurrent(op: str, direction: str, *, h0: tuple[int, ...] | None = None,
               c0: tuple[int, ...] | None = None, lens: int | None = None,
               layout: int = 0) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One float `op` node; h0, c0 and sequence_lens are graph inputs of the given shapes."""
    rng = np.random.default_rng(0)
    d = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    x_shape = (BATCH, SEQ, INP) if layout else (SEQ, BATCH, INP)
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    inits = [numpy_helper.from_array(rng.standard_normal((d, g * HID, INP)).astype(np.float32),
                                     "w"),
             numpy_helper.from_array(rng.standard_normal((d, g * HID, HID)).astype(np.float32),
                                     "r")]
    names = ["x", "w", "r", ""]
    if lens is not None:
        feeds["lens"] = np.full(lens, SEQ, np.int32)
    if h0 is not None:
        feeds["h0"] = rng.standard_normal(h0).astype(np.float32)
    if c0 is not None:
        feeds["c0"] = rng.standard_normal(c0).astype(np.float32)
    names += ["lens" if lens is not None else "", "h0" if h0 is not None else ""]
    if op == "LSTM":
        names.append("c0" if c0 is not None else "")
    while names[-1] == "":
        names.pop()
    outs = ["y", "yh"] + (["yc"] if op == "LSTM" else [])
    node = helper.make_node(op, names, outs, hidden_size=HID, direction=direction,
                            layout=layout, name=f"{op.lower()}_0")
    elem = {"lens": TensorProto.INT32}
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(k, elem.get(k, TensorProto.FLOAT), list(v.shape))
         for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model, feeds


def _assert_both_refuse(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                        match: str = "must have shape", threads: int = 1) -> None:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match=match):
        s.run(None, feeds)
    for backend in BACKENDS:
        with pytest.raises(NodeError, match=match) as refused:
            lowp.Session(model, backend=backend, threads=threads).run(feeds)
        assert refused.value.node_name, "the error names the node"


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("op", sorted(GATES))
def test_initial_h_of_another_batch_is_refused(op: str, direction: str) -> None:
    d = 2 if direction == "bidirectional" else 1
    c0 = (d, BATCH, HID) if op == "LSTM" else None
    _assert_both_refuse(*_recurrent(op, direction, h0=(d, 1, HID), c0=c0))


@pytest.mark.parametrize("op", sorted(GATES))
def test_initial_h_of_another_width_or_direction_count_is_refused(op: str) -> None:
    _assert_both_refuse(*_recurrent(op, "forward", h0=(1, BATCH, HID + 1)))
    _assert_both_refuse(*_recurrent(op, "bidirectional", h0=(1, BATCH, HID)))


def test_lstm_initial_c_of_another_batch_is_refused() -> None:
    _assert_both_refuse(*_recurrent("LSTM", "forward", h0=(1, BATCH, HID), c0=(1, 1, HID)))


@pytest.mark.parametrize("op", sorted(GATES))
def test_sequence_lens_of_another_length_is_refused(op: str) -> None:
    _assert_both_refuse(*_recurrent(op, "forward", lens=BATCH + 1))


_OUT_OF_RANGE = "Invalid value/s in sequence_lens"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("length", [-1, SEQ + 1, -(2**31)])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("op", sorted(GATES))
def test_sequence_lens_outside_the_sequence_is_refused(op: str, direction: str, length: int,
                                                       threads: int) -> None:
    """A length below 0 or above seq_length: ONNX Runtime refuses it ((O188)); lowp ran it
    (numpy: a negative length as 0, a longer one as T; the native kernels left the node to
    numpy)."""
    model, feeds = _recurrent(op, direction, lens=BATCH)
    feeds["lens"][1] = length
    _assert_both_refuse(model, feeds, _OUT_OF_RANGE, threads)


@pytest.mark.parametrize("op", sorted(GATES))
def test_layout_1_sequence_lens_outside_the_sequence_is_refused(op: str) -> None:
    model, feeds = _recurrent(op, "forward", lens=BATCH, layout=1)
    feeds["lens"][0] = SEQ + 1
    for backend in BACKENDS:
        with pytest.raises(NodeError, match=_OUT_OF_RANGE):
            lowp.Session(model, backend=backend, threads=1).run(feeds)


@pytest.mark.parametrize("op", sorted(GATES))
def test_layout_1_initial_h_of_another_batch_is_refused(op: str) -> None:
    """layout=1: the state is [batch, directions, hidden]."""
    model, feeds = _recurrent(op, "forward", h0=(1, 1, HID), layout=1)
    for backend in BACKENDS:
        with pytest.raises(NodeError, match="must have shape"):
            lowp.Session(model, backend=backend, threads=1).run(feeds)


@pytest.mark.parametrize("op", sorted(GATES))
def test_fitting_states_still_run(op: str) -> None:
    model, feeds = _recurrent(op, "bidirectional", h0=(2, BATCH, HID), lens=BATCH,
                              c0=(2, BATCH, HID) if op == "LSTM" else None)
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = s.run(None, feeds)
    for backend in BACKENDS:
        got = lowp.Session(model, backend=backend, threads=1).run(feeds)
        assert [np.asarray(v).shape for v in got.values()] == [w.shape for w in want]


def test_dynamic_quantize_lstm_initial_h_of_another_batch_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    model = _quantized_lstm(tmp_path, rng, inp=INP, hid=HID, direction="forward",
                            per_channel=False, weight_type=QuantType.QInt8,
                            optional=frozenset({"h0", "c0"}), with_y=True)
    model.graph.node[0].name = "qlstm_0"
    feeds = {"x": rng.standard_normal((SEQ, BATCH, INP)).astype(np.float32),
             "h0": rng.standard_normal((1, 1, HID)).astype(np.float32),
             "c0": rng.standard_normal((1, BATCH, HID)).astype(np.float32)}
    _assert_both_refuse(model, feeds)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("length", [-1, SEQ + 1])
def test_dynamic_quantize_lstm_sequence_lens_outside_the_sequence_is_refused(
        tmp_path: Path, length: int, threads: int) -> None:
    rng = np.random.default_rng(2)
    model = _quantized_lstm(tmp_path, rng, inp=INP, hid=HID, direction="bidirectional",
                            per_channel=False, weight_type=QuantType.QInt8,
                            optional=frozenset({"lens"}), with_y=True)
    model.graph.node[0].name = "qlstm_0"
    feeds = {"x": rng.standard_normal((SEQ, BATCH, INP)).astype(np.float32),
             "lens": np.array([SEQ, length, 1], np.int32)}
    _assert_both_refuse(model, feeds, _OUT_OF_RANGE, threads)
