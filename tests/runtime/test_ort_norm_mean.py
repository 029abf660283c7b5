"""Float32 Mean and InstanceNormalization equal ONNX Runtime bit for bit (docs/operators.md
(O35)): Mean multiplies the sum by 1 / count; InstanceNormalization sums each plane with
Eigen's vectorized sums and applies x * s + t."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from lowp.runtime import Session


def _both(model: object, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(model.SerializeToString(), options,  # type: ignore[attr-defined]
                                  providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return Session(model).run(feeds)["y"], theirs


@pytest.mark.parametrize("count", [2, 3, 5])
def test_mean_equals_onnxruntime(count: int) -> None:
    rng = np.random.default_rng(count)
    names = [f"x{i}" for i in range(count)]
    feeds = {n: rng.standard_normal((7, 131)).astype(np.float32) for n in names}
    graph = helper.make_graph([helper.make_node("Mean", names, ["y"])], "mean",
                              [helper.make_tensor_value_info(n, 1, (7, 131)) for n in names],
                              [helper.make_tensor_value_info("y", 1, (7, 131))])
    ours, theirs = _both(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 13)]), feeds)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("shape", [(2, 8, 28, 28), (1, 5, 7, 9), (3, 4, 3), (1, 2, 1, 1)])
def test_instance_norm_equals_onnxruntime(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    c = shape[1]
    inits = [numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "s"),
             numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "b")]
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-5)
    graph = helper.make_graph([node], "norm", [helper.make_tensor_value_info("x", 1, shape)],
                              [helper.make_tensor_value_info("y", 1, shape)], initializer=inits)
    ours, theirs = _both(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17)]), {"x": x})
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("shape,groups", [((1, 32, 28, 28), 8), ((2, 6, 5, 7), 3),
                                          ((1, 4, 9), 2)])
def test_group_norm_equals_onnxruntime(shape: tuple[int, ...], groups: int) -> None:
    """GroupNormalization-21, which ONNX Runtime runs as its ONNX function (O36)."""
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 2 - 0.5).astype(np.float32)
    c = shape[1]
    inits = [numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "s"),
             numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "b")]
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], epsilon=1e-5,
                            num_groups=groups)
    graph = helper.make_graph([node], "norm", [helper.make_tensor_value_info("x", 1, shape)],
                              [helper.make_tensor_value_info("y", 1, shape)], initializer=inits)
    ours, theirs = _both(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 21)]), {"x": x})
    np.testing.assert_array_equal(ours, theirs)
