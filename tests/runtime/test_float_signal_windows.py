"""HannWindow, HammingWindow, BlackmanWindow and MelWeightMatrix equal ONNX Runtime bit for
bit (docs/operators.md (O252)): periodic and symmetric, every output type its kernel writes,
the size or parameters fed or constant; both backends at 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto

from lowp.errors import LowpError, UnsupportedOpError
from lowp.runtime import Session

from .ort_agreement import assert_float_bits_agree, onnxruntime_run
from .signal_models import one_node

_TYPES = [TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT8, TensorProto.INT16,
          TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8, TensorProto.UINT16,
          TensorProto.UINT32, TensorProto.UINT64]


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(["HannWindow", "HammingWindow", "BlackmanWindow"]),
       size=st.integers(0, 600), periodic=st.booleans(), output=st.sampled_from(_TYPES),
       size_type=st.sampled_from([np.int32, np.int64]), constant=st.booleans(),
       threads=st.sampled_from([1, 2]))
def test_windows_equal_onnxruntime(op: str, size: int, periodic: bool, output: int,
                                   size_type: type, constant: bool, threads: int) -> None:
    size = max(size, 1) if constant else size   # a constant 0 fails shape inference (below)
    model, feeds = one_node(op, 17, [np.array(size, size_type)],
                            {"periodic": int(periodic), "output_datatype": output},
                            constants=(0,) if constant else ())
    assert_float_bits_agree(model, feeds, threads)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("output", _TYPES)
def test_a_one_sample_symmetric_window_converts_nan_as_onnxruntime(op: str,
                                                                   output: int) -> None:
    model, feeds = one_node(op, 17, [np.array(1, np.int64)],
                            {"periodic": 0, "output_datatype": output})
    assert_float_bits_agree(model, feeds, 1)


@settings(max_examples=60, deadline=None)
@given(mels=st.integers(1, 80), dft_length=st.sampled_from([16, 64, 100, 256, 400, 512]),
       rate=st.sampled_from([8000, 16000, 22050, 44100]),
       low=st.floats(0, 0.2), high=st.floats(0.3, 0.99),
       output=st.sampled_from(_TYPES), constant=st.booleans(),
       threads=st.sampled_from([1, 2]))
def test_mel_weight_matrix_equals_onnxruntime(mels: int, dft_length: int, rate: int,
                                              low: float, high: float, output: int,
                                              constant: bool, threads: int) -> None:
    nyquist = rate / 2
    inputs = [np.array(mels, np.int64), np.array(dft_length, np.int64),
              np.array(rate, np.int64), np.array(low * nyquist, np.float32),
              np.array(high * nyquist, np.float32)]
    model, feeds = one_node("MelWeightMatrix", 17, inputs, {"output_datatype": output},
                            constants=(0, 1, 2, 3, 4) if constant else ())
    assert_float_bits_agree(model, feeds, threads)


@pytest.mark.parametrize("output", [TensorProto.FLOAT16, TensorProto.BFLOAT16])
def test_a_float16_window_is_refused(output: int) -> None:
    model, feeds = one_node("HannWindow", 17, [np.array(8, np.int64)],
                            {"output_datatype": output})
    for backend in ("reference", "native"):
        with pytest.raises(UnsupportedOpError, match="function body"):
            Session(model, backend=backend).run(feeds)


def test_a_constant_empty_window_is_refused_at_load() -> None:
    # (ONNX Runtime too: its shape inference wants size > 0; a fed 0 gives an empty window)
    model, feeds = one_node("HannWindow", 17, [np.array(0, np.int64)], constants=(0,))
    with pytest.raises(LowpError):
        Session(model).run(feeds)


@pytest.mark.parametrize("op", ["HannWindow", "MelWeightMatrix", "STFT", "DFT"])
def test_a_fed_size_sets_the_shape_on_every_run(op: str) -> None:
    # (a Shape of the op's output is folded only where its size inputs are fixed values)
    x = np.random.default_rng(0).standard_normal((1, 40, 2)).astype(np.float32)
    first: dict[str, list[np.ndarray | None]] = {
        "HannWindow": [np.array(8, np.int64)],
        "MelWeightMatrix": [np.array(8, np.int64), np.array(64, np.int64),
                            np.array(16000, np.int64), np.array(20, np.float32),
                            np.array(7000, np.float32)],
        "STFT": [x, np.array(4, np.int64), None, np.array(16, np.int64)],
        "DFT": [x, np.array(20, np.int64), np.array(1, np.int64)]}
    second = list(first[op])
    sized = 1 if op in ("STFT", "DFT") else 0       # the size, the step, the length
    second[sized] = np.asarray(second[sized] + 3, np.int64)
    model, feeds = one_node(op, 20, first[op])
    model.graph.node[0].output[0] = "spectrum"
    model.graph.node.append(onnx.helper.make_node("Shape", ["spectrum"], ["y"]))
    _, other = one_node(op, 20, second)
    for backend in ("reference", "native"):
        session = Session(model, backend=backend)
        for f in (feeds, other, feeds):
            np.testing.assert_array_equal(session.run(f)["y"], onnxruntime_run(model, f)[0])
