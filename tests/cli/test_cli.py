"""The CLI: every bad input gives one clear message, exit status 2, and no output file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.cli import main
from lowp.data import demo_model_path, load_demo_calibration


def _linear_model(path: Path, k: int = 4) -> Path:
    w = np.linspace(-1, 1, k * 3, dtype=np.float32).reshape(k, 3)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _calib(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _fails(capsys, argv, message: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("lowp: error: ") and message in last, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def calib(tmp_path):
    return _calib(tmp_path / "calib.npz", **load_demo_calibration())


def test_quantize_writes_model_summary_and_report(tmp_path, calib, capsys):
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(demo_model_path()), "--calib", str(calib), "-o", str(out),
                 "--quiet", "--report", str(tmp_path / "r.html")]) == 0
    text = capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(out)))
    assert "Most damaged layers" in text and "identical %" in text
    # the default range method is measured: its record goes beside the model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npz", "q.method.json",
                                                          "q.onnx", "r.html"]
    assert "Range method:" in text and "same model without measuring: --method" in text
    assert "SQNR" in (tmp_path / "r.html").read_text()
    # float vs int8 latency on both engines, with a verdict
    assert "Latency of one feed (1 thread" in text and "int8 speed-up" in text
    assert "int8 pays" in text or "int8 does not pay" in text
    assert "Latency of one feed" in (tmp_path / "r.html").read_text()


def test_quantize_without_the_latency_table(tmp_path, calib, capsys):
    assert main(["quantize", str(demo_model_path()), "--calib", str(calib), "-o",
                 str(tmp_path / "q.onnx"), "--quiet", "--method", "minmax", "--no-speed"]) == 0
    text = capsys.readouterr().out
    assert "Most damaged layers" in text and "Latency" not in text


def test_missing_model(tmp_path, calib, capsys):
    out = tmp_path / "q.onnx"
    _fails(capsys, ["quantize", str(tmp_path / "nope.onnx"), "--calib", str(calib), "-o",
                    str(out)], "nope.onnx: no such file")
    assert not out.exists()


def test_not_onnx(tmp_path, calib, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a model")
    _fails(capsys, ["quantize", str(bad), "--calib", str(calib), "-o", str(tmp_path / "q")],
           "bad.onnx: not an ONNX model")


def test_checker_failure(tmp_path, calib, capsys):
    graph = helper.make_graph([helper.make_node("Relu", ["undefined"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "broken.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    _fails(capsys, ["quantize", str(path), "--calib", str(calib), "-o", str(tmp_path / "q")],
           "broken.onnx: fails the ONNX checker")


def test_unsupported_operator_in_engine(tmp_path, capsys):
    graph = helper.make_graph([helper.make_node("Bernoulli", ["x"], ["y"], name="the_draw")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    path = tmp_path / "draw.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    np.save(tmp_path / "x.npy", np.eye(2, dtype=np.float32))
    _fails(capsys, ["run", str(path), "--input", f"x={tmp_path / 'x.npy'}"],
           "unsupported operator Bernoulli (node 'the_draw')")


def test_calibration_missing_input(tmp_path, capsys):
    model = _linear_model(tmp_path / "m.onnx")
    data = _calib(tmp_path / "d.npz", other=np.ones((4, 4), np.float32))
    _fails(capsys, ["quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q")],
           "missing input x")


def test_calibration_wrong_shape(tmp_path, capsys):
    model = _linear_model(tmp_path / "m.onnx")
    data = _calib(tmp_path / "d.npz", x=np.ones((4, 5), np.float32))
    _fails(capsys, ["quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q")],
           "input 'x' has shape (4, 5), the model expects (?, 4)")


def test_calibration_wrong_dtype(tmp_path, capsys):
    model = _linear_model(tmp_path / "m.onnx")
    data = _calib(tmp_path / "d.npz", x=np.ones((4, 4), np.int64))
    _fails(capsys, ["quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q")],
           "input 'x' has dtype int64, the model expects float32")


def test_calibration_nan(tmp_path, capsys):
    model = _linear_model(tmp_path / "m.onnx")
    x = np.ones((4, 4), np.float32)
    x[2, 1] = np.nan
    data = _calib(tmp_path / "d.npz", x=x)
    _fails(capsys, ["quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q")],
           "input 'x' contains NaN or Inf (first at index (2, 1))")


def test_zero_range_tensor(tmp_path, capsys):
    model = _linear_model(tmp_path / "m.onnx")
    data = _calib(tmp_path / "d.npz", x=np.zeros((4, 4), np.float32))
    out = tmp_path / "q.onnx"
    _fails(capsys, ["quantize", str(model), "--calib", str(data), "-o", str(out)],
           "tensor 'x' (a graph input) is zero on all calibration data")
    assert not out.exists()


def test_pickled_data_is_refused(tmp_path, capsys):
    model = _linear_model(tmp_path / "m.onnx")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _fails(capsys, ["run", str(model), "--input", f"x={tmp_path / 'obj.npy'}"],
           "cannot read without unpickling")


def test_run_writes_outputs(tmp_path, capsys):
    model = _linear_model(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    out = tmp_path / "out.npz"
    assert main(["run", str(model), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(out)]) == 0
    with np.load(out) as z:
        assert z["y"].shape == (2, 3)


def test_run_writes_zipmap_scores_and_labels_as_arrays(tmp_path, capsys):
    """A classifier's ZipMap output (a list of dicts) is printed and saved as its scores
    and its labels (`lowp run` failed on the list's missing shape)."""
    maps = helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    graph = helper.make_graph(
        [helper.make_node("ZipMap", ["x"], ["p"], domain="ai.onnx.ml",
                          classlabels_int64s=[3, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_value_info("p", maps)])
    model = tmp_path / "zm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)]), str(model))
    np.save(tmp_path / "x.npy", np.array([[0.25, 0.75], [1.0, 0.0]], np.float32))
    out = tmp_path / "out.npz"
    assert main(["run", str(model), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(out)]) == 0
    assert "p: shape (2, 2), dtype float32" in capsys.readouterr().out
    with np.load(out) as z:
        np.testing.assert_array_equal(z["p"], [[0.75, 0.25], [0.0, 1.0]])
        np.testing.assert_array_equal(z["p.keys"], [[1, 3], [1, 3]])


def test_check_reports_violations(tmp_path, calib, capsys):
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(demo_model_path()), "--calib", str(calib), "-o", str(out),
                 "--quiet", "--no-report", "--target", "onnxruntime"]) == 0
    assert main(["check", str(out), "--target", "onnxruntime"]) == 0
    assert main(["check", str(out), "--target", "xnnpack"]) == 1
    text = capsys.readouterr().out
    assert "activation type uint8, xnnpack expects int8" in text


def test_debug_shows_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lowp.cli", "--debug", "check",
                           str(tmp_path / "none.onnx"), "--target", "lowp"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_quantize_with_eval_labels_reports_accuracy(tmp_path, calib, capsys):
    from lowp.data import load_demo_test
    feeds, labels = load_demo_test()
    ev = _calib(tmp_path / "eval.npz", input=feeds["input"][:200], label=labels[:200])
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(demo_model_path()), "--calib", str(calib), "-o", str(out),
                 "--quiet", "--eval", str(ev)]) == 0
    text = capsys.readouterr().out
    assert "accuracy, lowp engine (%)" in text and "accuracy (%)" in text


def test_image_folder_calibration(tmp_path, capsys):
    from PIL import Image
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(demo_model_path()), "--calib", str(folder), "-o", str(out),
                 "--quiet", "--no-report", "--image-size", "8", "8", "--mean", "0.5",
                 "--std", "0.25"]) == 0
    onnx.checker.check_model(onnx.load(str(out)))


def test_unknown_node_name_is_an_error(tmp_path, calib, capsys):
    out = tmp_path / "q.onnx"
    _fails(capsys, ["quantize", str(demo_model_path()), "--calib", str(calib), "-o", str(out),
                    "--quiet", "--exclude", "/no/such/Conv"],
           "node '/no/such/Conv' given in exclude_nodes is not in the model")
    assert not out.exists()


def test_check_accepts_constants_quantized_as_weights(tmp_path, capsys):
    """ONNX Runtime's quantizer stores BatchNormalization scales as int8 constants."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    cal = load_demo_calibration()["input"]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": cal[:32]}])

        def get_next(self):
            return next(self.it, None)

    out = tmp_path / "ort.onnx"
    quantize_static(str(demo_model_path()), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    assert main(["check", str(out), "--target", "onnxruntime"]) == 0
