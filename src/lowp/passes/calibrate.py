"""Calibrate: run the float model on data with ONNX Runtime and stream every annotated
tensor into observers in one pass: min/max, or for the histogram methods histograms of
power-of-two bins that follow the data (`lowp.calib.observers.HistogramObserver`).

The data is a re-iterable stream of feeds (`lowp.feeds.FeedSource`); one feed and its
outputs are in memory at a time, whatever their shapes. The outputs are read where ONNX
Runtime wrote them (`run_exposed`, no copy) and the session plans no memory pattern, so the
peak is the model, one feed's exposed activations and the histograms
(docs/calibration.md, "Native scans, and what one run costs")."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from tqdm import tqdm

from ..calib import CalibrationTable, HistogramObserver, MinMaxObserver
from ..config import CalibMethod, Config
from ..errors import DataError
from ..inputs import InputSpec
from ..ir.graph import Graph


def expose_tensors(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of `model` whose graph outputs also include `names`."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    present = {o.name for o in out.graph.output}
    for name in names:
        if name not in present:
            out.graph.output.append(onnx.helper.make_tensor_value_info(
                name, onnx.TensorProto.FLOAT, None))
            present.add(name)
    return out


def float_session(model: onnx.ModelProto | bytes, threads: int = 0, *,
                  mem_pattern: bool = True) -> ort.InferenceSession:
    """An ONNX Runtime CPU session of `model`.

    `mem_pattern=False` for a model with many exposed outputs (calibration): with a memory
    pattern, ONNX Runtime allocates one block for every intermediate from the second run on,
    besides the exposed outputs, which cost a third more memory at no gain in speed.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_mem_pattern = mem_pattern
    opts.log_severity_level = 4        # failures reach the user as one lowp error line
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])



def reference_session(model: onnx.ModelProto | bytes, *,
                      mem_pattern: bool = True) -> ort.InferenceSession:
    """An ONNX Runtime CPU session at one intra-op thread: the configuration lowp's engine
    reproduces bit for bit. With more threads MLAS cuts a float product (MatMul, Gemm, the
    im2col Conv, the recurrent steps) between them, which changes the blocks each part sums
    in, so ONNX Runtime's own float results depend on its thread count (docs/operators.md,
    (O21)); comparisons of the two engines use this session."""
    return float_session(model, threads=1, mem_pattern=mem_pattern)

class _OrtBuffer:
    """An OrtValue as a DLPack producer: `numpy.from_dlpack` views its memory (no copy), and
    the view keeps the value alive."""

    __slots__ = ("_value",)

    def __init__(self, value: ort.OrtValue) -> None:
        self._value = value

    def __dlpack__(self, *, stream: None = None, **_: object) -> Any:
        return self._value._ortvalue.to_dlpack()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)                  # kDLCPU, device 0


def _as_numpy(value: ort.OrtValue) -> np.ndarray:
    try:
        out = np.from_dlpack(_OrtBuffer(value))
    except (AttributeError, TypeError, BufferError, RuntimeError):
        return value.numpy()           # a dtype DLPack does not carry: a copy
    shape = tuple(value.shape())
    return out if out.shape == shape else out.reshape(shape)   # a scalar comes as (1,)


def run_exposed(session: ort.InferenceSession, names: list[str],
                feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """`session.run(names, feed)` without copying the outputs: numpy arrays that view ONNX
    Runtime's output buffers (a copy would double the memory of a calibration run)."""
    inputs = {k: ort.OrtValue.ortvalue_from_numpy(np.asarray(v, order="C"))
              for k, v in feed.items()}
    return [_as_numpy(v) for v in session.run_with_ort_values(names, inputs)]


def calibrate(model: onnx.ModelProto, tensors: list[str],
              feeds: Iterable[Mapping[str, np.ndarray]], inputs: list[InputSpec],
              config: Config, *, progress: bool = True) -> CalibrationTable:
    """Observe `tensors` over `feeds`; return a table with statistics and chosen ranges.

    Names of sequence values (not tensors, never quantized) are skipped.

    `feeds` is iterated once, for every method. A tensor that is a
    constant of the graph is observed from its value, and its range is its exact [min, max]
    under every method (see `CalibrationTable.choose_ranges`, `exact`).
    """
    if config.method is CalibMethod.MEASURED:
        raise DataError("method 'measured' chooses among whole quantized models "
                        "(pipeline.quantize); calibration needs a fixed method: give "
                        "minmax, entropy, percentile, mse or auto")
    graph = Graph(model)
    # only tensors get observers: a sequence value (ONNX Runtime returns it as a list) has
    # no range and is never quantized; it is left out of the table
    tensors = [t for t in tensors if graph.is_tensor(t)]
    constants = {t: graph.constant(t) for t in tensors if graph.is_constant(t)}
    runtime = [t for t in tensors if t not in constants]
    fed = {i.name for i in inputs}
    session = float_session(expose_tensors(model, [t for t in runtime if t not in fed]),
                            mem_pattern=False)
    table = CalibrationTable()

    observers: dict[str, MinMaxObserver | HistogramObserver] = {
        t: (MinMaxObserver(t) if config.method is CalibMethod.MINMAX
            else HistogramObserver(t, config.num_bins)) for t in runtime}
    label = ("calibrate min/max" if config.method is CalibMethod.MINMAX
             else f"calibrate {config.method.value} histograms")
    for outputs in _run(session, runtime, feeds, inputs, progress, label):
        for t, v in outputs.items():
            observers[t].update(v)
    stats = dict(observers)
    for t, value in constants.items():
        obs = MinMaxObserver(t)
        obs.update(np.asarray(value, dtype=np.float32))
        stats[t] = obs
    for t in tensors:
        table.add(stats[t])
    unsigned = ({t for t in tensors if t not in constants}
                if not config.resolved_target().activation_qtype.signed else set())
    table.choose_ranges(config.method, num_quantized_bins=config.num_quantized_bins,
                        percentile=config.percentile, unsigned=unsigned,
                        exact=set(constants))
    return table


def _run(session: ort.InferenceSession, names: list[str],
         feeds: Iterable[Mapping[str, np.ndarray]], inputs: list[InputSpec], progress: bool,
         label: str) -> Iterator[dict[str, np.ndarray]]:
    total = getattr(feeds, "num_feeds", None)
    bar = tqdm(total=total, desc=label, unit="feed", disable=not progress, leave=False)
    # graph inputs are observed in the feeds; the session computes the rest (asked for no
    # names at all, ONNX Runtime would return every output)
    computed = [t for t in names if t not in {i.name for i in inputs}]
    try:
        for index, feed in enumerate(feeds):
            t0 = time.perf_counter()
            try:
                values = run_exposed(session, computed, feed) if computed else []
            except Exception as e:
                raise DataError(f"the float model failed on calibration feed {index}: "
                                f"{str(e).strip().splitlines()[0]}") from None
            bar.update(1)
            bar.set_postfix_str(f"{(time.perf_counter() - t0) * 1e3:.1f} ms/feed")
            observed = dict(zip(computed, values, strict=True))
            del values
            observed.update({t: feed[t] for t in names if t not in observed})
            yield observed
            # the caller is done with this feed's outputs: release them before the next run
            # (the caller's name for the dict would keep them alive through it)
            observed.clear()
    finally:
        bar.close()
