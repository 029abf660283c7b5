"""Engine models vs PyTorch 2.x quantized Conv1d/2d/3d and Linear: bit-exact, tolerance 0."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.fidelity.agreement import classify, cpu_kernel_family, tie_residuals_expected
from lowp.fidelity.engines import LayerQParams
from lowp.fidelity.engines import conv as model_conv
from lowp.fidelity.torch_import import from_torch
from lowp.targets import (
    EXACT,
    FBGEMM,
    ONEDNN,
    QNNPACK_PT,
    BiasMode,
    Epilogue,
    ScaleDivision,
    ZeroPointAdd,
    get_target,
)
from tests.strategies import conv_cases

from .torch_peer import ENGINES, F32, TorchCase, build_module, run_torch

#: (layers, elements, model errors, tie residuals, engine defects) per engine (test_report)
TALLY: dict[str, list[int]] = {}
#: engine -> one line per layer where PyTorch's output is no rounding of the exact value
DEFECTS: dict[str, list[str]] = {}


def _scale(draw: st.DrawFn, lo: float, hi: float) -> float:
    """A float32-representable scale, log-uniform in [lo, hi]."""
    e = draw(st.floats(np.log2(lo), np.log2(hi)))
    return float(F32(2.0 ** e))


@st.composite
def torch_cases(draw: st.DrawFn, engine: str) -> TorchCase:
    rank = draw(st.sampled_from([0, 1, 2, 2, 3]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    per_channel = draw(st.booleans())
    relu = draw(st.booleans())
    if rank == 0:
        batch = draw(st.integers(0, 3))
        k_in, m = draw(st.integers(1, 40)), draw(st.integers(1, 12))
        x = rng.integers(0, 256, (batch, k_in)).astype(np.uint8)
        w = rng.integers(-128, 128, (m, k_in)).astype(np.int8)
        k_terms, geom = k_in, {}
    else:
        c = draw(conv_cases(rank=rank))
        g = c.geometry
        m = c.group * c.out_per_group
        x = rng.integers(0, 256, (c.batch, c.group * c.in_per_group) + g.spatial
                         ).astype(np.uint8)
        w = rng.integers(-128, 128, (m, c.in_per_group) + g.kernel).astype(np.int8)
        k_terms = c.in_per_group * int(np.prod(g.kernel))
        pads = tuple(max(g.pads[i], g.pads[i + rank]) for i in range(rank))  # PyTorch: symmetric
        if engine in ("onednn", "x86"):   # oneDNN crashes (SIGSEGV) when a pad exceeds the
            pads = tuple(min(p, (k - 1) * d)  # kernel extent, e.g. 1x1 kernels with pad 1
                         for p, k, d in zip(pads, g.kernel, g.dilations, strict=True))
        geom = dict(stride=g.strides, padding=pads, dilation=g.dilations,
                    groups=c.group)
    x_scale = _scale(draw, 1e-3, 0.1)
    x_zp = draw(st.integers(0, 255))
    if per_channel:
        w_scale = np.array([_scale(draw, 1e-3, 0.1) for _ in range(m)], F32)
        w_zp = np.zeros(m, np.int64)
    else:
        w_scale = np.asarray(F32(_scale(draw, 1e-3, 0.1)))
        nonzero = engine in ("fbgemm", "qnnpack", "x86") and draw(st.booleans())
        w_zp = np.asarray(draw(st.integers(-20, 20)) if nonzero else 0, np.int64)
    bias = (rng.standard_normal(m) * draw(st.sampled_from([0.01, 1.0, 20.0]))).astype(F32) \
        if draw(st.booleans()) else None
    # output scale from the accumulator range so outputs span the uint8 range
    acc_span = max(k_terms, 1) * 255 * 128 / 4 + 1
    y_scale = float(F32(acc_span * x_scale * float(np.max(w_scale)) / 255
                        * draw(st.floats(0.05, 2.0))))
    if engine == "qnnpack":   # QNNPACK needs every s_x * s_w / s_y representable (< 2^8)
        y_scale = max(y_scale, float(F32(x_scale * float(np.max(w_scale)))))
    return TorchCase(rank, x, x_scale, x_zp, w, w_scale, w_zp, bias, y_scale,
                     draw(st.integers(0, 255)), relu, **geom)


def _check(case: TorchCase, engine: str) -> None:
    """The engine model equals PyTorch, except where lowp.fidelity.agreement allows it.

    Allowed: engine defects (PyTorch's output is no rounding of the exact value; recorded in
    DEFECTS with a reproducer) and, for oneDNN's kernels on an AMX CPU, tie residuals.
    Never allowed: an output the model gets wrong.
    """
    expected = run_torch(case, engine)
    layer = from_torch(build_module(case))
    got = layer.run(case.x, case.x_scale, case.x_zero_point, engine)
    assert got.shape == expected.shape
    real = layer.real_outputs(case.x, case.x_scale, case.x_zero_point)
    a = classify(expected, got, real, layer.qparams(case.x_scale, case.x_zero_point))
    tally = TALLY.setdefault(engine, [0, 0, 0, 0, 0])
    tally[0] += 1
    tally[1] += expected.size
    tally[2] += a.model_errors
    tally[3] += a.tie_residuals
    tally[4] += a.engine_defects
    if a.engine_defects:
        DEFECTS.setdefault(engine, []).append(
            f"{a.engine_defects} of {a.elements} outputs, e.g. flat index {a.defect_at[0]}: "
            f"torch {int(expected.ravel()[a.defect_at[0]])}, exact "
            f"{float(real.ravel()[a.defect_at[0]]):.4f}; x {case.x.shape}, w {case.w.shape}, "
            f"stride {case.stride}, padding {case.padding}, dilation {case.dilation}, "
            f"groups {case.groups}")
    allowed_ties = a.tie_residuals if tie_residuals_expected(engine) else 0
    shown = a.error_at + (a.tie_at if a.tie_residuals > allowed_ties else [])
    assert not shown, (
        f"{a.model_errors} model errors, {a.tie_residuals} tie residuals "
        f"({allowed_ties} allowed) of {a.elements} outputs; at flat indices {shown}: model "
        f"{got.ravel()[shown].tolist()}, torch {expected.ravel()[shown].tolist()}, exact "
        f"{real.ravel()[shown].tolist()}")


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_model_is_bit_exact(engine: str) -> None:
    @settings(max_examples=settings().max_examples)
    @given(torch_cases(engine))
    def inner(case: TorchCase) -> None:
        _check(case, engine)
    inner()


_AMX_CONV3D_DEFECT = TorchCase(   # oneDNN on AMX returns [24, 49, 75, 116, 0]
    3, np.array([[[[[217, 163], [130, 69], [78, 10]], [[19, 4], [44, 208], [166, 233]]]]],
                np.uint8), 0.0625, 0,
    np.array([[[[[0, 27], [120, 58], [33, 11]], [[15, 111], [-57, 80], [43, -128]]]]], np.int8),
    np.asarray(F32(0.0625)), np.asarray(0, np.int64), None, 1.500015377998352, 0, False,
    (1, 1, 2), (0, 2, 0), (1, 1, 1), 1)


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_defect_is_recorded_not_modelled(engine: str) -> None:
    """A conv3d where oneDNN's AMX kernels shift outputs: the model keeps exact arithmetic."""
    layer = from_torch(build_module(_AMX_CONV3D_DEFECT))
    got = layer.run(_AMX_CONV3D_DEFECT.x, 0.0625, 0, engine)
    np.testing.assert_array_equal(got.ravel(), [24, 39, 49, 116, 75])
    _check(_AMX_CONV3D_DEFECT, engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_bias_rounding_cases(engine: str) -> None:
    """Biases at exact .5 multiples of s_x * s_w separate the four bias modes."""
    rng = np.random.default_rng(7)
    m = 256
    w_scale = rng.uniform(1e-3, 5e-2, m).astype(F32)
    x_scale = float(F32(0.02))
    xw = (F32(x_scale) * w_scale).astype(F32)
    bias = ((rng.integers(-60, 60, m) + F32(0.5)) * xw).astype(F32)
    case = TorchCase(0, rng.integers(0, 256, (4, 3)).astype(np.uint8), x_scale, 128,
                     np.zeros((m, 3), np.int8), w_scale, np.zeros(m, np.int64), bias,
                     float(F32(float(xw.max()) * 0.9)), 128, False)
    _check(case, engine)


def test_vnni_machine_does_not_saturate() -> None:
    """u8 255 x s8 127 pairs exceed int16: fbgemm on this CPU sums them exactly (VNNI)."""
    if "fbgemm" not in ENGINES:
        pytest.skip("fbgemm engine not available")
    x = np.full((1, 16, 5, 5), 255, np.uint8)
    w = np.full((16, 16, 3, 3), 127, np.int8)
    case = TorchCase(2, x, 1 / 64, 0, w, np.asarray(F32(1 / 64)), np.asarray(0, np.int64),
                     None, float(F32(16 * 9 * 255 * 127 / 4096 / 200)), 0, False,
                     (1, 1), (0, 0), (1, 1), 1)
    expected = run_torch(case, "fbgemm")
    layer = from_torch(build_module(case))
    exact = layer.run(x, case.x_scale, 0, "fbgemm")
    saturating = layer.run(x, case.x_scale, 0, "fbgemm-avx2")
    np.testing.assert_array_equal(exact, expected)
    assert np.any(saturating != expected)


def test_model_conv_matches_lowp_reference_for_exact_targets() -> None:
    """The 'lowp' engine model is lowp's reference operator (int32 bias, (R1)-(R2))."""
    from lowp.fixedpoint import Requant, requant_scale
    from lowp.ops.conv import conv as ref_conv

    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 4, 7, 7)).astype(np.uint8)
    w = rng.integers(-127, 128, (6, 4, 3, 3)).astype(np.int8)
    b = rng.integers(-3000, 3000, 6).astype(np.int32)
    sw = rng.uniform(1e-3, 1e-2, 6).astype(F32)
    q = LayerQParams(0.03, 120, sw, np.zeros(6, np.int64), 0.4, 7)
    want = ref_conv(x, w, b, x_zero_point=120, w_zero_point=0,
                    requant=Requant(requant_scale(0.03, sw, 0.4), 7, 0, 255), pads=[1] * 4)
    got = model_conv(x, w, b, q, "lowp", pads=[1] * 4)
    np.testing.assert_array_equal(got, want)


def _wide_cases(engine: str) -> list[TorchCase]:
    """Realistic layer sizes (thousands of outputs each) with outputs spanning uint8."""
    rng = np.random.default_rng(11)
    cases = []
    for i, (rank, cin, cout, k, groups) in enumerate(
            [(2, 16, 32, 3, 1), (2, 32, 32, 3, 32), (1, 24, 48, 5, 2), (3, 8, 8, 3, 1),
             (0, 256, 64, 0, 1), (2, 64, 64, 1, 1)]):
        per_channel, relu = bool(i % 2), bool(i // 2 % 2)
        spatial = {0: (), 1: (40,), 2: (12, 12), 3: (6, 6, 6)}[rank]
        batch = 16 if rank == 0 else 2
        x = rng.integers(0, 256, (batch, cin) + spatial).astype(np.uint8)
        w = rng.integers(-128, 128, (cout, cin // groups) + (k,) * rank).astype(np.int8)
        w_scale = (rng.uniform(2e-3, 2e-2, cout).astype(F32) if per_channel
                   else np.asarray(F32(0.01)))
        w_zp = np.zeros(cout, np.int64) if per_channel else np.asarray(0, np.int64)
        terms = (cin // groups) * max(k, 1) ** rank
        y_scale = float(F32(terms ** 0.5 * 255 * 128 * 0.02 * float(np.max(w_scale)) / 80))
        geom = {} if rank == 0 else dict(stride=(1,) * rank, padding=(k // 2,) * rank,
                                         dilation=(1,) * rank, groups=groups)
        cases.append(TorchCase(rank, x, 0.02, 128, w, w_scale, w_zp,
                               (rng.standard_normal(cout) * 2).astype(F32), y_scale, 100,
                               relu, **geom))
    return cases


@pytest.mark.parametrize("engine", ENGINES)
def test_wide_layers_are_bit_exact(engine: str) -> None:
    for case in _wide_cases(engine):
        _check(case, engine)


_DEPTHWISE = [  # (C_in, C_out, kernel, groups, strides, pads): fbgemm fast path or not
    (8, 8, (3, 3), 8, (1, 1), (1, 1)), (16, 32, (3, 3), 16, (1, 1), (1, 1)),
    (8, 8, (5, 5), 8, (2, 2), (2, 2)), (8, 8, (7, 7), 8, (1, 2), (3, 3)),
    (8, 8, (3, 3, 3), 8, (1, 1, 1), (1, 1, 1)), (200, 200, (3, 3), 200, (1, 1), (1, 1)),
    (12, 12, (3, 3), 12, (1, 1), (1, 1)), (8, 24, (3, 3), 8, (1, 1), (1, 1)),
    (8, 8, (3, 5), 8, (1, 1), (1, 2)), (8, 8, (3, 3), 8, (3, 3), (1, 1)),
    (8, 8, (5, 5), 8, (1, 1), (1, 1)), (16, 16, (3,), 16, (1,), (1,)),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("cfg", _DEPTHWISE, ids=lambda c: f"C{c[0]}-M{c[1]}-k{c[2]}-s{c[4]}")
def test_depthwise_saturation_rule(engine: str, cfg: tuple) -> None:
    """fbgemm's depthwise kernels saturate 16-bit pairs even with VNNI; the rule is modelled."""
    cin, cout, kernel, groups, strides, pads = cfg
    rng = np.random.default_rng(sum(cout * k for k in kernel))
    rank = len(kernel)
    x = rng.integers(200, 256, (2, cin) + (8,) * rank).astype(np.uint8)
    w = rng.choice(np.array([-128, -127, 127, 126], np.int8), (cout, cin // groups) + kernel)
    terms = (cin // groups) * int(np.prod(kernel))
    case = TorchCase(rank, x, 0.02, 0, w, np.asarray(F32(0.01)), np.asarray(0, np.int64),
                     None, float(F32(terms * 255 * 128 * 0.02 * 0.01 / 200)), 128, False,
                     strides, pads, (1,) * rank, groups)
    _check(case, engine)


_ALTERNATIVES = {   # engine -> {name: plausible arithmetic that is NOT the engine's}
    "fbgemm": {"int32 bias": EXACT,
               "bias * 1/(s_x s_w)": replace(FBGEMM, bias=BiasMode.INT32_RECIPROCAL)},
    "x86": {"int32 bias": EXACT},
    "onednn": {"folded multiplier": replace(ONEDNN, epilogue=Epilogue.MULTIPLIER,
                                            bias=BiasMode.FLOAT_PRESCALED),
               "integer zero point": replace(ONEDNN, zero_point_add=ZeroPointAdd.INTEGER)},
    "qnnpack": {"bias / (s_x s_w)": replace(QNNPACK_PT, bias=BiasMode.INT32),
                "M = s_x s_w / s_y": replace(QNNPACK_PT, multiplier=ScaleDivision.DIVIDE)},
}


@pytest.mark.parametrize("engine", ENGINES)
def test_rounding_details_are_observable(engine: str) -> None:
    """6M outputs of Linear layers: the engine model is exact and each alternative is not.

    Half the biases sit near .5 multiples of s_x * s_w, where bias rounding shows; outputs
    stay inside [0, 255] so that final-rounding differences (about 1 in 10^5) are seen.
    """
    rng = np.random.default_rng(5)
    wrong = {name: 0 for name in _ALTERNATIVES[engine]}
    for i in range(6):
        k, m = 64, 256
        # oneDNN per-tensor Linear: 2 of 6.3M outputs round a .5 tie up (docs/engines.md)
        per_channel = bool(i % 2) or engine == "onednn"
        x = rng.integers(0, 256, (4096, k)).astype(np.uint8)
        w = rng.integers(-127, 128, (m, k)).astype(np.int8)
        w_scale = (rng.uniform(1e-3, 5e-2, m).astype(F32) if per_channel
                   else np.asarray(F32(rng.uniform(1e-3, 5e-2))))
        x_scale = float(F32(rng.uniform(1e-3, 0.1)))
        xw = (F32(x_scale) * np.broadcast_to(w_scale, (m,))).astype(F32)
        near = ((rng.integers(-30, 30, m) + F32(0.5)) * xw
                * (1 + rng.uniform(-1e-6, 1e-6, m))).astype(F32)
        bias = np.where(np.arange(m) % 2 == 0, near, rng.standard_normal(m) * xw * 20
                        ).astype(F32)
        zx = int(rng.integers(0, 256))
        acc_std = float(np.std((x[:256].astype(np.int64) - zx) @ w.T.astype(np.int64)))
        case = TorchCase(0, x, x_scale, zx, w, w_scale, np.zeros(w_scale.shape, np.int64),
                         bias, float(F32(acc_std * x_scale * float(np.max(w_scale)) / 30)),
                         128, bool(i % 3 == 0))
        _check(case, engine)
        want = run_torch(case, engine)
        layer = from_torch(build_module(case))
        for name, arith in _ALTERNATIVES[engine].items():
            alt = replace(get_target(engine), name=f"{engine}-alt", arithmetic=arith,
                          conv_arithmetic=None)
            got = layer.run(x, x_scale, case.x_zero_point, alt)
            wrong[name] += int(np.count_nonzero(got != want))
    ALTERNATIVE_MISMATCHES[engine] = wrong
    assert all(n > 0 for n in wrong.values()), wrong


ALTERNATIVE_MISMATCHES: dict[str, dict[str, int]] = {}


def test_report() -> None:
    """Runs last in this module: the measured totals (used by docs/engines.md)."""
    print(f"CPU kernel family: {cpu_kernel_family()}")
    for engine, (layers, elements, bad, ties, defects) in sorted(TALLY.items()):
        print(f"{engine}: {layers} layers, {elements} elements, {bad} mismatches, "
              f"{ties} tie residuals, {defects} engine-defect outputs")
    for engine, lines in sorted(DEFECTS.items()):
        for line in lines:
            print(f"{engine} defect: {line}")
    for engine, wrong in sorted(ALTERNATIVE_MISMATCHES.items()):
        print(f"{engine}: alternatives would mismatch {wrong}")
