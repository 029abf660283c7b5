"""The native SimplifiedLayerNormalization (RMSNorm in ONNX Runtime's order, (O49)) equals
its numpy form, lowp.ort_math.simplified_layer_norm_rows, bit for bit on every
instruction-set path and thread count (Y and InvStdDev), and a one-node model equals ONNX
Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp import Session, ort_math
from lowp.runtime import native_backend, native_float
from lowp.runtime.float_nn import SimplifiedLayerNormalization
from tests.runtime.ort_agreement import onnxruntime_run
from tests.runtime.test_ort_fusions import _rms_norm

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
# row lengths around the generic loop's end (16), whole blocks of 8 and every tail length
WIDTHS = st.one_of(st.integers(1, 40), st.sampled_from([63, 64, 65, 127, 128, 129, 300, 1000]))
EPSILONS = st.sampled_from([1e-5, 1e-6, 1e-12, 0.1, 0.0])
SPREADS = st.sampled_from([1e-20, 1e-3, 1.0, 60.0, 3e4, 1e19])


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


def _same(got: tuple[np.ndarray, np.ndarray] | None, x: np.ndarray, scale: np.ndarray,
          eps: float) -> None:
    assert got is not None
    with np.errstate(all="ignore"):
        y, inv = ort_math.simplified_layer_norm_rows(x, scale, eps)
    for g, r in zip(got, (y, inv.reshape(-1, 1)), strict=True):
        assert g.dtype == np.float32 and g.shape == r.shape
        np.testing.assert_array_equal(_bits(g), _bits(r))


def _rows(seed: int, rows: int, n: int, spread: float, specials: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        x = (rng.standard_normal((rows, n)) * spread).astype(np.float32)
    if specials and x.size:
        pick = rng.random((rows, n))
        x[pick < 0.04] = np.float32(0.0)
        x[(pick >= 0.04) & (pick < 0.06)] = np.float32(-0.0)
        x[(pick >= 0.06) & (pick < 0.07)] = np.float32(1e-45)     # subnormal
        x[(pick >= 0.07) & (pick < 0.075)] = np.inf
        x[(pick >= 0.075) & (pick < 0.08)] = np.nan
    return x


@pytest.mark.parametrize("path", PATHS)
@given(rows=st.integers(1, 20), n=WIDTHS, seed=st.integers(0, 2**16), spread=SPREADS,
       eps=EPSILONS, specials=st.booleans(), threads=st.sampled_from([1, 2]))
def test_native_simplified_layer_norm_equals_its_numpy_form(path, rows, n, seed, spread, eps,
                                                            specials, threads):
    x = _rows(seed, rows, n, spread, specials)
    scale = np.random.default_rng(seed + 1).standard_normal(n).astype(np.float32)
    eps = float(np.float32(eps))
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.simplified_layer_norm(x, n, scale, eps, (rows, 1))
    _same(got, x, scale, eps)


@pytest.mark.parametrize("path", PATHS)
def test_native_simplified_layer_norm_special_rows(path):
    """Rows of zeros (0 / 0 with eps = 0), of both signed zeros, overflowing squares,
    subnormals only, an infinity and a NaN; on both sides of the 16-value boundary."""
    for n in (9, 15, 16, 17, 24):
        x = np.zeros((7, n), np.float32)
        x[1, ::2] = -0.0
        x[2] = 3e38
        x[2, ::3] = -3e38
        x[3] = 1e-45
        x[4, 0], x[5, n - 1] = np.inf, np.nan
        x[6] = np.arange(n, dtype=np.float32)
        scale = np.linspace(-2, 2, n).astype(np.float32)
        for eps in (0.0, float(np.float32(1e-5))):
            with native_backend.use_path(path):
                got = native_float.simplified_layer_norm(x, n, scale, eps, (7, 1))
            _same(got, x, scale, eps)


@pytest.mark.parametrize("axis", [-1, -2, 1])
@pytest.mark.parametrize("batch", [0, 2])
def test_operator_uses_the_kernel_with_the_same_results(axis, batch):
    """The float operator runs the kernel for float32 (any axis; InvStdDev shaped as ONNX
    says; an empty batch gives empty outputs) and gives the numpy form's values."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((batch, 5, 24)).astype(np.float32)
    n = int(np.prod(x.shape[axis:]))
    scale = rng.standard_normal(n).astype(np.float32).reshape(x.shape[axis:])
    got = SimplifiedLayerNormalization(x, scale, axis=axis, epsilon=1e-6)
    with native_float.disabled():
        ref = SimplifiedLayerNormalization(x, scale, axis=axis, epsilon=1e-6)
    for g, r in zip(got, ref, strict=True):
        assert g.shape == r.shape and g.dtype == np.float32
        np.testing.assert_array_equal(_bits(g), _bits(r))


def _one_node(shape: tuple[int, ...], eps: float) -> onnx.ModelProto:
    n = shape[-1]
    node = helper.make_node("SimplifiedLayerNormalization", ["x", "scale"], ["y", "inv"],
                            axis=-1, epsilon=eps)
    graph = helper.make_graph(
        [node], "rms", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape)),
                        helper.make_tensor_value_info("scale", TensorProto.FLOAT, [n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape)),
         helper.make_tensor_value_info("inv", TensorProto.FLOAT, [*shape[:-1], 1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=25)
@given(rows=st.integers(0, 6), n=WIDTHS, seed=st.integers(0, 2**16),
       spread=st.sampled_from([1e-3, 1.0, 60.0, 3e4]), eps=EPSILONS)
def test_one_node_model_equals_onnx_runtime(rows, n, seed, spread, eps):
    """Y and InvStdDev of the operator (native kernel) equal those of ONNX Runtime's
    one-node model, 0 rows included."""
    x = _rows(seed, rows, n, spread, specials=False).reshape(1, rows, n)
    scale = np.random.default_rng(seed + 1).standard_normal(n).astype(np.float32)
    eps = float(np.float32(eps))
    theirs = onnxruntime_run(_one_node(x.shape, eps), {"x": x, "scale": scale})
    ours = SimplifiedLayerNormalization(x, scale, epsilon=eps)
    for name, got, want in zip(("y", "inv"), ours, theirs, strict=True):
        assert got.shape == want.shape
        np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=name)


@pytest.mark.parametrize("h", [9, 96])
def test_fused_rms_norm_replays_in_a_program_with_onnxruntime_outputs(h):
    """A written-out RMSNorm, fused as ONNX Runtime fuses it, runs its
    SimplifiedLayerNormalization inside a native Program from the recorded run on (no step
    from Python), with ONNX Runtime's outputs on every run."""
    model = _rms_norm(h, 1e-6, "div", 17)
    session = Session(model, threads=1)
    rng = np.random.default_rng(h)
    for run in range(4):
        feeds = {"x": (rng.standard_normal((2, 5, h)) * 3).astype(np.float32)}
        np.testing.assert_array_equal(session.run(feeds)["y"], onnxruntime_run(model, feeds)[0],
                                      err_msg=f"run {run}")
    replayer = session._replayer
    assert replayer is not None
    signature = (("x", (2, 5, h), "<f4"),)
    assert "SimplifiedLayerNormalization" in [s.op_type for s in replayer.steps]
    assert replayer.plain_steps(signature) == []
    assert replayer.native_only(signature)
