"""Real-world model families (text detector, CRNN, YOLO-style, LSTM, BERT-style) built in
torch, trained on generated or scikit-learn data where that is quick, exported to ONNX.

    path, calib, feeds, targets = build("crnn", "/tmp/families", opset=17)
    scores = metric("crnn", outputs, targets, reference_outputs)

| family        | weights                                  | metric                           |
|---------------|------------------------------------------|----------------------------------|
| text_detector | trained (synthetic text-block images)    | mask IoU vs ground truth (%)     |
| crnn          | trained (sklearn digits, 4-digit strings)| exact-sequence accuracy (%)      |
| yolo          | realistic random (BN statistics and head | top-10 box match, IoU >= 0.5 vs  |
|               | output spread set on synthetic images)   | float (%); DFL box error (px)    |
| lstm          | trained (synthetic waveform classes)     | accuracy (%)                     |
| bert          | trained (synthetic keyword sequences)    | accuracy (%)                     |

Every model has a dynamic batch dimension; the CRNN (width), LSTM (time), BERT (sequence)
and the two detectors (height, width) have further dynamic axes (`other_shape` cuts them).
Export uses the TorchScript exporter (``dynamo=False``) with its defaults (constant folding
on), as users typically run it; ``opset=11`` or ``12`` gives the old-opset graphs
(LayerNormalization written out as ReduceMean/Sub/Pow/Sqrt/Div, Split with a ``split``
attribute, Squeeze and Unsqueeze with ``axes`` attributes, Softmax on the last axis between
Transposes). Training is seeded and single-threaded: 5-25 s per family on one core;
``quick=True`` trains a handful of steps only (for smoke tests). Trained weights are cached
in the process, so exporting one family at two opsets trains once.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

FAMILIES: tuple[str, ...] = ("text_detector", "crnn", "yolo", "lstm", "bert")

Feeds = dict[str, np.ndarray]
Built = tuple[Path, Feeds, Feeds, np.ndarray | None]


@dataclass(frozen=True)
class _Trained:
    module: nn.Module
    calib: Feeds
    feeds: Feeds
    targets: np.ndarray | None
    example: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]


_CACHE: dict[tuple[str, bool], _Trained] = {}


def build(name: str, directory: str | os.PathLike[str], *, opset: int = 17,
          quick: bool = False) -> Built:
    """Build family `name`, export it to ``directory/<name>.opset<N>.onnx``.

    Returns (onnx path, calibration feeds, evaluation feeds, evaluation targets or None).
    """
    if name not in _BUILDERS:
        raise KeyError(f"unknown family '{name}' (choose from {', '.join(FAMILIES)})")
    key = (name, quick)
    if key not in _CACHE:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                _CACHE[key] = _BUILDERS[name](quick)
        finally:
            torch.set_num_threads(threads)
    t = _CACHE[key]
    path = Path(directory) / f"{name}.opset{opset}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(t.module, t.example, str(path), dynamo=False, opset_version=opset,
                          input_names=list(t.input_names), output_names=list(t.output_names),
                          dynamic_axes=t.dynamic)
    proto = onnx.load(str(path))
    proto.producer_name = f"lowp evals/families.py ({name})"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path, t.calib, t.feeds, t.targets


def op_types(path: str | os.PathLike[str]) -> list[str]:
    """Sorted operator types of an ONNX file (subgraphs included)."""
    ops: set[str] = set()

    def walk(g: onnx.GraphProto) -> None:
        for n in g.node:
            ops.add(n.op_type)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
    walk(onnx.load(str(path)).graph)
    return sorted(ops)


def metric(name: str, outputs: dict[str, np.ndarray], targets: np.ndarray | None,
           reference: dict[str, np.ndarray]) -> dict[str, float]:
    """Quality figures of `outputs` (against targets, or the float `reference` outputs)."""
    return _METRICS[name](outputs, targets, reference)


def other_shape(name: str, feeds: Feeds) -> Feeds:
    """`feeds` cut along the dynamic non-batch axes (another width, length or sequence)."""
    if name == "bert":
        return {k: v[:, :24] for k, v in feeds.items()}
    if name in ("text_detector", "yolo"):
        return {k: v[:, :, :48, :32] for k, v in feeds.items()}
    if name == "crnn":
        return {k: v[..., :24] for k, v in feeds.items()}                # three digits
    return {k: v[..., :192] for k, v in feeds.items()}


# --- shared helpers -------------------------------------------------------------------------

def _train(module: nn.Module, batches: Callable[[np.random.Generator], tuple[
        tuple[torch.Tensor, ...], torch.Tensor]], loss_fn: Callable[..., torch.Tensor],
        steps: int, lr: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1),
                                                pct_start=0.15)
    module.train()
    for _ in range(steps):
        xs, y = batches(rng)
        loss = loss_fn(module(*xs), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    module.eval()


def _calibrate_bn(module: nn.Module, xs: Sequence[tuple[torch.Tensor, ...]]) -> None:
    """Measure BatchNorm running statistics on data (random-weight models)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    module.train()
    with torch.no_grad():
        for x in xs:
            module(*x)
    module.eval()


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _cbr(cin: int, cout: int, k: int = 3, s: int | tuple[int, int] = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


# --- text detector: DBNet-style, feature pyramid, Resize + ConvTranspose upsampling ----------

def _text_images(rng: np.random.Generator, n: int, h: int = 64, w: int = 64
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Light page with dark 'text lines' (dashed strokes); target = text-line mask."""
    x = np.empty((n, 3, h, w), np.float32)
    y = np.zeros((n, 1, h, w), np.float32)
    for i in range(n):
        bg = rng.uniform(0.6, 1.0, size=3).astype(np.float32)
        img = np.broadcast_to(bg[:, None, None], (3, h, w)).copy()
        img += rng.normal(0, 0.06, size=(3, h, w)).astype(np.float32)
        for _ in range(rng.integers(1, 5)):
            lh = int(rng.integers(4, 9))
            lw = int(rng.integers(12, w - 4))
            top = int(rng.integers(0, h - lh))
            left = int(rng.integers(0, w - lw))
            ink = rng.uniform(0.0, 0.35, size=3).astype(np.float32)
            strokes = rng.random(lw) < 0.7                       # glyphs with small gaps
            cols = np.arange(left, left + lw)[strokes]
            rows = slice(top + 1, top + lh - 1)
            img[:, rows, cols] = ink[:, None, None]
            y[i, 0, top:top + lh, left:left + lw] = 1.0
        x[i] = (img - 0.5) / 0.25
    return x, y


class _TextDetector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.s1 = _cbr(3, 16, 3, 2)                                      # /2
        self.s2 = nn.Sequential(_cbr(16, 24, 3, 2), _cbr(24, 24))        # /4
        self.s3 = nn.Sequential(_cbr(24, 32, 3, 2), _cbr(32, 32))        # /8
        self.s4 = nn.Sequential(_cbr(32, 48, 3, 2), _cbr(48, 48))        # /16
        self.lat = nn.ModuleList(nn.Conv2d(c, 32, 1) for c in (24, 32, 48))
        self.smooth = nn.ModuleList(nn.Conv2d(32, 16, 3, padding=1) for _ in range(3))
        self.head = nn.Sequential(
            _cbr(48, 16), nn.ConvTranspose2d(16, 16, 2, 2), nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c2 = self.s2(self.s1(x))
        c3 = self.s3(c2)
        c4 = self.s4(c3)
        p4 = self.lat[2](c4)
        p3 = self.lat[1](c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        p2 = self.lat[0](c2) + F.interpolate(p3, scale_factor=2.0, mode="nearest")
        f = torch.cat([self.smooth[0](p2),
                       F.interpolate(self.smooth[1](p3), scale_factor=2.0, mode="bilinear",
                                     align_corners=False),
                       F.interpolate(self.smooth[2](p4), scale_factor=4.0, mode="bilinear",
                                     align_corners=False)], 1)
        return torch.sigmoid(self.head(f))


def _text_detector(quick: bool) -> _Trained:
    model = _TextDetector()
    data = np.random.default_rng(10)
    tx, ty = _text_images(data, 512)

    def batches(rng: np.random.Generator) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        idx = rng.integers(0, len(tx), 32)
        return (_t(tx[idx]),), _t(ty[idx])

    _train(model, batches, F.binary_cross_entropy, 8 if quick else 250, 1e-2, 1)
    cx, _ = _text_images(data, 32)
    ex, ey = _text_images(data, 32 if quick else 200)
    return _Trained(model, {"image": cx}, {"image": ex}, ey, (_t(cx[:2]),), ("image",),
                    ("prob",), {"image": {0: "batch", 2: "height", 3: "width"},
                                "prob": {0: "batch", 2: "height", 3: "width"}})


def _mask_iou(outputs: Feeds, targets: np.ndarray | None, _: Feeds) -> dict[str, float]:
    assert targets is not None
    p = outputs["prob"] > 0.5
    t = targets > 0.5
    inter = np.logical_and(p, t).sum()
    union = np.logical_or(p, t).sum()
    return {"mask IoU vs truth (%)": 100.0 * float(inter) / max(float(union), 1.0)}


# --- CRNN / SVTR-style recognizer: conv stem, written-out LayerNorm, MatMul attention, CTC ---

_DIGITS_PER_STRING = 4


def _digit_strings(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Strings of sklearn digits side by side: (n, 1, 8, 32) images, (n, 4) labels 0..9."""
    idx = rng.integers(0, len(images), (n, _DIGITS_PER_STRING))
    x = np.concatenate([images[idx[:, k]] for k in range(_DIGITS_PER_STRING)], axis=2)
    return x[:, None].astype(np.float32), labels[idx].astype(np.int64)


class _DecomposedLayerNorm(nn.Module):
    """LayerNorm written out (ReduceMean / Sub / Pow / Sqrt / Div), as many exports have it."""

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(d))
        self.b = nn.Parameter(torch.zeros(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(-1, keepdim=True)
        var = (x - mu).pow(2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.g + self.b


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d // self.heads))
        if bias is not None:
            att = att + bias
        y = torch.matmul(att.softmax(-1), v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y)


class _CRNN(nn.Module):
    def __init__(self, d: int = 64, classes: int = 11) -> None:
        super().__init__()
        self.stem = nn.Sequential(_cbr(1, 32), _cbr(32, 48, 3, (2, 1)), _cbr(48, d, 3, (2, 1)),
                                  nn.MaxPool2d((2, 1)))
        self.pos = nn.Parameter(0.02 * torch.randn(1, 64, d))
        self.ln1 = _DecomposedLayerNorm(d)
        self.att = _Attention(d, 4)
        self.ln2 = _DecomposedLayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.ln3 = _DecomposedLayerNorm(d)
        self.fc = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.stem(x).squeeze(2).permute(0, 2, 1)                    # (N, W, d)
        f = f + self.pos[:, :f.shape[1]]
        f = f + self.att(self.ln1(f))
        f = f + self.mlp(self.ln2(f))
        return self.fc(self.ln3(f)).log_softmax(-1)                      # (N, W, classes)


def _crnn(quick: bool) -> _Trained:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0 - 0.3).astype(np.float32)
    labels = digits.target
    train_x, train_y = images[:1300], labels[:1300]
    test_x, test_y = images[1300:], labels[1300:]
    model = _CRNN()

    def batches(rng: np.random.Generator) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        x, y = _digit_strings(train_x, train_y, rng, 64)
        return (_t(x),), _t(y + 1)                                       # 0 is the CTC blank

    def ctc(logp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = logp.shape[1]
        return F.ctc_loss(logp.permute(1, 0, 2), y, torch.full((len(y),), t, dtype=torch.long),
                          torch.full((len(y),), y.shape[1], dtype=torch.long))

    _train(model, batches, ctc, 8 if quick else 500, 3e-3, 2)
    data = np.random.default_rng(20)
    cx, _ = _digit_strings(train_x, train_y, data, 64)
    ex, ey = _digit_strings(test_x, test_y, data, 32 if quick else 400)
    return _Trained(model, {"image": cx}, {"image": ex}, ey, (_t(cx[:2]),), ("image",),
                    ("logprobs",), {"image": {0: "batch", 3: "width"},
                                    "logprobs": {0: "batch", 1: "frames"}})


def ctc_greedy(logprobs: np.ndarray) -> list[list[int]]:
    """Greedy CTC decoding: best class per frame, repeats collapsed, blanks (0) dropped."""
    out = []
    for best in logprobs.argmax(-1):
        seq = [int(c) - 1 for k, c in enumerate(best) if c != 0 and (k == 0 or c != best[k - 1])]
        out.append(seq)
    return out


def _sequence_accuracy(outputs: Feeds, targets: np.ndarray | None, _: Feeds
                       ) -> dict[str, float]:
    assert targets is not None
    decoded = ctc_greedy(outputs["logprobs"])
    hits = sum(d == list(t) for d, t in zip(decoded, targets.tolist(), strict=True))
    return {"exact sequence acc (%)": 100.0 * hits / len(targets)}


# --- YOLO-style detector: SiLU, C2f Split/Concat, SPPF, DFL Softmax, box decoding ------------

def _cbs(cin: int, cout: int, k: int = 1, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.SiLU())


class _C2f(nn.Module):
    def __init__(self, cin: int, cout: int, shortcut: bool = True) -> None:
        super().__init__()
        self.c = cout // 2
        self.cv1 = _cbs(cin, 2 * self.c)
        self.m = nn.Sequential(_cbs(self.c, self.c, 3), _cbs(self.c, self.c, 3))
        self.shortcut = shortcut
        self.cv2 = _cbs(3 * self.c, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).split((self.c, self.c), 1))
        z = self.m(y[-1])
        y.append(y[-1] + z if self.shortcut else z)
        return self.cv2(torch.cat(y, 1))


class _SPPF(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.cv1 = _cbs(c, c // 2)
        self.cv2 = _cbs(2 * c, c)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


_REG_MAX = 16
_YOLO_CLASSES = 4
_STRIDES = (8, 16)


class _YOLO(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b1 = nn.Sequential(_cbs(3, 16, 3, 2), _cbs(16, 32, 3, 2), _C2f(32, 32),
                                _cbs(32, 64, 3, 2), _C2f(64, 64))                    # P3 /8
        self.b2 = nn.Sequential(_cbs(64, 96, 3, 2), _C2f(96, 96), _SPPF(96))        # P4 /16
        self.n3 = _C2f(160, 64, False)
        self.down = _cbs(64, 64, 3, 2)
        self.n4 = _C2f(160, 96, False)
        self.box = nn.ModuleList(nn.Sequential(_cbs(c, 32, 3), _cbs(32, 32, 3),
                                               nn.Conv2d(32, 4 * _REG_MAX, 1)) for c in (64, 96))
        self.cls = nn.ModuleList(nn.Sequential(_cbs(c, 32, 3), _cbs(32, 32, 3),
                                               nn.Conv2d(32, _YOLO_CLASSES, 1)) for c in (64, 96))
        self.dfl = nn.Conv2d(_REG_MAX, 1, 1, bias=False)
        with torch.no_grad():                       # DFL: expectation over bins 0..15
            self.dfl.weight.copy_(torch.arange(_REG_MAX, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.b1(x)
        p4 = self.b2(p3)
        n3 = self.n3(torch.cat([F.interpolate(p4, scale_factor=2.0, mode="nearest"), p3], 1))
        n4 = self.n4(torch.cat([self.down(n3), p4], 1))
        boxes, scores, anchors, strides = [], [], [], []
        for feat, box, cls, s in zip((n3, n4), self.box, self.cls, _STRIDES, strict=True):
            b, _, h, w = feat.shape
            boxes.append(box(feat).view(b, 4 * _REG_MAX, -1))
            scores.append(cls(feat).view(b, _YOLO_CLASSES, -1))
            sy, sx = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5,
                                    torch.arange(w, dtype=torch.float32) + 0.5, indexing="ij")
            anchors.append(torch.stack((sx, sy), -1).view(-1, 2))
            strides.append(torch.full((h * w, 1), float(s)))
        box_all = torch.cat(boxes, 2)
        b, _, a = box_all.shape
        dist = self.dfl(box_all.view(b, 4, _REG_MAX, a).transpose(2, 1).softmax(1)).view(b, 4, a)
        anchor = torch.cat(anchors, 0).transpose(0, 1).unsqueeze(0)          # (1, 2, A)
        stride = torch.cat(strides, 0).transpose(0, 1).unsqueeze(0)
        lt, rb = dist.split((2, 2), 1)
        x1y1, x2y2 = anchor - lt, anchor + rb
        xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * stride
        return torch.cat((xywh, torch.cat(scores, 2).sigmoid()), 1)          # (N, 4+C, A)


def _spread_head(model: _YOLO, x: torch.Tensor) -> None:
    """Rescale the last box / class convolutions as training would leave them: peaked DFL
    distributions (logit std 3) and class logits with mean -3 and std 2 (a few confident
    anchors, most near zero), instead of the flat outputs of random weights."""
    seen: dict[nn.Module, torch.Tensor] = {}
    heads = [*(b[-1] for b in model.box), *(c[-1] for c in model.cls)]
    hooks = [h.register_forward_hook(lambda m, _, y: seen.__setitem__(m, y)) for h in heads]
    with torch.no_grad():
        model(x)
        for h in hooks:
            h.remove()
        for conv in heads:
            y = seen[conv].transpose(0, 1).reshape(conv.out_channels, -1)
            mean, std = y.mean(1), y.std(1).clamp_min(1e-6)
            is_box = conv.out_channels == 4 * _REG_MAX
            gain = (3.0 if is_box else 2.0) / std
            conv.weight.mul_(gain.view(-1, 1, 1, 1))
            conv.bias.copy_((conv.bias - mean) * gain + (0.0 if is_box else -3.0))


def _shapes_images(rng: np.random.Generator, n: int, size: int = 64) -> np.ndarray:
    """Noisy scenes with a few coloured rectangles and discs (normalised like YOLO: 0..1)."""
    x = rng.uniform(0.3, 0.7, (n, 3, 1, 1)) + rng.normal(0, 0.05, (n, 3, size, size))
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            c = rng.uniform(0, 1, 3)[:, None]
            cx, cy, r = rng.integers(8, size - 8, 2).tolist() + [int(rng.integers(4, 12))]
            m = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r) if rng.random() < 0.5 else (
                (xx - cx) ** 2 + (yy - cy) ** 2 < r * r)
            x[i][:, m] = c
    return np.clip(x, 0, 1).astype(np.float32)


def _yolo(quick: bool) -> _Trained:
    model = _YOLO()
    data = np.random.default_rng(30)
    _calibrate_bn(model, [(_t(_shapes_images(data, 16)),) for _ in range(2 if quick else 6)])
    cx = _shapes_images(data, 32)
    _spread_head(model, _t(cx))
    ex = _shapes_images(data, 16 if quick else 128)
    return _Trained(model, {"images": cx}, {"images": ex}, None, (_t(cx[:2]),), ("images",),
                    ("output",), {"images": {0: "batch", 2: "height", 3: "width"},
                                  "output": {0: "batch", 2: "anchors"}})


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    return np.concatenate([xywh[..., :2] - xywh[..., 2:] / 2, xywh[..., :2] + xywh[..., 2:] / 2],
                          -1)


def _box_fidelity(outputs: Feeds, _: np.ndarray | None, reference: Feeds,
                  top: int = 10) -> dict[str, float]:
    """Top-`top` float detections per image: does the model's box at the same anchor overlap
    (IoU >= 0.5) with the same best class; mean absolute box-edge error in pixels."""
    ref, out = reference["output"], outputs["output"]
    matched, err = [], []
    for r, o in zip(ref, out, strict=True):
        best = np.argsort(-r[4:].max(0), kind="stable")[:top]
        rb, ob = _xyxy(r[:4, best].T), _xyxy(o[:4, best].T)
        lo, hi = np.maximum(rb[:, :2], ob[:, :2]), np.minimum(rb[:, 2:], ob[:, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), -1)
        area = lambda b: np.prod(b[:, 2:] - b[:, :2], -1)  # noqa: E731
        iou = inter / np.maximum(area(rb) + area(ob) - inter, 1e-9)
        same = r[4:, best].argmax(0) == o[4:, best].argmax(0)
        matched.append((iou >= 0.5) & same)
        err.append(np.abs(rb - ob).mean(-1))
    return {"box match IoU>=0.5 vs float (%)": 100.0 * float(np.concatenate(matched).mean()),
            "DFL box edge error (px)": float(np.concatenate(err).mean())}


# --- LSTM sequence classifier with a Conv1d front-end ----------------------------------------

_WAVE_CLASSES = 8


def _waveforms(rng: np.random.Generator, n: int, length: int = 256
               ) -> tuple[np.ndarray, np.ndarray]:
    """4 waveform shapes x 2 frequency bands, random phase, amplitude and noise."""
    y = rng.integers(0, _WAVE_CLASSES, n)
    shape, band = y % 4, y // 4
    f = np.where(band == 0, rng.uniform(2, 5, n), rng.uniform(8, 14, n)) / length
    ph = (np.arange(length)[None] * f[:, None] + rng.uniform(0, 1, n)[:, None]) % 1.0
    waves = np.stack([np.sin(2 * np.pi * ph), np.sign(np.sin(2 * np.pi * ph)),
                      2 * ph - 1, 4 * np.abs(ph - 0.5) - 1], 0)[shape, np.arange(n)]
    x = rng.uniform(0.5, 1.5, (n, 1)) * waves + rng.normal(0, 0.15, (n, length))
    return x[:, None].astype(np.float32), y.astype(np.int64)


class _LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.front = nn.Sequential(
            nn.Conv1d(1, 16, 7, 2, 3, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 32, 5, 2, 2, bias=False), nn.BatchNorm1d(32), nn.ReLU())
        self.lstm = nn.LSTM(32, 32, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(64, _WAVE_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.lstm(self.front(x).permute(0, 2, 1))
        return self.fc(seq.mean(1))


def _lstm(quick: bool) -> _Trained:
    model = _LSTMNet()
    data = np.random.default_rng(40)
    tx, ty = _waveforms(data, 4096)

    def batches(rng: np.random.Generator) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        idx = rng.integers(0, len(tx), 64)
        return (_t(tx[idx]),), _t(ty[idx])

    _train(model, batches, F.cross_entropy, 8 if quick else 300, 1e-2, 3)
    cx, _ = _waveforms(data, 64)
    ex, ey = _waveforms(data, 32 if quick else 500)
    return _Trained(model, {"signal": cx}, {"signal": ex}, ey, (_t(cx[:2]),), ("signal",),
                    ("logits",), {"signal": {0: "batch", 2: "time"}, "logits": {0: "batch"}})


def _accuracy(outputs: Feeds, targets: np.ndarray | None, _: Feeds) -> dict[str, float]:
    assert targets is not None
    return {"accuracy (%)": 100.0 * float((outputs["logits"].argmax(-1) == targets).mean())}


# --- BERT-style encoder: Gather embeddings, LayerNormalization, Erf GELU, masked attention ---

_VOCAB, _KEYWORDS, _MAX_LEN = 64, 4, 32


def _keyword_sequences(rng: np.random.Generator, n: int) -> tuple[Feeds, np.ndarray]:
    """[CLS] + random tokens, padded; label = the keyword (tokens 2..5) that occurs most."""
    ids = np.zeros((n, _MAX_LEN), np.int64)
    mask = np.zeros((n, _MAX_LEN), np.int64)
    y = rng.integers(0, _KEYWORDS, n)
    for i in range(n):
        length = int(rng.integers(16, _MAX_LEN + 1))
        body = rng.integers(2 + _KEYWORDS, _VOCAB, length - 1)
        counts = rng.integers(0, 3, _KEYWORDS)
        counts[y[i]] = counts.max() + int(rng.integers(1, 3))
        pos = rng.permutation(length - 1)[:counts.sum()]
        body[pos] = np.repeat(2 + np.arange(_KEYWORDS), counts)
        ids[i, 0], ids[i, 1:length] = 1, body
        mask[i, :length] = 1
    return {"input_ids": ids, "attention_mask": mask}, y.astype(np.int64)


class _EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.att = _Attention(d, heads)
        self.ln1 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.ln2 = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.att(x, bias))                                  # post-LN, as BERT
        return self.ln2(x + self.ff(x))


class _Bert(nn.Module):
    def __init__(self, d: int = 64, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.tok = nn.Embedding(_VOCAB, d)
        self.pos = nn.Embedding(_MAX_LEN, d)
        self.ln = nn.LayerNorm(d)
        self.layers = nn.ModuleList(_EncoderLayer(d, heads) for _ in range(layers))
        self.pool = nn.Linear(d, d)
        self.cls = nn.Linear(d, _KEYWORDS)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.ln(self.tok(input_ids) + self.pos(positions))
        bias = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return self.cls(torch.tanh(self.pool(x[:, 0])))


def _bert(quick: bool) -> _Trained:
    model = _Bert()
    data = np.random.default_rng(50)
    tf, ty = _keyword_sequences(data, 4096)

    def batches(rng: np.random.Generator) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        idx = rng.integers(0, len(ty), 64)
        return (_t(tf["input_ids"][idx]), _t(tf["attention_mask"][idx])), _t(ty[idx])

    _train(model, batches, F.cross_entropy, 8 if quick else 400, 3e-3, 4)
    cf, _ = _keyword_sequences(data, 64)
    ef, ey = _keyword_sequences(data, 32 if quick else 500)
    example = (_t(cf["input_ids"][:2]), _t(cf["attention_mask"][:2]))
    seq = {0: "batch", 1: "sequence"}
    return _Trained(model, cf, ef, ey, example, ("input_ids", "attention_mask"), ("logits",),
                    {"input_ids": seq, "attention_mask": seq, "logits": {0: "batch"}})


_BUILDERS: dict[str, Callable[[bool], _Trained]] = {
    "text_detector": _text_detector, "crnn": _crnn, "yolo": _yolo, "lstm": _lstm,
    "bert": _bert}
_METRICS: dict[str, Callable[[Feeds, np.ndarray | None, Feeds], dict[str, float]]] = {
    "text_detector": _mask_iou, "crnn": _sequence_accuracy, "yolo": _box_fidelity,
    "lstm": _accuracy, "bert": _accuracy}
