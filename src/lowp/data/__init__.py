"""The bundled demo: a small float CNN for the 8x8 digits, with its calibration and test sets.

The files are produced by ``tools/train_demo.py``. Model input ``input`` is float32
(N, 1, 8, 8) holding the digit image's pixel values (0..16) divided by 16, so in [0, 1];
output ``logits`` is float32 (N, 10).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["demo_model_path", "load_demo_calibration", "load_demo_test"]

_DIR = Path(__file__).resolve().parent
MODEL_FILE = "digits_cnn.onnx"
CALIB_FILE = "digits_calib.npz"
TEST_FILE = "digits_test.npz"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def demo_model_path() -> Path:
    """Return the path of the bundled float demo model (ONNX, opset 17).

    Returns
    -------
    pathlib.Path
        ``digits_cnn.onnx``: input ``input`` (batch, 1, 8, 8) float32, output
        ``logits`` (batch, 10).
    """
    return _DIR / MODEL_FILE


def load_demo_calibration() -> dict[str, np.ndarray]:
    """Return the demo calibration set as a model-input feed.

    Returns
    -------
    dict[str, numpy.ndarray]
        ``{"input": x}`` with ``x`` float32 of shape (256, 1, 8, 8), a stratified subset
        of the training images.
    """
    with np.load(_DIR / CALIB_FILE, allow_pickle=False) as npz:
        return {INPUT_NAME: np.asarray(npz["input"], dtype=np.float32)}


def load_demo_test() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Return the held-out demo test set as a model-input feed and its labels.

    Returns
    -------
    feed : dict[str, numpy.ndarray]
        ``{"input": x}`` with ``x`` float32 of shape (540, 1, 8, 8).
    labels : numpy.ndarray
        int64 class labels 0..9, shape (540,).
    """
    with np.load(_DIR / TEST_FILE, allow_pickle=False) as npz:
        feed = {INPUT_NAME: np.asarray(npz["input"], dtype=np.float32)}
        labels = np.asarray(npz["label"], dtype=np.int64)
    return feed, labels
