"""evals/accuracy.py scores every corpus model: a metric for each, the output it scores
exists, and ONNX Runtime's opset 13 conversion reads an IR 3 file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals import accuracy  # noqa: E402
from evals.corpus import models as corpus  # noqa: E402


@pytest.mark.parametrize("m", corpus.MODELS, ids=lambda m: m.name)
def test_every_corpus_model_has_a_metric(m: corpus.CorpusModel) -> None:
    assert accuracy.metric_of(m).label


@pytest.mark.parametrize("name", sorted(accuracy.SCORED_OUTPUT))
def test_the_scored_output_exists(name: str) -> None:
    m = corpus.BY_NAME[name]
    if not m.path.exists():
        pytest.skip("corpus cache missing")
    outputs = onnx.load(str(m.path), load_external_data=False).graph.output
    assert accuracy.SCORED_OUTPUT[name] < len(outputs)


def test_an_ir3_file_converts_to_opset_13(tmp_path: Path) -> None:
    """IR 3 with its weight an initializer that is not a graph input (as waifu2x_upconv7):
    the converter finds the weight undefined unless the file is read as IR 4."""
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 3
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    converted = accuracy._ort_opset13(path, tmp_path)
    assert converted != path
    out = onnx.load(str(converted))
    assert {o.domain: o.version for o in out.opset_import}[""] == 13
    x = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    y = ort.InferenceSession(str(converted)).run(None, {"x": x})[0]
    np.testing.assert_array_equal(y, np.repeat(x.sum(axis=1, keepdims=True), 2, axis=1))


@pytest.mark.parametrize("name", sorted(accuracy.METRIC_OF))
def test_every_metric_override_names_a_corpus_model(name: str) -> None:
    assert name in corpus.BY_NAME
    assert accuracy.METRIC_OF[name] in accuracy.METRICS


def test_the_key_recogniser_is_scored_by_its_key() -> None:
    assert accuracy.metric_of(corpus.BY_NAME["madmom_key_cnn"]).label == "top-1 agreement %"


def test_the_bias_correction_measured_is_listed() -> None:
    """The default's bias correction line (its gain per fold) is printed under the tables."""
    res = accuracy.Result(corpus.BY_NAME["magika"], accuracy.metric_of(corpus.BY_NAME["magika"]))
    assert accuracy.notes([res]) == []
    res.bias_correction = "bias correction: +1.00 dB (+1.50 +0.50) < kept"
    assert accuracy.notes([res]) == [
        f"magika: {accuracy.MEASURED}: bias correction: +1.00 dB (+1.50 +0.50) < kept"]


def test_a_time_window_copy_runs_on_the_shorter_window() -> None:
    """evals/time_folds.py's window copy: the first input axis pinned to the window, the
    output's shape left to inference; a convolution over time gives, on a window, the rows
    the whole input gives away from the window's edges."""
    from evals import time_folds

    w = numpy_helper.from_array(np.array([[[[1.0], [2.0], [1.0]]]], np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Unsqueeze", ["x", "axes"], ["x4"]),
         helper.make_node("Conv", ["x4", "w"], ["y4"], pads=[1, 0, 1, 0]),
         helper.make_node("Squeeze", ["y4", "axes"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 5])],
        [w, numpy_helper.from_array(np.array([0, 1], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    short = time_folds.windowed(model, 4)
    onnx.checker.check_model(short, full_check=True)
    assert [d.dim_value for d in short.graph.input[0].type.tensor_type.shape.dim] == [4, 5]
    x = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    whole = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    part = ort.InferenceSession(short.SerializeToString()).run(None, {"x": x[2:6]})[0]
    assert part.shape == (4, 5)
    np.testing.assert_allclose(part[1:3], whole[3:5], rtol=1e-6)


def test_top1_of_an_integer_output_compares_the_class_ids() -> None:
    """unidic_imitator ends in an ArgMax ([1, 256] int64 ids, one per character): its top-1
    is the share of ids equal to the float model's, not the arg-max over the ids (which
    compared one position per sample, that of the largest id)."""
    ref = [np.array([[3, 9, 1, 4]], np.int64)]
    assert accuracy.top1_agreement(ref, [np.array([[3, 9, 2, 5]], np.int64)]) == 50.0
    assert accuracy.top1_agreement(ref, [np.array([[3, 8, 1, 4]], np.int64)]) == 75.0
    scores = [np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)]
    assert accuracy.top1_agreement(scores, [np.array([[0.2, 0.7], [0.1, 0.3]])]) == 50.0


def test_every_default_candidate_is_a_config_or_a_patch() -> None:
    """evals/default_candidates.py: each candidate is Config fields on top of Config(), or a
    patch of the default's measurement; "4 folds" cuts the calibration feeds in 4."""
    from evals import default_candidates

    from lowp import pipeline
    from lowp.config import Config
    from lowp.feeds import as_feeds
    from lowp.inputs import InputSpec

    for name, fields in default_candidates.CANDIDATES.items():
        assert Config(**fields) != Config(), name
    assert not set(default_candidates.CANDIDATES) & set(default_candidates.PATCHES)
    spec = [InputSpec("x", np.dtype(np.float32), (None, 2))]
    feeds = as_feeds({"x": np.zeros((16, 2), np.float32)}, spec, 16)
    assert len(pipeline.method_folds(feeds).pairs) == 2
    with default_candidates.PATCHES["4 folds"]():
        assert len(pipeline.method_folds(feeds).pairs) == 4
