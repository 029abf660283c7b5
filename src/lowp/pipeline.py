"""The quantization pipeline: load -> canonicalize -> annotate -> calibrate -> choose ->
insert QDQ -> verify. `quantize_model` is the whole flow in one call."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from .calib import CalibrationTable
from .config import Config, QuantMode
from .errors import DataError, ModelError
from .inputs import ImagePreprocess, batches, load_arrays, model_inputs, validate
from .ir.graph import load_model
from .passes.annotate import Annotation, annotate
from .passes.calibrate import calibrate
from .passes.canonicalize import canonicalize, upgrade_opset
from .passes.choose import QuantPlan, choose
from .passes.dynamic import dynamic_quantize
from .passes.insert_qdq import insert_qdq
from .passes.smooth import smooth
from .passes.verify import verify

ModelLike = str | os.PathLike[str] | onnx.ModelProto | bytes | Any
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


def quantize_model(model: ModelLike, calibration_data: DataLike | None = None,
                   config: Config | None = None, *, calib_table: str | os.PathLike[str]
                   | CalibrationTable | None = None, progress: bool = False,
                   preprocess: ImagePreprocess | None = None) -> onnx.ModelProto:
    """Quantize a float ONNX model to a verified QDQ ONNX model.

    Parameters
    ----------
    model
        Path, serialized bytes or ModelProto of a float model.
        A `torch.nn.Module` is exported with `torch.onnx.export` first (opset 17, dynamic
        batch); the calibration data then names its inputs (or is one array).
    calibration_data
        Mapping input name -> array (first axis = samples), an .npz file, a folder of
        .npy/.npz files, or a folder of images (see `preprocess`). Optional in dynamic mode.
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


def quantize(model: ModelLike, calibration_data: DataLike | None,
             config: Config | None = None, *,
             calib_table: str | os.PathLike[str] | CalibrationTable | None = None,
             progress: bool = False, preprocess: ImagePreprocess | None = None
             ) -> QuantizeResult:
    """Like `quantize_model`, returning the intermediate results too."""
    config = config or Config()
    target = config.resolved_target()
    loaded = load_model(_from_torch(model, calibration_data))
    _check_node_names(loaded, config)
    float_model = canonicalize(loaded)
    inputs = model_inputs(float_model)
    if config.mode is QuantMode.DYNAMIC:
        qdq = dynamic_quantize(float_model, config)
        sample = None
        if calibration_data is not None:
            data = validate(load_arrays(calibration_data, inputs, preprocess), inputs)
            sample = next(batches(data, inputs, config.batch_size))
        verify(qdq, target, sample)
        return QuantizeResult(qdq, float_model, Annotation(), CalibrationTable(), QuantPlan(),
                              data if calibration_data is not None else {})
    if calibration_data is None:
        raise DataError("static quantization needs calibration data (or use "
                        "Config(mode=QuantMode.DYNAMIC))")
    data = validate(load_arrays(calibration_data, inputs, preprocess), inputs)
    if config.smooth_alpha is not None:
        float_model = smooth(float_model, data, inputs, config.smooth_alpha, config.batch_size)
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
    wide = any(qp.qtype.bits == 16 for qp in plan.activations.values())
    qdq = insert_qdq(upgrade_opset(float_model, 21) if wide else float_model, ann, plan)
    sample = next(batches(data, inputs, config.batch_size))
    verify(qdq, target, sample, allow_16bit=wide)
    return QuantizeResult(qdq, float_model, ann, table, plan, data)


def _check_node_names(model: onnx.ModelProto, config: Config) -> None:
    """Node names in the config must exist: a typo must not silently do nothing."""
    names = {n.name for n in model.graph.node}
    for field_name in ("exclude_nodes", "sixteen_bit_nodes"):
        for name in getattr(config, field_name):
            if name not in names:
                raise DataError(f"node '{name}' given in {field_name} is not in the model")


def _from_torch(model: Any, data: Any) -> Any:
    """Export a torch.nn.Module to ONNX bytes; anything else passes through unchanged."""
    if not (hasattr(model, "forward") and hasattr(model, "state_dict")):
        return model
    try:
        import torch
    except ImportError:
        raise ModelError("quantizing a torch module needs PyTorch: pip install "
                         "'lowp[torch]'") from None
    if isinstance(data, Mapping):
        names = list(data)
        examples = tuple(torch.from_numpy(np.asarray(data[n][:1])) for n in names)
    else:
        raise DataError("for a torch module, give calibration data as a mapping from input "
                        "name to array (first axis = samples)")
    was_training = model.training
    model.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="lowp-export-") as tmp:
            path = os.path.join(tmp, "model.onnx")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, examples, path, input_names=names, opset_version=17,
                                  dynamic_axes={n: {0: "batch"} for n in names}, dynamo=False)
            with open(path, "rb") as f:
                return f.read()
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        raise ModelError(f"torch.onnx.export failed for {type(model).__name__}: {msg}") from None
    finally:
        model.train(was_training)
