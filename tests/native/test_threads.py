"""Thread counts never change results: outputs are partitioned, reductions never split."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from lowp.fixedpoint import RequantMode
from lowp.ops.conv import conv
from lowp.ops.layout import Layout
from lowp.ops.linear import matmul
from lowp.runtime import native_backend as nb
from lowp.runtime.native_backend import NativeConv, NativeMatMul

from .helpers import PATHS, random_ints, spanning_requant

# name: (x shape, w shape, pads, group); each is big enough (> 4M MACs) that the driver
# really splits it over two threads.
CASES: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int]] = {
    "conv3x3": ((2, 24, 23, 32), (70, 32, 3, 3), (1, 1, 1, 1), 1),
    "depthwise": ((2, 61, 64, 72), (72, 1, 3, 3), (1, 1, 1, 1), 72),
    "conv3d": ((1, 6, 16, 15, 16), (32, 16, 3, 3, 3), (1,) * 6, 1),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_threads_identical(path: str, name: str) -> None:
    x_shape, w_shape, pads, group = CASES[name]
    rng = np.random.default_rng(7)
    x = random_ints(rng, x_shape, np.dtype(np.uint8))
    w = random_ints(rng, w_shape, np.dtype(np.int8))
    acc = conv(x, w, None, x_zero_point=11, w_zero_point=0, requant=None, pads=pads,
               group=group, layout=Layout.CHANNELS_LAST)
    rq = spanning_requant(acc, out_dtype=np.dtype(np.uint8), mode=RequantMode.FLOAT32,
                          per_channel=True, stretch=1.0, clamp=(0.0, 1.0))
    ref = rq.apply(acc)
    with nb.use_path(path):
        op = NativeConv(w, None, x_zero_point=11, x_dtype=np.uint8, w_zero_point=0,
                        requant=rq, threads=1, pads=pads, group=group)
        outs = []
        for threads in (1, 2, 0):
            op.threads = threads
            outs.append(op(x))
    for out in outs:
        np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("path", PATHS)
def test_matmul_threads_identical(path: str) -> None:
    rng = np.random.default_rng(3)
    a = random_ints(rng, (301, 200), np.dtype(np.int8))
    b = random_ints(rng, (200, 300), np.dtype(np.int8))
    acc = matmul(a, b, a_zero_point=5, b_zero_point=0)
    rq = spanning_requant(acc, out_dtype=np.dtype(np.int8), mode=RequantMode.FIXEDPOINT,
                          per_channel=False, stretch=1.0, clamp=(0.0, 1.0))
    ref = rq.apply(acc)
    with nb.use_path(path):
        outs = [NativeMatMul(b, None, a_zero_point=5, a_dtype=np.int8, b_zero_point=0,
                             requant=rq, threads=t)(a) for t in (1, 2)]
    for out in outs:
        np.testing.assert_array_equal(out, ref)


FORK_SCRIPT = """
import os, numpy as np
from lowp.fixedpoint import Requant
from lowp.runtime.native_backend import NativeConv
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(2, 40, 40, 64)).astype(np.uint8)
w = rng.integers(-128, 128, size=(64, 64, 3, 3)).astype(np.int8)
op = NativeConv(w, None, x_zero_point=3, x_dtype=np.uint8, w_zero_point=0,
                requant=Requant(np.float32(0.001), 0, 0, 255), pads=[1] * 4, threads=2)
y = op(x)
pid = os.fork()
if pid == 0:
    os._exit(0 if np.array_equal(op(x), y) else 3)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_survives_fork() -> None:
    """A forked child (multiprocessing's default on Linux) gets its own worker threads."""
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "child 0"


def test_threads_identical_on_a_loaded_machine() -> None:
    """With every core taken by busy processes the workers lose their cores inside jobs, so
    the pool blocks for them and then runs jobs on the caller alone: every call still
    returns the one-thread result (and returns at all)."""
    x_shape, w_shape, pads, group = CASES["conv3x3"]
    rng = np.random.default_rng(11)
    x = random_ints(rng, x_shape, np.dtype(np.uint8))
    w = random_ints(rng, w_shape, np.dtype(np.int8))
    acc = conv(x, w, None, x_zero_point=4, w_zero_point=0, requant=None, pads=pads,
               group=group, layout=Layout.CHANNELS_LAST)
    rq = spanning_requant(acc, out_dtype=np.dtype(np.uint8), mode=RequantMode.FLOAT32,
                          per_channel=True, stretch=1.0, clamp=(0.0, 1.0))
    op = NativeConv(w, None, x_zero_point=4, x_dtype=np.uint8, w_zero_point=0, requant=rq,
                    threads=0, pads=pads, group=group)
    ref = rq.apply(acc)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 1)]
    try:
        outs = [op(x) for _ in range(60)]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    for out in outs:
        np.testing.assert_array_equal(out, ref)
