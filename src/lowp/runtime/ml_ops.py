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
from lowp.runtime import native_float
from lowp.runtime.float_registry import MapSequence, array_attributes, register, unsupported
from lowp.runtime.tape import call

# the (domain, op type) pairs of this module, for the lowering's domain check
# (the tree ensembles: lowp.runtime.ml_trees and ml_tree_ensemble)
ML_OPS = frozenset({("ai.onnx.ml", "Scaler"), ("ai.onnx.ml", "TreeEnsemble"),
                    ("ai.onnx.ml", "ZipMap"), ("ai.onnx.ml", "LinearClassifier"),
                    ("ai.onnx.ml", "Normalizer"),
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


_POST_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")


@register
@array_attributes("coefficients", "intercepts", "classlabels_ints")
def LinearClassifier(x: np.ndarray, *, coefficients: Any = (), intercepts: Any = (),
                     classlabels_ints: Any = (), classlabels_strings: Sequence[str] = (),
                     post_transform: str = "NONE", node_cache: dict[str, Any] | None = None,
                     **_: Any) -> tuple[np.ndarray, np.ndarray]:
    """(O290) ONNX Runtime's LinearClassifier (C = the intercept count; C = 1 in `_binary`):
    x as float32 (N, F) rows (a 1-D x one row; float64 and int32/int64 converted first), the
    scores x coefficients^T + intercepts as its Gemm computes them (the intercepts
    broadcast into the output, MLAS's SGEMM accumulating onto them; (O33)), the int64
    label of each row the class of its first largest raw score (the coefficients read as
    a C x F matrix from the start of the list, as that Gemm reads them: a longer list's
    tail unread; a shorter one, or one not a multiple of C, the model's error, as are
    fewer labels than classes), then the scores through the post transform as
    batched_update_scores_inplace runs it: LOGISTIC as MLAS's logistic (Sigmoid's),
    PROBIT and SOFTMAX_ZERO as ml_common.h's scalar loops, SOFTMAX as MLAS's softmax
    (Softmax's) where ONNX Runtime picks it by C and N * C, else ml_common.h's loop.
    Float32 (N, C) scores out."""
    op = "LinearClassifier"
    if x.dtype.type not in _TYPES:
        raise unsupported(op, f"input of type {x.dtype}")
    if x.ndim not in (1, 2):
        raise NodeError(f"{op}: the input must have 1 or 2 dimensions, not {x.ndim}")
    model = node_cache.get(_LINEAR) if node_cache is not None else None
    if model is None:       # (the attributes' checks: a refused node refuses every run)
        model = _linear_model(coefficients, intercepts, classlabels_ints,
                              classlabels_strings, post_transform)
        if node_cache is not None:
            node_cache[_LINEAR] = model
    coef, icp, labels = model
    classes = icp.size
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    features = rows.shape[1]
    if coef.size < classes * features:   # (ONNX Runtime's Gemm would read past the list)
        raise NodeError(f"{op}: {coef.size} coefficients for {classes} classes of "
                        f"{features} features")
    from lowp.runtime import float_ops, ml_trees  # (float_ops imports this module)

    xf = rows if rows.dtype == np.float32 else rows.astype(np.float32)
    # (a longer list's tail is never read; float_ops.Gemm's product, called natively
    # without its shape checks, which these shapes pass)
    weights = coef[:classes * features].reshape(classes, features)
    scores = native_float.gemm(xf, weights, _rows_of(icp, rows.shape[0], node_cache),
                               alpha=1.0, trans_a=False, trans_b=True, b_packed=False)
    if scores is None:
        scores = float_ops.Gemm(xf, weights, icp, transB=1)
    if classes == 1:
        return _binary(scores[:, 0], labels, post_transform, ml_trees)
    return _labels(scores, labels), _post_transform(scores, post_transform, float_ops,
                                                    ml_trees)


# node_cache key: LinearClassifier's checked attributes (`_linear_model`)
_LINEAR = "linear_model"


def _linear_model(coefficients: Any, intercepts: Any, classlabels_ints: Any,
                  classlabels_strings: Sequence[str], post_transform: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LinearClassifier's float32 coefficients and intercepts and int64 labels, once its
    attributes pass the checks that need no input (`LinearClassifier`)."""
    op = "LinearClassifier"
    if len(classlabels_strings):
        raise unsupported(op, "string class labels (classlabels_strings): lowp has no string "
                          "tensors")
    if post_transform not in _POST_TRANSFORMS:
        raise unsupported(op, f"post_transform {post_transform!r}")
    icp = np.asarray(intercepts, np.float32)
    coef = np.asarray(coefficients, np.float32)
    labels = np.asarray(classlabels_ints, np.int64)
    classes = icp.size
    if classes < 1:
        raise unsupported(op, "no intercepts: lowp runs one class score a row or more")
    if classes == 1 and labels.size not in (0, 2):
        raise NodeError(f"{op}: {labels.size} class labels for one score a row (binary: "
                        "2 or none)")
    if classes == 1 and labels.size == 2 and post_transform == "PROBIT":
        raise unsupported(op, "PROBIT on one score a row with two class labels (ONNX "
                          "Runtime leaves half of its scores output unwritten)")
    if coef.size % classes:
        raise NodeError(f"{op}: {coef.size} coefficients are not a multiple of the {classes} "
                        "classes")
    if classes > 1 and labels.size < classes:
        raise NodeError(f"{op}: {labels.size} class labels for {classes} classes")
    return coef, icp, labels


def _rows_of(icp: np.ndarray, n: int, node_cache: dict[str, Any] | None) -> np.ndarray:
    """The intercepts broadcast to `n` rows (a read-only view), kept for the last `n`."""
    held = node_cache.get(_INTERCEPT_ROWS) if node_cache is not None else None
    if held is None or held.shape[0] != n:
        held = np.broadcast_to(icp, (n, icp.size))
        if node_cache is not None:
            node_cache[_INTERCEPT_ROWS] = held
    return held


# node_cache key: the intercepts broadcast to the last run's row count (`_rows_of`)
_INTERCEPT_ROWS = "intercept_rows"


def _labels(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """labels[_first_largest(scores)] of float32 (N, C) scores: natively into a
    native_float buffer when the extension has the kernel (a replayed run repeats the call:
    `labels` is the node's own array, the same on every run)."""
    ext = native_float.binding("first_largest_labels")
    if ext is None or scores.dtype != np.float32 or not scores.flags.c_contiguous:
        return labels[_first_largest(scores)]
    out = native_float.buffer((scores.shape[0],), np.int64)
    call(ext.first_largest_labels, scores.reshape(-1), scores.shape[0], scores.shape[1],
         labels, out)
    return out


def _first_largest(scores: np.ndarray) -> np.ndarray:
    """The column of each row's first largest score as `if (*score > maxweight)` picks it
    from the first: a NaN never taken past the first column, a NaN first never left."""
    if not np.isnan(scores).any():
        return np.argmax(scores, axis=1)      # (numpy's argmax: the first maximum)
    best = np.zeros(scores.shape[0], np.int64)
    top = scores[:, 0].copy()
    for c in range(1, scores.shape[1]):
        win = scores[:, c] > top
        best, top = np.where(win, c, best), np.where(win, scores[:, c], top)
    return best


def _binary(s: np.ndarray, labels: np.ndarray, post: str, ml_trees: Any
            ) -> tuple[np.ndarray, np.ndarray]:
    """ONNX Runtime 1.32's one score a row: the label labels[1] where the score is > 0,
    else labels[0] (1 and 0 without labels). With two labels, two scores a row: LOGISTIC
    (ComputeLogistic(-s), ComputeLogistic(s)), any other transform (1 - s, s); without,
    the score itself, only PROBIT applied."""
    pos, neg = (int(labels[1]), int(labels[0])) if labels.size == 2 else (1, 0)
    label = np.where(s > 0, pos, neg).astype(np.int64)
    f = np.float32
    with np.errstate(all="ignore"):
        if labels.size != 2:
            out = ml_trees.probit(s) if post == "PROBIT" else s
            return label, np.asarray(out, f).reshape(-1, 1)
        if post == "LOGISTIC":
            pair = (ml_trees.logistic(-s), ml_trees.logistic(s))
        else:
            pair = ((f(1) - s).astype(f), s)
    return label, np.stack(pair, axis=1).astype(f)


def _post_transform(scores: np.ndarray, post: str, float_ops: Any, ml_trees: Any
                    ) -> np.ndarray:
    """ml_common.h batched_update_scores_inplace on (N, C) float32 scores, C >= 2."""
    n, classes = scores.shape
    if post == "LOGISTIC":
        return np.asarray(float_ops.Sigmoid(scores), np.float32)
    if post == "PROBIT":
        return np.asarray(ml_trees.probit(scores), np.float32)
    if post == "SOFTMAX":
        mlas = {2: n * classes >= 32 * 1024, 3: n * classes >= 16 * 1024,
                4: n * classes >= 16 * 1024}.get(classes, True)
        if mlas:
            return np.asarray(float_ops.Softmax(scores, axis=1), np.float32)
        return np.asarray(ml_trees._softmax(scores, False), np.float32)
    if post == "SOFTMAX_ZERO":
        return np.asarray(ml_trees._softmax(scores, True), np.float32)
    return scores


@register
def Normalizer(x: np.ndarray, *, norm: str = "MAX", **_: Any) -> np.ndarray:
    """(O290) ONNX Runtime's Normalizer: each row of x ([N, F], a 1-D x one row; float32,
    float64, int32 or int64) to float32, in C order. MAX: the row's maximum from the lowest
    float32 through std::max of the float32 values (a NaN never taken), each value over it
    (the row as it is when it is 0). L1: the float32 sum of |x| (abs in x's type, then
    converted) in order, each value over it (as it is when the sum is 0). L2: x * x in
    x's type converted to float32, summed in order; sqrt(x_sq / sum) in float32, negated
    where x < 0 (the compiled `* -1` flips a NaN's sign too; as it is when the sum is 0)."""
    op = "Normalizer"
    if x.dtype.type not in _TYPES:
        raise unsupported(op, f"input of type {x.dtype}")
    if norm not in ("MAX", "L1", "L2"):
        raise NodeError(f"{op}: norm must be MAX, L1 or L2, not {norm!r}")
    if x.ndim not in (1, 2):
        raise NodeError(f"{op}: the input must have 1 or 2 dimensions, not {x.ndim}")
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    f = np.float32
    ext = native_float.binding("normalize_rows")
    if ext is not None and rows.dtype == f and norm != "L2" and rows.flags.c_contiguous:
        y = native_float.buffer(rows.shape, f)
        call(ext.normalize_rows, rows.reshape(-1), rows.shape[0], rows.shape[1],
             0 if norm == "MAX" else 1, y.reshape(-1))
        return y.reshape(x.shape)
    xf = rows if rows.dtype == f else rows.astype(f)
    total = np.zeros(rows.shape[0], f)
    with np.errstate(all="ignore"):
        if norm == "MAX":
            total[:] = np.finfo(f).min
            for j in range(rows.shape[1]):      # std::max(max, v): (max < v) ? v : max
                total = np.where(total < xf[:, j], xf[:, j], total)
            y = _over(xf, total)
        elif norm == "L1":
            mags = np.abs(rows).astype(f, copy=False)
            for j in range(rows.shape[1]):      # (float32 sums, in order)
                np.add(total, mags[:, j], out=total)
            y = _over(xf, total)
        else:
            squares = (rows * rows).astype(f, copy=False)
            for j in range(rows.shape[1]):
                np.add(total, squares[:, j], out=total)
            root = np.sqrt((squares / total[:, None]).astype(f))
            y = np.where((total != 0)[:, None],
                         np.where(rows < 0, np.negative(root), root), xf)
    return np.asarray(y, f).reshape(x.shape)


def _over(xf: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Each row of float32 `xf` over its `total`, the rows whose total is 0 as they are
    (their bits: a NaN's payload kept)."""
    y = xf.copy()
    np.divide(xf, total[:, None], out=y, where=(total != 0)[:, None])
    return y


@register
@array_attributes("classlabels_int64s")
def ZipMap(x: np.ndarray, *, classlabels_int64s: Any = (),
           classlabels_strings: Sequence[bytes | str] = (), scores_only: bool = False,
           node_cache: dict[str, Any] | None = None, **_: Any) -> MapSequence | np.ndarray:
    """(O226) One dict a row of the float32 scores x ([N, C], or [C] as one row): class
    label -> the score as a Python float (its exact value), keys in ascending order and a
    repeated label keeping its last score, as ONNX Runtime's ZipMapOp fills its vector of
    std::maps and its Python API returns it. Exactly one label list (int64 or strings), of
    C entries; other ranks and types are the model's error (NodeError), as ONNX Runtime
    refuses them.

    With `scores_only` (a Session's ZipMap whose output is a graph output no node reads,
    lowp.runtime.lower) the rows' scores in the keys' order instead, (N, keys) float32, by
    a native call into a buffer of its own (so that a replayed run repeats it in its
    Program); the Session makes the maps of them after the run (`maps_of_scores`)."""
    if x.dtype != np.float32:
        raise NodeError(f"ZipMap: the input must be float32, not {x.dtype}")
    if x.ndim not in (1, 2):
        raise NodeError(f"ZipMap: the input must have 1 or 2 dimensions, not {x.ndim}")
    keys, columns, count = (node_cache.get(_ZIPMAP) if node_cache is not None else None) \
        or _zipmap_keys(classlabels_int64s, classlabels_strings)
    if node_cache is not None:
        node_cache[_ZIPMAP] = keys, columns, count
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    if rows.shape[1] != count:
        raise NodeError(f"ZipMap: the input has {rows.shape[1]} scores a row and the node "
                        f"{count} class labels")
    if scores_only:
        return _zipmap_scores(rows, columns, node_cache)
    scores = (rows if columns is None else rows[:, columns]).tolist()
    return MapSequence([dict(zip(keys, row, strict=True)) for row in scores])


def _zipmap_scores(rows: np.ndarray, columns: list[int] | None,
                   node_cache: dict[str, Any] | None) -> np.ndarray:
    """ZipMap's (N, keys) scores in the keys' order: natively (zipmap_scores, its column
    list the node's own array, the same on every run) into a native_float buffer, else a
    numpy copy."""
    ext = native_float.binding("zipmap_scores")
    if ext is None or not rows.flags.c_contiguous:
        return np.array(rows if columns is None else rows[:, columns])
    taken = node_cache.get(_ZIPMAP_COLUMNS) if node_cache is not None else None
    if taken is None:
        taken = np.array(range(rows.shape[1]) if columns is None else columns, np.int64)
        if node_cache is not None:
            node_cache[_ZIPMAP_COLUMNS] = taken
    y = native_float.buffer((rows.shape[0], taken.size), np.float32)
    call(ext.zipmap_scores, rows.reshape(-1), rows.shape[0], rows.shape[1], taken,
         y.reshape(-1))
    return y


def zipmap_keys(int64s: Any, strings: Sequence[bytes | str]) -> list[int | str] | None:
    """ZipMap's keys in ascending order from its label lists (`_zipmap_keys`); None when
    they are the model's error (the node raises it when it runs)."""
    try:
        return _zipmap_keys(int64s, strings)[0]
    except NodeError:
        return None


def maps_of_scores(scores: np.ndarray, keys: list[int | str]) -> list[dict[int | str, float]]:
    """ZipMap's sequence of maps (one dict a row, keys -> Python floats, the keys' order)
    from its (N, keys) float32 scores in the keys' order (`ZipMap` with scores_only): one
    native call building the dicts, as ONNX Runtime's Python binding builds them, else
    Python's."""
    global _build_dicts
    if _build_dicts is _UNSET:
        _build_dicts = getattr(native_float.binding("zipmap_dicts"), "zipmap_dicts", None)
    if _build_dicts is not None:
        return _build_dicts(scores, len(scores), keys)  # type: ignore[no-any-return]
    return [dict(zip(keys, row, strict=True)) for row in scores.tolist()]


# the extension's zipmap_dicts, looked up at the first use (None without it)
_UNSET: Any = object()
_build_dicts: Any = _UNSET


# node_cache keys: ZipMap's keys and the columns they read (`_zipmap_keys`), and those
# columns as the int64 array its native call reads (`_zipmap_scores`)
_ZIPMAP = "zipmap_keys"
_ZIPMAP_COLUMNS = "zipmap_columns"


def _zipmap_keys(int64s: Any, strings: Sequence[bytes | str]
                 ) -> tuple[list[int | str], list[int] | None, int]:
    """ZipMap's keys in ascending order (a std::map filled label by label, a repeated label
    keeping its last score), the columns of the scores they take (None: all, in order) and
    the label count; exactly one label list (the model's error otherwise)."""
    if bool(len(int64s)) == bool(len(strings)):
        raise NodeError("ZipMap: exactly one of classlabels_int64s and classlabels_strings "
                        "must be set")
    labels: list[int | str] = (
        [int(c) for c in int64s] if len(int64s) else
        [c.decode() if isinstance(c, bytes) else c for c in strings])
    last = {label: j for j, label in enumerate(labels)}
    keys = sorted(last)  # type: ignore[type-var]
    columns = [last[k] for k in keys]
    return keys, None if columns == list(range(len(labels))) else columns, len(labels)


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
