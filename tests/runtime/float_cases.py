"""Conformance cases for the numpy float ops: one-node models checked against ONNX Runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import NodeProto, TensorProto, helper, numpy_helper


@dataclass
class Case:
    """One node: op type, inputs (None = omitted), attributes, opset and tolerance."""

    op: str
    inputs: list[np.ndarray | None]
    attrs: dict[str, Any] = field(default_factory=dict)
    opset: int = 17
    n_out: int = 1
    tol: float = 1e-5  # 0 means exact
    name: str = ""
    domain: str = ""    # "com.microsoft": one of ONNX Runtime's fused operators
    domain_opset: int = 1   # the domain's opset (ai.onnx.ml 5: TreeEnsemble)

    @property
    def id(self) -> str:
        domain = f"{self.domain}." if self.domain else ""
        return f"{domain}{self.op}-{self.name or 'default'}-op{self.opset}"


def input_names(c: Case) -> list[str]:
    names = ["" if x is None else f"in{i}" for i, x in enumerate(c.inputs)]
    while names and names[-1] == "":
        names.pop()
    return names


def make_node(c: Case) -> NodeProto:
    """The case as an ONNX node (inputs in0.., outputs out0..)."""
    attrs = {k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v
             for k, v in c.attrs.items()}
    outs = [f"out{i}" for i in range(c.n_out)]
    return helper.make_node(c.op, input_names(c), outs, domain=c.domain or None, **attrs)


def run_ort(c: Case) -> list[np.ndarray]:
    """Run the case's single node in ONNX Runtime on the CPU provider."""
    names = input_names(c)
    node = make_node(c)
    outs = list(node.output)
    graph_inputs = [helper.make_tensor_value_info(
        n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)
        for n, x in zip(names, c.inputs, strict=False) if n and x is not None]
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outs])
    opsets = [helper.make_opsetid("", c.opset)]
    if c.domain:
        opsets.append(helper.make_opsetid(c.domain, c.domain_opset))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8 if c.opset < 21 else 10
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1   # lowp reproduces ONNX Runtime's one-thread float order
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    feeds = {n: x for n, x in zip(names, c.inputs, strict=False) if n and x is not None}
    return list(sess.run(None, feeds))


_rng = np.random.default_rng(1234)


def f32(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (_rng.standard_normal(shape) * scale).astype(np.float32)


def pos(*shape: int) -> np.ndarray:
    return _rng.uniform(0.1, 3.0, shape).astype(np.float32)


def ints(*shape: int, lo: int = -128, hi: int = 128, dtype: Any = np.int8) -> np.ndarray:
    return _rng.integers(lo, hi, shape).astype(dtype)


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def scalar(v: Any, dtype: Any = np.float32) -> np.ndarray:
    return np.array(v, dtype=dtype)


def _elementwise() -> list[Case]:
    cs: list[Case] = []
    x = f32(3, 4, 5, scale=2)
    for op in ["Relu", "Sigmoid", "Tanh", "Softplus", "Neg", "Abs", "Floor", "Ceil",
               "Exp", "Softsign", "HardSwish", "Sign"]:
        cs.append(Case(op, [x]))
    # ONNX Runtime's erf and GELU (MLAS), bit for bit: both branches, the clamp, the split
    wide = np.concatenate([f32(1000, scale=2), np.linspace(-4.5, 4.5, 999, dtype=np.float32),
                           np.array([0.921875, -0.921875, 3.925, 0.0, -0.0], np.float32)])
    cs += [Case("Erf", [x], tol=0), Case("Erf", [wide], tol=0, name="wide"),
           Case("Gelu", [wide], opset=20, tol=0, name="wide"),
           Case("Gelu", [wide], domain="com.microsoft", tol=0, name="ms"),
           Case("BiasGelu", [f32(3, 40, scale=2), f32(40)], domain="com.microsoft", tol=0),
           Case("FastGelu", [wide], domain="com.microsoft", tol=0, name="wide"),
           Case("FastGelu", [f32(3, 40, scale=3), f32(40)], domain="com.microsoft", tol=0,
                name="bias")]
    cs.append(Case("Round", [np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.4, -0.6], np.float32)]))
    cs += [Case("Sqrt", [pos(3, 4)]), Case("Log", [pos(3, 4)]), Case("Reciprocal", [pos(3, 4)])]
    cs += [Case("HardSigmoid", [x]),
           Case("HardSigmoid", [x], {"alpha": 0.3, "beta": 0.4}, name="ab"),
           Case("LeakyRelu", [x]), Case("LeakyRelu", [x], {"alpha": 0.2}, name="a"),
           Case("Elu", [x]), Case("Elu", [x], {"alpha": 0.5}, name="a"),
           Case("Selu", [x]), Case("Celu", [x]), Case("ThresholdedRelu", [x]),
           Case("PRelu", [f32(2, 3, 4, 4), f32(3, 1, 1)]),
           Case("PRelu", [f32(2, 3, 4), f32(4)], name="last"),
           Case("Shrink", [f32(4, 6)]),
           Case("Shrink", [f32(4, 6)], {"bias": 0.3, "lambd": 0.4}, name="bias")]
    cs += [Case("Gelu", [x], opset=20), Case("Gelu", [x], {"approximate": "tanh"}, opset=20,
                                             name="tanh")]
    cs += [Case("Clip", [x], {"min": -0.5, "max": 0.7}, opset=6, name="attrs"),
           Case("Clip", [x, scalar(-0.5), scalar(0.7)], opset=11),
           Case("Clip", [x, None, scalar(0.7)], opset=13, name="max-only"),
           Case("Clip", [x], opset=13, name="none"),
           Case("Clip", [ints(4, 5), scalar(-3, np.int8), scalar(5, np.int8)], opset=13,
                tol=0, name="int8")]
    a, b = f32(2, 3, 4), f32(3, 1)
    for op in ["Add", "Sub", "Mul", "Div", "Max", "Min"]:
        cs.append(Case(op, [a, b]))
    for op in ["Add", "Sub", "Mul"]:
        cs.append(Case(op, [ints(3, 4, dtype=np.int32), ints(4, dtype=np.int32)], tol=0,
                       name="int32"))
    cs.append(Case("Div", [ints(30, dtype=np.int32), ints(30, lo=1, hi=9, dtype=np.int32)
                           * np.where(_rng.random(30) < 0.5, -1, 1).astype(np.int32)],
                   tol=0, name="int32-trunc"))
    cs += [Case("Pow", [pos(3, 4), f32(3, 4)]), Case("Pow", [f32(3, 4), scalar(2.0)], name="sq"),
           Case("Pow", [f32(3, 4), scalar(3, np.int64)], name="int-exp")]
    cs += [Case("Max", [f32(3, 1), f32(1, 4), f32(4)], name="3"),
           Case("Min", [f32(3, 4)], name="1"),
           Case("Sum", [f32(3, 1), f32(1, 4), f32(4)]), Case("Mean", [f32(3, 1), f32(1, 4)])]
    for op in ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"]:
        cs.append(Case(op, [ints(3, 4, lo=-3, hi=3, dtype=np.int64),
                            ints(4, lo=-3, hi=3, dtype=np.int64)], opset=16, tol=0))
    cs.append(Case("Less", [f32(3, 4), f32(4)], tol=0, name="float"))
    bx, by = _rng.random((3, 4)) < 0.5, _rng.random(4) < 0.5
    cs += [Case("Not", [bx], tol=0), Case("And", [bx, by], tol=0), Case("Or", [bx, by], tol=0),
           Case("Xor", [bx, by], tol=0),
           Case("Where", [bx, f32(3, 4), f32(1, 4)]),
           Case("Where", [bx, ints(3, 4), ints(4)], tol=0, name="int8")]
    return cs


def _matmul() -> list[Case]:
    return [
        # MLAS's order, bit for bit (lowp.mlas_sgemm): the general kernel with one and with
        # several K blocks, and the M = 1 and N = 1 kernels
        Case("MatMul", [f32(3, 4), f32(4, 5)], tol=0),
        Case("MatMul", [f32(2, 3, 4), f32(4, 5)], tol=0, name="batched"),
        Case("MatMul", [f32(2, 1, 3, 4), f32(3, 4, 2)], tol=0, name="broadcast"),
        Case("MatMul", [f32(4), f32(4, 5)], tol=0, name="vec"),
        Case("MatMul", [f32(9, 300), f32(300, 70)], tol=0, name="k-blocks"),
        Case("MatMul", [f32(2, 1, 37), f32(2, 37, 9)], tol=0, name="m1"),
        Case("MatMul", [f32(13, 37), f32(37, 1)], tol=0, name="n1"),
        Case("FusedMatMul", [f32(2, 6, 33), f32(2, 33, 5)], {"alpha": 0.3}, tol=0,
             domain="com.microsoft"),
        Case("FusedMatMul", [f32(2, 33, 6), f32(2, 5, 33)],
             {"alpha": 0.125, "transA": 1, "transB": 1}, tol=0, domain="com.microsoft",
             name="trans"),
        Case("FusedMatMul", [f32(1, 1, 40), f32(1, 7, 40)], {"transB": 1}, tol=0,
             domain="com.microsoft", name="m1-transb"),
        Case("Gemm", [f32(3, 4), f32(4, 5), f32(5)]),
        Case("Gemm", [f32(4, 3), f32(5, 4), f32(3, 5)],
             {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, name="trans"),
        Case("Gemm", [f32(3, 4), f32(4, 5)], opset=11, name="noc"),
        Case("Gemm", [f32(3, 4), f32(4, 5), f32(1)], {"beta": 0.0}, name="beta0"),
        Case("Einsum", [f32(2, 3, 4), f32(2, 4, 5)], {"equation": "bij,bjk->bik"}),
        Case("Einsum", [f32(3, 4)], {"equation": "ij->ji"}, name="transpose"),
        Case("Einsum", [f32(3, 4), f32(4)], {"equation": "ij,j->i"}, name="mv"),
    ]


def _softmax() -> list[Case]:
    x = f32(2, 3, 4, scale=3)
    cs = []
    for op in ["Softmax", "LogSoftmax", "Hardmax"]:
        cs += [Case(op, [x], opset=11), Case(op, [x], {"axis": 2}, opset=11, name="ax2"),
               Case(op, [x], {"axis": 0}, opset=11, name="ax0"),
               Case(op, [x], opset=13), Case(op, [x], {"axis": 1}, opset=13, name="ax1")]
    return cs


def _reductions() -> list[Case]:
    x = f32(2, 3, 4)
    cs = []
    for op in ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2",
               "ReduceSumSquare", "ReduceL1", "ReduceLogSumExp"]:
        cs += [Case(op, [x], {"axes": [1]}, opset=11, name="attr"),
               Case(op, [x], {"axes": [0, -1], "keepdims": 0}, opset=11, name="attr-nokeep"),
               Case(op, [x], opset=11, name="all")]
        if op == "ReduceSum":
            cs += [Case(op, [x, i64(1)], opset=13, name="input"),
                   Case(op, [x, i64(0, 2)], {"keepdims": 0}, opset=13, name="input-nokeep"),
                   Case(op, [x, np.zeros(0, np.int64)], {"noop_with_empty_axes": 1}, opset=13,
                        name="noop")]
        else:
            cs += [Case(op, [x], {"axes": [1]}, opset=13, name="attr13"),
                   Case(op, [x, i64(1)], opset=18, name="input"),
                   Case(op, [x, i64(-1, 0)], {"keepdims": 0}, opset=18, name="input-nokeep"),
                   Case(op, [x], opset=18, name="all18")]
    cs += [Case("ReduceMax", [ints(3, 4)], {"axes": [1]}, opset=13, tol=0, name="int8"),
           Case("ReduceSum", [ints(3, 4, dtype=np.int32), i64(1)], opset=13, tol=0,
                name="int32")]
    y = ints(3, 5, lo=-2, hi=2).astype(np.float32)
    for op in ["ArgMax", "ArgMin"]:
        cs += [Case(op, [y], tol=0), Case(op, [y], {"axis": 1, "keepdims": 0}, tol=0, name="ax1"),
               Case(op, [y], {"axis": 1, "select_last_index": 1}, opset=12, tol=0, name="last")]
    t = f32(3, 6)
    t[0, :3] = 1.0
    cs += [Case("TopK", [t, i64(3)], opset=11, n_out=2),
           Case("TopK", [t, i64(2)], {"axis": 0, "largest": 0}, opset=11, n_out=2,
                name="smallest"),
           Case("TopK", [ints(3, 6, lo=-3, hi=3, dtype=np.int64), i64(4)], opset=11, n_out=2,
                tol=0, name="ties")]
    c = f32(3, 4)
    cs += [Case("CumSum", [c, i64(1)]),
           Case("CumSum", [c, i64(0)], {"exclusive": 1, "reverse": 1}, name="excl-rev"),
           Case("CumSum", [ints(3, 4, dtype=np.int32), scalar(1, np.int32)], {"reverse": 1},
                tol=0, name="int")]
    return cs


def _movement() -> list[Case]:
    q = ints(2, 3, 4, 5)
    x = f32(2, 3, 4, 5)
    cs = [
        Case("Identity", [q], tol=0), Case("Shape", [q], tol=0),
        Case("Shape", [q], {"start": 1, "end": -1}, opset=15, tol=0, name="slice"),
        Case("Size", [q], tol=0),
        Case("Reshape", [q, i64(0, -1, 5)], tol=0),
        Case("Reshape", [q, i64(6, 20)], tol=0, name="plain"),
        Case("Reshape", [np.zeros((0, 3), np.int8), i64(3, 0)], {"allowzero": 1}, opset=14,
             tol=0, name="allowzero"),
        Case("Flatten", [q], tol=0), Case("Flatten", [q], {"axis": -1}, tol=0, name="neg"),
        Case("Flatten", [q], {"axis": 0}, tol=0, name="ax0"),
        Case("Transpose", [q], tol=0),
        Case("Transpose", [q], {"perm": [0, 2, 3, 1]}, tol=0, name="nhwc"),
        Case("Squeeze", [ints(1, 3, 1, 4)], {"axes": [0]}, opset=11, tol=0, name="attr"),
        Case("Squeeze", [ints(1, 3, 1, 4)], opset=11, tol=0, name="all"),
        Case("Squeeze", [ints(1, 3, 1, 4), i64(-2)], opset=13, tol=0, name="input"),
        Case("Unsqueeze", [q], {"axes": [0, -1]}, opset=11, tol=0, name="attr"),
        Case("Unsqueeze", [q, i64(1, -1)], opset=13, tol=0, name="input"),
        Case("Concat", [q, ints(2, 1, 4, 5)], {"axis": 1}, tol=0),
        Case("Concat", [x, f32(2, 3, 4, 2), f32(2, 3, 4, 1)], {"axis": -1}, tol=0, name="3"),
        Case("Split", [q], {"axis": 1, "split": [1, 2]}, opset=11, n_out=2, tol=0, name="attr"),
        Case("Split", [q, i64(2, 2)], {"axis": 2}, opset=13, n_out=2, tol=0, name="input"),
        Case("Split", [q], {"axis": 3, "num_outputs": 2}, opset=18, n_out=2, tol=0,
             name="num"),
        Case("Gather", [q, i64(1, -1, 0)], {"axis": 1}, tol=0),
        Case("Gather", [x, np.array([[0, 1], [3, -2]], np.int64)], {"axis": 2}, tol=0,
             name="2d"),
        Case("Gather", [x, np.array(1, np.int64)], tol=0, name="scalar"),
        Case("GatherElements", [x, _rng.integers(-4, 4, (2, 3, 2, 5))], {"axis": 2}, tol=0),
        Case("GatherND", [x, np.array([[0, 1], [1, -1]], np.int64)], tol=0),
        Case("GatherND", [x, _rng.integers(0, 3, (2, 4, 1))], {"batch_dims": 1}, tol=0,
             name="batch"),
        Case("ScatterND", [x, np.array([[0, 1], [1, 2]], np.int64), f32(2, 4, 5)], tol=0),
        Case("ScatterND", [x, np.array([[0, 1], [0, 1]], np.int64), f32(2, 4, 5)],
             {"reduction": "add"}, opset=16, name="add"),
        Case("ScatterElements", [f32(3, 4), np.array([[1, 0, 2, 0]], np.int64), f32(1, 4)],
             tol=0),
        Case("Expand", [f32(3, 1), i64(2, 1, 4)], tol=0),
        Case("Expand", [ints(3, 4), i64(4)], tol=0, name="smaller"),
        Case("Tile", [q, i64(1, 2, 1, 3)], tol=0),
        Case("ConstantOfShape", [i64(2, 3)], tol=0),
        Case("ConstantOfShape", [i64(2, 3)], {"value": np.array([7], np.int8)}, tol=0,
             name="int8"),
        Case("Range", [scalar(1, np.int64), scalar(11, np.int64), scalar(3, np.int64)], tol=0),
        Case("Range", [scalar(0.5), scalar(-2.0), scalar(-0.5)], name="float"),
        Case("NonZero", [ints(3, 4, lo=-1, hi=2, dtype=np.int32)], tol=0),
        Case("Cast", [f32(3, 4, scale=50)], {"to": TensorProto.INT32}, tol=0),
        Case("Cast", [ints(3, 4)], {"to": TensorProto.FLOAT}, tol=0, name="i2f"),
        Case("Cast", [f32(3, 4)], {"to": TensorProto.BOOL}, tol=0, name="bool"),
        Case("Cast", [f32(3, 4)], {"to": TensorProto.FLOAT16}, tol=0, name="f16"),
        Case("CastLike", [f32(3, 4, scale=50), ints(1)], opset=15, tol=0),
        Case("Dropout", [x], opset=13, tol=0),
        Case("DepthToSpace", [q], {"blocksize": 1}, tol=0, name="b1"),
        Case("DepthToSpace", [ints(2, 8, 3, 4)], {"blocksize": 2}, tol=0),
        Case("DepthToSpace", [ints(2, 8, 3, 4)], {"blocksize": 2, "mode": "CRD"}, tol=0,
             name="crd"),
        Case("SpaceToDepth", [ints(2, 3, 4, 6)], {"blocksize": 2}, tol=0),
        Case("Trilu", [f32(4, 5), scalar(1, np.int64)], opset=14, tol=0),
        Case("Trilu", [f32(2, 4, 5)], {"upper": 0}, opset=14, tol=0, name="lower"),
        Case("OneHot", [ints(3, 4, lo=-6, hi=6, dtype=np.int64), i64(5),
                        np.array([-1.0, 2.0], np.float32)], opset=11, tol=0),
        Case("OneHot", [ints(2, 3, lo=-4, hi=4, dtype=np.int64), i64(3), i64(0, 7)],
             {"axis": 0}, opset=11, tol=0, name="axis0"),
    ]
    slices = [([1], [3], [1], None), ([0, 1], [-1, 100], [2, 3], None),
              ([-1], [-100], [1], [-1]), ([3, 0], [0, 5], [-1, 1], [-1, 2]),
              ([10], [-10], [2], [-2]), ([2], [2], [0], None),
              # ends of INT32_MAX / INT64_MAX: to the end in the step's direction, also
              # backwards (ONNX Runtime's reading; clamping alone would give nothing)
              ([2], [2**31 - 1], [1], [-1]), ([0, 3], [2**63 - 1, 2**31 - 1], [3, 2], [-2, 1])]
    for i, (st, en, ax, sp) in enumerate(slices):
        ins: list[np.ndarray | None] = [q, i64(*st), i64(*en), i64(*ax)]
        if sp is not None:
            ins.append(i64(*sp))
        cs.append(Case("Slice", ins, opset=13, tol=0, name=f"s{i}"))
    cs.append(Case("Slice", [q], {"starts": [1], "ends": [3], "axes": [2]}, opset=9, tol=0,
                   name="attr"))
    cs.append(Case("Slice", [q, i64(1, 0), i64(3, 2)], opset=11, tol=0, name="noaxes"))
    p = f32(1, 2, 4, 5)
    cs += [
        Case("Pad", [p], {"pads": [0, 0, 1, 2, 0, 0, 2, 1], "value": 1.5}, opset=2,
             tol=0, name="attr"),
        Case("Pad", [p, i64(0, 0, 1, 2, 0, 0, 2, 1), scalar(-1.0)], opset=11, tol=0),
        Case("Pad", [ints(1, 2, 4, 5), i64(0, 0, 1, 2, 0, 1, 2, 1), scalar(3, np.int8)],
             opset=13, tol=0, name="int8"),
        Case("Pad", [p, i64(0, 0, 2, 3, 0, 0, 1, 2)], {"mode": "reflect"}, opset=13, tol=0,
             name="reflect"),
        Case("Pad", [p, i64(0, 0, 2, 3, 0, 0, 3, 1)], {"mode": "edge"}, opset=13, tol=0,
             name="edge"),
        Case("Pad", [p, i64(0, 0, -1, 2, 0, 0, 1, -2)], opset=13, tol=0, name="neg"),
        Case("Pad", [p, i64(1, 2, 0, 3), None, i64(2, -1)], opset=18, tol=0, name="axes"),
        Case("Pad", [p, i64(0, 0, 2, 3, 0, 0, 1, 2)], {"mode": "wrap"}, opset=19, tol=0,
             name="wrap"),
    ]
    return cs


def _quant() -> list[Case]:
    x = f32(2, 3, 4, scale=3)
    # Values on exact .5 ties of x / scale exercise round-half-to-even.
    ties = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 300, -300], np.float32) * 0.5
    return [
        Case("QuantizeLinear", [x, scalar(0.05), scalar(10, np.uint8)], opset=10),
        Case("QuantizeLinear", [ties, scalar(0.5), scalar(0, np.int8)], opset=13, name="ties"),
        Case("QuantizeLinear", [x, scalar(0.03)], opset=13, name="nozp"),
        Case("QuantizeLinear", [x, pos(3) * 0.05, ints(3)], {"axis": 1}, opset=13,
             name="axis"),
        Case("QuantizeLinear", [x, pos(3) * 0.01, ints(3, dtype=np.int16, lo=-500, hi=500)],
             {"axis": 1}, opset=21, name="int16"),
        Case("QuantizeLinear", [x, pos(2, 3, 2) * 0.05, ints(2, 3, 2)],
             {"axis": 2, "block_size": 2}, opset=21, name="block"),
        Case("DequantizeLinear", [ints(2, 3, 4), scalar(0.05), scalar(3, np.int8)], opset=10),
        Case("DequantizeLinear", [ints(2, 3, 4, lo=0, hi=256, dtype=np.uint8), pos(3) * 0.05,
                                  ints(3, lo=0, hi=256, dtype=np.uint8)], {"axis": 1},
             opset=13, name="axis"),
        Case("DequantizeLinear", [ints(2, 3, 4, dtype=np.int32), scalar(0.001)], opset=13,
             name="int32"),
        Case("DequantizeLinear", [ints(2, 3, 4), pos(2, 3, 2) * 0.05, ints(2, 3, 2)],
             {"axis": -1, "block_size": 2}, opset=21, name="block"),
    ]


def all_basic_cases() -> list[Case]:
    return _elementwise() + _matmul() + _softmax() + _reductions() + _movement() + _quant()


def _conv() -> list[Case]:
    x2, w2 = f32(2, 4, 9, 8), f32(6, 4, 3, 3, scale=0.3)
    cs = [
        Case("Conv", [x2, w2], name="2d"),
        # ONNX Runtime's FusedConv (ConvAddActivationFusion): the SGEMM starts from the Sum
        # input, then the bias, then the activation (18 channels: its NCHW kernel)
        Case("FusedConv", [f32(2, 18, 7, 7), f32(8, 18, 3, 3), f32(8), f32(2, 8, 7, 7)],
             {"pads": [1, 1, 1, 1], "activation": "Relu"}, tol=0, domain="com.microsoft",
             name="sum-relu"),
        Case("FusedConv", [f32(1, 18, 6, 6), f32(8, 18, 1, 1), f32(8), f32(1, 8, 6, 6)],
             {"activation": "HardSigmoid", "activation_params": [0.3, 0.4]}, tol=0,
             domain="com.microsoft", name="pointwise-hardsigmoid"),
        Case("Conv", [x2, w2, f32(6)], {"pads": [1, 1, 1, 1]}, name="pads-bias"),
        Case("Conv", [x2, w2], {"strides": [2, 3], "pads": [0, 1, 2, 1]}, name="strides"),
        Case("Conv", [x2, w2], {"dilations": [2, 1], "pads": [2, 1, 2, 1]}, name="dil"),
        Case("Conv", [x2, f32(6, 2, 3, 3)], {"group": 2}, name="groups"),
        Case("Conv", [x2, f32(4, 1, 3, 3), f32(4)], {"group": 4, "pads": [1, 1, 1, 1]},
             name="depthwise"),
        Case("Conv", [x2, f32(5, 4, 1, 1), f32(5)], name="1x1"),
        Case("Conv", [x2, f32(5, 4, 1, 1)], {"strides": [2, 2]}, name="1x1-s2"),
        Case("Conv", [f32(2, 3, 10), f32(4, 3, 3)], {"pads": [1, 2], "strides": [2]},
             name="1d"),
        Case("Conv", [f32(1, 2, 5, 6, 4), f32(3, 2, 3, 2, 2)], {"pads": [1, 0, 1, 1, 1, 0]},
             name="3d", tol=1e-4),
        Case("Conv", [f32(1, 64, 56, 56), f32(64, 64, 3, 3, scale=0.05), f32(64)],
             {"pads": [1, 1, 1, 1]}, name="56x56x64", tol=1e-4),
    ]
    for ap in ["SAME_UPPER", "SAME_LOWER", "VALID"]:
        cs.append(Case("Conv", [x2, f32(6, 4, 4, 2)], {"auto_pad": ap, "strides": [2, 2]},
                       name=ap))
    xt = f32(2, 4, 5, 4)
    cs += [
        Case("ConvTranspose", [xt, f32(4, 3, 3, 3)], name="2d"),
        Case("ConvTranspose", [xt, f32(4, 3, 3, 3), f32(3)],
             {"strides": [2, 2], "pads": [1, 1, 1, 1]}, name="s2"),
        Case("ConvTranspose", [xt, f32(4, 3, 3, 3)],
             {"strides": [2, 3], "output_padding": [1, 2], "pads": [1, 0, 0, 1]}, name="outpad"),
        Case("ConvTranspose", [xt, f32(4, 2, 3, 3)], {"group": 2, "strides": [2, 2]},
             name="groups"),
        Case("ConvTranspose", [xt, f32(4, 1, 3, 3)], {"group": 4, "dilations": [2, 2]},
             name="dw-dil"),
        Case("ConvTranspose", [xt, f32(4, 3, 3, 3)],
             {"strides": [2, 2], "output_shape": [10, 8]}, name="outshape"),
        Case("ConvTranspose", [xt, f32(4, 3, 3, 3)],
             {"strides": [2, 2], "output_shape": [10, 8], "auto_pad": "SAME_UPPER"},
             name="outshape-upper"),
        Case("ConvTranspose", [xt, f32(4, 3, 4, 3)], {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
             name="same-upper"),
        Case("ConvTranspose", [xt, f32(4, 3, 4, 3)], {"strides": [2, 2], "auto_pad": "SAME_LOWER"},
             name="same-lower"),
        Case("ConvTranspose", [f32(1, 3, 7), f32(3, 2, 4)], {"strides": [3]}, name="1d"),
        Case("ConvTranspose", [f32(1, 2, 3, 4, 3), f32(2, 2, 2, 3, 2)], {"strides": [2, 1, 2]},
             name="3d"),
    ]
    for c in cs:
        if c.op == "ConvTranspose":
            c.tol = 0       # MLAS's GEMM and ONNX Runtime's col2im order: bit for bit
    return cs


def _pool() -> list[Case]:
    x = f32(2, 3, 9, 10)
    q = ints(2, 3, 9, 10)
    cs = []
    variants: list[tuple[str, dict[str, Any]]] = [
        ("k3", {"kernel_shape": [3, 3]}),
        ("s2", {"kernel_shape": [3, 3], "strides": [2, 2]}),
        ("pads", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ("asym", {"kernel_shape": [2, 3], "strides": [2, 1], "pads": [1, 0, 0, 2]}),
        ("ceil", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
        ("ceil-pads", {"kernel_shape": [3, 2], "strides": [2, 3], "ceil_mode": 1,
                       "pads": [1, 1, 1, 1]}),
        ("same-upper", {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
        ("same-lower", {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"}),
        ("valid", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"}),
    ]
    for name, attrs in variants:
        cs.append(Case("MaxPool", [x], attrs, opset=12, name=name))
        cs.append(Case("AveragePool", [x], attrs, opset=11, name=name))
        if "pads" in attrs or "ceil_mode" in attrs:
            cs.append(Case("AveragePool", [x], {**attrs, "count_include_pad": 1}, opset=11,
                           name=name + "-incl"))
    cs += [
        Case("MaxPool", [x], {"kernel_shape": [3, 3], "dilations": [2, 2], "pads": [1, 1, 2, 2]},
             opset=12, name="dil"),
        Case("MaxPool", [q], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
             opset=12, tol=0, name="int8"),
        Case("MaxPool", [x], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
             opset=12, n_out=2, name="indices"),
        Case("MaxPool", [f32(2, 3, 11)], {"kernel_shape": [3], "strides": [2]}, name="1d"),
        Case("MaxPool", [f32(1, 2, 5, 6, 4)], {"kernel_shape": [2, 2, 2]}, name="3d"),
        Case("AveragePool", [f32(2, 3, 11)], {"kernel_shape": [3], "pads": [1, 1],
                                              "count_include_pad": 1}, name="1d"),
        Case("AveragePool", [x], {"kernel_shape": [3, 3], "dilations": [2, 1],
                                  "pads": [1, 1, 1, 1]}, opset=19, name="dil"),
        Case("LpPool", [x], {"kernel_shape": [3, 3], "strides": [2, 2]}, opset=18),
        Case("GlobalAveragePool", [x]), Case("GlobalMaxPool", [x]),
        Case("GlobalAveragePool", [f32(2, 3, 5)], name="1d"),
        Case("GlobalLpPool", [x]),
    ]
    return cs


def _norm() -> list[Case]:
    x = f32(2, 3, 5, 4)
    c3 = [f32(3), f32(3), f32(3), pos(3)]
    return [
        Case("BatchNormalization", [x, *c3], opset=15),
        Case("BatchNormalization", [x, *c3], {"epsilon": 0.1}, opset=9, name="eps"),
        Case("BatchNormalization", [f32(2, 3), *c3], opset=15, name="2d"),
        Case("InstanceNormalization", [x, f32(3), f32(3)]),
        Case("LayerNormalization", [x, f32(4), f32(4)], n_out=3),
        Case("LayerNormalization", [x, f32(5, 4)], {"axis": -2, "epsilon": 1e-3},
             name="ax-2"),
        Case("SkipLayerNormalization", [f32(2, 7, 40), f32(2, 7, 40), f32(40), f32(40),
                                        f32(40)], {"epsilon": 1e-5}, n_out=4, tol=0,
             domain="com.microsoft"),
        Case("SkipLayerNormalization", [f32(9, 6), f32(9, 6), f32(6)], n_out=3, tol=0,
             domain="com.microsoft", name="2d-no-beta"),
        Case("SkipLayerNormalization", [f32(2, 7, 40), f32(7, 40), f32(40), None, f32(40)],
             tol=0, domain="com.microsoft", name="broadcast-skip"),
        # ONNX Runtime's RMSNorm (its ONNX-domain contrib operator): the generic loop under
        # 16 values a row, MLAS's lanes from 16 on
        Case("SimplifiedLayerNormalization", [f32(3, 5, 9, scale=3), f32(9)],
             {"epsilon": 1e-6}, n_out=2, tol=0, name="loop"),
        Case("SimplifiedLayerNormalization", [f32(3, 5, 43, scale=3), f32(43)],
             {"epsilon": 1e-6}, n_out=2, tol=0, name="lanes"),
        Case("SimplifiedLayerNormalization", [f32(2, 3, 8), f32(3, 8)], {"axis": -2},
             tol=0, name="ax-2"),
        Case("GroupNormalization", [f32(2, 6, 4, 3), f32(6), f32(6)], {"num_groups": 3},
             opset=21, tol=1e-4),
        Case("LRN", [x], {"size": 3, "alpha": 0.01}),
    ]


def _resize() -> list[Case]:
    x = f32(1, 2, 4, 5)
    q = ints(1, 2, 4, 5)
    up = np.array([1, 1, 2, 1.5], np.float32)
    down = np.array([1, 1, 0.6, 0.5], np.float32)
    empty = np.zeros(0, np.float32)
    cs = [
        Case("Upsample", [q, np.array([1, 1, 2, 3], np.float32)], opset=9, tol=0),
        Case("Upsample", [x, np.array([1, 1, 2, 1.5], np.float32)], {"mode": "linear"},
             opset=9, name="linear"),
        Case("Resize", [q, np.array([1, 1, 2, 2.5], np.float32)], opset=10, tol=0,
             name="r10"),
        Case("Resize", [x, np.array([1, 1, 0.5, 0.7], np.float32)], {"mode": "linear"},
             opset=10, name="r10-linear"),
        Case("Resize", [q, np.array([1, 1, 0.5, 0.7], np.float32)], opset=10, tol=0,
             name="r10-down"),
        Case("Resize", [x, np.array([0, 0, 0.1, 0.3, 1, 1, 0.8, 0.9], np.float32),
                        np.array([1, 1, 1.5, 2], np.float32)],
             {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"},
             opset=11, name="crop-r11"),
    ]
    ctms = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
            "tf_half_pixel_for_nn"]
    for ctm in ctms:
        for nm in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]:
            for tag, sc in [("up", up), ("down", down)]:
                cs.append(Case("Resize", [q, empty, sc],
                               {"coordinate_transformation_mode": ctm, "nearest_mode": nm},
                               opset=13, tol=0, name=f"nearest-{ctm}-{nm}-{tag}"))
        if ctm == "tf_half_pixel_for_nn":
            continue
        for tag, sc in [("up", up), ("down", down)]:
            cs.append(Case("Resize", [x, empty, sc],
                           {"mode": "linear", "coordinate_transformation_mode": ctm},
                           opset=13, name=f"linear-{ctm}-{tag}"))
            cs.append(Case("Resize", [x, empty, sc],
                           {"mode": "cubic", "coordinate_transformation_mode": ctm},
                           opset=13, tol=1e-4, name=f"cubic-{ctm}-{tag}"))
    cs += [
        Case("Resize", [x, None, None, i64(1, 2, 7, 3)], {"mode": "linear"}, opset=13,
             name="sizes"),
        Case("Resize", [q, empty, empty, i64(1, 2, 7, 13)], opset=11, tol=0, name="sizes-r11"),
        Case("Resize", [x, np.zeros(0, np.float32), up], {"mode": "linear"}, opset=11,
             name="linear-r11"),
        Case("Resize", [x, None, np.array([1, 1, 1.7, 0.8], np.float32)],
             {"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5}, opset=18,
             tol=1e-4, name="cubic-excl"),
        Case("Resize", [x, None, None, i64(8, 8)], {"axes": [2, 3], "mode": "linear"},
             opset=18, name="axes"),
        Case("Resize", [x, None, None, i64(8, 8)],
             {"axes": [2, 3], "keep_aspect_ratio_policy": "not_larger"}, opset=18,
             name="not-larger"),
        Case("Resize", [x, None, None, i64(8, 8)],
             {"axes": [2, 3], "keep_aspect_ratio_policy": "not_smaller"}, opset=18,
             name="not-smaller"),
        Case("Resize", [x, None, up], {"mode": "linear",
                                        "coordinate_transformation_mode": "half_pixel_symmetric"},
             opset=19, name="hps"),
        Case("Resize", [x, np.array([0, 0, 0.2, 0.1, 1, 1, 0.9, 1.2], np.float32), None,
                        i64(1, 2, 5, 6)],
             {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
              "extrapolation_value": -3.0}, opset=13, name="crop"),
        Case("Resize", [q, np.array([0, 0, 0.2, 0.1, 1, 1, 0.9, 1.2], np.float32), None,
                        i64(1, 2, 5, 6)],
             {"coordinate_transformation_mode": "tf_crop_and_resize"}, opset=13, tol=0,
             name="crop-nearest"),
        Case("Resize", [f32(1, 2, 9, 11), None, np.array([1, 1, 0.4, 0.75], np.float32)],
             {"mode": "linear", "antialias": 1}, opset=18, tol=1e-4, name="antialias-linear"),
        Case("Resize", [f32(1, 2, 9, 11), None, np.array([1, 1, 0.5, 1.5], np.float32)],
             {"mode": "cubic", "antialias": 1, "coordinate_transformation_mode": "asymmetric"},
             opset=18, tol=1e-4, name="antialias-cubic"),
        Case("Resize", [f32(1, 2, 9, 11), None, None, i64(1, 2, 4, 3)],
             {"mode": "cubic", "antialias": 1, "exclude_outside": 1}, opset=18, tol=1e-4,
             name="antialias-cubic-excl"),
        Case("Resize", [f32(1, 1, 3, 4, 5), None, np.array([1, 1, 2, 1.5, 0.6], np.float32)],
             {"mode": "linear"}, opset=13, name="trilinear"),
    ]
    return cs


def _rnn() -> list[Case]:
    seq, batch, inp, h = 5, 3, 4, 6
    x = f32(seq, batch, inp)
    lens = np.array([5, 2, 4], np.int32)
    cs = []
    for d, nd in [("forward", 1), ("reverse", 1), ("bidirectional", 2)]:
        w, r, b = f32(nd, 4 * h, inp, scale=0.5), f32(nd, 4 * h, h, scale=0.5), f32(nd, 8 * h)
        h0, c0, p = f32(nd, batch, h), f32(nd, batch, h), f32(nd, 3 * h)
        cs += [
            Case("LSTM", [x, w, r], {"hidden_size": h, "direction": d}, n_out=3, name=d),
            Case("LSTM", [x, w, r, b, lens, h0, c0, p], {"hidden_size": h, "direction": d},
                 n_out=3, name=d + "-full"),
        ]
        gw, gr, gb = f32(nd, 3 * h, inp, scale=0.5), f32(nd, 3 * h, h, scale=0.5), f32(nd, 6 * h)
        for lbr in (0, 1):
            cs.append(Case("GRU", [x, gw, gr, gb, lens, h0],
                           {"hidden_size": h, "direction": d, "linear_before_reset": lbr},
                           n_out=2, name=f"{d}-lbr{lbr}"))
        cs.append(Case("GRU", [x, gw, gr], {"hidden_size": h, "direction": d}, n_out=2,
                       name=d))
        rw, rr = f32(nd, h, inp, scale=0.5), f32(nd, h, h, scale=0.5)
        cs.append(Case("RNN", [x, rw, rr, f32(nd, 2 * h), lens], {"hidden_size": h,
                                                                   "direction": d},
                       n_out=2, name=d))
    w, r = f32(1, 4 * h, inp, scale=0.5), f32(1, 4 * h, h, scale=0.5)
    cs += [
        Case("LSTM", [x, w, r], {"hidden_size": h, "clip": 0.5, "input_forget": 1}, n_out=3,
             name="clip-if"),
        # quantize_dynamic's LSTM: int8 weights per column (zero points 0), uint8 per
        # direction (tests/runtime/test_quantized_lstm.py: its files, at length)
        Case("DynamicQuantizeLSTM",
             [x, _rng.integers(-128, 128, (2, inp, 4 * h)).astype(np.int8),
              _rng.integers(-128, 128, (2, h, 4 * h)).astype(np.int8), f32(2, 8 * h), lens,
              f32(2, batch, h), f32(2, batch, h), f32(2, 3 * h),
              f32(2, 4 * h, scale=0.01) ** 2 + 1e-3, np.zeros((2, 4 * h), np.int8),
              f32(2, 4 * h, scale=0.01) ** 2 + 1e-3, np.zeros((2, 4 * h), np.int8)],
             {"hidden_size": h, "direction": "bidirectional"}, n_out=3, tol=0,
             domain="com.microsoft", name="s8-per-column"),
        Case("DynamicQuantizeLSTM",
             [x, _rng.integers(0, 256, (1, inp, 4 * h)).astype(np.uint8),
              _rng.integers(0, 256, (1, h, 4 * h)).astype(np.uint8), None, None, None, None,
              None, np.array([0.02], np.float32), np.array([131], np.uint8),
              np.array([0.03], np.float32), np.array([120], np.uint8)],
             {"hidden_size": h, "direction": "reverse", "clip": 0.5}, n_out=3, tol=0,
             domain="com.microsoft", name="u8-per-tensor"),
        Case("GRU", [x, f32(1, 3 * h, inp), f32(1, 3 * h, h)],
             {"hidden_size": h, "activations": ["HardSigmoid", "LeakyRelu"],
              "activation_alpha": [0.3, 0.1], "activation_beta": [0.4]}, n_out=2,
             name="acts"),
    ]
    return cs


def _extra() -> list[Case]:
    x = f32(2, 3, 5)
    d = _rng.standard_normal((3, 4))
    return [
        Case("Split", [ints(2, 5)], {"axis": 1, "num_outputs": 2}, opset=18, n_out=2, tol=0,
             name="uneven"),
        Case("Split", [ints(6, 2)], {}, opset=13, n_out=3, tol=0, name="equal"),
        Case("Split", [ints(6, 2)], {}, opset=11, n_out=2, tol=0, name="equal"),
        Case("Dropout", [x, scalar(0.3)], opset=13, n_out=2, tol=0, name="mask"),
        Case("Dropout", [x], {"ratio": 0.2}, opset=10, tol=0, name="attr"),
        Case("ConstantOfShape", [np.zeros(0, np.int64)], {"value": np.array([2.5], np.float32)},
             tol=0, name="scalar"),
        Case("Constant", [], {"value": f32(2, 3)}, tol=0),
        Case("Constant", [], {"value_float": 1.5}, tol=0, name="float"),
        Case("Constant", [], {"value_ints": [1, 2, 3]}, tol=0, name="ints"),
        Case("Mod", [ints(12, dtype=np.int32), ints(12, lo=1, hi=5, dtype=np.int32)
                     * np.array([1, -1] * 6, np.int32)], tol=0),
        Case("Mod", [f32(12, scale=5), pos(12)], {"fmod": 1}, name="fmod"),
        Case("MaxPool", [f32(2, 3, 6, 7)], {"kernel_shape": [2, 3], "strides": [2, 2],
                                            "storage_order": 1}, opset=12, n_out=2,
             name="indices-colmajor"),
        Case("MaxPool", [f32(2, 3, 6, 7)], {"kernel_shape": [3, 3], "strides": [2, 2],
                                            "ceil_mode": 1, "pads": [0, 1, 1, 0]}, opset=12,
             n_out=2, name="indices-ceil"),
        Case("Add", [d, d.T[:1].T], tol=1e-12, name="f64"),
        Case("MatMul", [d, d.T], tol=1e-12, name="f64"),
        Case("Relu", [d], tol=0, name="f64"),
        Case("Sigmoid", [d], tol=1e-12, name="f64"),
        Case("Softmax", [d], tol=1e-12, name="f64"),
        Case("Shape", [x], {"start": -2}, opset=15, tol=0, name="neg-start"),
        Case("Gather", [x, np.array([[2, -1]], np.int32)], {"axis": -1}, tol=0, name="i32"),
        Case("Upsample", [ints(1, 2, 3, 4)], {"scales": [1.0, 1.0, 2.0, 2.0]}, opset=7, tol=0,
             name="attr"),
        Case("Sum", [x], name="1"), Case("Max", [ints(3, 4), ints(4)], tol=0, name="int8"),
        Case("Resize", [ints(2, 3, 4, 5), None, np.array([2, 0.5, 1.5, 1], np.float32)],
             opset=18, tol=0, name="nearest-nc"),
        Case("Resize", [ints(1, 2, 4, 5), None, None, i64(9, 7)],
             {"axes": [3, 2], "coordinate_transformation_mode": "align_corners",
              "keep_aspect_ratio_policy": "not_larger", "nearest_mode": "ceil"},
             opset=18, tol=0, name="nearest-axes-policy"),
        Case("LayerNormalization", [x, f32(3, 5)], {"axis": 1}, n_out=3, name="nobias"),
        Case("Einsum", [f32(2, 3, 4), f32(2, 4, 5)], {"equation": "...ij,...jk->...ik"},
             name="ellipsis"),
        Case("Einsum", [f32(2, 3), f32(3, 4), f32(4, 5)], {"equation": "ij,jk,kl->il"},
             name="three"),
        Case("Range", [scalar(10, np.int32), scalar(-3, np.int32), scalar(-4, np.int32)],
             tol=0, name="neg"),
        Case("CumSum", [f32(3, 4), i64(-1)], {"exclusive": 1}, name="neg-axis"),
        Case("Clip", [ints(3, 4, dtype=np.int32), scalar(-3, np.int32)], opset=12, tol=0,
             name="int32-min"),
        Case("Selu", [x], {"alpha": 2.0, "gamma": 3.0}, name="attrs"),
        Case("Pow", [ints(3, 4, lo=-5, hi=5, dtype=np.int32),
                     ints(3, 4, lo=0, hi=4, dtype=np.int32)], opset=15, tol=0, name="int"),
        Case("Gemm", [f32(3, 4), f32(4, 5), f32(3, 1)], name="c-col"),
        Case("ReduceMean", [x], {"keepdims": 0}, opset=18, name="all-nokeep"),
        Case("GatherND", [x, np.array([[[0, 1, 2]], [[1, 2, -1]]], np.int64)], tol=0,
             name="full"),
        Case("ScatterND", [x, np.array([[1], [0]], np.int64), f32(2, 3, 5)],
             {"reduction": "max"}, opset=18, name="max"),
        Case("Hardmax", [ints(3, 4, lo=0, hi=2).astype(np.float32)], opset=13, tol=0,
             name="ties"),
        Case("ArgMax", [ints(3, 4, lo=0, hi=2, dtype=np.int32)], {"axis": -1}, opset=13,
             tol=0, name="int-ties"),
        Case("IsNaN", [np.array([np.nan, 1.0, np.inf], np.float32)], opset=13, tol=0),
        Case("IsInf", [np.array([np.nan, 1.0, np.inf, -np.inf], np.float32)],
             {"detect_negative": 0}, opset=10, tol=0),
        Case("Mish", [x], opset=18),
        Case("ReduceLogSum", [pos(3, 4), i64(1)], opset=18),
        *[Case(op, [ints(3, 4, dtype=np.int32), ints(4, dtype=np.int32)], opset=18, tol=0)
          for op in ("BitwiseAnd", "BitwiseOr", "BitwiseXor")],
        *[Case(op, [_rng.uniform(-0.9, 0.9, (3, 4)).astype(np.float32)])
          for op in ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh",
                     "Atanh")],
        Case("Acosh", [pos(3, 4) + 1]),
        Case("TopK", [np.array([[3, -128, 127, -128, 0]], np.int8).astype(np.int32), i64(3)],
             opset=11, n_out=2, tol=0, name="int-extremes"),
        Case("DequantizeLinear", [ints(5, dtype=np.int32), np.array([0.01], np.float32)],
             opset=13, name="bias-1d"),
        Case("QuantizeLinear", [f32(5), np.array([0.01], np.float32),
                                np.array([3], np.int8)], opset=13, name="1d-one-elem"),
        Case("DynamicQuantizeLinear", [f32(3, 7, scale=4)], opset=11, n_out=3, tol=0),
        Case("DynamicQuantizeLinear", [pos(4, 5)], opset=11, n_out=3, tol=0,
             name="non-negative"),
        Case("ConvInteger", [ints(2, 3, 7, 6, dtype=np.uint8, lo=0, hi=255),
                             ints(4, 3, 3, 3, dtype=np.uint8, lo=0, hi=255),
                             np.array(131, np.uint8), np.array(120, np.uint8)],
             {"pads": [1, 1, 1, 1], "strides": [2, 1]}, opset=10, tol=0),
        Case("ConvInteger", [ints(1, 4, 9, 9, dtype=np.uint8, lo=0, hi=255),
                             ints(4, 2, 3, 3, dtype=np.uint8, lo=0, hi=255)],
             {"group": 2, "dilations": [2, 2]}, opset=10, tol=0, name="group-nozp"),
        Case("MatMulInteger", [ints(2, 3, 5, dtype=np.uint8, lo=0, hi=255),
                               ints(5, 4, dtype=np.int8, lo=-128, hi=127),
                               np.array(7, np.uint8), np.array(0, np.int8)],
             opset=10, tol=0),
        Case("MatMulInteger", [ints(3, 6, dtype=np.uint8, lo=0, hi=255),
                               ints(6, 2, dtype=np.uint8, lo=0, hi=255)],
             opset=10, tol=0, name="u8u8-no-zp"),
        Case("MatMulIntegerToFloat", [ints(2, 3, 5, dtype=np.uint8, lo=0, hi=255),
                                      ints(5, 4, dtype=np.int8, lo=-128, hi=127),
                                      scalar(0.0123), f32(4, scale=0.1),
                                      np.array(7, np.uint8), np.array(3, np.int8)],
             domain="com.microsoft", tol=0),
        Case("MatMulIntegerToFloat", [ints(3, 6, dtype=np.uint8, lo=0, hi=255),
                                      ints(6, 2, dtype=np.uint8, lo=0, hi=255),
                                      scalar(0.5), scalar(0.25), np.array(9, np.uint8),
                                      np.array(130, np.uint8), f32(2)],
             domain="com.microsoft", tol=0, name="u8u8-bias"),
    ]


def _ml() -> list[Case]:
    """ai.onnx.ml operators (skl2onnx's pipelines), float32 output whatever the input."""
    ml = "ai.onnx.ml"
    off, sc = [66.79, 1.5, 5.32, 0.93], [0.0247, 0.894, 0.319, 1.18]
    big = np.array([[2**24 + 1, -(2**40) - 3, 7, 2**53 + 5]], np.int64)
    return [
        Case("Scaler", [f32(5, 4, scale=60)], {"offset": off, "scale": sc}, tol=0,
             domain=ml, name="features"),
        Case("Scaler", [f32(3, 2, 5)], {"offset": [0.5], "scale": [3.0]}, tol=0, domain=ml,
             name="one"),
        Case("Scaler", [f32(4)], {"offset": off, "scale": sc}, tol=0, domain=ml,
             name="1d"),
        Case("Scaler", [f32(2, 4, 3)], {"offset": off, "scale": sc}, tol=0, domain=ml,
             name="3d-flat-index"),
        Case("Scaler", [_rng.standard_normal((3, 4)) * 1e3], {"offset": off, "scale": sc},
             tol=0, domain=ml, name="f64"),
        Case("Scaler", [big], {"offset": off, "scale": sc}, tol=0, domain=ml, name="i64"),
        Case("Scaler", [ints(3, 4, lo=-10**6, hi=10**6, dtype=np.int32)],
             {"offset": off, "scale": sc}, tol=0, domain=ml, name="i32"),
        Case("Scaler", [f32(0, 4)], {"offset": off, "scale": sc}, tol=0, domain=ml,
             name="empty"),
        *_linear(),
        *_trees(),
    ]


def _linear() -> list[Case]:
    """LinearClassifier and Normalizer (OnnxMLTools' logistic regression: ONNX Runtime's
    own sample logreg_iris.onnx; drawn cases in tests/runtime/test_linear_classifier.py)."""
    ml = "ai.onnx.ml"
    coef = [0.3857, 1.3805, -2.1315, -0.9928, 0.6428, -1.7489, 0.5151, -1.4053, -1.7241]
    linear = {"coefficients": coef, "intercepts": [0.2496, 0.5820, -0.9416],
              "classlabels_ints": [4, 0, 9]}
    return [
        Case("LinearClassifier", [f32(6, 2, scale=4)], {**linear, "post_transform": "LOGISTIC"},
             n_out=2, tol=0, domain=ml, name="logistic"),
        Case("LinearClassifier", [f32(5, 2, scale=4)], {**linear, "post_transform": "SOFTMAX"},
             n_out=2, tol=0, domain=ml, name="softmax"),
        Case("LinearClassifier", [ints(4, 2, lo=-9, hi=9, dtype=np.int64)], linear, n_out=2,
             tol=0, domain=ml, name="i64"),
        Case("Normalizer", [f32(4, 5, scale=3)], {"norm": "L1"}, tol=0, domain=ml, name="l1"),
        Case("Normalizer", [f32(4, 5, scale=3)], {"norm": "L2"}, tol=0, domain=ml, name="l2"),
        Case("Normalizer", [f32(6)], {"norm": "MAX"}, tol=0, domain=ml, name="max-1d"),
        Case("Normalizer", [ints(3, 4, lo=-50, hi=50, dtype=np.int32)], {"norm": "L2"}, tol=0,
             domain=ml, name="i32"),
    ]


def _trees() -> list[Case]:
    """The tree ensembles (lowp.runtime.ml_trees; tests/runtime/test_ml_trees.py has the
    random forests): a depth-2 tree and a stump, skl2onnx's layout."""
    ml = "ai.onnx.ml"
    nodes = {"nodes_treeids": [0, 0, 0, 0, 0, 1, 1, 1], "nodes_nodeids": [0, 1, 2, 3, 4, 0, 1, 2],
             "nodes_featureids": [0, 1, 0, 0, 0, 1, 0, 0],
             "nodes_values": [0.1, -0.3, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0],
             "nodes_modes": ["BRANCH_LEQ", "BRANCH_LT", "LEAF", "LEAF", "LEAF", "BRANCH_GT",
                             "LEAF", "LEAF"],
             "nodes_truenodeids": [1, 2, 0, 0, 0, 1, 0, 0],
             "nodes_falsenodeids": [4, 3, 0, 0, 0, 2, 0, 0]}
    leaves = {"treeids": [0, 0, 0, 1, 1, 0], "nodeids": [2, 3, 4, 1, 2, 2],
              "ids": [0, 1, 1, 0, 1, 1], "weights": [0.25, -1.5, 3.0, 0.75, 0.125, 2.0]}
    regressor = {**nodes, **{f"target_{k}": v for k, v in leaves.items()}, "n_targets": 2,
                 "base_values": [0.5, -0.5], "aggregate_function": "AVERAGE"}
    classifier = {**nodes, **{f"class_{k}": v for k, v in leaves.items()},
                  "classlabels_int64s": [3, 8], "post_transform": "LOGISTIC"}
    f = np.float32
    v5 = {"nodes_featureids": [0, 1], "nodes_splits": np.array([0.1, 0.0], f),
          "nodes_modes": np.array([0, 6], np.uint8), "nodes_truenodeids": [0, 1],
          "nodes_falsenodeids": [1, 2], "nodes_trueleafs": [1, 1], "nodes_falseleafs": [0, 1],
          "membership_values": np.array([0.0, 2.0, np.nan], f), "leaf_targetids": [0, 1, 1],
          "leaf_weights": np.array([0.5, -2.0, 4.0], f), "tree_roots": [0], "n_targets": 2}
    x = np.array([[0.0, 0.0], [0.5, 2.0], [-1.0, np.nan], [0.1, -0.3], [3.0, 1.0]], f)
    return [
        Case("TreeEnsembleRegressor", [x], regressor, tol=0, domain=ml, name="average"),
        Case("TreeEnsembleClassifier", [x], classifier, n_out=2, tol=0, domain=ml,
             name="logistic"),
        Case("TreeEnsemble", [x], v5, tol=0, domain=ml, domain_opset=5, name="member"),
    ]


def _detection() -> list[Case]:
    """NonMaxSuppression, RoiAlign, GridSample (float_detection; drawn cases in
    test_non_max_suppression.py, test_roi_align.py, test_grid_sample.py)."""
    boxes = _rng.uniform(0, 6, (2, 8, 4)).astype(np.float32)
    scores = np.round(_rng.uniform(0, 1, (2, 3, 8)) * 4).astype(np.float32) / 4
    x = f32(2, 3, 6, 7)
    rois = np.array([[0, 0, 4, 3], [1, 1, 5, 5], [2, 0.5, 6.5, 4], [-1, -1, 2, 2],
                     [0.3, 1.2, 3.3, 5.1]], np.float32)
    indices = i64(0, 1, 1, 0, 1)
    grid = _rng.uniform(-1.2, 1.2, (2, 4, 5, 2)).astype(np.float32)
    return [
        Case("NonMaxSuppression", [boxes, scores, i64(3), scalar([0.4]), scalar([0.2])],
             opset=11, tol=0),
        Case("NonMaxSuppression", [boxes, scores, i64(5)], {"center_point_box": 1},
             opset=11, tol=0, name="center"),
        Case("RoiAlign", [x, rois, indices], {"output_height": 3, "output_width": 2},
             opset=16, tol=0),
        Case("RoiAlign", [x, rois, indices], {"mode": "max", "sampling_ratio": 2,
                                              "coordinate_transformation_mode":
                                              "output_half_pixel"}, opset=16, tol=0,
             name="max"),
        Case("GridSample", [x[:, :, :5, :5].copy(), grid], opset=16, tol=0),
        Case("GridSample", [x, grid], {"mode": "cubic", "padding_mode": "reflection",
                                       "align_corners": 1}, opset=20, tol=0, name="cubic"),
        Case("GridSample", [x, grid], {"mode": "nearest", "padding_mode": "border"},
             opset=20, tol=0, name="nearest"),
        Case("AffineGrid", [f32(2, 2, 3), i64(2, 3, 5, 4)], opset=20, tol=0),
        Case("AffineGrid", [f32(1, 3, 4).astype(np.float64), i64(1, 1, 3, 4, 5)],
             {"align_corners": 1}, opset=20, tol=0, name="3d"),
        Case("MaxUnpool", [f32(1, 2, 2, 2), _rng.permutation(32)[:8].reshape(1, 2, 2, 2)
                           .astype(np.int64)], {"kernel_shape": [2, 2], "strides": [2, 2]},
             opset=11, tol=0),
        Case("Col2Im", [f32(2, 8, 6), i64(3, 4), i64(2, 2)], opset=18, tol=0),
        Case("Col2Im", [f32(1, 8, 8), i64(4, 4, 4), i64(2, 2, 2)],
             {"dilations": [1, 2, 2], "strides": [2, 1, 1]}, opset=18, tol=0, name="3d"),
        Case("CenterCropPad", [f32(5, 4, 3), i64(2, 7)], {"axes": [0, -1]}, opset=18, tol=0),
    ]


def _data_ops() -> list[Case]:
    # lowp.runtime.float_data_ops (tests/runtime/test_float_data_ops.py, test_unique.py,
    # test_det.py draw many more)
    x = f32(3, 4)
    return [
        Case("EyeLike", [x], {"k": 1}, opset=22, tol=0),
        Case("CumProd", [x, i64(1)], {"exclusive": 1}, opset=26, tol=0),
        Case("Compress", [x, np.array([True, False, True])], {"axis": 0}, opset=22, tol=0),
        Case("ReverseSequence", [x, i64(1, 3, 0, 2)], opset=22, tol=0),
        Case("Unique", [np.round(x)], {"sorted": 0}, opset=22, n_out=4, tol=0),
        Case("BitShift", [ints(6, dtype=np.uint8, lo=0, hi=256),
                          ints(6, dtype=np.uint8, lo=0, hi=10)], {"direction": "LEFT"},
             opset=22, tol=0),
        Case("BitwiseNot", [ints(6)], opset=18, tol=0),
        Case("Det", [f32(2, 3, 3)], opset=22, tol=0),
        # lowp.runtime.optional_ops on tensors (tests/runtime/test_optional_ops.py: in graphs)
        Case("Optional", [x], opset=18, tol=0),
        Case("OptionalHasElement", [x], opset=18, tol=0),
        Case("OptionalGetElement", [x], opset=18, tol=0),
        Case("RotaryEmbedding", [f32(1, 2, 3, 8), f32(1, 3, 4), f32(1, 3, 4)], opset=23,
             tol=0),
        Case("Attention", [f32(2, 4, 3, 8), f32(2, 2, 5, 8), f32(2, 2, 5, 6)],
             {"is_causal": 1}, opset=23, tol=0),
        Case("TfIdfVectorizer", [ints(2, 6, lo=0, hi=4, dtype=np.int64)],
             {"mode": "TFIDF", "min_gram_length": 1, "max_gram_length": 2,
              "max_skip_count": 1, "ngram_counts": [0, 2], "ngram_indexes": [2, 0, 1],
              "pool_int64s": [1, 3, 0, 2], "weights": [0.5, -1.5, 2.0]}, opset=9, tol=0),
    ]


def all_cases() -> list[Case]:
    return (all_basic_cases() + _conv() + _pool() + _norm() + _resize() + _rnn()
            + _extra() + _ml() + _detection() + _data_ops() + random_geometry_cases(150)
            + _signal() + _normalize())


def _signal() -> list[Case]:
    """DFT, STFT, the windows and MelWeightMatrix (lowp.runtime.float_signal), exact."""
    real, cplx = f32(2, 12, 1), f32(2, 8, 2)
    return [
        Case("DFT", [real], {"onesided": 1}, tol=0, name="rfft-bluestein"),
        Case("DFT", [cplx], {"inverse": 1}, tol=0, name="inverse-radix2"),
        Case("DFT", [f32(2, 6, 2)], {"inverse": 1, "onesided": 1}, opset=20, tol=0,
             name="irfft"),
        Case("DFT", [cplx, i64(6).reshape(()), i64(1).reshape(())], opset=20,
             tol=0, name="axis-input"),
        Case("STFT", [f32(2, 40), i64(5).reshape(()), f32(16), i64(16).reshape(())],
             tol=0, name="window"),
        Case("STFT", [f32(1, 30, 2), i64(3).reshape(()), None, i64(10).reshape(())],
             {"onesided": 0}, tol=0, name="complex"),
        Case("HannWindow", [i64(10).reshape(())], tol=0),
        Case("HammingWindow", [i64(9).reshape(())], {"periodic": 0, "output_datatype": 11},
             tol=0, name="symmetric-double"),
        Case("BlackmanWindow", [i64(16).reshape(())], tol=0),
        Case("MelWeightMatrix", [i64(8).reshape(()), i64(64).reshape(()),
                                 i64(16000).reshape(()), scalar(20.0), scalar(7000.0)], tol=0),
    ]


def _normalize() -> list[Case]:
    """LpNormalization, MeanVarianceNormalization, RMSNormalization, Swish
    (lowp.runtime.float_normalize), exact."""
    x = f32(2, 3, 4, 5, scale=3)
    return [
        Case("LpNormalization", [x], {"axis": 1, "p": 1}, tol=0),
        Case("LpNormalization", [x], {"axis": -1}, opset=22, tol=0),
        Case("MeanVarianceNormalization", [x], opset=13, tol=0),
        Case("MeanVarianceNormalization", [x], {"axes": [1, 3]}, opset=13, tol=0, name="axes"),
        Case("RMSNormalization", [f32(2, 7, 40), f32(40)], opset=23, tol=0),
        Case("Swish", [x], {"alpha": 0.7}, opset=24, tol=0),
    ]


def random_geometry_cases(n: int = 40, seed: int = 7) -> list[Case]:
    """Random conv / pool / resize / slice geometries (seeded, so the ids are stable)."""
    rng = np.random.default_rng(seed)
    cs: list[Case] = []

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    for i in range(n):
        nd = int(rng.integers(1, 3)) if i % 5 else 3
        sp = [int(v) for v in rng.integers(4, 9, nd)]
        k = [int(v) for v in rng.integers(1, 4, nd)]
        s = [int(v) for v in rng.integers(1, 3, nd)]
        d = [int(v) for v in rng.integers(1, 3, nd)]
        sp = [max(sp[j], (max(k[j], 2) - 1) * d[j] + 1) for j in range(nd)]
        p = [int(v) for v in rng.integers(0, 3, 2 * nd)]
        p = [min(v, k[j % nd] * d[j % nd] - 1) for j, v in enumerate(p)]
        g = int(rng.choice([1, 2]))
        auto = ["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"][i % 5]
        if auto.startswith("SAME"):
            d = [1] * nd  # ONNX Runtime rejects (Conv) or mis-sizes (pools) dilated SAME
        c, m = 2 * g, 3 * g
        conv_attrs: dict[str, Any] = {"strides": s, "dilations": d, "group": g}
        if auto == "NOTSET":
            conv_attrs["pads"] = p
        else:
            conv_attrs["auto_pad"] = auto
        cs.append(Case("Conv", [arr(2, c, *sp), arr(m, c // g, *k), arr(m)], conv_attrs,
                       opset=11, tol=1e-4, name=f"rand{i}"))
        outpad = [int(rng.integers(0, s[j])) for j in range(nd)]
        ct_attrs = {"strides": s, "dilations": d, "group": g, "pads": p,
                    "output_padding": outpad}
        cs.append(Case("ConvTranspose", [arr(2, c, *sp), arr(c, m // g, *k)], ct_attrs,
                       opset=11, tol=1e-4, name=f"rand{i}"))
        pk = [max(v, 2) for v in k]
        pp = [min(v, pk[j % nd] - 1) for j, v in enumerate(p)]
        pool_attrs: dict[str, Any] = {"kernel_shape": pk, "strides": s,
                                      "ceil_mode": int(rng.integers(0, 2))}
        if auto == "NOTSET":
            pool_attrs["pads"] = pp
        else:
            pool_attrs["auto_pad"] = auto
            pool_attrs.pop("ceil_mode")
        x = arr(1, 2, *sp)
        cs.append(Case("MaxPool", [x], {**pool_attrs, "dilations": d}, opset=12,
                       name=f"rand{i}"))
        cs.append(Case("AveragePool", [x], {**pool_attrs,
                                            "count_include_pad": int(rng.integers(0, 2))},
                       opset=11, name=f"rand{i}"))
        scales = np.array([1, 1] + [float(rng.choice([0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0]))
                                    for _ in range(2)], np.float32)
        ctm = str(rng.choice(["half_pixel", "pytorch_half_pixel", "align_corners",
                              "asymmetric"]))
        mode = str(rng.choice(["nearest", "linear", "cubic"]))
        ra: dict[str, Any] = {"mode": mode, "coordinate_transformation_mode": ctm}
        if mode == "nearest":
            ra["nearest_mode"] = str(rng.choice(["round_prefer_floor", "round_prefer_ceil",
                                                 "floor", "ceil"]))
        cs.append(Case("Resize", [arr(1, 2, *[int(v) for v in rng.integers(3, 9, 2)]), None,
                                  scales], ra, opset=18, tol=1e-4, name=f"rand{i}"))
        dims = [int(v) for v in rng.integers(1, 7, 3)]
        axes = [int(a) for a in rng.permutation(3)[:int(rng.integers(1, 4))]]
        starts = [int(rng.integers(-8, 8)) for _ in axes]
        ends = [int(rng.integers(-8, 8)) for _ in axes]
        steps = [int(rng.choice([-3, -2, -1, 1, 2, 3])) for _ in axes]
        cs.append(Case("Slice", [ints(*dims), i64(*starts), i64(*ends), i64(*axes),
                                 i64(*steps)], opset=13, tol=0, name=f"rand{i}"))
    return cs
