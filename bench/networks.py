"""Full-size benchmark networks (ResNet-18, MobileNetV2) defined in torch and exported to ONNX.

Random weights with realistic batch-norm statistics: latency does not depend on the values,
and the int8 model still has realistic activation ranges.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np


def _torch():
    import torch
    from torch import nn
    return torch, nn


def resnet18():
    torch, nn = _torch()

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers)


def mobilenet_v2():
    torch, nn = _torch()

    def cbr(cin: int, cout: int, k: int, s: int, groups: int = 1, act: bool = True):
        mods = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout)]
        if act:
            mods.append(nn.ReLU6())
        return mods

    class Inverted(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            mods = [] if expand == 1 else cbr(cin, hidden, 1, 1)
            mods += cbr(hidden, hidden, 3, stride, groups=hidden)
            mods += cbr(hidden, cout, 1, 1, act=False)
            self.body = nn.Sequential(*mods)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    layers = cbr(3, 32, 3, 2)
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            layers.append(Inverted(cin, c, s if i == 0 else 1, t))
            cin = c
    layers += cbr(cin, 1280, 1, 1)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers)


NETWORKS = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}


def build(name: str, size: int = 224):
    """Network `name` in eval mode, its weights and batch-norm statistics fixed by seed 0."""
    torch, _ = _torch()
    torch.manual_seed(0)
    model = NETWORKS[name]()
    model.train()
    with torch.no_grad():
        for _ in range(3):                       # realistic batch-norm statistics
            model(torch.randn(8, 3, size, size))
    return model.eval()


def quantize_torch(name: str, engine: str, size: int = 224):
    """Network `name` quantized by PyTorch (FX graph mode, the engine's default qconfig
    mapping), calibrated on the same 8 inputs as lowp's model; runs on `engine`."""
    torch, _ = _torch()
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = engine
    example = (torch.randn(1, 3, size, size),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(build(name, size), get_default_qconfig_mapping(engine), example)
        with torch.no_grad():
            prepared(torch.from_numpy(calibration_data(8, size)["input"]))
        return convert_fx(prepared)


def export(name: str, directory: str | os.PathLike[str], size: int = 224) -> Path:
    """Export network `name` (cached by file name) and return the .onnx path."""
    path = Path(directory) / f"{name}_{size}.onnx"
    if path.exists():
        return path
    torch, _ = _torch()
    model = build(name, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, size, size),), str(path),
                          input_names=["input"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          dynamo=False)
    return path


def calibration_data(n: int = 16, size: int = 224, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"input": rng.standard_normal((n, 3, size, size)).astype(np.float32)}
