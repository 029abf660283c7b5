"""com.microsoft DynamicQuantizeLSTM (quantize_dynamic's LSTM) on lowp's engine gives ONNX
Runtime's outputs bit for bit (lowp.runtime.quantized_lstm)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

import lowp
from lowp.runtime import native_backend as nb
from lowp.runtime import native_qlstm
from lowp.runtime.quantized_lstm import (
    DynamicQuantizeLSTM,
    dynamic_qparams,
    mlas_range_span,
    rows_per_task,
)

_DIRS = {"forward": 1, "reverse": 1, "bidirectional": 2}
PATHS = nb.available_paths()


def _quantized_lstm(tmp: Path, rng: np.random.Generator, *, inp: int, hid: int,
                    direction: str, per_channel: bool, weight_type: QuantType,
                    optional: frozenset[str], with_y: bool,
                    clip: float | None = None, extra: dict[str, object] | None = None
                    ) -> onnx.ModelProto:
    """A one-LSTM float model (sequence and batch dimensions symbolic), quantized by ONNX
    Runtime's quantize_dynamic."""
    d = _DIRS[direction]
    inits = {"w": rng.standard_normal((d, 4 * hid, inp)), "r": rng.standard_normal(
        (d, 4 * hid, hid)) * 0.5}
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["S", "B", inp])]
    names = ["x", "w", "r"]
    for name, shape in (("b", (d, 8 * hid)), ("lens", None), ("h0", (d, "B", hid)),
                        ("c0", (d, "B", hid)), ("p", (d, 3 * hid))):
        if name not in optional:
            names.append("")
        elif name in ("b", "p"):
            inits[name] = rng.standard_normal(shape)
            names.append(name)
        else:
            elem = TensorProto.INT32 if name == "lens" else TensorProto.FLOAT
            inputs.append(helper.make_tensor_value_info(name, elem, ["B"] if shape is None
                                                        else list(shape)))
            names.append(name)
    while names[-1] == "":
        names.pop()
    outs = ["y" if with_y else "", "yh", "yc"]
    attrs: dict[str, object] = {"hidden_size": hid, "direction": direction}
    if clip is not None:
        attrs["clip"] = clip
    attrs.update(extra or {})
    node = helper.make_node("LSTM", names, outs, **attrs)  # type: ignore[arg-type]
    g = helper.make_graph(
        [node], "g", inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs if o],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, tmp / "f.onnx")
    quantize_dynamic(tmp / "f.onnx", tmp / "q.onnx", weight_type=weight_type,
                     per_channel=per_channel)
    q = onnx.load(tmp / "q.onnx")
    assert [n.op_type for n in q.graph.node] == ["DynamicQuantizeLSTM"]
    return q


def _feeds(model: onnx.ModelProto, rng: np.random.Generator, seq: int, batch: int,
           lens: list[int] | None) -> dict[str, np.ndarray]:
    feeds = {}
    for v in model.graph.input:
        dims = [{"S": seq, "B": batch}.get(d.dim_param, d.dim_value)
                for d in v.type.tensor_type.shape.dim]
        if v.name == "lens":
            feeds[v.name] = np.asarray(lens if lens is not None else [seq] * batch, np.int32)
        else:
            feeds[v.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def _onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                 threads: int = 1) -> dict[str, np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


def _assert_identical(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, w in want.items():
        assert got[name].shape == w.shape, name
        np.testing.assert_array_equal(got[name], w, err_msg=name)


@st.composite
def _cases(draw: st.DrawFn) -> dict[str, object]:
    seq = draw(st.integers(1, 5))
    batch = draw(st.integers(1, 6))  # batch 0 aborts ONNX Runtime's process: test below
    optional = frozenset(draw(st.sets(st.sampled_from(["b", "lens", "h0", "c0", "p"]))))
    lens = None
    if "lens" in optional:
        lens = draw(st.lists(st.integers(0, seq), min_size=batch, max_size=batch))
    weight_type = draw(st.sampled_from([QuantType.QInt8, QuantType.QUInt8]))
    return {"seq": seq, "batch": batch, "inp": draw(st.integers(1, 7)),
            "hid": draw(st.integers(1, 9)),
            "direction": draw(st.sampled_from(sorted(_DIRS))),
            # uint8 weights per column would need one zero point for all columns
            "per_channel": weight_type == QuantType.QInt8 and draw(st.booleans()),
            "weight_type": weight_type, "optional": optional, "lens": lens,
            # without Y, an entry of length 0 feeds ONNX Runtime's recurrent product with
            # memory it never wrote (docs/operators.md, (O23q))
            "with_y": draw(st.booleans()) if lens is None or min(lens, default=1) else True,
            "clip": draw(st.sampled_from([None, 0.75])),
            "seed": draw(st.integers(0, 2**16))}


@given(case=_cases())
def test_equals_onnxruntime(tmp_path_factory: pytest.TempPathFactory,
                            case: dict[str, object]) -> None:
    rng = np.random.default_rng(case["seed"])  # type: ignore[arg-type]
    model = _quantized_lstm(tmp_path_factory.mktemp("dq"), rng, inp=case["inp"],  # type: ignore[arg-type]
                            hid=case["hid"], direction=case["direction"],  # type: ignore[arg-type]
                            per_channel=case["per_channel"],  # type: ignore[arg-type]
                            weight_type=case["weight_type"],  # type: ignore[arg-type]
                            optional=case["optional"], with_y=case["with_y"],  # type: ignore[arg-type]
                            clip=case["clip"])  # type: ignore[arg-type]
    feeds = _feeds(model, rng, case["seq"], case["batch"], case["lens"])  # type: ignore[arg-type]
    want = _onnxruntime(model, feeds)
    session = lowp.Session(model, threads=1)
    _assert_identical(session.run(feeds), want)
    with native_qlstm.disabled():   # the numpy reference
        _assert_identical(session.run(feeds), want)
    for path in PATHS:              # the native recurrence on every instruction-set path
        with nb.use_path(path):
            _assert_identical(session.run(feeds), want)


@pytest.mark.parametrize("acts", [["Relu", "Tanh", "Softsign"], ["HardSigmoid", "Elu", "Affine"],
                                  ["Sigmoid", "ScaledTanh", "Relu"]])
def test_other_activations_equal_onnxruntime(tmp_path: Path, acts: list[str]) -> None:
    """Activations other than the defaults (docs/operators.md, (O62)): the numpy loop with
    the float LSTM's gates, ONNX Runtime's bits (lowp refused the node before)."""
    rng = np.random.default_rng(len(acts[0]))
    model = _quantized_lstm(tmp_path, rng, inp=5, hid=6, direction="bidirectional",
                            per_channel=False, weight_type=QuantType.QInt8,
                            optional=frozenset({"b", "h0", "c0", "p"}), with_y=True,
                            clip=2.5, extra={"activations": acts * 2,
                                             "activation_alpha": [0.5, 1.5],
                                             "activation_beta": [0.25]})
    feeds = _feeds(model, rng, 4, 3, None)
    _assert_identical(lowp.Session(model, threads=1).run(feeds), _onnxruntime(model, feeds))


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_batch_zero(tmp_path: Path, direction: str) -> None:
    """An empty batch gives empty outputs (ONNX Runtime 1.22 aborts the process on it:
    `terminate called without an active exception`)."""
    rng = np.random.default_rng(0)
    model = _quantized_lstm(tmp_path, rng, inp=3, hid=4, direction=direction,
                            per_channel=True, weight_type=QuantType.QInt8,
                            optional=frozenset({"b", "lens", "h0"}), with_y=True)
    got = lowp.Session(model, threads=1).run(_feeds(model, rng, 3, 0, []))
    d = _DIRS[direction]
    assert {k: v.shape for k, v in got.items()} == {"y": (3, d, 0, 4), "yh": (d, 0, 4),
                                                     "yc": (d, 0, 4)}


@pytest.mark.parametrize("threads", [2, 3])
def test_batch_tasks_equal_onnxruntime_threads(tmp_path: Path, threads: int) -> None:
    """With several intra-op threads ONNX Runtime quantizes H per task of ceil(batch /
    threads) rows: `ort_threads` reproduces it, and the one-task result differs."""
    rng = np.random.default_rng(threads)
    model = _quantized_lstm(tmp_path, rng, inp=6, hid=8, direction="bidirectional",
                            per_channel=True, weight_type=QuantType.QInt8,
                            optional=frozenset({"b", "h0"}), with_y=True)
    feeds = _feeds(model, rng, 7, 5, None)
    feeds["x"][:, 0] *= 8  # one entry's range dominates the one-task quantization
    want = _onnxruntime(model, feeds, threads)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    node = model.graph.node[0]
    args = [feeds.get(n, inits.get(n)) if n else None for n in node.input]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs["direction"] = attrs["direction"].decode()
    got = DynamicQuantizeLSTM(*args, **attrs, ort_threads=threads)
    for g, name in zip(got, ["y", "yh", "yc"], strict=True):
        np.testing.assert_array_equal(g, want[name], err_msg=name)
    one_task = DynamicQuantizeLSTM(*args, **attrs, ort_threads=1)
    assert not np.array_equal(one_task[0], want["y"])


def test_rows_per_task() -> None:
    """UniDirectionalLstm::SetNumThreads's rule."""
    assert rows_per_task(5, 512, 2) == 3
    assert rows_per_task(4, 512, 2) == 4      # 2..4 entries with more than 256 units: one
    assert rows_per_task(4, 256, 2) == 2
    assert rows_per_task(1, 8, 4) == 1
    assert rows_per_task(7, 8, 1) == 7


def test_dynamic_qparams() -> None:
    """ONNX Runtime's GetQuantizationParameter: zero in the range, scale 1 when empty."""
    assert dynamic_qparams(np.zeros(0, np.float32)) == (np.float32(1), 0)
    assert dynamic_qparams(np.array([0.5, 2.0], np.float32)) == (np.float32(2.0 / 255), 0)
    scale, zp = dynamic_qparams(np.array([-1.0, 1.0], np.float32))
    # -min / scale in float32 is 127.49999 (not 127.5): the zero point is 127
    assert scale == np.float32(2) / np.float32(255) and zp == 127
    # scale 1 exactly: -min 0.5 and 1.5 round half to even
    assert dynamic_qparams(np.array([-0.5, 254.5], np.float32)) == (np.float32(1), 0)
    assert dynamic_qparams(np.array([-1.5, 253.5], np.float32)) == (np.float32(1), 2)


def test_qoperator_reader_keeps_the_node(tmp_path: Path) -> None:
    """A file with DynamicQuantizeLSTM beside a quantized operator that the QOperator reader
    converts (here a contrib QuantizeLinear of Y_h) keeps the node as it is and runs, where
    the reader used to refuse it by name."""
    from lowp.formats import has_qoperator_nodes, to_qdq

    rng = np.random.default_rng(0)
    model = _quantized_lstm(tmp_path, rng, inp=3, hid=4, direction="forward",
                            per_channel=False, weight_type=QuantType.QInt8,
                            optional=frozenset(), with_y=True)
    g = model.graph
    g.initializer.extend([numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                          numpy_helper.from_array(np.array(3, np.uint8), "z")])
    g.node.append(helper.make_node("QuantizeLinear", ["yh", "s", "z"], ["yh_q"],
                                   domain="com.microsoft"))
    g.output.append(helper.make_tensor_value_info("yh_q", TensorProto.UINT8, [1, "B", 4]))
    if all(o.domain != "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert has_qoperator_nodes(model)
    converted = to_qdq(model)
    assert [n.op_type for n in converted.graph.node] == ["DynamicQuantizeLSTM",
                                                         "QuantizeLinear"]
    feeds = _feeds(model, rng, 4, 3, None)
    _assert_identical(lowp.Session(model, threads=1).run(feeds), _onnxruntime(model, feeds))


@pytest.mark.parametrize("k", [64, 600, 34000])
def test_product_paths_are_exact(k: int) -> None:
    """The float32 (sums below 2^24), float64 (below 2^31) and int64 products give the
    int32 accumulator's values: uint8 weights, zero point 0, K = 64, 600, 34000."""
    from lowp.runtime.quantized_lstm import QuantizedWeight, quantize_uint8

    rng = np.random.default_rng(k)
    w = QuantizedWeight(rng.integers(0, 256, (k, 5)).astype(np.uint8),
                        np.full(5, 0.01, np.float32), 0)
    a = rng.standard_normal((2, k)).astype(np.float32)
    scale, zp = dynamic_qparams(a)
    acc = (quantize_uint8(a, scale, zp).astype(np.int64) - zp) @ w.values.astype(np.int64)
    acc32 = acc.astype(np.int32)    # int32 wraps above 2^31, as ONNX Runtime's does
    want = (acc32.astype(np.float32) * (scale * w.scale).astype(np.float32))
    np.testing.assert_array_equal(w.product(a), want)


_SMALL_INPUTS = st.integers(1, 9)


@st.composite
def _direct_cases(draw: st.DrawFn, inputs: st.SearchStrategy[int] = _SMALL_INPUTS
                  ) -> dict[str, object]:
    """DynamicQuantizeLSTM's inputs made directly (no ONNX Runtime): hidden sizes around and
    above the 16-column gate padding, inputs around multiples of 4, batches past the 4-row
    tile, uint8 weights with any zero point, several tasks of rows, lengths with zeros."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    seq, batch = draw(st.integers(1, 5)), draw(st.integers(1, 9))
    inp = draw(inputs)
    hid = draw(st.sampled_from([1, 3, 15, 16, 17, 33, 40]))
    direction = draw(st.sampled_from(sorted(_DIRS)))
    d = _DIRS[direction]
    unsigned = draw(st.booleans())
    per_column = draw(st.booleans())

    def weight(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if unsigned:
            q = rng.integers(0, 256, (d, k, 4 * hid)).astype(np.uint8)
            zp = rng.integers(0, 256, (d, 1)).astype(np.uint8)
        else:
            q = rng.integers(-128, 128, (d, k, 4 * hid)).astype(np.int8)
            zp = np.zeros((d, 1), np.int8)
        cols = 4 * hid if per_column else 1
        scale = (rng.uniform(0.5, 2.0, (d, cols)) / 100).astype(np.float32)
        return q, scale.reshape(d, -1) if per_column else scale.reshape(d), (
            np.repeat(zp, cols, axis=1) if per_column else zp.reshape(d))

    f32 = np.float32
    lens = None
    if draw(st.booleans()):
        lens = rng.integers(0, seq + 1, batch).astype(np.int32)
        lens[0] = seq
    with_y = draw(st.booleans()) if lens is None or lens.min() else True
    (w, ws, wz), (r, rs, rz) = weight(inp), weight(hid)
    return {"args": [rng.standard_normal((seq, batch, inp)).astype(f32) * f32(draw(
                         st.sampled_from([0.01, 1.0, 30.0]))), w, r,
                     rng.standard_normal((d, 8 * hid)).astype(f32) if draw(st.booleans())
                     else None, lens,
                     rng.standard_normal((d, batch, hid)).astype(f32) if draw(st.booleans())
                     else None,
                     rng.standard_normal((d, batch, hid)).astype(f32) if draw(st.booleans())
                     else None,
                     rng.standard_normal((d, 3 * hid)).astype(f32) if draw(st.booleans())
                     else None, ws, wz, rs, rz],
            "attrs": {"direction": direction, "hidden_size": hid, "with_y": with_y,
                      "clip": draw(st.sampled_from([None, 0.5, 3.0])),
                      "input_forget": int(draw(st.booleans())),
                      "ort_threads": draw(st.sampled_from([1, 2, 4]))}}


def _native_matches_numpy(case: dict[str, object]) -> None:
    args, attrs = case["args"], case["attrs"]
    with native_qlstm.disabled():
        want = DynamicQuantizeLSTM(*args, **attrs)  # type: ignore[arg-type]
    assert native_qlstm.supported(args[0], attrs["hidden_size"],  # type: ignore[index]
                                  np.full(args[0].shape[1], args[0].shape[0])  # type: ignore[index]
                                  if args[4] is None else args[4],  # type: ignore[index]
                                  attrs["clip"])  # type: ignore[index]
    for path in PATHS:
        with nb.use_path(path):
            got = DynamicQuantizeLSTM(*args, **attrs)  # type: ignore[arg-type]
        for g, w, name in zip(got, want, ["y", "yh", "yc"], strict=True):
            assert g.shape == w.shape, name
            np.testing.assert_array_equal(g, w, err_msg=f"{name} on {path}")


@settings(max_examples=60)
@given(case=_direct_cases())
def test_native_equals_numpy_on_every_path(case: dict[str, object]) -> None:
    """lowp.runtime.native_qlstm gives the numpy reference's bits on every instruction-set
    path, for every task size, zero point, padding and remainder."""
    _native_matches_numpy(case)


@contextmanager
def _every_product_on_tiles() -> Iterator[None]:
    """IntMatMul's thresholds at 0: on a path with its own tiles (amx) every X W product
    goes there (qrecurrent.h QLstmArgs::w_tiles), whatever its rows and reduction."""
    ext = native_qlstm.native_rnn._extension()
    rows, size = ext.short_gemm_rows(), ext.short_gemm_bytes()
    ext.set_short_gemm_rows(0)
    ext.set_short_gemm_bytes(0)
    try:
        yield
    finally:
        ext.set_short_gemm_rows(rows)
        ext.set_short_gemm_bytes(size)


@settings(max_examples=40)
@given(case=_direct_cases(st.sampled_from([1, 3, 4, 9, 31, 32, 33, 125, 128, 131, 257])),
       forced=st.booleans())
def test_input_product_on_tiles_equals_numpy(case: dict[str, object], forced: bool) -> None:
    """The X W product by IntMatMul on the AMX tiles (inputs past its 128-byte reduction and
    8 rows, or every one with the thresholds at 0) gives the numpy reference's bits, as the
    register product does on the other paths (K rows past the input, padding columns)."""
    if forced:
        with _every_product_on_tiles():
            _native_matches_numpy(case)
    else:
        _native_matches_numpy(case)


@pytest.mark.parametrize("unsigned", [False, True])
def test_native_wide_and_wrapping_products_on_tiles(unsigned: bool) -> None:
    """The wrapping products below with every X W product on the tiles."""
    with _every_product_on_tiles():
        test_native_wide_and_wrapping_products(unsigned)


@pytest.mark.parametrize("unsigned", [False, True])
def test_native_wide_and_wrapping_products(unsigned: bool) -> None:
    """Products past the float32 (2^24) and float64 (2^31) bounds of the numpy code: K =
    34000 inputs of one sign with uint8 weights 255 (zero point 0) wrap the int32
    accumulator; hidden 300 spans many 64-column groups."""
    rng = np.random.default_rng(1)
    f32 = np.float32
    seq, batch, inp, hid = 2, 3, 34000, 2
    x = rng.uniform(0.99, 1.0, (seq, batch, inp)).astype(f32)  # uint8 252..255
    if unsigned:
        w = np.full((1, inp, 4 * hid), 255, np.uint8)
        wz = np.zeros(1, np.uint8)
    else:
        w = np.full((1, inp, 4 * hid), -128, np.int8)
        wz = np.zeros(1, np.int8)
    r = rng.integers(0, 256, (1, hid, 4 * hid)).astype(np.uint8)
    args = [x, w, r, None, None, None, None, None, np.full(1, 1e-9, f32), wz,
            np.full(1, 0.01, f32), np.full(1, 7, np.uint8)]
    _native_matches_numpy({"args": args, "attrs": {"hidden_size": hid, "clip": None}})
    hid, inp = 300, 5
    w = rng.integers(-128, 128, (2, inp, 4 * hid)).astype(np.int8)
    r = rng.integers(-128, 128, (2, hid, 4 * hid)).astype(np.int8)
    args = [rng.standard_normal((3, 6, inp)).astype(f32), w, r, None,
            np.array([3, 0, 1, 2, 3, 3], np.int32), None, None, None,
            np.full((2, 4 * hid), 0.01, f32), np.zeros((2, 4 * hid), np.int8),
            np.full(2, 0.001, f32), np.zeros(2, np.int8)]
    _native_matches_numpy({"args": args, "attrs": {"hidden_size": hid, "clip": None,
                                                   "direction": "bidirectional",
                                                   "ort_threads": 2}})


def test_native_fallbacks() -> None:
    """A batch of 0, lengths past T and a clip of 0 run the numpy code; inputs with a NaN
    or an infinity run natively ((O189))."""
    x = np.ones((2, 3, 4), np.float32)
    lens = np.full(3, 2)
    assert native_qlstm.supported(x, 5, lens, None)
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    assert native_qlstm.supported(bad, 5, lens, None)
    bad[0, 0, 0] = np.inf
    assert native_qlstm.supported(bad, 5, lens, None)
    assert not native_qlstm.supported(x[:, :0], 5, lens[:0], None)
    assert not native_qlstm.supported(x, 5, np.full(3, 3), None)
    assert not native_qlstm.supported(x, 5, lens, 0.0)
    with native_qlstm.disabled():
        assert not native_qlstm.supported(x, 5, lens, None)


def test_packed_weights_are_reused() -> None:
    """The weights are packed once per arrays; an in-place change packs them again."""
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (1, 5, 12)).astype(np.int8)
    scale, zp = np.full(1, 0.1, np.float32), np.zeros(1, np.int8)
    first = native_qlstm.packed(q, scale, zp)
    assert native_qlstm.packed(q, scale, zp) is first
    assert first.b.shape == (1, 8 * 64) and first.colsum.shape == (1, 64)
    q[0, 0, 0] += 1
    again = native_qlstm.packed(q, scale, zp)
    assert again is not first and not np.array_equal(again.b, first.b)


def test_session_takes_the_native_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    """A quantize_dynamic file's node runs natively in a Session."""
    calls = []
    native = native_qlstm.lstm

    def counted(*args: object, **kwargs: object) -> tuple[np.ndarray, ...]:
        calls.append(1)
        return native(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(native_qlstm, "lstm", counted)
    rng = np.random.default_rng(0)
    model = _quantized_lstm(tmp_path, rng, inp=3, hid=4, direction="bidirectional",
                            per_channel=True, weight_type=QuantType.QInt8,
                            optional=frozenset({"b", "h0"}), with_y=True)
    feeds = _feeds(model, rng, 4, 2, None)
    _assert_identical(lowp.Session(model, threads=1).run(feeds), _onnxruntime(model, feeds))
    assert calls


def test_immutable_weights_are_not_compared() -> None:
    """Arrays over immutable bytes (as initializers load) are packed once, never compared;
    a writeable view of the same values is."""
    from lowp.runtime.prepacked import frozen

    raw = np.arange(-6, 6, dtype=np.int8)
    q = np.frombuffer(raw.tobytes(), np.int8).reshape(1, 3, 4)
    assert frozen(q) and not frozen(raw.reshape(1, 3, 4))
    assert not frozen(np.frombuffer(bytearray(raw.tobytes()), np.int8))
    scale, zp = np.frombuffer(np.float32(0.1).tobytes(), np.float32), np.zeros(1, np.int8)
    assert native_qlstm.packed(q, scale, zp) is native_qlstm.packed(q, scale, zp)


def test_native_threads_give_the_same_bits() -> None:
    """The two directions on two pool threads compute what one thread does."""
    rng = np.random.default_rng(3)
    f32 = np.float32
    hid, inp, batch = 20, 7, 3
    w = rng.integers(-128, 128, (2, inp, 4 * hid)).astype(np.int8)
    r = rng.integers(0, 256, (2, hid, 4 * hid)).astype(np.uint8)
    x = rng.standard_normal((5, batch, inp)).astype(f32)
    wp = native_qlstm.packed(w, np.full(2, 0.02, f32), np.zeros(2, np.int8))
    rp = native_qlstm.packed(r, np.full(2, 0.01, f32), np.full(2, 130, np.uint8))
    lens = np.array([5, 2, 0])
    runs = [native_qlstm.lstm(x, wp, rp, hid, None, lens, None, None, None, [False, True],
                              None, False, True, batch, threads=t) for t in (1, 2, 0)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("inp", "hid"), [(16, 16), (17, 33), (32, 40), (47, 16), (64, 17)])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_native_quantization_ties_and_zeros(inp: int, hid: int, direction: str) -> None:
    """The vectorized dynamic quantization (whole 16- and 8-lane vectors and their tails)
    gives the numpy reference's bytes on every path: X of half-integers spanning exactly
    [-100, 155] (scale 1, zero point 100: every value a rounding tie, half to even), with
    -0.0 among them; rows of several lengths, so that each direction's X W and every step's
    H quantize whole vectors and remainders."""
    rng = np.random.default_rng(inp * 100 + hid)
    f32, d = np.float32, _DIRS[direction]
    seq, batch = 3, 3
    x = (rng.integers(-200, 310, (seq, batch, inp)) / 2).astype(f32)
    x.flat[0], x.flat[1], x.flat[2] = -100.0, 155.0, -0.0
    w = rng.integers(-128, 128, (d, inp, 4 * hid)).astype(np.int8)
    r = rng.integers(0, 256, (d, hid, 4 * hid)).astype(np.uint8)
    scale, zp = dynamic_qparams(x)
    assert (scale, zp) == (f32(1), 100)
    args = [x, w, r, None, np.array([3, 1, 2], np.int32), None, None, None,
            np.full(d, 0.002, f32), np.zeros(d, np.int8), np.full(d, 0.01, f32),
            np.full(d, 131, np.uint8)]
    _native_matches_numpy({"args": args, "attrs": {
        "direction": direction, "hidden_size": hid, "with_y": True, "clip": None,
        "input_forget": 0, "ort_threads": 1}})


def test_packed_panels_are_cache_line_aligned() -> None:
    """Every direction's packed panels start on a 64-byte boundary (the product's loads of
    a panel never straddle two cache lines)."""
    rng = np.random.default_rng(5)
    for shape in [(1, 7, 4 * 3), (2, 40, 4 * 20), (2, 256, 4 * 256)]:
        for _ in range(4):
            q = rng.integers(-128, 128, shape).astype(np.int8)
            p = native_qlstm.pack(q, np.full(shape[0], 0.1, np.float32),
                                  np.zeros(shape[0], np.int8))
            assert p.b.flags.c_contiguous
            for row in p.b:
                assert row.ctypes.data % 64 == 0


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_native_zero_steps(direction: str) -> None:
    """A sequence of 0 steps (no value to take a range of) runs natively: Y empty, Y_h and
    Y_c zeros, as the numpy reference gives."""
    d, f32 = _DIRS[direction], np.float32
    rng = np.random.default_rng(11)
    w = rng.integers(-128, 128, (d, 6, 4 * 5)).astype(np.int8)
    r = rng.integers(-128, 128, (d, 5, 4 * 5)).astype(np.int8)
    scale, zp = np.full(d, 0.01, f32), np.zeros(d, np.int8)
    args = [np.zeros((0, 2, 6), f32), w, r, None, None, None, None, None, scale, zp, scale, zp]
    _native_matches_numpy({"args": args, "attrs": {
        "direction": direction, "hidden_size": 5, "with_y": True, "clip": None,
        "input_forget": 0, "ort_threads": 1}})



def _kept_runs(model: onnx.ModelProto, session: lowp.Session, feeds: list[dict[str, np.ndarray]],
               threads: int) -> None:
    """Every run's results, kept until all have run, are a plain session's and ONNX
    Runtime's bit for bit."""
    plain = lowp.Session(model, threads=threads, replay=False)
    kept = [(session.run(f), plain.run(f), _onnxruntime(model, f, threads)) for f in feeds]
    for got, reference, want in kept:
        assert set(got) == set(want) == set(reference)
        for name, w in want.items():
            np.testing.assert_array_equal(got[name].view(np.uint32),
                                          reference[name].view(np.uint32), err_msg=name)
            np.testing.assert_array_equal(got[name].view(np.uint32), w.view(np.uint32),
                                          err_msg=name)


@pytest.mark.parametrize("threads", [1, 2])
def test_node_replays_inside_a_program(tmp_path: Path, threads: int) -> None:
    """The node's native call replays inside the signature's Program (it ran from Python on
    every run: evals/corpus/repro/README.md item 119); a run whose input holds a NaN replays
    too, with ONNX Runtime's bits ((O189)).
    Batch 1: ONNX Runtime's H tasks at 2 threads are then one (`rows_per_task`)."""
    rng = np.random.default_rng(11)
    model = _quantized_lstm(tmp_path, rng, inp=5, hid=8, direction="bidirectional",
                            per_channel=True, weight_type=QuantType.QInt8,
                            optional=frozenset({"b", "h0", "c0"}), with_y=True)
    session = lowp.Session(model, threads=threads)
    feeds = [_feeds(model, rng, 6, 1, None) for _ in range(8)]
    feeds[4]["x"][2, 0, 1] = np.nan
    _kept_runs(model, session, feeds, threads)
    session.run(feeds[0], profile=True)
    assert not [key for key in session.last_profile if key.endswith(")")], \
        session.last_profile


def test_node_with_lengths_is_not_replayed(tmp_path: Path) -> None:
    """A call with sequence lengths is not recorded (the kernel would read the lengths of
    its recording; lengths of T are dropped before the call), so runs whose lengths change
    after runs of full lengths still give ONNX Runtime's results."""
    rng = np.random.default_rng(12)
    model = _quantized_lstm(tmp_path, rng, inp=4, hid=6, direction="forward",
                            per_channel=False, weight_type=QuantType.QInt8,
                            optional=frozenset({"b", "lens"}), with_y=True)
    session = lowp.Session(model, threads=1)
    feeds = [_feeds(model, rng, 5, 2, lens) for lens in
             ([5, 5], [5, 5], [5, 5], [3, 5], [5, 1], [5, 5])]
    _kept_runs(model, session, feeds, 1)


@pytest.mark.parametrize("threads", [1, 2])
def test_session_threads_equal_onnxruntime_threads(tmp_path: Path, threads: int) -> None:
    """A Session at 2 threads quantizes H per task of rows as ONNX Runtime at 2 intra-op
    threads does (batch 5: tasks of 3 and 2 rows), replayed or not; at 1 thread, one task
    (the tashkeel files at 2 threads: evals/corpus/repro/README.md item 121)."""
    rng = np.random.default_rng(13)
    model = _quantized_lstm(tmp_path, rng, inp=6, hid=8, direction="bidirectional",
                            per_channel=True, weight_type=QuantType.QInt8,
                            optional=frozenset({"b", "h0"}), with_y=True)
    feeds = [_feeds(model, rng, 7, 5, None) for _ in range(5)]
    for f in feeds:
        f["x"][:, 0] *= 8  # one entry's range dominates the one-task quantization
    _kept_runs(model, lowp.Session(model, threads=threads), feeds, threads)


def test_dynamic_qparams_of_nan_and_infinite_ranges() -> None:
    """MLAS's min / max skip a NaN that a later value of its lane follows and keep one
    that ends it; a NaN bound or an infinite one gives a NaN or infinite scale and the zero
    point 255 where -min / scale is NaN (docs/operators.md, (O149))."""
    f = np.float32
    nan, inf = f(np.nan), f(np.inf)
    # fewer than 8 values: std::min / max skip every NaN
    assert dynamic_qparams(np.array([nan, 1.0, -2.0], f)) == (f(3.0 / 255), 170)
    # 8 values, one lane each; the halves fold as vmaxps(low, high): a NaN in the low half
    # is dropped, one in the high half reaches both bounds
    assert dynamic_qparams(np.array([1, 2, 3, nan, -1, 0, 0, 0], f)) == (f(4.0 / 255), 64)
    scale, zp = dynamic_qparams(np.array([1, 2, 3, -1, 0, 0, 0, nan], f))
    assert np.isnan(scale) and zp == 255
    # a later value in the NaN's lane replaces it
    x = np.zeros(16, f)
    x[3], x[11], x[5] = nan, 2.0, -1.0
    assert dynamic_qparams(x) == (f(3.0 / 255), 85)
    assert dynamic_qparams(np.array([inf, 1.0], f)) == (inf, 0)
    scale, zp = dynamic_qparams(np.array([-inf, 1.0], f))
    assert scale == inf and zp == 255


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_inputs_equal_onnxruntime(tmp_path: Path, threads: int,
                                                   value: float) -> None:
    """X holding a NaN or an infinity: ONNX Runtime's result (before: another range for a
    NaN, and a ValueError for an infinity), at 1 and 2 threads, on the numpy reference and
    natively on every path (before, the native backend left such an X to numpy; (O189)).
    A reverse direction quantizes X with its valid steps reversed: with a NaN, MLAS's lanes
    see another order, and the range may differ from the forward direction's."""
    rng = np.random.default_rng(3)
    for seed, (inp, hid, seq, batch, direction, lens) in enumerate(
            [(5, 3, 3, 2, "forward", None), (11, 6, 4, 3, "bidirectional", None),
             (9, 4, 2, 5, "reverse", None), (8, 5, 6, 2, "bidirectional", [6, 4]),
             (16, 4, 5, 3, "reverse", [5, 3, 4])]):
        model = _quantized_lstm(tmp_path, rng, inp=inp, hid=hid, direction=direction,
                                per_channel=False, weight_type=QuantType.QInt8,
                                optional=frozenset(["b"] + (["lens"] if lens else [])),
                                with_y=True)
        feeds = _feeds(model, rng, seq, batch, lens)
        for k in range(seed + 1):
            feeds["x"][k % seq, (2 * k) % batch, (3 * k + 1) % inp] = value
        want = _onnxruntime(model, feeds, threads)
        session = lowp.Session(model, threads=threads)
        with native_qlstm.disabled():   # the numpy reference
            _assert_bits(session.run(feeds), want)
        for path in PATHS:
            with nb.use_path(path), _native_calls() as calls:
                _assert_bits(session.run(feeds), want)
            assert calls, path


@contextmanager
def _native_calls() -> Iterator[list[int]]:
    """Count the calls of native_qlstm.lstm inside the block."""
    calls: list[int] = []
    native = native_qlstm.lstm

    def counted(*args: object, **kwargs: object) -> tuple[np.ndarray, ...]:
        calls.append(1)
        return native(*args, **kwargs)  # type: ignore[arg-type]

    native_qlstm.lstm = counted  # type: ignore[assignment]
    try:
        yield calls
    finally:
        native_qlstm.lstm = native  # type: ignore[assignment]


def test_mlas_range_span() -> None:
    """GetQuantizationParameter's min / max calls at 2 intra-op threads: one call up to
    123,008 values (Eigen's cost model keeps one thread), then blocks of ceil(n / 32)
    rounded up to 128 values, 4 (or more) of them a call ((O189)); one call at 1 thread."""
    assert mlas_range_span(200_000, 1) == 0
    assert mlas_range_span(128, 2) == 0
    assert mlas_range_span(123_008, 2) == 0
    assert mlas_range_span(123_009, 2) == 23_808           # 6 blocks of 3,968 a call
    assert mlas_range_span(200_000, 2) == 4 * 6_272
    assert mlas_range_span(1_000_000, 2) == 4 * 31_360


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("direction", "lens"), [("bidirectional", None),
                                                 ("reverse", [100, 93])])
def test_nan_range_split_over_threads_equals_onnxruntime(tmp_path: Path, threads: int,
                                                         direction: str,
                                                         lens: list[int] | None) -> None:
    """X of 200,000 values (100 steps, batch 2, 1000 inputs): at 2 intra-op threads ONNX
    Runtime takes its range in 8 MlasFindMinMaxElement calls of 25,088 values and folds them
    with std::min / max, which keep a NaN ending the first call's lane and skip one of a
    later call; at 1 thread one call, where a later value of the lane replaces the NaN
    ((O189); before, lowp modelled one call at any thread count: all outputs NaN or finite
    where ONNX Runtime's were not). Both backends, every native path."""
    rng = np.random.default_rng(17)
    seq, batch, inp = 100, 2, 1000
    model = _quantized_lstm(tmp_path, rng, inp=inp, hid=2, direction=direction,
                            per_channel=False, weight_type=QuantType.QInt8,
                            optional=frozenset(["b"] + (["lens"] if lens else [])),
                            with_y=True)
    session = lowp.Session(model, threads=threads)
    for positions in ([25_087], [50_175], [199_999], [3, 25_087 + 75_264]):
        feeds = _feeds(model, rng, seq, batch, lens)
        feeds["x"].reshape(-1)[positions] = np.nan
        want = _onnxruntime(model, feeds, threads)
        with native_qlstm.disabled():
            _assert_bits(session.run(feeds), want)
        for path in PATHS:
            with nb.use_path(path):
                _assert_bits(session.run(feeds), want)


def _assert_bits(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, w in want.items():
        np.testing.assert_array_equal(got[name].view(np.uint32), w.view(np.uint32),
                                      err_msg=name)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("state", ["h0", "c0"])
def test_nan_and_infinite_initial_states_equal_onnxruntime(tmp_path: Path, threads: int,
                                                           value: float, state: str) -> None:
    """initial_h / initial_c holding a NaN or an infinity (docs/operators.md, (O156)): each
    step's H, NaN included, quantized from MLAS's range (its lanes), a NaN zero point 255 and
    a NaN quotient 0, on the numpy reference and every native path, at 1 and 2 threads (the
    native recurrence skipped a NaN in the range and converted a NaN zero point to int:
    undefined behaviour, and other bits than ONNX Runtime's). Lengths, both directions, and
    H of more than 8 (a NaN ending its lane or followed in it) and of more than 32 values."""
    rng = np.random.default_rng(int(threads * 10 + len(state)))
    for inp, hid, seq, batch, direction, opt, lens in [
            (5, 3, 3, 2, "forward", {"b", "h0", "c0"}, None),
            (6, 16, 3, 3, "bidirectional", {"b", "h0", "c0", "p", "lens"}, [3, 0, 2]),
            (4, 40, 3, 1, "reverse", {"h0", "c0", "lens"}, [2]),
            (3, 9, 4, 6, "forward", {"b", "h0", "c0"}, None)]:
        model = _quantized_lstm(tmp_path, rng, inp=inp, hid=hid, direction=direction,
                                per_channel=False, weight_type=QuantType.QInt8,
                                optional=frozenset(opt), with_y=True)
        session = lowp.Session(model, threads=threads)
        for positions in ([3], [11, 2], [0, 8, 27]):
            feeds = _feeds(model, rng, seq, batch, lens)
            flat = feeds[state].reshape(-1)
            flat[[p % flat.size for p in positions]] = value
            want = _onnxruntime(model, feeds, threads)
            with native_qlstm.disabled():   # the numpy reference
                _assert_bits(session.run(feeds), want)
            for path in PATHS:
                with nb.use_path(path):
                    _assert_bits(session.run(feeds), want)

