"""A per-feature affine layer exported as Mul -> Add of constants (a batch normalization as
TensorFlow writes it, a LayerNorm's scale and shift) folded into the neighbouring layer's
weight and bias (`Config.fold_affine`; docs/accuracy.md, "Per-feature affine layers folded").

Quantized as it is, the Mul's constant is stored on one 8-bit grid (a per-feature factor of
0.1 next to one of 30 loses a third of its value) and the Mul's output, features scaled by
factors far apart, is rounded on one activation grid. Folded, the factors scale a weight
that is quantized per output channel, the shift joins a bias, and one rounding is left:

* into the readers: y = Mul(x, c) -> Add(b), read only by MatMuls (or Gemms, transA=0,
  alpha=beta=1) with a constant [N, M] weight W: each reader computes
  x @ (c[:, None] * W) + b @ W; the bias goes into the Add of a constant that already
  follows the MatMul (a Dense layer's), or into the Gemm's C, else into a new Add.
* into the producer: a Conv or Gemm with a constant weight, its output through a chain of
  Transpose, Squeeze and Unsqueeze read one by one, into Mul(c) -> Add(b) along the output
  channel: the weight's output channel o is scaled by c[o], the bias becomes
  bias * c + b, and the chain's last node writes the Add's output.

c and b hold one value per feature (or one for all) along the axis the layer works on; the
Add may be missing (b = 0). The float function is unchanged up to the float rounding of the
reordered products and sums (exact in real arithmetic).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir.graph import Graph, attributes
from ..ir.names import NameAllocator
from .canonicalize import drop_unused_initializers

_LAYOUT = ("Transpose", "Squeeze", "Unsqueeze")


def _per_feature(graph: Graph, node: onnx.NodeProto, x: str, axis: int, rank: int,
                 n: int) -> np.ndarray | None:
    """The constant operand of the binary `node` (whose other operand is `x`, of rank
    `rank`) as n float32 values along `axis`, or None when it is not one value per feature
    (or one for all) along that axis alone."""
    if len(node.input) != 2 or list(node.input).count(x) != 1:
        return None
    other = node.input[1] if node.input[0] == x else node.input[0]
    if not graph.is_constant(other):
        return None
    v = graph.constant(other)
    if v.dtype != np.float32 or v.ndim > rank:
        return None
    if v.size == 1:
        return np.full(n, v.reshape(()), np.float32)
    shape = [1] * (rank - v.ndim) + list(v.shape)
    if v.size != n or shape[axis] != n:
        return None
    return v.reshape(n)


def _only_reader(graph: Graph, tensor: str) -> onnx.NodeProto | None:
    readers = graph.consumers.get(tensor, [])
    if len(readers) != 1 or tensor in graph.output_names:
        return None
    return readers[0]


def _affine(graph: Graph, x: str, axis: int, rank: int, n: int
            ) -> tuple[list[onnx.NodeProto], np.ndarray, np.ndarray] | None:
    """Mul(x, c) [-> Add(b)] read alone from `x`: the nodes, c and b (zeros without Add)."""
    mul = _only_reader(graph, x)
    if mul is None or mul.op_type != "Mul":
        return None
    c = _per_feature(graph, mul, x, axis, rank, n)
    if c is None:
        return None
    nxt = _only_reader(graph, mul.output[0])
    if nxt is not None and nxt.op_type == "Add":
        b = _per_feature(graph, nxt, mul.output[0], axis, rank, n)
        if b is not None:
            return [mul, nxt], c, b
    return [mul], c, np.zeros(n, np.float32)


def _rank(graph: Graph, tensor: str) -> int | None:
    shape = graph.inferred_shape(tensor)
    return None if shape is None else len(shape)


class _Rewrite:
    """Collects node replacements and new initializers over one model copy."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = Graph(model)
        self.names = NameAllocator.for_model(model)
        self.dropped: set[int] = set()
        self.replaced: dict[int, list[onnx.NodeProto]] = {}
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def constant(self, hint: str, value: np.ndarray) -> str:
        name = self.names.fresh(hint)
        self.inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def touched(self, nodes: list[onnx.NodeProto]) -> bool:
        return any(id(n) in self.dropped or id(n) in self.replaced for n in nodes)

    def apply(self) -> onnx.ModelProto:
        kept: list[onnx.NodeProto] = []
        for node in self.model.graph.node:
            if id(node) not in self.dropped:
                kept.extend(self.replaced.get(id(node), [node]))
        del self.model.graph.node[:]
        self.model.graph.node.extend(kept)
        self.model.graph.initializer.extend(self.inits)
        return drop_unused_initializers(self.model)


def _reader_weight(graph: Graph, node: onnx.NodeProto, x: str, n: int | None
                   ) -> tuple[np.ndarray, bool] | None:
    """A MatMul's or plain Gemm's constant weight as [n, M] (and whether Gemm stores it
    transposed), when `x` is its first operand and only that (any n when None)."""
    if len(node.input) < 2 or node.input[0] != x or node.input[1] == x:
        return None
    if not graph.is_constant(node.input[1]):
        return None
    w = graph.constant(node.input[1])
    if w.dtype != np.float32 or w.ndim != 2:
        return None
    trans = False
    if node.op_type == "Gemm":
        a = attributes(node)
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            return None
        trans = bool(a.get("transB", 0))
        if len(node.input) > 2 and node.input[2] and not graph.is_constant(node.input[2]):
            return None
    elif node.op_type != "MatMul":
        return None
    w = w.T if trans else w
    return (w, trans) if n is None or w.shape[0] == n else None


def _into_readers(rw: _Rewrite, mul: onnx.NodeProto) -> None:
    graph = rw.graph
    x = next((i for i in mul.input if not graph.is_constant(i)), None)
    if x is None:
        return
    end = mul
    nxt = _only_reader(graph, mul.output[0])
    if nxt is not None and nxt.op_type == "Add":
        end = nxt
    readers = graph.consumers.get(end.output[0], [])
    first = _reader_weight(graph, readers[0], end.output[0], None) if readers else None
    if first is None:
        return
    n = int(first[0].shape[0])
    # an x of unknown rank: only constants of one axis, which cannot widen it
    rank = _rank(graph, x) or 1
    found = _affine(graph, x, rank - 1, rank, n)
    if found is None or found[0][0] is not mul:
        return
    nodes, c, b = found
    out = nodes[-1].output[0]
    readers = graph.consumers.get(out, [])
    if not readers or out in graph.output_names or rw.touched([*nodes, *readers]):
        return
    weights = [_reader_weight(graph, r, out, n) for r in readers]
    if any(w is None for w in weights):
        return
    for reader, found_w in zip(readers, weights, strict=True):
        assert found_w is not None
        w, trans = found_w
        w64 = w.astype(np.float64)
        scaled = (c.astype(np.float64)[:, None] * w64).astype(np.float32)
        w_name = rw.constant(reader.input[1] + "_folded", scaled.T if trans else scaled)
        shift = (b.astype(np.float64) @ w64)
        new = onnx.NodeProto()
        new.CopyFrom(reader)
        new.input[0] = x
        new.input[1] = w_name
        extra: list[onnx.NodeProto] = []
        if reader.op_type == "Gemm":
            if len(new.input) > 2 and new.input[2]:
                base = graph.constant(new.input[2]).astype(np.float64)
                bias = np.broadcast_to(base, np.broadcast_shapes(base.shape, shift.shape))
                new.input[2] = rw.constant(new.input[2] + "_folded", bias + shift)
            elif np.any(b):
                while len(new.input) < 3:
                    new.input.append("")
                new.input[2] = rw.constant(new.name + "_bias", shift)
        elif np.any(b):
            add = _only_reader(graph, reader.output[0])
            m = shift.shape[0]
            own = (None if add is None or add.op_type != "Add" or rw.touched([add])
                   else _per_feature(graph, add, reader.output[0], rank - 1, rank, m))
            if add is not None and own is not None:
                new_add = onnx.NodeProto()
                new_add.CopyFrom(add)
                j = 1 if add.input[0] == reader.output[0] else 0
                new_add.input[j] = rw.constant(add.input[j] + "_folded",
                                               own.astype(np.float64) + shift)
                rw.replaced[id(add)] = [new_add]
            else:
                product = rw.names.fresh(reader.output[0] + "_unshifted")
                new.output[0] = product
                extra.append(helper.make_node(
                    "Add", [product, rw.constant(reader.name + "_shift", shift)],
                    [reader.output[0]], name=rw.names.fresh(reader.name + "_shift")))
        rw.replaced[id(reader)] = [new, *extra]
    rw.dropped.update(id(nd) for nd in nodes)
    rw.count += 1


def _channel_through(graph: Graph, node: onnx.NodeProto, axis: int, rank: int
                     ) -> tuple[int, int] | None:
    """The output channel's axis and rank after a layout node, or None when it moves it
    out of reach (squeezes it, or the axes are not constant)."""
    if node.op_type == "Transpose":
        given = attributes(node).get("perm")
        perm = (list(range(rank))[::-1] if not isinstance(given, list)
                else [int(p) for p in given])
        return perm.index(axis), rank
    if len(node.input) > 1 and node.input[1]:
        if not graph.is_constant(node.input[1]):
            return None
        axes = [int(a) for a in graph.constant(node.input[1]).reshape(-1)]
    else:
        listed = attributes(node).get("axes")
        if not isinstance(listed, list):
            return None
        axes = [int(a) for a in listed]
    if node.op_type == "Squeeze":
        axes = sorted(a % rank for a in axes)
        if axis in axes:
            return None
        return axis - sum(a < axis for a in axes), rank - len(axes)
    out_rank = rank + len(axes)
    axes = sorted(a % out_rank for a in axes)
    for a in axes:
        if a <= axis:
            axis += 1
    return axis, out_rank


def _into_producer(rw: _Rewrite, producer: onnx.NodeProto) -> None:
    graph = rw.graph
    if producer.op_type not in ("Conv", "Gemm") or len(producer.input) < 2:
        return
    if not graph.is_constant(producer.input[1]):
        return
    w = graph.constant(producer.input[1])
    if w.dtype != np.float32:
        return
    if producer.op_type == "Gemm":
        a = attributes(producer)
        if a.get("transA", 0) or w.ndim != 2:
            return
        trans = bool(a.get("transB", 0))
        n, axis = int(w.shape[0] if trans else w.shape[1]), 1
        rank = 2
    else:
        n, axis = int(w.shape[0]), 1
        r = _rank(graph, producer.output[0])
        if r is None:
            return
        rank = r
    has_bias = len(producer.input) > 2 and producer.input[2] != ""
    if has_bias and not graph.is_constant(producer.input[2]):
        return
    chain: list[onnx.NodeProto] = []
    tensor = producer.output[0]
    while True:
        nxt = _only_reader(graph, tensor)
        if nxt is None or nxt.op_type not in _LAYOUT or nxt.input[0] != tensor:
            break
        moved = _channel_through(graph, nxt, axis, rank)
        if moved is None:
            return
        axis, rank = moved
        chain.append(nxt)
        tensor = nxt.output[0]
    found = _affine(graph, tensor, axis, rank, n)
    if found is None or rw.touched([producer, *chain, *found[0]]):
        return
    nodes, c, b = found
    c64 = c.astype(np.float64)
    if producer.op_type == "Conv":
        scaled = w.astype(np.float64) * c64.reshape((n,) + (1,) * (w.ndim - 1))
    else:
        scaled = w.astype(np.float64) * (c64[:, None] if trans else c64[None, :])
    base = (graph.constant(producer.input[2]).astype(np.float64) if has_bias
            else np.zeros(n))
    if base.size not in (1, n):
        return
    bias = np.broadcast_to(base.reshape(-1), (n,)) * c64 + b
    new = onnx.NodeProto()
    new.CopyFrom(producer)
    new.input[1] = rw.constant(producer.input[1] + "_folded", scaled)
    while len(new.input) < 3:
        new.input.append("")
    new.input[2] = rw.constant((producer.input[2] if has_bias else producer.name + "_bias")
                               + "_folded", bias)
    last = nodes[-1].output[0]
    if chain:
        tail = onnx.NodeProto()
        tail.CopyFrom(chain[-1])
        tail.output[0] = last
        rw.replaced[id(chain[-1])] = [tail]
    else:
        new.output[0] = last
    rw.replaced[id(producer)] = [new]
    rw.dropped.update(id(nd) for nd in nodes)
    rw.count += 1


def fold_affine(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with every per-feature Mul -> Add folded into its producer or its
    readers (module docstring), and how many were folded. The producer is tried first: it
    leaves the readers' weights as they were."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    rw = _Rewrite(out)
    for node in out.graph.node:
        _into_producer(rw, node)
    for node in out.graph.node:
        if node.op_type == "Mul" and id(node) not in rw.dropped:
            _into_readers(rw, node)
    if not rw.count:
        return out, 0
    return rw.apply(), rw.count
