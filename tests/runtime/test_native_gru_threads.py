"""A one-direction GRU with linear_before_reset (dfn3_erb_dec's form) at hidden sizes of whole
64-column panels, where a recurrence cut by columns between threads would split: lowp's
native recurrence at 1, 2 and 4 threads against ONNX Runtime at 1, 2 and 4 threads (whose
DeepCPU GRU cuts each step's products between its threads), bit for bit, on every
instruction-set path (docs/native.md, "dfn3_erb_dec and ppocrv2_rec at 2 threads")."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.runtime import native_backend as nb
from lowp.runtime import native_rnn

PATHS = nb.available_paths()
# hidden sizes whose padded width (a multiple of 16) is whole 64-column panels
HIDDEN = [113, 128, 180, 192, 250, 256, 320]


def _ort_gru(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None,
             lens: np.ndarray | None, h0: np.ndarray | None, attrs: dict[str, object],
             threads: int) -> list[np.ndarray]:
    """ONNX Runtime on one GRU node whose weights are initializers (prepacked, as in a file)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(r, "r")]
    names = ["x", "w", "r", "", "", ""]
    feeds: dict[str, np.ndarray] = {"x": x}
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)]
    for i, (name, value, dtype) in enumerate((("b", b, TensorProto.FLOAT),
                                              ("lens", lens, TensorProto.INT32),
                                              ("h0", h0, TensorProto.FLOAT)), start=3):
        if value is None:
            continue
        names[i] = name
        feeds[name] = value
        inputs.append(helper.make_tensor_value_info(name, dtype, value.shape))
    node = helper.make_node("GRU", names, ["y", "y_h"], **attrs)
    graph = helper.make_graph([node], "gru", inputs,
                              [helper.make_empty_tensor_value_info(o) for o in ("y", "y_h")],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


# seq >= 1: ONNX Runtime 1.32 aborts the process on a GRU of 0 steps without sequence lengths
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), seq=st.integers(1, 6), batch=st.integers(1, 4),
       inp=st.integers(1, 40), hidden=st.sampled_from(HIDDEN),
       reverse=st.booleans(), bias=st.booleans(), with_lens=st.booleans(),
       with_h0=st.booleans(), clip=st.sampled_from([None, 0.5, 3.0]))
def test_gru_halves_match_onnxruntime_at_1_2_4_threads(
        seed: int, seq: int, batch: int, inp: int, hidden: int, reverse: bool, bias: bool,
        with_lens: bool, with_h0: bool, clip: float | None) -> None:
    rng = np.random.default_rng(seed)

    def f32(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x = f32(seq, batch, inp)
    w, r = f32(1, 3 * hidden, inp, scale=0.4), f32(1, 3 * hidden, hidden, scale=0.1)
    b = f32(1, 6 * hidden, scale=0.5) if bias else None
    lens = None
    if with_lens:
        lens = rng.integers(0, seq + 1, batch).astype(np.int32)
        lens[0] = seq
        if batch > 1:
            lens[-1] = 0
    h0 = f32(1, batch, hidden) if with_h0 else None
    direction = "reverse" if reverse else "forward"
    attrs: dict[str, object] = {"hidden_size": hidden, "direction": direction,
                                "linear_before_reset": 1}
    if clip is not None:
        attrs["clip"] = clip
    expected = _ort_gru(x, w, r, b, lens, h0, attrs, 1)
    for threads in (2, 4):   # ONNX Runtime's own sums do not depend on its threads
        for e, o in zip(expected, _ort_gru(x, w, r, b, lens, h0, attrs, threads), strict=True):
            np.testing.assert_array_equal(e, o)
    lens64 = np.full(batch, seq, np.int64) if lens is None else lens.astype(np.int64)
    for path in PATHS:
        with nb.use_path(path):
            for threads in (1, 2, 4):
                got = native_rnn.gru(x, w, r, b, lens64, h0, [reverse], 0, clip, True,
                                     threads=threads)
                for g, e in zip(got, expected, strict=True):
                    np.testing.assert_array_equal(g, e, err_msg=f"{path} {threads} threads")
