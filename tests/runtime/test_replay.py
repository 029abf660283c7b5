"""Replay of recorded native calls gives exactly the results of plain runs."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lowp.pipeline import quantize
from lowp.runtime import Session
from lowp.runtime.backends import native_available
from lowp.runtime.replay import MAX_SIGNATURES, RECORDING
from tests import model_zoo

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")

MODELS = ["resnet_style", "mobilenet_v2_style", "mobilenet_v3_style", "detector_head_style",
          "conv1d_model", "conv3d_model", "linear_mlp"]


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("zoo-replay")


def _feeds(data: dict[str, np.ndarray], seed: int, batch: int | None = None
           ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in data.items():
        shape = v.shape if batch is None else (batch, *v.shape[1:])
        out[k] = (rng.standard_normal(shape) * v.std()).astype(v.dtype)
    return out


def _assert_segments_match(fast: Session, plain: Session, feeds: dict[str, np.ndarray],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """One more run equals the plain run, and no segment found an outside tensor changed
    (which would have sent its steps the plain way)."""
    from lowp.runtime import replay

    misses: list[str] = []
    match = replay._match

    def spy(inputs, env, layout):
        ok = match(inputs, env, layout)
        if not ok:
            misses.extend(n for n, _, _ in inputs)
        return ok

    monkeypatch.setattr(replay, "_match", spy)
    _equal(fast.run(feeds), plain.run(feeds))
    assert misses == []


def _equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("name", MODELS)
def test_replay_equals_plain_runs(name, zoo_dir):
    """New feed arrays, one array mutated in place, and shapes that come and go: every run
    of a replaying session equals a plain run, and results never alias its buffers."""
    path, data = model_zoo.BUILDERS[name](zoo_dir)
    model = quantize(path, data).model
    fast, plain = Session(model, threads=2), Session(model, threads=2, replay=False)
    kept = []
    for seed in range(5):
        feeds = _feeds(data, seed)
        got = fast.run(feeds)
        _equal(got, plain.run(feeds))
        kept.append(({k: v.copy() for k, v in got.items()}, got))
    signature = tuple((k, v.shape, v.dtype.str) for k, v in _feeds(data, 0).items())
    assert fast._replayer is not None and fast._replayer.replayed_steps(signature) > 0
    same = _feeds(data, 10)
    for seed in range(4):                               # one input object, new contents
        for k, v in _feeds(data, 20 + seed).items():
            same[k][...] = v
        _equal(fast.run(same), plain.run({k: v.copy() for k, v in same.items()}))
    for batch in (1, 3, 1, 3, 2, 2, 2):                 # other signatures, then back
        feeds = _feeds(data, batch, batch)
        _equal(fast.run(feeds), plain.run(feeds))
    _equal(fast.run(_feeds(data, 0)), plain.run(_feeds(data, 0)))
    for copy, got in kept:                              # earlier results are untouched
        _equal(copy, got)


def test_more_signatures_than_kept_still_run(zoo_dir):
    path, data = model_zoo.BUILDERS["linear_mlp"](zoo_dir)
    model = quantize(path, data).model
    fast, plain = Session(model), Session(model, replay=False)
    for _ in range(3):
        for batch in range(1, MAX_SIGNATURES + 3):
            feeds = _feeds(data, batch, batch)
            _equal(fast.run(feeds), plain.run(feeds))


def test_capture_runs_are_plain_and_profiles_time_the_replayed_steps(zoo_dir):
    path, data = model_zoo.BUILDERS["resnet_style"](zoo_dir)
    model = quantize(path, data).model
    s = Session(model)
    feeds = _feeds(data, 1)
    s.run(feeds, profile=True)
    assert set(s.last_profile) == {RECORDING}
    for _ in range(2):
        s.run(feeds)
    captured = s.run(feeds, capture=True)
    assert len(captured) > len(s.output_names)
    profiled = s.run(feeds, profile=True)
    # every step of this model runs in a native Program, timed there
    assert s.last_profile and RECORDING not in s.last_profile
    assert all(k.split(" ")[0] == k and ":" in k for k in s.last_profile), s.last_profile
    assert "Conv:int" in s.last_profile
    _equal({k: captured[k] for k in s.output_names}, profiled)
    _equal(profiled, s.run(feeds))


def test_sessions_in_two_python_threads(zoo_dir):
    """Two threads running sessions at once (the native pool is shared) get plain results."""
    path, data = model_zoo.BUILDERS["mobilenet_v2_style"](zoo_dir)
    model = quantize(path, data).model
    feeds = [_feeds(data, seed) for seed in range(4)]
    want = [Session(model, replay=False).run(f) for f in feeds]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            s = Session(model, threads=2)
            for i in range(24):
                k = (i + offset) % len(feeds)
                _equal(s.run(feeds[k]), want[k])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(o,)) for o in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def _shape_model(extra: str = "") -> bytes:
    """x (N, C, L) -> Reshape(x, [N, C * L]) with the target computed from Shape(x) (as
    exporters write it); `extra` adds a value-dependent shape (NonZero, or a Reshape whose
    target is read from data)."""
    from onnx import TensorProto, helper, numpy_helper
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("Relu", ["flat"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "i0"),
             numpy_helper.from_array(np.array([0], np.int64), "ax0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    # the target is an output too: read by the Reshape alone, it would be a constant
    # (ONNX Runtime's ReshapeFusion of a computed target, docs/operators.md (O343))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "F"]),
               helper.make_tensor_value_info("target", TensorProto.INT64, [2])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "L"])]
    if extra == "nonzero":
        nodes.append(helper.make_node("NonZero", ["x"], ["nz"]))
        outputs.append(helper.make_tensor_value_info("nz", TensorProto.INT64, [3, "K"]))
    if extra == "data_shape":
        inputs.append(helper.make_tensor_value_info("t", TensorProto.INT64, [2]))
        nodes.append(helper.make_node("Reshape", ["x", "t"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["A", "B"]))
    graph = helper.make_graph(nodes, "shapes", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


@pytest.mark.parametrize("extra, folds", [("", True), ("nonzero", False),
                                          ("data_shape", False)])
def test_shape_arithmetic_is_fixed_per_signature(extra, folds):
    """Shape arithmetic is computed once per feed signature, unless some shape in the model
    depends on values; results always equal plain runs, across changing shapes."""
    model = _shape_model(extra)
    fast, plain = Session(model), Session(model, replay=False)
    rng = np.random.default_rng(0)
    for length in (4, 4, 4, 4, 7, 7, 7, 4, 2, 2, 2, 2):
        feeds = {"x": rng.standard_normal((2, 3, length)).astype(np.float32)}
        if extra == "data_shape":
            feeds["t"] = np.array([3, 2 * length] if length % 2 else [6, length], np.int64)
        _equal(fast.run(feeds), plain.run(feeds))
    assert fast._replayer is not None
    assert bool(fast._replayer._fixed) is folds


def test_float_step_on_a_channels_last_value_keeps_the_readers_replaying(tmp_path,
                                                                          monkeypatch):
    """A float step that only takes channels-first (ReduceMean) reading a channels-last value
    gets a new copy of its input on every run, so its native calls never repeat: it runs the
    plain way with its output in the signature's buffer, and the quantized steps reading that
    output keep replaying (before, its fresh output sent them the plain way on every run)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper


    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 1, 1, 1)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("ReduceMean", ["r1"], ["m"], axes=[1], keepdims=1),
         helper.make_node("Conv", ["m", "w2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 10, 10])], [w1, w2])
    path = tmp_path / "reduce_cl.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    data = {"x": rng.standard_normal((8, 3, 10, 10)).astype(np.float32)}
    model = quantize(path, data).model
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    feeds = _feeds(data, 1, 1)
    for _ in range(3):
        _equal(fast.run(feeds), plain.run(feeds))
    _assert_segments_match(fast, plain, feeds, monkeypatch)


def test_quantized_data_movement_replays_and_its_readers_keep_replaying(tmp_path,
                                                                          monkeypatch):
    """Quantized Squeeze and Transpose between a Conv and a MatMul (a CRNN's sequence
    head): the Transpose replays as a native copy by its index map; should a step's two
    recordings differ, it runs the plain way with its result copied into the buffer the
    steps after it were recorded reading, so their checks still pass (before, a plain
    Transpose handed on a new view and three programs ran the plain way on every run)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper


    rng = np.random.default_rng(1)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 1, 8, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 12)).astype(np.float32), "w2")
    axes = numpy_helper.from_array(np.array([2], np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[0, 1, 0, 1]),
         helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("Squeeze", ["r1", "axes"], ["s"]),
         helper.make_node("Transpose", ["s"], ["t"], perm=[0, 2, 1]),
         helper.make_node("MatMul", ["t", "w2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 20, 12])], [w1, w2, axes])
    path = tmp_path / "sequence_head.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    data = {"x": rng.standard_normal((8, 1, 8, 20)).astype(np.float32)}
    model = quantize(path, data).model
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    feeds = _feeds(data, 1, 1)
    for _ in range(3):
        _equal(fast.run(feeds), plain.run(feeds))
    _assert_segments_match(fast, plain, feeds, monkeypatch)


def test_quantized_split_replays_as_native_copies(tmp_path, monkeypatch):
    """A quantized Split (a CSP block's channel split) writes its parts with native copies
    along index maps, so it replays inside the programs around it; its parts equal the plain
    run's on channels-last data too."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from lowp.runtime import replay

    rng = np.random.default_rng(2)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2")
    split = numpy_helper.from_array(np.array([4, 4], np.int64), "split")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("Split", ["r1", "split"], ["a", "b"], axis=1),
         helper.make_node("Conv", ["b", "w2"], ["c2"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c2"], ["r2"]),
         helper.make_node("Concat", ["a", "r2"], ["y"], axis=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 12, 12])],
        [w1, w2, split])
    path = tmp_path / "csp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    data = {"x": rng.standard_normal((8, 3, 12, 12)).astype(np.float32)}
    model = quantize(path, data).model
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    for seed in range(3):
        _equal(fast.run(_feeds(data, seed, 1)), plain.run(_feeds(data, seed, 1)))
    runners = next(iter(fast._replayer._ready.values()))
    plain_steps = [r.step.op_type for r in runners if type(r) is replay._Plain]
    assert "Split" not in plain_steps


def test_readers_of_fixed_values_replay(tmp_path):
    """A positional embedding (a Gather of a constant table at Range(Shape) indices, fixed
    per signature) added to the token features: the Add replays. (The fixed steps
    made a new array in each recording, so the Add's two recordings read different memory
    and it ran the plain way on every run; now the second recording reuses the first's
    arrays.) The Add is a float step here (int8) and an integer one in QOperator files."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    table = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "table")
    consts = [numpy_helper.from_array(np.array(v, np.int64), n)
              for n, v in (("zero", 0), ("one", 1), ("axis", [1]))]
    w = numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["shape"]),
         helper.make_node("Gather", ["shape", "axis"], ["len1"], axis=0),
         helper.make_node("Squeeze", ["len1"], ["len"]),
         helper.make_node("Range", ["zero", "len", "one"], ["positions"]),
         helper.make_node("Gather", ["table", "positions"], ["pos"], axis=0),
         helper.make_node("MatMul", ["x", "w"], ["h"]),
         helper.make_node("Add", ["h", "pos"], ["sum"]),
         helper.make_node("MatMul", ["sum", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T", 8])],
        [table, w, *consts])
    path = tmp_path / "positions.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    data = {"x": rng.standard_normal((1, 12, 8)).astype(np.float32)}
    model = quantize(path, data).model
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    for seed in range(4):
        _equal(fast.run(_feeds(data, seed)), plain.run(_feeds(data, seed)))
    (signature,) = fast._replayer._ready
    assert [s.op_type for s in fast._replayer.plain_steps(signature)] == []
    assert "Add" in [s.op_type for s in fast.steps]     # (int8: float, as ONNX Runtime runs it)


@pytest.mark.parametrize("opset", [13, 18])
def test_float_split_replays_as_native_copies(tmp_path, opset):
    """A float Split of an LSTM cell's gates (axis 1 of (batch, 4 * hidden)) gives
    contiguous parts by native copies: it and the gate activations reading it replay,
    and every run equals the plain run's."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    w = numpy_helper.from_array(rng.standard_normal((6, 12)).astype(np.float32), "w")
    split = numpy_helper.from_array(np.array([3, 3, 3, 3], np.int64), "split")
    parts = ["i", "f", "g", "o"]
    args = {"num_outputs": 4} if opset >= 18 else {}
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["gates"]),
         helper.make_node("Split", ["gates"] if opset >= 18 else ["gates", "split"], parts,
                          axis=1, **args),
         *[helper.make_node("Sigmoid", [p], [f"s{p}"]) for p in parts],
         helper.make_node("Mul", ["si", "sf"], ["m1"]),
         helper.make_node("Mul", ["sg", "so"], ["m2"]),
         helper.make_node("Add", ["m1", "m2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [w] + ([] if opset >= 18 else [split]))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    for seed in range(4):
        x = {"x": np.random.default_rng(seed).standard_normal((2, 6)).astype(np.float32)}
        _equal(fast.run(x), plain.run(x))
    (signature,) = fast._replayer._ready
    assert fast._replayer.plain_steps(signature) == []


def _recurrent_model(op: str, lens_input: bool) -> bytes:
    """Conv1d -> Relu -> Transpose to (T, B, C) -> LSTM or GRU (initial state from a feed,
    sequence lengths from a feed or none) -> Concat of Y_h with the state -> MatMul."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    gates, hidden, channels = (4 if op == "LSTM" else 3), 5, 6
    inits = [numpy_helper.from_array(rng.standard_normal((channels, 2, 3)).astype(np.float32),
                                     "wc"),
             numpy_helper.from_array(rng.standard_normal((1, gates * hidden, channels))
                                     .astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((1, gates * hidden, hidden))
                                     .astype(np.float32), "R"),
             numpy_helper.from_array(rng.standard_normal((1, 2 * gates * hidden))
                                     .astype(np.float32), "B"),
             numpy_helper.from_array(rng.standard_normal((2 * hidden, 4)).astype(np.float32),
                                     "wo")]
    rnn_inputs = ["seq", "W", "R", "B", "lens" if lens_input else "", "h0"]
    nodes = [helper.make_node("Conv", ["x", "wc"], ["c"], pads=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Transpose", ["r"], ["seq"], perm=[2, 0, 1]),
             helper.make_node(op, rnn_inputs, ["Y", "Y_h"], hidden_size=hidden),
             helper.make_node("Concat", ["Y_h", "h0"], ["both"], axis=2),
             helper.make_node("MatMul", ["both", "wo"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 7]),
              helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 2, hidden])]
    if lens_input:
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [2]))
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             [1, 2, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("lens_input", [False, True])
def test_recurrent_nodes_replay_inside_programs(op, lens_input):
    """A float LSTM / GRU (the native recurrence) and the float Concat after it replay
    inside the Program around them, every run equal to the plain run's; with sequence
    lengths from a feed (checked when a call is made, not by a Program) the node runs the
    plain way and follows the lengths of each run."""
    from lowp.runtime import replay

    model = _recurrent_model(op, lens_input)
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        feeds = {"x": rng.standard_normal((2, 2, 7)).astype(np.float32),
                 "h0": rng.standard_normal((1, 2, 5)).astype(np.float32)}
        if lens_input:
            feeds["lens"] = np.array([7, 1 + seed % 7], np.int32)
        _equal(fast.run(feeds), plain.run(feeds))
    (signature,) = fast._replayer._ready
    plain_ops = [s.op_type for s in fast._replayer.plain_steps(signature)]
    assert (op in plain_ops) == lens_input and "Concat" not in plain_ops, plain_ops
    assert replay.NATIVE_FLOAT >= {"LSTM", "GRU", "Concat"}


def test_quantized_slices_handing_on_views_replay(tmp_path):
    """Chained quantized Slices whose results are contiguous parts of their inputs (an STFT
    front end: channels copied out, then a window along time of the copy, a contiguous part
    of it on channels-last data) hand on views; they replay instead of running from Python
    on every run."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(6)
    consts = [numpy_helper.from_array(rng.standard_normal((8, 1, 4)).astype(np.float32), "w"),
              numpy_helper.from_array(rng.standard_normal((4, 4, 1)).astype(np.float32), "w2"),
              *[numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                (("zero", [0]), ("end", [2**63 - 1]), ("four", [4]), ("one", [1]),
                 ("two", [2]))]]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], strides=[2]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Slice", ["r", "zero", "end", "zero"], ["a"]),
         helper.make_node("Slice", ["a", "zero", "four", "one"], ["h"]),
         helper.make_node("Slice", ["h", "zero", "end", "two"], ["b"]),
         helper.make_node("Conv", ["b", "w2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 31])], consts)
    path = tmp_path / "slices.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    data = {"x": rng.standard_normal((8, 1, 64)).astype(np.float32)}
    model = quantize(path, data).model
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    for seed in range(4):
        _equal(fast.run(_feeds(data, seed, 1)), plain.run(_feeds(data, seed, 1)))
    (signature,) = fast._replayer._ready
    assert "Slice" not in [s.op_type for s in fast._replayer.plain_steps(signature)]


def test_resize_of_a_constant_to_the_feed_grid_is_fixed():
    """A ViT's positional embeddings: a constant grid resized (cubic) to sizes computed from
    Shape(x), then added to data; the Resize is computed once per signature, and the runs
    equal plain ones across changing shapes."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(4)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "two", "four"], ["hw"]),
        helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
        helper.make_node("Resize", ["grid", "", "", "sizes"], ["pos"], mode="cubic",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("Add", ["x", "pos"], ["y"]),
    ]
    inits = [numpy_helper.from_array(rng.standard_normal((1, 3, 5, 5)).astype(np.float32),
                                      "grid"),
             numpy_helper.from_array(np.array([2], np.int64), "two"),
             numpy_helper.from_array(np.array([4], np.int64), "four"),
             numpy_helper.from_array(np.array([1, 3], np.int64), "nc")]
    graph = helper.make_graph(
        nodes, "pos", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H", "W"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    fast, plain = Session(model.SerializeToString()), Session(model.SerializeToString(),
                                                             replay=False)
    for side in (7, 7, 7, 9, 9, 9, 7):
        feeds = {"x": rng.standard_normal((1, 3, side, side)).astype(np.float32)}
        _equal(fast.run(feeds), plain.run(feeds))
    assert fast._replayer is not None
    resize = [i for i, s in enumerate(fast._replayer.steps) if s.op_type == "Resize"]
    assert resize and set(resize) <= fast._replayer._fixed
    signature = (("x", (1, 3, 7, 7), "<f4"),)
    assert all(s.op_type != "Resize" for s in fast._replayer.plain_steps(signature))


def test_pow_sqrt_shape_arithmetic_and_dequantized_weights_are_fixed():
    """ONNX Runtime's QDQ file of a ViT leaves the patch grid's side as Sqrt and Pow of the
    patch count (read by a Reshape's shape: nothing was folded while Pow was not foldable),
    and dequantizes a float ConvTranspose's int8 weights on every run. Both are computed
    once per signature now; the runs equal plain ones."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(5)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "two"], ["n"]),
        helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
        helper.make_node("Sqrt", ["nf"], ["side_f"]),
        helper.make_node("Pow", ["side_f", "one"], ["side_p"]),
        helper.make_node("Cast", ["side_p"], ["side"], to=TensorProto.INT64),
        helper.make_node("Concat", ["lead", "side", "side"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["grid"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
        helper.make_node("ConvTranspose", ["grid", "w"], ["y"], strides=[2, 2]),
    ]
    inits = [numpy_helper.from_array(np.array([2], np.int64), "two"),
             numpy_helper.from_array(np.float32(1.0), "one"),
             numpy_helper.from_array(np.array([1, 4], np.int64), "lead"),
             numpy_helper.from_array(rng.integers(-127, 128, (4, 3, 2, 2)).astype(np.int8),
                                     "wq"),
             numpy_helper.from_array(np.float32(0.02), "ws"),
             numpy_helper.from_array(np.int8(0), "wz")]
    graph = helper.make_graph(
        nodes, "grid", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H", "W"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    fast, plain = Session(model.SerializeToString()), Session(model.SerializeToString(),
                                                             replay=False)
    for n in (16, 16, 16, 25, 25, 25, 16):
        feeds = {"x": rng.standard_normal((1, 4, n)).astype(np.float32)}
        _equal(fast.run(feeds), plain.run(feeds))
    assert fast._replayer is not None
    folded = {fast._replayer.steps[i].op_type for i in fast._replayer._fixed}
    assert {"Sqrt", "Pow", "DequantizeLinear"} <= folded, folded
    signature = (("x", (1, 4, 16), "<f4"),)
    assert all(s.op_type not in ("Pow", "DequantizeLinear")
               for s in fast._replayer.plain_steps(signature))


def test_relative_position_bias_is_fixed_and_its_reader_replays():
    """T5's relative attention bias (as a quantize_dynamic file has it): buckets from the
    Log of the distance between positions (Range of Shape(x)), a Gather of a constant table
    at them, quantized, transposed and dequantized (a strided view), then a Slice added to
    the feed's mask. The chain through the Log is computed once per
    signature, and the Add reads a contiguous copy of the view made once per recording, so
    that it replays (it ran from Python on every run: its native kernel reads contiguous
    operands). The runs equal plain ones across changing shapes."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(6)
    nodes = [
        helper.make_node("Shape", ["mask"], ["s"]),
        helper.make_node("Gather", ["s", "three_i"], ["t"], axis=0),
        helper.make_node("Range", ["zero_i", "t", "one_i"], ["pos"]),
        helper.make_node("Unsqueeze", ["pos", "ax0"], ["row"]),
        helper.make_node("Unsqueeze", ["pos", "ax1"], ["col"]),
        helper.make_node("Sub", ["row", "col"], ["rel"]),
        helper.make_node("Abs", ["rel"], ["dist"]),
        helper.make_node("Cast", ["dist"], ["dist_f"], to=TensorProto.FLOAT),
        helper.make_node("Log", ["dist_f"], ["log"]),          # log(0) = -inf on the diagonal
        helper.make_node("Mul", ["log", "k"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["bucket_raw"], to=TensorProto.INT64),
        helper.make_node("Max", ["bucket_raw", "zero_i"], ["bucket_lo"]),
        helper.make_node("Min", ["bucket_lo", "top"], ["bucket"]),
        helper.make_node("Gather", ["table", "bucket"], ["bias"], axis=0),   # (T, T, H)
        helper.make_node("QuantizeLinear", ["bias", "qs", "qz"], ["bias_q"]),
        helper.make_node("Transpose", ["bias_q"], ["bias_qt"], perm=[2, 0, 1]),  # (H, T, T)
        helper.make_node("DequantizeLinear", ["bias_qt", "qs", "qz"], ["bias_t"]),
        helper.make_node("Unsqueeze", ["bias_t", "ax0"], ["bias4"]),
        helper.make_node("Slice", ["bias4", "start", "end", "axis3"], ["bias_s"]),
        helper.make_node("Add", ["bias_s", "mask"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (
        ("zero_i", 0), ("one_i", 1), ("three_i", 3), ("top", 7), ("ax0", [0]), ("ax1", [1]),
        ("start", [0]), ("end", [2**62]), ("axis3", [3]))]
    inits += [numpy_helper.from_array(np.float32(2.5), "k"),
              numpy_helper.from_array(np.float32(0.02), "qs"),
              numpy_helper.from_array(np.int8(0), "qz"),
              numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "table")]
    graph = helper.make_graph(
        nodes, "t5_bias",
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", 1, 1, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4, "T", "T"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    fast, plain = Session(model.SerializeToString(), threads=1), Session(
        model.SerializeToString(), threads=1, replay=False)
    for t in (24, 24, 24, 31, 31, 31, 24):
        feeds = {"mask": rng.standard_normal((2, 1, 1, t)).astype(np.float32)}
        _equal(fast.run(feeds), plain.run(feeds))
    assert fast._replayer is not None
    folded = {fast._replayer.steps[i].op_type for i in fast._replayer._fixed}
    assert {"Log", "Gather", "Slice"} <= folded, folded
    signature = (("mask", (2, 1, 1, 24), "<f4"),)
    assert [s.op_type for s in fast._replayer.plain_steps(signature)] == []


def test_average_pool_over_the_whole_image_replays(tmp_path):
    """An AveragePool whose window is the whole unpadded image (a ResNet's 7x7 pool, which
    ONNX Runtime runs as its global average pool) writes into its arena, so it replays
    inside the program with the steps after it; before, it handed on a new array on every
    run and it, the Reshape and the MatMul after it ran from Python (open_nsfw_tf: 1.5 ms
    of about 31)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 5)).astype(np.float32), "w2")
    shape = numpy_helper.from_array(np.array([-1, 16], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("AveragePool", ["r1"], ["p"], kernel_shape=[7, 7]),
         helper.make_node("Reshape", ["p", "shape"], ["f"]),
         helper.make_node("MatMul", ["f", "w2"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 7, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], [w1, w2, shape])
    path = tmp_path / "pool_head.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    data = {"x": rng.standard_normal((8, 3, 7, 7)).astype(np.float32)}
    model = quantize(path, data).model
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    feeds = _feeds(data, 1, 1)
    for _ in range(3):
        _equal(fast.run(feeds), plain.run(feeds))
    _equal(fast.run(feeds, profile=True), plain.run(feeds))
    assert "AveragePool:int" in fast.last_profile, fast.last_profile
    assert not any(k.endswith("(python)") for k in fast.last_profile), fast.last_profile


def _fused_matmul_model(m: int, batch: int, k: int, n: int, alpha: float = 0.5,
                        trans_b: int = 1) -> bytes:
    """x (m, batch, k) and z (n, batch, k) (trans_b 0: (k, batch, n)), each + 1, then ONNX
    Runtime's FusedMatMul with transBatchA, transBatchB and transB ((batch, m, k) @ (batch,
    k, n)), then Relu."""
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones((1,), np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["a"]),
         helper.make_node("Add", ["z", "one"], ["b"]),
         helper.make_node("FusedMatMul", ["a", "b"], ["p"], domain="com.microsoft",
                          alpha=alpha, transB=trans_b, transBatchA=1, transBatchB=1),
         helper.make_node("Relu", ["p"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, batch, k]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT,
                                       [n, batch, k] if trans_b else [k, batch, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, m, n])], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.skipif(not native_available(), reason="native extension not built")
@pytest.mark.parametrize("m,batch,k,n", [(7, 3, 5, 6), (28, 4, 32, 28), (1, 2, 3, 4)])
def test_fused_matmul_moving_batch_axes_replays(m, batch, k, n):
    """FusedMatMul's transBatchA / transBatchB copies are native copies into buffers of the
    signature, so the product and its readers replay; every run equals the plain run's
    and ONNX Runtime's."""
    _assert_replays_as_plain_and_onnxruntime(_fused_matmul_model(m, batch, k, n), 1,
                                             (m, batch, k), (n, batch, k))


def _assert_replays_as_plain_and_onnxruntime(model: bytes, threads: int,
                                             x_shape: tuple[int, ...],
                                             z_shape: tuple[int, ...]) -> None:
    """Four feeds of x and z: every run of `model` equals the plain run's and ONNX
    Runtime's (at `threads`), and its one signature replays with no step from Python."""
    import onnxruntime as ort

    fast = Session(model, threads=threads)
    plain = Session(model, threads=threads, replay=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    reference = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    for seed in range(4):
        rng = np.random.default_rng(seed)
        feeds = {"x": rng.standard_normal(x_shape).astype(np.float32),
                 "z": rng.standard_normal(z_shape).astype(np.float32)}
        got = fast.run(feeds)
        _equal(got, plain.run(feeds))
        np.testing.assert_array_equal(got["y"], reference.run(None, feeds)[0])
    (signature,) = fast._replayer._ready
    assert fast._replayer.plain_steps(signature) == []


@pytest.mark.skipif(not native_available(), reason="native extension not built")
@pytest.mark.parametrize("m,batch,k,trans_b", [(7, 3, 5, 0), (28, 4, 32, 0), (5, 2, 1, 1),
                                               (1, 2, 3, 0)])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_matmul_lone_batch_moved_column_replays(m, batch, k, trans_b, threads):
    """One column of a batch-moved B (N = 1, alpha 1: MLAS's general kernel, as B's leading
    dimension is not 1) is a native product too (before: the reference, from Python on
    every run), so the step replays; every run equals the plain run's and ONNX Runtime's."""
    _assert_replays_as_plain_and_onnxruntime(
        _fused_matmul_model(m, batch, k, 1, alpha=1.0, trans_b=trans_b), threads,
        (m, batch, k), (1, batch, k) if trans_b else (k, batch, 1))


@pytest.mark.skipif(not native_available(), reason="native extension not built")
def test_moved_batch_replays_when_the_permutation_cache_is_cleared(monkeypatch):
    """The index maps of the native batch moves are cached (cleared past 64 shapes): with
    64 kept by earlier sessions, the second move's insertion cleared the first one's map,
    whose new copy made the step's second recording differ and FusedMatMul run from Python
    (an order-dependent failure of the test above); a map a recording holds is found again."""
    from lowp.runtime import native_float

    monkeypatch.setattr(native_float, "_PERMUTED_MAPS",
                        {((i,), (0,)): np.zeros(1, np.int32) for i in range(64)})
    _assert_replays_as_plain_and_onnxruntime(
        _fused_matmul_model(28, 4, 32, 1, alpha=1.0, trans_b=0), 1, (28, 4, 32), (32, 4, 1))


@pytest.mark.skipif(not native_available(), reason="native extension not built")
def test_native_float_step_recorded_differently_keeps_its_readers_replaying(monkeypatch):
    """A native float step whose two recordings differ (here a FusedMatMul whose batch
    move is a new numpy array on every run) runs the plain way with its result copied
    into the buffer its readers recorded: only that step runs from Python, and every run
    equals the plain run's."""
    from lowp.runtime import float_ops

    monkeypatch.setattr(float_ops, "_moved_batch",
                        lambda x: np.ascontiguousarray(np.moveaxis(x, 0, -2)))
    model = _fused_matmul_model(7, 3, 5, 6)
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        feeds = {"x": rng.standard_normal((7, 3, 5)).astype(np.float32),
                 "z": rng.standard_normal((6, 3, 5)).astype(np.float32)}
        _equal(fast.run(feeds), plain.run(feeds))
    (signature,) = fast._replayer._ready
    assert [s.op_type for s in fast._replayer.plain_steps(signature)] == ["FusedMatMul"]
    fast.run(feeds, profile=True)
    # the Relu reading the product runs in a native Program, not from Python
    assert "Relu:float" in fast.last_profile, fast.last_profile
    assert "Relu:float (python)" not in fast.last_profile


@pytest.mark.parametrize("name", ["linear_mlp", "resnet_style", "conv1d_model"])
def test_feeds_read_in_place_by_their_quantizers(name, zoo_dir):
    """A feed whose only reader is its QuantizeLinear is not copied on replayed runs: the
    quantizer reads the caller's array through a slot of its Program. New arrays, an array
    changed in place, and arrays it cannot read as they are (Fortran order, a strided view:
    copied into the signature's buffer) all give the plain run's results."""
    path, data = model_zoo.BUILDERS[name](zoo_dir)
    model = quantize(path, data).model
    fast, plain = Session(model), Session(model, replay=False)
    for seed in range(3):
        feeds = _feeds(data, seed)
        _equal(fast.run(feeds), plain.run(feeds))
    signature = tuple((k, v.shape, v.dtype.str) for k, v in _feeds(data, 0).items())
    assert fast._replayer is not None
    assert fast._replayer._in_place[signature] == frozenset(data)
    same = _feeds(data, 5)
    for seed in range(3):
        for k, v in _feeds(data, 30 + seed).items():
            same[k][...] = v
        _equal(fast.run(same), plain.run({k: v.copy() for k, v in same.items()}))
        _equal(fast.run(_feeds(data, 40 + seed)), plain.run(_feeds(data, 40 + seed)))
        fortran = {k: np.asfortranarray(v) for k, v in _feeds(data, 50 + seed).items()}
        _equal(fast.run(fortran), plain.run(fortran))
        wide = {k: np.repeat(v, 2, axis=-1)[..., ::2] for k, v in _feeds(data, 60 + seed).items()}
        _equal(fast.run(wide), plain.run(wide))


def test_a_feed_read_by_another_step_too_is_copied(tmp_path):
    """A feed that a float step reads besides its quantizer (or that is an output) keeps its
    copy into the signature's buffer; the runs equal the plain ones."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((8, 4)) * 0.3).astype(np.float32), "w")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("MatMul", ["xd", "w"], ["y"]),
        helper.make_node("Sigmoid", ["x"], ["g"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (3, 8))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (3, 4)),
         helper.make_tensor_value_info("g", TensorProto.FLOAT, (3, 8))],
        initializer=[w, numpy_helper.from_array(np.float32(0.05), "s"),
                     numpy_helper.from_array(np.uint8(128), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    fast, plain = Session(model), Session(model, replay=False)
    for _ in range(4):
        feeds = {"x": rng.standard_normal((3, 8)).astype(np.float32)}
        _equal(fast.run(feeds), plain.run(feeds))
    assert fast._replayer is not None
    assert fast._replayer._in_place[(("x", (3, 8), "<f4"),)] == frozenset()


def test_a_feed_slot_takes_arrays_of_one_size():
    from lowp.runtime import program

    slot = program.extension().FeedSlot()
    slot.set(np.zeros(6, np.float32))
    slot.set(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="size"):
        slot.set(np.zeros(5, np.float32))


@pytest.mark.parametrize("threads", [1, 2])
def test_readers_of_a_dequantized_scalar_and_reduce_min_replay(threads):
    """ONNX Runtime's QDQ file of effword_resnet50_int8 dequantizes a one-value exponent
    (2) that a Pow and a Mul read, and takes a ReduceMin of the input. The DequantizeLinear
    is fixed, but numpy's arithmetic on a 0-d array gives a scalar, whose two recordings
    did not compare equal: it and its readers ran from Python on every run, as did the
    ReduceMin (not among the recorded native float steps). Now all replay, and the runs
    equal ONNX Runtime's."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("DequantizeLinear", ["eq", "es", "ez"], ["e"]),
        helper.make_node("ReduceMin", ["x"], ["low"], keepdims=1),
        helper.make_node("Sub", ["x", "low"], ["shifted"]),
        helper.make_node("Mul", ["shifted", "e"], ["scaled"]),
        helper.make_node("Pow", ["scaled", "e"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.int8(100), "eq"),
             numpy_helper.from_array(np.float32(0.02), "es"),
             numpy_helper.from_array(np.int8(0), "ez")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (2, 3, 8, 8))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (2, 3, 8, 8))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data = model.SerializeToString()
    fast = Session(data, threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    reference = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    for _ in range(4):
        feeds = {"x": rng.standard_normal((2, 3, 8, 8)).astype(np.float32)}
        (want,) = reference.run(None, feeds)
        np.testing.assert_array_equal(fast.run(feeds)["y"], want)
    assert fast._replayer is not None
    (signature,) = fast._replayer._ready
    assert [s.op_type for s in fast._replayer.plain_steps(signature)] == []


@pytest.mark.parametrize("threads", [1, 2])
def test_float16_casts_replay_inside_the_program(threads):
    """A float16 file's Casts to and from float32 (slovorez_morphemes: around each Conv, as
    ONNX Runtime runs them) replay inside the Program. Their binding reads the float16 bits
    as uint16, which Programs did not take (only 8-bit, float32 and 32/64-bit integer
    arrays), so each Cast ran its calls from Python between Programs on every run."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xf", "k"], ["m"]),
        helper.make_node("Sigmoid", ["m"], ["s"]),
        helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT16),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, (2, 3, 40))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, (2, 3, 40))],
        [numpy_helper.from_array(np.float32(1.5), "k")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]
                             ).SerializeToString()
    fast = Session(data, threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    reference = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    for _ in range(4):
        feeds = {"x": rng.standard_normal((2, 3, 40)).astype(np.float16)}
        (want,) = reference.run(None, feeds)
        got = fast.run(feeds)["y"]
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    assert fast._replayer is not None
    (signature,) = fast._replayer._ready
    assert fast._replayer.plain_steps(signature) == []
    assert fast._replayer.programs(signature) == [len(fast.steps)]


def _constants_beside_a_data_shape() -> bytes:
    """Constant nodes and arithmetic on them in a graph where a shape depends on values: a
    Range whose limit is a feed (as a TTS model's duration predictor expands its lengths)."""
    from onnx import TensorProto, helper, numpy_helper
    nodes = [
        helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(
            np.array(2.0, np.float32))),
        helper.make_node("Constant", [], ["half"], value=numpy_helper.from_array(
            np.array([0.5, -1.5, 3.0], np.float32))),
        helper.make_node("Mul", ["two", "half"], ["c"]),
        helper.make_node("Range", ["zero", "n", "one"], ["r"]),
        helper.make_node("Mul", ["r", "two"], ["y"]),
        helper.make_node("Mul", ["x", "c"], ["xc"]),
        helper.make_node("Relu", ["xc"], ["z"]),
    ]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
              helper.make_tensor_value_info("n", TensorProto.FLOAT, [])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["K"]),
               helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3])]
    graph = helper.make_graph(nodes, "constants", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]
                             ).SerializeToString()


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("threads", [1, 2])
def test_constant_nodes_fold_where_a_shape_depends_on_values(backend, threads):
    """A shape computed from data fixes nothing per signature, but Constant nodes and the
    arithmetic on them are the same on every run: they are folded, not run from Python on
    each run; results equal plain runs as the data-dependent length changes."""
    model = _constants_beside_a_data_shape()
    fast = Session(model, backend=backend, threads=threads)
    plain = Session(model, backend=backend, threads=threads, replay=False)
    rng = np.random.default_rng(0)
    for n in (4.0, 4.0, 4.0, 4.0, 7.0, 7.0, 7.0, 0.0, 2.5, 2.5, 2.5):
        feeds = {"x": rng.standard_normal((2, 3)).astype(np.float32),
                 "n": np.array(n, np.float32)}
        _equal(fast.run(feeds), plain.run(feeds))
    fast.run(feeds, profile=True)
    assert fast._replayer is not None
    steps = fast._replayer.steps
    assert sorted(steps[i].op_type for i in fast._replayer._fixed) == \
        ["Constant", "Constant", "Mul"]
    assert "Constant:float (python)" not in fast.last_profile, fast.last_profile


@pytest.mark.parametrize("op", ["Add", "Mul", "Greater", "Where", "IntegerAdd"])
@pytest.mark.parametrize("shape,axis", [((2, 3, 1, 1), 3), ((1, 3), 0), ((2, 1, 4), 1)])
def test_reversed_slice_of_one_element_feeds_the_native_kernels(op, shape, axis):
    """A Slice of step -1 over an axis of one element is a numpy view of a negative stride
    on that axis, which numpy calls C-contiguous: the recording handed it on as it was and
    the native binary, compare and where kernels refused it ("needs a non-negative layout";
    the graph fuzzer's strided slices before an ArgMin's Add, seed 40: 6 of 300 graphs
    stopped). Such a stride reads nothing; the runs equal ONNX Runtime's, recorded and
    replayed."""
    from onnx import TensorProto, helper, numpy_helper

    from tests.runtime.ort_agreement import onnxruntime_run
    integer = op == "IntegerAdd"
    elem = TensorProto.INT64 if integer else TensorProto.FLOAT
    nodes = [helper.make_node("Abs", ["x"], ["r"]),
             helper.make_node("Slice", ["r", "start", "end", "axes", "step"], ["s"])]
    if op == "Where":
        nodes += [helper.make_node("IsNaN", ["s"], ["c"]),
                  helper.make_node("Where", ["c", "half", "s"], ["y"])]
    else:
        nodes.append(helper.make_node("Add" if integer else op, ["s", "half"], ["y"]))
    half = np.asarray([2] if integer else [0.5], np.int64 if integer else np.float32)
    inits = [numpy_helper.from_array(np.asarray(v, np.int64), n) for n, v in (
        ("start", [-1]), ("end", [-1000]), ("axes", [axis]), ("step", [-1]))]
    inits.append(numpy_helper.from_array(half, "half"))
    out = TensorProto.BOOL if op == "Greater" else elem
    graph = helper.make_graph(nodes, "reversed", [helper.make_tensor_value_info("x", elem, shape)],
                              [helper.make_tensor_value_info("y", out, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    rng = np.random.default_rng(3)
    x = (rng.integers(-4, 5, shape) if integer else rng.standard_normal(shape)).astype(
        np.int64 if integer else np.float32)
    want = onnxruntime_run(model, {"x": x})[0]
    for backend in ("native", "reference"):
        session = Session(model.SerializeToString(), backend=backend, threads=1)
        for _ in range(3):
            got = session.run({"x": x})["y"]
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), backend
