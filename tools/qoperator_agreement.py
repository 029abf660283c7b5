"""lowp's engine vs ONNX Runtime on single QOperator nodes with random qparams.

    python tools/qoperator_agreement.py [--trials 40] [--seed 0]

For each quantized operator (QLinearConv dense / grouped / depthwise, QLinearMatMul, QGemm
with integer and float output, and the com.microsoft element-wise, pooling, Concat and
Softmax nodes), uint8 and int8, `--trials` models of one node with random scales and zero
points run on random codes through `lowp.Session` (which reads the node in its QDQ form,
lowp.formats) and ONNX Runtime (one thread). Prints elements compared, how many differ and
the largest difference per operator and type (docs/formats.md quotes the result).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.formats.single_node import MS, codes, init, onnx_type, run_both  # noqa: E402

Case = tuple[onnx.NodeProto, list[onnx.TensorProto], dict[str, np.ndarray], int]


def _scale(rng: np.random.Generator) -> np.float32:
    return np.float32(np.exp(rng.uniform(-6, 0)))


def _zero(rng: np.random.Generator, dtype: type) -> object:
    info = np.iinfo(dtype)
    return dtype(rng.integers(info.min, info.max + 1))


def _unary(op: str, **attrs: object) -> Callable[[np.random.Generator, type], Case]:
    def make(rng: np.random.Generator, dtype: type) -> Case:
        inits = [init("sx", _scale(rng)), init("zx", _zero(rng, dtype)),
                 init("sy", _scale(rng)), init("zy", _zero(rng, dtype))]
        node = helper.make_node(op, ["x", "sx", "zx", "sy", "zy"], ["y"], domain=MS, **attrs)
        return node, inits, {"x": codes(rng, dtype, (4, 16, 32, 32))}, onnx_type(dtype)
    return make


def _binary(op: str) -> Callable[[np.random.Generator, type], Case]:
    def make(rng: np.random.Generator, dtype: type) -> Case:
        inits = [init(f"{p}{n}", _scale(rng) if p == "s" else _zero(rng, dtype))
                 for n in "xby" for p in "sz"]
        ins = (["sy", "zy", "x", "sx", "zx", "b", "sb", "zb"] if op == "QLinearConcat"
               else ["x", "sx", "zx", "b", "sb", "zb", "sy", "zy"])
        node = helper.make_node(op, ins, ["y"], domain=MS,
                                **({"axis": 1} if op == "QLinearConcat" else {}))
        feeds = {"x": codes(rng, dtype, (4, 16, 32, 32)), "b": codes(rng, dtype,
                                                                       (4, 16, 32, 32))}
        return node, inits, feeds, onnx_type(dtype)
    return make


def _softmax(rng: np.random.Generator, dtype: type) -> Case:
    inits = [init("sx", _scale(rng)), init("zx", _zero(rng, dtype)),
             init("sy", np.float32(1 / 256 if dtype is np.uint8 else 1 / 128)),
             init("zy", dtype(0))]
    node = helper.make_node("QLinearSoftmax", ["x", "sx", "zx", "sy", "zy"], ["y"], domain=MS,
                            axis=-1, opset=17)
    return node, inits, {"x": codes(rng, dtype, (4, 16, 32, 32))}, onnx_type(dtype)


def _conv(group: int, dilation: int, stride: int) -> Callable[[np.random.Generator, type], Case]:
    def make(rng: np.random.Generator, dtype: type) -> Case:
        per_channel = bool(rng.integers(2))
        w = rng.integers(-127, 128, (16, 16 // group, 3, 3)).astype(np.int8)
        sw = rng.uniform(0.001, 0.01, 16 if per_channel else ()).astype(np.float32)
        x = codes(rng, dtype, (2, 16, 20, 20))
        zx = dtype(rng.integers(-20, 20) + (128 if dtype is np.uint8 else 0))
        acc = np.sqrt(16 // group * 9 * np.mean((x - np.float64(zx)) ** 2) * np.mean(
            w.astype(np.float64) ** 2))
        sx = np.float32(0.02)
        inits = [init("sx", sx), init("zx", zx), init("w", w), init("sw", sw),
                 init("zw", np.zeros(sw.shape, np.int8)),
                 init("sy", np.float32(6 * acc * sx * float(np.mean(sw)) / 255)),
                 init("zy", _zero(rng, dtype)),
                 init("b", rng.integers(-2000, 2000, 16).astype(np.int32))]
        node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy",
                                                "b"], ["y"], group=group,
                                dilations=[dilation] * 2, strides=[stride] * 2,
                                pads=[1, 1, 1, 1])
        return node, inits, {"x": x}, onnx_type(dtype)
    return make


def _gemm(form: str) -> Callable[[np.random.Generator, type], Case]:
    def make(rng: np.random.Generator, dtype: type) -> Case:
        trans_b, alpha = int(rng.integers(2)), float(rng.choice([1.0, 0.5]))
        w = rng.integers(-127, 128, (32, 12)).astype(np.int8)
        sw = rng.uniform(0.001, 0.01, 12 if rng.integers(2) else ()).astype(np.float32)
        sx, zx = np.float32(0.02), _zero(rng, dtype)
        x = codes(rng, dtype, (3, 7, 32) if form == "QLinearMatMul" else (7, 32))
        acc = np.sqrt(32 * np.mean((x - np.float64(zx)) ** 2) * np.mean(
            w.astype(np.float64) ** 2))
        inits = [init("sx", sx), init("zx", zx), init("sw", sw),
                 init("zw", np.zeros(sw.shape, np.int8)),
                 init("c", rng.integers(-2000, 2000, 12).astype(np.int32)),
                 init("sy", np.float32(6 * alpha * acc * sx * float(np.mean(sw)) / 255)),
                 init("zy", _zero(rng, dtype))]
        out_type = onnx_type(dtype)
        if form == "QLinearMatMul":
            inits.append(init("w", w))
            node = helper.make_node(form, ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["y"])
            return node, inits, {"x": x}, out_type
        inits.append(init("w", w.T.copy() if trans_b else w))
        ins = ["x", "sx", "zx", "w", "sw", "zw", "c", "sy", "zy"]
        if form == "QGemm-float":
            ins, out_type = ins[:7], onnx.TensorProto.FLOAT
        node = helper.make_node("QGemm", ins, ["y"], domain=MS, transB=trans_b, alpha=alpha)
        return node, inits, {"x": x}, out_type
    return make


CASES: dict[str, Callable[[np.random.Generator, type], Case]] = {
    "QLinearConv": _conv(1, 1, 1), "QLinearConv grouped s2": _conv(4, 1, 2),
    "QLinearConv depthwise d2": _conv(16, 2, 1), "QLinearMatMul": _gemm("QLinearMatMul"),
    "QGemm": _gemm("QGemm"), "QGemm float out": _gemm("QGemm-float"),
    "QLinearAdd": _binary("QLinearAdd"), "QLinearMul": _binary("QLinearMul"),
    "QLinearConcat": _binary("QLinearConcat"), "QLinearSigmoid": _unary("QLinearSigmoid"),
    "QLinearLeakyRelu": _unary("QLinearLeakyRelu", alpha=0.13),
    "QLinearAveragePool": _unary("QLinearAveragePool", kernel_shape=[3, 3],
                                 pads=[1, 1, 1, 1]),
    "QLinearAveragePool cip s2": _unary("QLinearAveragePool", kernel_shape=[3, 3],
                                        pads=[1, 1, 1, 1], strides=[2, 2],
                                        count_include_pad=1),
    "QLinearAveragePool whole": _unary("QLinearAveragePool", kernel_shape=[32, 32]),
    "QLinearGlobalAveragePool": _unary("QLinearGlobalAveragePool", channels_last=0),
    "QLinearSoftmax": _softmax,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'operator':28s} {'type':6s} {'elements':>10s} {'differ':>7s} {'max':>9s}")
    for name, make in CASES.items():
        for dtype in (np.uint8, np.int8):
            rng = np.random.default_rng(args.seed)
            n = differ = 0
            worst = 0.0
            for _ in range(args.trials):
                got, want = run_both(*make(rng, dtype))
                d = np.abs(got.astype(np.float64) - want.astype(np.float64))
                n, differ = n + d.size, differ + int(np.count_nonzero(d))
                worst = max(worst, float(d.max()))
            print(f"{name:28s} {np.dtype(dtype).name:6s} {n:10d} {differ:7d} {worst:9.3g}")


if __name__ == "__main__":
    main()
