"""Per-layer statistics for the HTML report: every quantized activation's error against the
float model three ways (fake-quant in ONNX Runtime, lowp's engine, lowp against ONNX
Runtime), accumulated and local, streamed feed by feed; plus its histogram and range."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort

from ..calib.observers import HistogramObserver
from ..calib.table import CalibrationTable
from ..errors import LowpError
from ..ir.graph import Graph
from ..passes.calibrate import expose_tensors, reference_session, run_exposed
from ..qparams import QParams
from ..runtime import Session
from ..targets import Target
from .analysis import activation_dqs, sqnr_of_energies
from .local import LocalModel, local_model
from .ranges import RangeChoice, range_choice, report_histogram

# Elements per block of float64 temporaries in Figures.add.
_BLOCK_ELEMENTS = 1 << 20


class Comparison(enum.Enum):
    """What is compared with what; the reference comes first."""

    FAKE_QUANT = "fake-quant vs float"        # the QDQ model in ONNX Runtime vs float
    LOWP = "lowp vs float"                    # lowp's integer engine vs float
    AGREEMENT = "lowp vs ONNX Runtime"        # the two engines on the same QDQ model


@dataclass
class Figures:
    """Energies of a reference and of its difference to an approximation, summed over
    feeds (so the SQNR over all feeds is exact whatever the cut), and elementwise counts."""

    signal: float = 0.0
    noise: float = 0.0
    max_abs: float = 0.0
    elements: int = 0
    differ: int = 0

    @property
    def sqnr_db(self) -> float:
        """The SQNR in dB; NaN when nothing was compared (the value was not available)."""
        return sqnr_of_energies(self.signal, self.noise) if self.elements else math.nan

    @property
    def identical_share(self) -> float:
        return 1.0 - self.differ / self.elements if self.elements else 1.0

    def add(self, reference: np.ndarray, approx: np.ndarray) -> None:
        """Add one feed's values (same shapes), a block of elements at a time."""
        ref = np.asarray(reference).reshape(-1)
        app = np.asarray(approx).reshape(-1)
        for i in range(0, ref.size, _BLOCK_ELEMENTS):
            r = ref[i:i + _BLOCK_ELEMENTS].astype(np.float64)
            err = r - app[i:i + _BLOCK_ELEMENTS].astype(np.float64)
            self.signal += float(np.sum(r * r))
            self.noise += float(np.sum(err * err))
            self.max_abs = max(self.max_abs, float(np.max(np.abs(err))))
            self.differ += int(np.count_nonzero(err))
        self.elements += ref.size


@dataclass(frozen=True)
class LayerSources:
    """What the report knows about the quantization besides the model: the calibration
    table, which tensors copy another's qparams, and the target."""

    table: CalibrationTable | None = None
    shared: Mapping[str, str] = field(default_factory=dict)
    target: Target | None = None

    def table_key(self, tensor: str) -> str:
        """The tensor whose calibrated range `tensor` uses."""
        seen: set[str] = set()
        while tensor in self.shared and tensor not in seen:
            seen.add(tensor)
            tensor = self.shared[tensor]
        return tensor


@dataclass(frozen=True)
class LayerRow:
    """One quantized activation of the report, in graph order."""

    index: int
    tensor: str
    reference: str                      # its name in the float model
    producer: str
    op_type: str
    qparams: QParams
    weights: str                        # "per-channel (16)", "per-tensor" or ""
    accumulated: dict[Comparison, Figures]
    local: dict[Comparison, Figures]
    shares_with: str | None             # tensor whose calibrated range it uses, if another
    ranges: RangeChoice | None

    def local_db(self) -> float:
        """The error the layer adds by itself: lowp's local SQNR (fake-quant's when lowp's
        value was not available)."""
        db = self.local[Comparison.LOWP].sqnr_db
        return self.local[Comparison.FAKE_QUANT].sqnr_db if math.isnan(db) else db

    @property
    def bits(self) -> int:
        return self.qparams.qtype.bits

    @property
    def grid(self) -> tuple[float, float]:
        """The real interval the integer grid covers: scale * ([qmin, qmax] - zero_point)."""
        s, z = float(self.qparams.scale), int(self.qparams.zero_point)
        return s * (self.qparams.qmin - z), s * (self.qparams.qmax - z)


@dataclass(frozen=True)
class LayerReport:
    """The per-layer section's data: rows in graph order, the samples they cover, and the
    nodes left in float."""

    rows: list[LayerRow]
    samples: int
    float_nodes: list[tuple[str, str]]          # (name, op type) of float compute nodes
    target: Target | None
    outputs: dict[str, dict[Comparison, Figures]]   # the model's float outputs
    local_problem: str = ""          # why lowp's engine gave no local figures, if it did not

    def worst(self, n: int = 5) -> list[LayerRow]:
        """The rows with the lowest local SQNR (lowp vs float): where to look first."""
        measured = [r for r in self.rows if not math.isnan(r.local_db())]
        return sorted(measured, key=LayerRow.local_db)[:n]


# ops that compute nothing: listing them as "kept in float" would only be noise
_DATA_MOVEMENT = {"QuantizeLinear", "DequantizeLinear", "Reshape", "Flatten", "Squeeze",
                  "Unsqueeze", "Transpose", "Shape", "Gather", "Concat", "Slice", "Identity",
                  "Constant", "Cast", "Split", "Expand", "Tile", "ConstantOfShape", "Range"}


class LayerStats:
    """Streams feeds through four engines and accumulates `LayerRow` figures.

    Per feed (one run of a few samples): the float model in ONNX Runtime with every measured
    tensor exposed (the reference), the QDQ model in ONNX Runtime (fake-quant) and on lowp's
    engine (accumulated error), and the local-error model (`lowp.report.local`) on both
    engines, fed the float values. Only one run's values are alive at a time; histograms
    are fixed-size. The caller gives the float and lowp values it already computed.
    """

    def __init__(self, qdq: onnx.ModelProto, float_model: onnx.ModelProto,
                 sources: LayerSources, *, backend: str = "auto") -> None:
        self._qdq = qdq
        self._sources = sources
        self._backend = backend
        self._dqs = activation_dqs(qdq)
        g = Graph(qdq)
        float_names = {o for n in float_model.graph.node for o in n.output}
        inputs = set(g.input_names)
        self._reference: dict[str, str] = {}      # measured tensor -> float model name
        self._where: dict[str, tuple[str, str]] = {}
        for name, (src, _, _) in self._dqs.items():
            q = g.producer.get(src)
            if q is None or q.op_type != "QuantizeLinear":
                continue
            if name in float_names:
                self._reference[name] = name
            elif q.input[0] in inputs:
                self._reference[name] = q.input[0]
            else:
                continue
            producer = g.producer.get(q.input[0])
            self._where[name] = ((producer.name, producer.op_type) if producer is not None
                                 else (q.input[0], "input"))
        self.measured = list(self._reference)
        self.float_exposed = [t for t in self.measured if t in float_names]
        self._weights = _weight_granularity(qdq, g)
        self._order = {t: i for i, t in enumerate(_graph_order(qdq, self.measured))}
        self._ort = reference_session(expose_tensors(qdq, self.measured),
                                      mem_pattern=False)
        self._ort_names = [o.name for o in self._ort.get_outputs()]
        self._local: LocalModel | None = None
        self._local_ort: ort.InferenceSession | None = None
        self._local_lowp: Session | None = None
        self.local_problem = ""                  # why lowp's engine gave no local figures
        self._acc = {t: {c: Figures() for c in Comparison} for t in self.measured}
        self._loc = {t: {c: Figures() for c in Comparison} for t in self.measured}
        self._hist: dict[str, HistogramObserver] = {}
        self.samples = 0
        self._float_nodes = _float_nodes(qdq)
        self._outputs = {o: {c: Figures() for c in Comparison} for o in g.output_names
                         if g.value_elem_type(o) in (None, onnx.TensorProto.FLOAT)}

    def update(self, feed: Mapping[str, np.ndarray], float_values: Mapping[str, np.ndarray],
               lowp_values: Mapping[str, np.ndarray], samples: int) -> None:
        """Add one run: `float_values` holds the float model's values of `float_exposed`,
        `lowp_values` lowp's captured values of the QDQ model (integers included)."""
        self.samples += samples
        ref: dict[str, np.ndarray] = {}
        for t, r in self._reference.items():
            value = float_values[r] if r in float_values else feed.get(r)
            if value is not None:
                ref[t] = np.asarray(value)
        lowp_acc = {}
        for t in self.measured:
            src, qp, _ = self._dqs[t]
            if src in lowp_values:
                lowp_acc[t] = _dequantize(lowp_values[src], qp)
        ort_acc = dict(zip(self._ort_names, run_exposed(self._ort, self._ort_names, feed),
                           strict=True))
        self._add(self._acc, ref, ort_acc, lowp_acc)
        self._add(self._outputs, float_values, ort_acc, lowp_values)
        self._observe(ref)
        del ort_acc, lowp_acc
        local = self._local_model(ref)
        lfeed = dict(feed)
        lfeed.update({k: np.ascontiguousarray(ref[t], np.float32)
                      for k, t in local.feeds.items()})
        assert self._local_ort is not None
        lowp_loc: Mapping[str, np.ndarray] = {}
        if self._local_lowp is not None:
            try:
                lowp_loc = self._local_lowp.run(lfeed, local.measured)
            except LowpError as e:     # the figures of the other engine are still worth it
                self._local_lowp, self.local_problem = None, str(e)
        names = [o.name for o in self._local_ort.get_outputs()]
        ort_loc = dict(zip(names, run_exposed(self._local_ort, names, lfeed), strict=True))
        self._add(self._loc, ref, ort_loc, lowp_loc)

    def _local_model(self, ref: Mapping[str, np.ndarray]) -> LocalModel:
        if self._local is None:
            self._local = local_model(self._qdq, self.measured,
                                      {t: v.ndim for t, v in ref.items()})
            self._local_ort = reference_session(self._local.model, mem_pattern=False)
            try:
                self._local_lowp = Session(self._local.model, backend=self._backend)
            except LowpError as e:
                self.local_problem = str(e)
        return self._local

    @staticmethod
    def _add(into: dict[str, dict[Comparison, Figures]], ref: Mapping[str, np.ndarray],
             ort: Mapping[str, np.ndarray], lowp: Mapping[str, np.ndarray]) -> None:
        for t in into:
            r, o, w = ref.get(t), ort.get(t), lowp.get(t)
            if r is not None and o is not None and np.shape(o) == r.shape:
                into[t][Comparison.FAKE_QUANT].add(r, o)
            if r is not None and w is not None and np.shape(w) == r.shape:
                into[t][Comparison.LOWP].add(r, w)
            if o is not None and w is not None and np.shape(o) == np.shape(w):
                into[t][Comparison.AGREEMENT].add(o, w)

    def _observe(self, ref: Mapping[str, np.ndarray]) -> None:
        table = self._sources.table
        for t, value in ref.items():
            key = self._sources.table_key(self._reference[t])
            if table is not None and isinstance(table.get(key), HistogramObserver):
                continue                   # calibration's own histogram is drawn
            if t not in self._hist:
                self._hist[t] = report_histogram(t, table, key, value)
            self._hist[t].update(value)

    def result(self) -> LayerReport:
        rows = []
        for t in sorted(self.measured, key=lambda t: self._order.get(t, 0)):
            _, qp, _ = self._dqs[t]
            ref_name = self._reference[t]
            key = self._sources.table_key(ref_name)
            rows.append(LayerRow(
                self._order.get(t, 0), t, ref_name, *self._where[t], qp,
                self._weights.get(self._where[t][0], ""), self._acc[t], self._loc[t],
                key if key != ref_name else None,
                range_choice(self._sources.table, key, self._hist.get(t),
                             unsigned=qp.qtype.qmin == 0)))
        return LayerReport(rows, self.samples, self._float_nodes, self._sources.target,
                           self._outputs, self.local_problem)


def _dequantize(q: np.ndarray, qp: QParams) -> np.ndarray:
    return ((np.asarray(q, np.float32) - np.float32(qp.zero_point))
            * np.float32(qp.scale)).astype(np.float32)


def _graph_order(model: onnx.ModelProto, tensors: list[str]) -> list[str]:
    position = {o: i for i, n in enumerate(model.graph.node) for o in n.output}
    return sorted(tensors, key=lambda t: position.get(t, -1))


def _weight_granularity(model: onnx.ModelProto, g: Graph) -> dict[str, str]:
    """Node name -> how its constant (weight) inputs are quantized."""
    dq_scale = {n.output[0]: g.constant(n.input[1]) for n in model.graph.node
                if n.op_type == "DequantizeLinear" and g.is_constant(n.input[0])
                and g.is_constant(n.input[1])}
    out = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 2:
            continue
        scale = dq_scale.get(node.input[1])
        if scale is not None:
            out[node.name] = (f"per-channel ({scale.size})" if scale.size > 1
                              else "per-tensor")
    return out


def _float_nodes(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """Compute nodes none of whose outputs is quantized: they run in float."""
    q_in = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    return [(n.name, n.op_type) for n in model.graph.node
            if n.op_type not in _DATA_MOVEMENT and not any(o in q_in for o in n.output)]
