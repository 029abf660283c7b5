"""DFT and STFT equal ONNX Runtime bit for bit (docs/operators.md (O250), (O251)): the
radix-2 FFT of power-of-two lengths, Bluestein's chirp-z transform of the others, real and
complex signals, inverse, one-sided, zero-padded and cut lengths, windows, NaNs; float32,
float64 and float16 (between Casts), both backends at 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.errors import UnsupportedOpError
from lowp.runtime import Session

from .ort_agreement import assert_float_bits_agree
from .signal_models import one_node, with_nans

_LENGTHS = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 25, 31, 32, 64, 100])
_DTYPES = st.sampled_from([np.float32, np.float64, np.float16])


@settings(max_examples=40, deadline=None)
@given(length=_LENGTHS, batch=st.integers(1, 3), complex_input=st.booleans(),
       inverse=st.booleans(), onesided=st.booleans(), dtype=_DTYPES,
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_dft_17_equals_onnxruntime(length: int, batch: int, complex_input: bool,
                                   inverse: bool, onesided: bool, dtype: type,
                                   threads: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    onesided = onesided and not complex_input and not inverse
    x = rng.standard_normal((batch, length, 2 if complex_input else 1)).astype(dtype)
    model, feeds = one_node("DFT", 17, [x], {"inverse": int(inverse),
                                              "onesided": int(onesided)})
    assert_float_bits_agree(model, feeds, threads)


@settings(max_examples=30, deadline=None)
@given(length=_LENGTHS, dft_length=_LENGTHS, axis=st.sampled_from([0, 1, 2, -2, -3]),
       complex_input=st.booleans(), constant=st.booleans(), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16))
def test_dft_20_axis_and_length_equal_onnxruntime(length: int, dft_length: int, axis: int,
                                                  complex_input: bool, constant: bool,
                                                  threads: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = [3, 2, 2 if complex_input else 1]
    shape[axis % 2] = length
    x = rng.standard_normal([2, *shape]).astype(np.float32)
    if dft_length & (dft_length - 1) and length >= 2 * dft_length - 1:
        dft_length = length        # a chirp-z buffer shorter than the signal (see below)
    model, feeds = one_node("DFT", 20, [x, np.array(dft_length, np.int64),
                                        np.array(axis, np.int64)],
                            constants=(1, 2) if constant else ())
    assert_float_bits_agree(model, feeds, threads)


@pytest.mark.parametrize("length", [8, 12])
@pytest.mark.parametrize("threads", [1, 2])
def test_dft_keeps_onnxruntime_nans_and_signed_zeros(length: int, threads: int) -> None:
    rng = np.random.default_rng(length)
    x = with_nans(rng.standard_normal((3, length, 2)).astype(np.float32), rng, 2)
    x[1] = 0.0
    x[1, ::3] = -0.0
    model, feeds = one_node("DFT", 17, [x])
    assert_float_bits_agree(model, feeds, threads)


@settings(max_examples=40, deadline=None)
@given(frame=st.sampled_from([2, 3, 4, 5, 8, 10, 16, 25]), extra=st.integers(0, 30),
       step=st.integers(1, 6), window=st.booleans(), frame_input=st.booleans(),
       complex_input=st.booleans(), onesided=st.booleans(), dtype=_DTYPES,
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_stft_equals_onnxruntime(frame: int, extra: int, step: int, window: bool,
                                 frame_input: bool, complex_input: bool, onesided: bool,
                                 dtype: type, threads: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    window = window and not complex_input
    frame_input = frame_input or not window
    shape = (2, frame + extra) + ((2,) if complex_input else ())
    x = rng.standard_normal(shape).astype(dtype)
    inputs = [x, np.array(step, np.int64),
              rng.standard_normal(frame).astype(dtype) if window else None,
              np.array(frame, np.int64) if frame_input else None]
    model, feeds = one_node("STFT", 17, inputs, {"onesided": int(onesided)}, constants=(1, 3))
    assert_float_bits_agree(model, feeds, threads)


def _refusal(model_and_feeds: tuple, match: str) -> None:
    model, feeds = model_and_feeds
    for backend in ("reference", "native"):
        with pytest.raises(UnsupportedOpError, match=match):
            Session(model, backend=backend).run(feeds)


@settings(max_examples=30, deadline=None)
@given(bins=st.integers(1, 40), axis=st.sampled_from([1, 2, -2]), given_length=st.booleans(),
       dtype=_DTYPES, threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_inverse_one_sided_dft_equals_onnxruntime(bins: int, axis: int, given_length: bool,
                                                  dtype: type, threads: int,
                                                  seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = [2, 3, 3, 2]
    shape[axis % 4] = bins
    x = rng.standard_normal(shape).astype(dtype)
    inputs = [x, None, np.array(axis, np.int64)]
    if given_length and bins > 1:
        inputs[1] = np.array(2 * (bins - 1) + int(rng.integers(0, 2)), np.int64)
    model, feeds = one_node("DFT", 20, inputs, {"inverse": 1, "onesided": 1},
                            constants=(1, 2))
    assert_float_bits_agree(model, feeds, threads)


def test_inverse_one_sided_dft_of_another_length_is_refused() -> None:
    x = np.ones((1, 5, 2), np.float32)
    _refusal(one_node("DFT", 20, [x, np.array(20, np.int64)], {"inverse": 1, "onesided": 1},
                      constants=(1,)), "inverse one-sided DFT of 5 values to 20")


def test_a_chirp_z_transform_shorter_than_the_signal_is_refused() -> None:
    x = np.ones((1, 40, 1), np.float32)
    _refusal(one_node("DFT", 20, [x, np.array(5, np.int64)], constants=(1,)),
             "reads past its buffer")


def test_a_window_on_a_complex_stft_is_refused() -> None:
    x = np.ones((1, 20, 2), np.float32)
    _refusal(one_node("STFT", 17, [x, np.array(2, np.int64), np.ones(4, np.float32)],
                      constants=(1,)), "complex pairs")
