"""Small seeded PyTorch models exported to float ONNX (opset 17) for quantization tests.

Each builder takes a directory, writes ``<name>.onnx`` there and returns the path together
with a feed ``{input name: float32 array}`` of ``n_samples`` calibration samples::

    path, feed = mobilenet_v2_style(tmp_path)

Weights are random but seeded; every BatchNorm gets random affine parameters and running
statistics measured on random data in train mode before export in eval mode, so BN folding
sees realistic values. All models have a dynamic batch dimension (``batch``) on every
input and output.

Export: the TorchScript exporter (``dynamo=False``) with ``do_constant_folding=False``.
In torch 2.13 the default torch.export-based exporter only emits opset >= 18 and folds
BatchNormalization away; the TorchScript one gives a plain opset-17 graph that keeps
BatchNormalization nodes. Afterwards, Identity nodes on initializers are removed and
constant subgraphs (Clip bounds, Resize scales, weight Transposes) become initializers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator
from torch import nn

from lowp.passes.canonicalize import remove_identities

OPSET = 17
N_SAMPLES = 16

ZooResult = tuple[Path, dict[str, np.ndarray]]


# --- shared helpers -------------------------------------------------------------------------

def _randomize_bn(module: nn.Module, gen: torch.Generator) -> None:
    """Give every BatchNorm non-trivial gamma / beta (the defaults are 1 and 0)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=gen))


def _calibrate_bn(module: nn.Module, inputs: Sequence[tuple[torch.Tensor, ...]]) -> None:
    """Measure BN running statistics in train mode (cumulative average), then switch to eval."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    module.train()
    with torch.no_grad():
        for xs in inputs:
            module(*xs)
    for bn in bns:
        bn.momentum = 0.1
    module.eval()


def _fold_constants(model: onnx.ModelProto) -> None:
    """Replace nodes whose inputs are all initializers (Constant, Clip bounds, Resize scales,
    weight Transposes) by initializers, as an exporter with constant folding would.

    BatchNormalization always has a non-constant input, so it is kept.
    """
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    keep = []
    for node in graph.node:
        if all(not name or name in consts for name in node.input):
            feeds = {name: consts[name] for name in node.input if name}
            for name, value in zip(node.output, ReferenceEvaluator(node).run(None, feeds),
                                   strict=True):
                consts[name] = np.asarray(value)
                graph.initializer.append(numpy_helper.from_array(consts[name], name))
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    used = {name for node in keep for name in node.input} | {o.name for o in graph.output}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def _build(name: str, tmp_dir: str | os.PathLike[str], make: Callable[[], nn.Module],
           input_shapes: dict[str, tuple[int, ...]], output_names: Sequence[str], *,
           n_samples: int, seed: int) -> ZooResult:
    """Build ``make()`` with seeded weights, calibrate BN, export to ``tmp_dir/<name>.onnx``.

    ``input_shapes`` maps input names to per-sample shapes (without the batch dimension).
    The global torch RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = make()
    gen = torch.Generator().manual_seed(seed + 1)
    _randomize_bn(module, gen)
    rng = np.random.default_rng(seed)
    feed = {k: rng.standard_normal((n_samples, *s)).astype(np.float32)
            for k, s in input_shapes.items()}
    warm = [tuple(torch.randn((8, *s), generator=gen) for s in input_shapes.values())
            for _ in range(4)]
    _calibrate_bn(module, warm)

    path = Path(tmp_dir) / f"{name}.onnx"
    example = tuple(torch.from_numpy(v[:2]) for v in feed.values())
    names = list(input_shapes)
    dynamic = {n: {0: "batch"} for n in [*names, *output_names]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module, example, str(path), dynamo=False, opset_version=OPSET,
            do_constant_folding=False, input_names=names, output_names=list(output_names),
            dynamic_axes=dynamic)
    proto = onnx.load(str(path))
    remove_identities(proto)
    _fold_constants(proto)
    proto.producer_name = "lowp tests/model_zoo.py"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return path, feed


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
             act: nn.Module | None = None) -> nn.Sequential:
    """Conv2d (no bias) + BatchNorm2d + optional activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


# --- ResNet ---------------------------------------------------------------------------------

class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, cout, 3, stride, act=nn.ReLU()), _conv_bn(cout, cout, 3))
        self.down = (_conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout
                     else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.down(x))


class _ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv_bn(3, 16, 3, act=nn.ReLU())
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.layers = nn.Sequential(_BasicBlock(16, 16, 1), _BasicBlock(16, 32, 2))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(self.pool(self.stem(x)))
        return self.fc(torch.flatten(self.gap(y), 1))


def resnet_style(tmp_dir: str | os.PathLike[str], *, n_samples: int = N_SAMPLES,
                 seed: int = 0) -> ZooResult:
    """ResNet basic blocks: Conv/BN/Relu, MaxPool, residual Add, 1x1 downsample, GAP, Gemm.

    Input ``input`` (N, 3, 32, 32), output ``logits`` (N, 10).
    """
    return _build("resnet_style", tmp_dir, _ResNet, {"input": (3, 32, 32)}, ["logits"],
                  n_samples=n_samples, seed=seed)


# --- MobileNetV2 ----------------------------------------------------------------------------

class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(cin, hidden, 1, act=nn.ReLU6()))          # 1x1 expand
        layers += [
            _conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6()),  # depthwise
            _conv_bn(hidden, cout, 1),                                     # linear bottleneck
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class _MobileNetV2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, 16, 3, 2, act=nn.ReLU6()),
            _InvertedResidual(16, 16, 1, 1),
            _InvertedResidual(16, 24, 2, 4),
            _InvertedResidual(24, 24, 1, 4),
            _conv_bn(24, 64, 1, act=nn.ReLU6()),
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.gap(self.features(x)), 1))


def mobilenet_v2_style(tmp_dir: str | os.PathLike[str], *, n_samples: int = N_SAMPLES,
                       seed: int = 0) -> ZooResult:
    """Inverted residuals: 1x1 expand, depthwise 3x3 (stride 1 and 2), ReLU6 (Clip), Add.

    Input ``input`` (N, 3, 32, 32), output ``logits`` (N, 10).
    """
    return _build("mobilenet_v2_style", tmp_dir, _MobileNetV2, {"input": (3, 32, 32)},
                  ["logits"], n_samples=n_samples, seed=seed)


# --- MobileNetV3 ----------------------------------------------------------------------------

class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))


class _V3Block(nn.Module):
    def __init__(self, cin: int, hidden: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(cin, hidden, 1, act=nn.Hardswish()),
            _conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.Hardswish()),
            _SqueezeExcite(hidden, max(8, hidden // 4)),
            _conv_bn(hidden, cout, 1),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class _MobileNetV3(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, 16, 3, 2, act=nn.Hardswish()),
            _V3Block(16, 48, 24, 2),
            _V3Block(24, 72, 24, 1),
            _conv_bn(24, 96, 1, act=nn.Hardswish()),
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Linear(96, 64), nn.Hardswish(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.gap(self.features(x)), 1))


def mobilenet_v3_style(tmp_dir: str | os.PathLike[str], *, n_samples: int = N_SAMPLES,
                       seed: int = 0) -> ZooResult:
    """HardSwish, squeeze-excite (GlobalAveragePool, HardSigmoid, Mul), residual Add.

    Input ``input`` (N, 3, 32, 32), output ``logits`` (N, 10).
    """
    return _build("mobilenet_v3_style", tmp_dir, _MobileNetV3, {"input": (3, 32, 32)},
                  ["logits"], n_samples=n_samples, seed=seed)


# --- detector head --------------------------------------------------------------------------

class _CSPBlock(nn.Module):
    """Two 1x1 branches, one with a 3x3 conv, concatenated and fused by a 1x1 conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        half = cout // 2
        self.a = _conv_bn(cin, half, 1, act=nn.SiLU())
        self.b = nn.Sequential(_conv_bn(cin, half, 1, act=nn.SiLU()),
                               _conv_bn(half, half, 3, act=nn.SiLU()))
        self.fuse = _conv_bn(2 * half, cout, 1, act=nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.a(x), self.b(x)], dim=1))


class _DetectorHead(nn.Module):
    def __init__(self, n_out: int = 3 * (5 + 4)) -> None:
        super().__init__()
        self.c3 = nn.Sequential(_conv_bn(3, 16, 3, 2, act=nn.SiLU()),
                                _conv_bn(16, 32, 3, 2, act=nn.SiLU()))      # 8x8
        self.c4 = _conv_bn(32, 48, 3, 2, act=nn.SiLU())                     # 4x4
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.merge = _CSPBlock(48 + 32, 32)
        self.out_p3 = nn.Conv2d(32, n_out, 1)
        self.out_p4 = nn.Conv2d(48, n_out, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c3 = self.c3(x)
        c4 = self.c4(c3)
        p3 = self.merge(torch.cat([self.up(c4), c3], dim=1))
        return self.out_p3(p3), self.out_p4(c4)


def detector_head_style(tmp_dir: str | os.PathLike[str], *, n_samples: int = N_SAMPLES,
                        seed: int = 0) -> ZooResult:
    """SiLU (Sigmoid * x), Concat of branches, Resize nearest x2, two Conv outputs.

    Input ``input`` (N, 3, 32, 32); outputs ``p3`` (N, 27, 8, 8) and ``p4`` (N, 27, 4, 4).
    """
    return _build("detector_head_style", tmp_dir, _DetectorHead, {"input": (3, 32, 32)},
                  ["p3", "p4"], n_samples=n_samples, seed=seed)


# --- 1-D and 3-D convolutions ---------------------------------------------------------------

class _Conv1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(4, 16, 5, padding=2, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 16, 3, stride=2, padding=1, groups=16), nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(16, 24, 3, padding=2, dilation=2), nn.ReLU(),
        )
        self.gap = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.gap(self.body(x)), 1))


def conv1d_model(tmp_dir: str | os.PathLike[str], *, n_samples: int = N_SAMPLES,
                 seed: int = 0) -> ZooResult:
    """1-D Conv (regular, depthwise stride 2, dilated), BN, Relu, MaxPool, GAP, Gemm.

    Input ``input`` (N, 4, 64), output ``logits`` (N, 5).
    """
    return _build("conv1d_model", tmp_dir, _Conv1d, {"input": (4, 64)}, ["logits"],
                  n_samples=n_samples, seed=seed)


class _Conv3d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(2, 8, 3, padding=1, bias=False), nn.BatchNorm3d(8), nn.ReLU())
        self.pool = nn.MaxPool3d(2)
        self.block = nn.Sequential(
            nn.Conv3d(8, 8, 3, padding=1, bias=False), nn.BatchNorm3d(8), nn.ReLU(),
            nn.Conv3d(8, 8, 1, bias=False), nn.BatchNorm3d(8))
        self.relu = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.stem(x))
        y = self.relu(y + self.block(y))
        return self.fc(torch.flatten(self.gap(y), 1))


def conv3d_model(tmp_dir: str | os.PathLike[str], *, n_samples: int = N_SAMPLES,
                 seed: int = 0) -> ZooResult:
    """3-D Conv, BN, Relu, MaxPool, residual Add, GAP, Gemm.

    Input ``input`` (N, 2, 8, 16, 16), output ``logits`` (N, 4).
    """
    return _build("conv3d_model", tmp_dir, _Conv3d, {"input": (2, 8, 16, 16)}, ["logits"],
                  n_samples=n_samples, seed=seed)


# --- MLP ------------------------------------------------------------------------------------

class _MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Linear(16, 32)        # on (N, 8, 16): MatMul + Add
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(8 * 32, 64)      # on (N, 256): Gemm
        self.bn = nn.BatchNorm1d(64)
        self.fc2 = nn.Linear(64, 10, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.flatten(self.relu(self.token(x)), 1)
        return self.fc2(self.relu(self.bn(self.fc1(y))))


def linear_mlp(tmp_dir: str | os.PathLike[str], *, n_samples: int = N_SAMPLES,
               seed: int = 0) -> ZooResult:
    """Fully connected layers: MatMul + Add on a 3-D input, Gemm (with BN after, no bias).

    Input ``input`` (N, 8, 16), output ``logits`` (N, 10).
    """
    return _build("linear_mlp", tmp_dir, _MLP, {"input": (8, 16)}, ["logits"],
                  n_samples=n_samples, seed=seed)


BUILDERS: dict[str, Callable[..., ZooResult]] = {
    f.__name__: f for f in (resnet_style, mobilenet_v2_style, mobilenet_v3_style,
                            detector_head_style, conv1d_model, conv3d_model, linear_mlp)
}
