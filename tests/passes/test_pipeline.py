"""End to end: quantize real-world-shaped CNNs, check the QDQ output, and compare engines."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import lowp
from lowp.data import demo_model_path, load_demo_calibration, load_demo_test
from lowp.pipeline import quantize
from lowp.runtime import Session
from lowp.runtime.backends import native_available
from tests import model_zoo


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("zoo")


BACKENDS = ["reference"] + (["native"] if native_available() else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(model_zoo.BUILDERS))
def test_zoo_model_quantizes_and_engines_agree(name, backend, zoo_dir):
    path, data = model_zoo.BUILDERS[name](zoo_dir)
    result = quantize(path, data)
    onnx.checker.check_model(result.model, full_check=True)
    ours = Session(result.model, backend=backend).run(data)
    theirs = _ort(result.model, data)
    float_out = _ort(onnx.load(str(path)), data)
    for k in theirs:
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=f"{name}:{k}")
        rel = np.abs(ours[k] - float_out[k]).max() / (np.abs(float_out[k]).max() + 1e-12)
        assert rel < 0.1, f"{name}:{k} int8 is {rel:.3f} (relative) away from float"
    ops = {n.op_type for n in result.model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "BatchNormalization" not in ops or name == "linear_mlp"   # folded into Conv


@pytest.mark.parametrize("method", list(lowp.CalibMethod))
def test_demo_accuracy_is_kept(method):
    q = lowp.quantize_model(demo_model_path(), load_demo_calibration(),
                            lowp.Config(method=method))
    feeds, labels = load_demo_test()
    float_logits = _ort(onnx.load(str(demo_model_path())), feeds)["logits"]
    int_logits = Session(q, backend="reference").run(feeds)["logits"]
    acc_float = np.mean(float_logits.argmax(1) == labels)
    acc_int = np.mean(int_logits.argmax(1) == labels)
    assert acc_int >= acc_float - 0.005
    np.testing.assert_array_equal(int_logits, _ort(q, feeds)["logits"])


def test_relu_is_fused_and_every_op_runs_in_integers():
    result = quantize(demo_model_path(), load_demo_calibration())
    assert "Relu" not in {n.op_type for n in result.model.graph.node}
    session = Session(result.model, backend="reference")
    assert {s.kind for s in session.steps} <= {"int", "quantize", "dequantize"}
    assert {s.op_type for s in session.int_steps} >= {"Conv", "Add", "Gemm", "MaxPool"}


def test_per_tensor_and_targets():
    for target in ("lowp", "onnxruntime", "x86", "qnnpack", "xnnpack"):
        cfg = lowp.Config(target=target, weight_granularity=lowp.WeightGranularity.PER_TENSOR)
        q = lowp.quantize_model(demo_model_path(), load_demo_calibration(), cfg)
        from lowp.passes.verify import lint
        assert lint(q, lowp.get_target(target)) == []


def test_calibration_table_round_trip(tmp_path):
    cfg = lowp.Config(method=lowp.CalibMethod.ENTROPY)
    first = quantize(demo_model_path(), load_demo_calibration(), cfg)
    path = tmp_path / "table.json"
    first.table.save(path)
    again = lowp.quantize_model(demo_model_path(), load_demo_calibration(), cfg,
                                calib_table=path)
    assert again.SerializeToString() == first.model.SerializeToString()


def test_excluded_nodes_stay_float():
    result = quantize(demo_model_path(), load_demo_calibration(),
                      lowp.Config(exclude_op_types=("Gemm",)))
    session = Session(result.model, backend="reference")
    assert "Gemm" in {s.op_type for s in session.steps if s.kind == "float"}


def test_ort_quantized_model_runs_identically():
    import os
    import tempfile  # noqa: E401

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    cal = load_demo_calibration()["input"]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": cal[i:i + 32]} for i in range(0, 128, 32)])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "q.onnx")
        quantize_static(str(demo_model_path()), out, Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
        model = onnx.load(out)
    feeds, _ = load_demo_test()
    np.testing.assert_array_equal(Session(model, backend="reference").run(feeds)["logits"],
                                  _ort(model, feeds)["logits"])


def test_dynamic_mode_needs_no_calibration_and_runs_in_integers(zoo_dir):
    from lowp.config import QuantMode
    path, data = model_zoo.linear_mlp(zoo_dir)
    q = lowp.quantize_model(path, None, lowp.Config(mode=QuantMode.DYNAMIC))
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("DynamicQuantizeLinear") == 3
    session = Session(q, backend="reference")
    assert {s.op_type for s in session.int_steps} == {"MatMul", "Gemm"}
    ours = session.run(data)["logits"]
    theirs = _ort(q, data)["logits"]
    float_out = _ort(onnx.load(str(path)), data)["logits"]
    # ONNX Runtime dequantizes and multiplies in float; lowp accumulates integers exactly
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert np.abs(ours - float_out).max() < 0.05 * np.abs(float_out).max()


def test_torch_module_front_door():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 4))
    data = {"image": np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)}
    q = lowp.quantize_model(net, data)
    assert [i.name for i in q.graph.input] == ["image"]
    with torch.no_grad():
        want = net(torch.from_numpy(data["image"])).numpy()
    got = Session(q, backend="reference").run(data)[q.graph.output[0].name]
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 1e-3
    assert net.training          # the caller's mode is restored


def test_torch_export_error_is_clear():
    import torch

    class Bad(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eig(x)[0].real

    with pytest.raises(lowp.ModelError, match="torch.onnx.export failed for Bad"):
        lowp.quantize_model(Bad(), {"x": np.ones((2, 3, 3), np.float32)})


def test_group_wise_and_sixteen_bit_layers(zoo_dir):
    from lowp.targets import WeightGranularity
    path, data = model_zoo.mobilenet_v2_style(zoo_dir)
    float_out = _ort(onnx.load(str(path)), data)["logits"]
    grouped = lowp.quantize_model(path, data, lowp.Config(
        weight_granularity=WeightGranularity.PER_GROUP))
    wide = lowp.quantize_model(path, data, lowp.Config(sixteen_bit_op_types=("Conv",)))
    assert wide.opset_import[0].version >= 21
    q16 = {i.data_type for i in wide.graph.initializer}
    assert onnx.TensorProto.INT16 in q16 and onnx.TensorProto.UINT16 in q16
    errors = {}
    for name, model in (("grouped", grouped), ("wide", wide)):
        ours = Session(model).run(data)["logits"]
        errors[name] = np.abs(ours - float_out).max() / np.abs(float_out).max()
        if name == "grouped":
            np.testing.assert_array_equal(ours, _ort(model, data)["logits"])
    eight = Session(lowp.quantize_model(path, data)).run(data)["logits"]
    assert errors["wide"] < 0.5 * np.abs(eight - float_out).max() / np.abs(float_out).max()
    assert errors["grouped"] < 0.1


def _masked_model() -> onnx.ModelProto:
    """Conv -> Relu, then NaN wherever the mask input is false (caustic-nmr's per-target
    predictions: Where(target_mask, value, ConstantOfShape(NaN)))."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Where", ["mask", "r", "nan"], ["y"])]
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(4, np.float32), "b"),
             numpy_helper.from_array(np.array(np.nan, np.float32), "nan")]
    graph = helper.make_graph(
        nodes, "masked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8]),
                          helper.make_tensor_value_info("mask", TensorProto.BOOL,
                                                        ["N", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_an_output_the_float_model_fills_with_nan_quantizes():
    """verify refused every model whose float output holds NaN on purpose ("the quantized
    model's output 'y' is not finite in ONNX Runtime"); it now flags only values that are
    finite in the float model's run."""
    rng = np.random.default_rng(1)
    calib = {"x": rng.normal(0, 1, (8, 3, 8, 8)).astype(np.float32),
             "mask": rng.uniform(size=(8, 4, 8, 8)) < 0.8}
    qdq = lowp.quantize_model(_masked_model(), calib, lowp.Config(method=lowp.CalibMethod.MINMAX))
    y = Session(qdq).run({k: v[:2] for k, v in calib.items()})["y"]
    assert np.array_equal(np.isnan(y), ~calib["mask"][:2])


def test_verify_still_flags_a_non_finite_value_the_float_model_has_not():
    from lowp.errors import ModelError
    from lowp.passes.verify import verify
    model = _masked_model()
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    broken.graph.node[2].input[1] = "nan"          # NaN everywhere, the float model is not
    feeds = {"x": np.ones((1, 3, 8, 8), np.float32), "mask": np.ones((1, 4, 8, 8), bool)}
    verify(model, lowp.TARGETS["lowp"], feeds, float_model=model)
    with pytest.raises(ModelError, match="not finite"):
        verify(broken, lowp.TARGETS["lowp"], feeds, float_model=model)
