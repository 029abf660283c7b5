"""The onnx wheel's backend test data on lowp's float engine, compared as onnx's runner does."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.backend.test.loader import DATA_DIR, load_node_model_tests

from lowp.errors import UnsupportedOpError
from lowp.runtime import Session
from lowp.runtime.backends import native_available
from lowp.runtime.float_ops import FLOAT_OPS

# onnx.backend.test.loader: rtol / atol of every test unless its data.json overrides them
RTOL, ATOL = 1e-3, 1e-7
MODEL_KINDS = ("pytorch-converted", "pytorch-operator", "simple")
BACKENDS = ["reference"] + (["native"] if native_available() else [])

Feeds = dict[str, np.ndarray]
DataSets = list[tuple[Feeds, list[np.ndarray]]]

# Tests lowp must refuse with an UnsupportedOpError naming the op: test -> (op, why).
# Nothing else is excused: every other test must match onnx's expected outputs.
_SEQUENCE_IO = ("a sequence graph input or output: lowp's engine runs sequences inside a "
                "graph, its inputs and outputs are tensors")
_STRING = "string ops: lowp's engine runs numeric tensors only"
_TRAINING = "training ops: lowp runs inference only"
_ATTENTION_25 = "Attention-25's window attributes: lowp runs Attention-23 and -24"
UNSUPPORTED: dict[str, tuple[str, str]] = {
    # ONNX Runtime has no bfloat16 Attention kernel, and lowp none either
    **{f"test_attention_{s}_bf16": ("Attention", "bfloat16") for s in (
        "4d_causal", "4d_padded_kv", "4d_causal_padded_kv", "4d_attn_mask_causal",
        "3d_causal")},
    # a mask broadcast along the query axis, which ONNX Runtime refuses here
    "test_attention_4d_diff_heads_mask4d_padded_kv": ("Attention", "a mask of shape "
                                                      "[2, 3, 4, 4] for 6 keys"),
    **{f"test_attention_{s}": ("Attention", _ATTENTION_25) for s in (
        "local_window", "local_window_default", "bidirectional_window",
        "local_window_rank1_boolean_mask",
        "local_window_with_past", "local_window_ext_cache_rank3_head_mask",
        "local_window_ext_cache_rank4_batch_mask", "local_window_ext_cache_rank2_mask",
        "local_window_ext_cache_float16_mask", "3d_local_window",
        "local_window_gqa_rank4_mask")},
    "test_gradient_of_add": ("Gradient", _TRAINING),
    "test_gradient_of_add_and_mul": ("Gradient", _TRAINING),
    **{f"test_strnorm_model_{s}": ("StringNormalizer", _STRING) for s in (
        "monday_casesensintive_lower", "monday_casesensintive_nochangecase",
        "monday_casesensintive_upper", "monday_empty_output",
        "monday_insensintive_upper_twodim", "nostopwords_nochangecase")},
    # node/: training-mode variants of inference ops, sequence and optional values
    "test_batchnorm_example_training_mode": ("BatchNormalization", _TRAINING),
    "test_batchnorm_epsilon_training_mode": ("BatchNormalization", _TRAINING),
    **{f"test_training_dropout{s}": ("Dropout", _TRAINING) for s in (
        "", "_mask", "_default", "_default_mask", "_zero_ratio", "_zero_ratio_mask")},
    "test_identity_sequence": ("Identity", _SEQUENCE_IO),
    "test_sequence_insert_at_back": ("SequenceInsert", _SEQUENCE_IO),
    "test_sequence_insert_at_front": ("SequenceInsert", _SEQUENCE_IO),
    **{f"test_split_to_sequence_{s}": ("SplitToSequence", _SEQUENCE_IO)
       for s in ("1", "2", "nokeepdims")},
    "test_identity_opt": ("Identity", "optional values: lowp's engine runs tensors only"),
    # optional (or sequence) graph inputs: lowp's engine makes optionals inside a graph
    **{f"test_optional_{s}": (op, "an optional or sequence graph input") for s, op in (
        ("get_element_optional_tensor", "OptionalGetElement"),
        ("get_element_optional_sequence", "OptionalGetElement"),
        ("get_element_sequence", "OptionalGetElement"),
        ("has_element_tensor_input", "OptionalHasElement"),
        ("has_element_optional_input", "OptionalHasElement"),
        ("has_element_empty_optional_input", "OptionalHasElement"))},
    # interleaved rotations of fewer than 16 values: MLAS's masked tail, not reproduced
    **{f"test_rotary_embedding_{s}": ("RotaryEmbedding", "interleaved partial block")
       for s in ("interleaved", "with_interleaved_rotary_dim", "no_position_ids_interleaved")},
    # opset 26's signed BitShift, which ONNX Runtime 1.32 does not run either
    **{f"test_bitshift_{s}": ("BitShift", "signed shifts") for s in (
        "left_int8", "left_int16", "left_int32", "left_int64", "right_int8", "right_int16",
        "right_int32", "right_int64", "right_int8_negative_input",
        "right_int32_negative_input", "left_int8_overflow", "left_int32_overflow",
        "left_int8_shift_ge_width", "left_int32_shift_ge_width", "right_int8_shift_ge_width",
        "right_int32_shift_ge_width", "left_int8_negative_shift", "right_int8_negative_shift",
        "left_int32_negative_shift", "right_int32_negative_shift")},
}

# Engine bugs and missing features still open: strict xfail, so a fix must remove the entry.
_ALIGN_CORNERS = "Resize align_corners with a non-integer scale * input length"
_FLOAT32_FFT = "ONNX Runtime's float32 DFT / STFT, which lowp follows, outside atol 1e-7"
_ORT_MASKED = ("lowp follows ONNX Runtime (and equals it): its masked scores are the lowest "
               "float32, onnx's -inf (docs/operators.md (O303))")
KNOWN_FAILURES: dict[str, str] = {
    "test_attention_4d_causal_fp16": (
        "lowp follows ONNX Runtime (and equals it): float16 Attention steps computed in "
        "float32 and rounded once each; onnx's expected values round every numpy step"),
    "test_attention_4d_with_past_and_present_qk_matmul_bias_3d_mask_causal": _ORT_MASKED,
    "test_attention_4d_with_past_and_present_qk_matmul_bias_4d_mask_causal": _ORT_MASKED,
    "test_attention_4d_causal_fp16_expanded": (
        "float16 ops compute in float32 and round once; onnx's expected values round "
        "every numpy float16 step (2 float16 ulps apart on 2 of 192 elements)"),
    # lowp follows ONNX Runtime (and equals it on both): align_corners maps through the
    # integer output length; onnx's reference maps through scale * input length
    "test_resize_downsample_scales_cubic_align_corners": _ALIGN_CORNERS,
    "test_resize_downsample_scales_linear_align_corners": _ALIGN_CORNERS,
    # lowp follows ONNX Runtime (and equals it): each index is a flat position in the
    # given output_shape; onnx's reference maps it through the inferred 4 x 4 output
    "test_maxunpool_export_with_output_shape": (
        "MaxUnpool's indices into a larger output_shape (docs/operators.md (O248))"),
    # lowp equals ONNX Runtime bit for bit on these: its float32 radix-2 FFT and chirp-z
    # transform round further from onnx's float64 numpy values than atol 1e-7 (up to 3e-4)
    **{f"test_{name}": _FLOAT32_FFT for name in (
        "dft", "dft_axis", "dft_inverse", "dft_rfft", "dft_opset19", "dft_axis_opset19",
        "dft_inverse_opset19", "dft_rfft_opset19", "dft_irfft", "dft_irfft_opset19",
        "stft", "stft_with_window")},
}


@dataclass(frozen=True)
class BackendTest:
    """One onnx backend test: its model and its data sets, loaded on first use."""

    name: str
    kind: str
    load: Callable[[], tuple[onnx.ModelProto, DataSets]]
    rtol: float = RTOL
    atol: float = ATOL


def _read_tensor(path: str) -> np.ndarray:
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def _real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _model_dir_test(kind: str, case_dir: str) -> BackendTest:
    def load() -> tuple[onnx.ModelProto, DataSets]:
        model = onnx.load(os.path.join(case_dir, "model.onnx"))
        names = [i.name for i in _real_inputs(model)]
        sets: DataSets = []
        for d in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
            n_in = len(glob.glob(os.path.join(d, "input_*.pb")))
            n_out = len(glob.glob(os.path.join(d, "output_*.pb")))
            ins = [_read_tensor(os.path.join(d, f"input_{i}.pb")) for i in range(n_in)]
            outs = [_read_tensor(os.path.join(d, f"output_{i}.pb")) for i in range(n_out)]
            sets.append((dict(zip(names, ins, strict=True)), outs))
        return model, sets

    name = os.path.basename(case_dir)
    return BackendTest(name, kind, load, *_data_json_tolerances(case_dir))


def _data_json_tolerances(case_dir: str) -> tuple[float, float]:
    import json

    path = os.path.join(case_dir, "data.json")
    if not os.path.exists(path):
        return RTOL, ATOL
    with open(path) as f:
        data = json.load(f)
    return float(data.get("rtol", RTOL)), float(data.get("atol", ATOL))


def _light_test(model_path: str) -> BackendTest:
    """light/: the runner feeds arange(n) / n in each input's shape (1 for a dynamic dim)
    and compares with light_<name>_output_<i>.pb."""
    def load() -> tuple[onnx.ModelProto, DataSets]:
        model = onnx.load(model_path)
        feeds = {}
        for x in _real_inputs(model):
            shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                          for d in x.type.tensor_type.shape.dim)
            n = int(np.prod(shape))
            feeds[x.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
        prefix = os.path.splitext(model_path)[0]
        outs = [_read_tensor(f"{prefix}_output_{i}.pb") for i in range(len(model.graph.output))]
        return model, [(feeds, outs)]

    return BackendTest(os.path.basename(model_path)[:-len(".onnx")], "light", load)


def _node_test(case: Any) -> BackendTest:
    def load() -> tuple[onnx.ModelProto, DataSets]:
        from onnx.backend.test.runner import _normalize_tensor

        names = [i.name for i in _real_inputs(case.model)]
        sets: DataSets = [
            (dict(zip(names, [_normalize_tensor(x) for x in ins], strict=True)),
             [_normalize_tensor(y) for y in outs]) for ins, outs in case.data_sets]
        return case.model, sets

    return BackendTest(case.name, "node", load, case.rtol, case.atol)


def _runs_on_registered_ops(model: onnx.ModelProto) -> bool:
    return all(n.domain in ("", "ai.onnx") and n.op_type in FLOAT_OPS for n in model.graph.node)


def collect() -> list[BackendTest]:
    tests = [_model_dir_test(kind, d) for kind in MODEL_KINDS
             for d in sorted(glob.glob(os.path.join(DATA_DIR, kind, "test_*")))
             if os.path.isdir(d)]
    tests += [_light_test(p) for p in sorted(glob.glob(os.path.join(DATA_DIR, "light",
                                                                    "*.onnx")))]
    # node/ is generated in memory by the wheel: every test whose ops lowp registers
    tests += [_node_test(c) for c in load_node_model_tests()
              if c.model is not None and _runs_on_registered_ops(c.model)]
    return tests


TESTS = collect()


def _params() -> list[Any]:
    params = []
    for t in TESTS:
        marks = ([pytest.mark.xfail(reason=KNOWN_FAILURES[t.name], strict=True)]
                 if t.name in KNOWN_FAILURES else [])
        for backend in BACKENDS:
            params.append(pytest.param(t, backend, marks=marks, id=f"{t.kind}/{t.name}-{backend}"))
    return params


@lru_cache(maxsize=4)
def _loaded(t: BackendTest) -> tuple[onnx.ModelProto, DataSets]:
    return t.load()


def assert_similar(got: list[Any], expected: list[np.ndarray], rtol: float, atol: float) -> None:
    """onnx.backend.test.runner.Runner.assert_similar_outputs: same count, shapes and
    dtypes; strings exact; bfloat16 with at least two bfloat16 ulps of relative tolerance."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g.shape, e.shape, err_msg="incorrect shape")
        if e.dtype == object:
            np.testing.assert_array_equal(g, e)
            continue
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        if e.dtype.name == "bfloat16":
            g, e, rtol = g.astype(np.float32), e.astype(np.float32), max(rtol, 2 ** -6)
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


def _run_all(model: onnx.ModelProto, sets: DataSets, backend: str) -> list[list[np.ndarray]]:
    session = Session(model, backend=backend)
    names = [o.name for o in model.graph.output]
    return [[session.run(feeds)[n] for n in names] for feeds, _ in sets]


@pytest.mark.parametrize(("test", "backend"), _params())
def test_matches_onnx_expected_outputs(test: BackendTest, backend: str) -> None:
    model, sets = _loaded(test)
    if test.name in UNSUPPORTED:
        op, _ = UNSUPPORTED[test.name]
        with pytest.raises(UnsupportedOpError) as err:
            _run_all(model, sets, backend)
        assert err.value.op_type == op
        assert op in str(err.value)
        return
    for got, (_, expected) in zip(_run_all(model, sets, backend), sets, strict=True):
        assert_similar(got, expected, test.rtol, test.atol)


def test_the_data_is_all_there() -> None:
    kinds = {k: sum(t.kind == k for t in TESTS) for k in (*MODEL_KINDS, "light", "node")}
    assert kinds["pytorch-converted"] + kinds["pytorch-operator"] + kinds["simple"] \
        + kinds["light"] == 149, kinds
    assert kinds["light"] == 9 and kinds["node"] > 1000, kinds
    names = {t.name for t in TESTS}
    assert set(UNSUPPORTED) <= names and set(KNOWN_FAILURES) <= names
    assert not set(UNSUPPORTED) & set(KNOWN_FAILURES)
