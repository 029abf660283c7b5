"""Calibration data as feeds: every form streams the same feeds into the same statistics,
checks each feed by index, and yields a QDQ model ONNX Runtime runs; histogram methods on
constant tensors; zero tensors under policy ALL."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.cli import main
from lowp.config import CalibMethod, Config, QuantPolicy
from lowp.errors import DataError
from lowp.feeds import CachedFeeds, NpzFolder, StackedFeeds, as_feeds
from lowp.inputs import (
    ImagePreprocess,
    InputSpec,
    batches,
    iter_chunks,
    model_inputs,
    validate,
)
from lowp.pipeline import quantize
from lowp.runtime import Session

OPSET = [helper.make_opsetid("", 17)]


def _cnn() -> onnx.ModelProto:
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm on images of any size."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((5, 4)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="fc")]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])], inits)
    return helper.make_model(graph, opset_imports=OPSET)


def _images(seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    shapes = [(1, 3, 8, 8), (2, 3, 12, 10), (1, 3, 5, 7), (3, 3, 6, 9)]
    return [{"x": rng.standard_normal(s).astype(np.float32)} for s in shapes]


def _ort(model: onnx.ModelProto, feed: dict[str, np.ndarray],
         names: list[str] | None = None) -> list[np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(names, feed)


def _check_runs(q: onnx.ModelProto, feed: dict[str, np.ndarray]) -> None:
    onnx.checker.check_model(q, full_check=True)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in q.graph.node}
    assert all(np.all(np.isfinite(v)) for v in _ort(q, feed))


def _dequantized(q: onnx.ModelProto) -> set[str]:
    """Names around the QDQ pairs: what QuantizeLinear reads (a graph input, or a renamed
    producer output t_float) and what DequantizeLinear writes (t)."""
    return ({n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
            | {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"})


def _expose(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                          for n in names)
    return m


# --- the forms ----------------------------------------------------------------------------

def test_list_of_differently_shaped_feeds_gives_exact_min_max():
    model, feeds = _cnn(), _images()
    result = quantize(model, feeds, Config(method=CalibMethod.MINMAX))
    _check_runs(result.model, {"x": np.ones((1, 3, 11, 4), np.float32)})
    # the reference: run the float model on each feed and take min/max of each tensor
    tensors = list(result.table.ranges)
    exposed = _expose(model, [t for t in tensors if t != "x"])
    want = {t: (np.inf, -np.inf) for t in tensors}
    for feed in feeds:
        values = dict(zip([t for t in tensors if t != "x"],
                          _ort(exposed, feed, [t for t in tensors if t != "x"]), strict=True))
        values["x"] = feed["x"]
        for t in tensors:
            want[t] = (min(want[t][0], float(values[t].min())),
                       max(want[t][1], float(values[t].max())))
    assert result.table.ranges == want


@pytest.mark.parametrize("method", [CalibMethod.PERCENTILE, CalibMethod.ENTROPY])
def test_callable_generator_and_loader_give_the_table_of_the_list(method, tmp_path,
                                                                  monkeypatch):
    config = Config(method=method)
    want = quantize(_cnn(), _images(), config).table

    def factory() -> Iterator[dict[str, np.ndarray]]:
        yield from _images()

    assert quantize(_cnn(), factory, config).table == want

    class Tensor:                    # what a DataLoader yields: no numpy subclass
        def __init__(self, a: np.ndarray) -> None:
            self._a = a

        def detach(self) -> Tensor:
            return self

        def cpu(self) -> Tensor:
            return self

        def __array__(self, dtype=None, copy=None) -> np.ndarray:
            return self._a if dtype is None else self._a.astype(dtype)

    class Loader:
        def __iter__(self):
            return iter([{"x": Tensor(f["x"])} for f in _images()])

        def __len__(self) -> int:
            return 4

    assert quantize(_cnn(), Loader(), config).table == want

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    q = lowp.quantize_model(_cnn(), (f for f in _images()), config)
    assert not list(tmp_path.rglob("*.npz"))             # the cache is removed
    _check_runs(q, _images()[1])
    result = quantize(_cnn(), (f for f in _images()), config)
    assert result.table == want
    assert result.feeds is not None and len(list(tmp_path.rglob("*.npz"))) == 4
    result.feeds.close()                                 # quantize() hands the cache over
    assert not list(tmp_path.rglob("*.npz"))


def test_one_shot_generator_is_cached_once_and_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pulled = []

    def gen() -> Iterator[dict[str, np.ndarray]]:
        for i, f in enumerate(_images()):
            pulled.append(i)
            yield f

    spec = model_inputs(_cnn())
    source = CachedFeeds(gen(), spec)
    first = [f["x"] for f in source]
    assert len(list(tmp_path.rglob("*.npz"))) == 4 and source.num_feeds == 4
    second = [f["x"] for f in source]
    assert pulled == [0, 1, 2, 3]                        # the generator ran once
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    source.close()
    assert not list(tmp_path.rglob("*"))
    with pytest.raises(DataError, match="cache was removed"):
        list(source)

    # an abandoned first pass: the next pass reads the cache, then continues the iterator
    pulled.clear()
    source = CachedFeeds(gen(), spec)
    assert source.first()["x"].shape == (1, 3, 8, 8)
    assert [f["x"].shape[0] for f in source] == [1, 2, 1, 3] and pulled == [0, 1, 2, 3]
    source.close()

    # through the API, two passes (entropy) and nothing left behind, failing or not
    lowp.quantize_model(_cnn(), gen(), Config(method=CalibMethod.ENTROPY))
    assert not list(tmp_path.rglob("*.npz"))
    bad = (f if i < 2 else {"x": f["x"][0]} for i, f in enumerate(_images()))
    with pytest.raises(DataError, match="feed 2"):
        lowp.quantize_model(_cnn(), bad)
    assert not list(tmp_path.rglob("*"))


def test_recurrent_model_calibrates_from_natural_feeds():
    """An LSTM whose initial state (1, batch, hidden) has no sample axis: feeds as given,
    with varying sequence length and batch."""
    rng = np.random.default_rng(2)
    hidden, inp, out = 6, 4, 3
    inits = [numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, inp)).astype(
                 np.float32) * 0.5, "W"),
             numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, hidden)).astype(
                 np.float32) * 0.5, "R"),
             numpy_helper.from_array(rng.standard_normal((hidden, out)).astype(np.float32),
                                     "fc")]
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "", "", "h0"], ["", "h_n"],
                              hidden_size=hidden, name="lstm"),
             helper.make_node("MatMul", ["h_n", "fc"], ["y"], name="fc")]
    graph = helper.make_graph(
        nodes, "rnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", "batch", inp]),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "batch", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "batch", out])], inits)
    model = helper.make_model(graph, opset_imports=OPSET)
    feeds = [{"x": rng.standard_normal((t, b, inp)).astype(np.float32),
              "h0": rng.standard_normal((1, b, hidden)).astype(np.float32)}
             for t, b in ((5, 1), (3, 2), (7, 1))]
    q = lowp.quantize_model(model, feeds, Config(method=CalibMethod.PERCENTILE))
    _check_runs(q, feeds[1])
    assert "h_n" in _dequantized(q)
    # the stacked form cannot say this: its first axis would be cut as samples
    with pytest.raises(DataError, match="different numbers of samples"):
        lowp.quantize_model(model, {"x": feeds[0]["x"], "h0": feeds[0]["h0"][:, :1]},
                            Config(batch_size=1))


def test_feed_errors_name_the_feed_and_the_input():
    model = _cnn()
    good = _images()[:2]
    bad_rank = good + [{"x": np.zeros((3, 8, 8), np.float32)}]
    with pytest.raises(DataError, match=r"feed 2: input 'x' has shape \(3, 8, 8\), the model "
                                        r"expects \(\?, 3, \?, \?\)"):
        lowp.quantize_model(model, bad_rank)
    with pytest.raises(DataError, match=r"feed 1: input 'x' has shape \(1, 4, 8, 8\)"):
        lowp.quantize_model(model, [good[0], {"x": np.zeros((1, 4, 8, 8), np.float32)}])
    with pytest.raises(DataError, match="feed 1: missing input x"):
        lowp.quantize_model(model, [good[0], {"y": good[1]["x"]}])
    with pytest.raises(DataError, match="feed 0: input 'x' has dtype int64"):
        lowp.quantize_model(model, [{"x": np.zeros((1, 3, 4, 4), np.int64)}])
    with pytest.raises(DataError, match=r"feed 1: input 'x' contains NaN or Inf"):
        lowp.quantize_model(model, [good[0], {"x": np.full((1, 3, 4, 4), np.nan, np.float32)}])
    with pytest.raises(DataError, match="feed 0 is a ndarray, expected a dict"):
        lowp.quantize_model(model, [good[0]["x"]])
    with pytest.raises(DataError, match="got a ndarray"):
        lowp.quantize_model(model, good[0]["x"])
    with pytest.raises(DataError, match="no feeds"):
        lowp.quantize_model(model, [])
    once = iter(_images())
    with pytest.raises(DataError, match="fresh iterable on every call"):
        lowp.quantize_model(model, lambda: once, Config(method=CalibMethod.ENTROPY))
    with pytest.raises(DataError, match="feed 3: input 'x'"):     # also in a generator
        lowp.quantize_model(model, (f if i < 3 else {"x": f["x"][0]}
                                    for i, f in enumerate(_images())))


# --- the stacked forms stream in batches -------------------------------------------------

@pytest.mark.parametrize("fixed", [None, 4])
def test_folder_parts_are_cut_into_the_batches_of_the_concatenation(tmp_path, fixed):
    rng = np.random.default_rng(3)
    parts = [rng.standard_normal((n, 3)).astype(np.float32) for n in (3, 5, 2, 1)]
    for i, p in enumerate(parts):
        np.savez(tmp_path / f"part{i}.npz", x=p)
    spec = [InputSpec("x", np.dtype(np.float32), (fixed, 3))]
    want = list(batches(validate({"x": np.concatenate(parts)}, spec), spec, 4))
    got = list(as_feeds(tmp_path, spec, 4))
    assert [f["x"].shape for f in got] == [f["x"].shape for f in want]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a["x"], b["x"])
    assert sum(1 for _ in iter_chunks(tmp_path, spec)) == 4     # one file at a time
    mapping = as_feeds({"x": np.concatenate(parts)}, spec, 4)
    assert isinstance(mapping, StackedFeeds) and len(mapping) == len(want)


def test_folder_part_with_a_wrong_input_is_named(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((2, 3), np.float32))
    np.savez(tmp_path / "b.npz", y=np.zeros((2, 3), np.float32))
    spec = [InputSpec("x", np.dtype(np.float32), (None, 3))]
    with pytest.raises(DataError, match=r"calibration data \(b.npz\): missing input x"):
        list(as_feeds(tmp_path, spec, 4))


def test_cli_data_folder_of_per_feed_npz(tmp_path, capsys):
    model_path = tmp_path / "cnn.onnx"
    onnx.save(_cnn(), model_path)
    folder = tmp_path / "feeds"
    folder.mkdir()
    for i, f in enumerate(_images()):
        np.savez(folder / f"{i:03d}.npz", **f)
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(model_path), "--data", str(folder), "-o", str(out),
                 "--quiet", "--method", "percentile"]) == 0
    assert "lowp engine vs ONNX Runtime" in capsys.readouterr().out
    want = quantize(_cnn(), NpzFolder(folder), Config(method=CalibMethod.PERCENTILE)).model
    assert onnx.load(str(out)) == want
    _check_runs(want, _images()[2])
    np.savez(folder / "004.npz", x=np.zeros((3, 8), np.float32))
    assert main(["quantize", str(model_path), "--data", str(folder), "-o", str(out),
                 "--quiet"]) == 2
    assert "feed 4: input 'x' has shape (3, 8)" in capsys.readouterr().err


def test_images_of_any_size_keep_their_aspect(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(7)
    folder = tmp_path / "lines"
    folder.mkdir()
    sizes = [(10, 30), (20, 20), (5, 41)]                  # (height, width)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    spec = model_inputs(_cnn())
    pre = ImagePreprocess(size=(8, 24), keep_aspect=True, pad_to_multiple=4, mean=(0.5,),
                          std=(0.5,))
    feeds = list(as_feeds(folder, spec, 16, pre))
    # heights 8; widths 24 (capped), 8, 66 -> 24 (capped), padded to a multiple of 4
    assert [f["x"].shape for f in feeds] == [(1, 3, 8, 24), (1, 3, 8, 8), (1, 3, 8, 24)]
    line = Image.open(folder / "0.png").convert("RGB").resize((24, 8))
    want = (np.asarray(line, np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    np.testing.assert_array_equal(feeds[0]["x"][0], want.transpose(2, 0, 1))
    odd = list(as_feeds(folder, spec, 16, ImagePreprocess(keep_aspect=True, pad_to_multiple=8)))
    assert [f["x"].shape for f in odd] == [(1, 3, 16, 32), (1, 3, 24, 24), (1, 3, 8, 48)]
    assert np.all(odd[2]["x"][0, :, 5:, :] == 0) and np.all(odd[2]["x"][0, :, :, 41:] == 0)
    model_path = tmp_path / "cnn.onnx"
    onnx.save(_cnn(), model_path)
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(model_path), "--calib", str(folder), "-o", str(out),
                 "--quiet", "--no-report", "--keep-aspect", "--pad-to-multiple", "4",
                 "--image-size", "8", "24", "--mean", "0.5", "--std", "0.5"]) == 0
    assert onnx.load(str(out)) == quantize(_cnn(), folder, preprocess=pre).model


# --- histogram methods on constants, zero tensors under ALL ------------------------------

def _add_of_a_folded_constant() -> onnx.ModelProto:
    """y = x + Reshape(c, shape): the second operand is computed from constants only (as
    paddle2onnx exports a bias), so canonicalization folds it into an initializer."""
    c = np.linspace(-3.0, 5.0, 16).astype(np.float32)
    inits = [numpy_helper.from_array(c, "c"),
             numpy_helper.from_array(np.array([1, 16, 1, 1], np.int64), "shape"),
             numpy_helper.from_array(np.ones((16, 16, 1, 1), np.float32) * 0.1, "w")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["conv"], name="conv"),
             helper.make_node("Reshape", ["c", "shape"], ["bias"], name="reshape"),
             helper.make_node("Add", ["conv", "bias"], ["y"], name="add")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16, 4, 4])], inits)
    return helper.make_model(graph, opset_imports=OPSET)


@pytest.mark.parametrize("method", list(CalibMethod))
def test_every_method_quantizes_a_tensor_computed_from_constants(method):
    x = np.random.default_rng(4).standard_normal((8, 16, 4, 4)).astype(np.float32)
    result = quantize(_add_of_a_folded_constant(), {"x": x},
                      Config(method=method, policy=QuantPolicy.ALL))
    assert result.table.ranges["bias"] == (-3.0, 5.0)         # exact, not clipped
    _check_runs(result.model, {"x": x[:2]})


def _relu_of_negative() -> onnx.ModelProto:
    """y = tanh(relu(x W) + x) with x >= 0 and W <= 0: the Relu output is zero on all data
    (a structural zero, like a masked fill); the Relu is fused into the MatMul's output."""
    rng = np.random.default_rng(5)
    w = -np.abs(rng.standard_normal((8, 8))).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"], name="mm"),
             helper.make_node("Relu", ["mm"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "x"], ["sum"], name="add"),
             helper.make_node("Tanh", ["sum"], ["y"], name="tanh")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
        [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=OPSET)


def test_zero_tensor_stays_float_under_policy_all():
    x = np.abs(np.random.default_rng(6).standard_normal((16, 8))).astype(np.float32)
    model = _relu_of_negative()
    with pytest.warns(UserWarning, match="'r' .*zero on all calibration data: left in "
                                         "float with the nodes relu, add"):
        result = quantize(model, {"x": x}, Config(policy=QuantPolicy.ALL))
    quantized = _dequantized(result.model)
    assert {"r", "r_float"}.isdisjoint(quantized) and {"x", "mm", "sum"} <= quantized
    assert {"relu", "add"}.isdisjoint(result.annotation.nodes)
    # 'mm' became a quantized tensor only when the fused Relu left: calibrated then
    mm = _ort(_expose(model, ["mm"]), {"x": x}, ["mm"])[0]
    assert result.table.ranges["mm"] == (float(mm.min()), float(mm.max()))
    _check_runs(result.model, {"x": x})
    np.testing.assert_allclose(Session(result.model).run({"x": x})["y"],
                               _ort(result.model, {"x": x})[0], rtol=0, atol=1e-6)
    # under CONNECTED a zero range still refuses the model (tests/passes/test_zero_range.py)
