"""Random graphs: lowp's Session equals ONNX Runtime on lowp's and ORT's QDQ files, and on
the float model (`make fuzz` runs thousands; CI a fixed-seed subset)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import onnx
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption

import lowp
from lowp.runtime.backends import native_available

from .graphs import FuzzGraph, fuzz_graphs, token_graphs
from .harness import COMBOS, EngineCombo, Quantizer, check_graph
from .old_opsets import old_opset_graphs
from .sequences import sequence_graphs


def native_paths() -> list[str]:
    if not native_available():
        return []
    from lowp.runtime.native_backend import available_paths
    return list(available_paths())


def use_path(path: str):  # type: ignore[no-untyped-def]
    from lowp.runtime.native_backend import use_path as forced
    return forced(path)

logging.getLogger().setLevel(logging.ERROR)          # quantize_static's advice, per call

FAILURES = Path(os.environ.get("LOWP_FUZZ_FAILURES", "/tmp/lowp-fuzz-failures"))


# the weight types of ONNX Runtime's quantize_static: 8-bit mostly, 4-bit (int4 / uint4
# DequantizeLinear on the weights) and 16-bit at times
STATIC_WEIGHT_TYPES = ["QInt8", "QInt8", "QUInt8", "QInt4", "QUInt4", "QInt16"]
# quantize_static's extra_options that change the file's shape (a DequantizeLinear read by
# two consumers, or one per consumer with DedicatedQDQPair; Q/DQ pairs on float weights;
# blocked weights of opset 21) and per-channel weight axes other than its defaults (Conv
# 0, ConvTranspose 1, MatMul 1, Gemm 0 with transB else 1)
STATIC_OPTIONS = st.builds(
    lambda dedicated, pairs, block: tuple(
        (k, v) for k, v in (("AddQDQPairToWeight", pairs), ("BlockSize", block),
                            ("DedicatedQDQPair", dedicated)) if v),
    st.booleans(), st.booleans(), st.sampled_from([0, 0, 0, 16, 32]))
STATIC_AXES = st.dictionaries(st.sampled_from(["Conv", "ConvTranspose", "MatMul", "Gemm"]),
                              st.sampled_from([0, 1, -1])).map(
    lambda d: tuple(sorted(d.items())))
quantizers = st.tuples(
    st.builds(Quantizer, tool=st.just("lowp"), per_channel=st.booleans(),
              target=st.sampled_from(list(lowp.TARGETS)),
              policy=st.sampled_from(["connected", "all"]),
              dq_per_consumer=st.sampled_from([False, False, True])),
    st.builds(Quantizer, tool=st.just("ort"), per_channel=st.booleans(),
              signed_activations=st.booleans(), float_convs=st.booleans(),
              wide_activations=st.sampled_from([False, False, True]),
              weight_type=st.sampled_from(STATIC_WEIGHT_TYPES),
              options=STATIC_OPTIONS, axes=STATIC_AXES,
              dq_per_consumer=st.sampled_from([False, False, True])))
# ONNX Runtime's quantize_static in QOperator format: the file runs on lowp through its QDQ
# form (lowp.formats), on ONNX Runtime as written
qoperator_quantizers = st.builds(Quantizer, tool=st.just("ort"), per_channel=st.booleans(),
                                 signed_activations=st.booleans(), qoperator=st.just(True))
# ONNX Runtime's quantize_dynamic: the operator types it may quantize (its IntegerOps
# registry: MatMul, Conv, Attention, LSTM, Gather, Transpose, EmbedLayerNormalization; Gemm
# and GRU it leaves in float) and the extra_options that change its file
DYNAMIC_OPS = ("MatMul", "Gemm", "Conv", "LSTM", "GRU", "Attention", "Gather", "Transpose")
DYNAMIC_EXTRA = ("MatMulConstBOnly", "WeightSymmetric", "ForceQuantizeNoInputCheck",
                 "EnableSubgraph")
dynamic_quantizers = st.builds(
    Quantizer, tool=st.just("ort-dynamic"), per_channel=st.booleans(),
    reduce_range=st.booleans(), weight_type=st.sampled_from(["QInt8", "QUInt8"]),
    op_types=st.none() | st.lists(st.sampled_from(DYNAMIC_OPS), min_size=1, unique=True).map(
        lambda ops: tuple(sorted(ops))),
    extra=st.dictionaries(st.sampled_from(DYNAMIC_EXTRA), st.booleans()).map(
        lambda d: tuple(sorted(d.items()))))
combos = st.lists(st.sampled_from(COMBOS), min_size=1, max_size=2, unique=True)


def _check(g: FuzzGraph, qs: list[Quantizer], cs: list[EngineCombo],
           float_model: bool = True) -> None:
    note(f"blocks={g.blocks} batches={g.batches} opset={g.model.opset_import[0].version}")
    note(f"quantizers={[str(q) for q in qs]} combos={[str(c) for c in cs]}")
    try:
        bad = check_graph(g, qs, cs, float_model)
    except UnsatisfiedAssumption:
        raise
    except Exception as exc:
        _save(g, qs, cs, f"{type(exc).__name__}-{str(exc)[:60]}")
        raise
    if bad:
        _save(g, qs, cs, f"mismatch-{bad[0].where.split()[0]}")
    assert not bad, "\n".join(f"{m.where} {m.output}: {m.detail}" for m in bad[:8])


def _save(g: FuzzGraph, qs: list[Quantizer], cs: list[EngineCombo], key: str) -> None:
    """Keep the latest graph of each kind of failure (hypothesis ends on the shrunk one)
    with the choices that made it fail, for triage."""
    FAILURES.mkdir(parents=True, exist_ok=True)
    stem = FAILURES / re.sub(r"[^A-Za-z0-9_.-]+", "_", key)
    onnx.save(g.model, f"{stem}.onnx")
    Path(f"{stem}.txt").write_text(f"{g.batches} {g.seed} {g.vocab}\n{qs!r}\n{cs!r}\n")


@given(g=fuzz_graphs(), qs=quantizers, cs=combos)
def test_lowp_equals_onnxruntime(g: FuzzGraph, qs: tuple[Quantizer, Quantizer],
                                 cs: list[EngineCombo]) -> None:
    _check(g, list(qs), cs)


# as many graphs as the profile asks under `make fuzz`; a few in CI (derandomized)
QOPERATOR_EXAMPLES = 6 if settings.default.derandomize else settings.default.max_examples
TOKEN_EXAMPLES = QOPERATOR_EXAMPLES


@settings(max_examples=TOKEN_EXAMPLES)
@given(g=token_graphs(), qs=quantizers, cs=combos)
def test_token_graphs_equal_onnxruntime(g: FuzzGraph, qs: tuple[Quantizer, Quantizer],
                                        cs: list[EngineCombo]) -> None:
    """Text encoders on int64 token ids with a padding mask (token_graphs)."""
    _check(g, list(qs), cs)


@settings(max_examples=TOKEN_EXAMPLES)
@given(g=sequence_graphs(), qs=quantizers, cs=combos)
def test_sequence_graphs_equal_onnxruntime(g: FuzzGraph, qs: tuple[Quantizer, Quantizer],
                                          cs: list[EngineCombo]) -> None:
    """Models of 1-D signals [N, C, T]: audio front ends, temporal convolutions,
    recurrent layers over time (sequence_graphs)."""
    _check(g, list(qs), cs)


@settings(max_examples=TOKEN_EXAMPLES)
@given(g=old_opset_graphs(), qs=quantizers, cs=combos)
def test_old_opset_graphs_equal_onnxruntime(g: FuzzGraph, qs: tuple[Quantizer, Quantizer],
                                            cs: list[EngineCombo]) -> None:
    """Image models written at opsets 7-12, the operator forms older exporters write
    (old_opset_graphs)."""
    _check(g, list(qs), cs)


@settings(max_examples=QOPERATOR_EXAMPLES)
@given(g=st.one_of(fuzz_graphs(), token_graphs(), sequence_graphs(), old_opset_graphs()),
       q=qoperator_quantizers,
       cs=combos)
def test_qoperator_files_equal_onnxruntime(g: FuzzGraph, q: Quantizer,
                                          cs: list[EngineCombo]) -> None:
    """ONNX Runtime's QOperator file of the graph on lowp and on ONNX Runtime."""
    _check(g, [q], cs, float_model=False)


NEWER_EXAMPLES = 2 if settings.default.derandomize else settings.default.max_examples


@settings(max_examples=NEWER_EXAMPLES)
@given(g=fuzz_graphs(max_blocks=3, newer=True), qs=quantizers, cs=combos)
def test_newer_operators_equal_onnxruntime(g: FuzzGraph, qs: tuple[Quantizer, Quantizer],
                                          cs: list[EngineCombo]) -> None:
    """Image graphs at the newer operators' opsets with one of their blocks
    (newer_blocks: detection, signal, normalization, data operators, RotaryEmbedding)
    between float and quantized neighbours."""
    _check(g, list(qs), cs)


# quantize_dynamic files run fast (no calibration, small graphs first): more of them in CI
DYNAMIC_EXAMPLES = 20 if settings.default.derandomize else settings.default.max_examples


@settings(max_examples=DYNAMIC_EXAMPLES)
@given(g=st.one_of(fuzz_graphs(), token_graphs(), sequence_graphs()), q=dynamic_quantizers,
       cs=combos)
def test_dynamic_files_equal_onnxruntime(g: FuzzGraph, q: Quantizer,
                                        cs: list[EngineCombo]) -> None:
    """ONNX Runtime's quantize_dynamic file of the graph (DynamicQuantizeLinear,
    MatMulInteger, ConvInteger, DynamicQuantizeLSTM; fused at load into
    DynamicQuantizeMatMul / MatMulIntegerToFloat) on lowp and on ONNX Runtime."""
    _check(g, [q], cs, float_model=False)


@pytest.mark.parametrize("combo", COMBOS, ids=str)
@settings(max_examples=3)
@given(g=fuzz_graphs(max_blocks=2), qs=quantizers)
def test_every_engine_combo(combo: EngineCombo, g: FuzzGraph,
                            qs: tuple[Quantizer, Quantizer]) -> None:
    _check(g, list(qs), [combo])


NATIVE = [c for c in COMBOS if c.backend == "native"][:1]


@pytest.mark.skipif(not native_available(), reason="the native extension is not built")
@pytest.mark.parametrize("path", native_paths(), ids=str)
@settings(max_examples=4)
@given(g=fuzz_graphs(max_blocks=3), qs=quantizers)
def test_every_instruction_set_path(path: str, g: FuzzGraph,
                                    qs: tuple[Quantizer, Quantizer]) -> None:
    """The native engine on each instruction-set path this CPU has (forced), as LOWP_ISA
    would force it."""
    with use_path(path):
        _check(g, list(qs), NATIVE)
