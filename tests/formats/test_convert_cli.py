"""`lowp convert` and lowp.convert: written atomically, checked, one clear error line."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import lowp
from lowp.cli import main

from .models import batches, ort_quantized


@pytest.fixture(scope="module")
def qoperator_file(tmp_path_factory):
    return ort_quantized(tmp_path_factory.mktemp("cli"), "QOperator", "u8", True)


def test_convert_both_ways(tmp_path, qoperator_file, capsys):
    qdq, back = tmp_path / "qdq.onnx", tmp_path / "qop.onnx"
    assert main(["convert", str(qoperator_file), "--to", "qdq", "-o", str(qdq)]) == 0
    assert main(["convert", str(qdq), "--to", "qoperator", "-o", str(back)]) == 0
    assert "qoperator model written to" in capsys.readouterr().out
    converted = onnx.load(qdq)
    onnx.checker.check_model(converted)
    assert "QLinearConv" not in {n.op_type for n in converted.graph.node}
    assert "QLinearConv" in {n.op_type for n in onnx.load(back).graph.node}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qdq.onnx", "qop.onnx"]
    feeds = batches(seed=9, n=1)[0]
    np.testing.assert_array_equal(lowp.Session(qdq).run(feeds)["y"],
                                  lowp.Session(qoperator_file).run(feeds)["y"])


def test_run_and_check_read_qoperator_files(tmp_path, qoperator_file, capsys):
    np.save(tmp_path / "x.npy", batches(seed=2, n=1)[0]["x"])
    assert main(["run", str(qoperator_file), "--input", f"x={tmp_path / 'x.npy'}"]) == 0
    assert "y: shape (8, 10)" in capsys.readouterr().out
    # ONNX Runtime's uint8 file with symmetric int8 weights in [-127, 127] obeys lowp's rules
    assert main(["check", str(qoperator_file), "--target", "lowp"]) == 0
    assert "obeys target 'lowp'" in capsys.readouterr().out
    assert main(["compare", str(qoperator_file), "--targets", "lowp", "fbgemm",
                 "--samples", "2"]) == 0
    assert "output 'y'" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["missing.onnx", "--to", "qdq"], "no such file"),
    (["BAD", "--to", "qoperator"], "unsupported operator QLinearReduceMean"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    if args[0] == "BAD":
        from onnx import numpy_helper

        from .test_qoperator import _contrib_model
        inits = [numpy_helper.from_array(np.float32(0.1), "s"),
                 numpy_helper.from_array(np.uint8(128), "z")]
        onnx.save(_contrib_model("QLinearReduceMean", ["x", "s", "z", "s", "z"], inits),
                  tmp_path / "bad.onnx")
        args = [str(tmp_path / "bad.onnx"), *args[1:]]
    else:
        args = [str(tmp_path / args[0]), *args[1:]]
    out = tmp_path / "out.onnx"
    assert main(["convert", *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lowp: error: ") and message in err[0]
    assert not out.exists()


def test_unknown_format_is_an_argument_error(tmp_path, qoperator_file):
    with pytest.raises(SystemExit) as e:
        main(["convert", str(qoperator_file), "--to", "qlinear", "-o", str(tmp_path / "o")])
    assert e.value.code == 2
    with pytest.raises(ValueError):
        lowp.convert(qoperator_file, "qlinear")
