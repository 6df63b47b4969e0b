#!/usr/bin/env bash
# The extension built with ASan + UBSan (our code; the bundled dependencies stay
# uninstrumented), and tests run against it.
#   scripts/sanitize.sh                 the C++ tests, then the default pytest subset below
#   scripts/sanitize.sh tests/...       any pytest arguments
# Default subset, and why: the tests that drive our C++ hardest (mixing,
# bad input, counters, the signaling contract with its threads, real aiortc
# listeners). The browser, subprocess-storm and churn tests are left out
# because under ASan they run several times slower without reaching any
# native code the subset does not.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SINKCAST_ASAN_VENV:-.venv-asan}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY=$VENV/bin/python
if [ ! -e "$VENV/.installed-$(git rev-parse HEAD 2>/dev/null || echo x)" ]; then
    echo "[sanitize] building sinkcast with -fsanitize=address,undefined" >&2
    SINKCAST_SANITIZE=address,undefined "$PY" -m pip install -q --config-settings=build-dir=build/asan \
        --config-settings=cmake.define.SINKCAST_BUILD_CPP_TESTS=ON ".[test]"
    rm -f "$VENV"/.installed-*
    touch "$VENV/.installed-$(git rev-parse HEAD 2>/dev/null || echo x)"
fi
if [ $# -eq 0 ]; then
    # The C++ tests first (tests/cpp/: WebRTCSender and OpusEncoder against a
    # plain libdatachannel peer over loopback, both offer directions, churn).
    echo "[sanitize] C++ tests under ASan + UBSan" >&2
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build/asan --output-on-failure --timeout 300
    # Left out: the test that runs a child out of file descriptors. UBSan's
    # vptr check tests that a vtable is readable by writing it into a pipe
    # (sanitizer_common's IsAccessibleMemoryRange); with no descriptor left
    # for the pipe, every dynamic type check reports "invalid vptr" and aborts,
    # and no suppression applies to a vtable it could not read.
    set -- tests/test_mix.py tests/test_errors.py tests/test_push_arrays.py tests/test_counters.py tests/test_resample.py \
           tests/test_signaling_contract.py tests/test_webrtc.py \
           --deselect tests/test_signaling_contract.py::test_out_of_file_descriptors_the_engine_says_so_and_no_refused_session_speaks_or_replaces
fi
# -v: each test's name is in the log as it starts, so a hang names its test.
# libstdc++ is preloaded too: python does not link it, and ASan must find the
# real __cxa_throw when it starts, or the first C++ exception aborts.
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$PY" -m pytest -v -p no:cacheprovider "$@"
