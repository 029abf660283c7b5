"""Conformance of lowp's numpy float ops against ONNX Runtime, one-node models per case."""

from __future__ import annotations

import numpy as np
import pytest

from lowp.errors import UnsupportedOpError
from lowp.ir.graph import attributes
from lowp.runtime import conv_bias_fusion, conv_integer_fusion, native_float, per_token_fusion
from lowp.runtime.float_ops import FLOAT_OPS
from lowp.runtime.sequence_ops import SEQUENCE_OPS
from tests.runtime.float_cases import Case, all_cases, f32, make_node, run_ort

CASES = all_cases()


def run_lowp(c: Case) -> list[np.ndarray]:
    """Call the op the way the engine's executor does: converted attributes, opset and
    the node's number of outputs as keywords; at one thread, as `run_ort` (a session run
    before leaves its own thread count, and ONNX Runtime's float order differs with the
    thread count: a 9 x 300 MatMul at 2 threads is another sum)."""
    node = make_node(c)
    attrs = attributes(node)
    attrs["num_outputs"] = len(node.output)
    with native_float.threads(1):
        out = FLOAT_OPS[c.op](*c.inputs, **attrs, opset=c.opset)
    outs = list(out) if isinstance(out, tuple) else [out]
    return outs[:c.n_out]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matches_onnxruntime(case: Case) -> None:
    expected = run_ort(case)
    got = run_lowp(case)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        if case.tol == 0 or not np.issubdtype(e.dtype, np.floating):
            np.testing.assert_array_equal(g, e)
        else:
            np.testing.assert_allclose(g, e, rtol=case.tol, atol=case.tol)


def test_case_ids_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_every_registered_op_has_a_conformance_case() -> None:
    # (the sequence operators take or make sequences: tests/runtime/test_sequence_ops.py,
    # and ZipMap's sequence of maps: tests/runtime/test_ml_ops.py;
    # lowp's own fused operators, which ONNX Runtime does not know, are compared with the
    # nodes they stand for: tests/runtime/test_per_token_fusion.py,
    # tests/native/test_conv_integer_fusion.py, tests/runtime/test_conv_bias_fusion.py)
    own = {per_token_fusion.OP_TYPE, conv_integer_fusion.OP_TYPE, conv_bias_fusion.OP_TYPE}
    assert set(FLOAT_OPS) - SEQUENCE_OPS - {"ZipMap"} - own - {c.op for c in CASES} == set()


def test_conv_at_resnet_scale_equals_onnxruntime() -> None:
    # A 56x56x64 3x3 layer, the size of ResNet's first stage: lowp's float Conv gives ONNX
    # Runtime's bytes there too. Its speed is a claim of bench/float_conv_nchwc.py, not a test.
    case = Case("Conv", [f32(1, 64, 56, 56), f32(64, 64, 3, 3)], {"pads": [1, 1, 1, 1]},
                tol=0, name="resnet-scale")
    (expected,), (got,) = run_ort(case), run_lowp(case)
    assert got.shape == (1, 64, 56, 56)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("op", "inputs", "attrs"), [
    ("Conv", [f32(1, 2, 5, 5), f32(2, 2, 3, 3)], {"auto_pad": "BOGUS"}),
    ("Resize", [f32(1, 1, 4, 4), None, np.array([1, 1, 2, 2], np.float32)],
     {"mode": "area"}),
    ("Gelu", [f32(3)], {"approximate": "erf"}),
    ("BatchNormalization", [f32(1, 2, 3)] + [f32(2)] * 4, {"training_mode": 1}),
    ("Split", [f32(4)], {}),
])
def test_unsupported_attributes_raise(op: str, inputs: list[np.ndarray | None],
                                      attrs: dict[str, object]) -> None:
    with pytest.raises(UnsupportedOpError, match=op):
        FLOAT_OPS[op](*inputs, **attrs, opset=18)


def test_integer_data_movement_keeps_dtype() -> None:
    q = np.arange(24, dtype=np.int8).reshape(1, 2, 3, 4)
    for op, args, attrs in [
        ("Transpose", [], {"perm": [0, 2, 3, 1]}),
        ("MaxPool", [], {"kernel_shape": [2, 2]}),
        ("Resize", [None, np.array([1, 1, 2, 2], np.float32)], {"mode": "nearest"}),
        ("Pad", [np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)], {}),
    ]:
        out = FLOAT_OPS[op](q, *args, **attrs, opset=18)
        assert out.dtype == np.int8, op


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_rnn_batch_major_layout_equals_transposed(op: str) -> None:
    # ONNX Runtime does not run layout=1, so compare with the time-major result.
    # (its own generator: the data must not depend on which tests ran before; the two
    # layouts' products may sum in another order, a few ulps apart)
    rng = np.random.default_rng(7)

    def f32(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    x, h = f32(5, 3, 4), 6
    w, r = f32(2, gates * h, 4), f32(2, gates * h, h)
    h0 = f32(2, 3, h)
    attrs = {"hidden_size": h, "direction": "bidirectional"}
    ref = FLOAT_OPS[op](x, w, r, None, None, h0, **attrs, opset=14)
    got = FLOAT_OPS[op](x.transpose(1, 0, 2), w, r, None, None, h0.transpose(1, 0, 2),
                        layout=1, **attrs, opset=14)
    np.testing.assert_allclose(got[0], ref[0].transpose(2, 0, 1, 3), rtol=1e-5, atol=1e-5)
    for g, e in zip(got[1:], ref[1:], strict=True):
        np.testing.assert_allclose(g, e.transpose(1, 0, 2), rtol=1e-5, atol=1e-5)


def test_conv_batch_slices_equal_one_im2col(monkeypatch: pytest.MonkeyPatch) -> None:
    from lowp.runtime import float_nn
    x, w, b = f32(5, 4, 7, 6), f32(6, 2, 3, 3), f32(6)
    attrs = {"group": 2, "pads": [1, 0, 1, 2], "strides": [2, 1]}
    whole = FLOAT_OPS["Conv"](x, w, b, **attrs, opset=17)
    monkeypatch.setattr(float_nn, "_IM2COL_BYTES", 1)
    sliced = FLOAT_OPS["Conv"](x, w, b, **attrs, opset=17)
    np.testing.assert_array_equal(sliced, whole)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (2, 3, 4, 5)])
def test_prelu_before_opset_7_has_one_slope_per_channel(shape: tuple[int, ...]) -> None:
    # opset 6 PRelu (pytorch-converted PReLU_*_multiparam): slope (C,) goes along axis 1;
    # ONNX Runtime has no PRelu(6) kernel, the spec is the oracle
    x = f32(*shape)
    slope = np.array([0.1, 0.2, 0.3], np.float32)
    per_channel = slope.reshape((3,) + (1,) * (len(shape) - 2))
    got = FLOAT_OPS["PRelu"](x, slope, opset=6)
    np.testing.assert_array_equal(got, np.where(x >= 0, x, x * per_channel))
    assert got.dtype == np.float32


def test_prelu_from_opset_7_broadcasts_like_numpy() -> None:
    x, slope = f32(2, 3, 3), np.array([0.1, 0.2, 0.3], np.float32)
    np.testing.assert_array_equal(FLOAT_OPS["PRelu"](x, slope, opset=7),
                                  np.where(x >= 0, x, x * slope))


def test_clip_of_a_0d_tensor_is_a_0d_tensor() -> None:
    # DynamicQuantizeLinear, expanded: Clip of a scalar zero point
    got = FLOAT_OPS["Clip"](np.array(300.0, np.float32), np.array(0, np.float32),
                            np.array(255, np.float32), opset=13)
    assert isinstance(got, np.ndarray) and got.shape == () and got == 255


def test_mod_fmod_0_on_floats_takes_the_sign_of_the_divisor() -> None:
    a = np.array([-4.0, 7.0, 5.5, -0.0], np.float32)
    b = np.array([3.0, -2.0, np.inf, 2.0], np.float32)
    np.testing.assert_array_equal(FLOAT_OPS["Mod"](a, b, fmod=0, opset=13), np.mod(a, b))
    np.testing.assert_array_equal(FLOAT_OPS["Mod"](a, b, fmod=1, opset=13), np.fmod(a, b))


@pytest.mark.parametrize(("op", "x", "identity"), [
    ("ReduceMax", np.zeros((2, 0, 4), np.float32), -np.inf),
    ("ReduceMin", np.zeros((2, 0, 4), np.float32), np.inf),
    ("ReduceMax", np.zeros((2, 0, 4), np.bool_), False),
    ("ReduceMin", np.zeros((2, 0, 4), np.int8), 127),
])
def test_reduce_max_min_over_an_empty_axis_give_the_identity(op: str, x: np.ndarray,
                                                             identity: object) -> None:
    got = FLOAT_OPS[op](x, np.array([1], np.int64), keepdims=1, opset=18)
    assert got.shape == (2, 1, 4) and got.dtype == x.dtype
    assert np.all(got == identity)


def test_einsum_on_bfloat16_computes_in_float32() -> None:
    import ml_dtypes

    a, b = f32(2, 3, 4).astype(ml_dtypes.bfloat16), f32(2, 4, 5).astype(ml_dtypes.bfloat16)
    got = FLOAT_OPS["Einsum"](a, b, equation="bij,bjk->bik", opset=12)
    assert got.dtype == ml_dtypes.bfloat16
    want = np.einsum("bij,bjk->bik", a.astype(np.float32), b.astype(np.float32))
    np.testing.assert_array_equal(got, want.astype(ml_dtypes.bfloat16))


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_space_to_depth_inverts_depth_to_space(mode: str) -> None:
    x = f32(2, 12, 3, 5)
    up = FLOAT_OPS["DepthToSpace"](x, blocksize=2, mode=mode, opset=13)
    np.testing.assert_array_equal(
        FLOAT_OPS["SpaceToDepth"](up, blocksize=2, mode=mode, opset=25), x)


@pytest.mark.parametrize(("to", "largest"), [(17, 448.0), (18, 240.0), (19, 57344.0),
                                             (20, 57344.0)])
def test_cast_to_float8_saturates_by_default(to: int, largest: float) -> None:
    x = np.array([1e6, -1e6, np.inf, -np.inf, 0.5], np.float32)
    got = FLOAT_OPS["Cast"](x, to=to, opset=19)
    np.testing.assert_array_equal(got.astype(np.float32),
                                  [largest, -largest, largest, -largest, 0.5])
    like = FLOAT_OPS["CastLike"](x, np.zeros(1, got.dtype), opset=19)
    assert like.dtype == got.dtype
    np.testing.assert_array_equal(like.astype(np.float32), got.astype(np.float32))


@pytest.mark.parametrize("auto_pad", ["NOTSET", "SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("output_shape", [[10, 8], [11, 7], [9, 8], [7, 6]])
def test_conv_transpose_output_shape_beyond_the_full_output(auto_pad: str,
                                                            output_shape: list[int]) -> None:
    # full output 9 x 7: a larger output_shape (by less than a stride) ends in zeros
    # (onnx's test_convtranspose_output_shape)
    case = Case("ConvTranspose", [f32(1, 1, 3, 3), f32(1, 2, 3, 3)],
                {"strides": [3, 3], "output_shape": output_shape, "auto_pad": auto_pad})
    got, = run_lowp(case)
    want, = run_ort(case)
    assert got.shape == want.shape == (1, 2, *output_shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("base", "exponent"), [
    (np.array([4, 9, 2, 27, -8], np.int32), np.array([0.5, 0.5, -1.0, 1 / 3, 2.0], np.float32)),
    (np.array([4, 9, 2, 3, -2], np.int64), np.array([2, 0, -1, -2, 3], np.int64)),
])
def test_pow_of_integers_truncates_like_onnxruntime(base: np.ndarray,
                                                    exponent: np.ndarray) -> None:
    # a float or negative exponent of an integer base: pow in double, then truncation
    case = Case("Pow", [base, exponent], opset=15, tol=0)
    got, = run_lowp(case)
    want, = run_ort(case)
    assert got.dtype == want.dtype == base.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shapes", [((2, 3, 5), (2, 3, 5), (2, 3, 5)),
                                    ((2, 1, 5), (1, 3, 5), (2, 3, 1)),
                                    ((1,), (2, 3, 5), (1,)),
                                    ((2, 3, 5), (1,), (2, 3, 5)),
                                    ((2, 3, 1), (2, 3, 5), (1, 3, 1)),
                                    ((), (2, 3, 5), ())])
@pytest.mark.parametrize("threads", [1, 2])
def test_where_signed_zeros_equal_onnxruntime(dtype: type, shapes: tuple[
        tuple[int, ...], ...], threads: int) -> None:
    """Where(c, x, y) with -0s in x and y: ONNX Runtime merges its two selections,
    c ? x : 0 and !c ? y : 0, by one of them unless it equals 0 (the second where it is one
    value per span of its broadcast loop, else the first), so that one operand's -0 comes
    out +0; the other's, NaN payloads and the rest are copied ((O345); the fuzzer's
    broadcasts seed 5, graphs 96 and 97: Where(Greater(m, mean), m, mean) of a
    HardSwish's -0)."""
    from onnx import TensorProto, helper

    from tests.runtime.ort_agreement import assert_float_bits_agree

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = helper.make_graph(
        [helper.make_node("Where", ["c", "x", "z"], ["y"])], "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, shapes[0]),
         helper.make_tensor_value_info("x", elem, shapes[1]),
         helper.make_tensor_value_info("z", elem, shapes[2])],
        [helper.make_tensor_value_info("y", elem, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    rng = np.random.default_rng(len(shapes[0]) + threads)
    c = np.asarray(rng.random(shapes[0]) < 0.5)
    c.reshape(-1)[0] = len(shapes[0]) != 3
    values = []
    for shape in shapes[1:]:
        v = rng.choice(np.array([-0.0, 0.0, -0.0, 1.5, -2.0], dtype), shape)
        v.reshape(-1)[0] = -0.0
        if v.size > 2:
            bits = v.view(f"u{v.itemsize}").reshape(-1)
            bits[1] = np.array(np.nan, dtype).view(bits.dtype) | 3     # a NaN payload
        values.append(v)
    assert_float_bits_agree(model, {"c": c, "x": values[0], "z": values[1]}, threads)


@pytest.mark.parametrize(("shape", "threads"), [
    ((3, 6, 11, 7), 2), ((1, 16, 9, 9), 2), ((1, 16, 9, 9), 4), ((2, 8, 13, 11), 2),
    ((2, 8, 13, 11), 3), ((2, 8, 13, 11), 4), ((1, 32, 15, 15), 4), ((1, 10, 33, 21), 2),
    ((1, 10, 33, 21), 3), ((1, 10, 33, 21), 4),
    ((1, 96, 12, 12), 2), ((1, 5, 3, 3), 2)])      # (blocks of whole packets; one block)
def test_lrn_power_at_several_threads_equals_onnxruntime(shape: tuple[int, ...],
                                                         threads: int) -> None:
    """LRN's x * scale^(-beta) at several intra-op threads: ONNX Runtime's TryParallelFor
    cuts it into blocks (a functor of cost 320), each an Eigen assignment with its own packet
    tail of powf ((O346); the fuzzer's more_layers seed 15 at 2 threads, graph 127: 2 of
    1,386 outputs an ulp apart)."""
    from onnx import TensorProto, helper

    from tests.runtime.ort_agreement import assert_float_bits_agree

    x = np.random.default_rng(threads).standard_normal(shape).astype(np.float32) * 3
    node = helper.make_node("LRN", ["x"], ["y"], alpha=0.01, beta=0.75, bias=1.0, size=5)
    graph = helper.make_graph([node], "lrn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    assert_float_bits_agree(model, {"x": x}, threads)


@pytest.mark.parametrize("readers", ["one", "two", "and_another"])
@pytest.mark.parametrize("threads", [1, 2])
def test_where_of_not_swaps_as_onnxruntime(readers: str, threads: int) -> None:
    """Where(Not(c), a, b): ONNX Runtime's NotWhereFusion runs Where(c, b, a) when every
    reader of the Not is a Where, so the operand whose -0 comes out +0 ((O345)) is the
    other one; with another reader the Not stays ((O347); the fuzzer's seed 14, graphs 191
    and 192: Where(Not(Less(x, 0)), x, -(x * slope)) of a HardSwish's -0)."""
    from onnx import TensorProto, helper

    from tests.runtime.ort_agreement import assert_float_bits_agree

    f = TensorProto.FLOAT
    nodes = [helper.make_node("Less", ["a", "zero"], ["neg"]),
             helper.make_node("Not", ["neg"], ["keep"]),
             helper.make_node("Where", ["keep", "a", "b"], ["w1"])]
    if readers == "two":
        nodes.append(helper.make_node("Where", ["keep", "b", "a"], ["w2"]))
    elif readers == "and_another":
        nodes += [helper.make_node("Cast", ["keep"], ["k"], to=f),
                  helper.make_node("Mul", ["b", "k"], ["w2"])]
    nodes.append(helper.make_node("Add" if readers != "one" else "Identity",
                                  ["w1", "w2"] if readers != "one" else ["w1"], ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("a", f, [2, 3, 8]),
                     helper.make_tensor_value_info("b", f, [2, 3, 8])],
        [helper.make_tensor_value_info("y", f, [2, 3, 8])],
        [helper.make_tensor("zero", f, [], [0.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    rng = np.random.default_rng(threads)
    a = rng.choice(np.array([-0.0, 0.0, 1.5, -2.0], np.float32), (2, 3, 8))
    b = rng.choice(np.array([-0.0, 0.0, 3.0, -0.5], np.float32), (2, 3, 8))
    assert_float_bits_agree(model, {"a": a, "b": b}, threads)
