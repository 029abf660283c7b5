"""Shards of calibration data: what one calibration worker reads, as plain values.

A shard is a contiguous range of feed indices [start, stop) (`lowp.feeds.shard_bounds`).
`plan_shards` describes every shard of any form of calibration data without reading the
feeds; a worker turns one description back into feeds with `feeds(inputs)`. Data given as
files travels as file names and the worker opens them itself (numpy, allow_pickle=False);
data in memory travels as the shard's own arrays, made only when the shard is sent.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..feeds import (
    CachedFeeds,
    Feed,
    FeedSource,
    ImageFeeds,
    NpzFolder,
    StackedFeeds,
    shard_bounds,
)
from ..inputs import ImagePreprocess, InputSpec, image_files, image_input, load_image, validate_feed

ShardMaker = Callable[[], "ShardData"]


@dataclass(frozen=True)
class ArrayShard:
    """Feeds held in memory: the shard's own arrays (already checked by the source)."""

    start: int
    arrays: tuple[Feed, ...]

    @property
    def num_feeds(self) -> int:
        return len(self.arrays)

    def feeds(self, inputs: list[InputSpec]) -> Iterator[Feed]:
        return iter(self.arrays)


@dataclass(frozen=True)
class NpzShard:
    """One feed per .npz file. `keys[k]` is the archive name of input k (None: the archives
    name the arrays after the inputs, as `lowp quantize --data` folders do)."""

    start: int
    files: tuple[str, ...]
    keys: tuple[str, ...] | None = None

    @property
    def num_feeds(self) -> int:
        return len(self.files)

    def feeds(self, inputs: list[InputSpec]) -> Iterator[Feed]:
        for i, path in enumerate(self.files):
            try:
                with np.load(path, allow_pickle=False) as z:
                    if not isinstance(z, np.lib.npyio.NpzFile):
                        raise DataError(f"{path}: expected an .npz archive")
                    feed = ({k: z[k] for k in z.files} if self.keys is None
                            else {s.name: z[k] for s, k in zip(inputs, self.keys, strict=True)})
            except (OSError, ValueError, KeyError) as e:
                raise DataError(f"{path}: not a readable .npz file without unpickling "
                                f"({type(e).__name__})") from None
            yield validate_feed(feed, self.start + i, inputs)


@dataclass(frozen=True)
class ImageShard:
    """One feed (a batch of one) per image file, aspect ratio kept (`--keep-aspect`)."""

    start: int
    files: tuple[str, ...]
    preprocess: ImagePreprocess

    @property
    def num_feeds(self) -> int:
        return len(self.files)

    def feeds(self, inputs: list[InputSpec]) -> Iterator[Feed]:
        spec = image_input(inputs)
        for i, path in enumerate(self.files):
            yield validate_feed({spec.name: load_image(Path(path), spec, self.preprocess)[None]},
                                self.start + i, inputs)


@dataclass(frozen=True)
class StackedShard:
    """Sample-stacked files (.npy/.npz with the samples on the first axis, or images):
    `parts` holds (file, first sample, end sample) of every file overlapping the shard, and
    the feeds are cut in batches of `batch_size` as `lowp.feeds.StackedFeeds` cuts them."""

    start: int
    stop: int
    parts: tuple[tuple[str, int, int], ...]
    batch_size: int
    preprocess: ImagePreprocess | None = None

    @property
    def num_feeds(self) -> int:
        return self.stop - self.start

    def feeds(self, inputs: list[InputSpec]) -> Iterator[Feed]:
        def chunks() -> Iterator[tuple[str, Mapping[str, np.ndarray]]]:
            for path, lo, hi in self.parts:
                arrays = _read_part(Path(path), inputs, self.preprocess)
                yield f"calibration data ({Path(path).name})", {
                    k: v[lo:hi] for k, v in arrays.items()}

        return iter(StackedFeeds(chunks, inputs, self.batch_size,
                                 num_samples=sum(hi - lo for _, lo, hi in self.parts)))


ShardData = ArrayShard | NpzShard | ImageShard | StackedShard


def plan_shards(data: Any, source: FeedSource, inputs: list[InputSpec], batch_size: int,
                preprocess: ImagePreprocess | None, shards: int | None
                ) -> tuple[int, list[ShardMaker]]:
    """The number of feeds of the data and one maker per shard (at most one per feed).

    `data` is what the user gave, `source` its `FeedSource` (`lowp.feeds.as_feeds`). A
    one-shot iterator is read to its end first (into its disk cache); a source of unknown
    length is counted with one pass. `shards` None gives one shard per feed up to 64.
    """
    if isinstance(data, NpzFolder):
        files = [str(f) for f in data.files]
        return _by_range(len(files), shards, lambda a, b: NpzShard(a, tuple(files[a:b])))
    if isinstance(source, ImageFeeds):
        images = [str(f) for f in source.files]
        pre = source.preprocess
        return _by_range(len(images), shards,
                         lambda a, b: ImageShard(a, tuple(images[a:b]), pre))
    if isinstance(data, (str, os.PathLike)) and isinstance(source, StackedFeeds):
        return _stacked(Path(data), source, inputs, batch_size, preprocess, shards)
    if isinstance(source, CachedFeeds):
        for _ in source:                     # the whole iterator into the cache
            pass
        cached = [str(f) for f in source.files]
        keys = tuple(f"arr_{k}" for k in range(len(inputs)))
        return _by_range(len(cached), shards,
                         lambda a, b: NpzShard(a, tuple(cached[a:b]), keys))
    num = source.num_feeds
    if num is None:
        num = sum(1 for _ in source)
    return _by_range(num, shards, lambda a, b: ArrayShard(a, tuple(source.slice(a, b))))


def _by_range(num: int, shards: int | None, make: Callable[[int, int], ShardData]
              ) -> tuple[int, list[ShardMaker]]:
    if num == 0:
        raise DataError("calibration data: no feeds")
    n = min(num, shards if shards is not None else 64)
    if n < 1:
        raise DataError(f"calibration needs at least one shard, got {shards}")
    makers: list[ShardMaker] = []
    for k in range(n):
        a, b = shard_bounds(num, k, n)
        makers.append(lambda a=a, b=b: make(a, b))    # type: ignore[misc]
    return num, makers


def _stacked(path: Path, source: StackedFeeds, inputs: list[InputSpec], batch_size: int,
             preprocess: ImagePreprocess | None, shards: int | None
             ) -> tuple[int, list[ShardMaker]]:
    """Shards of a sample-stacked file or folder: sample counts from the files' headers."""
    counts = _sample_counts(path, inputs)
    total = sum(n for _, n in counts)
    size = source.feed_size
    fixed = any(s.shape and s.shape[0] is not None for s in inputs)
    num = total // size if fixed else -(-total // size)
    if num == 0:
        raise DataError(f"the model's inputs fix the batch size to {size} but the data has "
                        f"only {total} samples")

    def make(a: int, b: int) -> StackedShard:
        lo, hi = a * size, min(b * size, total)
        parts, at = [], 0
        for file, n in counts:
            s, e = max(lo - at, 0), min(hi - at, n)
            if s < e:
                parts.append((file, s, e))
            at += n
        return StackedShard(a, b, tuple(parts), batch_size, preprocess)

    return _by_range(num, shards, make)


def _sample_counts(path: Path, inputs: list[InputSpec]) -> list[tuple[str, int]]:
    """(file, samples) of each file of the data, in the order `lowp.inputs.iter_chunks`
    reads them; arrays are counted from their headers, images are one sample each."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        return [(str(path), _rows(path, inputs))]
    images = image_files(path)
    if images:
        return [(str(f), 1) for f in images]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".npy", ".npz"))
    if not files:
        raise DataError(f"{path}: no .npy, .npz or image files in this folder")
    return [(str(f), _rows(f, inputs)) for f in files]


def _rows(path: Path, inputs: list[InputSpec]) -> int:
    """Samples (first axis) of the first model input in a .npy / .npz file, from the header
    (the whole array is read only when the header cannot be)."""
    try:
        if path.suffix == ".npy":
            return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])
        with zipfile.ZipFile(path) as z, z.open(f"{inputs[0].name}.npy") as f:
            version = np.lib.format.read_magic(f)
            shape = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                     else np.lib.format.read_array_header_2_0(f))[0]
            return int(shape[0]) if shape else 1
    except Exception:
        arrays = _read_part(path, inputs, None)
        first = arrays.get(inputs[0].name)
        if first is None:
            raise DataError(f"{path}: missing input {inputs[0].name}") from None
        return int(first.shape[0]) if first.ndim else 1


def _read_part(path: Path, inputs: list[InputSpec], pre: ImagePreprocess | None
               ) -> dict[str, np.ndarray]:
    """The arrays of one file of sample-stacked data (an image is a stack of one)."""
    from ..inputs import iter_chunks

    if path.suffix.lower() in {".npy", ".npz"}:
        return next(iter_chunks(path, inputs))[1]
    spec = image_input(inputs)
    return {spec.name: load_image(path, spec, pre or ImagePreprocess())[None]}
