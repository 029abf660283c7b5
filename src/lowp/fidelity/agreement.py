"""Sort differences between an engine and its model: rounding ties, engine defects, errors.

Layer: numerics only. An engine model (lowp.fidelity.engines) is meant to be bit-exact. When
it is not, each differing output falls in one of three classes, decided against the exact
real value of the layer's output, (acc s_x s_w + b) / s_y + z_y in float64:

- tie residual: engine and model differ by one, both are roundings of the real value (its
  floor or ceiling) and that value lies within a few float32 ulps of a .5 tie. Which way
  such a tie goes depends on the order of the engine's float32 operations; the model did
  not reproduce that order on this CPU's kernel family.
- engine defect: the engine's output is no rounding of the real value at all (more than one
  unit away, or on the wrong side of it), while the model's output is one. No order of
  float operations explains it: the engine computed something else (docs/engines.md).
- model error: everything else. lowp's model is wrong; the tests fail on any.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..cpu import cpu_flags
from .engines import LayerQParams, _per_channel, float_bias

#: A real value this many float32 ulps (of its magnitude) from a .5 tie counts as at the tie.
TIE_ULPS = 16
#: Engines whose kernels on an AMX CPU leave tie residuals (oneDNN's AMX kernels; the 'x86'
#: engine runs convolutions on oneDNN); measured in tests/fidelity, docs/engines.md (E7).
AMX_TIE_ENGINES = ("onednn", "x86")


def cpu_kernel_family() -> str:
    """The int8 kernel family engines pick on this CPU: amx, avx512-vnni, avx-vnni, avx2, other.

    Read from the CPU flags the operating system reports (lowp.cpu); 'other' where they
    cannot be read. oneDNN and ONNX Runtime's MLAS choose AMX tiles where the CPU has AMX-INT8.
    """
    flags = cpu_flags()
    for family, flag in (("amx", "amx_int8"), ("avx512-vnni", "avx512_vnni"),
                         ("avx-vnni", "avx_vnni"), ("avx2", "avx2")):
        if flag in flags:
            return family
    return "other"


def tie_residuals_expected(engine: str, family: str | None = None) -> bool:
    """Whether `engine` on a CPU of kernel `family` (default: this one) leaves tie residuals."""
    return (family or cpu_kernel_family()) == "amx" and engine in AMX_TIE_ENGINES


def real_outputs(acc: np.ndarray, bias: np.ndarray | None, q: LayerQParams,
                 channel_axis: int = 1) -> np.ndarray:
    """The exact real outputs (acc s_x s_w + b) / s_y + z_y in float64, before rounding.

    `acc` holds the exact int32 accumulators sum (x - z_x)(w - z_w); `bias` is float32 (as
    PyTorch keeps it) or int32 at s_x s_w, per output channel.
    """
    acc = np.asarray(acc, np.float64)
    axis = channel_axis % max(acc.ndim, 1)
    sw = _per_channel(np.asarray(q.w_scale, np.float64), acc.ndim, axis)
    v = acc * np.float64(np.float32(q.x_scale)) * sw
    fb = float_bias(bias, q)
    if fb is not None:
        v = v + _per_channel(fb.astype(np.float64), acc.ndim, axis)
    return v / np.float64(np.float32(q.y_scale)) + q.y_zero_point


@dataclass
class Agreement:
    """Per-class counts of one layer's outputs, engine vs model."""

    elements: int = 0
    tie_residuals: int = 0
    engine_defects: int = 0
    model_errors: int = 0
    #: flat indices (the first few of each class), for a reproducer
    defect_at: list[int] = field(default_factory=list)
    tie_at: list[int] = field(default_factory=list)
    error_at: list[int] = field(default_factory=list)

    @property
    def equal(self) -> int:
        return self.elements - self.tie_residuals - self.engine_defects - self.model_errors


def classify(engine_out: np.ndarray, model_out: np.ndarray, real: np.ndarray,
             q: LayerQParams) -> Agreement:
    """Sort the outputs where `engine_out` and `model_out` differ into the three classes.

    Examples
    --------
    A oneDNN conv3d on an AMX CPU that returned shifted outputs (docs/engines.md):

    >>> q = LayerQParams(0.0625, 0, np.float32(0.0625), np.int64(0), 1.5, 0)
    >>> real = np.array([24.2, 39.4, 48.9, 116.3, 75.1])
    >>> a = classify(np.array([24, 49, 75, 116, 0]), np.array([24, 39, 49, 116, 75]), real, q)
    >>> (a.equal, a.tie_residuals, a.engine_defects, a.model_errors)
    (2, 0, 3, 0)
    """
    e = np.asarray(engine_out, np.int64).ravel()
    m = np.asarray(model_out, np.int64).ravel()
    r = np.broadcast_to(np.asarray(real, np.float64), np.shape(engine_out)).ravel()
    out = Agreement(elements=int(e.size))
    differ = np.flatnonzero(e != m)
    if differ.size == 0:
        return out
    e, m, r = e[differ], m[differ], r[differ]
    lo = np.clip(np.floor(r), q.qmin, q.qmax)
    hi = np.clip(np.ceil(r), q.qmin, q.qmax)
    e_rounds = (e == lo) | (e == hi)
    m_rounds = (m == lo) | (m == hi)
    ulp = np.spacing(np.maximum(np.abs(r), 1.0).astype(np.float32)).astype(np.float64)
    at_tie = np.abs(r - np.floor(r) - 0.5) <= TIE_ULPS * ulp
    tie = e_rounds & m_rounds & at_tie
    defect = ~e_rounds & m_rounds
    out.tie_residuals = int(np.count_nonzero(tie))
    out.engine_defects = int(np.count_nonzero(defect))
    out.model_errors = int(differ.size) - out.tie_residuals - out.engine_defects
    out.defect_at = [int(i) for i in differ[defect][:8]]
    out.tie_at = [int(i) for i in differ[tie][:8]]
    out.error_at = [int(i) for i in differ[~tie & ~defect][:8]]
    return out
