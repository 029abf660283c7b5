"""Calibration data as a stream of feeds: every accepted form behind one `FeedSource`.

A *feed* is one call of the model, `{input name: array}` with the shapes that call takes.
Calibration runs one pass over the data, smoothing one more (and a refused tensor may call
for another calibration), so a source must be re-iterable; every consumer iterates a
`FeedSource` and holds one feed at a time. The forms (`as_feeds` picks one):

- `StackedFeeds`: arrays whose first axis is the sample axis (a mapping, an .npz file, a
  folder of .npy/.npz files or of images), read one file at a time and cut into batches of
  `batch_size` samples exactly as `lowp.inputs.batches` cuts the concatenated arrays;
- `DictFeeds`: feed dicts from a re-iterable object (a list, a DataLoader-like object) or
  from a zero-argument callable returning a fresh iterable on every pass;
- `CachedFeeds`: feed dicts from a one-shot iterator (a generator object), written to a
  temporary folder of .npz files as they arrive and read back on later passes;
- `NpzFolder(folder)`: one feed per .npz file, in name order (`lowp quantize --data`);
- `image_feeds(folder)`: one feed per image, aspect ratio kept (`--keep-aspect`).

`source.shard(k, n)` is shard k of n: a contiguous range of feed indices (`shard_bounds`),
for sharded calibration (`lowp.calib.sharded`); it reads no feed outside its range where
the form allows (arrays, a one-shot iterator's cache, image files) and skips them otherwise.

Feeds given as dicts are checked one by one (`lowp.inputs.validate_feed`): a bad name,
dtype or shape is a DataError naming the feed's index and the input.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .inputs import (
    ImagePreprocess,
    InputSpec,
    image_files,
    image_input,
    iter_chunks,
    load_image,
    validate,
    validate_feed,
)

Feed = dict[str, np.ndarray]


class FeedSource:
    """A re-iterable stream of feed dicts; `num_feeds` is their number when known.

    Iterating twice gives the same feeds in the same order. `close` releases what the source
    holds (the cache of a one-shot iterator); a closed source cannot be iterated again.
    """

    def __iter__(self) -> Iterator[Feed]:
        raise NotImplementedError

    @property
    def num_feeds(self) -> int | None:
        """Number of feeds, or None when only a full pass can tell."""
        return None

    def __len__(self) -> int:
        n = self.num_feeds
        if n is None:
            raise TypeError(f"{type(self).__name__}: the number of feeds is not known before "
                            "a full pass")
        return n

    def first(self) -> Feed:
        """The first feed (a DataError when there is none)."""
        for feed in self:
            return feed
        raise DataError("calibration data: no feeds")

    def slice(self, start: int, stop: int) -> FeedSource:
        """Feeds `start` to `stop - 1` as a source of their own (indices from 0).

        The default reads the feeds before `start` and drops them; forms that can jump to a
        feed override it.
        """
        return FeedSlice(self, start, stop)

    def shard(self, k: int, n: int) -> FeedSource:
        """Shard `k` of `n`: the feeds `shard_bounds(len(self), k, n)` (needs `num_feeds`)."""
        return self.slice(*shard_bounds(len(self), k, n))

    def close(self) -> None:
        """Release resources; the default holds none."""

    def __enter__(self) -> FeedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shard_bounds(num_feeds: int, k: int, n: int) -> tuple[int, int]:
    """Feed range [start, stop) of shard `k` of `n`: contiguous, in order, sizes differing
    by at most one (the first `num_feeds % n` shards hold one more feed).

    Examples
    --------
    >>> [shard_bounds(7, k, 3) for k in range(3)]
    [(0, 3), (3, 5), (5, 7)]
    """
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard {k} of {n}: need 0 <= k < n")
    base, extra = divmod(num_feeds, n)
    start = k * base + min(k, extra)
    return start, start + base + (k < extra)


class _FeedRange(FeedSource):
    """Another source and a range [start, stop) of its feeds."""

    def __init__(self, source: FeedSource, start: int, stop: int) -> None:
        if not 0 <= start <= stop:
            raise ValueError(f"feed range [{start}, {stop}) is not a range")
        self._source, self._start, self._stop = source, start, stop


class FeedSlice(_FeedRange):
    """Feeds [start, stop) of another source, read through it (those before are skipped)."""

    @property
    def num_feeds(self) -> int | None:
        return self._stop - self._start

    def __iter__(self) -> Iterator[Feed]:
        return itertools.islice(iter(self._source), self._start, self._stop)


class FeedsWithout(_FeedRange):
    """Every feed of another source but those in [start, stop) (the complement of a fold)."""

    @property
    def num_feeds(self) -> int | None:
        n = self._source.num_feeds
        return None if n is None else n - (min(self._stop, n) - min(self._start, n))

    def __iter__(self) -> Iterator[Feed]:
        return (f for i, f in enumerate(self._source) if not self._start <= i < self._stop)


class StackedFeeds(FeedSource):
    """Sample-stacked arrays (first axis = samples) cut into batches of `batch_size`.

    `chunks` returns, on every call, an iterator over parts of the data set (one per file,
    or the whole mapping); each part is validated and the batches are cut across part
    boundaries, so the feeds equal those of `lowp.inputs.batches` over the concatenation
    while at most one part and one batch are in memory. A model whose inputs fix the batch
    size gets batches of exactly that size (samples left after the last one are unused).
    """

    def __init__(self, chunks: Callable[[], Iterator[tuple[str, Mapping[str, np.ndarray]]]],
                 inputs: list[InputSpec], batch_size: int,
                 num_samples: int | None = None) -> None:
        self._chunks = chunks
        self._inputs = inputs
        fixed = {s.shape[0] for s in inputs if s.shape and s.shape[0] is not None}
        self._size = min(fixed) if fixed else max(1, batch_size)
        self._fixed = bool(fixed)
        self._num_samples = num_samples

    @property
    def num_feeds(self) -> int | None:
        n = self._num_samples
        if n is None:
            return None
        return n // self._size if self._fixed else -(-n // self._size)

    @property
    def feed_size(self) -> int:
        """Samples per feed (the last feed may hold fewer when the model does not fix it)."""
        return self._size

    @property
    def fixed_batch(self) -> bool:
        """True when the model's inputs fix the batch size (every feed holds `feed_size`)."""
        return self._fixed

    @property
    def num_samples(self) -> int | None:
        """Samples in the data, when known."""
        return self._num_samples

    def rebatched(self, batch_size: int, num_samples: int | None = None) -> StackedFeeds:
        """The same samples cut into feeds of `batch_size` (a model that fixes the batch
        size keeps its own); `num_samples` tells the count when the source does not know."""
        return StackedFeeds(self._chunks, self._inputs, batch_size if not self._fixed
                            else self._size, num_samples=(self._num_samples if num_samples
                                                          is None else num_samples))

    def slice(self, start: int, stop: int) -> StackedFeeds:
        """Feeds [start, stop): the samples [start * feed_size, stop * feed_size), cut from
        the parts that hold them (parts before are read, but neither validated nor kept).
        The feeds equal those of the whole source at the same indices."""
        lo, hi = start * self._size, stop * self._size
        if self._num_samples is not None:
            hi = min(hi, self._num_samples)

        def chunks() -> Iterator[tuple[str, Mapping[str, np.ndarray]]]:
            at = 0
            for what, part in self._chunks():
                n = _num_samples(part)
                a, b = max(lo - at, 0), min(hi - at, n)
                at += n
                if a < b:
                    yield what, {k: v[a:b] for k, v in part.items()}
                if at >= hi:
                    return

        return StackedFeeds(chunks, self._inputs, self._size,
                            num_samples=max(0, hi - lo) if self._num_samples is not None
                            else None)

    def __iter__(self) -> Iterator[Feed]:
        size = self._size
        pending: list[Feed] = []            # validated parts not yet cut, in order
        have = 0                            # samples in `pending`
        total = 0
        for what, part in self._chunks():
            arrays = validate(part, self._inputs, what=what)
            n = next(iter(arrays.values())).shape[0]
            total += n
            pending.append(arrays)
            have += n
            while have >= size:
                batch, pending = _cut(pending, size)
                have -= size
                yield batch
        if self._fixed and total < size:
            raise DataError(f"the model's inputs fix the batch size to {size} but the data "
                            f"has only {total} samples")
        if have and not self._fixed:
            yield _cut(pending, have)[0]


def _num_samples(part: Mapping[str, Any]) -> int:
    """Samples in one part of stacked data (its first array's first axis)."""
    first = next(iter(part.values()), None)
    return int(np.shape(first)[0]) if first is not None and np.ndim(first) else 0


def _cut(parts: list[Feed], size: int) -> tuple[Feed, list[Feed]]:
    """The first `size` samples of the concatenated parts, and the parts that remain."""
    taken: list[Feed] = []
    need = size
    rest = list(parts)
    while need:
        part = rest.pop(0)
        n = next(iter(part.values())).shape[0]
        if n <= need:
            taken.append(part)
            need -= n
        else:
            taken.append({k: v[:need] for k, v in part.items()})
            rest.insert(0, {k: v[need:] for k, v in part.items()})
            need = 0
    if len(taken) == 1:
        return taken[0], rest
    return {k: np.concatenate([p[k] for p in taken]) for k in taken[0]}, rest


class DictFeeds(FeedSource):
    """Feed dicts from `make()`, called once per pass; each feed is checked and converted.

    `make` returns a fresh iterable of mappings (input name -> array or tensor). A pass that
    yields no feed at all is a DataError: a callable that hands back an exhausted iterator
    on the second pass would otherwise calibrate that pass on nothing.
    """

    def __init__(self, make: Callable[[], Iterable[Any]], inputs: list[InputSpec],
                 num_feeds: int | None = None) -> None:
        self._make = make
        self._inputs = inputs
        self._num = num_feeds

    @property
    def num_feeds(self) -> int | None:
        return self._num

    def __iter__(self) -> Iterator[Feed]:
        items = self._make()
        if not isinstance(items, Iterable) or isinstance(items, (str, bytes, Mapping)):
            raise DataError(f"calibration data: the callable returned a "
                            f"{type(items).__name__}, expected an iterable of feed dicts")
        count = 0
        for index, item in enumerate(items):
            count += 1
            yield validate_feed(item, index, self._inputs)
        if count == 0:
            raise DataError("calibration data: no feeds (an empty iterable, or a callable "
                            "that returned an exhausted iterator: it must return a fresh "
                            "iterable on every call)")
        self._num = count


class CachedFeeds(FeedSource):
    """Feeds of a one-shot iterator, cached on disk as they are first read.

    Feed i is validated, written to `<tmp>/<i>.npz` (arrays in the order of the model's
    inputs) and handed on; a later pass reads the files back (allow_pickle=False) and then
    continues with the iterator where an earlier, abandoned pass left it. The folder is
    removed by `close` (or when the source is garbage-collected).
    """

    def __init__(self, iterator: Iterator[Any], inputs: list[InputSpec],
                 directory: str | os.PathLike[str] | None = None) -> None:
        self._iterator: Iterator[Any] | None = iterator
        self._inputs = inputs
        self._parent = directory
        self._dir: Path | None = None
        self._count = 0
        self._closed = False
        self._finalizer: weakref.finalize | None = None

    @property
    def num_feeds(self) -> int | None:
        return self._count if self._iterator is None else None

    @property
    def directory(self) -> Path | None:
        """The cache folder (None before the first feed or after `close`)."""
        return self._dir

    def __iter__(self) -> Iterator[Feed]:
        index = 0
        while True:
            if self._closed:
                raise DataError("calibration data: the one-shot iterator's cache was "
                                "removed (the source is closed)")
            if index < self._count:
                yield self._read(index)
            elif self._iterator is None:
                break
            else:
                try:
                    item = next(self._iterator)
                except StopIteration:
                    self._iterator = None
                    continue
                feed = validate_feed(item, index, self._inputs)
                self._write(index, feed)
                self._count += 1
                yield feed
            index += 1
        if self._count == 0:
            raise DataError("calibration data: the iterator yielded no feeds")

    @property
    def files(self) -> list[Path]:
        """The cache file of every feed read so far, in order; feed i's arrays are stored
        positionally (`arr_k` is the k-th model input)."""
        return [self._path(i) for i in range(self._count)] if self._count else []

    def slice(self, start: int, stop: int) -> FeedSource:
        if self._iterator is not None or self._closed:
            return FeedSlice(self, start, stop)
        return DictFeeds(lambda: (self._read(i) for i in range(start, min(stop, self._count))),
                         self._inputs, num_feeds=max(0, min(stop, self._count) - start))

    def _path(self, index: int) -> Path:
        assert self._dir is not None
        return self._dir / f"{index:08d}.npz"

    def _write(self, index: int, feed: Feed) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="lowp-feeds-", dir=self._parent))
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._dir), True)
        # positional arrays: input names need not be valid keyword names for numpy.savez
        np.savez(self._path(index), *[feed[s.name] for s in self._inputs])

    def _read(self, index: int) -> Feed:
        with np.load(self._path(index), allow_pickle=False) as z:
            return {s.name: z[f"arr_{k}"] for k, s in enumerate(self._inputs)}

    def close(self) -> None:
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()
        self._dir = None


class NpzFolder:
    """One feed per .npz file of a folder, in file-name order (`lowp quantize --data`).

    Each file holds one call of the model: arrays named after the inputs with exactly the
    shapes the model takes (the batch axis included, e.g. (1, 3, H, W) for one image), so
    files may differ in shape. Files are read one at a time, without unpickling. A plain
    re-iterable of dicts: `as_feeds` checks the feeds against the model.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        path = Path(folder)
        if not path.is_dir():
            raise DataError(f"{path}: not a folder (expected a folder of .npz files, one "
                            "per feed)")
        self.files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".npz")
        if not self.files:
            raise DataError(f"{path}: no .npz files in this folder")

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Feed]:
        for f in self.files:
            try:
                with np.load(f, allow_pickle=False) as z:
                    if not isinstance(z, np.lib.npyio.NpzFile):
                        raise DataError(f"{f}: expected an .npz archive")
                    feed = {k: z[k] for k in z.files}
            except (OSError, ValueError) as e:
                raise DataError(f"{f}: not a readable .npz file without unpickling "
                                f"({type(e).__name__})") from None
            yield feed


def image_feeds(folder: str | os.PathLike[str], inputs: list[InputSpec],
                pre: ImagePreprocess) -> DictFeeds:
    """One feed (a batch of one) per image of `folder`, in name order: with
    `pre.keep_aspect` the images keep their aspect ratio, so their sizes differ."""
    files = image_files(Path(folder))
    if not files:
        raise DataError(f"{folder}: no image files in this folder")
    return ImageFeeds(files, inputs, pre)


class ImageFeeds(DictFeeds):
    """One feed (a batch of one) per image file, in the given order (`image_feeds`)."""

    def __init__(self, files: list[Path], inputs: list[InputSpec],
                 pre: ImagePreprocess) -> None:
        spec = image_input(inputs)
        self.files = list(files)
        self.preprocess = pre
        super().__init__(lambda: ({spec.name: load_image(f, spec, pre)[None]}
                                  for f in self.files), inputs, num_feeds=len(self.files))

    def slice(self, start: int, stop: int) -> ImageFeeds:
        return ImageFeeds(self.files[start:stop], self._inputs, self.preprocess)


def as_feeds(data: Any, inputs: list[InputSpec], batch_size: int,
             preprocess: ImagePreprocess | None = None) -> FeedSource:
    """The `FeedSource` of any accepted form of calibration data.

    Parameters
    ----------
    data
        A FeedSource (returned as is); a path (.npz file, folder of .npy/.npz files or of
        images) or a mapping input name -> array, both with the samples on the first axis;
        an iterable of feed dicts (list, DataLoader-like object); a zero-argument callable
        returning a fresh iterable of feed dicts; or a one-shot iterator of feed dicts
        (a generator object: cached on disk during the first pass).
    inputs
        The model's inputs (`lowp.inputs.model_inputs`).
    batch_size
        Samples per feed for the sample-stacked forms.
    preprocess
        How a folder of images becomes the model input; with `keep_aspect`, one feed per
        image (`image_feeds`).

    Examples
    --------
    >>> import numpy as np
    >>> spec = [InputSpec("x", np.dtype(np.float32), (None, 3))]
    >>> feeds = as_feeds([{"x": np.zeros((1, 3))}, {"x": np.ones((2, 3))}], spec, 16)
    >>> [f["x"].shape for f in feeds]
    [(1, 3), (2, 3)]
    >>> [f["x"].shape[0] for f in as_feeds({"x": np.zeros((5, 3))}, spec, 2)]
    [2, 2, 1]
    """
    if isinstance(data, FeedSource):
        return data
    if isinstance(data, (str, os.PathLike)):
        if preprocess is not None and preprocess.keep_aspect and Path(data).is_dir():
            return image_feeds(data, inputs, preprocess)
        return StackedFeeds(lambda: iter_chunks(data, inputs, preprocess, batch_size),
                            inputs, batch_size)
    if isinstance(data, Mapping):
        first = next(iter(data.values()), None)
        samples = np.shape(first)[0] if first is not None and np.ndim(first) else None
        return StackedFeeds(lambda: iter([("calibration data", data)]), inputs, batch_size,
                            num_samples=samples)
    if isinstance(data, (np.ndarray, bytes)):
        raise DataError(f"calibration data: got a {type(data).__name__}; give a mapping "
                        "{input name: array} (first axis = samples) or feed dicts")
    if isinstance(data, Iterator):
        return CachedFeeds(data, inputs)
    if isinstance(data, Iterable):
        try:
            count: int | None = len(data)  # type: ignore[arg-type]
        except TypeError:
            count = None
        return DictFeeds(lambda: data, inputs, num_feeds=count)
    if callable(data):
        return DictFeeds(data, inputs)
    raise DataError(f"calibration data: cannot read a {type(data).__name__}; give a path, a "
                    "mapping of arrays, an iterable of feed dicts or a callable returning one")
