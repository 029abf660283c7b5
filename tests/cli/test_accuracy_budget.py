"""`lowp quantize --accuracy-budget / --metric --tolerance`: the flags, their errors, the
decisions record, the warning of an unmet budget and the report section."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from lowp.cli import EXIT_OK, EXIT_USER, main
from lowp.data import demo_model_path, load_demo_calibration


@pytest.fixture
def calib(tmp_path):
    path = tmp_path / "calib.npz"
    np.savez(path, **load_demo_calibration())
    return str(path)


def _quantize(tmp_path, calib, *flags: str) -> int:
    return main(["quantize", str(demo_model_path()), "--calib", calib, "-o",
                 str(tmp_path / "q.onnx"), "--quiet", *flags])


@pytest.mark.parametrize(("flags", "message"), [
    (["--accuracy-budget", "30"], "--accuracy-budget '30': give the output SQNR in dB"),
    (["--accuracy-budget", "abc"], "--accuracy-budget 'abc': give the output SQNR in dB"),
    (["--accuracy-budget=-5dB"], "must be above 0 dB"),
    (["--metric", "math:fsum", "--tolerance", "-1"], "--tolerance -1: the allowed drop"),
    (["--metric", "math:fsum", "--tolerance", "abc"], "--tolerance 'abc' is not a number"),
    (["--tolerance", "0.1"], "--metric and --tolerance go together"),
    (["--metric", "no_such_module_q:f", "--tolerance", "0"], "cannot import"),
])
def test_bad_values_give_one_error_line(tmp_path, calib, capsys, flags, message):
    assert _quantize(tmp_path, calib, *flags) == EXIT_USER
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lowp: error: ") and message in err[0]
    assert not (tmp_path / "q.onnx").exists()


def test_budget_writes_record_and_report_section(tmp_path, calib, capsys):
    report = tmp_path / "r.html"
    assert _quantize(tmp_path, calib, "--accuracy-budget", "40dB", "--report",
                     str(report)) == EXIT_OK
    out = capsys.readouterr()
    assert "Accuracy budget: output SQNR >= 40 dB" in out.out and "final: SQNR" in out.out
    assert "warning" not in out.err
    record = json.loads((tmp_path / "q.fallback.json").read_text())
    assert record["format"] == "lowp.fallback" and record["met"] is True
    assert record["final"]["min_sqnr_db"] >= 40.0 and record["steps"]
    step = record["steps"][0]
    assert {"node", "before", "after", "sqnr_before_db", "sqnr_after_db"} <= set(step)
    page = report.read_text()
    budget = page.split("<h2>Accuracy budget</h2>")[1].split("<h2>Layers in graph order")[0]
    assert budget.count("<svg") == 2
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # the record's flags give the same model without measuring
    again = tmp_path / "again"
    again.mkdir()
    assert main(["quantize", str(demo_model_path()), "--calib", calib, "-o",
                 str(again / "q.onnx"), "--quiet", "--no-report",
                 *record["flags"].replace("--sixteen-bit", "\n--sixteen-bit").replace(
                     "--exclude", "\n--exclude").split()]) == EXIT_OK
    assert (onnx.load(str(again / "q.onnx")).SerializeToString()
            == onnx.load(str(tmp_path / "q.onnx")).SerializeToString())


def test_an_unmet_budget_exits_0_with_one_warning_line(tmp_path, calib, capsys):
    assert _quantize(tmp_path, calib, "--accuracy-budget", "150dB", "--fallback-candidates",
                     "1", "--no-report") == EXIT_OK
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lowp: warning: accuracy budget not met")
    assert "add the most noise" in err[0]
    onnx.checker.check_model(onnx.load(str(tmp_path / "q.onnx")), full_check=True)
    assert json.loads((tmp_path / "q.fallback.json").read_text())["met"] is False


def test_metric_from_a_file(tmp_path, calib, capsys):
    metric = tmp_path / "agree.py"
    metric.write_text("import numpy as np\n\n"
                      "def top1(f, q):\n"
                      "    return float(np.mean(f['logits'].argmax(-1) "
                      "== q['logits'].argmax(-1)))\n")
    assert _quantize(tmp_path, calib, "--metric", f"{metric}:top1", "--tolerance", "0.05",
                     "--no-report") == EXIT_OK
    out = capsys.readouterr().out
    assert "top1 >= 1 - 0.05" in out
    record = json.loads((tmp_path / "q.fallback.json").read_text())
    assert record["met"] is True and record["metric_reference"] == 1.0


def test_eval_data_is_what_the_budget_is_measured_on(tmp_path, calib, capsys):
    rng = np.random.default_rng(5)
    held = tmp_path / "held.npz"
    x = load_demo_calibration()["input"]
    np.savez(held, input=x[rng.permutation(x.shape[0])[:48]])
    assert _quantize(tmp_path, calib, "--accuracy-budget", "40dB", "--eval", str(held),
                     "--fallback-samples", "48", "--no-report") == EXIT_OK
    assert "48 held-out samples" in capsys.readouterr().out
    record = json.loads((tmp_path / "q.fallback.json").read_text())
    assert record["data"] == "held-out" and record["samples"] == 48
