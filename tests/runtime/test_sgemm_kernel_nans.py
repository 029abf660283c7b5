"""Which NaN MLAS's general SGEMM kernel hands on where NaNs meet, against ONNX Runtime bit
for bit on every instruction-set path lowp has here (docs/operators.md (O349)): each step's
NaN operand replaces the running sum's; of an element of A and one of B that are both NaNs,
A's in MLAS's AVX-512 strips of 32 columns and B's in the last strip of at most 16. Before,
the chain's NaN was the compiler's operand order: the avx2 and scalar paths (LOWP_ISA)
handed on A's everywhere, the avx512 path too for row tiles of 2 and 3 (repro item 295)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import lowp
from lowp.runtime import native_backend as nb
from lowp.runtime import native_float

from .ort_agreement import onnxruntime_run
from .test_sgemm_one_row_nans import _nans

PATHS = nb.available_paths()
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")


def _matmul(m: int, k: int, n: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [k, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _assert_paths_agree(m: int, k: int, n: int, a: np.ndarray, b: np.ndarray,
                        threads: int) -> None:
    """lowp's native backend and its reference (whose products are the same native kernel)
    give ONNX Runtime's bits with each path forced."""
    model, feeds = _matmul(m, k, n), {"a": a, "b": b}
    theirs = onnxruntime_run(model, feeds, threads)[0].view(np.uint32)
    for path in PATHS:
        with nb.use_path(path):
            for backend in ("native", "reference"):
                ours = lowp.Session(model, backend=backend, threads=threads).run(dict(feeds))["y"]
                np.testing.assert_array_equal(ours.view(np.uint32), theirs,
                                              err_msg=f"{path} {backend} {threads} threads")


@pytest.mark.parametrize("n", [7, 16, 17, 40, 48, 65])
@pytest.mark.parametrize("m", [2, 3, 5, 12, 13])
def test_a_and_b_nans_at_the_same_k(m: int, n: int) -> None:
    # column 1 of A and row 1 of B NaNs of payloads 1 and 2; row 2 of A a NaN of payload 3
    # at k = 5 (after which the sum is NaN, and row 2's k = 1 NaN replaced): ONNX Runtime
    # hands on B's in the last n % 32 <= 16 columns, A's elsewhere
    k = 8
    a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
    a[:, 1] = np.uint32(0x7FC00001).view(np.float32)
    b[1, :] = np.uint32(0x7FC00002).view(np.float32)
    a[min(2, m - 1), 5] = np.uint32(0x7FC00003).view(np.float32)
    _assert_paths_agree(m, k, n, a, b, 1)


@settings(max_examples=20, deadline=None)
@given(m=st.integers(2, 30), k=st.sampled_from([1, 3, 8, 17, 300]), n=st.integers(2, 70),
       share=st.sampled_from([0.02, 0.3]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_products_hand_on_onnxruntimes_nan_on_every_path(m, k, n, share, threads, seed):
    # NaNs of random payloads, signs, quiet or signalling, in fed A and B (k = 300: two K
    # blocks); infinities make NaNs of their own (inf * 0 is x86's default NaN)
    rng = np.random.default_rng(seed)
    a = _nans(rng, (m, k), share, rng.standard_normal((m, k)))
    b = _nans(rng, (k, n), share, rng.standard_normal((k, n)))
    a[rng.random((m, k)) < share / 2] = np.inf
    b[rng.random((k, n)) < share / 2] = 0.0
    _assert_paths_agree(m, k, n, a, b, threads)
