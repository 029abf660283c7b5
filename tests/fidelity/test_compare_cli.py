"""`lowp compare`: per-layer differences and their causes, errors as one line and exit 2."""

from __future__ import annotations

import numpy as np
import pytest

import lowp
from lowp.cli import main
from lowp.compare import compare_targets
from lowp.data import demo_model_path, load_demo_calibration, load_demo_test
from lowp.fidelity import run_as


@pytest.fixture(scope="module")
def demo_qdq(tmp_path_factory: pytest.TempPathFactory):
    calib = load_demo_calibration()
    model = lowp.quantize_model(demo_model_path(), {k: v[:32] for k, v in calib.items()},
                                lowp.Config(target="onnxruntime"))
    path = tmp_path_factory.mktemp("cmp") / "digits_q.onnx"
    import onnx
    onnx.save(model, path)
    feeds, _ = load_demo_test()
    data = path.parent / "data.npz"
    np.savez(data, input=feeds["input"][:8])
    return path, data


def test_compare_explains_saturation_and_constraints(demo_qdq, capsys) -> None:
    path, data = demo_qdq
    assert main(["compare", str(path), "--targets", "onnxruntime", "fbgemm-avx2",
                 "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime vs fbgemm-avx2 on 8 samples" in out
    assert ("16-bit saturation of u8 x s8 pairs (vpmaddubsw without VNNI): int32 "
            "(onnxruntime) vs int16-pairs (fbgemm-avx2)") in out
    assert "constraint: fbgemm-avx2: node" in out and "outside [0, 127]" in out


def test_compare_explains_fixed_point_rounding(demo_qdq, capsys) -> None:
    path, _ = demo_qdq
    assert main(["compare", str(path), "--targets", "lowp", "gemmlowp", "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert "rounding: float32 round-half-even or fixed-point multiplier and shift" in out


def test_compare_identical_engines(demo_qdq) -> None:
    path, _ = demo_qdq
    feeds, _ = load_demo_test()
    report = compare_targets(str(path), {"input": feeds["input"][:4]}, "onnxruntime", "lowp")
    assert all(d.differ == 0 for d in report.layers)
    assert report.outputs["logits"][1] == 0


def test_run_as_lowp_equals_session(demo_qdq) -> None:
    path, _ = demo_qdq
    feeds, _ = load_demo_test()
    x = {"input": feeds["input"][:4]}
    want = lowp.Session(str(path), backend="reference").run(x)["logits"]
    np.testing.assert_array_equal(run_as(str(path), x, "lowp")["logits"], want)


def test_compare_missing_model(tmp_path, capsys) -> None:
    assert main(["compare", str(tmp_path / "none.onnx"), "--targets", "x86", "qnnpack"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lowp: error: {tmp_path / 'none.onnx'}: no such file"]


def test_compare_bad_data(demo_qdq, tmp_path, capsys) -> None:
    path, _ = demo_qdq
    bad = tmp_path / "bad.npz"
    np.savez(bad, wrong=np.zeros((2, 3), np.float32))
    assert main(["compare", str(path), "--targets", "x86", "qnnpack", "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lowp: error: ")


def test_torch_import_without_torch(monkeypatch) -> None:
    """Library code imports torch lazily and says how to get it."""
    import sys

    from lowp.errors import LowpError
    from lowp.fidelity.torch_import import require_torch

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(LowpError, match=r"needs PyTorch, which is not installed"):
        require_torch()
