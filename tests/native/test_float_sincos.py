"""The native float32 Sin and Cos (ONNX Runtime's: Eigen's psincos_float on packets of four
from the start, sinf / cosf on the last n % 4 values) equal lowp.eigen_math.sin / cos bit for
bit on any float32 (huge arguments reduced by Payne-Hanek, NaN payloads, infinities, -0,
subnormals), on every path and thread count; ONNX Runtime's own Sin and Cos give the same
bits; a model with Sin and Cos replays as one Program with ONNX Runtime's values."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import helper

from lowp import Session, eigen_math
from lowp.runtime import native_backend, native_float
from lowp.runtime.float_ops import FLOAT_OPS
from tests.runtime.ort_agreement import onnxruntime_run

pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
PATHS = native_backend.available_paths()
OPS = {"Sin": (eigen_math.sin, False), "Cos": (eigen_math.cos, True)}
# IEEE's specials, the thresholds of the huge reduction (25966 for sin, 18838 for cos) and
# their neighbours, multiples of pi/2 and pi/4 near where the quadrant changes, the largest
# float, subnormals
SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 1.1754942e-38,
                     -5.9e-39, 1.0, -1.0, 0.7853982, 0.7853981, 1.5707963, 1.5707964, -1.5707964,
                     3.1415927, -3.1415925, 4.712389, 6.2831855, 100.0, -1000.5, 18837.998,
                     18838.0, -18838.0, 18838.002, 25965.998, 25966.0, -25966.0, 25966.002,
                     1e5, 1e10, -1e20, 1.7e38, 3.4028235e38, -3.4028235e38, 8388608.0,
                     12582912.0, 16777216.0], np.float32)


def _native(x: np.ndarray, cosine: bool, threads: int = 1) -> np.ndarray:
    y = np.empty_like(x)
    native_backend._native.float_sincos(x.reshape(-1), y.reshape(-1), cosine, threads)
    return y


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("op", list(OPS))
@given(bits=hnp.arrays(np.uint32, st.integers(0, 300)), threads=st.sampled_from([1, 2]),
       specials_first=st.booleans())
def test_equals_eigen_form_on_any_bits(path, op, bits, threads, specials_first):
    """Any float32 bit pattern (signalling and quiet NaNs with payloads, subnormals, huge
    values), every length modulo 4 (the last n % 4 values go through sinf / cosf)."""
    parts = [SPECIALS, bits.view(np.float32)]
    x = np.concatenate(parts if specials_first else parts[::-1])
    reference, cosine = OPS[op]
    with native_backend.use_path(path):
        got = _native(x, cosine, threads)
    np.testing.assert_array_equal(_bits(got), _bits(reference(x)))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("op", list(OPS))
@given(x=hnp.arrays(np.float32, st.integers(1, 200),
                    elements=st.floats(-1e6, 1e6, width=32)))
def test_equals_eigen_form_around_the_huge_thresholds(path, op, x):
    """Values of either reduction (and blocks that mix them) in the range models use."""
    reference, cosine = OPS[op]
    with native_backend.use_path(path):
        got = _native(x, cosine)
    np.testing.assert_array_equal(_bits(got), _bits(reference(x)))


@pytest.mark.parametrize("op", list(OPS))
def test_sweep_of_bit_patterns_on_two_threads(op):
    """Every 4099th bit pattern (1M values: both signs, NaN, subnormal, huge), in thread
    chunks, with a ragged tail, on every path."""
    x = (np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)[:-3]).view(np.float32)
    assert x.size % 4 != 0
    reference, cosine = OPS[op]
    want = _bits(reference(x))
    for path in PATHS:
        with native_backend.use_path(path):
            np.testing.assert_array_equal(_bits(_native(x, cosine, 2)), want, err_msg=path)


@pytest.mark.parametrize("op", list(OPS))
def test_dense_sweep_of_the_common_range(op):
    """Every float32 in [0, 8) once its last 5 significand bits are dropped (31M / 32: the
    range a DFT's angles and positional encodings cover, both signs), in one array."""
    lo, hi = np.float32(2**-20).view(np.uint32), np.float32(8).view(np.uint32)
    pos = np.arange(lo, hi, 32, dtype=np.uint32).view(np.float32)
    x = np.concatenate([pos, -pos, np.float32([1.5])])
    reference, cosine = OPS[op]
    np.testing.assert_array_equal(_bits(_native(x, cosine, 2)), _bits(reference(x)))


def _one_node(op: str, shape: list[int | None]) -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], ["y"])
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", 1, shape)],
                              [helper.make_tensor_value_info("y", 1, shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("n", [1, 3, 4, 7, 64, 1001])
def test_onnxruntime_gives_the_same_bits(op, n):
    """ONNX Runtime's own Sin and Cos: random angles, large values and the specials."""
    rng = np.random.default_rng(n)
    x = np.concatenate([rng.uniform(-10, 10, n), rng.uniform(-1e5, 1e5, n),
                        np.exp(rng.uniform(-100, 88, n)) * rng.choice([-1, 1], n),
                        SPECIALS]).astype(np.float32)
    x = x[:x.size - x.size % 7]    # (another length modulo 4)
    want = onnxruntime_run(_one_node(op, [x.size]), {"x": x})[0]
    reference, cosine = OPS[op]
    for path in PATHS:
        with native_backend.use_path(path):
            np.testing.assert_array_equal(_bits(_native(x, cosine)), _bits(want), err_msg=path)
    np.testing.assert_array_equal(_bits(reference(x)), _bits(want))


@pytest.mark.parametrize("op", list(OPS))
def test_onnxruntime_at_two_threads_gives_the_same_bits(op):
    """ONNX Runtime's Sin and Cos at two intra-op threads: the same values as at one (the
    one-thread form, a single tail of n % 4 values), as the native kernel at two threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(_one_node(op, [None]).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    x = np.random.default_rng(9).uniform(-100, 100, 100_003).astype(np.float32)
    want = session.run(None, {"x": x})[0]
    np.testing.assert_array_equal(_bits(_native(x, OPS[op][1], 2)), _bits(want))


@pytest.mark.parametrize("op", list(OPS))
def test_operator_runs_natively_and_falls_back(op):
    x = np.random.default_rng(0).uniform(-4, 4, (3, 5)).astype(np.float32)
    native = getattr(native_float, op.lower())(x)
    assert native is not None and native.shape == x.shape
    with native_float.disabled():
        assert getattr(native_float, op.lower())(x) is None
        fallback = FLOAT_OPS[op](x)
    np.testing.assert_array_equal(_bits(native), _bits(OPS[op][0](x)))
    np.testing.assert_array_equal(_bits(FLOAT_OPS[op](x)), _bits(fallback))
    assert getattr(native_float, op.lower())(np.zeros((2, 0), np.float32)) is None


def test_size_check():
    with pytest.raises(ValueError, match="same sizes"):
        native_backend._native.float_sincos(np.zeros(3, np.float32), np.zeros(2, np.float32),
                                            False)


def test_sin_and_cos_replay_in_a_program_with_onnxruntime_outputs():
    """A DFT's twiddles: Sin and Cos of a product, ONNX Runtime's values on every run, no
    step from Python once recorded."""
    nodes = [helper.make_node("Mul", ["x", "w"], ["a"]), helper.make_node("Sin", ["a"], ["s"]),
             helper.make_node("Cos", ["a"], ["c"]), helper.make_node("Add", ["s", "c"], ["y"])]
    w = helper.make_tensor("w", 1, [], [0.0245436926])
    graph = helper.make_graph(nodes, "dft", [helper.make_tensor_value_info("x", 1, [3, 257])],
                              [helper.make_tensor_value_info("y", 1, [3, 257])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = Session(model, threads=1)
    rng = np.random.default_rng(5)
    for run in range(4):
        x = rng.uniform(-3000, 3000, (3, 257)).astype(np.float32)
        np.testing.assert_array_equal(session.run({"x": x})["y"],
                                      onnxruntime_run(model, {"x": x})[0], err_msg=f"run {run}")
    replayer = session._replayer
    assert replayer is not None
    signature = (("x", (3, 257), "<f4"),)
    assert replayer.plain_steps(signature) == []
    assert replayer.native_only(signature)
