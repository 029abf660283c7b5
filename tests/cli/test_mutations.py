"""Mutation fuzz of model files (tools/fuzz_models.py): corrupted bytes give a result or a
clean error, never a traceback, a crash or a hang. `python tools/fuzz_models.py
--mutations 1000` runs the long version."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "fuzz_models.py"


@pytest.fixture(scope="module")
def fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_models", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_models"] = module
    spec.loader.exec_module(module)
    return module


def _report(fuzz, results) -> str:
    return "\n".join(fuzz._failures(results)) + "\n" + fuzz.summary_line(results)


def test_two_hundred_byte_mutants_load_run_and_lint_cleanly(fuzz, tmp_path):
    results = fuzz.fuzz(200, seed=0, batch=100, structured=0.0)
    assert not [r for r in results if r["outcome"] in fuzz.FAILURES], _report(fuzz, results)
    outcomes = {r["outcome"] for r in results}
    # both outcomes occur: the mutants neither all break the parser nor all miss the model
    assert {fuzz.OK, fuzz.CLEAN} <= outcomes, fuzz.summary_line(results)
    assert {r["seed_model"] for r in results} == {"demo", "demo_qdq"}


@pytest.fixture(scope="module")
def structured(fuzz):
    """Well-formed mutants with one absurd field (attribute, initializer shape, qparam,
    wiring): they get past the parser into lowering and the kernels."""
    return fuzz.fuzz(100, seed=1, batch=100, structured=1.0)


def test_structured_mutants_never_crash_hang_or_raise_a_bare_exception(fuzz, structured):
    bad = [r for r in structured if r["outcome"] in (fuzz.TRACEBACK, fuzz.CRASH, fuzz.HANG)]
    assert not bad, _report(fuzz, structured)
    assert fuzz.OK in {r["outcome"] for r in structured}


def test_structured_mutants_give_model_errors_not_internal_errors(fuzz, structured):
    assert not [r for r in structured if r["outcome"] == fuzz.INTERNAL], _report(
        fuzz, structured)


def test_mutations_change_the_bytes(fuzz):
    rng = random.Random(0)
    data = bytes(range(256)) * 4
    for name, fn in fuzz.MUTATIONS.items():
        changed = sum(bytes(fn(bytearray(data), rng)) != data for _ in range(20))
        assert changed >= 15, name


def _mutants(fuzz, tmp_path: Path, n: int) -> list:
    return fuzz.make_mutants({"m": b"\x08\x07" * 64}, n, 0, tmp_path)


def test_a_crashing_child_names_its_mutant(fuzz, tmp_path):
    """A segfault in the child marks the mutant it was on and the fuzz goes on."""
    segfault = [sys.executable, "-c", "import ctypes; ctypes.string_at(0)"]
    results = fuzz.run_mutants(_mutants(fuzz, tmp_path, 3), batch=2, child=segfault)
    assert [r["outcome"] for r in results] == [fuzz.CRASH] * 3
    assert all(r["message"].startswith("signal ") for r in results)


def test_a_hanging_child_names_its_mutant(fuzz, tmp_path):
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    results = fuzz.run_mutants(_mutants(fuzz, tmp_path, 1), timeout_s=2, child=hang)
    assert [r["outcome"] for r in results] == [fuzz.HANG]


def test_the_summary_line(fuzz):
    results = [{"outcome": o} for o in ("ok", "clean", "clean", "traceback")]
    assert fuzz.summary_line(results) == (
        "4 mutations: 1 loaded and ran, 2 clean errors, 0 out of memory, 0 internal errors, "
        "1 tracebacks, 0 crashes, 0 hangs")


def test_a_conv_rewired_to_the_fc_weight_fails_with_a_lowp_error(fuzz):
    """Structured mutant 271 of `tools/fuzz_models.py --mutations 5000 --seed 11
    --structured 1`: the QDQ demo's depthwise Conv reads the Gemm's weight."""
    import onnx

    from lowp.errors import LowpError
    from lowp.runtime import Session

    model = onnx.ModelProto()
    model.ParseFromString(fuzz.seed_models()["demo_qdq"])
    conv = next(n for n in model.graph.node if n.name == "/dw/Conv")
    conv.input[1] = "fc.weight"
    with pytest.raises(LowpError):
        Session(model)
