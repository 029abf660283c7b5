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

    out = lowp.Session(qdq).run(batch)
    for name_, expected in zip(out, ort_out, strict=True):
        assert out[name_].shape == expected.shape
        assert np.isfinite(out[name_]).all()
