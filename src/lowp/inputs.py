"""User data: load calibration / input data and check it against the model's inputs."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .errors import DataError, UnsupportedOpError

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class ImagePreprocess:
    """How a folder of images becomes a model input: resize, scale to [0, 1], normalize."""

    size: tuple[int, int] | None = None        # (height, width); None: from the model
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: str = "NCHW"                       # or "NHWC"
    grayscale: bool | None = None              # None: from the model's channel count
    keep_aspect: bool = False                  # resize the height only: one feed per image
    pad_to_multiple: int = 1                   # zero-pad a dynamic height / width to this


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...] | None       # None entries are dynamic


def model_inputs(model: onnx.ModelProto) -> list[InputSpec]:
    """The model's real inputs: a graph input that has an initializer is a weight (IR < 4
    lists every initializer as an input) or a default value, never required data."""
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for v in model.graph.input:
        if v.name in inits:
            continue
        if v.type.WhichOneof("value") not in ("tensor_type", None):
            raise _non_tensor_input(model, v)
        tt = v.type.tensor_type
        dtype = input_dtype(tt.elem_type)
        shape = (tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                       for d in tt.shape.dim) if tt.HasField("shape") else None)
        specs.append(InputSpec(v.name, dtype, shape))
    return specs


def _non_tensor_input(model: onnx.ModelProto, v: onnx.ValueInfoProto) -> UnsupportedOpError:
    """A sequence, map or optional graph input: the error names the first node reading it."""
    kind = v.type.WhichOneof("value").removesuffix("_type")
    reader = next((n for n in model.graph.node if v.name in n.input), None)
    article = "an" if kind[0] in "aeiou" else "a"
    detail = f"input '{v.name}' is {article} {kind}; lowp's engine runs tensors only"
    if reader is None:
        return UnsupportedOpError("(graph input)", v.name, detail)
    return UnsupportedOpError(reader.op_type, reader.name, detail)


def check_tensor_outputs(model: onnx.ModelProto) -> None:
    """Refuse a sequence, map or optional graph output (the engine returns tensors; such
    values run inside a graph only): the error names the node producing it. The one
    exception is ai.onnx.ml ZipMap's sequence of maps, returned as ONNX Runtime returns
    it (a list of dicts; docs/operators.md, (O226))."""
    for v in model.graph.output:
        kind = v.type.WhichOneof("value")
        if kind in ("tensor_type", None):
            continue
        producer = next((n for n in model.graph.node if v.name in n.output), None)
        if producer is not None and kind == "sequence_type" \
                and (producer.domain, producer.op_type) == ("ai.onnx.ml", "ZipMap"):
            continue
        kind = kind.removesuffix("_type")
        article = "an" if kind[0] in "aeiou" else "a"
        detail = f"output '{v.name}' is {article} {kind}; lowp's engine returns tensors only"
        if producer is None:
            raise UnsupportedOpError("(graph output)", v.name, detail)
        raise UnsupportedOpError(producer.op_type, producer.name, detail)


def input_dtype(elem_type: int) -> np.dtype:
    """numpy dtype of an ONNX tensor element type (ml_dtypes for bfloat16 / float8 / int4);
    float32 when the type is not a tensor type (undefined)."""
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        return np.dtype(np.float32)


def load_arrays(source: str | os.PathLike[str] | Mapping[str, np.ndarray],
                inputs: list[InputSpec],
                preprocess: ImagePreprocess | None = None) -> dict[str, np.ndarray]:
    """Read data given as a mapping, an .npz file, a folder of .npy/.npz files, or images.

    The first axis of every array is the sample axis.
    """
    if isinstance(source, Mapping):
        return {k: np.asarray(v) for k, v in source.items()}
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        return _load_file(path, inputs)
    files = sorted(p for p in path.iterdir() if p.is_file())
    if any(p.suffix.lower() in _IMAGE_SUFFIXES for p in files):
        return _load_images([p for p in files if p.suffix.lower() in _IMAGE_SUFFIXES],
                            inputs, preprocess or ImagePreprocess())
    arrays = [_load_file(p, inputs) for p in files if p.suffix in (".npy", ".npz")]
    if not arrays:
        raise DataError(f"{path}: no .npy, .npz or image files in this folder")
    names = set(arrays[0])
    for a in arrays[1:]:
        if set(a) != names:
            raise DataError(f"{path}: files name different inputs ({sorted(names)} vs "
                            f"{sorted(a)})")
    return {k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]}


def iter_chunks(source: str | os.PathLike[str], inputs: list[InputSpec],
                preprocess: ImagePreprocess | None = None, images_per_chunk: int = 64
                ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """The sample-stacked data at `source`, one part at a time: (what, arrays) per .npy/.npz
    file, or per `images_per_chunk` images of an image folder.

    Concatenating the parts gives `load_arrays(source)`; `what` names the part in errors.
    """
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        yield "calibration data", _load_file(path, inputs)
        return
    files = sorted(p for p in path.iterdir() if p.is_file())
    images = image_files(path)
    if images:
        step = max(1, images_per_chunk)
        for start in range(0, len(images), step):
            yield ("calibration data", _load_images(images[start:start + step], inputs,
                                                    preprocess or ImagePreprocess()))
        return
    arrays = [p for p in files if p.suffix in (".npy", ".npz")]
    if not arrays:
        raise DataError(f"{path}: no .npy, .npz or image files in this folder")
    for p in arrays:
        yield f"calibration data ({p.name})", _load_file(p, inputs)


def _load_file(path: Path, inputs: list[InputSpec]) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npy":
            if len(inputs) != 1:
                raise DataError(f"{path}: a .npy file holds one array but the model has "
                                f"{len(inputs)} inputs; use an .npz named after the inputs")
            return {inputs[0].name: np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise DataError(f"{path}: expected an .npz archive")
            return {k: z[k] for k in z.files}
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"{path}: cannot read without unpickling ({e}); save plain arrays "
                        "with numpy.savez") from None
    except Exception as e:
        raise DataError(f"{path}: not a readable .npy/.npz file ({type(e).__name__})") from None


def _load_images(files: list[Path], inputs: list[InputSpec],
                 pre: ImagePreprocess) -> dict[str, np.ndarray]:
    spec = image_input(inputs)
    return {spec.name: np.stack([load_image(f, spec, pre) for f in files])}


def image_input(inputs: list[InputSpec]) -> InputSpec:
    """The one input an image folder can feed."""
    if len(inputs) != 1:
        raise DataError("an image folder can feed only a model with one input")
    return inputs[0]


def image_files(folder: Path) -> list[Path]:
    """The image files of `folder`, in name order."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)


def load_image(path: Path, spec: InputSpec, pre: ImagePreprocess) -> np.ndarray:
    """One image as the model's input takes it, without the batch axis (float32).

    Resized to `pre.size` or the model's fixed size; with `pre.keep_aspect`, to the target
    height only (`pre.size[0]`, the model's, or the image's own), the width following the
    aspect ratio but no wider than `pre.size[1]` or a width the model fixes. Then scaled to
    [0, 1] and normalized; with `keep_aspect` or `pad_to_multiple` > 1, padded with zeros
    at the bottom and right to the model's fixed height / width, or else to a multiple of
    `pad_to_multiple` (PaddleOCR's recognizers pad a text line the same way).
    """
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading image folders needs Pillow: pip install 'lowp[images]'") from None
    shape = spec.shape or (None, 3, None, None)
    nchw = pre.layout == "NCHW"
    channels = (shape[1] if nchw else shape[3]) if len(shape) == 4 else None
    model_hw = ((shape[2], shape[3]) if nchw else (shape[1], shape[2])) if len(shape) == 4 \
        else (None, None)
    gray = pre.grayscale if pre.grayscale is not None else channels == 1
    try:
        img = Image.open(path).convert("L" if gray else "RGB")
    except Exception as e:
        raise DataError(f"{path}: cannot read image ({e})") from None
    size = pre.size or model_hw
    if pre.keep_aspect:
        height = size[0] or img.height
        width = max(1, round(img.width * height / img.height))
        if size[1] is not None:
            width = min(width, size[1])
    elif size[0] is None or size[1] is None:
        raise DataError("image size is dynamic in the model; give ImagePreprocess(size=...) "
                        "or keep_aspect=True")
    else:
        height, width = size[0], size[1]
    img = img.resize((int(width), int(height)))
    a = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    a = a[..., None] if a.ndim == 2 else a
    a = (a - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    if pre.keep_aspect or pre.pad_to_multiple > 1:
        m = max(1, pre.pad_to_multiple)
        pad_h = (model_hw[0] or -(-a.shape[0] // m) * m) - a.shape[0]
        pad_w = (model_hw[1] or -(-a.shape[1] // m) * m) - a.shape[1]
        a = np.pad(a, ((0, max(0, pad_h)), (0, max(0, pad_w)), (0, 0)))
    return (a if not nchw else a.transpose(2, 0, 1)).astype(np.float32)


def validate(arrays: Mapping[str, np.ndarray], inputs: list[InputSpec],
             what: str = "calibration data") -> dict[str, np.ndarray]:
    """Check names, dtypes, shapes and finiteness of sample-stacked arrays (first axis =
    samples); return them cast to the input dtypes."""
    _check_names(arrays, inputs, what)
    out: dict[str, np.ndarray] = {}
    counts = set()
    for spec in inputs:
        a = np.asarray(arrays[spec.name])
        _check_dtype(a, spec, what)
        if spec.shape is not None:
            if a.ndim != len(spec.shape):
                raise DataError(f"{what}: input '{spec.name}' has shape {a.shape}, the model "
                                f"expects rank {len(spec.shape)} "
                                f"{_fmt_shape(spec.shape)} (first axis = samples)")
            for k, (got, want) in enumerate(zip(a.shape[1:], spec.shape[1:], strict=True)):
                if want is not None and got != want:
                    raise DataError(f"{what}: input '{spec.name}' has shape {a.shape}, the "
                                    f"model expects {_fmt_shape(spec.shape)} (axis {k + 1})")
        _check_finite(a, spec, what)
        counts.add(a.shape[0] if a.ndim else 1)
        out[spec.name] = a.astype(spec.dtype, copy=False)
    if len(counts) > 1:
        raise DataError(f"{what}: inputs have different numbers of samples {sorted(counts)}")
    if counts == {0}:
        raise DataError(f"{what}: no samples")
    return out


def validate_feed(feed: Any, index: int, inputs: list[InputSpec],
                  what: str = "calibration data") -> dict[str, np.ndarray]:
    """Check one feed dict (one call of the model, no sample axis of its own) and return its
    arrays cast to the input dtypes.

    Values may be arrays or array-likes; an object with `.detach()` / `.cpu()` (a torch
    tensor) is moved to host memory first, without importing torch. Every axis the model
    fixes must match; dynamic axes may differ from feed to feed. Errors name the feed's
    index (from 0) and the input.
    """
    where = f"{what}: feed {index}"
    if not isinstance(feed, Mapping):
        raise DataError(f"{where} is a {type(feed).__name__}, expected a dict "
                        "{input name: array}")
    _check_names(feed, inputs, where)
    out: dict[str, np.ndarray] = {}
    for spec in inputs:
        try:
            a = np.asarray(_to_host(feed[spec.name]))
        except Exception as e:
            raise DataError(f"{where}: input '{spec.name}' is not an array "
                            f"({type(feed[spec.name]).__name__}: {e})") from None
        _check_dtype(a, spec, where)
        if spec.shape is not None:
            bad = a.ndim != len(spec.shape) or any(
                want is not None and got != want
                for got, want in zip(a.shape, spec.shape, strict=True))
            if bad:
                raise DataError(f"{where}: input '{spec.name}' has shape {a.shape}, the model "
                                f"expects {_fmt_shape(spec.shape)}")
        _check_finite(a, spec, where)
        out[spec.name] = a.astype(spec.dtype, copy=False)
    return out


def _to_host(value: Any) -> Any:
    """A tensor of a framework (duck-typed: torch's detach / cpu) as something numpy reads."""
    if hasattr(value, "detach") and callable(value.detach):
        value = value.detach()
    if hasattr(value, "cpu") and callable(value.cpu):
        value = value.cpu()
    return value


def _check_names(arrays: Mapping[str, Any], inputs: list[InputSpec], what: str) -> None:
    expected = {s.name for s in inputs}
    missing = expected - set(arrays)
    if missing:
        raise DataError(f"{what}: missing input {', '.join(sorted(missing))} (the data has "
                        f"{', '.join(sorted(map(str, arrays))) or 'nothing'})")
    extra = set(arrays) - expected
    if extra:
        raise DataError(f"{what}: '{sorted(map(str, extra))[0]}' is not an input of the model "
                        f"(inputs: {', '.join(sorted(expected))})")


def _check_dtype(a: np.ndarray, spec: InputSpec, what: str) -> None:
    if a.dtype.kind not in "fiub" or a.dtype == object:
        raise DataError(f"{what}: input '{spec.name}' has dtype {a.dtype}, the model "
                        f"expects {spec.dtype}")
    if spec.dtype.kind == "f" and a.dtype.kind not in "f":
        raise DataError(f"{what}: input '{spec.name}' has dtype {a.dtype}, the model "
                        f"expects {spec.dtype} (convert and scale it first)")
    if spec.dtype.kind != "f" and a.dtype.kind == "f":
        raise DataError(f"{what}: input '{spec.name}' has dtype {a.dtype}, the model "
                        f"expects {spec.dtype}")


def _check_finite(a: np.ndarray, spec: InputSpec, what: str) -> None:
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            idx = np.argwhere(bad)[0]
            raise DataError(f"{what}: input '{spec.name}' contains NaN or Inf (first at "
                            f"index {tuple(int(i) for i in idx)})")


def _fmt_shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def batches(arrays: Mapping[str, np.ndarray], inputs: list[InputSpec],
            batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Yield feeds of at most `batch_size` samples.

    A model whose inputs fix the batch dimension gets batches of exactly that size; samples
    left over after the last full batch are not used.
    """
    n = next(iter(arrays.values())).shape[0]
    fixed = {s.shape[0] for s in inputs if s.shape and s.shape[0] is not None}
    if fixed:
        size = min(fixed)
        if n < size:
            raise DataError(f"the model's inputs fix the batch size to {size} but the data "
                            f"has only {n} samples")
        for start in range(0, n - size + 1, size):
            yield {k: v[start:start + size] for k, v in arrays.items()}
        return
    for start in range(0, n, max(1, batch_size)):
        yield {k: v[start:start + batch_size] for k, v in arrays.items()}
