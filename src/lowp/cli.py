"""Command line: `lowp quantize | calibrate | run | check | compare | convert | demo`;
subcommands mirror the API.

Exit statuses: 0 success; 1 `check` found violations; 2 a user error (missing or malformed
model or data, unsupported operator, out of memory), one line `lowp: error: ...`; 3 an
internal error (a bug in lowp), one line `lowp: internal error ...`; 4 `quantize` wrote the
model but its summary failed; 130 interrupted. `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from .atomic import open_atomic
from .calib.sharded import Scheduler
from .config import ActivationGranularity, CalibMethod, Config, QuantMode
from .errors import InternalError, LowpError, QuantizationError
from .formats import Format
from .targets import TARGETS, WeightGranularity, get_target

if TYPE_CHECKING:
    from .feeds import NpzFolder
    from .inputs import ImagePreprocess
    from .pipeline import QuantizeResult

EXIT_OK = 0
EXIT_VIOLATIONS = 1        # `lowp check`: the model breaks the target's rules
EXIT_USER = 2              # bad model, data or arguments: the message names the culprit
EXIT_INTERNAL = 3          # a bug in lowp: please report it (with --debug)
EXIT_SUMMARY_FAILED = 4    # `lowp quantize`: the model is written, its summary failed
EXIT_INTERRUPTED = 130

_EPILOG = """exit status: 0 success; 1 `check` found violations; 2 error in the model, data or
arguments (or out of memory); 3 internal error (a bug in lowp: rerun with --debug and report
it); 4 `quantize` wrote the model but its summary (accuracy, agreement tables, --report)
failed"""


def _config(args: argparse.Namespace) -> Config:
    op_types = _op_types(args.sixteen_bit, getattr(args, "model", None))
    return Config(method=CalibMethod(args.method), target=args.target,
                  weight_granularity=WeightGranularity(args.granularity),
                  percentile=args.percentile, num_bins=args.num_bins,
                  num_quantized_bins=args.num_quantized_bins,
                  exclude_nodes=tuple(args.exclude), exclude_op_types=tuple(args.exclude_op),
                  batch_size=args.batch_size, smooth_alpha=args.smooth,
                  equalize=args.equalize, bias_correction=bool(args.bias_correction),
                  per_channel_chains=bool(args.per_channel_chains),
                  measure_per_channel_chains=(args.per_channel_chains is None
                                              and Config.measure_per_channel_chains),
                  measure_bias_correction=args.bias_correction is None,
                  absorb_activations=bool(args.absorb_activations),
                  measure_absorbed_activations=args.absorb_activations is None,
                  fuse_matmul_bias=bool(args.fuse_matmul_bias),
                  measure_matmul_bias=(args.fuse_matmul_bias is None
                                       and Config.measure_matmul_bias),
                  sixteen_bit_nodes=tuple(n for n in args.sixteen_bit if n not in op_types),
                  sixteen_bit_op_types=tuple(n for n in args.sixteen_bit if n in op_types),
                  score_outputs=tuple(getattr(args, "score_outputs", None) or ()),
                  class_maps=_class_maps(getattr(args, "class_maps", None)))


def _class_maps(names: list[str] | None) -> tuple[str, ...] | None:
    """`--class-maps`: absent, found in the graph (None); `none`, no output; else the names.

    >>> _class_maps(None), _class_maps(["none"]), _class_maps(["logits"])
    (None, (), ('logits',))
    """
    if names is None:
        return None
    return () if names == ["none"] else tuple(names)


def _op_types(names: list[str], model: str | None) -> set[str]:
    """The names of `--sixteen-bit` that mean an ONNX operator type: those that are one and
    are not the name of a node of `model` (a node named like its type, as 'MatMul' in
    skl2onnx's files, is that node: the fallback record's flags name nodes)."""
    import onnx.defs

    types = {n for n in names if onnx.defs.has(n)}
    if types and model is not None and Path(model).is_file():
        graph = onnx.load(model, load_external_data=False).graph
        types -= {n.name for n in graph.node}
    return types


def _preprocess(args: argparse.Namespace) -> ImagePreprocess | None:
    """The image options of `_add_data_options` (None when none is given)."""
    from .inputs import ImagePreprocess

    if not (args.image_size or args.mean or args.std or args.keep_aspect
            or args.pad_to_multiple):
        return None
    return ImagePreprocess(size=tuple(args.image_size) if args.image_size else None,
                           mean=tuple(args.mean or (0.0,)), std=tuple(args.std or (1.0,)),
                           layout=args.layout, keep_aspect=args.keep_aspect,
                           pad_to_multiple=args.pad_to_multiple or 1)


def _data(args: argparse.Namespace) -> str | NpzFolder:
    """The calibration data of `_add_data_options`: a path (--calib) or a feed folder."""
    if args.data:
        from .feeds import NpzFolder
        return NpzFolder(args.data)
    return str(args.calib)


def _budget_config(args: argparse.Namespace, config: Config) -> Config:
    """`config` with the accuracy-budget options of `quantize`."""
    from .passes.fallback import load_metric, parse_budget, parse_tolerance

    if (args.metric is None) != (args.tolerance is None):
        raise QuantizationError("--metric and --tolerance go together: the metric and the drop "
                                "from its value on the float outputs that is allowed")
    return dataclasses.replace(
        config,
        accuracy_budget=None if args.accuracy_budget is None else parse_budget(
            args.accuracy_budget),
        metric=None if args.metric is None else load_metric(args.metric),
        metric_tolerance=None if args.tolerance is None else parse_tolerance(args.tolerance),
        fallback_candidates=args.fallback_candidates, fallback_samples=args.fallback_samples)


def _mode_config(args: argparse.Namespace, config: Config) -> Config:
    """`config` with the mode options of `quantize`."""
    return dataclasses.replace(
        config, mode=QuantMode(args.mode),
        activation_granularity=ActivationGranularity(args.activations),
        auto_max_slowdown=args.auto_max_slowdown, auto_tolerance_db=args.auto_tolerance,
        per_token_below_db=_per_token_below(args.per_token_below))


def _per_token_below(text: str) -> float | None:
    """--per-token-below: a number of dB, or 'off' (None)."""
    if text.strip().lower() == "off":
        return None
    try:
        return float(text.strip().lower().removesuffix("db"))
    except ValueError:
        raise QuantizationError(f"--per-token-below {text!r}: give a number of dB (20, 20dB) "
                                "or off") from None


def cmd_quantize(args: argparse.Namespace) -> int:
    from .ir.graph import save_model
    from .passes.fallback import BudgetNotMetWarning
    from .pipeline import quantize

    config = _budget_config(args, _mode_config(args, _config(args)))
    table = args.calib_table if args.calib_table and Path(args.calib_table).exists() else None
    held_out = None
    if args.eval and (config.accuracy_budget is not None or config.metric is not None
                      or config.mode is QuantMode.AUTO):
        held_out, _ = _eval_data(args.eval, onnx.load(args.model, load_external_data=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetNotMetWarning)    # said below, on one line
        result = quantize(args.model, _data(args), config, calib_table=table,
                          progress=not args.quiet, preprocess=_preprocess(args),
                          accuracy_data=held_out)
    if args.calib_table and table is None:
        result.table.save(args.calib_table)
        print(f"calibration table written to {args.calib_table}")
    save_model(result.model, args.output)
    print(f"quantized model written to {args.output}")
    if result.mode_choice is not None:
        sidecar = Path(args.output).with_suffix(".mode.json")
        result.mode_choice.save(sidecar)
        print(result.mode_choice.format())
        print(f"mode decision written to {sidecar}")
    if result.method_choice is not None:
        sidecar = Path(args.output).with_suffix(".method.json")
        result.method_choice.save(sidecar)
        print(result.method_choice.format())
        print(f"range method decision written to {sidecar}")
    if result.fallback is not None:
        sidecar = Path(args.output).with_suffix(".fallback.json")
        result.fallback.save(sidecar)
        print(result.fallback.format())
        print(f"fallback decisions written to {sidecar}")
        if not result.fallback.met:
            print(f"lowp: warning: {result.fallback.warning()}", file=sys.stderr)
    if args.no_report:
        return EXIT_OK
    try:
        _summary(args, result)
    except Exception as e:
        # the model is written and valid: a failing summary must not look like a failed
        # quantization
        if args.debug:
            raise
        print(f"lowp: model written to {args.output}; the summary failed: {_describe(e)}",
              file=sys.stderr)
        return EXIT_SUMMARY_FAILED
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calib.sharded import calibrate

    table = calibrate(args.model, _data(args), _config(args), scheduler=args.scheduler,
                      workers=args.workers, address=args.address, progress=not args.quiet,
                      shards=args.shards, preprocess=_preprocess(args))
    table.save(args.output)
    print(f"calibration table ({len(table)} tensors, {table.settings['method']}) written to "
          f"{args.output}")
    return EXIT_OK


def _summary(args: argparse.Namespace, result: QuantizeResult) -> None:
    """Print the end-of-run summary (and write the HTML report) of a written model."""
    from .inputs import batches, model_inputs
    from .report.layers import LayerSources
    from .report.summary import summarize

    labels = None
    feeds: Iterable[Mapping[str, np.ndarray]]
    if args.eval:
        arrays, labels = _eval_data(args.eval, result.float_model)
        feeds = batches(arrays, model_inputs(result.float_model), args.batch_size)
        first = next(iter(batches(arrays, model_inputs(result.float_model), args.batch_size)))
    else:        # the calibration feeds that hold the first 64 samples (in full batches)
        assert result.feeds is not None
        feeds = itertools.islice(result.feeds, max(1, -(-64 // max(1, args.batch_size))))
        first = next(iter(result.feeds))
    # the per-layer detail costs three more runs per feed: for the HTML report only
    sources = (LayerSources(result.table, result.annotation.shared, get_target(args.target))
               if args.report else None)
    summary = summarize(result.model, result.float_model, feeds, labels,
                        fallback=result.fallback, layers=sources)
    if not args.no_speed:
        from .report.speed import measure_speed

        summary.speed = measure_speed(result.model, result.float_model, first,
                                      threads=args.speed_threads)
    print(summary.format())
    if args.report:
        from .report.html import write
        write(summary, args.report)
        print(f"report written to {args.report}")


def _eval_data(path: str, model: onnx.ModelProto) -> tuple[dict[str, np.ndarray],
                                                            np.ndarray | None]:
    """Evaluation arrays named after the inputs, plus an optional integer 'label' array."""
    from .inputs import load_arrays, model_inputs, validate

    inputs = model_inputs(model)
    arrays = load_arrays(path, inputs)
    labels = arrays.pop("label", None)
    feeds = validate(arrays, inputs, what="evaluation data")
    if labels is not None and labels.shape[0] != next(iter(feeds.values())).shape[0]:
        raise LowpError(f"{path}: 'label' has {labels.shape[0]} entries for "
                        f"{next(iter(feeds.values())).shape[0]} samples")
    return feeds, labels


def cmd_run(args: argparse.Namespace) -> int:
    from .runtime import Session
    from .runtime.ml_ops import maps_as_arrays

    session = Session(args.model, backend=args.backend, threads=args.threads)
    feeds = {}
    for item in args.input:
        if "=" not in item:
            raise LowpError(f"--input expects NAME=FILE.npy, got '{item}'")
        name, path = item.split("=", 1)
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise LowpError(f"{path}: no such file") from None
        except ValueError as e:
            raise LowpError(f"{path}: cannot read without unpickling ({e})") from None
    outputs = maps_as_arrays(session.run(feeds))
    for name, value in outputs.items():
        print(f"{name}: shape {value.shape}, dtype {value.dtype}, "
              f"min {value.min() if value.size else 'n/a'}, "
              f"max {value.max() if value.size else 'n/a'}")
    if args.output:
        _save_npz(args.output, outputs)
        print(f"outputs written to {args.output}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from .ir.graph import load_model
    from .passes.verify import lint

    target = get_target(args.target)
    violations = lint(load_model(args.model), target)
    if not violations:
        print(f"{args.model}: obeys target '{target.name}' ({target.description})")
        return EXIT_OK
    print(f"{args.model}: {len(violations)} violations of target '{target.name}':")
    for v in violations:
        print(f"  {v}")
    return EXIT_VIOLATIONS


def cmd_convert(args: argparse.Namespace) -> int:
    from .formats import convert
    from .ir.graph import save_model

    save_model(convert(args.model, args.to), args.output)
    print(f"{args.to} model written to {args.output}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    print(run_demo(_config(args), backend=args.backend, progress=not args.quiet))
    return EXIT_OK


def _save_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open_atomic(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """Calibration data (--calib / --data) and image preprocessing options."""
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--calib", metavar="DATA",
                      help="samples stacked on the first axis: .npz named after the inputs, "
                           "a folder of .npy/.npz, or images")
    data.add_argument("--data", metavar="FOLDER",
                      help="one feed per .npz file (read in name order), arrays named after "
                           "the inputs with the exact shapes of one model call")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"))
    p.add_argument("--mean", type=float, nargs="+")
    p.add_argument("--std", type=float, nargs="+")
    p.add_argument("--layout", choices=["NCHW", "NHWC"], default="NCHW")
    p.add_argument("--keep-aspect", action="store_true",
                   help="images: resize to the height only, keeping the aspect ratio (one "
                        "feed per image; --image-size W is then the largest width)")
    p.add_argument("--pad-to-multiple", type=int, metavar="N",
                   help="images: zero-pad a dynamic height / width to a multiple of N")


def _add_config_options(p: argparse.ArgumentParser,
                        method: CalibMethod = Config.method) -> None:
    p.add_argument("--method", choices=[m.value for m in CalibMethod], default=method.value,
                   help=f"activation range method (default {method.value}; measured: a "
                        "model per fixed method, the one with the best output SQNR on "
                        "held-out calibration samples kept, and below 20 dB the one layer "
                        "whose float form gains 3 dB left in float, reported in "
                        "OUTPUT.method.json; a fixed method skips that search)")
    p.add_argument("--target", choices=sorted(TARGETS), default="lowp",
                   help="backend whose constraints the quantized model obeys")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--per-channel", dest="granularity", action="store_const",
                   const=WeightGranularity.PER_CHANNEL.value, help="per-channel weights")
    g.add_argument("--per-tensor", dest="granularity", action="store_const",
                   const=WeightGranularity.PER_TENSOR.value, help="per-tensor weights")
    g.add_argument("--per-group", dest="granularity", action="store_const",
                   const=WeightGranularity.PER_GROUP.value,
                   help="one scale per convolution group (Caffe2 group-wise)")
    p.set_defaults(granularity=WeightGranularity.PER_CHANNEL.value)
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument("--num-bins", type=int, default=16384)
    p.add_argument("--num-quantized-bins", type=int, default=255)
    p.add_argument("--exclude", nargs="*", default=[], metavar="NODE",
                   help="node names left in float")
    p.add_argument("--exclude-op", nargs="*", default=[], metavar="OP_TYPE",
                   help="operator types left in float")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--smooth", type=float, default=None, metavar="ALPHA",
                   help="SmoothQuant-style migration of activation outliers into weights "
                        "(0.5 is the usual strength)")
    p.add_argument("--equalize", action=argparse.BooleanOptionalAction,
                   default=Config.equalize,
                   help="cross-layer equalization of Conv -> Relu -> Conv weight ranges")
    p.add_argument("--per-channel-chains", action=argparse.BooleanOptionalAction,
                   default=None,
                   help="one int8 grid per channel for the activations of every pointwise "
                        "Conv -> HardSwish/Relu/Clip -> depthwise Conv chain; "
                        "--no-per-channel-chains also keeps the method choice from "
                        "measuring it (Config(measure_per_channel_chains=True))")
    p.add_argument("--bias-correction", action=argparse.BooleanOptionalAction,
                   default=None,
                   help="bias correction of the weight quantization's mean output error "
                        "(one extra float pass over the calibration data); without either "
                        "flag the default method choice measures it on held-out data and "
                        "keeps it where it raises the output SQNR and loses on no fold")
    p.add_argument("--absorb-activations", action=argparse.BooleanOptionalAction,
                   default=None,
                   help="keep every Relu or Clip(0, b) after a weighted Conv, Gemm or "
                        "MatMul quantized, absorbed into its output quantization, also "
                        "where only float operators read it; without either flag the "
                        "default method choice measures it on held-out data and keeps it "
                        "where it raises the output SQNR and loses on no fold")
    p.add_argument("--fuse-matmul-bias", action=argparse.BooleanOptionalAction,
                   default=None,
                   help="every MatMul -> Add(constant bias) pair of a 2-D input as one Gemm, "
                        "so the bias joins the int32 accumulator; without either flag the "
                        "default method choice measures it where it is measured by default "
                        "(Config.measure_matmul_bias) and keeps it where it raises the "
                        "output SQNR and loses on no fold")
    p.add_argument("--sixteen-bit", nargs="*", default=[], metavar="NODE_OR_OP",
                   help="nodes (by name) or operator types quantized with 16 bits (a "
                        "node's name wins over an operator type of the same spelling)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lowp", description="int8 post-training quantization and an exact integer engine",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quantize", help="calibrate and quantize a float ONNX model to QDQ",
                       epilog="exit status 4: the model was written but the summary after it "
                              "(tables, --eval, --report) failed")
    q.add_argument("model")
    _add_data_options(q)
    q.add_argument("-o", "--output", required=True)
    q.add_argument("--calib-table", metavar="FILE",
                   help="read this calibration table if it exists, else write it")
    q.add_argument("--eval", metavar="DATA",
                   help="evaluation data for the summary (.npz named after the inputs, with "
                        "an optional integer 'label' array for accuracy)")
    q.add_argument("--no-report", action="store_true")
    q.add_argument("--no-speed", action="store_true",
                   help="skip the latency table (float vs int8, lowp's engine and ONNX "
                        "Runtime, on the first evaluation or calibration feed)")
    q.add_argument("--speed-threads", type=int, default=1, metavar="N",
                   help="intra-op threads of both engines in the latency table (default 1)")
    q.add_argument("--report", metavar="FILE.html",
                   help="also write an HTML report with per-layer error bars")
    q.add_argument("--score-outputs", nargs="+", metavar="NAME",
                   help="the outputs whose SQNR the measured choices score (range method, "
                        "layer in float, --mode auto, --accuracy-budget): the minimum over "
                        "them; default: every float output except recurrent state (an "
                        "output fed back as an input, such as stateN for state, hn for h0, "
                        "out_cache0 for in_cache0), named in OUTPUT.method.json")
    q.add_argument("--class-maps", nargs="+", metavar="NAME",
                   help="the scored outputs that are per-frame class-score maps ([N, T, C] "
                        "or [T, N, C], as a CTC recogniser's): the range-method choice "
                        "scores them by the share of frames whose best class is the float "
                        "model's, then by SQNR; default: a rank-3 output of a Softmax or "
                        "LogSoftmax over its last axis; 'none': score every output by SQNR")
    b = q.add_argument_group(
        "accuracy budget", "move the layers that cost the most accuracy to 16 bits, then to "
        "float, until the budget is met (measured on lowp's engine on the first samples of "
        "--eval, else of the calibration data); the decisions go to OUTPUT with the suffix "
        ".fallback.json")
    b.add_argument("--accuracy-budget", metavar="DB",
                   help="smallest output SQNR against the float model, e.g. 30dB (the minimum "
                        "over the float outputs)")
    b.add_argument("--metric", metavar="MODULE:FUNCTION",
                   help="metric(float_outputs, quantized_outputs) -> float, higher is better "
                        "(module:function or file.py:function); needs --tolerance")
    b.add_argument("--tolerance", metavar="X",
                   help="allowed drop of --metric below its value on the float outputs")
    b.add_argument("--fallback-candidates", type=int, default=24, metavar="K",
                   help="layers whose sensitivity is measured, the worst K by added noise "
                        "(default 24)")
    b.add_argument("--fallback-samples", type=int, default=32, metavar="N",
                   help="samples the budget is measured on: the first feeds of --eval (else "
                        "of the calibration data) holding N (default 32)")
    m = q.add_argument_group(
        "mode", "static (calibrated activations), dynamic (activations quantized at run time, "
        "MatMul/Gemm only) or auto: static, dynamic per-token and dynamic per-tensor measured "
        "for output SQNR on held-out calibration feeds (or --eval) and for latency on lowp's "
        "engine; the decision goes to OUTPUT with the suffix .mode.json")
    m.add_argument("--mode", choices=[v.value for v in QuantMode],
                   default=Config.mode.value)
    m.add_argument("--activations", choices=[v.value for v in ActivationGranularity],
                   default=Config.activation_granularity.value,
                   help="dynamic mode: one activation scale per tensor or per token (row)")
    m.add_argument("--auto-max-slowdown", type=float, default=Config.auto_max_slowdown,
                   metavar="X", help="auto: the most accurate candidate is kept unless it is "
                   "more than X times slower than the fastest one within --auto-tolerance "
                   f"of it (default {Config.auto_max_slowdown:g})")
    m.add_argument("--auto-tolerance", type=float, default=Config.auto_tolerance_db,
                   metavar="DB", help="auto: SQNR difference in dB counted as equal accuracy "
                   f"(default {Config.auto_tolerance_db:g})")
    m.add_argument("--per-token-below", default=f"{Config.per_token_below_db:g}",
                   metavar="DB", help="measured method (the default): when the static "
                   "model's held-out output SQNR is below DB, dynamic per-token activations "
                   "are measured on the same folds and kept if at least 3 dB more accurate "
                   "(recorded in OUTPUT.method.json); off: static always (default "
                   f"{Config.per_token_below_db:g})")
    _add_config_options(q)
    q.set_defaults(func=cmd_quantize)

    k = sub.add_parser("calibrate", help="calibrate a float ONNX model on worker processes "
                                         "(local, Dask or Ray) and write its table",
                       epilog="the table equals the one `lowp quantize --calib-table` would "
                              "write, bit for bit, for any number of workers")
    k.add_argument("model")
    _add_data_options(k)
    k.add_argument("-o", "--output", required=True, metavar="TABLE.json")
    k.add_argument("--scheduler", choices=[s.value for s in Scheduler],
                   default=Scheduler.LOCAL.value)
    k.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: the cores; for dask/ray without "
                        "--address, the size of the cluster started here)")
    k.add_argument("--address", default=None,
                   help="an existing cluster: tcp://HOST:PORT (dask), auto or "
                        "ray://HOST:PORT (ray)")
    k.add_argument("--shards", type=int, default=None,
                   help="number of shards (default: 4 per worker)")
    _add_config_options(k, CalibMethod.MINMAX)     # a table holds one fixed method's ranges
    k.set_defaults(func=cmd_calibrate)

    r = sub.add_parser("run", help="run a model on lowp's engine")
    r.add_argument("model")
    r.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    r.add_argument("-o", "--output", metavar="OUT.npz")
    r.add_argument("--backend", choices=["auto", "native", "reference", "dnnlowp-acc16"],
                   default="auto")
    r.add_argument("--threads", type=int, default=0)
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check", help="lint a QDQ model against a target's rules")
    c.add_argument("model")
    c.add_argument("--target", choices=sorted(TARGETS), required=True)
    c.set_defaults(func=cmd_check)

    from .compare import add_compare_parser
    add_compare_parser(sub)

    v = sub.add_parser("convert", help="rewrite a quantized model as QDQ or QOperator "
                                       "(QLinearConv, com.microsoft QLinearAdd, ...)")
    v.add_argument("model")
    v.add_argument("--to", required=True, choices=[f.value for f in Format])
    v.add_argument("-o", "--output", required=True)
    v.set_defaults(func=cmd_convert)

    d = sub.add_parser("demo", help="quantize and evaluate the bundled digits CNN")
    d.add_argument("--backend", choices=["auto", "native", "reference"], default="auto")
    _add_config_options(d)
    d.set_defaults(func=cmd_demo)
    return parser


def _one_line(text: str) -> str:
    """A message on one line: the lines of a list (or of a printed array) joined by '; ',
    or by a space after a line that ends with a colon."""
    out = ""
    for line in (ln.strip() for ln in text.splitlines()):
        if line:
            out += ("" if not out else " " if out.endswith(":") else "; ") + line
    return out


def _describe(e: BaseException) -> str:
    """One line for any exception: lowp's own message, or the type and first line."""
    if isinstance(e, LowpError):
        return _one_line(str(e)) or type(e).__name__
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; the exit statuses are EXIT_* (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except InternalError as e:
        if args.debug:
            raise
        print(f"lowp: {_describe(e)}", file=sys.stderr)
        return EXIT_INTERNAL
    except LowpError as e:
        if args.debug:
            raise
        print(f"lowp: error: {_describe(e)}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("lowp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError as e:
        # the engine lets MemoryError through: a model (or batch) too large for the machine
        if args.debug:
            raise
        print(f"lowp: error: out of memory: {_describe(e)}", file=sys.stderr)
        return EXIT_USER
    except Exception as e:
        # anything else escaping a subcommand is a bug in lowp, not in the user's input
        if args.debug:
            raise
        print(f"lowp: internal error: {_describe(e)}; please report it with --debug",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
