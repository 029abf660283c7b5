"""A QOperator file whose QLinearConv weight a QLinearMul computes from constants (ONNX
Runtime's quantizer on weight-only int8 weights, Mul(Cast(int8), scale); repro item 199):
lowp computes the chain at load and gives ONNX Runtime's bits."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from evals.corpus.repro import qoperator_computed_weight

import lowp
from lowp.formats.computed_weights import computed_weights, fold_computed_weights
from lowp.runtime.backends import native_available

BACKENDS = ["reference"] + (["native"] if native_available() else [])


@pytest.fixture(scope="module", params=["u8", "s8"])
def model(request: pytest.FixtureRequest) -> onnx.ModelProto:
    return qoperator_computed_weight.build(request.param)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_computed_conv_weight_runs_with_onnxruntimes_bits(model, backend, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    runtime = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    session = lowp.Session(model, backend=backend, threads=threads)
    for feeds in qoperator_computed_weight.feeds(1, 3):
        want = runtime.run(None, feeds)[0]
        got = session.run(feeds)["conv1"]
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_the_folded_weights_are_the_integers_onnxruntime_computes(model):
    weights = computed_weights(model)
    assert len(weights) == 2
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    exposed.graph.output.extend(onnx.helper.make_empty_tensor_value_info(w) for w in weights)
    runtime = ort.InferenceSession(exposed.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    want = runtime.run(weights, qoperator_computed_weight.feeds(1)[0])
    folded = fold_computed_weights(model)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in folded.graph.initializer}
    for name, value in zip(weights, want, strict=True):
        assert inits[name].dtype == value.dtype
        np.testing.assert_array_equal(inits[name], value)
    assert not any(set(weights) & set(n.output) for n in folded.graph.node)


def test_a_weight_computed_from_a_graph_input_is_not_folded(model):
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    producer = next(n for n in cut.graph.node if n.op_type == "QLinearMul")
    cut.graph.input.append(onnx.helper.make_tensor_value_info(
        producer.input[0], onnx.TensorProto.UINT8, None))
    nodes = [n for n in cut.graph.node if producer.input[0] not in n.output]
    del cut.graph.node[:]
    cut.graph.node.extend(nodes)
    assert producer.output[0] not in computed_weights(cut)
