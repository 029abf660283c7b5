"""Session behaviour: arena buffers never leak into results, threads do not change them."""

from __future__ import annotations

import numpy as np
import pytest

import lowp
from lowp.data import demo_model_path, load_demo_calibration, load_demo_test
from lowp.errors import DataError
from lowp.runtime import Session
from lowp.runtime.backends import native_available


@pytest.fixture(scope="module")
def qmodel():
    return lowp.quantize_model(demo_model_path(), load_demo_calibration())


def test_results_survive_later_runs(qmodel):
    feeds, _ = load_demo_test()
    s = Session(qmodel)
    first = s.run({"input": feeds["input"][:8]}, capture=True)
    kept = {k: v.copy() for k, v in first.items()}
    s.run({"input": feeds["input"][8:16]}, capture=True)
    for k in kept:
        np.testing.assert_array_equal(first[k], kept[k], err_msg=k)


@pytest.mark.skipif(not native_available(), reason="the native extension is not built")
def test_thread_count_does_not_change_results(qmodel):
    feeds, _ = load_demo_test()
    outs = [Session(qmodel, backend="native", threads=t).run(feeds)["logits"] for t in (1, 2)]
    np.testing.assert_array_equal(outs[0], outs[1])
    ref = Session(qmodel, backend="reference").run(feeds)["logits"]
    np.testing.assert_array_equal(outs[0], ref)


def test_feed_errors(qmodel):
    s = Session(qmodel, backend="reference")
    with pytest.raises(DataError, match="missing input 'input'"):
        s.run({})
    with pytest.raises(DataError, match="has shape \\(2, 8, 8\\)"):
        s.run({"input": np.zeros((2, 8, 8), np.float32)})
    with pytest.raises(DataError, match="'other' is not an input"):
        s.run({"input": np.zeros((1, 1, 8, 8), np.float32), "other": np.zeros(1)})


def test_an_unnamed_node_of_another_domain_is_refused_naming_its_output() -> None:
    """skl2onnx and onnxmltools leave ai.onnx.ml nodes such as TreeEnsemble unnamed."""
    from onnx import TensorProto, helper

    from lowp.errors import UnsupportedOpError

    node = helper.make_node("Normalizer", ["X"], ["Y"], domain="ai.onnx.ml", norm="L2")
    graph = helper.make_graph([node], "ml",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 1])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", 3)])
    with pytest.raises(UnsupportedOpError, match="Normalizer \\(node 'output Y'\\): domain "
                                                 "'ai.onnx.ml'"):
        Session(model)
