"""`lowp compare --run-engines`: the actual PyTorch engine on this CPU against lowp's model.

On an AMX CPU oneDNN's conv3d kernels return outputs that are no rounding of the exact value
for one geometry (docs/engines.md (E7)); compare must report that as the engine's error with
a reproducer. On other CPUs the same layer is as modelled. Either way, lowp's model of an
engine is never reported wrong on the demo model.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.cli import main
from lowp.compare import compare_targets
from lowp.data import demo_model_path, load_demo_calibration, load_demo_test
from lowp.fidelity import engine_check
from lowp.fidelity.agreement import cpu_kernel_family
from lowp.fidelity.torch_import import LayerKind

pytest.importorskip("torch")

_W = np.array([[[[[0, 27], [120, 58], [33, 11]], [[15, 111], [-57, 80], [43, -127]]]]], np.int8)
_X = np.array([[[[[217, 163], [130, 69], [78, 10]], [[19, 4], [44, 208], [166, 233]]]]],
              np.uint8)


def _conv3d_qdq() -> onnx.ModelProto:
    """The one-channel conv3d (stride (1, 1, 2), pads (0, 2, 0)) of docs/engines.md (E7)."""
    c = [numpy_helper.from_array(np.array(0.0625, np.float32), "xs"),
         numpy_helper.from_array(np.array(0, np.uint8), "xz"),
         numpy_helper.from_array(_W, "w"),
         numpy_helper.from_array(np.array(0.0625, np.float32), "ws"),
         numpy_helper.from_array(np.array(0, np.int8), "wz"),
         numpy_helper.from_array(np.array(1.500015377998352, np.float32), "ys"),
         numpy_helper.from_array(np.array(0, np.uint8), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["yf"], name="conv3d",
                              strides=[1, 1, 2], pads=[0, 2, 0, 0, 2, 0]),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    g = helper.make_graph(
        nodes, "conv3d", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                        [None, 1, 2, 3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1, 1, 5, 1])], c)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def test_layers_are_read_from_the_qdq_graph() -> None:
    (q,) = engine_check.qdq_layers(_conv3d_qdq())
    assert (q.node, q.x_name, q.x_scale, q.x_zero_point) == ("conv3d", "xq", 0.0625, 0)
    L = q.layer
    assert L.kind is LayerKind.CONV and L.strides == (1, 1, 2) and L.pads == (0, 2, 0) * 2
    np.testing.assert_array_equal(L.weight, _W)
    assert L.bias is None and not L.relu and L.y_zero_point == 0


def test_compare_reports_the_amx_conv3d_defect_as_the_engines(tmp_path, capsys) -> None:
    path = tmp_path / "conv3d.onnx"
    onnx.save(_conv3d_qdq(), path)
    data = tmp_path / "x.npz"
    np.savez(data, x=np.concatenate([_X, _X // 2]).astype(np.float32) * np.float32(0.0625))
    repro = tmp_path / "repro"
    assert main(["compare", str(path), "--targets", "lowp", "onednn", "--data", str(data),
                 "--run-engines", "--reproducers", str(repro)]) == 0
    out = capsys.readouterr().out
    assert f"engine: onednn on this CPU ({cpu_kernel_family()})" in out
    assert "model errors" not in out
    if cpu_kernel_family() != "amx":
        assert "10 of 10 outputs as modelled" in out and "ENGINE DEFECTS" not in out
        assert not repro.exists()
        return
    assert "ENGINE DEFECTS" in out and "departs from exact arithmetic" in out
    (npz,) = repro.iterdir()
    assert engine_check.main([str(npz)]) == 1
    shown = capsys.readouterr().out
    assert "engine 0, exact 74.5383, model 75" in shown


def test_engine_models_hold_on_the_demo_model(tmp_path) -> None:
    model = lowp.quantize_model(demo_model_path(),
                                {k: v[:32] for k, v in load_demo_calibration().items()})
    feeds, _ = load_demo_test()
    for engine in ("fbgemm", "qnnpack"):
        report = compare_targets(model, {"input": feeds["input"][:4]}, "lowp", engine,
                                 run_engines=True, reproducers=tmp_path)
        checks = [c for d in report.layers for c in d.engine_checks]
        convs = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
        assert len(checks) == len(convs) > 0
        assert all("as modelled" in c and "model errors" not in c for c in checks), checks


def test_a_bad_reproducer_is_one_error_line(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    assert engine_check.main([str(bad)]) == 2
    assert "not a reproducer" in capsys.readouterr().err
