"""Build and run PyTorch quantized Conv/Linear modules: the peer the engine models match."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lowp.fidelity.engine_check import torch_module  # noqa: E402
from lowp.fidelity.torch_import import LayerKind, TorchLayer  # noqa: E402

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



def build_module(case: TorchCase) -> Any:
    """The torch.ao quantized module holding the case's parameters."""
    kind = LayerKind.LINEAR if case.rank == 0 else LayerKind.CONV
    return torch_module(TorchLayer(
        kind, weight=case.w, w_scale=np.asarray(case.w_scale, F32),
        w_zero_point=np.asarray(case.w_zero_point, np.int64), bias=case.bias,
        y_scale=float(case.y_scale), y_zero_point=int(case.y_zero_point), relu=case.relu,
        strides=tuple(case.stride), pads=tuple(case.padding) * 2,
        dilations=tuple(case.dilation), group=case.groups))


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
