"""Layer benchmark: lowp native vs ONNX Runtime int8 (QDQ and QLinear*) vs ONNX Runtime fp32
vs PyTorch's quantized engines (onednn by default).

Every lowp case is first checked bit for bit against the numpy reference (lowp.ops); then
each engine is timed (median of repeats after warm-up). GOPS count 2 ops per MAC.

Layouts: lowp runs channels-last (NHWC) natively; "lowp" times exactly that, "lowp+T" adds
numpy NCHW->NHWC and NHWC->NCHW transposes around the call. ONNX Runtime is fed NCHW as
ONNX prescribes; any internal NCHW<->NHWC transposes it inserts are inside its figures.

PyTorch's layers (`--torch-engines onednn x86 ...`, none with `--torch-engines`) are built
from the same integer weights and scales (bench/_torch_layers.py) and fed channels-last.

Run: .venv/bin/python bench/layers.py [--threads 1 2] [--cases conv3x3 ...] [--paths amx avx512vnni]
                                      [--torch-engines onednn x86]
(`--cases mnv2-dw`: the depthwise layers of MobileNetV2.)
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# OpenBLAS worker threads (used by the numpy reference) busy-wait after each call and would
# steal the second core from the 2-thread timings that follow.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _torch_layers  # noqa: E402
from _common import median_seconds, peak_gops, print_table  # noqa: E402

from lowp.fixedpoint import Requant, requant_scale  # noqa: E402
from lowp.ops.conv import conv  # noqa: E402
from lowp.ops.layout import Layout  # noqa: E402
from lowp.ops.linear import matmul  # noqa: E402
from lowp.runtime import native_backend  # noqa: E402
from lowp.runtime.native_backend import NativeConv, NativeMatMul  # noqa: E402

X_SCALE, X_ZP, W_SCALE = 0.02, 128, 0.004


@dataclass
class Case:
    name: str
    x_shape: tuple[int, ...]          # NCHW-style (N, C, *spatial), or (M, K) for linear
    w_shape: tuple[int, ...]          # ONNX (M, C/group, *k), or (K, N) for linear
    group: int = 1
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    validate_crop: int = 0            # validate on the first `crop` depth planes only
    linear: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def macs(self, out_size: int) -> int:
        if self.linear:
            return self.x_shape[0] * self.w_shape[0] * self.w_shape[1]
        return out_size * int(np.prod(self.w_shape[1:]))


CASES = [
    Case("conv3x3 64->64 56x56", (1, 64, 56, 56), (64, 64, 3, 3), 1, (1, 1), (1, 1, 1, 1)),
    Case("conv1x1 256->64 56x56", (1, 256, 56, 56), (64, 256, 1, 1), 1, (1, 1), (0, 0, 0, 0)),
    Case("dw3x3 144 56x56 s1", (1, 144, 56, 56), (144, 1, 3, 3), 144, (1, 1), (1, 1, 1, 1)),
    Case("dw3x3 144 56x56 s2", (1, 144, 56, 56), (144, 1, 3, 3), 144, (2, 2), (1, 1, 1, 1)),
    Case("dw3x3 576 14x14 s1", (1, 576, 14, 14), (576, 1, 3, 3), 576, (1, 1), (1, 1, 1, 1)),
    Case("dw3x3 960 14x14 s2", (1, 960, 14, 14), (960, 1, 3, 3), 960, (2, 2), (1, 1, 1, 1)),
    Case("dw3x3 960 7x7 s1", (1, 960, 7, 7), (960, 1, 3, 3), 960, (1, 1), (1, 1, 1, 1)),
    # every depthwise layer shape of MobileNetV2 (224x224 input)
    *[Case(f"mnv2-dw {c} {hw}x{hw} s{st}", (1, c, hw, hw), (c, 1, 3, 3), c, (st, st),
           (1, 1, 1, 1))
      for c, hw, st in [(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1),
                        (192, 28, 2), (384, 14, 1), (576, 14, 1), (576, 14, 2), (960, 7, 1)]],
    Case("conv3d 3x3x3 32->32 16x56x56", (1, 32, 16, 56, 56), (32, 32, 3, 3, 3), 1,
         (1, 1, 1), (1,) * 6, validate_crop=6),
    Case("linear 768->3072 b128", (128, 768), (768, 3072), linear=True),
    # int8 GEMMs M x K x N: transformer projections and square matrices
    *[Case(f"gemm {m}x{k}x{n}", (m, k), (k, n), linear=True)
      for m, k, n in [(128, 768, 768), (512, 768, 3072), (2048, 1024, 1024), (128, 384, 1536),
                      (384, 4096, 1024), (1024, 1024, 4096)]],
]


def _y_qparams(acc: np.ndarray) -> tuple[float, int]:
    """Output scale and zero point that map the accumulator range onto the uint8 range."""
    lo, hi = min(float(acc.min()), 0.0), max(float(acc.max()), 0.0)
    span = max(hi - lo, 1.0)
    return span * X_SCALE * W_SCALE / 255.0, int(np.clip(round(-lo / span * 255.0), 0, 255))


def _session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def _model(nodes: list, inits: list, x_type: int, x_shape: tuple[int, ...], y_type: int
           ) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info("x", x_type,
                                                                               x_shape)],
                              [helper.make_tensor_value_info("y", y_type, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def _ort_models(case: Case, w: np.ndarray, bias: np.ndarray, y_scale: float, y_zp: int
                ) -> dict[str, onnx.ModelProto]:
    f32 = TensorProto.FLOAT
    c = [numpy_helper.from_array(np.array(X_SCALE, np.float32), "xs"),
         numpy_helper.from_array(np.array(X_ZP, np.uint8), "xz"),
         numpy_helper.from_array(np.array(W_SCALE, np.float32), "ws"),
         numpy_helper.from_array(np.array(0, np.int8), "wz"),
         numpy_helper.from_array(np.array(X_SCALE * W_SCALE, np.float32), "bs"),
         numpy_helper.from_array(np.array(0, np.int32), "bz"),
         numpy_helper.from_array(np.array(y_scale, np.float32), "ys"),
         numpy_helper.from_array(np.array(y_zp, np.uint8), "yz"),
         numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")]
    wf = numpy_helper.from_array((w.astype(np.float32) * W_SCALE), "wf")
    bf = numpy_helper.from_array((bias.astype(np.float32) * X_SCALE * W_SCALE), "bf")
    dq = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xd"]),
          helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
          helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bd"])]
    q = helper.make_node("QuantizeLinear", ["yd", "ys", "yz"], ["y"])
    x_shape = case.x_shape
    if case.linear:
        qdq = dq + [helper.make_node("Gemm", ["xd", "wd", "bd"], ["yd"]), q]
        qlin = [helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys",
                                                   "yz"], ["y"])]
        flt = [helper.make_node("Gemm", ["x", "wf", "bf"], ["y"])]
    else:
        attrs: dict[str, Any] = {"strides": list(case.strides), "pads": list(case.pads),
                                 "group": case.group}
        qdq = dq + [helper.make_node("Conv", ["xd", "wd", "bd"], ["yd"], **attrs), q]
        qlin = [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz",
                                                 "b"], ["y"], **attrs)]
        flt = [helper.make_node("Conv", ["x", "wf", "bf"], ["y"], **attrs)]
    u8 = TensorProto.UINT8
    return {"qdq": _model(qdq, c, u8, x_shape, u8),
            "qlinear": _model(qlin, c, u8, x_shape, u8),
            "float": _model(flt, [wf, bf], f32, x_shape, f32)}


def _reference(case: Case, x_cl: np.ndarray, w: np.ndarray, bias: np.ndarray,
               rq: Requant | None) -> np.ndarray:
    if case.linear:
        return matmul(x_cl, w, a_zero_point=X_ZP, b_zero_point=0, bias=bias, requant=rq)
    return conv(x_cl, w, bias, x_zero_point=X_ZP, w_zero_point=0, requant=rq,
                strides=case.strides, pads=case.pads, group=case.group,
                layout=Layout.CHANNELS_LAST)


def run_case(case: Case, threads_list: list[int], peaks: dict[int, float],
             paths: list[str], torch_engines: list[str]) -> list[list[str]]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=case.x_shape, dtype=np.uint8)        # NCHW (or M, K)
    w = rng.integers(-127, 128, size=case.w_shape, dtype=np.int8)
    m = case.w_shape[1] if case.linear else case.w_shape[0]
    bias = rng.integers(-2000, 2000, size=m, dtype=np.int32)
    x_cl = x if case.linear else np.ascontiguousarray(np.moveaxis(x, 1, -1))
    x_val = x_cl
    if case.validate_crop:
        x_val = np.ascontiguousarray(x_cl[:, :case.validate_crop])
    acc = _reference(case, x_val, w, bias, None)
    y_scale, y_zp = _y_qparams(acc)
    rq = Requant(requant_scale(X_SCALE, W_SCALE, y_scale), y_zp, 0, 255)
    ref = rq.apply(acc)

    def make(threads: int) -> NativeConv | NativeMatMul:
        if case.linear:
            return NativeMatMul(w, bias, a_zero_point=X_ZP, a_dtype=np.uint8, b_zero_point=0,
                                requant=rq, threads=threads)
        return NativeConv(w, bias, x_zero_point=X_ZP, x_dtype=np.uint8, w_zero_point=0,
                          requant=rq, strides=case.strides, pads=case.pads,
                          group=case.group, threads=threads)

    for path in paths:
        with native_backend.use_path(path):
            got = make(1)(x_val)
        if not np.array_equal(got, ref):
            raise SystemExit(f"{case.name}: lowp ({path}) differs from the reference on "
                             f"{int(np.sum(got != ref))} outputs")
    if int(ref.max()) - int(ref.min()) < 128:
        raise SystemExit(f"{case.name}: validation outputs do not span the uint8 range")
    models = _ort_models(case, w, bias, y_scale, y_zp)
    xf = x.astype(np.float32) * np.float32(X_SCALE) - np.float32(X_SCALE * X_ZP)
    rows: list[list[str]] = []
    for threads in threads_list:
        t_lowp: dict[str, float] = {}
        t_lowp_t: dict[str, float] = {}
        for path in paths:
            with native_backend.use_path(path):
                op = make(threads)
                out = op(x_cl)

                def plain(op: NativeConv | NativeMatMul = op) -> np.ndarray:
                    return op(x_cl)

                def with_layout(op: NativeConv | NativeMatMul = op) -> np.ndarray:
                    y = op(np.ascontiguousarray(np.moveaxis(x, 1, -1)))
                    return np.ascontiguousarray(np.moveaxis(y, -1, 1))

                t_lowp[path] = median_seconds(plain)
                t_lowp_t[path] = t_lowp[path] if case.linear else median_seconds(with_layout)
        macs = case.macs(out.size)
        t_ort = {}
        diff = "-"
        for kind, model in models.items():
            sess = _session(model, threads)
            feed = {"x": xf if kind == "float" else x}
            def run_ort(s: ort.InferenceSession = sess, f: dict[str, np.ndarray] = feed
                        ) -> object:
                return s.run(None, f)

            t_ort[kind] = median_seconds(run_ort)
            if kind == "qlinear":
                y_ort = sess.run(None, feed)[0]
                y_ort = y_ort if case.linear else np.moveaxis(y_ort, 1, -1)
                diff = str(int(np.abs(y_ort.astype(np.int32) - out.astype(np.int32)).max()))

        t_torch: dict[str, float] = {}
        diff_torch: list[str] = []
        for engine in torch_engines:
            run_torch, y_torch = _torch_layers.layer(
                engine, x, w, bias, linear=case.linear, x_scale=X_SCALE, x_zp=X_ZP,
                w_scale=W_SCALE, y_scale=y_scale, y_zp=y_zp, strides=case.strides,
                pads=case.pads, group=case.group, threads=threads)
            t_torch[engine] = median_seconds(run_torch)
            d = np.abs(y_torch.astype(np.int32) - out.astype(np.int32)).max(initial=0)
            diff_torch.append(str(int(d)))

        def gops(t: float, macs: int = macs) -> float:
            return 2 * macs / t * 1e-9

        best_int8 = min(t_ort["qdq"], t_ort["qlinear"])
        best_torch = min(t_torch.values(), default=float("nan"))
        for path in paths:
            t = t_lowp[path]
            rows.append([case.name, path, str(threads), f"{t * 1e3:.3f}", f"{gops(t):.1f}",
                         f"{100 * gops(t) / peaks[threads]:.0f}%",
                         f"{gops(t_lowp_t[path]):.1f}", f"{gops(t_ort['qdq']):.1f}",
                         f"{gops(t_ort['qlinear']):.1f}", f"{gops(t_ort['float']):.1f}",
                         *[f"{gops(t_torch[e]):.1f}" for e in torch_engines],
                         f"{best_int8 / t:.2f}",
                         *([f"{best_torch / t:.2f}"] if torch_engines else []),
                         f"{t_ort['float'] / t:.2f}", diff, *diff_torch])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", nargs="*", default=None,
                        help="substrings of case names to run (default: all)")
    parser.add_argument("--peak", type=float, default=None,
                        help="per-core int8 peak in GOPS to normalize against instead of "
                             "measuring it (useful on a busy machine)")
    parser.add_argument("--paths", nargs="+", default=None,
                        help="lowp instruction-set paths to time side by side (default: the "
                             "active one; e.g. --paths amx avx512vnni)")
    parser.add_argument("--torch-engines", nargs="*", default=None,
                        help="PyTorch quantized engines timed side by side (default: onednn "
                             "where PyTorch is installed; none when given without names)")
    args = parser.parse_args()
    torch_available = _torch_layers.available_engines()
    if args.torch_engines is None:
        torch_engines = [e for e in ("onednn",) if e in torch_available]
    else:
        torch_engines = list(args.torch_engines)
        unknown = [e for e in torch_engines if e not in torch_available]
        if unknown:
            raise SystemExit(f"PyTorch quantized engine(s) {', '.join(unknown)} not available "
                             f"(available: {', '.join(torch_available) or 'none'})")
    paths = args.paths or [native_backend.active_path()]
    for path in paths:
        if path not in native_backend.available_paths():
            raise SystemExit(f"path '{path}' is not available on this CPU "
                             f"(available: {', '.join(native_backend.available_paths())})")
    # the peak of the fastest int8 instruction any timed path uses
    peak_kind = "amx" if "amx" in paths else "vnni512"
    ort.set_default_logger_severity(3)
    # best of many short runs: on a shared machine a single run often catches a busy moment
    if args.peak:
        peaks = {t: args.peak * t for t in args.threads}
    else:
        peaks = {t: peak_gops(peak_kind, 0.1, t, tries=8) for t in args.threads}
    print(f"lowp paths: {', '.join(paths)}; onnxruntime {ort.__version__}; "
          f"measured {peak_kind} peak " +
          ", ".join(f"{p:.1f} GOPS on {t} thread(s)" for t, p in peaks.items()))
    rows: list[list[str]] = []
    for case in CASES:
        if args.cases and not any(s in case.name for s in args.cases):
            continue
        rows.extend(run_case(case, args.threads, peaks, paths, torch_engines))
    print_table(["case", "path", "thr", "lowp ms", "lowp GOPS", "%peak", "lowp+T", "ORT QDQ",
                 "ORT QLin", "ORT fp32", *[f"PT {e}" for e in torch_engines], "x ORT int8",
                 *(["x PT"] if torch_engines else []), "x ORT fp32", "max|d| ORT",
                 *[f"max|d| {e}" for e in torch_engines]], rows)
    print(f"GOPS = 2*MAC/s. %peak = lowp / measured {peak_kind} peak on as many threads. "
          "lowp+T adds numpy NCHW<->NHWC transposes;\nORT figures include ORT's own layout "
          "transposes. "
          "'x ORT' = ORT time / lowp time (best of QDQ and QLinear for int8); 'x PT' likewise "
          "for the fastest PyTorch engine (PT columns: GOPS,\nchannels-last input). max|d|: "
          "largest output difference to ORT QLinear / that PyTorch engine (its own "
          "rounding;\nfbgemm's and x86's depthwise kernels saturate 16-bit pair sums on "
          "full-range inputs: docs/engines.md (E1)).")


if __name__ == "__main__":
    main()
