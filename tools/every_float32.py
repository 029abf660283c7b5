"""lowp's engine vs ONNX Runtime on every float32 bit pattern, for one-input float operators.

    python tools/every_float32.py Atan Erf Sigmoid [--chunks 256] [--isa amx] [--opset 17]

Each operator is a one-node float model over a vector of 2**24 elements. The 2**32 bit
patterns are fed in `--chunks` consecutive blocks of 2**24 (256 blocks: every pattern,
NaNs and infinities included; fewer: the first blocks only) to `lowp.Session` and ONNX
Runtime (one thread each), and the outputs are compared bit for bit, NaN payloads and the
sign of zero included. Prints per operator the patterns compared, how many differ and up to
three of them (input, ONNX Runtime's bits, lowp's bits); exits 1 if any differs.

The block length is a multiple of 64, so every element is on the kernels' main vector loop:
the tail and head handling is covered by the unit tests over odd lengths.
`--isa` forces lowp's instruction-set path (LOWP_ISA) for the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from tqdm import tqdm

BLOCK = 1 << 24


def one_node_model(op: str, opset: int) -> onnx.ModelProto:
    vec = [BLOCK]
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])], op.lower(),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, vec)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, vec)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def sweep(op: str, chunks: int, opset: int, folder: Path) -> int:
    """Differing patterns of `op` over the first `chunks` blocks."""
    import onnxruntime as ort

    import lowp

    path = folder / f"{op}.onnx"
    onnx.save(one_node_model(op, opset), path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    reference = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session = lowp.Session(str(path), threads=1)
    differing = 0
    shown: list[str] = []
    for c in tqdm(range(chunks), desc=op, unit="block", leave=False):
        bits = np.arange(c * BLOCK, (c + 1) * BLOCK, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        want = reference.run(None, {"x": x})[0].view(np.uint32)
        got = session.run({"x": x})["y"].view(np.uint32)
        apart = np.flatnonzero(want != got)
        differing += len(apart)
        for i in apart[:max(0, 3 - len(shown))]:
            shown.append(f"x=0x{bits[i]:08x} ({x[i]!r}): ONNX Runtime 0x{want[i]:08x}, "
                         f"lowp 0x{got[i]:08x}")
    print(f"{op}: {chunks * BLOCK:,} patterns, {differing:,} differ")
    for line in shown:
        print(f"  {line}")
    return differing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ops", nargs="+", help="ONNX operator names (one float input)")
    parser.add_argument("--chunks", type=int, default=256,
                        help=f"blocks of {BLOCK:,} patterns (256 = all)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--isa", help="force lowp's instruction-set path (LOWP_ISA)")
    args = parser.parse_args()
    if not 1 <= args.chunks <= 256:
        parser.error("--chunks must be 1..256")
    if args.isa:
        os.environ["LOWP_ISA"] = args.isa
    with tempfile.TemporaryDirectory() as folder:
        total = sum(sweep(op, args.chunks, args.opset, Path(folder)) for op in args.ops)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
