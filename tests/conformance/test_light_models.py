"""The onnx zoo's IR 3 'light' architectures quantize, and lowp's int8 engine matches ONNX
Runtime on the QDQ model they become."""

from __future__ import annotations

import glob
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.backend.test.loader import DATA_DIR

import lowp
from lowp.runtime import Session

LIGHT = sorted(glob.glob(os.path.join(DATA_DIR, "light", "light_*.onnx")))
# over 10 s on 2 cores (fully connected weights of 25088 x 4096 and 9216 x 4096 floats)
SLOW = {"vgg19", "zfnet512"}
CALIBRATION_SAMPLES, RUNS = 4, 2
MIN_IDENTICAL = 0.999


def _name(path: str) -> str:
    return os.path.basename(path)[len("light_"):-len(".onnx")]


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


def _random_data(model: onnx.ModelProto, samples: int, seed: int) -> dict[str, np.ndarray]:
    """Standard normal samples for each real input (the first axis is the sample axis)."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    data = {}
    for x in model.graph.input:
        if x.name in inits:
            continue
        shape = [d.dim_value for d in x.type.tensor_type.shape.dim]
        data[x.name] = rng.standard_normal([samples, *shape[1:]]).astype(np.float32)
    return data


def last_quantized(model: onnx.ModelProto, output: str) -> str:
    """The integer tensor an output is computed from: up the first inputs to the nearest
    DequantizeLinear, whose input is a QuantizeLinear output."""
    producer = {o: n for n in model.graph.node for o in n.output}
    name = output
    while name in producer and producer[name].op_type != "DequantizeLinear":
        name = producer[name].input[0]
    assert name in producer, f"{output} is computed from no quantized tensor"
    return producer[name].input[0]


def _with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    return out


def _params() -> list[object]:
    return [pytest.param(p, id=_name(p), marks=[pytest.mark.slow] if _name(p) in SLOW else [])
            for p in LIGHT]


@pytest.mark.parametrize("path", _params())
def test_light_model_quantizes_and_runs_int8_like_onnxruntime(path: str) -> None:
    model = onnx.load(path)
    assert model.ir_version < 4   # initializers listed as graph inputs, weights built at load
    q = lowp.quantize_model(model, _random_data(model, CALIBRATION_SAMPLES, seed=0))
    assert {i.name for i in q.graph.input} == {
        i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    ints = [last_quantized(q, o.name) for o in q.graph.output]
    session = Session(q, backend="native")
    assert session.int_steps, "nothing runs in integers"
    reference = _with_outputs(q, ints)
    data = _random_data(model, RUNS, seed=1)
    for k in range(RUNS):
        feeds = {n: v[k:k + 1] for n, v in data.items()}
        ours = session.run(feeds, [o.name for o in q.graph.output] + ints)
        theirs = _ort(reference, feeds)
        for name in ints:
            assert ours[name].dtype == theirs[name].dtype and ours[name].dtype.itemsize == 1
            same = np.mean(ours[name] == theirs[name])
            assert same >= MIN_IDENTICAL, f"{name}: {same:.4%} identical"
        for o in q.graph.output:
            close = np.isclose(ours[o.name], theirs[o.name], rtol=1e-5, atol=1e-6)
            assert np.mean(close) >= MIN_IDENTICAL, o.name


def test_every_light_model_is_here() -> None:
    assert [_name(p) for p in LIGHT] == [
        "bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
        "shufflenet", "squeezenet", "vgg19", "zfnet512"]
