"""Which NaN a float32 RNN of batch 1 hands on where NaNs of different payloads meet in its
per-step product H Rᵀ (docs/operators.md (O271)): MlasSgemmKernelM1TransposeBAvx's operand
order ((O223)), on every instruction-set path (the native 256-bit copy of the kernel
included), both backends, 1 and 2 threads, against ONNX Runtime bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import native_backend

from .ort_agreement import assert_float_bits_agree


def _nan_payloads(rng: np.random.Generator, n: int) -> np.ndarray:
    bits = (rng.integers(1, 1 << 22, n).astype(np.uint32) | np.uint32(0x7FC00000)
            | (rng.integers(0, 2, n).astype(np.uint32) << 31))
    return bits.view(np.float32)


@settings(max_examples=25, deadline=None)
@given(hidden=st.integers(2, 20), inp=st.integers(1, 5), seq=st.integers(1, 3),
       activation=st.sampled_from(["Relu", "LeakyRelu", "Tanh"]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_batch_one_products_hand_on_onnxruntimes_nan(hidden, inp, seq, activation, threads,
                                                     seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((seq, 1, inp)).astype(np.float32)
    h0 = rng.standard_normal((1, 1, hidden)).astype(np.float32)
    hit = rng.random(h0.shape) < 0.5
    h0[hit] = _nan_payloads(rng, int(hit.sum()))
    w = rng.standard_normal((1, hidden, inp)).astype(np.float32)
    r = (rng.standard_normal((1, hidden, hidden)) / np.sqrt(hidden)).astype(np.float32)
    node = helper.make_node("RNN", ["X", "W", "R", "", "", "H0"], ["y", "Y_h"],
                            hidden_size=hidden, activations=[activation])
    graph = helper.make_graph(
        [node], "rnn",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape)),
         helper.make_tensor_value_info("H0", TensorProto.FLOAT, list(h0.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    for path in native_backend.available_paths():
        with native_backend.use_path(path):
            assert_float_bits_agree(model, {"X": x, "H0": h0}, threads)
