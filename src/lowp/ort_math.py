"""ONNX Runtime's float32 tanh and logistic (sigmoid), reproduced bit for bit.

ONNX Runtime's CPU kernels for Tanh and Sigmoid, and the table of its QLinearSigmoid, do
not call the C library: MLAS evaluates a rational approximation (Eigen's coefficients) with
fused multiply-adds on x86-64. The exact function and this one differ by a float32 ulp or
two on about a third of all inputs, and a quantizer rounds those differently near a
half-way point. lowp uses these forms wherever it evaluates tanh or the logistic function in
float32 (float operators and lookup tables), so that a QDQ file gives the same integers as
ONNX Runtime. docs/operators.md, (O13).
"""

from __future__ import annotations

import numpy as np

from .fixedpoint import fma32

_F = np.float32

# numerator (odd powers, highest first) and denominator (even powers) of tanh on [-9, 9]
_TANH_RANGE = _F(9.0)
_TANH_P = tuple(_F(c) for c in (-2.76076847742355e-16, 2.00018790482477e-13,
                                -8.60467152213735e-11, 5.12229709037114e-08,
                                1.48572235717979e-05, 6.37261928875436e-04,
                                4.89352455891786e-03))
_TANH_Q = tuple(_F(c) for c in (1.19825839466702e-06, 1.18534705686654e-04,
                                2.26843463243900e-03, 4.89352518554385e-03))
# logistic(x) - 1/2 on [-18, 18]
_LOGISTIC_RANGE = _F(18.0)
_LOGISTIC_P = tuple(_F(c) for c in (4.37031012579801e-11, 1.15627324459942e-07,
                                    6.08574864600143e-05, 8.51377133304701e-03,
                                    2.48287947061529e-01))
_LOGISTIC_Q = tuple(_F(c) for c in (6.10247389755681e-13, 5.76102136993427e-09,
                                    6.29106785017040e-06, 1.70198817374094e-03,
                                    1.16817656904453e-01, 9.93151921023180e-01))


def _horner_fma(coefficients: tuple[np.float32, ...], t: np.ndarray) -> np.ndarray:
    """c0*t^(n-1) + ... + c(n-1), one fma per step, starting fma(t, c0, c1)."""
    r = fma32(t, coefficients[0], coefficients[1])
    for c in coefficients[2:]:
        r = fma32(r, t, c)
    return r


def _clamp(x: np.ndarray, bound: np.float32) -> np.ndarray:
    # NaN passes through (np.clip keeps NaN)
    return np.clip(np.asarray(x, _F), -bound, bound)


def tanh(x: np.ndarray) -> np.ndarray:
    """float32 tanh as ONNX Runtime computes it (MLAS, x86-64 with FMA).

    Examples
    --------
    >>> tanh(np.array([0.0, 0.5, -3.0, 20.0], np.float32)).tolist()
    [0.0, 0.46211716532707214, -0.9950547218322754, 1.0]
    """
    v = _clamp(x, _TANH_RANGE)
    s = v * v
    with np.errstate(invalid="ignore"):
        p = _horner_fma(_TANH_P, s) * v
        q = _horner_fma(_TANH_Q, s)
        return (p / q).astype(_F)


def logistic(x: np.ndarray) -> np.ndarray:
    """float32 logistic function 1 / (1 + e^-x) as ONNX Runtime computes it (MLAS).

    Examples
    --------
    >>> logistic(np.array([0.0, 2.0, -30.0], np.float32)).tolist()
    [0.5, 0.8807970881462097, 0.0]
    """
    v = _clamp(x, _LOGISTIC_RANGE)
    s = v * v
    with np.errstate(invalid="ignore"):
        p = _horner_fma(_LOGISTIC_P, s) * v
        q = _horner_fma(_LOGISTIC_Q, s)
        # the x86-64 kernel clamps at 0 but not at 1: 1 + 2^-23 happens near x = 18
        return np.maximum((p / q).astype(_F) + _F(0.5), _F(0.0))
