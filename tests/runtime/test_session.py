"""Session behaviour: arena buffers never leak into results, threads do not change them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

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

    node = helper.make_node("Binarizer", ["X"], ["Y"], domain="ai.onnx.ml", threshold=0.5)
    graph = helper.make_graph([node], "ml",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 1])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", 3)])
    with pytest.raises(UnsupportedOpError, match="Binarizer \\(node 'output Y'\\): domain "
                                                 "'ai.onnx.ml'"):
        Session(model)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.uint8])
def test_a_rank_0_table_output_is_a_tensor(dtype) -> None:
    # plcmos_v2 quantized by ONNX Runtime's quantizer with 16-bit activations ends in a
    # scalar Sigmoid group: the 16-bit table's numpy lookup gave a numpy scalar, refused as
    # "a sequence, not a tensor" (evals/corpus/repro/README.md, 108)
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(0.001, np.float32), "s"),
             numpy_helper.from_array(np.array(7, dtype), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xf"]),
             helper.make_node("Sigmoid", ["xf"], ["a"]),
             helper.make_node("QuantizeLinear", ["a", "s", "z"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    x = np.array(0.0625, np.float32)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    for backend in ("reference", "native"):
        for threads in (1, 2):
            session = Session(model, backend=backend, threads=threads)
            for _ in range(2):                       # recorded, then replayed
                got = session.run({"x": x})["y"]
                assert isinstance(got, np.ndarray) and got.shape == ()
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_ready_signature_runs_as_a_checked_run(qmodel, backend, threads):
    """From the third run of a feed signature that replays with no bound on BLAS's threads
    to set, a run skips the checks and set-up its first runs did (Session._run_ready): the
    outputs of a run without replay, new arrays every run; feeds the checks cast or refuse,
    another shape, named outputs and a captured run still go through the checks."""
    if backend == "native" and not native_available():
        pytest.skip("the native extension is not built")
    x = load_demo_test()[0]["input"]
    fast = Session(qmodel, backend=backend, threads=threads)
    plain = Session(qmodel, backend=backend, threads=threads, replay=False)
    kept = []
    for k in range(6):
        batch = x[4 * k:4 * k + 4]
        got = fast.run({"input": batch})["logits"]
        np.testing.assert_array_equal(got, plain.run({"input": batch})["logits"])
        kept.append((got, got.copy()))
    for got, copy in kept:
        np.testing.assert_array_equal(got, copy)
    if backend == "native":
        assert fast._ready_run is not None
    batch = x[8:12]
    want = plain.run({"input": batch})["logits"]
    np.testing.assert_array_equal(fast.run({"input": batch.astype(np.float64)})["logits"],
                                  want)
    np.testing.assert_array_equal(fast.run({"input": batch}, ["logits"])["logits"], want)
    np.testing.assert_array_equal(fast.run({"input": batch}, capture=True)["logits"], want)
    np.testing.assert_array_equal(fast.run({"input": x[:3]})["logits"],
                                  plain.run({"input": x[:3]})["logits"])
    with pytest.raises(DataError, match="has dtype int32"):
        fast.run({"input": batch.astype(np.int32)})
    with pytest.raises(DataError, match="'other' is not an input"):
        fast.run({"input": batch, "other": batch})
    with pytest.raises(DataError, match="missing input 'input'"):
        fast.run({"other": batch})
    with pytest.raises(DataError, match="has shape \\(4, 8, 8\\)"):
        fast.run({"input": batch[:, 0]})
    np.testing.assert_array_equal(fast.run({"input": batch})["logits"], want)


def _gather_model() -> onnx.ModelProto:
    """Relu of Gather(x, i) along axis 0 (an index read as the Program runs), with x itself
    and a constant among the outputs."""
    graph = helper.make_graph(
        [helper.make_node("Gather", ["x", "i"], ["g"], name="pick", axis=0),
         helper.make_node("Relu", ["g"], ["y"])],
        "gather_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 3]),
         helper.make_tensor_value_info("i", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 3]),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])],
        [helper.make_tensor("c", TensorProto.FLOAT, [2], [1.5, -2.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_native_only_signature_runs_its_programs_directly() -> None:
    """A ready signature that is native Programs only runs as `replay.Direct` once its
    Programs' shared forms are verified: the outputs of a run without replay (a feed and a
    constant among them), new arrays every run; an index out of range found as the Program
    runs raises the node's error, and the next run is right again."""
    if not native_available():
        pytest.skip("the native extension is not built")
    model = _gather_model()
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    rng = np.random.default_rng(0)
    kept = []
    for k in range(6):
        feeds = {"x": rng.standard_normal((5, 3)).astype(np.float32),
                 "i": np.array([k % 5, 4 - k % 5], np.int64)}
        got, want = fast.run(feeds), plain.run(feeds)
        assert list(got) == ["y", "x", "c"]
        for n in want:
            np.testing.assert_array_equal(got[n], want[n])
            kept.append((got[n], got[n].copy()))
        assert got["x"] is not feeds["x"]
    for got, copy in kept:
        np.testing.assert_array_equal(got, copy)
    assert fast._ready_run is not None and fast._ready_run.direct is not None
    bad = {"x": feeds["x"], "i": np.array([1, 5], np.int64)}
    with pytest.raises(lowp.errors.NodeError, match="pick"):
        fast.run(bad)
    np.testing.assert_array_equal(fast.run(feeds)["y"], want["y"])


def _maps_and_tensor_model() -> onnx.ModelProto:
    """x -> Relu -> ZipMap (its maps made after the run), Hardmax of the same Relu (a step
    run from Python on every replayed run), and Neg of x."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("ZipMap", ["r"], ["maps"], domain="ai.onnx.ml",
                          classlabels_int64s=[3, 1, 2]),
         helper.make_node("Hardmax", ["r"], ["h"]),
         helper.make_node("Neg", ["x"], ["y"])],
        "maps_and_tensor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, [None, 3]),
         helper.make_value_info("maps", helper.make_sequence_type_proto(
             helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(
                 TensorProto.FLOAT, []))))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("ai.onnx.ml", 1)])


def test_a_ready_signature_with_steps_run_from_python_skips_the_set_up() -> None:
    """A ready signature whose replayed run also runs steps from Python (Hardmax), in a
    Session without a BLAS step, runs as `_run_ready` too: the outputs of a run without
    replay, new arrays every run, and feeds of another dtype or shape still refused
    naming the input."""
    model = _maps_and_tensor_model()
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    rng = np.random.default_rng(0)
    kept = []
    for _ in range(6):
        x = rng.standard_normal((4, 3)).astype(np.float32)
        got, want = fast.run({"x": x}), plain.run({"x": x})
        assert got["maps"] == want["maps"]
        np.testing.assert_array_equal(got["y"], want["y"])
        np.testing.assert_array_equal(got["h"], want["h"])
        kept.append((got["y"], got["y"].copy()))
    for got, copy in kept:
        np.testing.assert_array_equal(got, copy)
    assert fast._ready_run is not None and fast._replayer is not None
    assert not fast._replayer.native_only(fast._ready_run.signature)
    with pytest.raises(DataError, match="input 'x' has dtype int32"):
        fast.run({"x": x.astype(np.int32)})
    with pytest.raises(DataError, match="input 'x' has shape \\(4, 4\\)"):
        fast.run({"x": np.zeros((4, 4), np.float32)})
