"""Empirical bias correction of the weight quantization error (Nagel et al. 2019, section 4.2).

Quantizing a layer's weight W to Wq shifts its output y = W * x + b by (Wq - W) * x. That
error has a mean per output channel which rounding does not average away: with per-tensor
weights (one scale for channels whose ranges differ by orders of magnitude) a small
channel's weights round to a few levels, and its mean output moves. The error corrected is

    (BC1)  e_c = E[ ((Wq - W) * x)_c ] = E[ y_quant,c - y_float,c ]

for each output channel c of a quantized Conv or Gemm, where both outputs are computed on
the same FLOAT input x (the float model's activation on the calibration data) and y_quant
uses the quantized-dequantized weight and the float bias: the weight-quantization error
only. The error of the activation's own quantization, and what earlier layers' errors do to
x, are not corrected. The bias becomes b - e (before it is quantized at s_x * s_w), so the
quantized layer's mean output on the calibration data equals the float layer's.

(BC1) is linear in x: for a Conv it is the sum over the kernel window of (Wq - W) times the
mean input PATCH, M[ci, k] = E over samples and output positions of the (zero-)padded input
at kernel offset k of channel ci; for a Gemm, M = E over rows of its input. M depends on the
layer's geometry and the data, not on the weights, so it is measured once
(`input_means`, one float pass over the calibration feeds, one feed's activations in
memory at a time, sums in float64) and the correction is applied wherever the weight is
quantized (`choose`), with the weight it is quantized to there: per channel, per tensor,
per group or 16-bit, in every variant the accuracy budget builds.

MatMul has no bias input, and its bias Add is a separate (quantized) operator: MatMul layers
are not corrected. A Conv or Gemm without a bias gets a zero one first (`with_zero_biases`,
which keeps the float function).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import QuantizationError
from ..inputs import InputSpec
from ..ir.graph import Graph, attributes
from ..ir.names import NameAllocator
from .annotate import Annotation
from .calibrate import _run, expose_tensors, float_session

CORRECTED_OPS = ("Conv", "Gemm")


def with_zero_biases(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` in which every float Conv and plain Gemm (alpha = beta = 1) with a
    constant weight and no bias has a zero bias (same function), for the correction."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = Graph(out)
    names = NameAllocator.for_model(out)
    for node in out.graph.node:
        if node.op_type not in CORRECTED_OPS or len(node.input) < 2:
            continue
        if len(node.input) > 2 and node.input[2]:
            continue
        if node.input[1] not in graph.initializers:
            continue
        w = graph.constant(node.input[1])
        if w.dtype != np.float32 or w.ndim < 2:
            continue
        a = attributes(node)
        if node.op_type == "Gemm":
            if float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:  # type: ignore[arg-type]
                continue
            channels = w.shape[0] if int(a.get("transB", 0)) else w.shape[1]  # type: ignore[call-overload]
        else:
            channels = w.shape[0]
        name = names.fresh(f"{node.input[1]}_bias")
        out.graph.initializer.append(numpy_helper.from_array(
            np.zeros(channels, np.float32), name))
        while len(node.input) < 2:
            node.input.append("")
        if len(node.input) == 2:
            node.input.append(name)
        else:
            node.input[2] = name
    return out


def input_means(model: onnx.ModelProto, ann: Annotation,
                feeds: Iterable[Mapping[str, np.ndarray]], inputs: list[InputSpec], *,
                progress: bool = False) -> dict[str, np.ndarray]:
    """The mean input patch M of every biased Conv / Gemm the annotation quantizes, keyed by
    node name: Conv (C_in, *kernel), Gemm (K,). One pass of the float model over `feeds`."""
    graph = Graph(model)
    biased = {spec.node for spec in ann.biases.values()}
    nodes = [n for n in model.graph.node
             if n.name in biased and n.op_type in CORRECTED_OPS and n.input[1] in ann.weights]
    if not nodes:
        return {}
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = dict.fromkeys((n.name for n in nodes), 0)
    tensors = list(dict.fromkeys(n.input[0] for n in nodes))
    fed = {i.name for i in inputs}
    session = float_session(expose_tensors(model, [t for t in tensors if t not in fed]),
                            mem_pattern=False)
    for observed in _run(session, tensors, feeds, inputs, progress, "bias correction means"):
        for node in nodes:
            x = np.asarray(observed[node.input[0]])
            if node.op_type == "Conv":
                total, count = _conv_patch_sum(x, node, graph.constant(node.input[1]).shape)
            else:
                total, count = _gemm_row_sum(x, node)
            sums[node.name] = sums[node.name] + total if node.name in sums else total
            counts[node.name] += count
    return {name: (sums[name] / counts[name]).astype(np.float64)
            for name in sums if counts[name] > 0}


def weight_error_mean(node: onnx.NodeProto, w_float: np.ndarray, w_quant: np.ndarray,
                      mean: np.ndarray) -> np.ndarray:
    """(BC1) per output channel: E[y_quant - y_float] of `node` with weight `w_quant` in
    place of `w_float`, on inputs whose mean patch is `mean` (from `input_means`).

    Examples
    --------
    A Gemm whose input has mean [1, 2] and whose only weight error is +0.5 on (k=1, n=0):
    channel 0's output is 0.5 * 2 = 1.0 higher on average.

    >>> import onnx
    >>> node = onnx.helper.make_node("Gemm", ["x", "w", "b"], ["y"])
    >>> w = np.zeros((2, 3), np.float32); wq = w.copy(); wq[1, 0] = 0.5
    >>> weight_error_mean(node, w, wq, np.array([1.0, 2.0]))
    array([1., 0., 0.])
    """
    dw = w_quant.astype(np.float64) - w_float.astype(np.float64)
    if node.op_type == "Gemm":
        if int(attributes(node).get("transB", 0)):  # type: ignore[call-overload]
            dw = dw.T
        if mean.shape != (dw.shape[0],):
            raise QuantizationError(f"node '{node.name}': mean input of shape {mean.shape} "
                                    f"for a weight of shape {w_float.shape}")
        return np.asarray(mean @ dw)
    groups = int(attributes(node).get("group", 1))  # type: ignore[call-overload]
    cout, cpg = dw.shape[0], dw.shape[1]
    if mean.shape != (cpg * groups, *dw.shape[2:]):
        raise QuantizationError(f"node '{node.name}': mean input patch of shape {mean.shape} "
                                f"for a weight of shape {w_float.shape}")
    d = dw.reshape(groups, cout // groups, cpg, -1)
    m = mean.reshape(groups, cpg, -1)
    return np.einsum("gock,gck->go", d, m).reshape(cout)


def _gemm_row_sum(x: np.ndarray, node: onnx.NodeProto) -> tuple[np.ndarray, int]:
    a = x.astype(np.float64)                 # Gemm's input is a matrix
    if int(attributes(node).get("transA", 0)):  # type: ignore[call-overload]
        a = a.T
    return a.sum(axis=0), a.shape[0]


def _conv_patch_sum(x: np.ndarray, node: onnx.NodeProto,
                    w_shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Sum over samples and output positions of the padded input at each kernel offset:
    (C_in, *kernel), and the number of (sample, position) terms."""
    a = attributes(node)
    spatial = x.shape[2:]
    n = len(spatial)
    kernel = tuple(w_shape[2:])
    strides = list(a.get("strides", [1] * n))  # type: ignore[call-overload]
    dilations = list(a.get("dilations", [1] * n))  # type: ignore[call-overload]
    pads = _pads(a, spatial, kernel, strides, dilations)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0),
                                       *((pads[i], pads[i + n]) for i in range(n))])
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    out = [(xp.shape[2 + i] - extent[i]) // strides[i] + 1 for i in range(n)]
    if min(out, default=1) <= 0:
        return np.zeros((x.shape[1], *kernel)), 0
    total = np.empty((x.shape[1], *kernel))
    for offset in itertools.product(*(range(k) for k in kernel)):
        window: tuple[slice, ...] = tuple(
            slice(o * d, o * d + (m - 1) * s + 1, s)
            for o, d, m, s in zip(offset, dilations, out, strides, strict=True))
        total[(slice(None),) + tuple(offset)] = xp[(slice(None), slice(None)) + window].sum(
            axis=(0, *range(2, 2 + n)))
    return total, x.shape[0] * int(np.prod(out))


def _pads(a: Mapping[str, object], spatial: tuple[int, ...], kernel: tuple[int, ...],
          strides: list[int], dilations: list[int]) -> list[int]:
    """Begin and end pads (ONNX order) of a Conv, auto_pad resolved."""
    n = len(spatial)
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", b"NOTSET"):
        return list(a.get("pads", [0] * (2 * n)))  # type: ignore[call-overload]
    if auto == "VALID":
        return [0] * (2 * n)
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
        small = total // 2
        begin.append(small if auto == "SAME_UPPER" else total - small)
        end.append(total - begin[-1])
    return begin + end
