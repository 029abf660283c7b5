"""The native InstanceNormalization (float32, ONNX Runtime's order: docs/operators.md (O35),
(O221), (O287)) equals its numpy form, lowp.runtime.float_nn.InstanceNormalization, bit for
bit (NaN payloads included) on every instruction-set path and thread count, runs inside
the native Programs, and a small model equals ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp import Session
from lowp.runtime import native_backend, native_float, program
from lowp.runtime.float_nn import InstanceNormalization
from lowp.runtime.tape import recording
from tests.runtime.ort_agreement import assert_bits_agree

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
EPSILONS = st.sampled_from([1e-5, 1e-6, 0.1, 0.0])
SPREADS = st.sampled_from([1e-20, 1e-3, 1.0, 60.0, 3e4, 1e19])
# spatial axes: 1 to 3 of them (3-D to 5-D inputs), sizes 1, odd and even, so that plane
# lengths take every remainder mod 4 and planes start anywhere against the 16-byte blocks
SPATIAL = st.lists(st.integers(1, 13), min_size=1, max_size=3).filter(
    lambda s: int(np.prod(s)) <= 600)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


def _nans(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` NaNs of random payloads and signs, quiet or signalling."""
    bits = (rng.integers(1, 1 << 22, n).astype(np.uint32) | np.uint32(0x7F800000)
            | (rng.integers(0, 2, n).astype(np.uint32) << 31)
            | (rng.integers(0, 2, n).astype(np.uint32) << 22))
    return bits.view(np.float32)


def _values(rng: np.random.Generator, shape: tuple[int, ...], spread: float,
            specials: float) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (rng.standard_normal(shape) * spread).astype(np.float32)
    if specials and x.size:
        pick = rng.random(shape)
        x[pick < specials / 3] = np.inf
        x[(pick >= specials / 3) & (pick < specials / 2)] = -np.inf
        hit = pick >= 1 - specials / 2
        x[hit] = _nans(rng, int(hit.sum()))
        x[(pick >= 0.5) & (pick < 0.52)] = np.float32(-0.0)
    return x


def _same(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float, path: str,
          threads: int) -> None:
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.instance_norm(x, scale, bias, eps)
    with native_float.disabled(), np.errstate(all="ignore"):
        want = InstanceNormalization(x, scale, bias, epsilon=eps)
    assert got is not None and got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 7), spatial=SPATIAL, seed=st.integers(0, 2**31),
       spread=SPREADS, eps=EPSILONS, specials=st.sampled_from([0.0, 0.0, 0.02, 0.3]),
       param_nans=st.booleans(), threads=st.sampled_from([1, 2]))
def test_native_instance_norm_equals_its_numpy_form(path, n, c, spatial, seed, spread, eps,
                                                    specials, param_nans, threads):
    rng = np.random.default_rng(seed)
    x = _values(rng, (n, c, *spatial), spread, specials)
    scale, bias = (rng.standard_normal(c).astype(np.float32) for _ in range(2))
    if param_nans:
        scale[rng.random(c) < 0.4] = _nans(rng, 1)[0]
        bias[rng.random(c) < 0.4] = _nans(rng, 1)[0]
    _same(x, scale, bias, float(np.float32(eps)), path, threads)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("w", [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 19])
def test_nan_payloads_in_every_plane_position(path, w):
    """x all NaNs of one payload per plane against NaN scales and biases, and single NaNs:
    the peel, the packets and the three-value tail of planes starting at every offset."""
    c = 5
    x = (np.uint32(0x7FC00000) | (np.arange(2 * c * w, dtype=np.uint32) + 1)).view(
        np.float32).reshape(2, c, w)
    scale = (np.uint32(0x7FA10000) | np.arange(c, dtype=np.uint32)).view(np.float32)
    bias = (np.uint32(0xFFC20000) | np.arange(c, dtype=np.uint32)).view(np.float32)
    scale[1], bias[2] = 1.5, -0.25
    for threads in (1, 2):
        _same(x, scale, bias, 1e-5, path, threads)
        one = np.arange(2 * c * w, dtype=np.float32).reshape(2, c, w)
        one[0, :, w // 2] = x[0, :, w // 2]
        _same(one, scale, bias, 1e-5, path, threads)


@pytest.mark.parametrize("path", PATHS)
def test_special_planes(path):
    """Planes of zeros (0 / 0 with eps = 0), signed zeros, overflowing sums and squares,
    subnormals, infinities of both signs, an infinite scale."""
    for w in (3, 4, 7, 9, 64, 67):
        x = np.zeros((1, 8, w), np.float32)
        x[0, 1, ::2] = -0.0
        x[0, 2] = 3e38
        x[0, 3, ::3] = -3e38
        x[0, 4] = 1e-45
        x[0, 5, 0], x[0, 6, w - 1] = np.inf, -np.inf
        x[0, 7] = np.arange(w, dtype=np.float32)
        scale = np.linspace(-2, 2, 8).astype(np.float32)
        scale[7] = np.inf
        bias = np.linspace(1, -1, 8).astype(np.float32)
        for eps in (0.0, float(np.float32(1e-5))):
            _same(x, scale, bias, eps, path, 1)


def test_large_planes_split_over_threads():
    """Planes long enough for the pool (N * C planes split over two threads)."""
    rng = np.random.default_rng(5)
    x = _values(rng, (2, 7, 61, 67), 3.0, 0.0)
    scale, bias = (rng.standard_normal(7).astype(np.float32) for _ in range(2))
    for path in PATHS:
        for threads in (1, 2):
            _same(x, scale, bias, 1e-5, path, threads)


def test_the_operator_runs_the_kernel_and_other_inputs_the_reference():
    """float32 with float32 parameters is one recorded kernel call (a Program step); a
    float64 input runs in numpy."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 5, 6)).astype(np.float32)
    scale, bias = (rng.standard_normal(3).astype(np.float32) for _ in range(2))
    with recording() as tape:
        InstanceNormalization(x, scale, bias, epsilon=1e-5)
    assert [program.appenders()[fn][0] for fn, _ in tape] == ["float_instance_norm"]
    with recording() as tape:
        y64 = InstanceNormalization(x.astype(np.float64), scale, bias)
    assert tape == [] and y64.dtype == np.float64


def _unet_block(shape: tuple[int, ...], seed: int) -> onnx.ModelProto:
    """Conv -> InstanceNormalization -> Relu -> InstanceNormalization, as in a UNet block."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    inits = [numpy_helper.from_array(rng.standard_normal((c, c, 3, 3)).astype(np.float32) * 0.3,
                                     "w"),
             numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "s1"),
             numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "s2"),
             numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "b2")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("InstanceNormalization", ["h", "s1", "b1"], ["n1"]),
             helper.make_node("Relu", ["n1"], ["r"]),
             helper.make_node("InstanceNormalization", ["r", "s2", "b2"], ["y"], epsilon=1e-3)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 9), h=st.integers(1, 21), w=st.integers(1, 23),
       seed=st.integers(0, 2**31), threads=st.sampled_from([1, 2]))
def test_session_equals_onnxruntime(n, c, h, w, seed, threads):
    """Session (numpy reference; native backend recorded, then replayed) against ONNX
    Runtime bit for bit."""
    model = _unet_block((n, c, h, w), seed)
    x = np.random.default_rng(seed + 1).standard_normal((n, c, h, w)).astype(np.float32)
    assert_bits_agree(model, {"x": x}, threads)


def test_the_steps_replay_as_one_program():
    """The two InstanceNormalizations replay inside the Program of the whole graph (one
    native call per run)."""
    shape = (1, 4, 9, 7)
    model = _unet_block(shape, 3)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    session = Session(model, backend="native", threads=2)
    for _ in range(3):
        session.run({"x": x})
    assert [s.op_type for s in session.steps].count("InstanceNormalization") == 2
    assert session._replayer is not None
    assert session._replayer.programs((("x", shape, "<f4"),)) == [len(session.steps)]
