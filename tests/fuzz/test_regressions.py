"""Every engine bug the graph fuzzer found, as a fixed minimal case (xfail until fixed)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.ops import pool as pool_ops
from lowp.runtime import Session, fastops

from .graphs import FuzzGraph
from .harness import (
    COMBOS,
    Quantizer,
    calibration,
    check_float,
    check_graph,
    check_qdq,
    compare,
    origins,
    quantize_lowp,
    quantize_ort,
    quantize_ort_dynamic,
    run_lowp,
    run_ort,
)

logging.getLogger().setLevel(logging.ERROR)

def _model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray],
           shape: list[int], outputs: list[str], opset: int = 13) -> FuzzGraph:
    """A graph with one float input `input` of `shape`, shapes inferred."""
    graph = helper.make_graph(
        nodes, "case", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    model = onnx.shape_inference.infer_shapes(model)
    return FuzzGraph(model, "input", tuple(shape[1:]), (shape[0],), 0, ())  # type: ignore[arg-type]

def _weight(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) / np.sqrt(np.prod(shape[1:]))

def _assert_agrees(g: FuzzGraph, quantizers: list[Quantizer]) -> None:
    bad = check_graph(g, quantizers, COMBOS)
    assert not bad, "\n".join(f"{m.where} {m.output}: {m.detail}" for m in bad[:8])

def _assert_dynamic_identical(g: FuzzGraph, q: Quantizer) -> None:
    """ONNX Runtime's quantize_dynamic file of `g`: every output identical on every engine
    combo (without the float model's excuse of check_graph: the float graph may differ)."""
    model = quantize_ort_dynamic(g, q)
    feeds = g.feeds(g.batches[0], g.seed)
    for combo in COMBOS:
        theirs = run_ort(model, feeds, threads=combo.threads)
        bad = compare(str(combo), model, run_lowp(model, feeds, combo), theirs, exact=True)
        assert not bad, "\n".join(f"{m.where} {m.output}: {m.detail}" for m in bad)


def test_two_threads_are_compared_with_onnxruntime_at_two_threads() -> None:
    # ONNX Runtime's DynamicQuantizeLSTM of a batch of 2 gives other values at 2 intra-op
    # threads than at 1, and lowp's Session(threads=2) gives the 2-thread ones; the harness
    # compared every combo with a one-thread ONNX Runtime and reported the 2-thread combos
    # as mismatches (the fuzzer's seed 20261401, an STFT -> LSTM sequence graph)
    nodes = [helper.make_node("LSTM", ["input", "w", "r", "b"], ["y"], hidden_size=2)]
    g = _model(nodes, {"w": _weight(1, 8, 2), "r": _weight(1, 8, 2, seed=1),
                       "b": _weight(1, 16, seed=2) * 0.1}, [6, 2, 2], ["y"])
    q = Quantizer("ort-dynamic", False)
    model = quantize_ort_dynamic(g, q)
    feeds = g.feeds(g.batches[0], g.seed)
    assert not np.array_equal(run_ort(model, feeds)["y"], run_ort(model, feeds, threads=2)["y"])
    two = [c for c in COMBOS if c.threads == 2]
    bad = check_qdq(g, str(q), model, two, exact=True)
    assert not bad, "\n".join(f"{m.where} {m.output}: {m.detail}" for m in bad[:8])

def test_split_with_num_outputs_attribute_in_an_integer_region() -> None:
    # opset 18 Split(num_outputs=2) between quantized tensors: the integer data-movement
    # step passed num_outputs twice to float_ops.Split (TypeError -> InternalError);
    # fixed in lower_elementwise._data_movement
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Split", ["c"], ["s0", "s1"], axis=1, num_outputs=2),
             helper.make_node("Conv", ["s1", "w2"], ["d"], kernel_shape=[1, 1]),
             helper.make_node("Concat", ["s0", "d"], ["y"], axis=1)]
    g = _model(nodes, {"w": _weight(4, 3, 1, 1), "b": _weight(4), "w2": _weight(2, 2, 1, 1)},
               [1, 3, 4, 5], ["y"], opset=18)
    _assert_agrees(g, [Quantizer("lowp", True, policy="all"), Quantizer("ort", True)])

def test_single_relu_on_the_input_quantizes() -> None:
    g = _model([helper.make_node("Relu", ["input"], ["y"])], {}, [1, 4, 2, 2], ["y"])
    quantize_lowp(g, [g.feeds(1, i) for i in range(3)], Quantizer("lowp", True))

# found by the fuzzer: with policy ALL a constant operand of Add/Mul was quantized as an
# asymmetric activation, which the symmetric target xnnpack reads as a weight (verify raised
# QuantizationError); such constants are now stored by the weights' rules
def test_xnnpack_policy_all_quantizes_a_constant_addend() -> None:
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["c", "k"], ["y"])]
    g = _model(nodes, {"w": _weight(4, 4, 1, 1), "k": np.float32(0.5)}, [1, 4, 3, 3], ["y"])
    _assert_agrees(g, [Quantizer("lowp", True, target="xnnpack", policy="all")])


def _branch(op: str, out: str) -> onnx.GraphProto:
    return helper.make_graph([helper.make_node(op, ["s"], [out])], f"body_{out}", [],
                             [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])


def test_ort_qdq_file_with_an_if_reading_a_later_listed_tensor() -> None:
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=_branch("Relu", "t"),
                              else_branch=_branch("Sigmoid", "e"))]
    g = _model(nodes, {"w": _weight(4, 4, 1, 1)}, [1, 4, 3, 3], ["y"])
    g.model.graph.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
    _assert_agrees(g, [Quantizer("ort", True)])


def test_squeeze_excitation_from_ort_quantize_static() -> None:
    # GlobalAveragePool -> 1x1 Conv -> HardSigmoid -> Mul with the block input: the gate
    # (channels-first, 1x1) and the block input (channels-last after a native Conv) once
    # reached Mul and the 1x1 Conv in mixed layouts ("input has 6 channels, weights
    # expect 240")
    c = 6
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["x"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["x"], ["g"]),
             helper.make_node("Conv", ["g", "w1", "b1"], ["s"], kernel_shape=[1, 1]),
             helper.make_node("HardSigmoid", ["s"], ["h"], alpha=1.0 / 6, beta=0.5),
             helper.make_node("Mul", ["x", "h"], ["y"])]
    inits = {"w": _weight(c, 3, 3, 3), "b": _weight(c), "w1": _weight(c, c, 1, 1, seed=1),
             "b1": _weight(c, seed=2)}
    g = _model(nodes, inits, [2, 3, 5, 8], ["y"])
    _assert_agrees(g, [Quantizer("ort", True), Quantizer("ort", False),
                       Quantizer("lowp", True)])


@pytest.mark.parametrize("second", ["conv", "sigmoid", "input"])
def test_concat_on_channels_of_differently_laid_out_inputs(second: str) -> None:
    # Concat(axis=1) of a native Conv's output (channels-last) and a tensor kept
    # channels-first: a float Concat once converted only its first input
    tail = {"conv": [], "sigmoid": [helper.make_node("Sigmoid", ["b"], ["bs"])], "input": []}
    other = {"conv": "b", "sigmoid": "bs", "input": "input"}[second]
    nodes = [helper.make_node("Conv", ["input", "w1"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["input", "w2"], ["b"], kernel_shape=[1, 1]),
             *tail[second], helper.make_node("Concat", [other, "a"], ["y"], axis=1)]
    g = _model(nodes, {"w1": _weight(4, 3, 1, 1), "w2": _weight(4, 3, 1, 1, seed=1)},
               [2, 3, 4, 5], ["y"])
    _assert_agrees(g, [Quantizer("lowp", True), Quantizer("lowp", True, policy="all"),
                       Quantizer("ort", True)])


CASES = Path(__file__).parent / "cases"


# found by the fuzzer: a ConvTranspose between quantized neighbours got QuantizeLinear/
# DequantizeLinear on its input and output but kept float weights; ONNX Runtime's optimizer
# then quantized those weights itself at load (per-tensor int8), 2 steps off on 20% of the
# outputs. ConvTranspose weights are now quantized like Conv's (per output channel, axis 1).
def test_convtranspose_with_float_weights_between_qdq_pairs() -> None:
    model = onnx.load(str(CASES / "convtranspose_float_weights.onnx"))
    g = FuzzGraph(model, "input", (11, 11, 1), (1,), 217, ())
    q = quantize_lowp(g, [g.feeds(1, i) for i in range(3)],
                      Quantizer("lowp", False, target="onnxruntime", policy="all"))
    producer = {o: n for n in q.graph.node for o in n.output}
    for n in q.graph.node:
        if n.op_type == "ConvTranspose" and n.input[0] in producer and \
                producer[n.input[0]].op_type == "DequantizeLinear":
            assert producer.get(n.input[1]) is not None and \
                producer[n.input[1]].op_type == "DequantizeLinear", n.name
    _assert_agrees(g, [Quantizer("lowp", False, target="onnxruntime", policy="all")])


@pytest.mark.parametrize("act", ["Sigmoid", "Relu"])
def test_residual_add_of_a_channels_last_and_a_float_operand(act: str) -> None:
    # found by the fuzzer (blocks conv_act, conv_act, residual) on the layout code before
    # every step saw ONNX layouts: x + act(conv(x)) as a graph output is a float Add whose
    # second operand came channels-last ("operands could not be broadcast together with
    # shapes (1,2,3,3) (1,3,3,2)")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c"], ["x"]),
             helper.make_node("Conv", ["x", "w2", "b2"], ["d"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node(act, ["d"], ["a"]),
             helper.make_node("Add", ["x", "a"], ["y"])]
    inits = {"w": _weight(2, 3, 1, 1), "w2": _weight(2, 2, 3, 3, seed=1),
             "b2": _weight(2, seed=2)}
    g = _model(nodes, inits, [1, 3, 3, 3], ["y"])
    _assert_agrees(g, [Quantizer("lowp", False), Quantizer("lowp", True, policy="all"),
                       Quantizer("ort", False, signed_activations=True)])

# found by the fuzzer (4,940 graphs in, ORT's per-channel QDQ of a graph with a GRU block,
# blocks conv_act, csp, movement, recurrent, two_heads): the float GRU between quantized
# tensors summed in lowp's order, and a QuantizeLinear after it landed one step from ONNX
# Runtime's on one element; the GRU now follows ONNX Runtime's DeepCPU order ((O25)):
# deepcpu's rational reset and output gates, MLAS's logistic and GEMM paths
def test_gru_between_quantized_tensors_is_ort_bit_for_bit() -> None:
    model = onnx.load(str(CASES / "gru_between_quantized_tensors.onnx"))
    g = FuzzGraph(model, "input", (7, 7, 4), (2, 3), 65535, ())
    _assert_agrees(g, [Quantizer("ort", True)])


# found by the fuzzer (an attention block): a LayerNormalization over rows of fewer than 8
# values, taken in the float32 E[x^2] - mean^2 form, lost digits to cancellation on a
# near-constant row (7.7e-5 away from ONNX Runtime's float model); such rows now take
# ONNX Runtime's own loop for them, Welford's running statistics ((O24), (O40))
def test_layer_norm_of_short_rows_keeps_its_digits() -> None:
    model = onnx.load(str(CASES / "layernorm_short_rows.onnx"))
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)[1:]
    g = FuzzGraph(model, "input", shape, (1,), 1, ())  # type: ignore[arg-type]
    assert not check_float(g)


@pytest.mark.parametrize("shape,w_shape", [([1, 16, 400], (24, 16, 3)),
                                           ([1, 20, 24, 24], (32, 20, 3, 3)),
                                           ([1, 32, 24, 24], (32, 32, 3, 3))])
def test_float_convolution_between_quantized_tensors(shape: list[int],
                                                     w_shape: tuple[int, ...]) -> None:
    # ONNX Runtime's quantizer told to leave Conv in float: the float Conv between a
    # DequantizeLinear and a QuantizeLinear summed in numpy's GEMM order, not in MLAS's
    # (im2col SGEMM for 1-D and odd channel counts, NCHWc blocks for the others), and a
    # quantized step after it differed by one (fuzzer: conv_act + attention, 1-D input)
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["conv"],
                              pads=[1] * (2 * (len(shape) - 2))),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("Mul", ["relu", "half"], ["y"])]
    g = _model(nodes, {"w": _weight(*w_shape), "b": _weight(w_shape[0], seed=1),
                       "half": np.float32(0.5)}, shape, ["y"])
    _assert_agrees(g, [Quantizer("ort", per_channel=False, float_convs=True)])
    feeds = g.feeds(1, 0)        # the float graph itself: every value ONNX Runtime's
    np.testing.assert_array_equal(Session(g.model).run(feeds)["y"], run_ort(g.model, feeds)["y"])


# found by the fuzzer (QOperator, uint8): a bilinear Resize of the uint8 output of a
# QLinearConv. ONNX Runtime moves QLinearConv to channels-last (its layout transformer) and
# the Resize with it, where uint8 bilinear runs in integers: weights in 1/1024ths truncated
# from the float coordinates, (w11 x11 + w21 x21 + w12 x12 + w22 x22) >> 20; lowp ran the
# NCHW float kernel (the float weights' sum truncated): 2 of 60 outputs one step off (150
# vs 149). Now (O41).
def test_bilinear_resize_after_a_channels_last_conv() -> None:
    model = onnx.load(str(CASES / "bilinear_resize_after_nhwc_conv.onnx"))
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)[1:]
    g = FuzzGraph(model, "input", shape, (1,), 0, ())  # type: ignore[arg-type]
    _assert_agrees(g, [Quantizer("ort", False, qoperator=True)])


# found by the fuzzer on an ONNX Runtime QOperator file (blocks conv_act, squeeze_excite x2,
# two_heads): a QLinearGlobalAveragePool one step off (ONNX Runtime's summation order) was
# carried through a hard-swish that lowp runs as one table (QLinearAdd, QLinearMul and the
# float Div by 6 fused); the harness took the Div as where the engines start to differ,
# because the fused intermediate tensors are missing from lowp's run. Such a tensor now
# stands for its own parents, and the difference is traced back to the pool. The pool's
# step was MLAS's multiplier s_x / (s_y * count), which lowp now uses too
# (docs/operators.md (O59b)): the engines agree on every tensor of this case. The tracing
# is still checked, on the pool's former multiplier put back.
def test_difference_inherited_through_a_fused_table_is_traced_to_its_origin(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = onnx.load(str(CASES / "fused_table_hides_an_inherited_difference.onnx"))
    g = FuzzGraph(model, "input", (6, 8, 10), (2,), 2, ())
    q = Quantizer("ort", True, qoperator=True)
    qm = quantize_ort(g, calibration(g), q)
    found, _ = origins(qm, g.feeds(2, 2), COMBOS[0])
    assert [o.op_type for o in found] == []
    _assert_agrees(g, [q])

    def former(x_scale: float, y_scale: float, count: int) -> np.ndarray:
        """(O9)'s multiplier, float32(float32(s_x / s_y) / count): one unit off here."""
        ratio = np.float32(np.float32(x_scale) / np.float32(y_scale))
        return np.asarray(ratio / np.float32(max(count, 1)), dtype=np.float32)

    monkeypatch.setattr(pool_ops, "global_average_scale", former)
    monkeypatch.setattr(fastops, "global_average_scale", former)
    found, _ = origins(qm, g.feeds(2, 2), COMBOS[0])
    assert [o.op_type for o in found] == ["GlobalAveragePool"]


# found by the fuzzer (channel_ops, concat_h): Concat(x, Relu(x)) was fused into one lookup
# table of x, as if Concat were element-wise (InternalError: "table of shape (512,) does
# not fit input"); Concat is no longer marked element-wise
@pytest.mark.parametrize("axis", [1, 2, 3])
def test_concat_of_a_tensor_and_its_activation_is_not_a_table(axis: int) -> None:
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Concat", ["c", "r"], ["y"], axis=axis),
             helper.make_node("Conv", ["y", "w2"], ["z"], kernel_shape=[1, 1])]
    channels = 4 if axis == 1 else 2
    g = _model(nodes, {"w": _weight(2, 2, 1, 1), "b": _weight(2),
                       "w2": _weight(3, channels, 1, 1)}, [1, 2, 2, 3], ["z"])
    _assert_agrees(g, [Quantizer("lowp", False), Quantizer("ort", False)])


# found by the fuzzer (shape_ops, mean_sub): x minus its spatial mean, then averaged, has a
# range far narrower than its input's; with policy ALL the GlobalAveragePool between them
# was quantized with s_x / (s_y * H * W) >= 256, which ONNX Runtime's integer kernel refuses
# ("QLinearGlobalAveragePool parameter out of computation range"), so quantization failed;
# such an output scale is now raised to s_x / (256 H W) (passes/choose.py)
@pytest.mark.parametrize("dynamic", [False, True])
def test_global_average_of_a_centred_tensor_runs_in_onnxruntime(dynamic: bool) -> None:
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("ReduceMean", ["c"], ["m"], axes=[2, 3], keepdims=1),
             helper.make_node("Sub", ["c", "m"], ["d"]),
             helper.make_node("GlobalAveragePool", ["d"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    shape: list[int | str] = [1, 3, "H", "W"] if dynamic else [1, 3, 4, 5]
    g = _model(nodes, {"w": _weight(4, 3, 1, 1), "b": _weight(4), "w2": _weight(5, 4),
                       "b2": _weight(5)}, shape, ["y"])  # type: ignore[arg-type]
    if dynamic:
        g = FuzzGraph(g.model, "input", (3, 4, 5), (1,), 0, ())
    _assert_agrees(g, [Quantizer("lowp", False, policy="all"),
                       Quantizer("lowp", True, policy="all")])


@pytest.mark.parametrize("reader", ["Log", "Div", "Reciprocal", "Sqrt-Div"])
def test_positive_tensor_rounding_to_zero_before_log_or_a_divisor_stays_float(reader: str
                                                                              ) -> None:
    # a log-magnitude spectrum, log(re^2 + im^2 + 1e-2), and a decomposed LayerNorm's
    # 1 / sqrt(var + 1e-5): under policy ALL the Add's output was quantized, its smallest
    # values rounded to 0 and the quantized model computed -inf / inf ("the quantized
    # model's output ... is not finite in ONNX Runtime"); the positive tensor now stays
    # float (pipeline._fragile_tensors_stay_float, passes.domain_guard)
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[3], strides=[2]),
             helper.make_node("Mul", ["c", "c"], ["power"]),
             helper.make_node("Add", ["power", "eps"], ["positive"])]
    tail = {"Log": [helper.make_node("Log", ["positive"], ["y"])],
            "Div": [helper.make_node("Div", ["c", "positive"], ["y"])],
            "Reciprocal": [helper.make_node("Reciprocal", ["positive"], ["y"])],
            "Sqrt-Div": [helper.make_node("Sqrt", ["positive"], ["root"]),
                         helper.make_node("Div", ["c", "root"], ["y"])]}[reader]
    g = _model(nodes + tail, {"w": _weight(4, 2, 3), "eps": np.float32(1e-4)},
               [1, 2, 40], ["y"])
    with pytest.warns(UserWarning, match="'positive' .*could round to zero"):
        _assert_agrees(g, [Quantizer("lowp", True, policy="all")])


# found by the fuzzer (sequence_graphs, block stft_front): log(|STFT| + 1e-2) under policy
# ALL. The smallest float value before the Log was 3 steps from zero on the calibration
# data, but the quantized power upstream rounds to 0, sqrt(0) + 1e-2 is under half a step
# and the Log read a zero ("the quantized model's output 'log_27' is not finite in ONNX
# Runtime"). Any positive tensor on a path to Log or a divisor now stays float
# (passes.domain_guard), however far from zero its calibration minimum.
def test_log_magnitude_spectrum_under_policy_all_is_finite() -> None:
    model = onnx.load(str(CASES / "stft_log_magnitude_not_finite.onnx"))
    g = FuzzGraph(model, "input", (1, 8), (1,), 0, ())  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="'add_25' .*could round to zero"):
        _assert_agrees(g, [Quantizer("lowp", False, target="x86", policy="all")])



# found by the fuzzer (newer_blocks, normalize_ops; --hypothesis-seed=20261406): a
# MeanVarianceNormalization over the last axis after Conv -> Relu (or BatchNormalization ->
# HardSwish) -> Slice. ONNX Runtime's kernel divides by the root of each row's mean square
# deviation with no epsilon; rows of small values that quantize to one code became 0 / 0
# ("the quantized model's output 'meanvariancenormalization_13' is not finite in ONNX
# Runtime"). A quantized tensor on a path to its input now stays float (O348). Seed
# 20261416: the path went through an If whose branches read the Relu's output from the
# enclosing graph (Conv -> Relu -> If(Relu | Sigmoid) -> MeanVarianceNormalization), which
# the walk did not follow.
@pytest.mark.parametrize(("case", "target", "seed"),
                         [("mvn_after_relu_constant_row", "lowp", 11),
                          ("mvn_after_hardswish_constant_row", "xnnpack", 8008),
                          ("mvn_after_if_constant_row", "lowp", 11)])
def test_mean_variance_normalization_of_a_quantized_tensor_is_finite(case: str, target: str,
                                                                     seed: int) -> None:
    model = onnx.load(str(CASES / f"{case}.onnx"))
    batch, *shape = (d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
    g = FuzzGraph(model, "input", tuple(shape), (batch,), seed, ())  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="could round to a constant row"):
        _assert_agrees(g, [Quantizer("lowp", False, target=target)])


# found by the fuzzer (--hypothesis-seed=20261406, ONNX Runtime's quantize_static with
# QUInt4 weights and AddQDQPairToWeight): explaining a difference, `origins` exposed every
# QuantizeLinear output, the weight's uint4 one too, and ONNX Runtime's run stopped with
# "No corresponding Numpy type for Tensor Type. UInt4x2"; packed outputs are not exposed
@pytest.mark.parametrize("dtype", [TensorProto.UINT4, TensorProto.INT4])
def test_origins_of_a_file_with_a_four_bit_weight_pair(dtype: int) -> None:
    w = _weight(6, 4).astype(np.float32)
    nodes = [helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"]),
             helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
             helper.make_node("MatMul", ["input", "wd"], ["y"])]
    graph = helper.make_graph(
        nodes, "case", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.float32(0.05), "s"),
         helper.make_tensor("z", dtype, [], [0 if dtype == TensorProto.INT4 else 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    feeds = {"input": _weight(2, 6, seed=1).astype(np.float32)}
    found, against = origins(model, feeds, COMBOS[0])
    assert not found and not against

# found by the fuzzer on ONNX Runtime's quantize_dynamic files: ONNX Runtime fuses
# MatMulInteger -> Cast -> Mul -> Add(bias) into MatMulIntegerToFloat before its
# SkipLayerNormFusion, which then sees no bias Add; lowp's SkipLayerNormFusion took the bias
# into SkipLayerNormalization ((x + skip) + bias, another rounding: 1 ulp on some outputs)
def test_dynamic_matmul_bias_before_a_residual_layer_norm() -> None:
    nodes = [helper.make_node("MatMul", ["input", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["mb"]),
             helper.make_node("Add", ["input", "mb"], ["r"]),
             helper.make_node("LayerNormalization", ["r", "g", "beta"], ["y"], axis=-1,
                              epsilon=1e-5)]
    g = _model(nodes, {"w": _weight(32, 32), "b": _weight(32, seed=1),
                       "g": 1 + _weight(32, seed=2), "beta": _weight(32, seed=3)},
               [4, 16, 32], ["y"], opset=17)
    _assert_dynamic_identical(g, Quantizer("ort-dynamic", False, op_types=("MatMul",)))


# found by the fuzzer on a quantize_dynamic file (frame_mlp: a mean over frames written as
# Transpose [0, 2, 1] then ReduceMean over the last axis): ONNX Runtime's transpose optimizer
# pushes the Transpose through the mean, which then sums over axis 1 in memory order (O18s)
def test_dynamic_mean_over_a_transposed_tensor() -> None:
    nodes = [helper.make_node("MatMul", ["input", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["mb"]),
             helper.make_node("Relu", ["mb"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
             helper.make_node("ReduceMean", ["t"], ["mean"], axes=[2], keepdims=0),
             helper.make_node("MatMul", ["mean", "w2"], ["y"])]
    g = _model(nodes, {"w": _weight(16, 16), "b": _weight(16, seed=1),
                       "w2": _weight(16, 8, seed=2)}, [3, 37, 16], ["y"])
    _assert_dynamic_identical(g, Quantizer("ort-dynamic", False, op_types=("MatMul",)))


# found by the fuzzer: quantize_dynamic with op_types_to_quantize=["Gemm"] (a type its
# dynamic mode does not quantize) still writes the Gemm head as MatMul + Add; ONNX Runtime's
# MatMulAddFusion makes it a Gemm again, which starts from the bias (O33s)
def test_dynamic_file_with_a_gemm_left_in_float() -> None:
    nodes = [helper.make_node("Flatten", ["input"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    g = _model(nodes, {"w": _weight(3, 270), "b": _weight(3, seed=1)}, [2, 9, 2, 15], ["y"])
    _assert_dynamic_identical(g, Quantizer("ort-dynamic", True, op_types=("Gemm",)))


@pytest.mark.parametrize("channels", [2, 4])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_float_conv_as_wide_as_its_input_on_an_empty_batch(channels: int, threads: int,
                                                           backend: str) -> None:
    """A float depthwise Conv whose kernel spans the input's width (MlasConv's GemmDirect,
    one input channel per group) fed a batch of 0 gives ONNX Runtime's empty output (seed
    20261509: an InternalError, a reshape of 0 values with -1)."""
    from lowp.runtime import native_backend as nb

    w = _weight(channels, 1, 3, 3)
    g = _model([helper.make_node("Conv", ["input", "w", "b"], ["y"], kernel_shape=[3, 3],
                                 group=channels)], {"w": w, "b": np.ones(channels) * 0.1},
               ["N", channels, 3, 3], ["y"])
    for batch in (0, 2):
        feeds = {"input": np.random.default_rng(batch).standard_normal(
            (batch, channels, 3, 3)).astype(np.float32)}
        want = run_ort(g.model, feeds, threads=threads)["y"]
        for path in nb.available_paths():
            with nb.use_path(path):
                got = Session(g.model, backend=backend, threads=threads).run(feeds)["y"]
                assert got.shape == want.shape == (batch, channels, 1, 1)
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


# found by the fuzzer (seed 20261512, a float16 stretch Cast -> Mul -> Cast before a Gemm,
# ONNX Runtime's per-tensor int8 QDQ file): the first difference was the float16
# QuantizeLinear after the Mul, one step on 1 of 78 values, but the harness put it at the
# input's QuantizeLinear, 128 steps on every element: lowp's capture holds that int8 tensor
# as ONNX Runtime's QDQS8ToU8Transformer shifts it, in uint8. The harness now compares a
# captured tensor in the file's type. The step itself: ONNX Runtime runs the
# DequantizeLinear before the Mul in float32 (docs/operators.md (O216), repro 187), where
# lowp rounded it to float16; every QuantizeLinear output is now identical.
def test_a_float16_quantize_after_a_mul_is_identical() -> None:
    model = onnx.load(str(CASES / "float16_quantize_before_gemm.onnx"))
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)[1:]
    g = FuzzGraph(model, "input", shape, (1,), 1077, (), 0)  # type: ignore[arg-type]
    q = quantize_ort(g, calibration(g), Quantizer("ort", False, signed_activations=True))
    assert any(n.op_type == "QuantizeLinear" and n.input[0] == "mul_16" for n in q.graph.node)
    for combo in COMBOS:
        found, mismatches = origins(q, g.feeds(1, 1077), combo)
        assert (found, mismatches) == ([], []), combo


# found by the fuzzer (opset 7-12 image models, seed 20261312): ONNX Runtime's
# quantize_static file of Conv -> LeakyRelu -> Dropout -> Relu (16-bit weights raise it to
# opset 21, the Conv left in float) reads the Dropout's ratio from a DequantizeLinear. ONNX
# Runtime keeps a Dropout with two input edges, so the LeakyRelu's and the Relu's pairs stay
# two; lowp removed it and merged them (O47), 3 steps apart at the LeakyRelu's
# QuantizeLinear and 2 of 2 outputs apart
def test_dropout_with_a_dequantized_ratio_after_a_leaky_relu() -> None:
    model = onnx.load(str(Path(__file__).parents[2] / "evals/corpus/repro/cases"
                          / "leaky_relu_after_float_conv_opset7.onnx"))
    g = FuzzGraph(model, "input", (2, 1, 1), (1,), 1, ())
    _assert_agrees(g, [Quantizer("ort", False, weight_type="QInt16", float_convs=True)])


# found by the fuzzer (test_newer_operators_equal_onnxruntime, a MeanVarianceNormalization
# over a 1 x 1 plane): both engines' float outputs all NaN, bit for bit, reported as a
# mismatch (the tolerance of an all-NaN output was NaN); and a NaN where the other engine
# has a number passed unseen (the largest difference skipped NaN)
@pytest.mark.parametrize(("ours", "theirs", "differs"), [
    ([np.nan, np.nan], [np.nan, np.nan], False),
    ([np.nan, 1.0], [np.nan, 1.0], False),
    ([np.nan, 1.0], [0.5, 1.0], True),
    ([np.inf, 1.0], [-np.inf, 1.0], True),
    ([np.inf, 1.0], [np.inf, 1.0 + 1e-7], False),
])
def test_float_outputs_with_nan_are_compared_value_for_value(
        ours: list[float], theirs: list[float], differs: bool) -> None:
    g = _model([helper.make_node("Relu", ["input"], ["y"])], {}, [1, 2], ["y"])
    got = compare("float", g.model, {"y": np.asarray(ours, np.float32)},
                  {"y": np.asarray(theirs, np.float32)})
    assert bool(got) == differs


# found by the fuzzer (test_newer_operators_equal_onnxruntime): ONNX Runtime's per-channel
# QDQ file with AddQDQPairToWeight quantizes a Gemm's weight [K, N] (transB = 0) along
# axis 1 at run time, which lowp's Session computed as all zeros (fastops.quantize)
def test_gemm_weight_quantized_along_axis_1_at_run_time() -> None:
    g = _model([helper.make_node("Conv", ["input", "w", "b"], ["c"], kernel_shape=[1, 1]),
                helper.make_node("Relu", ["c"], ["r"]),
                helper.make_node("Flatten", ["r"], ["f"], axis=1),
                helper.make_node("Gemm", ["f", "k", "kb"], ["y"], transB=0)],
               {"w": _weight(2, 2, 1, 1), "b": [0.05, -0.03], "k": _weight(2, 3, seed=1),
                "kb": [0.1, -0.1, 0.0]}, [1, 2, 1, 1], ["y"], opset=17)
    _assert_agrees(g, [Quantizer(tool="ort", per_channel=True,
                                 options=(("AddQDQPairToWeight", True),))])


# found by the fuzzer (test_newer_operators_equal_onnxruntime): lowp's quantizer gave a
# MaxPool's second output, its int64 Indices, the input's qparams too, and wrote a
# QuantizeLinear of an int64 tensor (the file failed the ONNX checker)
def test_max_pool_with_indices_before_max_unpool_quantizes() -> None:
    pool = {"kernel_shape": [2, 2], "strides": [2, 2]}
    g = _model([helper.make_node("Conv", ["input", "w", "b"], ["c"], kernel_shape=[1, 1]),
                helper.make_node("Relu", ["c"], ["r"]),
                helper.make_node("MaxPool", ["r"], ["p", "i"], **pool),
                helper.make_node("MaxUnpool", ["p", "i"], ["u"], **pool),
                helper.make_node("Conv", ["u", "w2"], ["y"], kernel_shape=[1, 1])],
               {"w": _weight(3, 2, 1, 1), "b": [0.05, -0.03, 0.1], "w2": _weight(2, 3, 1, 1)},
               [1, 2, 4, 6], ["y"], opset=17)
    _assert_agrees(g, [Quantizer(tool="lowp", per_channel=False, policy=policy)
                       for policy in ("all", "connected")])
