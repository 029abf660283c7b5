"""User data: loading, checking and batching."""

from __future__ import annotations

import numpy as np
import pytest

from lowp.errors import DataError
from lowp.inputs import InputSpec, batches, load_arrays, validate

SPEC = [InputSpec("x", np.dtype(np.float32), (None, 3))]


def test_fixed_batch_dimension_gets_full_batches_only():
    spec = [InputSpec("x", np.dtype(np.float32), (4, 3))]
    data = {"x": np.zeros((10, 3), np.float32)}
    assert [b["x"].shape[0] for b in batches(data, spec, 16)] == [4, 4]
    with pytest.raises(DataError, match="fix the batch size to 4 but the data has only 2"):
        list(batches({"x": np.zeros((2, 3), np.float32)}, spec, 16))


def test_dynamic_batches_and_folder_of_npz(tmp_path):
    assert [b["x"].shape[0] for b in batches({"x": np.zeros((5, 3))}, SPEC, 2)] == [2, 2, 1]
    for i in range(3):
        np.savez(tmp_path / f"part{i}.npz", x=np.full((2, 3), i, np.float32))
    arrays = load_arrays(tmp_path, SPEC)
    assert arrays["x"].shape == (6, 3) and arrays["x"][4, 0] == 2


def test_float64_is_accepted_and_cast():
    out = validate({"x": np.zeros((2, 3), np.float64)}, SPEC)
    assert out["x"].dtype == np.float32


def test_mismatched_sample_counts():
    spec = SPEC + [InputSpec("y", np.dtype(np.float32), (None,))]
    with pytest.raises(DataError, match="different numbers of samples"):
        validate({"x": np.zeros((2, 3), np.float32), "y": np.zeros(3, np.float32)}, spec)


def _one_input_model(value_info, initializer=()):
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="id")], "g",
                              [value_info], [helper.make_empty_tensor_value_info("y")],
                              list(initializer))
    return helper.make_model(graph)


@pytest.mark.parametrize(("elem_type", "dtype"), [
    (1, "float32"), (4, "uint16"), (12, "uint32"), (13, "uint64"), (5, "int16"),
    (16, "bfloat16"), (17, "float8_e4m3fn")])
def test_model_inputs_know_every_tensor_dtype(elem_type, dtype):
    from onnx import helper

    from lowp.inputs import model_inputs
    model = _one_input_model(helper.make_tensor_value_info("x", elem_type, [2]))
    assert model_inputs(model)[0].dtype.name == dtype


def test_model_inputs_leave_out_initializers_and_refuse_sequences():
    from onnx import TensorProto, helper, numpy_helper

    from lowp.errors import UnsupportedOpError
    from lowp.inputs import model_inputs
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    assert model_inputs(_one_input_model(
        x, [numpy_helper.from_array(np.zeros(2, np.float32), "x")])) == []
    seq = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [2])
    with pytest.raises(UnsupportedOpError, match="Identity.*'x' is a sequence") as err:
        model_inputs(_one_input_model(seq))
    assert err.value.op_type == "Identity"
