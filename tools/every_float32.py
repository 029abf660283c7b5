"""lowp's engine vs ONNX Runtime on every float32 bit pattern, for one-input float operators.

    python tools/every_float32.py Atan Erf Gelu:approximate=tanh [--chunks 256] [--first 0]
        [--stratified] [--isa amx] [--opset 17] [--threads 2] [--numpy]
    python tools/every_float32.py --stratified Pow:@1=0.5 Div:@1=3 Div:@0=1 Mul:@1=0.1

Each operator is a one-node float model over a vector of 2**24 elements. The 2**32 bit
patterns are fed in `--chunks` consecutive blocks of 2**24 (256 blocks: every pattern,
NaNs and infinities included; fewer: the first blocks only) to `lowp.Session` and ONNX
Runtime (one thread each), and the outputs are compared bit for bit, NaN payloads and the
sign of zero included. Prints per operator the patterns compared, how many differ and up to
three of them (input, ONNX Runtime's bits, lowp's bits); exits 1 if any differs.

`--stratified` feeds three blocks instead: every pattern with a zero exponent (zeros and
subnormals, both signs), every one with an all-ones exponent (infinities and every NaN
payload), and every 256th pattern of the whole range (each sign, exponent and high mantissa
bits, the low byte varying from one to the next): a fast first look, ~1/85 of the full
sweep's time. An operator is `Name` or `Name:attribute=value,...` (integer, float or
string values); the opset is the larger of `--opset` and the first that defines it (Mish
18, Gelu 20). `com.microsoft.Name` is that domain's operator (FastGelu, QuickGelu, ...;
BiasGelu gets a zero bias of 64 values, the block then being 2**18 rows of 64). A
binary operator takes a constant operand as `@INDEX=VALUE`: `Pow:@1=0.5` is x ** 0.5,
`Div:@0=1` is 1 / x (a float32 scalar initializer; the swept patterns are the other
input). `--first F` starts at block F (a stopped sweep's rest: `--first 148`).

The block length is a multiple of 64, so every element is on the kernels' main vector loop:
the tail and head handling is covered by the unit tests over odd lengths.
`--isa` forces lowp's instruction-set path (LOWP_ISA) for the run; `--numpy` runs lowp's
numpy reference operators (lowp.runtime.native_float.disabled()) instead of its native
kernels. `--threads T` runs both engines at T intra-op threads, over a vector of the block
and its first three patterns again (2**24 + 3 elements; BiasGelu's rows stay 2**24): ONNX
Runtime's TryParallelFor blocks then start off a multiple of 4 elements, where its Eigen
functors evaluate a head with the C library (docs/operators.md (O91)).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from tqdm import tqdm

BLOCK = 1 << 24


def parse_op(spec: str) -> tuple[str, dict[str, int | float | str]]:
    """`Name:attribute=value,...` as the op type and its attributes (a constant operand's
    `@INDEX=value` among them, as the key `@INDEX`)."""
    name, _, rest = spec.partition(":")
    attributes: dict[str, int | float | str] = {}
    for item in filter(None, rest.split(",")):
        key, equals, text = item.partition("=")
        if not equals:
            raise ValueError(f"{spec}: attribute {item!r} is not name=value")
        attributes[key] = attribute_value(text)
    constants = [k for k in attributes if k.startswith("@")]
    if constants and (len(constants) != 1 or constants[0] not in ("@0", "@1")):
        raise ValueError(f"{spec}: one constant operand, @0 or @1")
    return name, attributes


def attribute_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def split_domain(op: str) -> tuple[str, str]:
    """`com.microsoft.Name` as (domain, Name); a plain name is in the ai.onnx domain."""
    domain, _, name = op.rpartition(".")
    return domain, name


def first_opset(op: str) -> int:
    """The first ONNX opset that defines `op` (ai.onnx domain; 1 for another domain's)."""
    if split_domain(op)[0]:
        return 1
    versions = [s.since_version for s in onnx.defs.get_all_schemas_with_history()
                if s.name == op and s.domain == ""]
    if not versions:
        raise ValueError(f"{op} is not an ONNX operator")
    return min(versions)


def exponent_block(exponent: int) -> np.ndarray:
    """Every pattern with this exponent field, both signs (BLOCK bits)."""
    mantissas = np.arange(1 << 23, dtype=np.uint32) | np.uint32(exponent << 23)
    return np.concatenate([mantissas, mantissas | np.uint32(1 << 31)])


def every_256th_block() -> np.ndarray:
    """Every 256th pattern of the whole range, the low byte varying (BLOCK bits)."""
    k = np.arange(BLOCK, dtype=np.uint32)
    low = (k * np.uint32(167) + (k >> np.uint32(8))) & np.uint32(0xFF)
    return (k << np.uint32(8)) | low


def consecutive_block(c: int) -> np.ndarray:
    return np.arange(c * BLOCK, (c + 1) * BLOCK, dtype=np.uint64).astype(np.uint32)


def one_node_model(op: str, opset: int,
                   attributes: dict[str, int | float | str] | None = None,
                   length: int = BLOCK) -> onnx.ModelProto:
    domain, name = split_domain(op)
    attributes = dict(attributes or {})
    inputs, initializers, vec = ["x"], [], [length]
    if name == "BiasGelu":      # a bias of the last axis: zeros, over rows of 64
        vec = [BLOCK // 64, 64]
        inputs.append("bias")
        initializers.append(helper.make_tensor("bias", TensorProto.FLOAT, [64], [0.0] * 64))
    for key in [k for k in attributes if k.startswith("@")]:    # a constant operand
        value = float(attributes.pop(key))
        initializers.append(helper.make_tensor("c", TensorProto.FLOAT, [], [value]))
        inputs.insert(int(key[1:]), "c")
    node = helper.make_node(name, inputs, ["y"], **attributes)
    node.domain = domain
    graph = helper.make_graph(
        [node], name.lower(),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, vec)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, vec)], initializers)
    opsets = [helper.make_opsetid("", max(opset, 17) if domain else opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    if not domain:
        onnx.checker.check_model(model, full_check=True)
    return model


def sweep(spec: str, blocks: list[Callable[[], np.ndarray]], opset: int, folder: Path,
          numpy: bool = False, threads: int = 1) -> int:
    """Differing patterns of operator `spec` (parse_op) over `blocks` (lowp's numpy
    operators when `numpy`, else its native kernels), both engines at `threads`."""
    import onnxruntime as ort

    import lowp
    from lowp.runtime import native_float

    op, attributes = parse_op(spec)
    path = folder / f"{split_domain(op)[1]}.onnx"
    pad = 3 if threads > 1 and split_domain(op)[1] != "BiasGelu" else 0
    onnx.save(one_node_model(op, max(opset, first_opset(op)), attributes, BLOCK + pad), path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    reference = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    only_numpy = native_float.disabled if numpy else contextlib.nullcontext
    with only_numpy():
        session = lowp.Session(str(path), threads=threads)
    shape = reference.get_inputs()[0].shape
    differing = 0
    shown: list[str] = []
    progress = tqdm(blocks, desc=spec, unit="block", leave=False)
    for block in progress:
        bits = block()
        if pad:
            bits = np.concatenate([bits, bits[:pad]])
        x = bits.view(np.float32)
        feed = {"x": x.reshape(shape)}
        want = reference.run(None, feed)[0].view(np.uint32).reshape(-1)
        with only_numpy():
            got = session.run(feed)["y"].view(np.uint32).reshape(-1)
        apart = np.flatnonzero(want != got)
        differing += len(apart)
        progress.set_postfix(differ=differing)     # a stopped run's count so far, on stderr
        for i in apart[:max(0, 3 - len(shown))]:
            shown.append(f"x=0x{bits[i]:08x} ({x[i]!r}): ONNX Runtime 0x{want[i]:08x}, "
                         f"lowp 0x{got[i]:08x}")
    kind = "numpy" if numpy else f"native {os.environ.get('LOWP_ISA', 'default path')}"
    kind += f", {threads} threads" if threads > 1 else ""
    print(f"{spec} ({kind}): {len(blocks) * BLOCK:,} patterns, {differing:,} differ", flush=True)
    for line in shown:
        print(f"  {line}")
    return differing


def block_makers(chunks: int, stratified: bool,
                 first: int = 0) -> list[Callable[[], np.ndarray]]:
    if stratified:
        return [functools.partial(exponent_block, 0), functools.partial(exponent_block, 0xFF),
                every_256th_block]
    return [functools.partial(consecutive_block, c) for c in range(first, min(256, first + chunks))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ops", nargs="+", help="ONNX operator names (one float input)")
    parser.add_argument("--chunks", type=int, default=256,
                        help=f"blocks of {BLOCK:,} patterns (256 = all)")
    parser.add_argument("--first", type=int, default=0,
                        help="the first block (0..255; with --chunks, at most to the last)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of both engines (the vector 2**24 + 3 long)")
    parser.add_argument("--stratified", action="store_true",
                        help="zero and all-ones exponents, every 256th pattern (3 blocks)")
    parser.add_argument("--opset", type=int, default=17,
                        help="at least this opset (each op: at least its first)")
    parser.add_argument("--isa", help="force lowp's instruction-set path (LOWP_ISA)")
    parser.add_argument("--numpy", action="store_true",
                        help="lowp's numpy reference operators instead of its native kernels")
    args = parser.parse_args()
    if not 1 <= args.chunks <= 256:
        parser.error("--chunks must be 1..256")
    if not 0 <= args.first <= 255:
        parser.error("--first must be 0..255")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.isa:
        os.environ["LOWP_ISA"] = args.isa
    blocks = block_makers(args.chunks, args.stratified, args.first)
    with tempfile.TemporaryDirectory() as folder:
        total = sum(sweep(op, blocks, args.opset, Path(folder), args.numpy, args.threads)
                    for op in args.ops)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
