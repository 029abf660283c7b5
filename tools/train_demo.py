"""Train the bundled demo CNN on scikit-learn's digits and write it to src/lowp/data/.

Usage: ``python tools/train_demo.py [--out-dir DIR] [--epochs N]``

Data: ``sklearn.datasets.load_digits`` (1797 grey 8x8 images, 10 classes, shipped with
scikit-learn). Preprocessing: pixel values 0..16 are divided by 16 to lie in [0, 1],
shaped as float32 (N, 1, 8, 8). Split with a fixed seed: 30 % stratified test set; the
rest is the training set, and a stratified subset of 256 training images is the
calibration set.

Outputs (in ``--out-dir``, default ``src/lowp/data``):

- ``digits_cnn.onnx``: the float model, opset 17, input ``input`` (batch, 1, 8, 8),
  output ``logits`` (batch, 10), dynamic batch dimension, BatchNormalization kept.
- ``digits_calib.npz``: ``input`` float32 (256, 1, 8, 8).
- ``digits_test.npz``: ``input`` float32 (540, 1, 8, 8), ``label`` int64 (540,).

Everything is seeded and torch runs with deterministic algorithms on one thread, so a
rerun on the same software versions reproduces the same weights.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from lowp.passes.canonicalize import remove_identities

SEED = 0
TEST_FRACTION = 0.3
N_CALIB = 256
OPSET = 17
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "lowp" / "data"


class DigitsCNN(nn.Module):
    """Small CNN covering conv, depthwise conv, BN, ReLU, residual Add, pools and Gemm."""

    def __init__(self) -> None:
        super().__init__()
        # stem: 1 -> 16 channels, 8x8
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        # residual block: depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN, Add, ReLU
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.dw_bn = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 16, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        # 8x8 -> 4x4, then 16 -> 32 channels and global average pooling
        self.pool = nn.MaxPool2d(2)
        self.head_conv = nn.Sequential(
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        r = self.relu(self.dw_bn(self.dw(y)))
        r = self.pw_bn(self.pw(r))
        y = self.relu(y + r)
        y = self.head_conv(self.pool(y))
        y = torch.flatten(self.gap(y), 1)
        return self.fc(y)


def make_splits() -> dict[str, np.ndarray]:
    """Load digits, scale to [0, 1] and split into train / calibration / test."""
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=SEED)
    x_calib, _, _, _ = train_test_split(
        x_train, y_train, train_size=N_CALIB, stratify=y_train, random_state=SEED)
    return {
        "x_train": np.ascontiguousarray(x_train), "y_train": y_train,
        "x_calib": np.ascontiguousarray(x_calib),
        "x_test": np.ascontiguousarray(x_test), "y_test": y_test,
    }


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int) -> None:
    """Mini-batch AdamW with a one-cycle learning-rate schedule."""
    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=1e-4)
    batch = 64
    steps = epochs * ((len(xt) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            xb, yb = xt[idx], yt[idx]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def export(model: nn.Module, path: Path) -> None:
    """Export to ONNX opset 17 with a dynamic batch dimension and BatchNormalization kept.

    Export choice: the TorchScript exporter (``dynamo=False``). In torch 2.13 the default
    exporter is the torch.export (dynamo) one; it only emits opset >= 18 (conversion down
    to 17 fails), and its graph optimizer folds BatchNormalization into Conv and turns
    global average pooling into ReduceMean. ``dynamo=False`` with
    ``do_constant_folding=False`` gives the plain standard graph at opset 17 (Conv,
    BatchNormalization, Relu, Add, MaxPool, GlobalAveragePool, Flatten, Gemm), so the
    quantizer's own BN folding is exercised. It is deprecated but works in 2.13.
    """
    example = torch.zeros(2, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=OPSET,
            do_constant_folding=False, input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load(str(path))
    remove_identities(proto)
    proto.producer_name = "lowp tools/train_demo.py"
    proto.doc_string = (
        "Digits CNN (sklearn load_digits). Input: float32 (N, 1, 8, 8), pixels / 16 in [0, 1]."
        " Output: logits (N, 10).")
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    t0 = time.perf_counter()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    data = make_splits()
    model = DigitsCNN()
    train(model, data["x_train"], data["y_train"], epochs=args.epochs)
    with torch.no_grad():
        torch_acc = accuracy(model(torch.from_numpy(data["x_test"])).numpy(), data["y_test"])

    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "digits_cnn.onnx"
    export(model, model_path)
    np.savez_compressed(out / "digits_calib.npz", input=data["x_calib"])
    np.savez_compressed(out / "digits_test.npz", input=data["x_test"], label=data["y_test"])

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(["logits"], {"input": data["x_test"]})
    onnx_acc = accuracy(logits, data["y_test"])
    ops = sorted({n.op_type for n in onnx.load(str(model_path)).graph.node})
    print(f"train {len(data['x_train'])}, calib {len(data['x_calib'])}, "
          f"test {len(data['x_test'])}; {time.perf_counter() - t0:.1f} s")
    print(f"ONNX ops: {', '.join(ops)}; model {model_path.stat().st_size} bytes")
    print(f"float test accuracy: torch {torch_acc:.4f}, onnxruntime {onnx_acc:.4f}")


if __name__ == "__main__":
    main()
