"""Build and run PyTorch quantized Conv/Linear modules: the peer the engine models match."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nnq = pytest.importorskip("torch.ao.nn.quantized")
nniq = pytest.importorskip("torch.ao.nn.intrinsic.quantized")

F32 = np.float32
ENGINES = [e for e in ("x86", "fbgemm", "onednn", "qnnpack")
           if e in torch.backends.quantized.supported_engines]


@dataclass(frozen=True)
class TorchCase:
    """One quantized layer and its input, in PyTorch terms."""

    rank: int                      # 0 for Linear
    x: np.ndarray                  # uint8
    x_scale: float
    x_zero_point: int
    w: np.ndarray                  # int8, (M, C/g, *k) or (out, in)
    w_scale: np.ndarray            # 0-d or (M,)
    w_zero_point: np.ndarray       # 0-d or (M,)
    bias: np.ndarray | None
    y_scale: float
    y_zero_point: int
    relu: bool
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1


_CONV = {1: (nnq.Conv1d, nniq.ConvReLU1d), 2: (nnq.Conv2d, nniq.ConvReLU2d),
         3: (nnq.Conv3d, nniq.ConvReLU3d)}


def build_module(case: TorchCase) -> Any:
    """The torch.ao quantized module holding the case's parameters."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.rank == 0:
            cls = nniq.LinearReLU if case.relu else nnq.Linear
            m = cls(case.w.shape[1], case.w.shape[0])
        else:
            cls = _CONV[case.rank][1 if case.relu else 0]
            m = cls(case.w.shape[1] * case.groups, case.w.shape[0], case.w.shape[2:],
                    stride=case.stride, padding=case.padding, dilation=case.dilation,
                    groups=case.groups)
        wt = torch.from_numpy(case.w)
        if case.w_scale.ndim:
            qw = torch._make_per_channel_quantized_tensor(
                wt, torch.from_numpy(case.w_scale.astype(np.float64)),
                torch.from_numpy(case.w_zero_point.astype(np.int64)), 0)
        else:
            qw = torch._make_per_tensor_quantized_tensor(wt, float(case.w_scale),
                                                         int(case.w_zero_point))
        bias = None if case.bias is None else torch.from_numpy(case.bias)
        m.set_weight_bias(qw, bias)
        m.scale = float(case.y_scale)
        m.zero_point = int(case.y_zero_point)
    return m


def run_torch(case: TorchCase, engine: str) -> np.ndarray:
    """The layer's uint8 output computed by PyTorch under quantized engine `engine`."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        m = build_module(case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qx = torch._make_per_tensor_quantized_tensor(torch.from_numpy(case.x),
                                                         float(case.x_scale),
                                                         int(case.x_zero_point))
            return m(qx).int_repr().numpy()
    finally:
        torch.backends.quantized.engine = previous
