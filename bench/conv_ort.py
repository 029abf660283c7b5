"""One int8 convolution layer: lowp's NativeConv against ONNX Runtime's channels-last
QLinearConv (com.microsoft, channels_last=1), interleaved, thread CPU time, 1 thread.

Both engines read the same NHWC uint8 input and weights (ONNX Runtime's standard-domain
QLinearConv would add NCHW <-> NHWC transposes around a lone node, which a whole model does
not have between its convolutions). Rounds alternate lowp and ONNX Runtime; each run is
timed with `time.thread_time`, so the ratio holds on a loaded machine. GOPS (2 ops per MAC)
are from the fastest run of each. The outputs are compared first (`maxdiff`, 0 expected).

    python bench/conv_ort.py [CASE ...] [--paths avx512vnni avx2 ...] [--rounds 30]

A CASE is a name below or `N,H,W,C,M,KH,KW,STRIDE,PAD[,DILATION]` (e.g. 1,52,52,96,96,3,3,1,1;
1,160,160,64,128,3,3,1,24,24 is craft_refiner's fourth ASPP branch).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from lowp.fixedpoint import Requant, requant_scale
from lowp.runtime import native_backend
from lowp.runtime.native_backend import NativeConv

X_SCALE, X_ZP, W_SCALE = 0.02, 128, 0.004

# name: (N, H, W, C, M, KH, KW, stride, pad)
CASES: dict[str, tuple[int, ...]] = {
    "magika": (8, 512, 1, 256, 512, 5, 1, 1, 0),      # its one Conv (K = 1280 bytes)
    "r18-64": (1, 56, 56, 64, 64, 3, 3, 1, 1),
    "r18-128": (1, 28, 28, 128, 128, 3, 3, 1, 1),
    "r18-256": (1, 14, 14, 256, 256, 3, 3, 1, 1),
    "r18-512": (1, 7, 7, 512, 512, 3, 3, 1, 1),
    "r18-stem": (1, 224, 224, 3, 64, 7, 7, 2, 3),
    "1x1-256-64": (1, 56, 56, 256, 64, 1, 1, 1, 0),
    "pw-144-24": (1, 56, 56, 144, 24, 1, 1, 1, 0),    # MobileNetV2 projections
    "pw-32-192": (1, 28, 28, 32, 192, 1, 1, 1, 0),    # and expansions
    "pw-160-960": (1, 7, 7, 160, 960, 1, 1, 1, 0),
    "dddd-96": (1, 52, 52, 96, 96, 3, 3, 1, 1),       # ddddocr_det's largest share
}


def build(case: tuple[int, ...], threads: int = 1
          ) -> tuple[Callable[[], object], Callable[[], object], int, int]:
    """lowp and ONNX Runtime runs of one layer, its MAC count and the outputs' max difference."""
    n, h, w_, c, m, kh, kw, s, p, dl = (*case, 1) if len(case) == 9 else case
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, h, w_, c), dtype=np.uint8)
    w = rng.integers(-127, 128, (m, c, kh, kw), dtype=np.int8)
    bias = rng.integers(-2000, 2000, m, dtype=np.int32)
    # about 3 standard deviations of the accumulator over the uint8 range
    y_scale = X_SCALE * W_SCALE * float(np.sqrt(c * kh * kw)) * 127 * 3 / 255
    rq = Requant(requant_scale(X_SCALE, W_SCALE, y_scale), 128, 0, 255)
    op = NativeConv(w, bias, x_zero_point=X_ZP, x_dtype=np.uint8, w_zero_point=0, requant=rq,
                    strides=(s, s), pads=(p, p, p, p), dilations=(dl, dl), threads=threads)
    init = [numpy_helper.from_array(np.array(X_SCALE, np.float32), "xs"),
            numpy_helper.from_array(np.array(X_ZP, np.uint8), "xz"),
            numpy_helper.from_array(np.array(W_SCALE, np.float32), "ws"),
            numpy_helper.from_array(np.array(0, np.int8), "wz"),
            numpy_helper.from_array(np.array(y_scale, np.float32), "ys"),
            numpy_helper.from_array(np.array(128, np.uint8), "yz"),
            numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                            ["y"], domain="com.microsoft", channels_last=1, pads=[p] * 4,
                            strides=[s, s], dilations=[dl, dl])
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.UINT8, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    ours, theirs = op(x), sess.run(None, {"x": x})[0]
    out = np.empty_like(ours)  # a session's arena buffer: NativeConv's steady-state call
    diff = int(np.abs(ours.astype(np.int32) - np.asarray(theirs).astype(np.int32)).max())
    oh, ow = (h + 2 * p - dl * (kh - 1) - 1) // s + 1, (w_ + 2 * p - dl * (kw - 1) - 1) // s + 1
    return ((lambda: op(x, out)), (lambda: sess.run(None, {"x": x})),
            n * oh * ow * m * c * kh * kw, diff)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=list(CASES))
    parser.add_argument("--paths", nargs="+", default=["avx512vnni"])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    for name in args.cases:
        case = CASES[name] if name in CASES else tuple(int(v) for v in name.split(","))
        for path in args.paths:
            with native_backend.use_path(path):
                ours, theirs, macs, diff = build(case)
                for _ in range(3):
                    ours()
                    theirs()
                t_ours: list[float] = []
                t_theirs: list[float] = []
                for _ in range(args.rounds):
                    t = time.thread_time()
                    ours()
                    t_ours.append(time.thread_time() - t)
                    t = time.thread_time()
                    theirs()
                    t_theirs.append(time.thread_time() - t)
            ratio = statistics.median(t_ours) / statistics.median(t_theirs)
            print(f"{name:12s} {path:12s} lowp/ORT {ratio:5.2f} (fastest "
                  f"{min(t_ours) / min(t_theirs):5.2f})  lowp {2e-9 * macs / min(t_ours):4.0f} "
                  f"GOPS  ORT {2e-9 * macs / min(t_theirs):4.0f} GOPS  maxdiff {diff}",
                  flush=True)


if __name__ == "__main__":
    main()
