#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, clang, ASan + UBSan) of the C++ signaling path.
#   scripts/fuzz.sh [seconds]      default 60; CI runs it briefly, run it longer by hand
# The build lives in build-fuzz/; dependencies come from the same cache as the
# normal build (under their own key: other compiler, other flags).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
if ! command -v clang++ >/dev/null || [ ! -d /usr/lib/llvm-14/lib/clang ]; then
    echo "[fuzz] installing clang and its runtime (libFuzzer, sanitizers)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi
PY=${PYTHON:-python3}
"$PY" -c "import nanobind" 2>/dev/null || "$PY" -m pip install -q nanobind
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPython_EXECUTABLE="$(command -v "$PY")" \
    -DSINKCAST_BUILD_FUZZERS=ON -DSINKCAST_SANITIZE=address,undefined >/dev/null
cmake --build build-fuzz --target fuzz_signaling
mkdir -p build-fuzz/corpus
# Fuzz into a scratch corpus seeded from fuzz/corpus (real offers and candidates).
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    build-fuzz/fuzz/fuzz_signaling build-fuzz/corpus fuzz/corpus \
    -max_total_time="$SECONDS_TO_RUN" -max_len=70000 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
