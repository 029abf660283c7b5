"""The local-error model: each quantized layer reads fed values through copies of its
inputs' quantize/dequantize pairs. Fed the quantized model's own (dequantized) values, it
must give back the quantized model exactly; fed the float model's, the first layer is
unchanged and later layers lose the error they inherited."""

from __future__ import annotations

import numpy as np
import pytest

import lowp
from lowp.config import Config
from lowp.data import demo_model_path, load_demo_calibration
from lowp.passes.calibrate import expose_tensors, float_session
from lowp.pipeline import quantize
from lowp.report.analysis import activation_dqs, sqnr_db
from lowp.report.local import local_model


@pytest.fixture(scope="module")
def demo() -> lowp.pipeline.QuantizeResult:
    return quantize(demo_model_path(), load_demo_calibration(), Config(batch_size=16))


def _run(model, feed):
    session = float_session(model)
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed),
                    strict=True))


def test_fed_its_own_values_the_local_model_is_the_quantized_model(demo) -> None:
    feed = demo.feeds.first()
    float_names = {o for n in demo.float_model.graph.node for o in n.output}
    measured = [t for t in activation_dqs(demo.model) if t in float_names]
    quantized = _run(expose_tensors(demo.model, measured), feed)
    local = local_model(demo.model, measured, {t: quantized[t].ndim for t in measured})
    assert len(local.feeds) == len(measured)          # no measured tensor reads an input
    again = _run(local.model, {**feed, **{k: quantized[t] for k, t in local.feeds.items()}})
    for t in measured:
        np.testing.assert_array_equal(again[t], quantized[t], err_msg=t)


def test_fed_float_values_only_the_inherited_error_goes(demo) -> None:
    feed = demo.feeds.first()
    float_names = {o for n in demo.float_model.graph.node for o in n.output}
    measured = [t for t in activation_dqs(demo.model) if t in float_names]
    ref = _run(expose_tensors(demo.float_model, measured), feed)
    quantized = _run(expose_tensors(demo.model, measured), feed)
    local = local_model(demo.model, measured, {t: ref[t].ndim for t in measured})
    alone = _run(local.model, {**feed, **{k: ref[t] for k, t in local.feeds.items()}})
    first = measured[0]                                 # reads the (quantized) model input
    np.testing.assert_array_equal(alone[first], quantized[first])
    gains = [sqnr_db(ref[t], alone[t]) - sqnr_db(ref[t], quantized[t]) for t in measured]
    assert max(gains) > 3.0 and sum(gains) > 0          # later layers inherit less error
