"""Cross-layer equalization keeps the float function and equalizes the pair's ranges."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.config import Config
from lowp.errors import QuantizationError
from lowp.passes.equalize import equalize, find_pairs
from lowp.pipeline import quantize
from lowp.targets import WeightGranularity


def _chain(rng: np.random.Generator, act: str = "Relu", *, shared: bool = False,
           clip_max: float | None = None) -> onnx.ModelProto:
    """conv1 (3 -> 8) -> act -> depthwise conv2 (8) -> act -> conv3 (8 -> 4): two pairs.
    conv1's channels span ranges 0.01 .. 10 (as folded BatchNorms make them), conv2 reads
    them with the inverse ranges: the float function weighs every channel alike."""
    spread = np.geomspace(0.01, 10, 8).astype(np.float32)
    w1 = rng.normal(0, 1, (8, 3, 3, 3)).astype(np.float32) * spread[:, None, None, None]
    b1 = rng.normal(0, 1, 8).astype(np.float32) * spread
    w2 = rng.normal(0, 1, (8, 1, 3, 3)).astype(np.float32) / spread[:, None, None, None]
    b2 = rng.normal(0, 0.1, 8).astype(np.float32)
    w3 = rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32)
    b3 = rng.normal(0, 0.1, 4).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for n, a in
             (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2), ("w3", w3), ("b3", b3))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1] * 4)]

    def activation(src: str, dst: str, name: str) -> None:
        if act == "none":
            nodes.append(helper.make_node("Identity", [src], [dst], name=name))
        elif act == "Clip":
            inputs = [src, "zero"] + (["top"] if clip_max is not None else [])
            nodes.append(helper.make_node("Clip", inputs, [dst], name=name))
        elif act == "LeakyRelu":
            nodes.append(helper.make_node("LeakyRelu", [src], [dst], name=name, alpha=0.1))
        else:
            nodes.append(helper.make_node(act, [src], [dst], name=name))

    activation("c1", "a1", "act1")
    nodes.append(helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], name="conv2",
                                  group=8, pads=[1] * 4))
    activation("c2", "a2", "act2")
    nodes.append(helper.make_node("Conv", ["a2", "w3", "b3"], ["y"], name="conv3"))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 12, 12])]
    if shared:                              # conv2's weight read by a second Conv too
        nodes.append(helper.make_node("Conv", ["a1", "w2"], ["y2"], name="other", group=8))
        outputs.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["n", 8, 10, 10]))
    if act == "Clip":
        inits += [numpy_helper.from_array(np.float32(0), "zero")]
    if clip_max is not None:
        inits += [numpy_helper.from_array(np.float32(clip_max), "top")]
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["n", 3, 12, 12])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if act == "none":                       # Identity nodes removed: Conv -> Conv
        model = _drop_identity(model)
    return model


def _drop_identity(model: onnx.ModelProto) -> onnx.ModelProto:
    rename = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity"}
    keep = [n for n in model.graph.node if n.op_type != "Identity"]
    for n in keep:
        n.input[:] = [rename.get(i, i) for i in n.input]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.parametrize("act", ["Relu", "none", "LeakyRelu", "Clip"])
def test_float_function_kept(act):
    rng = np.random.default_rng(0)
    model = _chain(rng, act)
    assert len(find_pairs(model)) == 2
    out = equalize(model)
    x = rng.normal(0, 1, (4, 3, 12, 12)).astype(np.float32)
    want, got = _run(model, x)[0], _run(out, x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    assert not np.allclose(_weights(out)["w1"], _weights(model)["w1"])   # it did rescale


def test_ranges_equalized():
    """After equalization, output channel i of conv1 and input channel i of conv2 span the
    same range (E1); before, they differ by up to 10^6."""
    rng = np.random.default_rng(1)
    model = _chain(rng)
    w = _weights(equalize(model, iterations=100, tolerance=1e-9))
    r1 = np.abs(w["w1"]).reshape(8, -1).max(axis=1)
    r2 = np.abs(w["w2"]).reshape(8, -1).max(axis=1)        # depthwise: input i = output i
    r2_out = np.abs(w["w2"]).reshape(8, -1).max(axis=1)
    r3 = np.abs(w["w3"]).reshape(4, 8).max(axis=0)
    np.testing.assert_allclose(r1, r2, rtol=1e-3)
    np.testing.assert_allclose(r2_out, r3, rtol=1e-3)
    before = _weights(model)
    spread = np.abs(before["w1"]).reshape(8, -1).max(axis=1)
    assert spread.max() / spread.min() > 100
    assert r1.max() / r1.min() < spread.max() / spread.min() / 10


def test_relu6_shared_weights_and_extra_readers_left_alone():
    rng = np.random.default_rng(2)
    assert find_pairs(_chain(rng, "Clip", clip_max=6.0)) == []      # Relu6: not homogeneous
    assert find_pairs(_chain(rng, "Sigmoid")) == []
    pairs = find_pairs(_chain(rng, shared=True))
    # conv1's output is read by conv2 and `other`; conv2's weight is shared: only conv2 ->
    # conv3 would remain, and conv2's weight is read twice, so nothing is equalized
    assert pairs == []
    model = _chain(rng, "Clip", clip_max=6.0)
    assert _weights(equalize(model))["w1"].tobytes() == _weights(model)["w1"].tobytes()


def test_deterministic():
    model = _chain(np.random.default_rng(3))
    assert equalize(model).SerializeToString() == equalize(model).SerializeToString()


def test_helps_per_tensor_weights():
    """Per-tensor weights: conv1's small channels round to zero without equalization."""
    rng = np.random.default_rng(4)
    model = _chain(rng)
    x = rng.normal(0, 1, (32, 3, 12, 12)).astype(np.float32)
    ref = _run(model, x)[0]
    err = {}
    for eq in (False, True):
        config = Config(weight_granularity=WeightGranularity.PER_TENSOR, equalize=eq)
        q = lowp.quantize_model(model, {"x": x}, config)
        got = lowp.Session(q).run({"x": x})["y"]
        err[eq] = float(np.sqrt(np.mean((got - ref) ** 2)))
    assert err[True] < 0.5 * err[False], err


def test_bad_config():
    with pytest.raises(QuantizationError, match="True or False"):
        Config(equalize=1)  # type: ignore[arg-type]
    with pytest.raises(QuantizationError, match="STATIC"):
        Config(mode=lowp.QuantMode.DYNAMIC, equalize=True)


def test_table_of_other_preparation_refused(tmp_path):
    rng = np.random.default_rng(5)
    model = _chain(rng)
    x = rng.normal(0, 1, (8, 3, 12, 12)).astype(np.float32)
    plain = quantize(model, {"x": x}, Config())
    with pytest.raises(lowp.DataError, match="equalize"):
        quantize(model, {"x": x}, Config(equalize=True), calib_table=plain.table)
    eq = quantize(model, {"x": x}, Config(equalize=True))
    assert eq.table.settings["equalize"] is True
    eq.table.save(tmp_path / "t.json")
    again = quantize(model, {"x": x}, Config(equalize=True),
                          calib_table=tmp_path / "t.json")
    assert again.model.SerializeToString() == eq.model.SerializeToString()
