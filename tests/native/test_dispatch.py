"""Dispatch and validation: path listing/forcing, LOWP_ISA, clear errors on bad arguments."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from lowp.fixedpoint import Requant
from lowp.runtime import native_backend as nb
from lowp.runtime.native_backend import NativeConv, NativeMatMul

KNOWN = {"scalar", "avx2", "avxvnni", "avxvnni_evex", "avx512vnni", "amx"}


def test_available_paths() -> None:
    paths = nb.available_paths()
    assert paths[0] == "scalar"
    assert set(paths) <= KNOWN
    assert nb.active_path() in paths


def test_set_path_round_trip() -> None:
    before = nb.active_path()
    for path in nb.available_paths():
        with nb.use_path(path):
            assert nb.active_path() == path
    assert nb.active_path() == before


def test_unknown_and_unsupported_paths_raise() -> None:
    with pytest.raises(ValueError, match="unknown"):
        nb.set_path("sse9")
    for path in KNOWN - set(nb.available_paths()):
        with pytest.raises(ValueError, match="not supported"):
            nb.set_path(path)


def _import_with_env(value: str) -> subprocess.CompletedProcess[str]:
    code = "from lowp.runtime import native_backend as nb; print(nb.active_path())"
    env = dict(os.environ, LOWP_ISA=value)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=False)


def test_env_var_forces_path() -> None:
    done = _import_with_env("scalar")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "scalar"
    bad = _import_with_env("bogus")
    assert bad.returncode != 0
    assert "LOWP_ISA=bogus" in bad.stderr


RQ = Requant(np.float32(0.01), 0, 0, 255)


def test_validation_errors() -> None:
    w = np.zeros((4, 3, 3, 3), np.int8)
    with pytest.raises(ValueError, match="int8 or uint8"):
        NativeConv(w.astype(np.int16), None, x_zero_point=0, x_dtype=np.uint8,
                   w_zero_point=0, requant=RQ)
    with pytest.raises(ValueError, match="x_zero_point"):
        NativeConv(w, None, x_zero_point=300, x_dtype=np.uint8, w_zero_point=0, requant=RQ)
    with pytest.raises(ValueError, match="w_zero_point"):
        NativeConv(w, None, x_zero_point=0, x_dtype=np.uint8, w_zero_point=np.zeros(3, int),
                   requant=RQ)
    with pytest.raises(ValueError, match="bias"):
        NativeConv(w, np.zeros(5, np.int32), x_zero_point=0, x_dtype=np.uint8,
                   w_zero_point=0, requant=RQ)
    with pytest.raises(ValueError, match="group"):
        NativeConv(w, None, x_zero_point=0, x_dtype=np.uint8, w_zero_point=0, requant=RQ,
                   group=3)
    op = NativeConv(w, None, x_zero_point=0, x_dtype=np.uint8, w_zero_point=0, requant=RQ)
    with pytest.raises(ValueError, match="dtype"):
        op(np.zeros((1, 5, 5, 3), np.int8))
    with pytest.raises(ValueError, match="channels"):
        op(np.zeros((1, 5, 5, 4), np.uint8))
    with pytest.raises(ValueError, match="rank"):
        op(np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="exceeds"):
        op(np.zeros((1, 2, 5, 3), np.uint8))
    assert op(np.zeros((0, 5, 5, 3), np.uint8)).shape == (0, 3, 3, 4)
    mm = NativeMatMul(np.zeros((8, 2), np.int8), None, a_zero_point=0, a_dtype=np.uint8,
                      b_zero_point=0, requant=RQ)
    with pytest.raises(ValueError, match=r"\(\.\.\., 8\)"):
        mm(np.zeros((3, 7), np.uint8))
    with pytest.raises(ValueError, match="int16"):
        NativeMatMul(np.zeros((8, 2), np.int8), None, a_zero_point=0, a_dtype=np.int16,
                     b_zero_point=0, requant=RQ)
    with pytest.raises(ValueError, match="uint8 or int8"):
        NativeMatMul(np.zeros((8, 2), np.int8), None, a_zero_point=0, a_dtype=np.uint8,
                     b_zero_point=0, requant=Requant(np.float32(1), 0, 0, 100,
                                                     out_dtype=np.dtype(np.int32)))
