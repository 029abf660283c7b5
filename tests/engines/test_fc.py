"""Property tests of the engine fully connected layers (row-wise and per tensor)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from lowp.engines import (
    Engine,
    QTensor,
    WeightQuant,
    analyze_saturation,
    dequantize,
    fc,
    fc_relu,
    pack_fc_weight,
    quantize,
)
from tests.engines._inputs import make_problem, options_for


@given(batch=st.integers(0, 4), k=st.integers(2, 40), n=st.integers(1, 6),
       rowwise=st.booleans(), preserve_activation=st.booleans(), preserve_weight=st.booleans(),
       prepack=st.booleans(), relu=st.booleans(), nbits=st.integers(0, 8),
       x_pick=st.integers(0, 5), seed=st.integers(0, 2**32 - 1))
def test_engines_equal_float_fc(batch: int, k: int, n: int, rowwise: bool,
                                preserve_activation: bool, preserve_weight: bool, prepack: bool,
                                relu: bool, nbits: int, x_pick: int, seed: int) -> None:
    assume(batch * k >= 2)
    rng = np.random.default_rng(seed)
    p = make_problem(rng, (batch, k), (n, k), preserve_activation, preserve_weight, x_pick)
    ref = p.x.astype(np.float64) @ p.w.astype(np.float64).T + p.bias
    ref = np.maximum(ref, 0) if relu else ref
    wq = WeightQuant.PER_CHANNEL if rowwise else WeightQuant.PER_TENSOR
    op = fc_relu if relu else fc
    outs = {}
    for engine in Engine:
        opts = options_for(engine, wq, preserve_activation, preserve_weight, nbits)
        if prepack:
            xq = quantize(p.x, opts)
            packed = pack_fc_weight(p.w, p.bias, options=opts, x_qparams=xq.qparams)
            y = op(xq, packed, dequantize_output=True)
            q = op(xq, packed)
        else:
            y = op(p.x, p.w, p.bias, options=opts, dequantize_output=True)
            q = op(p.x, p.w, p.bias, options=opts)
        assert isinstance(y, np.ndarray) and isinstance(q, QTensor)
        outs[engine] = (y, q)
    np.testing.assert_array_equal(outs[Engine.DNNLOWP][0], ref)
    np.testing.assert_allclose(outs[Engine.DNNLOWP_16][0], ref, rtol=1e-5,
                               atol=1e-5 * max(1.0, float(np.abs(ref).max(initial=0))))
    opts16 = options_for(Engine.DNNLOWP_ACC16, wq, preserve_activation, preserve_weight, nbits)
    report = analyze_saturation(pack_fc_weight(p.w, p.bias, options=opts16), p.x)
    clean = ~report.mask
    np.testing.assert_array_equal(outs[Engine.DNNLOWP_ACC16][0][clean], ref[clean])
    for engine, (_, q) in outs.items():
        if ref.size:
            step = float(q.qparams.scale)
            err = np.abs(dequantize(q) - ref)
            if engine is Engine.DNNLOWP_ACC16:
                err = err[clean]
            assert err.max(initial=0) <= 0.5 * step * (1 + 1e-3) + 1e-5 * np.abs(ref).max()


def test_static_output_qparams_and_16bit_types() -> None:
    from lowp.qparams import QParams, QType
    x = np.array([[1.0, 2.0, -3.0]], np.float32)
    w = np.array([[1.0, -1.0, 2.0], [0.5, 0.5, 0.5]], np.float32)
    yq = QParams(np.float32(0.25), np.int32(128), QType.UINT8, 0, 255)
    out = fc(x, w, y_qparams=yq)
    assert isinstance(out, QTensor) and out.qparams is yq
    np.testing.assert_allclose(dequantize(out), x @ w.T, atol=0.125 + 0.05)
    out16 = fc(x, w, options=options_for(Engine.DNNLOWP_16, WeightQuant.PER_CHANNEL, False,
                                         False, 8))
    assert isinstance(out16, QTensor) and out16.values.dtype == np.uint16
    np.testing.assert_allclose(dequantize(out16), x @ w.T, atol=1e-3)
