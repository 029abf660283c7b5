"""The allocator setting: applied once on glibc, and off when the environment says so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lowp.runtime import allocator

CODE = ("import lowp.runtime.allocator as a; from lowp.runtime import Session; "
        "from lowp.data import demo_model_path; Session(demo_model_path()); "
        "print(a._done)")


@pytest.mark.parametrize("setting, expected", [("1", "True"), ("0", "False")])
def test_session_tunes_malloc_unless_disabled(setting: str, expected: str) -> None:
    if allocator.platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    env = dict(os.environ, LOWP_TUNE_MALLOC=setting)
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == expected
