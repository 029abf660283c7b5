"""ONNX Runtime's fusions that fold a Transpose into the product reading it (O33t).

A Transpose read by a MatMul or a Gemm is not computed by ONNX Runtime: the product reads
its input with MLAS's transpose flag instead, and MLAS picks its kernel and K blocking
from the flags (lowp.mlas_sgemm): a row times a transposed matrix runs the M = 1 kernel
with B transposed (eight lane sums per column) instead of the plain M = 1 kernel (groups
of four k), a transposed A keeps the K block at 128 and skips the M = 1 kernel. So the
fold changes the rounding, and lowp makes the same rewrites, with ONNX Runtime's rules:

* GemmTransposeFusion (level 1, a rewrite rule): a Gemm (read by at most one node) one of
  whose inputs A, B is a 2-D Transpose read only by it and no graph output takes the
  Transpose's input with transA / transB flipped (every opset in ONNX Runtime 1.32). Its
  other form (a Gemm without C read by a Transpose, rewritten as Bᵀ·Aᵀ) is not mirrored.
* MatmulTransposeFusion (level 2, before BiasGeluFusion and MatMulScaleFusion): a float
  MatMul (opset >= 9) or FusedMatMul one of whose inputs is a Transpose (no graph output)
  that keeps the input's last axis in the last two places and its batch axes in order,
  with the first axis first or moved just before the last two ([1, 0, 2] / [1, 2, 0] of
  [L, N*H, d] attention heads), becomes a FusedMatMul with transA / transB and
  transBatchA / transBatchB flipped and the same alpha (a batch flag only when both
  inputs have one known rank; a side whose transBatch is set already is not folded);
  the Transpose goes once no other node reads it. The Transpose -> Cast -> MatMul form
  (ONNX Runtime swaps the Cast and the Transpose first) is not mirrored.

A Transpose of a constant is left alone: ONNX Runtime's constant folding (level 1) has
made it an initializer before either fusion sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import onnx
from onnx import helper

from ..ir.graph import ONNX_DOMAINS

if TYPE_CHECKING:
    from .ort_fusions import Rewrite, _Index

_MS = "com.microsoft"


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _foldable_transpose(name: str, index: _Index) -> onnx.NodeProto | None:
    """The Transpose producing `name` when ONNX Runtime may fold it into its reader: not a
    graph output and not a Transpose of a constant (folded away before)."""
    node = index.producer.get(name)
    if node is None or node.op_type != "Transpose" or node.domain not in ONNX_DOMAINS:
        return None
    if any(o in index.outputs for o in node.output) or not node.input:
        return None
    source = index.producer.get(node.input[0])
    if node.input[0] in index.initializers or (
            source is not None and source.op_type == "Constant"):
        return None
    return node


def _perm(node: onnx.NodeProto, index: _Index) -> list[int] | None:
    """A Transpose's permutation: its attribute, else the axes reversed (rank known)."""
    perm = _attrs(node).get("perm")
    if perm is not None:
        return [int(p) for p in perm]    # type: ignore[attr-defined]
    shape = index.shapes.get(node.input[0])
    return None if shape is None else list(range(len(shape.dim)))[::-1]


def _fold_flags(perm: list[int]) -> tuple[bool, bool] | None:
    """MatmulTransposeFusion's test of a permutation: (transpose flag, batch flag) when the
    product can read the Transpose's input in its place, else None. The input's last axis
    must land in the last two places, and the batch axes keep their order with the first axis
    either first (no batch flag) or moved just before the last two (transBatch: [M, b..., K]
    read as [b..., M, K]); the identity passes too (no flag)."""
    rank = len(perm)
    if rank < 2 or rank - 1 not in perm[-2:]:
        return None
    if rank >= 3 and (perm[0] not in (0, 1) or
                      any(perm[i] + 1 != perm[i + 1] for i in range(rank - 3))):
        return None
    return perm[-2] == rank - 1, rank >= 3 and perm[0] == 1


def matmul_transpose(node: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """MatmulTransposeFusion: MatMul / FusedMatMul reading a Transpose it can take as flags."""
    is_fused = node.op_type == "FusedMatMul" and node.domain == _MS
    if not (is_fused or (node.op_type == "MatMul" and node.domain in ONNX_DOMAINS)):
        return None
    if len(node.input) != 2 or not all(index.is_float(i) for i in node.input):
        return None
    attrs = _attrs(node) if is_fused else {}
    folds: list[onnx.NodeProto | None] = []
    flags: list[tuple[bool, bool]] = []
    for name, batch_key in zip(node.input, ("transBatchA", "transBatchB"), strict=True):
        tr = None if attrs.get(batch_key) else _foldable_transpose(name, index)
        perm = None if tr is None else _perm(tr, index)
        got = None if perm is None else _fold_flags(perm)
        folds.append(tr if got is not None else None)
        flags.append(got or (False, False))
    if any(batch for _, batch in flags):
        # a batch flag needs both inputs of one known rank, else that side is not folded
        ranks = [index.shapes.get(name) for name in node.input]
        if any(r is None for r in ranks) or \
                len(ranks[0].dim) != len(ranks[1].dim):   # type: ignore[union-attr]
            for i in (0, 1):
                if flags[i][1]:
                    folds[i], flags[i] = None, (False, False)
    if not any(folds):
        return None
    inputs = [tr.input[0] if tr is not None else name for name, tr in zip(node.input, folds,
                                                                         strict=True)]
    keys = (("transA", "transBatchA"), ("transB", "transBatchB"))
    out = {}
    for (trans_key, batch_key), (trans, batch) in zip(keys, flags, strict=True):
        out[trans_key] = int(bool(attrs.get(trans_key, 0)) ^ trans)
        out[batch_key] = int(bool(attrs.get(batch_key, 0)) ^ batch)
    fused = helper.make_node("FusedMatMul", inputs, [node.output[0]],
                             name=(node.name or node.output[0]) + "/MatmulTransposeFusion",
                             domain=_MS, transA=out["transA"], transB=out["transB"],
                             transBatchA=out["transBatchA"], transBatchB=out["transBatchB"],
                             alpha=float(attrs.get("alpha", 1.0)))  # type: ignore[arg-type]
    # a Transpose goes with its last reader (both inputs may be the same Transpose)
    unique = {id(t): t for t in folds if t is not None}
    gone = [tr for tr in unique.values()
            if all(c is node for c in index.consumers[tr.output[0]])]
    return [fused], gone


def gemm_transpose(node: onnx.NodeProto, index: _Index) -> Rewrite | None:
    """GemmTransposeFusion, its input form: Gemm reading a 2-D Transpose of one reader."""
    if node.op_type != "Gemm" or node.domain not in ONNX_DOMAINS or len(node.input) < 2:
        return None
    if len(index.consumers.get(node.output[0], [])) > 1:
        return None
    folds = []
    for name in node.input[:2]:
        tr = _foldable_transpose(name, index)
        ok = tr is not None and len(index.consumers[name]) == 1 and \
            _perm(tr, index) in ([1, 0], None)
        folds.append(tr if ok else None)
    if not any(folds):
        return None
    attrs = _attrs(node)
    for key, tr in zip(("transA", "transB"), folds, strict=True):
        attrs[key] = int(bool(attrs.get(key, 0)) ^ (tr is not None))
    inputs = [tr.input[0] if tr is not None else name
              for name, tr in zip(node.input[:2], folds, strict=True)] + list(node.input[2:])
    fused = helper.make_node("Gemm", inputs, list(node.output),
                             name=(node.name or node.output[0]) + "/GemmTransposeFusion",
                             **attrs)  # type: ignore[arg-type]
    return [fused], [tr for tr in folds if tr is not None]
