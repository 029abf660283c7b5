"""Property tests of the engine convolutions, modelled on Caffe2 DNNLOWP's conv tests."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from lowp.engines import (
    Engine,
    Order,
    QTensor,
    WeightQuant,
    analyze_saturation,
    conv,
    dequantize,
    native,
    pack_conv_weight,
    quantize,
)
from tests.engines._inputs import make_problem, options_for, requant_error_steps
from tests.ops._reference import torch_conv_acc
from tests.strategies import ConvCase, conv_cases

ORDERS = {(1, False): Order.NCW, (1, True): Order.NWC, (2, False): Order.NCHW,
          (2, True): Order.NHWC, (3, False): Order.NCDHW, (3, True): Order.NDHWC}
# DNNLOWP_16 rescales by 257 (or 128/256) and rounds float32(acc) from int64 (S8)
RTOL_16 = 1e-5


def _float_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, case: ConvCase,
                     relu: bool) -> np.ndarray:
    y = torch_conv_acc(x.astype(np.int64), w.astype(np.int64), b.astype(np.int64), 0,
                       np.zeros(w.shape[0]), case.geometry, case.group).astype(np.float64)
    return np.maximum(y, 0) if relu else y


def _to_order(y: np.ndarray, channels_last: bool) -> np.ndarray:
    return np.moveaxis(y, 1, -1) if channels_last else y


def _run(engine: Engine, p, case: ConvCase, order: Order, opts_kw: dict, prepack: bool,
         relu: bool, dequantize_output: bool, impl: str = "auto") -> np.ndarray | QTensor:
    g = case.geometry
    opts = options_for(engine, **opts_kw)
    x = _to_order(p.x, order.layout.value == "NHWC")
    geo = dict(strides=g.strides, pads=g.pads, dilations=g.dilations)
    if prepack:
        xq = quantize(x, opts)
        packed = pack_conv_weight(p.w, p.bias, group=case.group, options=opts,
                                  x_qparams=xq.qparams, impl=impl, **geo)
        assert packed.bias_int32 is not None and packed.bias_int32.dtype == np.int32
        return conv(xq, packed, order=order, relu=relu, dequantize_output=dequantize_output,
                    impl=impl)
    return conv(x, p.w, p.bias, group=case.group, order=order, options=opts, relu=relu,
                dequantize_output=dequantize_output, impl=impl, **geo)


@given(case=conv_cases(), channels_last=st.booleans(),
       weight_quant=st.sampled_from(list(WeightQuant)), preserve_activation=st.booleans(),
       preserve_weight=st.booleans(), prepack=st.booleans(), relu=st.booleans(),
       nbits=st.integers(0, 8), x_pick=st.integers(0, 5), fixedpoint=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_engines_equal_float_conv(case: ConvCase, channels_last: bool,
                                  weight_quant: WeightQuant, preserve_activation: bool,
                                  preserve_weight: bool, prepack: bool, relu: bool, nbits: int,
                                  x_pick: int, fixedpoint: bool, seed: int) -> None:
    g = case.geometry
    c, m = case.group * case.in_per_group, case.group * case.out_per_group
    k_row = case.in_per_group * int(np.prod(g.kernel))
    assume(k_row >= 2)                       # every weight row holds both extremes
    assume(case.batch == 0 or c * int(np.prod(g.spatial)) >= 2)     # and x both of its own
    rng = np.random.default_rng(seed)
    p = make_problem(rng, (case.batch, c, *g.spatial), (m, case.in_per_group, *g.kernel),
                     preserve_activation, preserve_weight, x_pick)
    order = ORDERS[(g.rank, channels_last)]
    kw = dict(weight_quant=weight_quant, preserve_activation=preserve_activation,
              preserve_weight=preserve_weight, nbits=nbits, fixedpoint=fixedpoint)
    ref = _to_order(_float_reference(p.x, p.w, p.bias, case, relu), channels_last)

    # dequantized accumulators (S10): every engine equals the float computation
    outs = {}
    for engine in Engine:
        y = _run(engine, p, case, order, kw, prepack, relu, True)
        assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == ref.shape
        outs[engine] = y
    np.testing.assert_array_equal(outs[Engine.DNNLOWP], ref)
    np.testing.assert_allclose(outs[Engine.DNNLOWP_16], ref, rtol=RTOL_16,
                               atol=RTOL_16 * max(1.0, float(np.abs(ref).max(initial=0))))

    # DNNLOWP_ACC16: equal wherever the analysis finds no saturation (S6) = (A1)
    opts16 = options_for(Engine.DNNLOWP_ACC16, **kw)
    x_in = _to_order(p.x, channels_last)
    packed = pack_conv_weight(p.w, p.bias, group=case.group, options=opts16,
                              strides=g.strides, pads=g.pads, dilations=g.dilations)
    report = analyze_saturation(packed, x_in, order=order)
    clean = ~report.mask
    assert report.mask.shape == ref.shape
    np.testing.assert_array_equal(outs[Engine.DNNLOWP_ACC16][clean], ref[clean])
    if nbits <= 7:                                     # pairs cannot saturate (S5)
        assert report.events_per_channel.sum() >= report.saturated_per_channel.sum()
    if native.available():
        y_ref = _run(Engine.DNNLOWP_ACC16, p, case, order, kw, prepack, relu, True,
                     impl="reference")
        np.testing.assert_array_equal(outs[Engine.DNNLOWP_ACC16], y_ref)

    # requantized outputs (dynamic output qparams): within half an output step of float
    for engine in Engine:
        q = _run(engine, p, case, order, kw, prepack, relu, False)
        assert isinstance(q, QTensor)
        assert q.values.dtype == engine.activation_qtype.numpy_dtype
        if ref.size == 0:
            continue
        step = float(q.qparams.scale)
        got = dequantize(q).astype(np.float64)
        mask = clean if engine is Engine.DNNLOWP_ACC16 else np.ones(ref.shape, bool)
        tol = step * (requant_error_steps(engine, fixedpoint, q.qparams.scale) + 1e-3) + (
            RTOL_16 * np.abs(ref).max() if engine is Engine.DNNLOWP_16 else 0.0)
        assert np.abs(got - ref)[mask].max(initial=0) <= tol
        if engine is Engine.DNNLOWP:
            # all weights outliers: acc16 is int32 accumulation, bit for bit DNNLOWP's output
            all_out = dict(kw, nbits=0)
            same = conv(_to_order(p.x, channels_last), p.w, p.bias, group=case.group,
                        order=order, options=options_for(Engine.DNNLOWP_ACC16, **all_out),
                        relu=relu, y_qparams=q.qparams, strides=g.strides, pads=g.pads,
                        dilations=g.dilations)
            assert isinstance(same, QTensor)
            np.testing.assert_array_equal(same.values, q.values)


def test_depthwise_3x3_and_3x3x3_all_engines() -> None:
    rng = np.random.default_rng(3)
    for spatial, order in (((7, 6), Order.NHWC), ((4, 5, 4), Order.NCDHW)):
        r = len(spatial)
        c = 8
        x = rng.integers(-5, 6, size=(2, c, *spatial)).astype(np.float32)
        w = rng.integers(-4, 5, size=(c, 1) + (3,) * r).astype(np.float32)
        w[:, 0].reshape(c, -1)[:, :2] = [-128, 127]
        x.reshape(-1)[:2] = [-128, 127]
        ref = torch_conv_acc(x.astype(np.int64), w.astype(np.int64), None, 0, np.zeros(c),
                             _geom(spatial), c).astype(np.float32)
        if order.layout.value == "NHWC":
            x, ref = np.moveaxis(x, 1, -1), np.moveaxis(ref, 1, -1)
        for engine in (Engine.DNNLOWP, Engine.DNNLOWP_ACC16):
            opts = options_for(engine, WeightQuant.PER_CHANNEL, False, True, 0)
            y = conv(x, w, group=c, pads=(1,) * 2 * r, order=order, options=opts,
                     dequantize_output=True)
            np.testing.assert_array_equal(y, ref)


def _geom(spatial: tuple[int, ...]):  # noqa: ANN202
    from tests.strategies import WindowGeometry
    r = len(spatial)
    return WindowGeometry(spatial, (3,) * r, (1,) * r, (1,) * 2 * r, (1,) * r)
