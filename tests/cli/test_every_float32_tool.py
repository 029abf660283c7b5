"""tools/every_float32.py's models: a binary operator's constant operand on either side, the
thread sweep's longer vector, and a stopped sweep's rest (--first)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from lowp import Session

TOOL = Path(__file__).resolve().parents[2] / "tools" / "every_float32.py"
_spec = importlib.util.spec_from_file_location("every_float32", TOOL)
assert _spec is not None and _spec.loader is not None
ef = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ef)


@pytest.mark.parametrize(("spec", "inputs"), [("Pow:@1=0.5", ["x", "c"]),
                                              ("Div:@0=1", ["c", "x"])])
def test_constant_operand_model_runs_in_both_engines(spec: str, inputs: list[str]) -> None:
    op, attributes = ef.parse_op(spec)
    model = ef.one_node_model(op, 17, attributes, length=7)
    assert list(model.graph.node[0].input) == inputs
    assert not model.graph.node[0].attribute
    x = np.array([4, 0.25, -0.0, 9, np.inf, -1, 2], np.float32)
    theirs = ort.InferenceSession(model.SerializeToString(),
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ours = Session(model).run({"x": x})["y"]
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_one_constant_operand_at_index_0_or_1() -> None:
    with pytest.raises(ValueError, match="one constant operand"):
        ef.parse_op("Where:@2=1")


def test_first_block_and_chunks() -> None:
    assert len(ef.block_makers(256, False, first=148)) == 108
    assert len(ef.block_makers(3, False, first=254)) == 2
    assert ef.block_makers(2, False, first=5)[0]()[0] == 5 * ef.BLOCK
