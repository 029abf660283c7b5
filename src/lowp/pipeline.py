"""The quantization pipeline: load -> canonicalize -> annotate -> calibrate -> choose ->
insert QDQ -> verify. `quantize_model` is the whole flow in one call."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from .calib import CalibrationTable
from .config import Config
from .errors import DataError
from .inputs import ImagePreprocess, batches, load_arrays, model_inputs, validate
from .ir.graph import load_model
from .passes.annotate import Annotation, annotate
from .passes.calibrate import calibrate
from .passes.canonicalize import canonicalize
from .passes.choose import QuantPlan, choose
from .passes.insert_qdq import insert_qdq
from .passes.verify import verify

ModelLike = str | os.PathLike[str] | onnx.ModelProto | bytes
DataLike = str | os.PathLike[str] | Mapping[str, np.ndarray]


@dataclass
class QuantizeResult:
    """The quantized model and what produced it (for reports)."""

    model: onnx.ModelProto
    float_model: onnx.ModelProto
    annotation: Annotation
    table: CalibrationTable
    plan: QuantPlan
    calibration_data: dict[str, np.ndarray]


def quantize_model(model: ModelLike, calibration_data: DataLike,
                   config: Config | None = None, *, calib_table: str | os.PathLike[str]
                   | CalibrationTable | None = None, progress: bool = False,
                   preprocess: ImagePreprocess | None = None) -> onnx.ModelProto:
    """Quantize a float ONNX model to a verified QDQ ONNX model.

    Parameters
    ----------
    model
        Path, serialized bytes or ModelProto of a float model.
    calibration_data
        Mapping input name -> array (first axis = samples), an .npz file, a folder of
        .npy/.npz files, or a folder of images (see `preprocess`).
    config
        What and how to quantize; `Config()` gives per-channel min/max for lowp's engine.
    calib_table
        A saved calibration table (path or object): skips the calibration passes.
    progress
        Show progress bars while calibrating.

    Returns
    -------
    onnx.ModelProto
        A QDQ model that passes onnx.checker, obeys the target and runs in ONNX Runtime.

    Examples
    --------
    >>> import lowp
    >>> from lowp.data import demo_model_path, load_demo_calibration
    >>> q = lowp.quantize_model(demo_model_path(), load_demo_calibration())
    >>> sorted({n.op_type for n in q.graph.node})[:3]
    ['Add', 'Conv', 'DequantizeLinear']
    """
    return quantize(model, calibration_data, config, calib_table=calib_table,
                    progress=progress, preprocess=preprocess).model


def quantize(model: ModelLike, calibration_data: DataLike, config: Config | None = None, *,
             calib_table: str | os.PathLike[str] | CalibrationTable | None = None,
             progress: bool = False, preprocess: ImagePreprocess | None = None
             ) -> QuantizeResult:
    """Like `quantize_model`, returning the intermediate results too."""
    config = config or Config()
    target = config.resolved_target()
    float_model = canonicalize(load_model(model))
    inputs = model_inputs(float_model)
    data = validate(load_arrays(calibration_data, inputs, preprocess), inputs)
    ann = annotate(float_model, config)
    tensors = ann.activations
    if calib_table is None:
        table = calibrate(float_model, tensors, data, inputs, config, progress=progress)
    else:
        table = (calib_table if isinstance(calib_table, CalibrationTable)
                 else CalibrationTable.load(calib_table))
        missing = [t for t in tensors if t not in table]
        if missing:
            raise DataError(f"calibration table lacks tensor '{missing[0]}' "
                            f"({len(missing)} missing); was it made for another model?")
    plan = choose(float_model, ann, table, config)
    qdq = insert_qdq(float_model, ann, plan)
    sample = next(batches(data, inputs, config.batch_size))
    verify(qdq, target, sample)
    return QuantizeResult(qdq, float_model, ann, table, plan, data)
