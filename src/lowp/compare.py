"""`lowp compare`: run a quantized model under two engines or targets and explain differences.

Every integer layer is run by both engines on the same input (the first engine's), so a
layer's differences are its own and not inherited; each difference is attributed to the
arithmetic field that explains it (docs/engines.md), and constraint violations come from
passes.verify.lint.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

import numpy as np
import onnx

from .errors import DataError, LowpError
from .targets import TARGETS, Arithmetic, Target, get_target

if TYPE_CHECKING:
    from .runtime.plan import Step

#: The cause reported when switching one arithmetic field reproduces the other engine.
_CAUSES = {
    "accumulation": "16-bit saturation of u8 x s8 pairs (vpmaddubsw without VNNI)",
    "bias": "bias handling",
    "multiplier": "requantization multiplier: division by s_y or product with 1/s_y",
    "epilogue": "order of float operations (folded multiplier or scales one by one)",
    "zero_point_add": "zero point added in float32 before rounding or in integers after",
    "quantize": "QuantizeLinear: division by the scale or product with its reciprocal",
    "requant_mode": "rounding: float32 round-half-even or fixed-point multiplier and shift",
}


class CompareError(LowpError):
    """The comparison cannot run (unknown target, unreadable data)."""


@dataclass
class LayerDiff:
    """How one integer layer's outputs differ between the two engines."""

    name: str
    op_type: str
    elements: int
    differ: int
    max_abs: int
    cause: str = ""
    violations: list[str] = field(default_factory=list)
    #: the actual PyTorch engine on this CPU against lowp's model of it (EngineCheck.describe)
    engine_checks: list[str] = field(default_factory=list)


@dataclass
class CompareReport:
    """Per-layer and end-to-end differences between two targets on the same inputs."""

    model: str
    targets: tuple[str, str]
    samples: int
    layers: list[LayerDiff]
    outputs: dict[str, tuple[int, int, float]]   # name -> (elements, differ, max |diff|)
    unplaced: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return all(d.differ == 0 for d in self.layers) and all(
            o[1] == 0 for o in self.outputs.values())

    def format(self) -> str:
        a, b = self.targets
        lines = [f"{self.model}: {a} vs {b} on {self.samples} samples"]
        w = max([len(d.name) for d in self.layers] + [5])
        lines.append(f"  {'layer':<{w}}  {'op':<16} {'elements':>9} {'differ':>8} "
                     f"{'max|d|':>6}  cause")
        for d in self.layers:
            lines.append(f"  {d.name:<{w}}  {d.op_type:<16} {d.elements:>9} {d.differ:>8} "
                         f"{d.max_abs:>6}  {d.cause}")
            lines.extend(f"  {'':<{w}}    constraint: {v}" for v in d.violations)
            lines.extend(f"  {'':<{w}}    engine: {v}" for v in d.engine_checks)
        for name, (n, differ, mx) in self.outputs.items():
            lines.append(f"  output '{name}': {differ} of {n} elements differ "
                         f"(max |diff| {mx:.6g})")
        lines.extend(f"  constraint: {v}" for v in self.unplaced)
        defective = [d.name for d in self.layers if any("ENGINE DEFECTS" in c
                                                         for c in d.engine_checks)]
        if defective:
            lines.append(f"  the actual engine departs from exact arithmetic on this CPU in "
                         f"{len(defective)} layer(s): {', '.join(defective)}")
        if self.identical:
            lines.append(f"  {a} and {b} agree bit for bit on these inputs")
        return "\n".join(lines)


def _field_swaps(a: Target, b: Target) -> dict[str, Target]:
    """One hybrid target per arithmetic field in which `a` and `b` differ: `a` with b's value."""
    out: dict[str, Target] = {}
    a_conv = a.conv_arithmetic or a.arithmetic
    b_conv = b.conv_arithmetic or b.arithmetic
    for f in fields(Arithmetic):
        if (getattr(a.arithmetic, f.name) != getattr(b.arithmetic, f.name)
                or getattr(a_conv, f.name) != getattr(b_conv, f.name)):
            out[f.name] = replace(
                a, name=f"{a.name}+{f.name}",
                arithmetic=replace(a.arithmetic, **{f.name: getattr(b.arithmetic, f.name)}),
                conv_arithmetic=replace(a_conv, **{f.name: getattr(b_conv, f.name)}))
    if a.requant_mode is not b.requant_mode:
        out["requant_mode"] = replace(a, name=f"{a.name}+requant_mode",
                                      requant_mode=b.requant_mode)
    return out


def _run_step(step: Step, env: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """One step on channels-first inputs taken from `env` (None if an input is missing)."""
    from .runtime.plan import CF

    vals = [env.get(i) if i else None for i in step.inputs]
    if any(v is None and i for v, i in zip(vals, step.inputs, strict=True)):
        return None
    return np.asarray(step.fn(*vals, layout=CF)[0])


def _layer_tensors(model: onnx.ModelProto) -> dict[str, set[str]]:
    """Node name -> names of its inputs, outputs and their Q/DQ neighbours' tensors."""
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out: dict[str, set[str]] = {}
    for n in model.graph.node:
        names = set(n.input) | set(n.output)
        for i in n.input:
            p = producers.get(i)
            if p is not None and p.op_type == "DequantizeLinear":
                names.update(p.input)
                names.add(p.name)
        for o in n.output:
            for c in consumers.get(o, []):
                if c.op_type in ("QuantizeLinear", "Relu", "Clip"):
                    names.update(c.output)
                    names.add(c.name)
        out[n.name] = names
    return out


def compare_targets(model: str | os.PathLike[str] | onnx.ModelProto,
                    feeds: Mapping[str, np.ndarray], target_a: str | Target,
                    target_b: str | Target, *, run_engines: bool = False,
                    reproducers: str | os.PathLike[str] | None = None) -> CompareReport:
    """Compare a QDQ model's integer layers and outputs under two targets' arithmetic.

    Parameters
    ----------
    model
        A QDQ model (path or ModelProto).
    feeds
        Input name -> array; the first axis is the sample axis.
    target_a, target_b
        Targets or their names.
    run_engines
        Also run each layer on the actual PyTorch engine of either target that is one
        (x86, fbgemm, onednn, qnnpack; needs torch) on the same integer input, and sort its
        outputs against lowp's model of it (lowp.fidelity.engine_check): an engine defect
        on this CPU is reported as the engine's error, with a reproducer in `reproducers`.

    Returns
    -------
    CompareReport
        Per layer: elements, how many differ, the largest difference, the cause and the
        constraint violations of either target at that layer; end to end: per output.
    """
    from .fidelity.session import session_for
    from .ir.graph import load_model
    from .passes.verify import lint

    a, b = get_target(target_a), get_target(target_b)
    proto = load_model(model)
    sa, sb = session_for(proto, a), session_for(proto, b)
    env_a = sa.run(feeds, capture=True)
    out_b = sb.run(feeds)
    hybrids = {f: session_for(proto, t) for f, t in _field_swaps(a, b).items()}
    hybrid_steps = {f: {s.name: s for s in h.steps} for f, h in hybrids.items()}
    tensors = _layer_tensors(proto)
    violations = [(t.name, v) for t in (a, b) for v in lint(proto, t)]
    placed: set[int] = set()
    layers = []
    for step in sb.steps:
        if step.kind not in ("int", "quantize"):
            continue
        got_b = _run_step(step, env_a)
        want_a = env_a.get(step.outputs[0])
        if got_b is None or want_a is None:
            continue
        diff = np.abs(got_b.astype(np.int64) - np.asarray(want_a).astype(np.int64))
        bad = diff != 0
        row = LayerDiff(step.name, f"{step.op_type}:{step.kind}", int(diff.size),
                        int(bad.sum()), int(diff.max()) if diff.size else 0)
        if row.differ:
            best, best_fixed = "", -1
            for f, steps in hybrid_steps.items():
                h = steps.get(step.name)
                got_h = _run_step(h, env_a) if h is not None else None
                if got_h is None:
                    continue
                fixed = int(np.count_nonzero(got_h[bad] == got_b[bad]))
                if fixed > best_fixed:
                    best, best_fixed = f, fixed
            if best:
                detail = ""
                if best in ("bias", "accumulation", "epilogue", "quantize", "multiplier",
                            "zero_point_add"):
                    va = _arith_value(a, step.op_type, best)
                    vb = _arith_value(b, step.op_type, best)
                    detail = f": {va} ({a.name}) vs {vb} ({b.name})"
                share = "" if best_fixed == row.differ else f" ({best_fixed} of {row.differ})"
                row.cause = _CAUSES[best] + detail + share
            else:
                row.cause = "not explained by the arithmetic models"
        names = tensors.get(step.name, set()) | set(step.inputs) | set(step.outputs)
        for k, (tname, v) in enumerate(violations):
            if k not in placed and (v.node in names or v.tensor in names):
                row.violations.append(f"{tname}: {v}")
                placed.add(k)
        layers.append(row)
    if run_engines:
        _attach_engine_checks(proto, env_a, (a, b), layers, reproducers)
    outputs = {}
    for name in sa.output_names:
        xa, xb = np.asarray(env_a[name]), np.asarray(out_b[name])
        d = np.abs(xa.astype(np.float64) - xb.astype(np.float64))
        outputs[name] = (int(xa.size), int(np.count_nonzero(d)),
                         float(d.max()) if d.size else 0.0)
    unplaced = [f"{t}: {v}" for k, (t, v) in enumerate(violations) if k not in placed]
    n = next(iter(feeds.values())).shape[0] if feeds else 0
    where = str(model) if not isinstance(model, onnx.ModelProto) else proto.graph.name
    return CompareReport(where, (a.name, b.name), int(n), layers, outputs, unplaced)


def _attach_engine_checks(proto: onnx.ModelProto, values: Mapping[str, np.ndarray],
                          targets: tuple[Target, Target], layers: list[LayerDiff],
                          reproducers: str | os.PathLike[str] | None) -> None:
    from .fidelity.engine_check import TORCH_ENGINES, check_engine

    rows = {d.name: d for d in layers}
    for t in dict.fromkeys(t.name for t in targets):
        if t not in TORCH_ENGINES:
            continue
        for check in check_engine(proto, values, t, reproducers):
            row = rows.get(check.node)
            if row is None:
                row = rows[check.node] = LayerDiff(check.node, "engine check", 0, 0, 0)
                layers.append(row)
            row.engine_checks.append(check.describe())


def _arith_value(t: Target, op_type: str, name: str) -> str:
    arith = t.conv_arithmetic if (op_type == "Conv" and t.conv_arithmetic) else t.arithmetic
    return str(getattr(arith, name).value)


def _feeds(model_path: str, data: str | None, samples: int, seed: int) -> dict[str, np.ndarray]:
    from .inputs import load_arrays, model_inputs
    from .ir.graph import load_model

    specs = model_inputs(load_model(model_path))
    if data:
        try:
            arrays = load_arrays(data, specs)
        except DataError as e:
            raise CompareError(str(e)) from None
        return {k: np.asarray(v)[:samples] for k, v in arrays.items()}
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        if spec.shape is None:
            raise CompareError(f"input '{spec.name}' has no shape; pass --data")
        shape = tuple(samples if i == 0 and d is None else (d if d is not None else 1)
                      for i, d in enumerate(spec.shape))
        if spec.dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            info = np.iinfo(spec.dtype)
            feeds[spec.name] = rng.integers(max(info.min, -128), min(info.max, 255) + 1,
                                            shape).astype(spec.dtype)
    return feeds


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the per-layer comparison of MODEL under two targets."""
    if not os.path.exists(args.model):
        raise CompareError(f"{args.model}: no such file")
    a, b = args.targets
    feeds = _feeds(args.model, args.data, args.samples, args.seed)
    report = compare_targets(args.model, feeds, a, b, run_engines=args.run_engines,
                             reproducers=args.reproducers)
    print(report.format())
    return 0


def add_compare_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the `compare` subcommand."""
    c = sub.add_parser("compare", help="run a QDQ model under two targets' arithmetic and "
                                       "explain every difference, layer by layer")
    c.add_argument("model")
    c.add_argument("--targets", nargs=2, required=True, metavar=("A", "B"),
                   choices=sorted(TARGETS), help=f"two of: {', '.join(sorted(TARGETS))}")
    c.add_argument("--data", metavar="DATA",
                   help=".npz named after the inputs or a folder (default: random inputs)")
    c.add_argument("--samples", type=int, default=8, help="samples to run (default 8)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    c.add_argument("--run-engines", action="store_true",
                   help="also run every Conv/Gemm/MatMul on the actual PyTorch engine of a "
                        "target that is one (x86, fbgemm, onednn, qnnpack; needs torch) and "
                        "report where it departs from exact arithmetic on this CPU")
    c.add_argument("--reproducers", metavar="DIR", default="lowp-reproducers",
                   help="where --run-engines writes a reproducer per engine defect "
                        "(default: ./lowp-reproducers)")
    c.set_defaults(func=cmd_compare)
