"""Sharded calibration: the pass of `lowp.passes.calibrate` over shards of the feeds,
run by worker processes (a local process pool, a Dask cluster or a Ray cluster).

Each shard observes min/max (method minmax) or histograms (the others); the main process
merges the shards' states in shard order and chooses the ranges on the merged table.
Observer states are exact (min/max values, integer counts; a histogram's bins depend on
its final min/max only) and merged in a fixed order, so the table is bit-identical to a
single-process run for any number of shards and workers (docs/calibration.md,
"Calibrating at scale").

Workers receive the model with the observed tensors as outputs (bytes, sent once per
worker), the tensor names and a shard description (`lowp.calib.shards`); they send back
`Observer.to_dict()` states, rebuilt and checked with `observer_from_dict`. A shard whose
worker dies is run again (at most `MAX_RETRIES` times); only complete shards are merged.
"""

from __future__ import annotations

import enum
import hashlib
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from tqdm import tqdm

from ..config import CalibMethod, Config, QuantMode
from ..errors import DataError, LowpError
from ..feeds import CachedFeeds, FeedSource, as_feeds
from ..inputs import ImagePreprocess, InputSpec
from .observers import HistogramObserver, MinMaxObserver, Observer, observer_from_dict
from .shards import ShardData, ShardMaker, plan_shards
from .table import CalibrationTable

MAX_RETRIES = 2          # runs of a shard after the first, when its worker dies
_IN_FLIGHT = 2           # shards submitted per worker ahead of completion


class Scheduler(str, enum.Enum):
    """Where the shards run."""

    LOCAL = "local"      # a process pool on this machine
    DASK = "dask"        # a dask.distributed cluster (or a LocalCluster)
    RAY = "ray"          # a Ray cluster (or a local Ray instance)


@dataclass(frozen=True)
class ShardTask:
    """One pass over one shard, as a worker receives it (the model travels separately).

    `num_bins` is 0 for min/max observers, else the histograms' bin budget.
    """

    index: int
    tensors: tuple[str, ...]
    inputs: tuple[InputSpec, ...]
    data: ShardData
    threads: int
    num_bins: int = 0


# --- worker side ----------------------------------------------------------------------------
_SESSION: dict[str, Any] = {}        # one cached session per worker process


def _session(model: bytes, threads: int) -> ort.InferenceSession:
    if _SESSION.get("model") is model and _SESSION.get("threads") == threads:
        return _SESSION["session"]
    key = hashlib.blake2b(model, digest_size=16).hexdigest() + f"/{threads}"
    if _SESSION.get("key") != key:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.enable_mem_pattern = False          # see lowp.passes.calibrate.float_session
        opts.log_severity_level = 4
        _SESSION.clear()
        _SESSION.update(key=key, session=ort.InferenceSession(
            model, opts, providers=["CPUExecutionProvider"]))
    _SESSION.update(model=model, threads=threads)
    return _SESSION["session"]


def run_shard(model: bytes, task: ShardTask) -> dict[str, Any]:
    """Observe `task.tensors` over one shard; the states as plain values.

    Returns ``{"index", "feeds", "samples", "stats": {tensor: Observer.to_dict()}}``.
    """
    from ..passes.calibrate import run_exposed

    session = _session(model, task.threads)
    inputs = list(task.inputs)
    fed = {s.name for s in inputs}
    computed = [t for t in task.tensors if t not in fed]
    observers: dict[str, MinMaxObserver | HistogramObserver] = {
        t: (MinMaxObserver(t) if not task.num_bins
            else HistogramObserver(t, task.num_bins)) for t in task.tensors}
    feeds = samples = 0
    for feed in task.data.feeds(inputs):
        try:
            values = run_exposed(session, computed, feed) if computed else []
        except Exception as e:
            raise DataError(f"the float model failed on calibration feed "
                            f"{task.data.start + feeds}: "
                            f"{str(e).strip().splitlines()[0]}") from None
        observed = dict(zip(computed, values, strict=True))
        for t, obs in observers.items():
            obs.update(observed[t] if t in observed else feed[t])
        del values, observed              # before the next run: one feed's outputs at a time
        feeds += 1
        first = next(iter(feed.values()))
        samples += int(first.shape[0]) if first.ndim else 1
    return {"index": task.index, "feeds": feeds, "samples": samples,
            "stats": {t: obs.to_dict() for t, obs in observers.items()}}


def _identity(value: bytes) -> bytes:
    return value


_WORKER_MODEL: list[bytes] = []


def _init_local(model: bytes) -> None:
    _WORKER_MODEL[:] = [model]


def _run_local(task: ShardTask) -> dict[str, Any]:
    return run_shard(_WORKER_MODEL[0], task)


# --- main side: executors -------------------------------------------------------------------
Done = Callable[[dict[str, Any]], None]


class _Executor:
    """Runs every shard task of a pass; results come back in shard order."""

    workers: int

    def run(self, tasks: Sequence[Callable[[], ShardTask]], done: Done
            ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _LocalExecutor(_Executor):
    """A `ProcessPoolExecutor` (spawned processes); a pool broken by a dying worker is
    replaced and its unfinished shards resubmitted."""

    def __init__(self, model: bytes, workers: int) -> None:
        self.workers = workers
        self._model = model
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_local, initargs=(self._model,))

    def run(self, tasks: Sequence[Callable[[], ShardTask]], done: Done
            ) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(tasks)
        tries = [0] * len(tasks)
        todo = list(range(len(tasks)))                 # not yet submitted, in order
        running: dict[Future[dict[str, Any]], int] = {}

        def collect(f: Future[dict[str, Any]], i: int) -> bool:
            """Record a finished shard; False when its worker died (queued again)."""
            try:
                results[i] = f.result()
            except BrokenProcessPool:
                tries[i] += 1
                if tries[i] > MAX_RETRIES:
                    raise LowpError(f"calibration shard {i}: its worker process died "
                                    f"{tries[i]} times (a script calling lowp.calibrate "
                                    "must guard its top level with `if __name__ == "
                                    "'__main__':`, as worker processes import it)") from None
                todo.append(i)
                return False
            done(results[i])                           # type: ignore[arg-type]
            return True

        while todo or running:
            if self._pool is None:
                self._pool = self._new_pool()
            while todo and len(running) < _IN_FLIGHT * self.workers:
                i = todo.pop(0)
                running[self._pool.submit(_run_local, tasks[i]())] = i
            finished, _ = wait_futures(running, return_when=FIRST_COMPLETED)
            broken = False
            for f in finished:
                broken |= not collect(f, running.pop(f))
            if broken:            # the pool is unusable: its other shards fail (or finished)
                for f, i in running.items():
                    collect(f, i)
                running.clear()
                todo.sort()
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        return [r for r in results if r is not None]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class _DaskExecutor(_Executor):
    """Tasks on a dask.distributed cluster: `address`, or a LocalCluster of `workers`
    single-threaded processes. Dask reruns a task whose worker dies; `retries` reruns a
    task that raised."""

    def __init__(self, model: bytes, workers: int, address: str | None) -> None:
        try:
            import dask
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise LowpError("scheduler 'dask' needs dask.distributed: "
                            "pip install 'lowp[dask]'") from None
        self._cluster = None
        self._environ = dict(os.environ)
        if address is None:
            # Dask's nannies set MALLOC_TRIM_THRESHOLD_ in the workers' environment, which
            # turns off glibc's adaptive mmap threshold: every block of the histogram
            # updates is then mapped and unmapped afresh, ~3x slower. The nannies also
            # write their variables into this process's environment (restored by close).
            with dask.config.set({
                    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                             processes=True, dashboard_address=None)
            self._client = Client(self._cluster)
        else:
            self._client = Client(address)
        self.workers = max(1, len(self._client.scheduler_info().get("workers", {})) or workers)
        # a task holding the bytes, not scattered data: the scheduler can compute it again
        # on another worker when the worker holding it dies
        key = "lowp-calib-model-" + hashlib.blake2b(model, digest_size=16).hexdigest()
        with warnings.catch_warnings():        # "Sending large graph": once, on purpose
            warnings.filterwarnings("ignore", message="Sending large graph")
            self._model = self._client.submit(_identity, model, key=key, pure=False)

    def run(self, tasks: Sequence[Callable[[], ShardTask]], done: Done
            ) -> list[dict[str, Any]]:
        from dask.distributed import as_completed

        results: list[dict[str, Any] | None] = [None] * len(tasks)
        todo = list(range(len(tasks)))
        submit = lambda i: self._client.submit(run_shard, self._model, tasks[i](),  # noqa: E731
                                               retries=MAX_RETRIES, pure=False)
        queue = as_completed([submit(todo.pop(0))
                              for _ in range(min(len(todo), _IN_FLIGHT * self.workers))])
        for f in queue:
            r = f.result()
            results[r["index"]] = r
            done(r)
            f.release()
            if todo:
                queue.add(submit(todo.pop(0)))
        return [r for r in results if r is not None]

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        for key in set(os.environ) - set(self._environ):
            del os.environ[key]
        os.environ.update(self._environ)


class _RayExecutor(_Executor):
    """Remote tasks on Ray: `ray.init(address)` (a local instance of `workers` CPUs when
    None). Ray reruns a task whose worker dies or that raised, up to MAX_RETRIES times."""

    def __init__(self, model: bytes, workers: int, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise LowpError("scheduler 'ray' needs Ray: pip install 'lowp[ray]'") from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            if address is None:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", workers)))
        self._remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES,
                                  retry_exceptions=True)(run_shard)
        self._model = ray.put(model)

    def run(self, tasks: Sequence[Callable[[], ShardTask]], done: Done
            ) -> list[dict[str, Any]]:
        ray = self._ray
        results: list[dict[str, Any] | None] = [None] * len(tasks)
        todo = list(range(len(tasks)))
        running: list[Any] = []
        while todo or running:
            while todo and len(running) < _IN_FLIGHT * self.workers:
                running.append(self._remote.remote(self._model, tasks[todo.pop(0)]()))
            ready, running = ray.wait(running, num_returns=1)
            for ref in ready:
                r = ray.get(ref)
                results[r["index"]] = r
                done(r)
        return [r for r in results if r is not None]

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _executor(scheduler: Scheduler, model: bytes, workers: int, address: str | None
              ) -> _Executor:
    if scheduler is Scheduler.LOCAL:
        if address is not None:
            raise LowpError("scheduler 'local' takes no address (use dask or ray)")
        return _LocalExecutor(model, workers)
    if scheduler is Scheduler.DASK:
        return _DaskExecutor(model, workers, address)
    return _RayExecutor(model, workers, address)


# --- main side: the passes ------------------------------------------------------------------
def calibrate_sharded(model: onnx.ModelProto, tensors: list[str], data: Any,
                      inputs: list[InputSpec], config: Config, *,
                      scheduler: Scheduler | str = Scheduler.LOCAL, workers: int | None = None,
                      address: str | None = None, shards: int | None = None,
                      preprocess: ImagePreprocess | None = None, progress: bool = True,
                      source: FeedSource | None = None) -> CalibrationTable:
    """`lowp.passes.calibrate.calibrate` over shards run by workers; the same table.

    `data` is the calibration data as the user gave it (a path stays a path for the
    workers), `source` its `FeedSource` when already made; `shards` defaults to 4 per
    worker (at most one per feed).
    """
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise LowpError(f"workers must be >= 1, got {workers}")
    if source is None:
        source = as_feeds(data, inputs, config.batch_size, preprocess)
    num_feeds, makers = plan_shards(data, source, inputs, config.batch_size, preprocess,
                                    shards if shards is not None else 4 * workers)
    return calibrate_shards(model, tensors, inputs, config, num_feeds, makers,
                            scheduler=scheduler, workers=workers, address=address,
                            progress=progress)


def calibrate_shards(model: onnx.ModelProto, tensors: list[str], inputs: list[InputSpec],
                     config: Config, num_feeds: int, makers: Sequence[ShardMaker], *,
                     scheduler: Scheduler | str = Scheduler.LOCAL, workers: int = 1,
                     address: str | None = None, progress: bool = True) -> CalibrationTable:
    """The passes over shards already described (`lowp.calib.shards.plan_shards`): shard k
    is `makers[k]()`, and the shards hold `num_feeds` feeds in all."""
    from ..ir.graph import Graph
    from ..passes.calibrate import expose_tensors

    scheduler = Scheduler(scheduler)
    graph = Graph(model)
    tensors = [t for t in tensors if graph.is_tensor(t)]     # as passes.calibrate does
    constants = {t: graph.constant(t) for t in tensors if graph.is_constant(t)}
    runtime = [t for t in tensors if t not in constants]
    fed = {s.name for s in inputs}
    exposed = expose_tensors(model, [t for t in runtime if t not in fed]).SerializeToString()
    histograms = config.method is not CalibMethod.MINMAX
    threads = 1 if workers > 1 else 0

    num_bins = config.num_bins if histograms else 0

    def make(k: int, maker: ShardMaker) -> Callable[[], ShardTask]:
        return lambda: ShardTask(k, tuple(runtime), tuple(inputs), maker(), threads, num_bins)

    stats: dict[str, Observer] = {}
    with _Progress(num_feeds, progress) as bar:
        executor = _executor(scheduler, exposed, workers, address)
        try:
            what = f"{config.method.value} histograms" if histograms else "min/max"
            bar.label(f"calibrate {what} ({len(makers)} shards, {scheduler.value})")
            empty: list[Observer] = [HistogramObserver(t, num_bins) if histograms
                                     else MinMaxObserver(t) for t in runtime]
            stats.update(_merge(runtime, executor.run(
                [make(k, m) for k, m in enumerate(makers)], bar.done), empty, makers))
        finally:
            executor.close()
    for t, value in constants.items():
        obs = MinMaxObserver(t)
        obs.update(np.asarray(value, dtype=np.float32))
        stats[t] = obs
    table = CalibrationTable(stats[t] for t in tensors)
    unsigned = ({t for t in runtime}
                if not config.resolved_target().activation_qtype.signed else set())
    table.choose_ranges(config.method, num_quantized_bins=config.num_quantized_bins,
                        percentile=config.percentile, unsigned=unsigned,
                        exact=set(constants))
    return table


def _merge(runtime: list[str], results: list[dict[str, Any]], empty: list[Observer],
           makers: Sequence[ShardMaker]) -> dict[str, Observer]:
    """Merge shard states in shard order (never in completion order)."""
    if len(results) != len(makers):
        raise LowpError(f"calibration: {len(results)} of {len(makers)} shards finished")
    merged: dict[str, Observer] = {obs.name: obs for obs in empty}
    for k, r in enumerate(sorted(results, key=lambda r: r["index"])):
        if r["index"] != k or set(r["stats"]) != set(runtime):
            raise LowpError(f"calibration shard {k}: incomplete result")
        for t in runtime:
            merged[t] = merged[t].merge(observer_from_dict(r["stats"][t]))  # type: ignore
    return merged


class _Progress:
    """One tqdm bar over both passes: feeds done (per finished shard), rate and ETA; the
samples of the current pass and their rate."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = tqdm(total=total, unit="feed", disable=not enabled, leave=False,
                         smoothing=0)
        self._samples = 0
        self._t0 = time.perf_counter()

    def label(self, text: str) -> None:
        """Start a pass: its name, and its own sample count and rate."""
        self._bar.set_description_str(text)
        self._samples = 0
        self._t0 = time.perf_counter()

    def done(self, result: dict[str, Any]) -> None:
        self._samples += int(result["samples"])
        self._bar.update(int(result["feeds"]))
        rate = self._samples / max(time.perf_counter() - self._t0, 1e-9)
        self._bar.set_postfix_str(f"{self._samples} samples, {rate:.1f} samples/s")

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


# --- public entry ---------------------------------------------------------------------------
def calibrate(model: Any, calibration_data: Any, config: Config | None = None, *,
              scheduler: Scheduler | str = "local", workers: int | None = None,
              address: str | None = None, progress: bool = True, shards: int | None = None,
              preprocess: ImagePreprocess | None = None) -> CalibrationTable:
    """Calibrate a float model on worker processes; the table `lowp quantize` would compute.

    The model is prepared as `lowp.quantize_model` prepares it (canonicalized, smoothed when
    `config.smooth_alpha` is set, annotated) and its annotated tensors are observed over
    shards of the data (see the module docstring). The result equals a single-process run
    bit for bit; save it with `table.save(path)` and give it to
    `quantize_model(..., calib_table=path)`.

    Parameters
    ----------
    model
        Path, serialized bytes or ModelProto of a float model (or a torch.nn.Module, exported
        as `quantize_model` exports it).
    calibration_data
        Any form `lowp.quantize_model` accepts. Paths (a sample-stacked .npz / folder, a
        `lowp.feeds.NpzFolder`) are opened by the workers; data in memory is sent shard by
        shard; a one-shot iterator is cached on disk first.
    config
        As for `quantize_model` (method, bins, percentile, target, exclusions, batch size);
        the method must be a fixed one (default: minmax).
    scheduler
        "local" (a process pool), "dask" or "ray".
    workers
        Worker processes (default: the machine's cores) for "local" and for a cluster
        started here; with more than one, each ONNX Runtime session uses one thread.
    address
        An existing cluster: a Dask scheduler ("tcp://host:8786") or a Ray address
        ("auto", "ray://host:10001").
    progress
        Show a progress bar.
    shards
        Number of shards (default: 4 per worker, at most one per feed).
    preprocess
        How a folder of images becomes the model input.

    Returns
    -------
    CalibrationTable
        Statistics and chosen ranges of every annotated tensor.
    """
    from ..inputs import model_inputs
    from ..ir.graph import load_model
    from ..passes.annotate import annotate
    from ..passes.canonicalize import canonicalize
    from ..pipeline import _check_node_names, _from_torch, prepare

    config = config or Config(method=CalibMethod.MINMAX)
    if config.mode is QuantMode.DYNAMIC:
        raise DataError("dynamic quantization uses no calibration table")
    if config.method is CalibMethod.MEASURED:
        raise DataError("method 'measured' chooses among whole quantized models (lowp "
                        "quantize); a calibration table holds the ranges of one fixed method: "
                        "give minmax, entropy, percentile, mse or auto")
    loaded = load_model(_from_torch(model, calibration_data))
    _check_node_names(loaded, config)
    float_model = canonicalize(loaded)
    inputs = model_inputs(float_model)
    source = as_feeds(calibration_data, inputs, config.batch_size, preprocess)
    try:
        float_model = prepare(float_model, source, inputs, config)
        tensors = annotate(float_model, config).activations
        table = calibrate_sharded(float_model, tensors, calibration_data, inputs, config,
                                  scheduler=scheduler, workers=workers, address=address,
                                  shards=shards, preprocess=preprocess, progress=progress,
                                  source=source)
        if config.equalize:               # tables of unequalized models stay as they were
            table.record(equalize=True)
        return table
    finally:
        if isinstance(source, CachedFeeds) and source is not calibration_data:
            source.close()                # the one-shot iterator's cache is ours to remove

