"""com.microsoft MatMulNBits nodes in the file (ONNX Runtime's MatMulNBitsQuantizer writes
them): lowp reads each as DequantizeLinear(blockwise weight) -> MatMul (lowp.formats.qoperator)
and runs it as that node, never as what ONNX Runtime would fuse around the QDQ form: a
following Add with a (1, N) constant stays an Add (the QDQ form's MatMul + Add becomes a float
Gemm), a following Add with an (N,) constant is fused as ONNX Runtime fuses it into the node.
Accuracy level 4 only; other levels are refused by name (docs/operators.md (O176);
evals/corpus/repro/README.md 159)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import ModelProto, helper, numpy_helper

import lowp
from lowp.errors import UnsupportedOpError
from lowp.runtime import native_backend as nb
from tests.runtime.test_ort_matmul_nbits_blocks import _assert_bits, _contrib_model, _ort

PATHS = nb.available_paths()


def _file_model(m: int, k: int, n: int, bits: int, block: int, *, zero_point: bool,
                bias: bool, after: str, seed: int, level: int = 4) -> ModelProto:
    """One MatMulNBits node, then `after` on its output ('' nothing, 'add' an (N,) constant,
    'add_1n' a (1, N) constant, 'relu')."""
    rng = np.random.default_rng(seed)
    blocks, top = -(-k // block), 1 << bits
    w = rng.integers(0, top, (n, blocks, block)).astype(np.uint8)
    s = rng.uniform(0.001, 0.02, (n, blocks)).astype(np.float32)
    z = rng.integers(0, top, (n, blocks)).astype(np.uint8) if zero_point else None
    b = rng.normal(0, 0.3, n).astype(np.float32) if bias else None
    model = _contrib_model(k, n, m, w, s, z, b, bits, block)
    node = model.graph.node[0]
    for a in node.attribute:
        if a.name == "accuracy_level":
            a.i = level
    if after:
        node.output[0] = "y0"
        if after == "relu":
            model.graph.node.append(helper.make_node("Relu", ["y0"], ["y"]))
        else:
            c = rng.normal(0, 0.3, (n,) if after == "add" else (1, n)).astype(np.float32)
            model.graph.initializer.append(numpy_helper.from_array(c, "c"))
            model.graph.node.append(helper.make_node("Add", ["y0", "c"], ["y"]))
    return model


def _check(model: ModelProto, x: np.ndarray, threads: int) -> None:
    want = _ort(model, x, threads)
    for path in PATHS:
        with nb.use_path(path):
            for backend in ("auto", "reference"):
                got = lowp.Session(model, backend=backend, threads=threads).run({"x": x})["y"]
                _assert_bits(got, want)


@pytest.mark.parametrize("after", ["", "add", "add_1n", "relu"])
@pytest.mark.parametrize("bits,block", [(4, 32), (8, 32), (4, 128), (8, 16), (4, 64)])
@pytest.mark.parametrize("threads", [1, 2])
def test_matmul_nbits_of_the_file_equals_onnxruntime(after: str, bits: int, block: int,
                                                     threads: int) -> None:
    """Before, lowp refused every MatMulNBits node of a file ("no conversion of this
    quantized operator to QDQ")."""
    model = _file_model(5, 257, 64, bits, block, zero_point=True, bias=False, after=after,
                        seed=bits * block)
    x = np.random.default_rng(block).normal(0, 1, (5, 257)).astype(np.float32)
    _check(model, x, threads)


@settings(max_examples=25, deadline=None)
@given(bits=st.sampled_from([4, 8]), block=st.sampled_from([16, 32, 64, 128]),
       m=st.sampled_from([1, 2, 3, 6]), k=st.integers(1, 400), n=st.sampled_from([1, 4, 9]),
       zero_point=st.booleans(), bias=st.booleans(),
       after=st.sampled_from(["", "add", "add_1n", "relu"]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_any_matmul_nbits_node_equals_onnxruntime(bits: int, block: int, m: int, k: int,
                                                  n: int, zero_point: bool, bias: bool,
                                                  after: str, threads: int,
                                                  seed: int) -> None:
    """Any shape, block, bits, zero points (or the default 2^(bits - 1)), the node's own bias
    and what follows it: both backends on every instruction-set path, bit for bit."""
    model = _file_model(m, k, n, bits, block, zero_point=zero_point, bias=bias, after=after,
                        seed=seed)
    x = np.random.default_rng(seed).normal(0, 1, (m, k)).astype(np.float32)
    _check(model, x, threads)


@pytest.mark.parametrize("level", [0, 1])
def test_other_accuracy_levels_are_refused_by_name(level: int) -> None:
    """ONNX Runtime computes those in float32 (MLAS's float kernel), which lowp does not
    mirror: refused at load, naming the node and the level."""
    model = _file_model(2, 64, 4, 4, 32, zero_point=False, bias=False, after="", seed=0,
                        level=level)
    with pytest.raises(UnsupportedOpError, match=f"accuracy_level {level}"):
        lowp.Session(model)
