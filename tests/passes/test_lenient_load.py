"""Files ONNX Runtime runs although they bend the spec: lowp loads, quantizes and runs them
with ONNX Runtime's results (found in the corpus: waifu2x_upconv7, ppocrv2_rec)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.ir.graph import load_model


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]


def _ir3_without_initializer_inputs() -> onnx.ModelProto:
    """OnnxMLTools 1.8 at opset 8: IR 3, the Conv weight an initializer but no graph input."""
    w = np.linspace(-1, 1, 4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "convolution_W"], ["c"], name="convolution"),
         helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 6, 6])],
        [numpy_helper.from_array(w, "convolution_W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 3
    return model


def _ir3_with_a_contrib_domain() -> onnx.ModelProto:
    """The same file as ONNX Runtime's quantize_static leaves an IR 3 model: its opsets
    raised (to 11 here) and a com.microsoft opset import added, the IR version kept
    (evals/corpus/repro/README.md, item 193)."""
    model = _ir3_without_initializer_inputs()
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("", 11),
                               helper.make_opsetid("com.microsoft", 1)])
    return model


def _negative_dims() -> onnx.ModelProto:
    """paddle2onnx (PP-OCRv2): dynamic axes written as dim_value -1; onnx's inference takes
    a strided Conv over width -1 to width 0, then refuses the Reshape that copies it
    ("Invalid Target shape product of 0")."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1])
    x.type.tensor_type.shape.dim[0].dim_value = -1
    x.type.tensor_type.shape.dim[2].dim_value = -1
    w = numpy_helper.from_array(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 1, 3), "w")
    target = numpy_helper.from_array(np.array([0, -1], np.int64), "target")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1], strides=[2]),
         helper.make_node("Transpose", ["c"], ["t"], perm=[2, 0, 1]),
         helper.make_node("Reshape", ["t", "target"], ["y"], name="Reshape_18")],
        "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, -1])],
        [w, target])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


@pytest.mark.parametrize("make", [_ir3_without_initializer_inputs,
                                  _ir3_with_a_contrib_domain, _negative_dims])
def test_loads_what_onnx_runtime_runs(make):
    model = make()
    shape = (2, 3, 8, 8) if model.ir_version == 3 else (3, 1, 5)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    loaded = load_model(model)
    onnx.checker.check_model(loaded)
    np.testing.assert_array_equal(lowp.Session(model).run({"x": x})["y"], _ort(model, {"x": x}))


def test_ir3_without_initializer_inputs_quantizes_and_runs():
    model = _ir3_without_initializer_inputs()
    x = np.random.default_rng(1).uniform(0, 1, (4, 3, 8, 8)).astype(np.float32)
    q = lowp.quantize_model(model, {"x": x})
    assert q.ir_version >= 4 and "QuantizeLinear" in {n.op_type for n in q.graph.node}
    np.testing.assert_array_equal(lowp.Session(q).run({"x": x})["y"], _ort(q, {"x": x}))


def test_well_formed_models_come_back_unchanged():
    model = _negative_dims()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "n"
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "m"
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "a"
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "b"
    loaded = load_model(model)
    assert loaded.graph.input[0] == model.graph.input[0]
    assert loaded.ir_version == model.ir_version


def _conv_relu(output: onnx.ValueInfoProto) -> onnx.ModelProto:
    """A Conv -> Relu whose one output is declared as `output`."""
    w = np.linspace(-1, 1, 4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [output], [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _reshaped_by_data(output: onnx.ValueInfoProto) -> onnx.ModelProto:
    """Conv -> Reshape by a fed shape of unknown length: inference knows no rank for y."""
    w = np.linspace(-1, 1, 4 * 3, dtype=np.float32).reshape(4, 3, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"]),
         helper.make_node("Reshape", ["c", "s"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8]),
              helper.make_tensor_value_info("s", TensorProto.INT64, ["k"])],
        [output], [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


_UNDECLARED = {
    "no shape": lambda: helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
    "no type": lambda: onnx.ValueInfoProto(name="y"),
}


@pytest.mark.parametrize("make", [_conv_relu, _reshaped_by_data])
@pytest.mark.parametrize("declared", sorted(_UNDECLARED))
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_output_declared_without_shape_or_type_runs_as_in_onnx_runtime(make, declared,
                                                                       backend):
    """onnx's checker wants a type and a shape for every graph output; ONNX Runtime runs
    the model without them, and so does lowp (docs/operators.md (O106))."""
    model = make(_UNDECLARED[declared]())
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    feeds = {"x": x} if make is _conv_relu else {"x": x, "s": np.array([2, 4, -1], np.int64)}
    got = lowp.Session(model, backend=backend).run(feeds)["y"]
    np.testing.assert_array_equal(got, _ort(model, feeds))


@pytest.mark.parametrize("make", [_conv_relu, _reshaped_by_data])
@pytest.mark.parametrize("declared", sorted(_UNDECLARED))
def test_output_declared_without_shape_or_type_quantizes_and_runs(make, declared):
    model = make(_UNDECLARED[declared]())
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    feeds = {"x": x} if make is _conv_relu else {"x": x, "s": np.array([2, 4, -1], np.int64)}
    q = lowp.quantize_model(model, [feeds, feeds])
    assert "QuantizeLinear" in {n.op_type for n in q.graph.node}
    np.testing.assert_array_equal(lowp.Session(q).run(feeds)["y"], _ort(q, feeds))
    # the quantized file with its output undeclared again, as ONNX Runtime's tools write it
    q.graph.output[0].CopyFrom(_UNDECLARED[declared]())
    np.testing.assert_array_equal(lowp.Session(q).run(feeds)["y"], _ort(q, feeds))


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_input_declared_without_shape_runs_and_quantizes_as_in_onnx_runtime(backend):
    """A tensor input without a shape: ONNX Runtime takes any shape (docs/operators.md
    (O106))."""
    model = _conv_relu(_UNDECLARED["no shape"]())
    model.graph.input[0].type.tensor_type.ClearField("shape")
    x = np.random.default_rng(4).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(lowp.Session(model, backend=backend).run({"x": x})["y"],
                                  _ort(model, {"x": x}))
    q = lowp.quantize_model(model, [{"x": x}])
    np.testing.assert_array_equal(lowp.Session(q, backend=backend).run({"x": x})["y"],
                                  _ort(q, {"x": x}))


def test_ir3_with_a_contrib_domain_runs_on_both_backends():
    from tests.runtime.ort_agreement import assert_sessions_equal_onnxruntime

    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert_sessions_equal_onnxruntime(_ir3_with_a_contrib_domain(), x)
