"""The per-token step of the measured method choice (docs/accuracy.md, "Per-token
activations for low-SQNR models").

After the range method (and its float step) is chosen, a model whose static held-out output
SQNR is below `Config.per_token_below_db` is measured once more, quantized dynamically with
one activation scale per row (`--mode dynamic --activations per-token`, passes.per_token),
on the same folds' held-out feeds and with the same evaluator. The per-token model is kept
when its mean SQNR over the folds is at least PER_TOKEN_GAIN_DB above the static model's
(the chosen method's mean, plus the gain of the layer left in float, if any). Not measured
(`not_applicable`): a model that dynamic mode leaves unchanged (no MatMul/Gemm with a
constant weight) or in which it would leave a convolution in float, as mode AUTO's own
exception (passes.mode_choice): such a candidate looks accurate because it runs in float.
The record (`PerTokenStep`) goes into the method record (OUTPUT.method.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx

from ..calib import CalibrationTable
from ..config import Config
from ..errors import LowpError
from ..feeds import FeedSource
from ..inputs import InputSpec
from .annotate import Annotation
from .choose import QuantPlan
from .dynamic import dynamic_nodes
from .fallback import evaluation_feeds
from .mode_choice import PER_TOKEN, candidate_config, float_convolutions
from .sensitivity import Built, Evaluator

# 3 dB is half the static model's noise power: a gain that the folds' noise does not make
# (the same bar as the layer left in float, passes.method_choice.DOMINANT_GAIN_DB)
PER_TOKEN_GAIN_DB = 3.0
_SQNR_CAP_DB = 200.0      # an exact model counts as 200 dB (as the other choices)
FLAGS = "--mode dynamic --activations per-token"


@dataclass(frozen=True)
class PerTokenStep:
    """What the per-token step measured: the static model's held-out SQNR (dB, mean over the
    folds), the per-token model's (None when not measured or failed) and per fold, whether
    per-token is kept, and why in words."""

    static_db: float
    sqnr_db: float | None
    kept: bool
    reason: str
    folds_db: tuple[float, ...] = ()
    error: str = ""

    def line(self) -> str:
        """The step in the CLI record, one line."""
        if self.sqnr_db is None:
            return f"  per-token activations: not measured ({self.reason})"
        per_fold = " ".join(f"{v:.2f}" for v in self.folds_db)
        verdict = "kept" if self.kept else "not kept"
        return (f"  per-token activations ({FLAGS}): {self.sqnr_db:.2f} dB ({per_fold}) "
                f"against static {self.static_db:.2f} dB: {verdict} ({self.reason})")


def static_db(chosen_db: float, kept_gain_db: float | None) -> float:
    """The static model's held-out SQNR: the chosen method's mean, plus the mean gain of the
    layer left in float (None: none left in float).

    >>> static_db(10.0, None), static_db(10.0, 4.5)
    (10.0, 14.5)
    """
    return min(chosen_db + (kept_gain_db or 0.0), _SQNR_CAP_DB)


def wanted(config: Config, static: float) -> bool:
    """Whether the step runs: it is on and the static model is below its bound.

    >>> wanted(Config(), 12.0), wanted(Config(), 25.0)
    (True, False)
    >>> wanted(Config(per_token_below_db=None), 12.0)
    False
    """
    return config.per_token_below_db is not None and static < config.per_token_below_db


def not_applicable(model: onnx.ModelProto, config: Config) -> str:
    """Why per-token is not measured on `model` ("" when it is)."""
    if not dynamic_nodes(model, config):
        return "no MatMul/Gemm with a constant weight for dynamic mode to quantize"
    convs = float_convolutions(model, config)
    if convs:
        return (f"dynamic mode would leave {len(convs)} convolution"
                f"{'s' if len(convs) != 1 else ''} in float")
    return ""


def measure(float_model: onnx.ModelProto, per_token: onnx.ModelProto,
            pairs: Sequence[tuple[FeedSource, FeedSource]], inputs: list[InputSpec],
            config: Config) -> tuple[float, ...]:
    """The per-token model's output SQNR (the minimum over the outputs scored) on each
    pair's held-out feeds (its first `config.fallback_samples` samples), as the method
    choice measures its candidates; each value capped at 200 dB."""
    dynamic = candidate_config(config, PER_TOKEN)
    out = []
    for fit, held in pairs:
        evaluator = Evaluator(float_model, CalibrationTable(),
                              evaluation_feeds(held, config.fallback_samples), fit, inputs,
                              dynamic)
        built = Built(per_token, Annotation(), QuantPlan(), dynamic)
        out.append(min(evaluator.measure(built).min_sqnr_db, _SQNR_CAP_DB))
    return tuple(out)


def decide(static: float, folds_db: Sequence[float],
           gain_db: float = PER_TOKEN_GAIN_DB) -> PerTokenStep:
    """Keep per-token when its mean over `folds_db` is at least `gain_db` above `static`.

    >>> decide(6.5, [24.0, 26.0]).kept
    True
    >>> decide(15.0, [17.0, 17.5]).kept
    False
    """
    mean = sum(folds_db) / len(folds_db)
    gain = mean - static
    if gain >= gain_db:
        reason = f"{gain:.2f} dB more accurate, at least {gain_db:g} dB"
    else:
        reason = f"{gain:+.2f} dB, below the {gain_db:g} dB it needs"
    return PerTokenStep(static, mean, gain >= gain_db, reason, tuple(folds_db))


def failed(static: float, error: LowpError) -> PerTokenStep:
    """The record of a per-token model that could not be built or run."""
    first = str(error).strip().splitlines()[0]
    return PerTokenStep(static, None, False, f"failed: {first}", error=first)
