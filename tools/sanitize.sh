#!/usr/bin/env bash
# Sanitizer run of the native core: builds lowp._native with -DLOWP_SANITIZE=ON (AddressSanitizer
# + UndefinedBehaviorSanitizer) in a scratch build directory, leaving the installed extension
# alone, and runs a small subset of tests/native against that build.
# Usage: tools/sanitize.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$PWD/.venv/bin/python}
BUILD=${LOWP_SANITIZE_BUILD:-build/sanitize}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOWP_SANITIZE=ON \
  -DPython_EXECUTABLE="$PY" > "$BUILD.configure.log"
cmake --build "$BUILD" --target _native -j 2
SO=$(ls "$BUILD"/_native*.so)
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
LD_PRELOAD="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)" \
  "$PY" - "$SO" "$@" <<'PYEOF'
import importlib.util
import sys

import lowp

so = sys.argv[1]
spec = importlib.util.spec_from_file_location("lowp._native", so)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.modules["lowp._native"] = module
lowp._native = module

import pytest

args = ["tests/native", "-q", "-p", "no:cacheprovider", "--hypothesis-profile=ci",
        "-k", "matches_reference or depthwise or threads or lookup or channels_last or native_rnn",
        *sys.argv[2:]]
sys.exit(pytest.main(args))
PYEOF
