"""Import a PyTorch eager-mode quantized Conv/Linear module's parameters into lowp's terms.

torch is optional: it is imported only when a function here needs it, with a clear error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import LowpError
from ..ops.layout import Layout
from ..targets import EXACT, Target
from . import engines
from .agreement import real_outputs
from .engines import LayerQParams

_CONV_TYPES = ("Conv1d", "Conv2d", "Conv3d", "ConvReLU1d", "ConvReLU2d", "ConvReLU3d")
_LINEAR_TYPES = ("Linear", "LinearReLU")


class LayerKind(enum.Enum):
    CONV = "conv"
    LINEAR = "linear"


def require_torch() -> ModuleType:
    """Import torch, or raise a LowpError that says how to install it."""
    try:
        import torch
    except ImportError:
        raise LowpError("this needs PyTorch, which is not installed: pip install torch") from None
    return torch


@dataclass(frozen=True, eq=False)
class TorchLayer:
    """A quantized PyTorch Conv1d/2d/3d or Linear (optionally with fused ReLU) as plain data.

    Weights are int8 in ONNX layout ((M, C / group, *kernel) for conv, (out, in) for linear);
    the bias is float32 as PyTorch keeps it; `pads` are in ONNX order (begins, then ends).
    """

    kind: LayerKind
    weight: np.ndarray
    w_scale: np.ndarray
    w_zero_point: np.ndarray
    bias: np.ndarray | None
    y_scale: float
    y_zero_point: int
    relu: bool
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    group: int = 1

    def qparams(self, x_scale: float, x_zero_point: int) -> LayerQParams:
        """The layer's LayerQParams for an input quantized with (x_scale, x_zero_point)."""
        zy = int(self.y_zero_point)
        return LayerQParams(float(np.float32(x_scale)), int(x_zero_point), self.w_scale,
                            self.w_zero_point, float(np.float32(self.y_scale)), zy,
                            zy if self.relu else 0, 255)

    def run(self, x: np.ndarray, x_scale: float, x_zero_point: int,
            target: str | Target) -> np.ndarray:
        """Outputs (uint8) of the layer on quint8 input `x` under `target`'s arithmetic.

        `x` is channels-first for convolutions and (..., in_features) for linear layers.
        """
        q = self.qparams(x_scale, x_zero_point)
        if self.kind is LayerKind.CONV:
            y = engines.conv(x, self.weight, self.bias, q, target, strides=self.strides,
                             pads=self.pads, dilations=self.dilations, group=self.group,
                             layout=Layout.CHANNELS_FIRST)
        else:
            y = engines.matmul(x, self.weight.T, self.bias, q, target)
        return y.astype(np.uint8)

    def real_outputs(self, x: np.ndarray, x_scale: float, x_zero_point: int) -> np.ndarray:
        """The exact real outputs before rounding (lowp.fidelity.agreement.real_outputs)."""
        q = self.qparams(x_scale, x_zero_point)
        if self.kind is LayerKind.CONV:
            r = x.ndim - 2
            acc = engines.accumulate_conv(
                np.asarray(x), self.weight, q, EXACT, strides=list(self.strides or (1,) * r),
                pads=list(self.pads or (0,) * 2 * r), dilations=list(self.dilations or (1,) * r),
                group=self.group)
            return real_outputs(acc, self.bias, q, channel_axis=1)
        acc = engines.accumulate_matmul(np.asarray(x), self.weight.T, q, EXACT)
        return real_outputs(acc, self.bias, q, channel_axis=-1)


def from_torch(module: Any) -> TorchLayer:
    """Read a torch.ao.nn.quantized Conv/Linear (or intrinsic ConvReLU/LinearReLU) module.

    Parameters
    ----------
    module
        A quantized module: its int_repr weights, q_scale / q_zero_point (or per-channel
        scales, zero points along axis 0), float bias, output scale and zero point.

    Returns
    -------
    TorchLayer
    """
    torch = require_torch()
    kind_name = type(module).__name__
    if kind_name not in _CONV_TYPES + _LINEAR_TYPES:
        raise LowpError(f"cannot import a {kind_name}: expected a quantized Conv1d/2d/3d or "
                        "Linear module (optionally with fused ReLU)")
    qw = module.weight()
    w = qw.int_repr().numpy()
    if qw.dtype != torch.qint8:
        raise LowpError(f"{kind_name}: weights of dtype {qw.dtype}, expected torch.qint8")
    if qw.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        w_scale = np.asarray(np.float32(qw.q_scale()))
        w_zp = np.asarray(int(qw.q_zero_point()), np.int64)
    else:
        if int(qw.q_per_channel_axis()) != 0:
            raise LowpError(f"{kind_name}: per-channel weights along axis "
                            f"{qw.q_per_channel_axis()}, expected 0 (output channels)")
        w_scale = qw.q_per_channel_scales().numpy().astype(np.float32)
        w_zp = qw.q_per_channel_zero_points().numpy().astype(np.int64)
    b = module.bias()
    bias = None if b is None else b.detach().numpy().astype(np.float32)
    relu = "ReLU" in kind_name
    common = dict(weight=w, w_scale=w_scale, w_zero_point=w_zp, bias=bias,
                  y_scale=float(module.scale), y_zero_point=int(module.zero_point), relu=relu)
    if kind_name in _LINEAR_TYPES:
        return TorchLayer(LayerKind.LINEAR, **common)  # type: ignore[arg-type]
    if getattr(module, "padding_mode", "zeros") != "zeros":
        raise LowpError(f"{kind_name}: padding_mode '{module.padding_mode}' is not supported")
    padding = module.padding
    if isinstance(padding, str):
        raise LowpError(f"{kind_name}: string padding '{padding}' is not supported")
    return TorchLayer(LayerKind.CONV, strides=tuple(int(s) for s in module.stride),
                      pads=tuple(int(p) for p in padding) * 2,
                      dilations=tuple(int(d) for d in module.dilation),
                      group=int(module.groups), **common)  # type: ignore[arg-type]
