"""Run a QDQ model with a target engine's arithmetic: lowp's lowering, the engine's epilogue.

Conv / MatMul / Gemm groups (DequantizeLinear -> op -> QuantizeLinear) are computed by the
engine models of lowp.fidelity.engines; every other step is lowp's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import onnx

from ..ops.layout import Layout
from ..qparams import QParams
from ..runtime import Session
from ..runtime.lower import lower
from ..runtime.plan import Step
from ..targets import ScaleDivision, Target, get_target
from . import engines
from .engines import LayerQParams


def layer_qparams(x: QParams, w: QParams, y: QParams, qmin: int, qmax: int) -> LayerQParams:
    """LayerQParams from lowp's per-tensor x / y and per-tensor or per-channel w qparams."""
    return LayerQParams(float(x.scale), int(x.zero_point), w.scale, w.zero_point,
                        float(y.scale), int(y.zero_point), qmin, qmax)


class EngineHook:
    """The `arithmetic` argument of lowp.runtime.lower.lower: kernels in a target's arithmetic.

    Parameters
    ----------
    target
        The Target (or its name) whose engine arithmetic Conv / MatMul / Gemm use.
    """

    def __init__(self, target: str | Target) -> None:
        self.target = get_target(target)

    def conv(self, w: np.ndarray, bias: np.ndarray | None, x: QParams, wq: QParams,
             y: QParams, qmin: int, qmax: int, *, strides: Sequence[int],
             pads: Sequence[int], dilations: Sequence[int], group: int
             ) -> Callable[[np.ndarray, Layout], np.ndarray]:
        """A kernel `run(x, layout)` for one convolution."""
        q = layer_qparams(x, wq, y, qmin, qmax)
        dtype = y.qtype.numpy_dtype
        target = self.target

        def run(xv: np.ndarray, layout: Layout) -> np.ndarray:
            return engines.conv(xv, w, bias, q, target, strides=strides, pads=pads,
                                dilations=dilations, group=group, layout=layout).astype(dtype)
        return run

    def matmul(self, w: np.ndarray, bias: np.ndarray | None, x: QParams, wq: QParams,
               y: QParams, qmin: int, qmax: int) -> Callable[[np.ndarray], np.ndarray]:
        """A kernel `run(a)` for one product with constant (K, N) weights."""
        q = layer_qparams(x, wq, y, qmin, qmax)
        dtype = y.qtype.numpy_dtype
        target = self.target

        def run(av: np.ndarray) -> np.ndarray:
            return engines.matmul(av, w, bias, q, target).astype(dtype)
        return run


def session_for(model: str | os.PathLike[str] | onnx.ModelProto | bytes,
                target: str | Target) -> Session:
    """A lowp Session whose Conv / MatMul / Gemm groups use `target`'s engine arithmetic.

    Parameters
    ----------
    model
        A QDQ model (path, bytes or ModelProto).
    target
        Target or target name, e.g. 'x86', 'qnnpack', 'onnxruntime'.

    Returns
    -------
    Session
        Runs on lowp's reference backend; `session.run(feeds, capture=True)` exposes every
        intermediate tensor for per-layer comparison.
    """
    t = get_target(target)
    session = Session(model, backend="reference", requant_mode=t.requant_mode)
    steps = lower(session.model, session.backend, t.requant_mode, arithmetic=EngineHook(t))
    if t.arithmetic.quantize is ScaleDivision.RECIPROCAL:
        steps = [_reciprocal_quantize(s) if s.kind == "quantize" else s for s in steps]
    session.steps = steps
    return session


def _reciprocal_quantize(step: Step) -> Step:
    """QuantizeLinear as PyTorch computes it: round_half_even(x * float32(1 / s)) + zp (E6).

    Only per-tensor quantization is rewritten; per-axis steps keep lowp's division.
    """
    original = step.fn

    def run(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None, *,
            layout: object) -> tuple[np.ndarray, ...]:
        (q,) = original(x, scale, zp, layout=layout)
        s = np.asarray(scale, np.float32)
        if s.size != 1 or zp is None:
            return (q,)
        info = np.iinfo(q.dtype)
        recip = (np.float32(1) / s.reshape(())).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            v = np.rint((np.asarray(x, np.float32) * recip).astype(np.float32))
        v = np.nan_to_num(v.astype(np.float64), nan=0.0) + float(np.asarray(zp).reshape(()))
        return (np.clip(v, info.min, info.max).astype(q.dtype),)

    return replace(step, fn=run)


def run_as(model: str | os.PathLike[str] | onnx.ModelProto | bytes,
           feeds: Mapping[str, np.ndarray], target: str | Target) -> dict[str, np.ndarray]:
    """Run `model` on `feeds` the way `target`'s engine would compute it.

    Examples
    --------
    >>> import lowp
    >>> from lowp.fidelity import run_as
    >>> from lowp.data import demo_model_path, load_demo_test
    >>> feeds, _ = load_demo_test()
    >>> out = run_as(demo_model_path(), {"input": feeds["input"][:2]}, "x86")
    >>> out["logits"].shape
    (2, 10)
    """
    return session_for(model, target).run(feeds)
