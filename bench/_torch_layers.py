"""PyTorch's quantized engines (onednn, x86, fbgemm, qnnpack) on one int8 layer, for the
side-by-side layer benchmark.

The layer is built from the same integer weights, bias and scales as lowp's and ONNX
Runtime's models: quint8 input (scale, zero point), per-tensor qint8 weights with zero point
0, a float bias of `bias * x_scale * w_scale` (PyTorch quantizes it itself), quint8 output.
Convolution inputs are channels-last (`torch.channels_last`): the layout oneDNN's int8 kernels
want, so the figure is not a transpose's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def available_engines() -> list[str]:
    """PyTorch's quantized engines on this machine ([] without torch)."""
    try:
        import torch
    except ImportError:
        return []
    return [e for e in torch.backends.quantized.supported_engines if e != "none"]


def layer(engine: str, x: np.ndarray, w: np.ndarray, bias: np.ndarray, *, linear: bool,
          x_scale: float, x_zp: int, w_scale: float, y_scale: float, y_zp: int,
          strides: tuple[int, ...] = (), pads: tuple[int, ...] = (), group: int = 1,
          threads: int = 1) -> tuple[Callable[[], object], np.ndarray]:
    """A callable that runs the layer once on `x` with `engine`, and its output.

    `x` is uint8 NCHW-style (N, C, *spatial), or (M, K) for a linear layer whose `w` is
    (K, N); conv weights are ONNX (M, C / group, *kernel) with symmetric `pads`. The output
    is returned channels-last for convolutions (lowp's layout), (M, N) for linear layers.
    """
    import torch
    from torch.ao.nn import quantized as nnq

    torch.backends.quantized.engine = engine
    torch.set_num_threads(threads)
    xt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(x), x_scale, x_zp)
    bias_f = torch.from_numpy(bias.astype(np.float32) * np.float32(x_scale * w_scale))
    if linear:
        k, n = w.shape
        mod = nnq.Linear(k, n)
        wq = torch._make_per_tensor_quantized_tensor(
            torch.from_numpy(np.ascontiguousarray(w.T)), w_scale, 0)
    else:
        rank = w.ndim - 2
        conv_cls = {1: nnq.Conv1d, 2: nnq.Conv2d, 3: nnq.Conv3d}[rank]
        if tuple(pads[:rank]) != tuple(pads[rank:]):
            raise ValueError(f"PyTorch convolutions take symmetric pads, got {pads}")
        mod = conv_cls(w.shape[1] * group, w.shape[0], tuple(w.shape[2:]), stride=strides,
                       padding=tuple(pads[:rank]), groups=group)
        wq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(w), w_scale, 0)
        if rank in (2, 3):
            fmt = torch.channels_last if rank == 2 else torch.channels_last_3d
            xt = xt.contiguous(memory_format=fmt)
    mod.set_weight_bias(wq, bias_f)
    mod.scale, mod.zero_point = float(y_scale), int(y_zp)

    def run() -> object:
        with torch.inference_mode():
            return mod(xt)

    y = run().int_repr()  # type: ignore[attr-defined]
    out = y.numpy() if linear else np.moveaxis(y.numpy(), 1, -1)
    return run, np.ascontiguousarray(out)
