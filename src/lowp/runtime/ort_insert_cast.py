"""ONNX Runtime's float16 handling on CPU (InsertCastTransformer and RemoveDuplicateCast),
mirrored at load before lowp.runtime.ort_cast_elimination.

ONNX Runtime's CPU kernels of most float operators have no float16 version. A float16 node
without one runs in float32 between inserted Casts, an operator whose kernel is missing but
that ONNX defines as a function (Softmax, LogSoftmax) is first expanded into its body, a
node that has a float16 kernel but whose float16 inputs all come from such nodes runs in
float32 too ("isolated"), and the Cast pairs float32 -> float16 -> float32 between two such
nodes are then removed. So a chain of float16 operators is computed in float32 and rounded
to float16 only where a value leaves it (docs/operators.md, (O53)). Found on slovorez
0.1.0's Keras mixed-precision morpheme model: lowp rounded every node to float16 as the
file says and differed from ONNX Runtime by one to five float16 units.

The rewrite is made only when every node with a float16 input is of a type in the tables
below (measured on ONNX Runtime 1.32 on x86-64: which of them get Casts inserted); a model
with any other float16 node, or one ONNX Runtime would expand into a function body other
than Softmax's and LogSoftmax's, is left as it is. Top-level graph only.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.graph import ONNX_DOMAINS, cast_to, subgraph_reads
from ..ir.names import NameAllocator
from .ort_cast_elimination import inferred_types

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT
# the types a Cast of float16 may go to and come back from with no loss (RemoveDuplicateCast)
_WIDER_THAN_F16 = (F32, TensorProto.DOUBLE)

# float16 kernels ONNX Runtime's CPU provider has: these nodes stay in float16
HAS_FLOAT16_KERNEL = frozenset({
    "Cast", "Identity", "Round", "Sign", "IsNaN", "IsInf", "Max", "Min", "Clip", "Transpose",
    "Flatten", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Slice", "Gather", "Expand",
    "Split", "LayerNormalization", "Shape", "Size", "QuantizeLinear", "DequantizeLinear"})
# com.microsoft's QuantizeLinear and DequantizeLinear: InsertCastTransformer runs them in
# float32 between Casts (measured: their float16 scales cast to float32), unlike the ONNX ones.
# lowp reads them as the ONNX ones (lowp.formats.qoperator) and marks them with this key
MS_FLOAT32_ONLY = frozenset({"QuantizeLinear", "DequantizeLinear"})
MS_DOMAIN = "com.microsoft"
CONTRIB_QDQ_KEY = "lowp.contrib_qdq"
# no float16 kernel: run in float32 between Casts
FLOAT32_ONLY = frozenset({
    "Conv", "MatMul", "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf",
    "Softplus", "Softsign", "Reciprocal", "Floor", "Ceil", "Sin", "Cos", "HardSigmoid",
    "LeakyRelu", "Elu", "Selu", "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Mean", "Equal",
    "Less", "Greater", "PRelu", "ReduceMax", "ReduceSum", "ReduceMean", "ReduceMin", "Tile",
    "Pad", "CumSum", "Where", "GlobalAveragePool", "GlobalMaxPool", "MaxPool", "AveragePool",
    "Resize", "ConvTranspose", "InstanceNormalization", "BatchNormalization", "DepthToSpace",
    "SpaceToDepth", "Einsum", "Atan", "Trilu", "Tan", "Asin", "Acos", "Sinh", "Cosh"})
# no float16 kernel, an ONNX function from opset 13: expanded into its body first
FUNCTIONS = frozenset({"Softmax", "LogSoftmax"})
# pools run in float32 here never take ONNX Runtime's NCHWc kernels: its layout transformer
# saw a float16 pool (docs/operators.md (O187)); such a node is marked with this key
FLOAT16_POOL_KEY = "lowp.float16_pool"
_POOLS = frozenset({"MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"})


def float16_pool(node: onnx.NodeProto) -> bool:
    """Whether `node` is a float16 pool this rewrite moved to float32 (FLOAT16_POOL_KEY)."""
    return any(p.key == FLOAT16_POOL_KEY for p in node.metadata_props)


def _types(model: onnx.ModelProto) -> dict[str, int]:
    """The inferred element types (ort_cast_elimination.inferred_types) and those of the
    Constant nodes' values."""
    types = inferred_types(model)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output:
            value = next((a.t for a in n.attribute if a.name == "value"), None)
            if value is not None:
                types[n.output[0]] = value.data_type
    return types


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ONNX_DOMAINS), 0)


def _expand(node: onnx.NodeProto, opset: int, names: NameAllocator,
            inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    """Softmax / LogSoftmax (opset >= 13) as ONNX's function body: ReduceMax, Sub, Exp,
    ReduceSum, then Div (Softmax) or Log and Sub (LogSoftmax)."""
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
    x, y = node.input[0], node.output[0]
    axes = names.fresh(f"{y}_axes")
    inits.append(numpy_helper.from_array(np.array([axis], np.int64), axes))
    peak, shifted, exp, total = (names.fresh(f"{y}_{s}") for s in
                                 ("ReduceMax", "Sub", "Exp", "ReduceSum"))
    reduce_max = (helper.make_node("ReduceMax", [x, axes], [peak], keepdims=1) if opset >= 18
                  else helper.make_node("ReduceMax", [x], [peak], keepdims=1, axes=[axis]))
    body = [reduce_max, helper.make_node("Sub", [x, peak], [shifted]),
            helper.make_node("Exp", [shifted], [exp]),
            helper.make_node("ReduceSum", [exp, axes], [total], keepdims=1)]
    if node.op_type == "Softmax":
        body.append(helper.make_node("Div", [exp, total], [y]))
    else:
        log = names.fresh(f"{y}_Log")
        body += [helper.make_node("Log", [total], [log]),
                 helper.make_node("Sub", [shifted, log], [y])]
    for n in body:
        n.name = names.fresh(f"{node.name or y}_{n.op_type}")
    return body


def _may_hold_float16(g: onnx.GraphProto) -> bool:
    """A cheap look before shape inference: a float16 initializer, graph input or output,
    Cast to float16 or float16 Constant."""
    return (any(t.data_type == F16 for t in g.initializer)
            or any(v.type.tensor_type.elem_type == F16 for v in (*g.input, *g.output))
            or any(a.name == "to" and a.i == F16 or a.name == "value" and a.t.data_type == F16
                   for n in g.node if n.op_type in ("Cast", "Constant") for a in n.attribute))


def _weight_dequantize(n: onnx.NodeProto, made_by: dict[str, onnx.NodeProto],
                       constants: set[str]) -> bool:
    """A MatMul or Gemm whose B is a DequantizeLinear of a constant: ONNX Runtime's
    DQMatMulToMatMulNBits may take the pair first (lowp.runtime.lower_linear mirrors that
    on the model as written), so such a model is left as it is."""
    dq = made_by.get(n.input[1]) if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 \
        else None
    return dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in constants


def _mirrorable(nodes: list[onnx.NodeProto], types: dict[str, int], opset: int,
                constants: set[str]) -> bool:
    made_by = {o: n for n in nodes for o in n.output if o}
    for n in nodes:
        if not any(types.get(i) == F16 for i in n.input if i):
            continue
        if _weight_dequantize(n, made_by, constants):
            return False
        if n.domain == MS_DOMAIN and n.op_type in MS_FLOAT32_ONLY:
            continue
        if n.domain not in ONNX_DOMAINS or any(a.type in (onnx.AttributeProto.GRAPH,
                                                          onnx.AttributeProto.GRAPHS)
                                               for a in n.attribute):
            return False
        if n.op_type in FUNCTIONS and opset >= 13:
            continue
        if n.op_type not in HAS_FLOAT16_KERNEL | FLOAT32_ONLY or _inlined(n.op_type, opset):
            return False
    return True


def _has_float16_kernel(n: onnx.NodeProto) -> bool:
    return (n.op_type in HAS_FLOAT16_KERNEL and n.domain in ONNX_DOMAINS
            and not any(p.key == CONTRIB_QDQ_KEY for p in n.metadata_props))


def _inlined(op_type: str, opset: int) -> bool:
    """ONNX Runtime expands an operator without a float16 kernel into its function body
    when ONNX defines one at the model's opset (Relu as Max from opset 18, LeakyRelu and
    PRelu as Where from 16): bodies other than Softmax's and LogSoftmax's are not mirrored."""
    if op_type in HAS_FLOAT16_KERNEL:
        return False
    try:
        schema = onnx.defs.get_schema(op_type, opset)
    except onnx.defs.SchemaError:
        return True
    versions = [*getattr(schema, "function_opset_versions", ()),   # not in onnx's stubs
                *getattr(schema, "context_dependent_function_opset_versions", ())]
    return any(v <= opset for v in versions)


def _first_of_each_formal(n: onnx.NodeProto, opset: int, count: int, outputs: bool
                          ) -> list[int]:
    """The positions ONNX Runtime's isolation test looks at among `count` inputs (outputs)
    of `n`: the first value given for each formal parameter of the schema (of a variadic
    parameter, its first value only)."""
    try:
        schema = onnx.defs.get_schema(n.op_type, opset, "" if n.domain in ONNX_DOMAINS
                                      else n.domain)
    except onnx.defs.SchemaError:
        return list(range(count))    # com.microsoft's Q/DQ: one value per parameter
    formal = schema.outputs if outputs else schema.inputs
    variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    given = list(n.output if outputs else n.input)[:count]
    picks: list[int] = []
    for f, p in enumerate(formal):
        span = range(f, len(given)) if p.option == variadic else range(f, min(f + 1, len(given)))
        first = next((j for j in span if given[j]), None)
        if first is not None:
            picks.append(first)
        if p.option == variadic:
            break
    return picks


def _isolated(n: onnx.NodeProto, opset: int, types: dict[str, int],
              computed_by: dict[str, int], readers: dict[str, list[int]],
              in_float32: set[int]) -> bool:
    """ONNX Runtime's IsIsolatedFp16NodeOnCpu (insert_cast_transformer.cc) for a node that
    has a float16 kernel: it reads at least one value another node computes (an edge; an
    initializer or graph input is none), the float16 values it looks at among its inputs
    (_first_of_each_formal) that come from a node come from nodes run in float32, it
    writes a float16 value, and every node reading the float16 values it looks at among
    its outputs runs in float32. An initializer or graph input of float16 is then Cast to
    float32 like any other."""
    if not any(i in computed_by for i in (*n.input, *subgraph_reads(n))):
        return False
    looked_in = [n.input[j] for j in _first_of_each_formal(n, opset, len(n.input), False)]
    fp16_in = [i for i in looked_in if types.get(i) == F16]
    if not fp16_in or not all(computed_by[i] in in_float32 for i in fp16_in
                              if i in computed_by):
        return False
    looked_out = [n.output[j] for j in _first_of_each_formal(n, opset, len(n.output), True)]
    fp16_out = [o for o in looked_out if o and types.get(o) == F16]
    return bool(fp16_out) and all(readers.get(o) and all(r in in_float32 for r in readers[o])
                                  for o in fp16_out)


def _unique_float16_dequantize(nodes: list[onnx.NodeProto], types: dict[str, int],
                               outputs: set[str], names: NameAllocator
                               ) -> list[onnx.NodeProto]:
    """`nodes` with a copy of each float16 DequantizeLinear for every further node that
    reads it (every node when its value is a graph output), as ONNX Runtime's
    EnsureUniqueDQForNodeUnit makes them before InsertCastTransformer: each copy is then
    isolated or not on its own (_isolated), so a reader run in float32 can read the float32
    product while another reads the float16 one. A reader inside a branch keeps the
    original."""
    readers: dict[str, list[int]] = {}
    for k, n in enumerate(nodes):
        for i in dict.fromkeys(i for i in n.input if i):
            readers.setdefault(i, []).append(k)
    copy_for: dict[int, list[tuple[str, str]]] = {}    # reader -> (value, its copy)
    copies: dict[int, list[onnx.NodeProto]] = {}       # DequantizeLinear -> its copies
    for k, n in enumerate(nodes):
        if (n.op_type != "DequantizeLinear" or not n.output or types.get(n.output[0]) != F16
                or not (n.domain in ONNX_DOMAINS or n.domain == MS_DOMAIN)):
            continue
        y = n.output[0]
        further = readers.get(y, [])[0 if y in outputs else 1:]
        for r in further:
            dup = onnx.NodeProto()
            dup.CopyFrom(n)
            dup.output[0] = names.fresh(f"{y}_copy")
            dup.name = names.fresh(f"{n.name or y}_copy")
            types[dup.output[0]] = F16
            copies.setdefault(k, []).append(dup)
            copy_for.setdefault(r, []).append((y, dup.output[0]))
    if not copies:
        return nodes
    out: list[onnx.NodeProto] = []
    for k, n in enumerate(nodes):
        if k in copy_for:
            n2 = onnx.NodeProto()
            n2.CopyFrom(n)
            for value, dup_name in copy_for[k]:
                for j, i in enumerate(n2.input):
                    if i == value:
                        n2.input[j] = dup_name
            n = n2
        out.append(n)
        out += copies.get(k, [])
    return out


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its float16 chains in float32 as ONNX Runtime runs them (a new model),
    or `model` itself when it has no float16 node or one the tables do not cover."""
    g = model.graph
    if not _may_hold_float16(g):
        return model
    types = _types(model)
    opset = _opset(model)
    constant_names = ({t.name for t in g.initializer} - {v.name for v in g.input}
                      | {o for n in g.node if n.op_type == "Constant" for o in n.output})
    if not _mirrorable(list(g.node), types, opset, constant_names):
        return model
    names = NameAllocator.for_model(model)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    for n in g.node:
        if n.op_type in FUNCTIONS and any(types.get(i) == F16 for i in n.input if i):
            body = _expand(n, opset, names, inits)
            for b in body[:-1]:
                types[b.output[0]] = F16
            nodes += body
        else:
            nodes.append(n)
    if not any(types.get(i) == F16 for n in nodes for i in n.input if i):
        return model
    outputs = {o.name for o in g.output}
    nodes = _unique_float16_dequantize(nodes, types, outputs, names)
    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}

    def fp16_inputs(n: onnx.NodeProto) -> list[str]:
        return [i for i in n.input if i and types.get(i) == F16]

    # the nodes ONNX Runtime runs in float32: no float16 kernel, then the isolated ones
    # (_isolated), met in graph order
    in_float32 = {k for k, n in enumerate(nodes)
                  if fp16_inputs(n) and not _has_float16_kernel(n)}
    readers: dict[str, list[int]] = {}
    for k, n in enumerate(nodes):
        for i in (*n.input, *subgraph_reads(n)):    # a branch reads the float16 value
            readers.setdefault(i, []).append(k)
    # Constants are initializers to ONNX Runtime: they make no edge
    computed_by = {o: k for o, k in producer.items() if nodes[k].op_type != "Constant"}
    computing = sum(n.op_type != "Constant" for n in nodes)
    for k, n in enumerate(nodes):
        if (computing > 1 and k not in in_float32 and fp16_inputs(n)
                and not any(o in outputs for o in n.output)
                and _isolated(n, opset, types, computed_by, readers, in_float32)):
            in_float32.add(k)
    if not in_float32:
        return model

    # RemoveDuplicateCast visits the file's Casts before the ones InsertCast adds: a file's
    # pair float16 -> float32 (or double) -> float16 after a node run in float32 goes first,
    # and the second Cast's readers then read that node's float16 value, as if the pair were
    # not there (so a Cast among them may read the float32 value)
    float16_computed = {o for k in in_float32 for o in nodes[k].output
                        if o and types.get(o) == F16}
    same_as: dict[str, str] = {}         # second Cast's output -> the float16 value
    for n in nodes:
        if n.op_type != "Cast" or cast_to(n) != F16 or n.output[0] in outputs:
            continue
        first = nodes[producer[n.input[0]]] if n.input[0] in producer else None
        if first is not None and first.op_type == "Cast" and cast_to(first) in _WIDER_THAN_F16:
            value = same_as.get(first.input[0], first.input[0])
            if value in float16_computed:
                same_as[n.output[0]] = value
                readers.setdefault(value, []).extend(readers.get(n.output[0], []))

    def no_narrow(value: str) -> bool:
        """RemoveDuplicateCast drops the Cast to float16 after a node run in float32 when
        every reader outside the float32 nodes is a Cast and the value is no graph output:
        those Casts then read the float32 value."""
        return value not in outputs and all(nodes[r].op_type == "Cast"
                                            for r in readers.get(value, [])
                                            if r not in in_float32)

    overridable = {v.name for v in g.input}
    constants = {t.name: t for t in g.initializer if t.name not in overridable}
    wide: dict[str, str] = {}            # float16 value -> its float32 value
    computed: set[str] = set()           # float16 outputs of the nodes run in float32
    out_nodes: list[onnx.NodeProto] = []
    for k, n in enumerate(nodes):
        if k not in in_float32:
            value = same_as.get(n.input[0], n.input[0]) if n.op_type == "Cast" else ""
            if value in computed and (
                    no_narrow(value) or n.output[0] not in outputs and cast_to(n) == F32):
                n = onnx.NodeProto()         # reads the float32 value, not its rounding
                n.CopyFrom(nodes[k])
                n.input[0] = wide[value]
            out_nodes.append(n)
            continue
        n = onnx.NodeProto()
        n.CopyFrom(nodes[k])
        if n.op_type in _POOLS and n.domain in ONNX_DOMAINS:
            n.metadata_props.add(key=FLOAT16_POOL_KEY, value="1")
        for j, i in enumerate(n.input):
            if not i or types.get(i) != F16:
                continue
            if i not in wide:
                src = nodes[producer[i]] if i in producer else None
                if i in same_as:
                    wide[i] = wide[same_as[i]]
                elif (src is not None and src.op_type == "Cast"
                        and types.get(src.input[0]) == F32):
                    wide[i] = src.input[0]   # Cast float32 -> float16 -> float32 removed
                elif i in constants:         # folded, as ONNX Runtime's constant folding does
                    wide[i] = names.fresh(f"{i}_float32")
                    inits.append(numpy_helper.from_array(
                        numpy_helper.to_array(constants[i]).astype(np.float32), wide[i]))
                else:
                    wide[i] = names.fresh(f"{i}_float32")
                    out_nodes.append(helper.make_node("Cast", [i], [wide[i]], to=F32,
                                                      name=names.fresh(f"{i}_to_float32")))
            n.input[j] = wide[i]
        narrow = []
        for j, o in enumerate(n.output):
            if not o or types.get(o) != F16:
                continue
            wide[o] = names.fresh(f"{o}_float32")
            computed.add(o)
            n.output[j] = wide[o]
            if o in outputs or not no_narrow(o) and any(r not in in_float32
                                                         for r in readers.get(o, [])):
                narrow.append(helper.make_node("Cast", [wide[o]], [o], to=F16,
                                               name=names.fresh(f"{o}_to_float16")))
        out_nodes += [n, *narrow]

    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(out_nodes)
    out.graph.initializer.extend(inits)
    produced = {o for n in out_nodes for o in n.output}
    kept = [v for v in out.graph.value_info if v.name in produced]
    del out.graph.value_info[:]
    out.graph.value_info.extend(kept)
    return out
