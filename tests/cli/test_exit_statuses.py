"""Exit statuses: a bug in lowp (3) and a failed summary after a written model (4) are not
reported as user errors (2)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lowp.cli import EXIT_INTERNAL, EXIT_OK, EXIT_SUMMARY_FAILED, main
from lowp.data import demo_model_path, load_demo_calibration
from lowp.errors import InternalError
from lowp.runtime import Session
from lowp.runtime.float_ops import FLOAT_OPS


def _selu_model(path) -> str:
    # Selu: an operator the engine always runs through its numpy registry (FLOAT_OPS), so
    # that the patched function is the one called
    graph = helper.make_graph([helper.make_node("Selu", ["x"], ["y"], name="the_selu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


@pytest.fixture
def broken_selu(monkeypatch):
    def selu(x, **_):
        raise ValueError("operands could not be broadcast")
    monkeypatch.setitem(FLOAT_OPS, "Selu", selu)


def test_a_crash_inside_an_operator_is_an_internal_error(tmp_path, broken_selu):
    session = Session(_selu_model(tmp_path / "m.onnx"))
    with pytest.raises(InternalError) as info:
        session.run({"x": np.ones(2, np.float32)})
    assert str(info.value) == ("internal error in node 'the_selu' (Selu): ValueError: "
                               "operands could not be broadcast; please report it with --debug")
    assert (info.value.node_name, info.value.op_type) == ("the_selu", "Selu")
    assert isinstance(info.value.__cause__, ValueError)   # --debug shows where


def test_the_cli_reports_an_internal_error_with_status_3(tmp_path, broken_selu, capsys):
    np.save(tmp_path / "x.npy", np.ones(2, np.float32))
    code = main(["run", _selu_model(tmp_path / "m.onnx"), "--input",
                 f"x={tmp_path / 'x.npy'}", "-o", str(tmp_path / "y.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_INTERNAL
    assert err == ["lowp: internal error in node 'the_selu' (Selu): ValueError: operands "
                   "could not be broadcast; please report it with --debug"]
    assert not (tmp_path / "y.npz").exists()


def test_an_unexpected_exception_is_an_internal_error(tmp_path, monkeypatch, capsys):
    import lowp.passes.verify

    def boom(*_, **__):
        raise KeyError("slot")
    monkeypatch.setattr(lowp.passes.verify, "lint", boom)
    code = main(["check", str(demo_model_path()), "--target", "lowp"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_INTERNAL
    assert err == ["lowp: internal error: KeyError: 'slot'; please report it with --debug"]


@pytest.fixture
def calib(tmp_path):
    np.savez(tmp_path / "calib.npz", input=load_demo_calibration()["input"][:32])
    return str(tmp_path / "calib.npz")


def test_a_failed_summary_keeps_the_written_model(tmp_path, calib, monkeypatch, capsys):
    import lowp.report.summary

    def boom(*_, **__):
        raise ValueError("cannot compare outputs")
    monkeypatch.setattr(lowp.report.summary, "summarize", boom)
    out = tmp_path / "q.onnx"
    code = main(["quantize", str(demo_model_path()), "--calib", calib, "-o", str(out),
                 "--quiet", "--report", str(tmp_path / "r.html")])
    captured = capsys.readouterr()
    assert code == EXIT_SUMMARY_FAILED
    assert captured.err.strip().splitlines() == [
        f"lowp: model written to {out}; the summary failed: ValueError: cannot compare "
        "outputs"]
    assert f"quantized model written to {out}" in captured.out
    onnx.checker.check_model(onnx.load(str(out)))
    assert not (tmp_path / "r.html").exists()


def test_bad_evaluation_data_fails_the_summary_not_the_model(tmp_path, calib, capsys):
    np.savez(tmp_path / "eval.npz", other=np.ones((4, 3), np.float32))
    out = tmp_path / "q.onnx"
    code = main(["quantize", str(demo_model_path()), "--calib", calib, "-o", str(out),
                 "--quiet", "--eval", str(tmp_path / "eval.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_SUMMARY_FAILED and out.exists()
    assert len(err) == 1 and err[0].startswith(f"lowp: model written to {out}; the summary "
                                               "failed: "), err


def test_no_report_skips_the_summary(tmp_path, calib, monkeypatch):
    import lowp.report.summary
    monkeypatch.setattr(lowp.report.summary, "summarize", None)
    assert main(["quantize", str(demo_model_path()), "--calib", calib, "-o",
                 str(tmp_path / "q.onnx"), "--quiet", "--no-report"]) == EXIT_OK


def test_a_multi_line_message_is_printed_on_one_line(tmp_path, monkeypatch, capsys):
    import lowp.passes.verify
    from lowp.errors import QuantizationError

    def lint(*_, **__):
        raise QuantizationError("3 violations:\n  first\n  second\n  third")
    monkeypatch.setattr(lowp.passes.verify, "lint", lint)
    assert main(["check", str(demo_model_path()), "--target", "lowp"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lowp: error: 3 violations: first; second; third"]


def test_a_node_error_from_an_operator_is_the_models_fault(tmp_path, monkeypatch, capsys):
    """Operators raise NodeError (no node name) for attributes or shapes that do not fit;
    the engine names the node and the CLI reports a model error, exit 2."""
    from lowp.errors import NodeError

    def selu(x, **_):
        raise NodeError("kernel extent 9 exceeds padded input 8 on spatial axis 0")
    monkeypatch.setitem(FLOAT_OPS, "Selu", selu)
    np.save(tmp_path / "x.npy", np.ones(2, np.float32))
    code = main(["run", _selu_model(tmp_path / "m.onnx"), "--input", f"x={tmp_path / 'x.npy'}"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "lowp: error: node 'the_selu' (Selu): kernel extent 9 exceeds padded input 8 on "
        "spatial axis 0"]
