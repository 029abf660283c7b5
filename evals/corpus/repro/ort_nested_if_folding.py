"""Reproducer: ONNX Runtime crashes building a session on Silero VAD's default file
(silero-vad 6.2.3, `silero_vad/data/silero_vad.onnx`, spox-built, 25 nested If nodes) once its
`state` and `sr` inputs are initializers, the way the corpus freezes recurrent state and the
sample rate; with graph optimizations off it runs, and lowp gives its outputs bit for bit.

    python evals/corpus/repro/ort_nested_if_folding.py [MODEL.onnx]

MODEL defaults to the file in the corpus's wheel cache (`python evals/corpus/fetch.py
--models silero_vad_op15` fetches that wheel). Each ONNX Runtime optimization level runs in
a child process, since the failure is a segmentation fault, not an exception. Expected
(ONNX Runtime 1.32): `disable_all` runs; `basic`, `extended` and `all` end with signal 11
while the session is built. Frozen `sr` alone or `state` alone builds at every level.
Cause, as read in ONNX Runtime's `constant_folding.cc`: at level basic its ConstantFolding
inlines every If whose condition is a constant initializer (`ConstantFoldIfNode` ->
`Graph::InlineIfSubgraph`); `sr == 16000` makes the outer If constant and the frozen
state's Shape makes the decoder's inner Ifs constant, and inlining those nested branches
(whose names already carry an earlier `__Inline_0__` pass) breaks the graph: with the two
inputs as Constant nodes instead, the session builds and the run fails in the inlined
`.../decoder/rnn/Identity` ("Trying to get a TensorSeq, but got: (null)").
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from evals.corpus.models import CACHE, freeze_inputs  # noqa: E402

MEMBER = "silero_vad/data/silero_vad.onnx"
LEVELS = ("disable_all", "basic", "extended", "all")

CHILD = """
import sys, numpy as np, onnxruntime as ort
level = {"disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
         "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
         "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
         "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[sys.argv[2]]
so = ort.SessionOptions(); so.graph_optimization_level = level
so.intra_op_num_threads = 1; so.log_severity_level = 4
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[3])
out = s.run(None, {"input": x})
np.save(sys.argv[4], out[0])
"""


def frozen(path: Path | None) -> onnx.ModelProto:
    if path is None:
        wheel = CACHE / "wheels" / "silero_vad-6.2.3-py3-none-any.whl"
        with zipfile.ZipFile(wheel) as z:
            model = onnx.load_from_string(z.read(MEMBER))
    else:
        model = onnx.load(str(path))
    return freeze_inputs(model, {"state": 0.0, "sr": 16000}, 1, pin=True)


def main() -> int:
    import lowp

    work = CACHE / "repro_ort_nested_if"
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "silero_vad_frozen.onnx"
    onnx.save(frozen(Path(sys.argv[1]) if len(sys.argv) > 1 else None), str(model_path))
    x = np.random.default_rng(0).uniform(-0.9, 0.9, (1, 512)).astype(np.float32)
    np.save(work / "x.npy", x)
    results = {}
    for level in LEVELS:
        out = work / f"out_{level}.npy"
        out.unlink(missing_ok=True)
        p = subprocess.run([sys.executable, "-c", CHILD, str(model_path), level,
                            str(work / "x.npy"), str(out)], capture_output=True, text=True)
        status = "ran" if p.returncode == 0 else (
            f"signal {-p.returncode}" if p.returncode < 0 else
            f"exit {p.returncode}: {p.stderr.strip().splitlines()[-1][:160]}")
        print(f"ONNX Runtime, {level}: {status}")
        if p.returncode == 0:
            results[level] = np.load(out)
    ref = results.get("disable_all")
    for backend in ("native", "reference"):
        got = lowp.Session(str(model_path), threads=1, backend=backend).run({"input": x})
        first = np.asarray(next(iter(got.values())))
        same = ref is not None and np.array_equal(first, ref)
        print(f"lowp {backend}: output {first.ravel()[:1]}, identical to disable_all: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
