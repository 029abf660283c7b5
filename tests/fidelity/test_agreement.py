"""lowp.fidelity.agreement: the three classes of an engine-vs-model difference."""

from __future__ import annotations

import numpy as np

from lowp.fidelity.agreement import classify, cpu_kernel_family, tie_residuals_expected
from lowp.fidelity.engines import LayerQParams

Q = LayerQParams(0.1, 0, np.float32(0.01), np.int64(0), 1.0, 128, 0, 255)


def test_tie_residual_needs_a_tie_and_two_roundings() -> None:
    real = np.array([155.4999863, 184.5000076, 100.3, 99.5])
    engine = np.array([156, 185, 101, 99])
    model = np.array([155, 184, 100, 100])
    a = classify(engine, model, real, Q)
    assert (a.tie_residuals, a.engine_defects, a.model_errors) == (3, 0, 1)
    assert a.error_at == [2]            # 100.3: the engine's 101 is a rounding, not at a tie


def test_model_error_when_the_model_is_no_rounding() -> None:
    a = classify(np.array([10, 20]), np.array([10, 22]), np.array([10.0, 20.2]), Q)
    assert (a.equal, a.model_errors, a.error_at) == (1, 1, [1])


def test_engine_defect_and_clamping() -> None:
    real = np.array([300.2, -4.0, 7.6])     # clamped to [0, 255]: 255, 0, and 7 or 8
    a = classify(np.array([255, 0, 3]), np.array([255, 0, 8]), real, Q)
    assert (a.equal, a.engine_defects, a.defect_at) == (2, 1, [2])


def test_tie_residuals_only_for_onednn_kernels_on_amx() -> None:
    assert tie_residuals_expected("onednn", "amx") and tie_residuals_expected("x86", "amx")
    assert not tie_residuals_expected("onednn", "avx512-vnni")
    assert not tie_residuals_expected("fbgemm", "amx")
    assert cpu_kernel_family() in ("amx", "avx512-vnni", "avx-vnni", "avx2", "other")
