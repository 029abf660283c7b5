"""`lowp demo`: quantize the bundled digits CNN, run it on lowp's engine and ONNX Runtime."""

from __future__ import annotations

import time

from .config import Config
from .data import demo_model_path, load_demo_calibration, load_demo_test
from .pipeline import quantize
from .report.speed import measure_speed
from .report.summary import summarize


def run_demo(config: Config | None = None, *, backend: str = "auto",
             progress: bool = True) -> str:
    """Quantize the demo model, evaluate it, and return the printable summary."""
    config = config or Config()
    t0 = time.perf_counter()
    result = quantize(demo_model_path(), load_demo_calibration(), config, progress=progress)
    t_quant = time.perf_counter() - t0
    feeds, labels = load_demo_test()
    summary = summarize(result.model, result.float_model, feeds, labels, backend=backend)
    one_image = {name: value[:1] for name, value in feeds.items()}
    summary.speed = measure_speed(result.model, result.float_model, one_image, backend=backend)
    acc = summary.accuracy
    method = config.method.value
    if result.method_choice is not None:
        method = f"{result.method_choice.chosen} (measured best of " \
                 f"{len(result.method_choice.candidates)} methods)"
    drop = 100 * (acc["float"] - acc["lowp engine"])
    head = (f"lowp demo: digits CNN ({demo_model_path().name}), {len(labels)} test images, "
            f"{method} calibration on "
            f"{len(next(iter(load_demo_calibration().values())))} images, target "
            f"'{config.target}', quantized in {t_quant:.2f} s\n")
    verdict = (f"\nint8 accuracy is {abs(drop):.2f} points {'below' if drop > 0 else 'above'} "
               f"float ({'within' if drop <= 0.5 else 'OUTSIDE'} the 0.5-point budget)")
    return head + summary.format() + verdict
