"""Float operators of the ai.onnx.ml domain, as ONNX Runtime's CPU kernels compute them.

scikit-learn pipelines converted by skl2onnx start with them (a StandardScaler becomes a
Scaler) before the ONNX operators of the model proper; lowp runs them in float, never
quantized (docs/operators.md, (O51)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from lowp.errors import NodeError
from lowp.ir import NameAllocator
from lowp.runtime.float_registry import MapSequence, register, unsupported

# the (domain, op type) pairs of this module, for the lowering's domain check
# (the tree ensembles: lowp.runtime.ml_trees and ml_tree_ensemble)
ML_OPS = frozenset({("ai.onnx.ml", "Scaler"), ("ai.onnx.ml", "TreeEnsemble"),
                    ("ai.onnx.ml", "ZipMap"),
                    ("ai.onnx.ml", "TreeEnsembleClassifier"),
                    ("ai.onnx.ml", "TreeEnsembleRegressor")})

_TYPES = (np.float32, np.float64, np.int32, np.int64)


@register
def Scaler(x: np.ndarray, *, offset: Sequence[float] = (), scale: Sequence[float] = (),
           **_: Any) -> np.ndarray:
    """(O51) y = float32((x - offset[j]) * scale[j]), j = i mod F for the flat index i, F the
    second dimension (the first of a 1-D x): ONNX Runtime's ScalerOp. Both lists have F
    entries or one. float32 x computes in float32, float64 x in float64 (the float lists
    widened) then rounds once; an int32/int64 x is converted to float32 first, as C++
    converts it in `x - offset[j]`."""
    if x.dtype.type not in _TYPES:
        raise unsupported("Scaler", f"input of type {x.dtype}")
    if not len(scale) or len(scale) != len(offset):
        raise NodeError(f"Scaler: scale ({len(scale)}) and offset ({len(offset)}) must have "
                        "the same length, at least 1")
    if x.ndim == 0:
        raise NodeError("Scaler: the input has no dimensions")
    stride = x.shape[0] if x.ndim == 1 else x.shape[1]
    if len(scale) not in (1, stride):
        raise NodeError(f"Scaler: scale and offset must have the feature size ({stride}) "
                        f"or 1 entry, not {len(scale)}")
    work = np.float64 if x.dtype == np.float64 else np.float32
    off = np.asarray(offset, np.float32).astype(work)
    sc = np.asarray(scale, np.float32).astype(work)
    flat = x.reshape(-1).astype(work)
    if len(scale) > 1:
        reps = -(-flat.size // stride)
        off, sc = np.tile(off, reps)[:flat.size], np.tile(sc, reps)[:flat.size]
    return ((flat - off) * sc).astype(np.float32).reshape(x.shape)


@register
def ZipMap(x: np.ndarray, *, classlabels_int64s: Sequence[int] = (),
           classlabels_strings: Sequence[bytes | str] = (), **_: Any) -> MapSequence:
    """(O226) One dict a row of the float32 scores x ([N, C], or [C] as one row): class
    label -> the score as a Python float (its exact value), keys in ascending order and a
    repeated label keeping its last score, as ONNX Runtime's ZipMapOp fills its vector of
    std::maps and its Python API returns it. Exactly one label list (int64 or strings), of
    C entries; other ranks and types are the model's error (NodeError), as ONNX Runtime
    refuses them."""
    if bool(len(classlabels_int64s)) == bool(len(classlabels_strings)):
        raise NodeError("ZipMap: exactly one of classlabels_int64s and classlabels_strings "
                        "must be set")
    if x.dtype != np.float32:
        raise NodeError(f"ZipMap: the input must be float32, not {x.dtype}")
    if x.ndim not in (1, 2):
        raise NodeError(f"ZipMap: the input must have 1 or 2 dimensions, not {x.ndim}")
    labels: list[int | str] = (
        [int(c) for c in classlabels_int64s] if len(classlabels_int64s) else
        [c.decode() if isinstance(c, bytes) else c for c in classlabels_strings])
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    if rows.shape[1] != len(labels):
        raise NodeError(f"ZipMap: the input has {rows.shape[1]} scores a row and the node "
                        f"{len(labels)} class labels")
    # (a std::map filled label by label: keys in ascending order, a repeated label keeping
    # its last score)
    last = {label: j for j, label in enumerate(labels)}
    keys = sorted(last)  # type: ignore[type-var]
    scores = rows[:, [last[k] for k in keys]].tolist()
    return MapSequence(dict(zip(keys, row, strict=True)) for row in scores)


def maps_as_arrays(outputs: dict[str, Any], keys_suffix: str = ".keys") -> dict[str, Any]:
    """`outputs` with each sequence of maps (ZipMap's list of dicts, one a row; (O226)) as
    two arrays: its scores row by row (`name`, float32: each is a float32 value) and its
    class labels (`name` + `keys_suffix`); other values as they are."""
    out = {}
    for name, value in outputs.items():
        if isinstance(value, list):
            out[name] = np.array([list(row.values()) for row in value], np.float32)
            out[name + keys_suffix] = np.array([list(row) for row in value])
        else:
            out[name] = value
    return out


def scaler_as_arithmetic(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each Scaler of a float32 input of rank 1 or 2 (skl2onnx's StandardScaler
    on (N, F) features) written as Sub(x, offset) then Mul(., scale), the lists as float32
    constants of F values or one: (O51)'s float32 arithmetic, the same two roundings, but
    steps that lowp.runtime.fuse_float chains and replays natively, where the Scaler ran from
    Python on every run (a tabular model's per-run cost). `model` itself when there is none."""
    g = model.graph
    scalers = [(k, n) for k, n in enumerate(g.node) if n.domain == "ai.onnx.ml"
               and n.op_type == "Scaler" and len(n.input) == 1 and len(n.output) == 1]
    if not scalers:
        return model
    types = {v.name: v.type.tensor_type for v in (*g.input, *g.value_info)
             if v.type.HasField("tensor_type")}
    names = NameAllocator.for_model(model)
    replaced: dict[int, list[onnx.NodeProto]] = {}
    constants: list[onnx.TensorProto] = []
    for k, node in scalers:
        t = types.get(node.input[0])
        attrs = {a.name: list(helper.get_attribute_value(a)) for a in node.attribute}
        offset, scale = attrs.get("offset", []), attrs.get("scale", [])
        if t is None or t.elem_type != onnx.TensorProto.FLOAT or not t.HasField("shape") \
                or len(t.shape.dim) not in (1, 2) or not scale or len(scale) != len(offset):
            continue
        features = t.shape.dim[-1]
        if len(scale) > 1 and features.dim_value != len(scale):
            continue        # (a feature count not known to match: the Scaler checks it)
        off, sc, centred = names.fresh("scaler_offset"), names.fresh("scaler_scale"), \
            names.fresh(f"{node.output[0]}_centred")
        constants += [numpy_helper.from_array(np.asarray(offset, np.float32), off),
                      numpy_helper.from_array(np.asarray(scale, np.float32), sc)]
        label = node.name or node.output[0]
        replaced[k] = [
            helper.make_node("Sub", [node.input[0], off], [centred], name=f"{label}_Sub"),
            helper.make_node("Mul", [centred, sc], [node.output[0]], name=f"{label}_Mul")]
    if not replaced:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = [m for k, n in enumerate(g.node) for m in replaced.get(k, [n])]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(constants)
    return out
