"""The test model zoo: every builder exports a valid ONNX model that ONNX Runtime runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tests.model_zoo import BUILDERS, N_SAMPLES, ZooResult  # noqa: E402


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builder_exports_checked_runnable_model(
        name: str, tmp_path: Path) -> None:
    builder: Callable[..., ZooResult] = BUILDERS[name]
    path, feed = builder(tmp_path)

    assert path.is_file() and path.parent == tmp_path
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == list(feed)
    for value_info in [*model.graph.input, *model.graph.output]:
        assert value_info.type.tensor_type.shape.dim[0].dim_param == "batch"

    for array in feed.values():
        assert array.dtype == np.float32 and array.shape[0] == N_SAMPLES
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, feed)
    assert len(outputs) == len(model.graph.output)
    for out in outputs:
        assert out.shape[0] == N_SAMPLES and np.all(np.isfinite(out))


def test_builders_are_deterministic(tmp_path: Path) -> None:
    (a := tmp_path / "a").mkdir()
    (b := tmp_path / "b").mkdir()
    path_a, feed_a = BUILDERS["linear_mlp"](a)
    path_b, feed_b = BUILDERS["linear_mlp"](b)
    assert path_a.read_bytes() == path_b.read_bytes()
    np.testing.assert_array_equal(feed_a["input"], feed_b["input"])


def test_batchnorm_kept_with_nontrivial_statistics(tmp_path: Path) -> None:
    path, _ = BUILDERS["resnet_style"](tmp_path)
    model = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    assert bns
    for node in bns:
        mean, var = inits[node.input[3]], inits[node.input[4]]
        assert np.any(np.abs(mean) > 1e-3) and np.any(np.abs(var - 1.0) > 1e-2)
