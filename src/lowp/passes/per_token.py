"""Per-token dynamic quantization written in standard ONNX operators.

QuantizeLinear and DynamicQuantizeLinear take one scale per tensor or per axis, not one per
row of a (batch, sequence, features) activation, so the row quantization (D1)-(D3) is spelled
out with ReduceMin/ReduceMax, Div, Round, Clip and Cast, and the product with MatMulInteger
(D4): ONNX Runtime runs the file as it is (the integer product on its int8 kernels), and
lowp's engine computes the same numbers (lowp.ops.linear.quantize_rows, per_token_matmul).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.names import NameAllocator
from ..qparams import QParams


@dataclass(frozen=True)
class QuantizedRows:
    """Tensor names of one activation quantized row by row."""

    q: str              # uint8, the activation's shape
    scale: str          # float32, last axis 1
    zero_point: str     # float32 (integer values), last axis 1


class PerTokenBuilder:
    """Emits the nodes and initializers of per-token quantized matrix products."""

    def __init__(self, names: NameAllocator, opset: int) -> None:
        self.names = names
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._constants: dict[str, str] = {}

    def _constant(self, key: str, value: np.ndarray) -> str:
        if key not in self._constants:
            name = self.names.fresh(f"per_token_{key}")
            self.initializers.append(numpy_helper.from_array(value, name))
            self._constants[key] = name
        return self._constants[key]

    def _node(self, op: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.names.fresh(hint)
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.names.fresh(
            f"{hint}_{op}"), **attrs))
        return out

    def _reduce(self, op: str, x: str, hint: str) -> str:
        if self.opset >= 18:
            axes = self._constant("axes", np.array([-1], np.int64))
            return self._node(op, [x, axes], hint, keepdims=1)
        return self._node(op, [x], hint, axes=[-1], keepdims=1)

    def quantize_rows(self, x: str) -> QuantizedRows:
        """(D1)-(D3) on each row of `x`."""
        zero = self._constant("zero", np.array(0.0, np.float32))
        top = self._constant("qmax", np.array(255.0, np.float32))
        tiny = self._constant("tiny", np.array(np.finfo(np.float32).tiny, np.float32))
        lo = self._node("Min", [self._reduce("ReduceMin", x, f"{x}_row_min"), zero],
                        f"{x}_row_lo")
        hi = self._node("Max", [self._reduce("ReduceMax", x, f"{x}_row_max"), zero],
                        f"{x}_row_hi")
        span = self._node("Max", [self._node("Sub", [hi, lo], f"{x}_row_span"), tiny],
                          f"{x}_row_range")
        scale = self._node("Div", [span, top], f"{x}_row_scale")
        zp = self._node("Clip", [self._node("Round", [self._node("Div", [
            self._node("Neg", [lo], f"{x}_row_neg_lo"), scale], f"{x}_row_zp_real")],
            f"{x}_row_zp_rounded"), zero, top], f"{x}_row_zero_point")
        scaled = self._node("Round", [self._node("Div", [x, scale], f"{x}_row_scaled")],
                            f"{x}_row_rounded")
        shifted = self._node("Clip", [self._node("Add", [scaled, zp], f"{x}_row_shifted"),
                                      zero, top], f"{x}_row_clipped")
        q = self._node("Cast", [shifted], f"{x}_row_quantized", to=TensorProto.UINT8)
        return QuantizedRows(q, scale, zp)

    def matmul(self, rows: QuantizedRows, w_q: np.ndarray, w_qp: QParams, output: str,
               bias: str | None) -> None:
        """(D4): `output` = x @ dequantize(w_q) [+ bias] with x quantized as `rows`.

        `w_q` is (K, N); its scale and zero point are per tensor or per column.
        """
        key = self.names.fresh(f"{output}_weight")
        w = self._constant(f"{key}_quantized", w_q)
        zw = np.asarray(w_qp.zero_point).astype(w_q.dtype)
        inputs = [rows.q, w]
        if np.any(zw != 0):
            inputs += ["", self._constant(f"{key}_zero_point", zw)]
        acc = self._node("MatMulInteger", inputs, f"{output}_acc")
        # (q - zp) (w - zw) = q (w - zw) - zp * column sums of (w - zw)
        col = (w_q.astype(np.int64) - zw.astype(np.int64)).sum(axis=0).astype(np.int32)
        zp_int = self._node("Cast", [rows.zero_point], f"{output}_zp_int", to=TensorProto.INT32)
        correction = self._node("Mul", [zp_int, self._constant(f"{key}_column_sums", col)],
                                f"{output}_zp_correction")
        exact = self._node("Sub", [acc, correction], f"{output}_acc_exact")
        scale = self._node("Mul", [rows.scale, self._constant(
            f"{key}_scale", np.asarray(w_qp.scale, np.float32))], f"{output}_scale")
        real = self._node("Cast", [exact], f"{output}_acc_float", to=TensorProto.FLOAT)
        if bias is None:
            self.nodes.append(helper.make_node("Mul", [real, scale], [output],
                                               name=self.names.fresh(f"{output}_Mul")))
            return
        y = self._node("Mul", [real, scale], f"{output}_unbiased")
        self.nodes.append(helper.make_node("Add", [y, bias], [output],
                                           name=self.names.fresh(f"{output}_Add")))
