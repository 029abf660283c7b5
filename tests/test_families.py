"""Smoke test of the real-world model families (evals/families.py): each builds, quantizes
with the default Config, the QDQ model passes onnx.checker and runs in ONNX Runtime and on
lowp's engine. Known gaps are strict xfails whose reason is the exact error."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import lowp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals import families  # noqa: E402

# (family, opset) -> the error lowp's engine (or quantizer) raises today.
KNOWN_FAILURES: dict[tuple[str, int], str] = {}

CASES = [(name, opset) for opset in (17, 11) for name in families.FAMILIES]


def _case(name: str, opset: int) -> object:
    reason = KNOWN_FAILURES.get((name, opset))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(name, opset, id=f"{name}-opset{opset}", marks=marks)


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("families")


@pytest.mark.parametrize(("name", "opset"), [_case(n, o) for n, o in CASES])
def test_family_quantizes_and_runs(name: str, opset: int, directory: Path) -> None:
    path, calib, feeds, targets = families.build(name, directory, opset=opset, quick=True)
    assert onnx.load(str(path)).opset_import[0].version == opset
    if targets is not None:
        assert len(targets) == len(next(iter(feeds.values())))
    batch = {k: v[:3] for k, v in feeds.items()}

    qdq = lowp.quantize_model(path, calib)
    onnx.checker.check_model(qdq)
    assert any(n.op_type == "QuantizeLinear" for n in qdq.graph.node)
    ort_out = ort.InferenceSession(qdq.SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, batch)

    session = lowp.Session(qdq)
    out = session.run(batch)
    for name_, expected in zip(out, ort_out, strict=True):
        assert out[name_].shape == expected.shape
        assert np.isfinite(out[name_]).all()
    other = families.other_shape(name, batch)                  # the dynamic axes really are
    assert all(o.shape for o in session.run(other).values())


def test_yolo_int8_keeps_detections(directory: Path) -> None:
    """The output Concat joins box pixels (~0..500) and sigmoid scores (0..1): quantized with
    one scale the scores collapse to 0 (box match ~17%); the CONNECTED policy keeps the head
    in float."""
    path, calib, feeds, _ = families.build("yolo", directory, opset=17, quick=True)
    run = lambda m: dict(zip(  # noqa: E731
        ["output"], ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, feeds),
        strict=True))
    reference = run(str(path))
    qdq = lowp.quantize_model(path, calib)
    scores = families.metric("yolo", run(qdq.SerializeToString()), None, reference)
    assert scores["box match IoU>=0.5 vs float (%)"] >= 80.0
    everything = lowp.quantize_model(path, calib, lowp.Config(policy=lowp.config.QuantPolicy.ALL))
    scores = families.metric("yolo", run(everything.SerializeToString()), None, reference)
    assert scores["box match IoU>=0.5 vs float (%)"] < 50.0
