"""Reproducer: float depthwise Convs where a NaN weight meets a NaN input in one tap, on
lowp's Session (both backends) against ONNX Runtime, bit for bit (repro item 297).

    python evals/corpus/repro/depthwise_nan_taps.py [--widths 40]

Channel t of k * k has a NaN weight at tap t only; batch s has, in channel t, NaN inputs of
distinct payloads every k columns from column s in every k-th row from kernel row t // k:
each chain meets one NaN pair per row. Kernels 3, 5 and 7, padded by k // 2 and not, rows
of 1 to --widths columns (every tile count of MLAS's sliding kernel, masked and not).
Printed: the runs apart and their outputs apart, then the counts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from tests.runtime.test_nchwc_conv import nan_taps_case  # noqa: E402


def model(w: np.ndarray, shape: tuple[int, ...], pad: int) -> bytes:
    k = w.shape[2]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[k, k], pads=[pad] * 4,
                          group=w.shape[0])], "g",
        [helper.make_tensor_value_info("x", 1, list(shape))],
        [helper.make_tensor_value_info("y", 1, None)], [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]
                             ).SerializeToString()


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from lowp import Session

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", type=int, default=40)
    args = p.parse_args(argv)
    runs = apart = outputs = 0
    for k in (3, 5, 7):
        for pad in (k // 2, 0):
            for wd in range(max(1, k - 2 * pad), args.widths + 1):
                x, w = nan_taps_case(k, k + 2, wd)
                data = model(w, x.shape, pad)
                want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
                    None, {"x": x})[0].view(np.uint32)
                for backend in ("reference", "native"):
                    got = Session(data, backend=backend).run({"x": x})["y"].view(np.uint32)
                    n = int((got != want).sum())
                    runs += 1
                    apart += n > 0
                    outputs += n
                    if n:
                        print(f"{k}x{k} pad {pad} width {wd} {backend}: {n} apart")
    print(f"runs apart: {apart} of {runs} ({outputs} outputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
