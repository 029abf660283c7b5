"""Engine qparams rules: zero-centred (S9), group-wise, and the QDQ export helpers."""

from __future__ import annotations

import numpy as np
import pytest

from lowp.engines import (
    Engine,
    EngineOptions,
    WeightQuant,
    choose_weight_qparams,
    groupwise_weight_qparams,
    min_qdq_opset,
    per_group_for_qdq,
    quantize,
    zero_centred_qparams,
)
from lowp.errors import QuantizationError
from lowp.qparams import PerAxis, PerGroup, QType
from lowp.targets import get_target


def test_zero_centred_rules() -> None:
    qp = zero_centred_qparams(-128.0, 127.0, QType.UINT8)
    assert (float(qp.scale), int(qp.zero_point)) == (1.0, 128)
    qp = zero_centred_qparams(0.0, 255.0, QType.UINT8)
    assert (float(qp.scale), int(qp.zero_point)) == (1.0, 0)
    qp = zero_centred_qparams(np.array([-1.0, 0.0]), np.array([2.0, 0.0]), QType.INT8)
    assert qp.zero_point.tolist() == [0, 0] and qp.scale[1] == 1.0


def test_preserve_activation_sparsity_keeps_zero() -> None:
    opts = EngineOptions(preserve_activation_sparsity=True)
    q = quantize(np.array([-3.0, 0.0, 5.0], np.float32), opts)
    assert int(q.values[1]) == int(q.qparams.zero_point) == 128


def test_groupwise_qparams() -> None:
    w = np.zeros((6, 2, 3, 3), np.float32)
    w[:2] = 1.0
    w[2:4] = -2.0
    w[4:] = 4.0
    qp = groupwise_weight_qparams(w, 3, get_target("lowp"))
    assert qp.granularity == PerGroup(0, 2)
    np.testing.assert_allclose(qp.scale, np.array([1, 2, 4]) / 127, rtol=1e-6)
    scale, zp, axis, block = per_group_for_qdq(qp, w.shape, 13)
    assert (axis, block) == (0, 0) and scale.shape == (6,) and scale[1] == scale[0]
    opts = EngineOptions(weight_quant=WeightQuant.PER_GROUP)
    assert choose_weight_qparams(w, opts, groups=3).scale.shape == (3,)
    with pytest.raises(QuantizationError, match="groups"):
        groupwise_weight_qparams(w, 4, get_target("lowp"))


def test_per_group_export_refusals() -> None:
    qp = zero_centred_qparams(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), QType.INT8,
                              granularity=PerGroup(1, 2))
    with pytest.raises(QuantizationError, match="opset >= 21"):
        per_group_for_qdq(qp, (3, 4), 17)
    assert per_group_for_qdq(qp, (3, 4), 21)[2:] == (1, 2)
    with pytest.raises(QuantizationError, match="not a multiple"):
        per_group_for_qdq(qp, (3, 5), 21)
    with pytest.raises(QuantizationError, match="PerGroup"):
        per_group_for_qdq(zero_centred_qparams(np.array([1.0]), np.array([1.0]), QType.INT8,
                                               granularity=PerAxis(0)), (1, 1), 21)


def test_opsets_and_engine_types() -> None:
    assert min_qdq_opset(QType.UINT8, QType.INT8) == 13
    assert min_qdq_opset(Engine.DNNLOWP_16.activation_qtype) == 21
    with pytest.raises(QuantizationError):
        EngineOptions(nbits_in_non_outlier=9)
