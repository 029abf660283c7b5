"""The QDQ file does not depend on the process's string hashing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_SCRIPT = """
import hashlib, sys
import numpy as np
from onnx import TensorProto, helper, numpy_helper
from lowp.config import CalibMethod, Config
from lowp.pipeline import quantize
rng = np.random.default_rng(0)
names = [f"x{i}" for i in range(6)]
nodes, init = [], []
for n in names:
    init.append(numpy_helper.from_array(rng.normal(size=(4, 4)).astype(np.float32), f"w_{n}"))
    nodes.append(helper.make_node("MatMul", [n, f"w_{n}"], [f"y_{n}"], name=f"mm_{n}"))
graph = helper.make_graph(
    nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 4]) for n in names],
    [helper.make_tensor_value_info(f"y_{n}", TensorProto.FLOAT, [2, 4]) for n in names], init)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
calib = {n: rng.normal(size=(2, 4)).astype(np.float32) for n in names}
q = quantize(model, calib, Config(method=CalibMethod.MINMAX)).model
print(hashlib.sha256(q.SerializeToString()).hexdigest())
"""


def test_graph_inputs_are_quantized_in_their_order_whatever_the_hash_seed() -> None:
    # the Q/DQ pairs of the graph inputs were placed in the order of a set of their names
    src = str(Path(__file__).resolve().parents[2] / "src")
    digests = set()
    for seed in ("0", "1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed,
                   PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
        out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        digests.add(out[-1])
    assert len(digests) == 1
